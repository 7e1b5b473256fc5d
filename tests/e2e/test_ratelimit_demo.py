"""The demo's rate limits as a new user meets them ("done when")."""

from __future__ import annotations

import http.client
import json
from collections import Counter

from tests.e2e import test_demo
from tests.e2e.test_demo import Demo

demo = test_demo.demo  # the same fixture: a demo process of this module's own


def test_a_burst_with_the_read_key_gets_429_with_retry_after_and_headers(demo: Demo) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", demo.port, timeout=10)
    statuses: Counter[int] = Counter()
    refusal: tuple[dict[str, str], bytes] | None = None
    try:
        for _ in range(250):
            connection.request("GET", "/api/v1/accounts", headers={"X-API-Key": demo.read_key})
            response = connection.getresponse()
            body = response.read()
            headers = {name.lower(): value for name, value in response.getheaders()}
            statuses[response.status] += 1
            if response.status == 200:
                assert '"consumer-10s";q=100;w=10' in headers["ratelimit-policy"]
                assert '"consumer-day";q=10000;w=86400' in headers["ratelimit-policy"]
                assert '"consumer-10s";r=' in headers["ratelimit"]
            elif refusal is None:
                refusal = headers, body
    finally:
        connection.close()
    assert set(statuses) == {200, 429}, statuses
    # Exactly 100 in one window; a window boundary during the burst may add a few.
    assert 100 <= statuses[200] <= 130, statuses
    assert refusal is not None
    headers, body = refusal
    assert headers["content-type"] == "application/problem+json"
    assert json.loads(body)["reason"] == "ratelimit.exceeded"
    assert 1 <= int(headers["retry-after"]) <= 20


def test_sixty_failed_logins_from_one_ip_get_429(demo: Demo) -> None:
    statuses: Counter[int] = Counter()
    reasons: Counter[str] = Counter()
    for attempt in range(60):
        body = json.dumps({"username": f"nobody{attempt}", "password": "wrong"}).encode()
        status, headers, answer = demo.call("POST", "/api/v1/login", body=body)
        statuses[status] += 1
        if status == 429:
            reasons[json.loads(answer)["reason"]] += 1
            assert int(headers["retry-after"]) >= 1
    assert statuses == Counter({401: 10, 429: 50}), statuses
    assert reasons == Counter({"ratelimit.login_ip": 50})
