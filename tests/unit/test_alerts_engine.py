"""Alert rules over audit records: pure counting with the clock passed in."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from dijk.alerts.engine import AlertEngine
from dijk.alerts.settings import AlertSettings
from dijk.audit.record import AuditRecord

WEBHOOK = {"url": "http://127.0.0.1:1/hook"}


def engine(*rules: dict[str, object], **extra: object) -> AlertEngine:
    return AlertEngine(
        AlertSettings.model_validate({"webhook": WEBHOOK, "rules": list(rules), **extra})
    )


def denial(
    reason: str, ip: str = "ip-a", consumer: str | None = None, number: int = 0
) -> AuditRecord:
    return AuditRecord(
        time=datetime.now(UTC),
        request_id=f"r{number}",
        method="GET",
        status=403,
        decision="deny",
        reason=reason,
        client_ip=ip,
        consumer=consumer,
    )


def test_fires_when_more_than_threshold_denials_fall_in_the_window() -> None:
    alerts = engine({"name": "waf", "reasons": ["waf.*"], "threshold": 3, "window_s": 60})
    fired = [alerts.observe(denial("waf.sqli", number=n), now=float(n)) for n in range(4)]
    assert [len(batch) for batch in fired] == [0, 0, 0, 1]
    alert = fired[-1][0]
    assert (alert.rule, alert.per, alert.key, alert.count) == ("waf", "client_ip", "ip-a", 4)
    assert alert.reasons == {"waf.sqli": 4}
    assert alert.request_ids == ("r0", "r1", "r2", "r3")
    payload = alert.payload()
    assert payload["type"] == "dijk.alert"
    assert "client_ip" not in payload


def test_denials_spread_wider_than_the_window_do_not_fire() -> None:
    alerts = engine({"name": "waf", "reasons": ["waf.*"], "threshold": 2, "window_s": 10})
    assert all(not alerts.observe(denial("waf.xss"), now=n * 6.0) for n in range(10))


def test_cooldown_keeps_a_key_quiet_and_keys_are_counted_apart() -> None:
    alerts = engine(
        {"name": "auth", "reasons": ["auth.*"], "threshold": 1, "window_s": 60, "cooldown_s": 100}
    )
    assert not alerts.observe(denial("auth.invalid_key"), now=0)
    assert alerts.observe(denial("auth.invalid_key"), now=1)
    assert not alerts.observe(denial("auth.invalid_key"), now=2)
    assert not alerts.observe(denial("auth.invalid_key"), now=3)
    assert not alerts.observe(denial("auth.invalid_key", ip="ip-b"), now=4)
    assert alerts.observe(denial("auth.invalid_key", ip="ip-b"), now=5)
    assert not alerts.observe(denial("auth.invalid_key"), now=99)
    assert alerts.observe(denial("auth.invalid_key"), now=102)


def test_only_matching_reasons_and_decisions_count() -> None:
    alerts = engine({"name": "exact", "reasons": ["auth.invalid_token"], "threshold": 1})
    assert not alerts.observe(denial("auth.invalid_key"), now=0)
    assert not alerts.observe(denial("authx.invalid_token"), now=0)
    allowed = AuditRecord(
        time=datetime.now(UTC),
        request_id="a",
        method="GET",
        status=200,
        decision="allow",
        reason="auth.invalid_token",
        client_ip="ip-a",
    )
    assert not alerts.observe(allowed, now=0)
    assert not alerts.observe(denial("auth.invalid_token"), now=1)
    assert alerts.observe(denial("auth.invalid_token"), now=2)


def test_per_consumer_ignores_anonymous_requests_and_the_raw_ip_is_opt_in() -> None:
    alerts = engine({"name": "c", "reasons": ["*"], "per": "consumer", "threshold": 1})
    assert not alerts.observe(denial("waf.sqli"), now=0)
    assert not alerts.observe(denial("waf.sqli"), now=0)
    assert not alerts.observe(denial("waf.sqli", consumer="bob"), now=0)
    [alert] = alerts.observe(denial("waf.sqli", consumer="bob"), now=1, raw_client_ip="1.2.3.4")
    assert alert.key == "bob"
    assert alert.client_ip is None
    with_ip = engine({"name": "i", "reasons": ["*"], "threshold": 0 + 1}, include_client_ip=True)
    with_ip.observe(denial("waf.sqli"), now=0, raw_client_ip="1.2.3.4")
    [alert] = with_ip.observe(denial("waf.sqli"), now=1, raw_client_ip="1.2.3.4")
    assert alert.payload()["client_ip"] == "1.2.3.4"


def test_tracked_keys_are_bounded() -> None:
    alerts = engine({"name": "waf", "reasons": ["waf.*"], "threshold": 1}, max_keys=100)
    for number in range(1000):
        alerts.observe(denial("waf.sqli", ip=f"ip-{number}"), now=0)
    assert len(alerts._rules[0].tracks) == 100


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"rules": [{"name": "x", "reasons": ["waf.*"], "threshold": 1}]}, "need alerts.webhook"),
        (
            {"webhook": WEBHOOK, "rules": [{"name": "x", "reasons": ["WAF*"], "threshold": 1}]},
            "reason",
        ),
        ({"webhook": {"url": "ftp://x"}}, "http"),
        (
            {
                "webhook": WEBHOOK,
                "rules": [
                    {"name": "x", "reasons": ["waf.*"], "threshold": 1},
                    {"name": "x", "reasons": ["auth.*"], "threshold": 1},
                ],
            },
            "duplicate",
        ),
    ],
)
def test_bad_alert_settings_are_rejected(settings: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        AlertSettings.model_validate(settings)
