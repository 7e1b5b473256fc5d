"""Coverage-guided fuzz harnesses (atheris) for Dijk's parsers; see ``fuzz/run.py``."""
