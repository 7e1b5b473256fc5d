"""Each coverage-guided harness runs for a couple of seconds (``make fuzz`` runs them long).

A harness that crashes, or finds a crash, fails here with the libFuzzer output. Without
atheris (a platform without its wheels) every seed still goes through the target.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
from pathlib import Path

import pytest

from fuzz.run import harness_command
from fuzz.targets import TARGETS
from tests.conftest import CORPORA

ROOT = Path(__file__).resolve().parents[2]
SECONDS = 2


@pytest.mark.parametrize("name", sorted(TARGETS))
def test_harness_runs_clean_for_a_few_seconds(name: str, tmp_path: Path) -> None:
    if importlib.util.find_spec("atheris") is None:
        for seed in TARGETS[name].seeds():
            TARGETS[name].one_input(seed)
        pytest.skip("atheris is not installed: the seeds ran, no coverage-guided run")
    result = subprocess.run(
        harness_command(name, SECONDS, tmp_path),
        cwd=ROOT,
        capture_output=True,
        env={**os.environ, "DIJK_CORPORA": str(CORPORA)},
        timeout=120,
        check=False,
    )
    output = result.stderr.decode("utf-8", "replace")
    assert result.returncode == 0, output[-4000:]
    assert "DONE" in output
    assert not list(tmp_path.iterdir()), "a crash input was written"
