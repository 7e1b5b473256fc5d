"""The behavioural anomaly model: each consumer's behaviour, interval by interval, scored by
an online model (``river``'s HalfSpaceTrees) and explained against the consumer's own
baseline.

Per request only counters move (cheap); once per ``interval_s`` per consumer, at its
first request after the interval, the interval becomes a feature vector — request rate,
error ratio, distinct endpoints, endpoints new to this consumer, mean response size, hour
of day — that the model scores, then learns from (anomalous intervals are not learnt).
Nothing is reported during the learning period (``learning_intervals`` for the model,
``consumer_learning_intervals`` for each consumer). An anomaly names the features that
moved most, with their values against the consumer's baseline (an exponentially weighted
mean of its normal intervals).

Bounded memory: the model's trees are fixed in size; at most ``max_consumers`` profiles
(least recently seen forgotten), each with a bounded set of known endpoints. Baselines
and known endpoints can be kept in a JSON file across restarts; the model itself learns
again after a restart (a pickled model would be code to trust on load). One model per
gateway instance: with several instances each learns from the traffic it sees.
"""

from __future__ import annotations

import json
import math
import os
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog

from dijk.abuse.settings import AnomalySettings

__all__ = ["Anomaly", "AnomalyModel"]

_LOG = structlog.get_logger("dijk.abuse")
_MAX_ROUTES = 64
_ALPHA = 0.1
_SETTLE = 3  # a new endpoint used in this many normal intervals becomes a known one
_FEATURES = ("rate", "errors", "endpoints", "new_endpoints", "response_bytes", "hour")


@dataclass(frozen=True, slots=True)
class Anomaly:
    score: float
    detail: str
    values: dict[str, Any]


@dataclass(slots=True)
class _Profile:
    started: float
    interval_start: float
    intervals: int = 0
    requests: int = 0
    errors: int = 0
    bytes_out: int = 0
    routes: set[str] = field(default_factory=set)
    known: set[str] = field(default_factory=set)
    # Endpoints on probation: intervals a new endpoint was used in; known after _SETTLE.
    probation: dict[str, int] = field(default_factory=dict)
    baseline: dict[str, float] = field(default_factory=dict)


