"""Login protection: attempts per IP, failed logins per username from any IP."""

from __future__ import annotations

import gzip
import json
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from tests.e2e.test_ratelimit_gateway import call, config_with
from tests.support.gateway import GatewayProcess
from tests.support.upstream import RecordingUpstream


def login(
    port: int, username: str, ip: str, outcome: int = 401
) -> tuple[int, dict[str, str], bytes]:
    body = json.dumps({"username": username, "password": "guess"}).encode()
    return call(
        port,
        f"/status/{outcome}",
        "POST",
        {"Content-Type": "application/json", "X-Forwarded-For": ip},
        body,
    )


@pytest.fixture
def gateway(
    start_gateway: Callable[..., GatewayProcess], recording: RecordingUpstream
) -> GatewayProcess:
    guard: dict[str, Any] = {
        "ip": {"limit": 5, "per_s": 60},
        "account": {"limit": 3, "per_s": 600},
    }
    config = config_with(
        recording,
        {"match": {"path_prefix": "/status"}, "login_guard": guard},
        trusted_proxies=["127.0.0.1/32"],
    )
    return start_gateway(config)


def test_attempts_per_ip_are_limited(gateway: GatewayProcess, recording: RecordingUpstream) -> None:
    statuses = [login(gateway.port, f"user{n}", "203.0.113.7")[0] for n in range(5)]
    assert statuses == [401] * 5
    status, headers, body = login(gateway.port, "user9", "203.0.113.7")
    assert status == 429
    assert json.loads(body)["reason"] == "ratelimit.login_ip"
    assert int(headers["retry-after"]) >= 1
    assert '"login-ip";q=5;w=60' in headers["ratelimit-policy"]
    assert login(gateway.port, "user9", "203.0.113.8")[0] == 401  # another address
    assert len(recording.requests) == 6


def test_failed_logins_for_one_username_are_limited_across_many_ips(
    gateway: GatewayProcess, recording: RecordingUpstream
) -> None:
    statuses = [login(gateway.port, "anne", f"198.51.100.{n}")[0] for n in range(1, 4)]
    assert statuses == [401, 401, 401]
    # Fourth failure from yet another address, spelled differently: the same account.
    status, headers, body = login(gateway.port, " ANNE", "198.51.100.99")
    assert status == 429
    assert json.loads(body)["reason"] == "ratelimit.login_account"
    assert "retry-after" in headers
    assert len(recording.requests) == 3
    # The stored key is a digest: the username never appears in the limiter's keys.
    assert "anne" not in gateway.logs().lower()


def test_successful_logins_do_not_count_as_failures(
    gateway: GatewayProcess, recording: RecordingUpstream
) -> None:
    statuses = [login(gateway.port, "bob", f"192.0.2.{n}", outcome=200)[0] for n in range(1, 9)]
    assert statuses == [200] * 8


def test_parallel_guesses_for_one_account_admit_at_most_the_limit(
    gateway: GatewayProcess, recording: RecordingUpstream
) -> None:
    def attempt(n: int) -> int:
        return login(gateway.port, "carol", f"10.9.{n // 250}.{n % 250}")[0]

    with ThreadPoolExecutor(max_workers=16) as pool:
        statuses = Counter(pool.map(attempt, range(40)))
    assert statuses[401] == 3, statuses
    assert statuses[429] == 37, statuses
    assert len(recording.requests) == 3


@pytest.mark.parametrize("method", ["GET", "DELETE", "OPTIONS"])
def test_failed_logins_sent_with_another_method_count_for_the_account_too(
    gateway: GatewayProcess, recording: RecordingUpstream, method: str
) -> None:
    """A login upstream that also takes GET (or any method) with a body gets no free guesses."""
    body = json.dumps({"username": "dora", "password": "guess"}).encode()
    headers = {"Content-Type": "application/json"}
    statuses = [
        call(
            gateway.port,
            "/status/401",
            method,
            {**headers, "X-Forwarded-For": f"198.51.100.{n}"},
            body,
        )[0]
        for n in range(1, 5)
    ]
    assert statuses == [401, 401, 401, 429]
    assert len(recording.requests) == 3
    assert all(request.method == method for request in recording.requests)


def test_gzip_encoded_failed_logins_count_for_the_account(
    gateway: GatewayProcess, recording: RecordingUpstream
) -> None:
    """A login body sent with Content-Encoding: gzip is read decoded, as the upstream reads
    it: compressing the guesses buys no free attempts against one account."""
    body = gzip.compress(json.dumps({"username": "erik", "password": "guess"}).encode())
    headers = {"Content-Type": "application/json", "Content-Encoding": "gzip"}
    statuses = [
        call(
            gateway.port,
            "/status/401",
            "POST",
            {**headers, "X-Forwarded-For": f"198.51.100.{n}"},
            body,
        )[0]
        for n in range(1, 5)
    ]
    assert statuses == [401, 401, 401, 429]
    assert len(recording.requests) == 3
