"""The behavioural anomaly model: learns each consumer, then names what changed."""

from __future__ import annotations

import json
import random
from pathlib import Path

from dijk.abuse.anomaly import Anomaly, AnomalyModel
from dijk.abuse.settings import AnomalySettings

SETTINGS = AnomalySettings(
    interval_s=10, learning_intervals=40, consumer_learning_intervals=10, threshold=0.7
)
T0 = 1_800_000_000.0


def steady(model: AnomalyModel, consumer: str, start: float, intervals: int) -> list[Anomaly]:
    """A consumer reading its own account a few times per interval, every interval."""
    rng = random.Random(consumer)
    found: list[Anomaly] = []
    for interval in range(intervals):
        for n in range(rng.randint(3, 5)):
            now = start + interval * 10 + n
            result = model.observe(consumer, "account", 200, 900 + rng.randint(0, 100), now)
            if result is not None:
                found.append(result)
    return found


def test_steady_consumers_raise_nothing() -> None:
    model = AnomalyModel(SETTINGS)
    for consumer in ("app-a", "app-b", "app-c"):
        assert steady(model, consumer, T0, 80) == []


def test_a_consumer_behaving_unlike_itself_is_an_anomaly_that_names_why() -> None:
    model = AnomalyModel(SETTINGS)
    for consumer in ("app-a", "app-b", "app-c"):
        steady(model, consumer, T0, 60)
    start = T0 + 600
    found: list[Anomaly] = []
    for n in range(300):  # 30 requests a second to endpoints it never used
        route = "search" if n % 2 else "accounts-list"
        result = model.observe("app-a", route, 200, 40_000, start + n / 30)
        if result is not None:
            found.append(result)
    found += [r for r in [model.observe("app-a", "account", 200, 900, start + 20)] if r]
    assert found, "no anomaly"
    anomaly = found[0]
    assert anomaly.score >= SETTINGS.threshold
    assert "requests/min against" in anomaly.detail
    assert "never used before" in anomaly.detail or "bytes per answer" in anomaly.detail


def test_nothing_is_reported_during_the_learning_period() -> None:
    model = AnomalyModel(SETTINGS)
    for n in range(400):
        assert model.observe("new-app", "search", 500, 10, T0 + n / 20) is None


def test_baselines_survive_a_restart_through_the_state_file(tmp_path: Path) -> None:
    path = tmp_path / "anomaly.json"
    model = AnomalyModel(SETTINGS, path)
    steady(model, "app-a", T0, 30)
    model.save()
    saved = json.loads(path.read_text())
    assert saved["consumers"]["app-a"]["known"] == ["account"]
    assert path.stat().st_mode & 0o777 == 0o600
    again = AnomalyModel(SETTINGS, path)
    assert again._profiles["app-a"].baseline["rate"] > 0


def test_every_abuse_reason_finds_its_detector_settings() -> None:
    from dijk.abuse.settings import (
        CredentialStuffingSettings,
        EnumerationSettings,
        RouteAnomaly,
        ScanningSettings,
        TokenMisuseSettings,
    )
    from dijk.stages.abuse_observe import Detectors

    detectors = Detectors(
        scanning=ScanningSettings(action="block"),
        stuffing=CredentialStuffingSettings(),
        enumeration=EnumerationSettings(),
        token_misuse=TokenMisuseSettings(),
        anomaly=RouteAnomaly(),
    )
    for reason in (
        "abuse.scanning",
        "abuse.credential_stuffing",
        "abuse.enumeration",
        "abuse.token_misuse",
        "abuse.anomaly",
    ):
        assert detectors.settings_for(reason) is not None, reason
