"""Run the fuzz harnesses with atheris (libFuzzer, coverage-guided).

    python -m fuzz.run --list
    python -m fuzz.run http1 --seconds 120          # one harness
    python -m fuzz.run --all --seconds 120          # every harness, one after the other

Each harness starts from seeds written to a fresh corpus directory (the smuggling suite,
the shared corpora under ``DIJK_CORPORA`` or ``../shared/corpora``, hand-written cases),
instruments the ``dijk`` package for coverage, and runs for ``--seconds``. A crash (an
exception or a broken invariant in ``fuzz/targets.py``) stops the run with exit status 1
and leaves the input in ``--artifacts`` (default ``.dijk/fuzz``): turn it into a named
regression test, fix, run again. ``--all`` prints one summary line per harness:
executions, executions per second, coverage (edges) and features, as libFuzzer counted
them.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
_STATS = re.compile(rb"#(\d+)\s+DONE\s+cov: (\d+) ft: (\d+)")
_EXECS = re.compile(rb"stat::number_of_executed_units: (\d+)")


def _names() -> list[str]:
    from fuzz.targets import TARGETS  # imported here: --list only, never when fuzzing

    return list(TARGETS)


def run_one(name: str, seconds: int, artifacts: Path, extra: list[str]) -> int:
    """Fuzz one target in this process (never returns normally: libFuzzer exits)."""
    import atheris

    with atheris.instrument_imports(include=["dijk"]):
        from fuzz.targets import TARGETS
    target = TARGETS[name]
    if target.prepare is not None:
        target.prepare()
    corpus = Path(tempfile.mkdtemp(prefix=f"dijk-fuzz-{name}-"))
    for index, seed in enumerate(target.seeds()):
        (corpus / f"seed-{index:05d}").write_bytes(seed)
    artifacts.mkdir(parents=True, exist_ok=True)
    argv = [
        sys.argv[0],
        str(corpus),
        f"-max_total_time={seconds}",
        "-print_final_stats=1",
        "-rss_limit_mb=2048",
        "-timeout=20",
        "-max_len=8192",
        f"-artifact_prefix={artifacts}/{name}-",
        *extra,
    ]
    atheris.Setup(argv, target.one_input)
    atheris.Fuzz()
    return 0


def harness_command(name: str, seconds: int, artifacts: Path) -> list[str]:
    """The command that fuzzes ``name`` for ``seconds`` in its own process (run from ROOT)."""
    return [
        sys.executable, "-m", "fuzz.run", name, "--seconds", str(seconds),
        "--artifacts", str(artifacts),
    ]  # fmt: skip


def run_all(names: list[str], seconds: int, artifacts: Path) -> int:
    failed = 0
    print(f"{'harness':<15} {'seconds':>7} {'executions':>11} {'exec/s':>7} {'cov':>6} {'ft':>6}")
    for name in names:
        started = time.monotonic()
        result = subprocess.run(
            harness_command(name, seconds, artifacts),
            cwd=ROOT,
            capture_output=True,
            check=False,
        )
        elapsed = time.monotonic() - started
        stats = _STATS.findall(result.stderr)
        execs = _EXECS.findall(result.stderr)
        runs = int(execs[-1]) if execs else (int(stats[-1][0]) if stats else 0)
        cov, ft = (int(stats[-1][1]), int(stats[-1][2])) if stats else (0, 0)
        status = "ok" if result.returncode == 0 else f"FAILED (exit {result.returncode})"
        print(
            f"{name:<15} {elapsed:>7.0f} {runs:>11} {runs / max(elapsed, 1e-9):>7.0f}"
            f" {cov:>6} {ft:>6}  {status}"
        )
        if result.returncode != 0:
            failed += 1
            sys.stdout.write(result.stderr.decode("utf-8", "replace")[-4000:])
    return 1 if failed else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("target", nargs="?", help="harness name (see --list)")
    parser.add_argument("--all", action="store_true", help="run every harness in turn")
    parser.add_argument("--list", action="store_true", help="list the harnesses")
    parser.add_argument("--seconds", type=int, default=60, help="run time per harness")
    parser.add_argument("--artifacts", type=Path, default=ROOT / ".dijk" / "fuzz")
    parser.add_argument("libfuzzer", nargs="*", help="extra libFuzzer flags after --")
    options = parser.parse_args()
    os.environ.setdefault("DIJK_CORPORA", str(ROOT.parent / "shared" / "corpora"))
    if options.list:
        from fuzz.targets import TARGETS

        for name, target in TARGETS.items():
            print(f"{name:<15} {target.description}")
        return 0
    if options.all:
        return run_all(_names(), options.seconds, options.artifacts)
    if not options.target:
        parser.error("name a harness, or give --all or --list")
    return run_one(options.target, options.seconds, options.artifacts, options.libfuzzer)


if __name__ == "__main__":
    raise SystemExit(main())
