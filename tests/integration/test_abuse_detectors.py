"""Each abuse detector over each backend (memory://, redis://): counts, findings, incidents."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest

from dijk.abuse.resources import AbuseResources, network_of
from dijk.abuse.settings import (
    AbuseSettings,
    CredentialStuffingSettings,
    EnumerationSettings,
    ScanningSettings,
    TokenMisuseSettings,
)
from dijk.abuse.signals import (
    Facts,
    Finding,
    Plan,
    credential_stuffing,
    enumeration,
    scanner_fingerprint,
    scanning,
    token_misuse,
)
from dijk.abuse.store import Kind, Op
from tests.conftest import require_service
from tests.support.redis import REDIS_URL, redis_reachable

# The start of a 150 s slice (600 s windows in 4 slices): tests stay inside one slice.
T0 = 1_800_000_000.0 - (1_800_000_000.0 % 150) + 1


def _resources(url: str) -> AbuseResources:
    prefix = f"dijk-test:{uuid.uuid4().hex[:12]}:"
    settings = AbuseSettings(key_prefix=prefix)
    resources = AbuseResources(settings, url, 2.0)
    resources.acquire()
    return resources


@pytest.fixture(params=["memory", "redis"])
async def backend(request: pytest.FixtureRequest) -> AsyncIterator[str]:
    if request.param == "redis":
        require_service(await redis_reachable(), f"Redis is not reachable at {REDIS_URL}")
        yield REDIS_URL
    else:
        yield "memory://"


@pytest.fixture
async def resources(backend: str) -> AsyncIterator[AbuseResources]:
    made = _resources(backend)
    yield made
    await made.release()


def login(ip: str, user: str, outcome: str = "failure", now: float = T0) -> Facts:
    return Facts(
        now=now,
        route="login",
        template="/login",
        client_ip=ip,
        network=network_of(ip, 24, 48),
        country=None,
        status=401 if outcome == "failure" else 200,
        method="POST",
        path="/login",
        username=user,
        login=outcome,
    )


async def run(resources: AbuseResources, planned: object, now: float = T0) -> list[Finding]:
    plan = Plan()
    assert planned is not None
    plan.add(*planned)  # type: ignore[misc]
    return await resources.observe(plan, now)


def spread_address(n: int) -> str:
    """A different public /24 for every n."""
    return f"{23 + n % 150}.{(n * 7) % 250}.{n % 251}.{1 + n % 200}"


# -- credential stuffing ---------------------------------------------------------------------

STUFFING = CredentialStuffingSettings(action="block")


async def test_stuffing_from_many_addresses_is_found_route_wide(
    resources: AbuseResources,
) -> None:
    found: list[Finding] = []
    first = None
    for n in range(40):
        facts = login(spread_address(n), f"user{n}", now=T0 + n)
        found = await run(
            resources, credential_stuffing(facts, STUFFING, resources.prefix), facts.now
        )
        if any(item.signal == "failed_accounts" for item in found):
            first = n
            break
    assert first is not None
    assert 18 <= first <= 22
    finding = next(item for item in found if item.signal == "failed_accounts")
    assert finding.subject == "route:login"
    assert finding.unless_known
    assert "accounts tried from" in finding.detail
    assert "baseline 3" in finding.detail


async def test_normal_logins_with_typos_find_nothing(resources: AbuseResources) -> None:
    for n in range(60):
        user = f"user{n % 30}"
        ip = spread_address(n % 30)
        outcome = "failure" if n % 10 == 0 else "success"
        facts = login(ip, user, outcome, now=T0 + n)
        assert await run(resources, credential_stuffing(facts, STUFFING, resources.prefix)) == []


async def test_many_accounts_from_one_address_are_found(resources: AbuseResources) -> None:
    found: list[Finding] = []
    for n in range(7):
        facts = login("203.0.113.7", f"user{n}", now=T0 + n)
        found = await run(resources, credential_stuffing(facts, STUFFING, resources.prefix))
    assert [item.signal for item in found] == ["accounts_per_address"]
    assert found[0].subject == "ip:203.0.113.7"


async def test_many_accounts_from_one_network_are_found(resources: AbuseResources) -> None:
    found: list[Finding] = []
    for n in range(12):
        facts = login(f"198.51.100.{n + 1}", f"user{n}", now=T0 + n)
        found = await run(resources, credential_stuffing(facts, STUFFING, resources.prefix))
    assert [item.signal for item in found] == ["accounts_per_network"]
    assert found[0].subject == "net:198.51.100.0/24"


async def test_one_account_failing_from_many_addresses_is_found(
    resources: AbuseResources,
) -> None:
    found: list[Finding] = []
    for n in range(11):
        facts = login(spread_address(n), "anne", now=T0 + n)
        found = await run(resources, credential_stuffing(facts, STUFFING, resources.prefix))
    assert "addresses_per_account" in [item.signal for item in found]


async def test_success_after_many_failures_from_a_new_network_is_a_takeover(
    resources: AbuseResources,
) -> None:
    settings = CredentialStuffingSettings(max_addresses_per_account=100)
    for n in range(10):
        facts = login(spread_address(n), "bob", now=T0 + n)
        await run(resources, credential_stuffing(facts, settings, resources.prefix))
    facts = login("192.0.2.50", "bob", "success", now=T0 + 20)
    found = await run(resources, credential_stuffing(facts, settings, resources.prefix))
    assert [item.signal for item in found] == ["success_after_failures"]


async def test_a_known_network_logging_in_after_failures_is_not_a_takeover(
    resources: AbuseResources,
) -> None:
    settings = CredentialStuffingSettings(max_addresses_per_account=100)
    home = login("192.0.2.50", "bob", "success", now=T0)
    assert await run(resources, credential_stuffing(home, settings, resources.prefix)) == []
    for n in range(12):
        facts = login(spread_address(n), "bob", now=T0 + n)
        await run(resources, credential_stuffing(facts, settings, resources.prefix))
    again = login("192.0.2.51", "bob", "success", now=T0 + 30)  # same /24
    assert await run(resources, credential_stuffing(again, settings, resources.prefix)) == []


# -- enumeration ------------------------------------------------------------------------------

ENUMERATION = EnumerationSettings(action="block")


def read(object_id: str, credential: str = "key:aa", status: int = 200, now: float = T0) -> Facts:
    return Facts(
        now=now,
        route="account",
        template="/accounts/{id}",
        client_ip="192.0.2.1",
        network="192.0.2.0/24",
        country=None,
        status=status,
        credential=credential,
        object_id=object_id,
    )


async def test_a_sequential_walk_is_found_at_the_configured_run(
    resources: AbuseResources,
) -> None:
    for n in range(1, 30):
        facts = read(str(n), now=T0 + n)
        found = await run(resources, enumeration(facts, ENUMERATION, resources.prefix))
        if found:
            break
    assert n == ENUMERATION.sequential_run
    assert found[0].signal == "sequential_walk"
    assert found[0].subject == "cred:key:aa"
    assert "one after another" in found[0].detail


async def test_a_random_walk_is_found_by_its_distinct_ids(resources: AbuseResources) -> None:
    ids = [str(7 + n * 37 % 9973) for n in range(80)]
    for n, object_id in enumerate(ids):
        facts = read(object_id, now=T0 + n)
        found = await run(resources, enumeration(facts, ENUMERATION, resources.prefix))
        if found:
            break
    assert found
    assert found[0].signal in {"distinct_ids", "misses"}
    assert n <= ENUMERATION.max_distinct_ids + 3


async def test_guessing_ids_that_do_not_exist_is_found_by_misses(
    resources: AbuseResources,
) -> None:
    found: list[Finding] = []
    for n in range(25):
        facts = read(f"{1000 + n * 13}", status=404, now=T0 + n)
        found = await run(resources, enumeration(facts, ENUMERATION, resources.prefix))
        if found:
            break
    assert found
    assert found[0].signal == "misses"


async def test_reading_the_same_five_accounts_again_and_again_is_not_enumeration(
    resources: AbuseResources,
) -> None:
    for n in range(200):
        facts = read(str(1 + n % 5), now=T0 + n / 2)
        assert await run(resources, enumeration(facts, ENUMERATION, resources.prefix)) == []


# -- token misuse -----------------------------------------------------------------------------

MISUSE = TokenMisuseSettings(action="monitor")


def use(ip: str, country: str | None, agent: str = "app/1.0", now: float = T0) -> Facts:
    return Facts(
        now=now,
        route="account",
        template="/accounts/{id}",
        client_ip=ip,
        network=network_of(ip, 24, 48),
        country=country,
        status=200,
        credential="key:bb",
        user_agent=agent,
    )


async def test_one_key_from_four_countries_is_token_misuse(resources: AbuseResources) -> None:
    places = [("81.2.69.142", "GB"), ("8.8.8.8", "US"), ("145.1.1.1", "NL"), ("133.1.1.1", "JP")]
    settings = TokenMisuseSettings(travel_s=0)
    found: list[Finding] = []
    for n, (ip, country) in enumerate(places):
        found = await run(
            resources, token_misuse(use(ip, country, now=T0 + n * 10), settings, resources.prefix)
        )
        if n < 2:
            assert found == []
    assert [item.signal for item in found] == ["countries"]
    assert "4 countries (GB, US, NL, JP)" in found[0].detail


async def test_a_second_country_within_minutes_is_impossible_travel(
    resources: AbuseResources,
) -> None:
    await run(resources, token_misuse(use("145.1.1.1", "NL"), MISUSE, resources.prefix))
    found = await run(
        resources, token_misuse(use("133.1.1.1", "JP", now=T0 + 42), MISUSE, resources.prefix)
    )
    assert [item.signal for item in found] == ["impossible_travel"]
    assert "JP 42 s after NL" in found[0].detail


async def test_user_agent_churn_on_one_key_is_found(resources: AbuseResources) -> None:
    found: list[Finding] = []
    for n in range(12):
        facts = use("192.0.2.1", None, agent=f"client/{n}", now=T0 + n)
        found = await run(resources, token_misuse(facts, MISUSE, resources.prefix))
    assert [item.signal for item in found] == ["user_agents"]


# -- scanning ---------------------------------------------------------------------------------

SCAN = ScanningSettings(action="block")


async def test_a_burst_of_404_from_one_address_is_scanning(resources: AbuseResources) -> None:
    found: list[Finding] = []
    for n in range(60):
        facts = Facts(
            now=T0 + n / 100,
            route="",
            template="",
            client_ip="198.51.100.9",
            network="198.51.100.0/24",
            country=None,
            status=404,
            path=f"/guess{n}",
        )
        found = await run(resources, scanning(facts, SCAN, resources.prefix), facts.now)
        if found:
            break
    assert n == SCAN.max_errors
    assert found[0].subject == "ip:198.51.100.9"
    assert found[0].scope == "*"
    assert f"on {SCAN.max_errors + 1} different paths" in found[0].detail


def test_successful_answers_are_not_counted_as_probing() -> None:
    facts = Facts(T0, "r", "/", "192.0.2.1", "192.0.2.0/24", None, 200)
    assert scanning(facts, SCAN, "p:") is None


def test_scanner_user_agents_are_recognised() -> None:
    assert scanner_fingerprint("sqlmap/1.7.2#stable (https://sqlmap.org)") == "sqlmap"
    assert scanner_fingerprint("Mozilla/5.0 (compatible; Nuclei - Open-source project)") == "nuclei"
    assert scanner_fingerprint("Mozilla/5.0 (X11; Linux x86_64) Firefox/120.0") is None


# -- incidents --------------------------------------------------------------------------------


async def test_an_incident_opened_on_one_instance_is_enforced_by_another(backend: str) -> None:
    first = _resources(backend)
    second = AbuseResources(first.settings, backend, 2.0)
    second.acquire()
    try:
        finding = Finding("abuse.scanning", "errors", "ip:192.0.2.9", "*", "51 answers.")
        opened = await first.open(finding, "block", 60, 10, T0)
        assert opened is not None
        assert await first.open(finding, "block", 60, 10, T0) is None  # already open
        await second.observe(Plan(), T0 + 1)
        seen = second.book.active("ip:192.0.2.9", "login", T0 + 1)
        assert seen is not None
        assert seen.id == opened.id
        assert await second.lift(opened.id)
        await first.observe(Plan(), T0 + 2)
        assert first.book.active("ip:192.0.2.9", "login", T0 + 2) is None
    finally:
        await second.release()
        await first.release()


async def test_remembered_pairs_are_known_until_they_expire(resources: AbuseResources) -> None:
    key = resources.prefix + "known-test"
    batch = await resources.store.run(
        [Op(Kind.KNOWN, key), Op(Kind.REMEMBER, key, "1", 60), Op(Kind.KNOWN, key)], 0, T0
    )
    assert batch.results == [0, 1, 1]


def test_config_refuses_detectors_their_route_cannot_feed() -> None:
    from dijk.config import ConfigError, load_config_text

    text = """
version: 1
upstreams: {u: {url: "http://127.0.0.1:9"}}
routes:
  - name: r
    match: {path_prefix: /}
    upstream: u
    abuse:
      enumeration: {action: block}
      token_misuse: {}
"""
    with pytest.raises(ConfigError) as raised:
        load_config_text(text, "abuse.yaml")
    message = str(raised.value)
    assert "abuse.yaml:9: routes[0].abuse.enumeration: needs a match.path_template" in message
    assert "abuse.yaml:10: routes[0].abuse.token_misuse: needs a route with auth" in message
