"""What an open incident does to its subject's requests, and the instance's mirror of them."""

from __future__ import annotations

from dijk.abuse.incidents import Incident, IncidentBook, Throttle, incident_id, verdict

T0 = 1_800_000_000.0


def incident(action: str, scope: str = "*", until: float = T0 + 600) -> Incident:
    return Incident(
        id=incident_id("abuse.scanning", "ip:192.0.2.1", scope),
        reason="abuse.scanning",
        signal="errors",
        subject="ip:192.0.2.1",
        scope=scope,
        action=action,
        opened=T0,
        until=until,
        detail="51 answers 401/404/405 to one address in 1 min.",
        throttle_per_minute=2,
    )


def test_a_block_is_a_403_problem_with_retry_after_until_the_incident_ends() -> None:
    decision = verdict(incident("block"), T0 + 100, Throttle(), "k")
    assert decision is not None
    assert decision.denies
    assert decision.status == 403
    assert decision.reason == "abuse.scanning"
    assert dict(decision.headers)["Retry-After"] == "500"
    assert "Blocked for 500 s more." in decision.detail
    assert decision.extra["incident"] == incident("block").id


def test_a_throttle_lets_the_allowance_through_then_answers_429() -> None:
    throttle = Throttle()
    now = T0 - T0 % 60 + 10
    outcomes = [verdict(incident("throttle"), now + n, throttle, "k") for n in range(4)]
    assert outcomes[:2] == [None, None]
    refused = outcomes[2]
    assert refused is not None
    assert refused.status == 429
    assert 1 <= int(dict(refused.headers)["Retry-After"]) <= 60


def test_a_monitor_incident_leaves_requests_alone() -> None:
    assert verdict(incident("monitor"), T0, Throttle(), "k") is None


def test_the_mirror_finds_live_incidents_by_subject_and_scope() -> None:
    book = IncidentBook()
    book.add(incident("block", scope="login"))
    assert book.active("ip:192.0.2.1", "login", T0) is not None
    assert book.active("ip:192.0.2.1", "account", T0) is None  # another route
    assert book.active("ip:192.0.2.1", "login", T0 + 601) is None  # over
    expired = incident("block", until=T0 - 1)
    assert book.load(3, {expired.id: expired.to_json()}, T0) == [expired.id]
    assert not book
