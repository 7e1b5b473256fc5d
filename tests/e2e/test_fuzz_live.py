"""Live fuzzing of the running demo (bench/fuzz_live.py), short: a few thousand requests.

``python -m bench.fuzz_live`` (``make fuzz-live``) sends 10**6. Here the same grammar runs
for at most 45 s against a real ``dijk demo`` whose upstream logs every request it
receives, and the run must stay inside the contract: the gateway alive, every refusal a
problem document with a known reason, no undocumented 5xx, nothing refused reaching the
upstream and nothing reaching it that the client did not get an answer for.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from bench.fuzz_live import Case, Outcome, Response, check_contract, known_reasons, run, send

from tests.support.demo import start_demo

SEED = int(os.environ.get("FUZZ_SEED", "20261207"))


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_generated_and_mutated_requests_stay_inside_the_contract(tmp_path: Path) -> None:
    result = run(count=3000, max_seconds=45, seed=SEED, concurrency=8, data_dir=tmp_path)
    assert result["alive"], result
    assert result["violations"] == [], result["violations"][:5]  # type: ignore[index]
    assert result["refused_but_forwarded"] == []
    assert result["forwarded_without_answer"] == []
    assert result["no_answer"] == 0
    # Not vacuous: requests of every shape went out, some reached the upstream, and the
    # refusals came from many different checks.
    kinds = result["kinds"]
    assert isinstance(kinds, dict)
    assert set(kinds) == {"valid", "smuggling", "headers", "mutated", "pipelined"}
    assert int(str(result["forwarded"])) > 50
    reasons = result["reasons"]
    assert isinstance(reasons, dict)
    assert len(reasons) >= 15
    # Memory after the warm-up: a short run is noisy, so the margin is wider than the
    # bench's 5 %; a leak per request would still show.
    assert float(str(result["rss_growth"])) < 0.10, result["rss_samples"]


def test_a_refusal_that_is_not_a_problem_document_is_reported() -> None:
    case = Case("valid", b"GET / HTTP/1.1\r\n\r\n", True)
    outcome = Outcome()
    plain = Response(400, {"content-type": "text/plain", "x-request-id": "a"}, b"bad")
    unknown = Response(
        403,
        {"content-type": "application/problem+json", "x-request-id": "b"},
        json.dumps({"status": 403, "reason": "made.up", "request_id": "b"}).encode(),
    )
    server_error = Response(
        500,
        {"content-type": "application/problem+json", "x-request-id": "c"},
        json.dumps({"status": 500, "reason": "gateway.internal_error", "request_id": "c"}).encode(),
    )
    outcome.gateway_answers = [("a", plain, case), ("b", unknown, case), ("c", server_error, case)]
    check_contract(outcome, forwarded=set(), reasons=known_reasons())
    assert [v["what"] for v in outcome.violations] == [
        "refusal is not problem+json",
        "unknown reason",
        "undocumented 5xx",
    ]
    assert outcome.refused_ids == {"a", "b", "c"}


def test_known_reasons_come_from_the_source() -> None:
    reasons = known_reasons()
    assert {"http.malformed", "route.not_found", "auth.invalid_key", "waf.sqli"} <= reasons
    assert "made.up" not in reasons


@pytest.mark.slow
def test_demo_upstream_accepts_every_header_the_gateway_lets_through(tmp_path: Path) -> None:
    # Found by the live fuzzer: a 9-16 KiB header passed the gateway's limit
    # (max_header_bytes 16 KiB) and the demo upstream answered it with aiohttp's
    # plain-text 400 "Got more than 8190 bytes", not JSON and not logged.
    log = tmp_path / "received.jsonl"
    demo = start_demo(tmp_path / ".dijk", extra_env={"DIJK_DEMO_UPSTREAM_LOG": str(log)})
    try:
        big = "a" * 12_000
        request = (
            f"GET /api/v1/status HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: {big}\r\n"
            "Connection: close\r\n\r\n"
        ).encode()
        responses, failure = send(demo.port, request)
    finally:
        demo.stop()
    assert not failure
    assert len(responses) == 1
    assert responses[0].status == 200, responses[0].body[:300]
    assert json.loads(responses[0].body)["status"] == "ok"
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    assert [(line["method"], line["path"]) for line in lines] == [("GET", "/api/v1/status")]
    # The upstream's log names the gateway's request id: what the fuzzer matches verdicts by.
    assert lines[0]["request_id"] == responses[0].headers["x-request-id"]
    assert lines[0]["body_len"] == 0