class AnomalyModel:
    def __init__(self, settings: AnomalySettings, state_path: Path | None = None) -> None:
        from river.anomaly import HalfSpaceTrees  # imported only when a route uses it

        self.settings = settings
        # HalfSpaceTrees scores against its previous window of learnt intervals: the
        # learning period must cover at least one whole window.
        window = max(4, min(64, settings.learning_intervals // 2))
        self._model = HalfSpaceTrees(n_trees=10, height=8, window_size=window, seed=14)
        self._learnt = 0
        self._profiles: OrderedDict[str, _Profile] = OrderedDict()
        self._state_path = state_path
        if state_path is not None:
            self._load(state_path)

    # -- per request ----------------------------------------------------------------------
    def observe(
        self, consumer: str, route: str, status: int, bytes_out: int, now: float
    ) -> Anomaly | None:
        profiles = self._profiles
        profile = profiles.get(consumer)
        if profile is None:
            profile = profiles[consumer] = _Profile(now, now)
            if len(profiles) > self.settings.max_consumers:
                profiles.popitem(last=False)
        else:
            profiles.move_to_end(consumer)
        found = None
        if now - profile.interval_start >= self.settings.interval_s:
            found = self._close(profile, now)
        profile.requests += 1
        if status >= 400:
            profile.errors += 1
        profile.bytes_out += max(0, bytes_out)
        profile.routes.add(route)
        return found

    # -- per interval ---------------------------------------------------------------------
    def _close(self, profile: _Profile, now: float) -> Anomaly | None:
        settings = self.settings
        elapsed = max(now - profile.interval_start, settings.interval_s)
        learning = profile.intervals < settings.consumer_learning_intervals
        new = {route for route in profile.routes if route not in profile.known}
        raw = {
            "rate": profile.requests * 60 / elapsed,
            "errors": profile.errors / profile.requests if profile.requests else 0.0,
            "endpoints": float(len(profile.routes)),
            "new_endpoints": 0.0 if learning else float(len(new)),
            "response_bytes": profile.bytes_out / profile.requests if profile.requests else 0.0,
            "hour": float((now % 86_400) // 3600),
        }
        vector = _scaled(raw)
        score = float(self._model.score_one(vector))  # type: ignore[no-untyped-call]
        anomalous = (
            not learning
            and self._learnt >= settings.learning_intervals
            and score >= settings.threshold
        )
        result = None
        if anomalous:
            result = Anomaly(
                score, _explain(raw, profile.baseline, new), {"score": round(score, 3)}
            )
        else:
            self._model.learn_one(vector)  # type: ignore[no-untyped-call]
            self._learnt += 1
            _update(profile.baseline, raw)
            _settle(profile, learning)
        profile.intervals += 1
        profile.interval_start = now
        profile.requests = profile.errors = profile.bytes_out = 0
        profile.routes = set()
        return result

    # -- persistence ----------------------------------------------------------------------
    def _load(self, path: Path) -> None:
        try:
            document = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return
        except (OSError, ValueError) as exc:
            _LOG.error("abuse: anomaly state %s unreadable (%s); starting afresh", path, exc)
            return
        now = 0.0
        for consumer, saved in list(document.get("consumers", {}).items())[
            : self.settings.max_consumers
        ]:
            try:
                profile = _Profile(now, now, intervals=int(saved["intervals"]))
                profile.known = {str(route) for route in list(saved["known"])[:_MAX_ROUTES]}
                profile.baseline = {
                    key: float(value)
                    for key, value in saved["baseline"].items()
                    if key in _FEATURES
                }
            except (KeyError, TypeError, ValueError):
                continue
            self._profiles[str(consumer)] = profile

    def save(self) -> None:
        path = self._state_path
        if path is None:
            return
        document = {
            "version": 1,
            "consumers": {
                consumer: {
                    "intervals": profile.intervals,
                    "known": sorted(profile.known),
                    "baseline": profile.baseline,
                }
                for consumer, profile in self._profiles.items()
            },
        }
        temporary = path.with_suffix(".tmp")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
                json.dump(document, handle)
            temporary.replace(path)
        except OSError as exc:
            _LOG.error("abuse: anomaly state not saved to %s: %s", path, exc)

    def adopt(self, previous: AnomalyModel) -> None:
        """Keep what a previous configuration's model learnt (a reload forgets nothing)."""
        self._model = previous._model
        self._learnt = previous._learnt
        self._profiles = previous._profiles


def _settle(profile: _Profile, learning: bool) -> None:
    """Endpoints of a normal interval: known at once while the consumer is learnt, else
    after _SETTLE intervals (so one quiet-looking interval does not make them normal)."""
    for route in profile.routes:
        if route in profile.known or len(profile.known) >= _MAX_ROUTES:
            continue
        seen = profile.probation.get(route, 0) + 1
        if learning or seen >= _SETTLE:
            profile.known.add(route)
            profile.probation.pop(route, None)
        elif len(profile.probation) < _MAX_ROUTES:
            profile.probation[route] = seen


def _scaled(raw: dict[str, float]) -> dict[str, float]:
    angle = raw["hour"] / 24 * 2 * math.pi
    return {
        "rate": min(1.0, math.log1p(raw["rate"]) / math.log1p(6000)),
        "errors": min(1.0, raw["errors"]),
        "endpoints": min(1.0, raw["endpoints"] / 10),
        "new_endpoints": min(1.0, raw["new_endpoints"] / 2),
        "response_bytes": min(1.0, math.log1p(raw["response_bytes"]) / math.log1p(10 << 20)),
        "hour_sin": (math.sin(angle) + 1) / 2,
        "hour_cos": (math.cos(angle) + 1) / 2,
    }


def _update(baseline: dict[str, float], raw: dict[str, float]) -> None:
    for key, value in raw.items():
        if key == "hour":
            continue
        old = baseline.get(key)
        baseline[key] = value if old is None else old + _ALPHA * (value - old)


def _explain(raw: dict[str, float], baseline: dict[str, float], new: set[str]) -> str:
    """The features that moved most, against the consumer's usual values."""
    parts: list[tuple[float, str]] = []
    rate, usual_rate = raw["rate"], baseline.get("rate", 0.0)
    parts.append(
        (rate / max(usual_rate, 1.0), f"{rate:.0f} requests/min against {usual_rate:.0f} usual")
    )
    errors, usual_errors = raw["errors"], baseline.get("errors", 0.0)
    parts.append(
        (1 + 10 * (errors - usual_errors), f"{errors:.0%} errors against {usual_errors:.0%}")
    )
    endpoints, usual_endpoints = raw["endpoints"], baseline.get("endpoints", 0.0)
    parts.append(
        (
            endpoints / max(usual_endpoints, 1.0),
            f"{endpoints:.0f} endpoints against {usual_endpoints:.1f}",
        )
    )
    if new:
        names = ", ".join(sorted(new)[:3])
        parts.append((2.0 + len(new), f"{len(new)} endpoint(s) never used before ({names})"))
    size, usual_size = raw["response_bytes"], baseline.get("response_bytes", 0.0)
    parts.append(
        (size / max(usual_size, 100.0), f"{size:.0f} bytes per answer against {usual_size:.0f}")
    )
    parts.sort(key=lambda item: -item[0])
    return "Behaviour unlike this consumer's own: " + "; ".join(text for _, text in parts[:2]) + "."
