"""Accuracy on held-out corpus samples (the 1-in-5 split that tuning never looked at).

The corpora live outside the repository (``../shared/corpora`` or ``DIJK_CORPORA``) and
are read at run time by the loaders of ``bench/detection.py``. Without them the test is
skipped, except under CI where a missing corpus is a failure.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from dijk.detect.engine import Detector

REPO = Path(__file__).resolve().parents[2]


def _bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "dijk_bench_detection", REPO / "bench" / "detection.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


BENCH = _bench()
CORPORA: Path = BENCH.corpora_dir()

if not CORPORA.is_dir():
    if os.environ.get("CI") == "true":
        raise RuntimeError(f"corpora missing at {CORPORA}: CI must run the accuracy tests")
    pytest.skip(f"corpora not found at {CORPORA} (set DIJK_CORPORA)", allow_module_level=True)

DETECTOR = Detector(paranoia=1)


def _held_out(samples: Iterator[object]) -> list[object]:
    return [sample for sample in samples if sample.held_out]  # type: ignore[attr-defined]


def _rate(samples: list[object]) -> float:
    blocked = sum(DETECTOR.inspect(sample.request).blocked for sample in samples)  # type: ignore[attr-defined]
    return blocked / len(samples)


@pytest.fixture(scope="module")
def held_out() -> dict[str, list[object]]:
    """Held-out samples per source, each corpus read once for the whole module."""
    gotestwaf = _held_out(BENCH.load_gotestwaf(CORPORA))
    libinjection = _held_out(BENCH.load_libinjection(CORPORA))
    payloads = [
        sample
        for sample in BENCH.load_payloads(CORPORA, quick=True)
        if sample.placement in ("query", "json3") and not BENCH.trivial(sample.payload)
    ]
    return {
        "gotestwaf": [s for s in gotestwaf if s.expect == "attack"],  # type: ignore[attr-defined]
        "libinjection": [s for s in libinjection if s.expect == "attack"],  # type: ignore[attr-defined]
        "payloadsallthethings": _held_out(iter(payloads)),
        "gotestwaf-falsepos": [s for s in gotestwaf if s.expect == "benign"],  # type: ignore[attr-defined]
        "libinjection-falsepos": [s for s in libinjection if s.expect == "benign"],  # type: ignore[attr-defined]
        "openapi": _held_out(BENCH.load_openapi_text(CORPORA)),
    }


# Floors sit a little under what the detector reaches, so that a regression fails the test.
MIN_TPR = {"gotestwaf": 0.85, "libinjection": 0.97, "payloadsallthethings": 0.91}
MAX_FPR = {"gotestwaf-falsepos": 0.02, "libinjection-falsepos": 0.03, "openapi": 0.01}


@pytest.mark.parametrize("source", sorted(MIN_TPR))
def test_held_out_attacks_are_blocked_at_paranoia_1(
    held_out: dict[str, list[object]], source: str
) -> None:
    samples = held_out[source]
    assert samples, source
    assert _rate(samples) >= MIN_TPR[source]


@pytest.mark.parametrize("source", sorted(MAX_FPR))
def test_held_out_benign_requests_pass_at_paranoia_1(
    held_out: dict[str, list[object]], source: str
) -> None:
    samples = held_out[source]
    assert samples, source
    assert _rate(samples) <= MAX_FPR[source]
