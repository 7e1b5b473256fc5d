"""Abuse detection through real `dijk serve` processes: scanning, throttling, alerts, and
three instances sharing one Redis."""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from tests.conftest import require_service
from tests.e2e.test_ratelimit_gateway import call
from tests.support.gateway import GatewayProcess, base_config, free_port
from tests.support.redis import REDIS_URL, redis_up
from tests.support.upstream import RecordingUpstream

KEY = "abuse-gateway-key-0123456789"


def abuse_config(upstream: RecordingUpstream, **abuse: Any) -> dict[str, Any]:
    config = base_config(upstream.port)
    config["trusted_proxies"] = ["127.0.0.1/32"]
    config["auth"] = {"api_key": {"header": "X-API-Key"}}
    config["consumers"] = [
        {"name": "client", "api_keys": [{"sha256": hashlib.sha256(KEY.encode()).hexdigest()}]}
    ]
    config["abuse"] = {"key_prefix": f"abuse{uuid.uuid4().hex[:12]}:", **abuse}
    config["routes"] = [
        {"name": "public", "match": {"path": "/public"}, "upstream": "echo"},
        {
            "name": "item",
            "match": {"path_template": "/items/{id}"},
            "upstream": "echo",
            "auth": ["api_key"],
        },
        {
            "name": "private",
            "match": {"path_prefix": "/private"},
            "upstream": "echo",
            "auth": ["api_key"],
        },
    ]
    return config


def test_thousands_of_path_guesses_are_blocked_on_every_path(
    start_gateway: Callable[..., GatewayProcess], recording: RecordingUpstream
) -> None:
    gateway = start_gateway(abuse_config(recording, scanning={"action": "block"}))
    scanner = {"X-Forwarded-For": "198.51.100.23"}
    statuses = [call(gateway.port, f"/guess/{n}.php", headers=scanner)[0] for n in range(120)]
    first = statuses.index(403)
    assert statuses[:first] == [404] * first
    assert first == 51  # max_errors: 50 in window_s
    assert set(statuses[first:]) == {403}
    # The same answer on a route that exists and needs a key: nothing to tell paths apart.
    for path in ("/private/x", "/public", "/guess/again"):
        status, headers, body = call(gateway.port, path, headers=scanner)
        assert status == 403, path
        problem = json.loads(body)
        assert problem["reason"] == "abuse.scanning"
        assert "different paths" in problem["detail"]
        assert int(headers["retry-after"]) > 0
    # Anyone else is unaffected.
    assert call(gateway.port, "/public", headers={"X-Forwarded-For": "198.51.100.24"})[0] == 200


def test_a_throttled_key_keeps_a_few_requests_a_minute(
    start_gateway: Callable[..., GatewayProcess], recording: RecordingUpstream
) -> None:
    config = abuse_config(recording)
    config["routes"][1]["abuse"] = {
        "enumeration": {"action": "throttle", "throttle_per_minute": 5, "sequential_run": 10}
    }
    gateway = start_gateway(config)
    keyed = {"X-API-Key": KEY}
    statuses = [call(gateway.port, f"/items/{n}", headers=keyed)[0] for n in range(1, 40)]
    # Ten in a row are the walk; then five more a minute pass, the rest wait.
    assert statuses[:15] == [200] * 15
    assert set(statuses[15:]) == {429}
    status, headers, body = call(gateway.port, "/items/1", headers=keyed)
    assert status == 429
    assert json.loads(body)["reason"] == "abuse.enumeration"
    assert 1 <= int(headers["retry-after"]) <= 60


def test_an_incident_is_posted_to_the_alert_webhook(
    start_gateway: Callable[..., GatewayProcess], recording: RecordingUpstream
) -> None:
    config = abuse_config(recording, scanning={"action": "monitor", "max_errors": 5})
    config["alerts"] = {"webhook": {"url": f"http://127.0.0.1:{recording.port}/hook"}}
    gateway = start_gateway(config)
    for n in range(8):
        assert (
            call(gateway.port, f"/nothing/{n}", headers={"X-Forwarded-For": "192.0.2.77"})[0] == 404
        )
    deadline = time.monotonic() + 10
    posted: list[Any] = []
    while time.monotonic() < deadline and not posted:
        posted = [item for item in recording.requests if item.target == "/hook"]
        time.sleep(0.1)
    assert len(posted) == 1  # one incident, one alert (not one per request)
    body = json.loads(posted[0].body)
    assert body["type"] == "dijk.abuse"
    assert body["incident"]["reason"] == "abuse.scanning"
    assert body["incident"]["subject"] == "ip:192.0.2.77"
    assert body["incident"]["action"] == "monitor"


@pytest.mark.redis
def test_three_instances_count_together_and_enforce_each_others_incidents(
    start_gateway: Callable[..., GatewayProcess], recording: RecordingUpstream
) -> None:
    require_service(redis_up(), f"Redis is not reachable at {REDIS_URL}")
    prefix = f"abuse{uuid.uuid4().hex[:12]}:"
    gateways = []
    for _ in range(3):
        config = abuse_config(recording, scanning={"action": "block"})
        config["listen"]["port"], config["admin"]["port"] = free_port(), free_port()
        config["storage"] = {"url": REDIS_URL, "timeout_s": 1.0}
        config["abuse"]["key_prefix"] = prefix
        gateways.append(start_gateway(config))
    scanner = {"X-Forwarded-For": "203.0.113.99"}
    statuses = [call(gateways[n % 3].port, f"/guess/{n}", headers=scanner)[0] for n in range(90)]
    first = statuses.index(403)
    # Counted across instances: found at the 51st error, as on one instance (not at the
    # 153rd); the two other instances learn of it with their next answer at the latest.
    assert 51 <= first <= 53, statuses
    assert statuses[first:] == [403] * (90 - first)
