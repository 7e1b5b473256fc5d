"""Short chaos cases (bench/chaos.py): faults under load, against a real gateway process.

The cases that take seconds run here; ``python -m bench.chaos`` runs all of them with
10 s outages (Redis and PostgreSQL outages are also covered by test_readiness.py and the
integration suites). Each asserts that clients saw what the policy promised, nothing
hung, the gateway recovered, and the audit log verifies with one record per response.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from bench.chaos import case_sighup, case_sigkill, case_upstream


@pytest.mark.slow
def test_upstream_hang_reset_and_garbage_are_504_and_502_problems(tmp_path: Path) -> None:
    result = case_upstream(tmp_path, outage=3.0, rate=15.0)
    assert result.ok, (result.problems, result.figures)


@pytest.mark.slow
def test_sigkill_in_strict_mode_loses_no_answered_request(tmp_path: Path) -> None:
    result = case_sigkill(tmp_path, outage=3.0, rate=15.0)
    assert result.ok, (result.problems, result.figures)
    assert result.figures["lost"] == 0


@pytest.mark.slow
def test_reloads_alternating_valid_and_broken_configs_fail_no_request(tmp_path: Path) -> None:
    result = case_sighup(tmp_path, outage=3.0, rate=15.0, reloads=30)
    assert result.ok, (result.problems, result.figures)
