"""Network policy: IP allow/deny (v4 and v6), internal-only routes, countries (offline)."""

from __future__ import annotations

from typing import Any

import pytest
from iptocc import country_code

from dijk.config.models import NetworkConfig, RouteConfig
from dijk.stages.network import IpSet, NetworkStage, client_address, needs_network_stage
from tests.unit.test_jwt_advisories import context

# Addresses whose registry country is stable: Google DNS (US), SURF/NL ranges (NL).
US = "8.8.8.8"
US6 = "2001:4860:4860::8888"
NL = "145.97.39.155"


def route(**fields: Any) -> RouteConfig:
    return RouteConfig(name="r", match={"path_prefix": "/"}, upstream="u", **fields)


async def verdict(policy: dict[str, Any], client_ip: str, **route_fields: Any) -> str | None:
    stage = NetworkStage(NetworkConfig(**policy), route(**route_fields))
    ctx = context()
    ctx.client_ip = client_ip
    decision = await stage.request_headers(ctx)
    if decision is None:
        return None
    assert decision.status == 403
    assert client_ip not in decision.detail
    return decision.reason


def test_the_offline_database_knows_these_countries() -> None:
    assert country_code(US) == "US"
    assert country_code(US6) == "US"
    assert country_code(NL) == "NL"
    assert country_code("10.1.2.3") is None


def test_ip_set_matches_v4_and_v6_cidrs() -> None:
    cidrs = IpSet(["10.0.0.0/8", "192.168.1.7/32", "fd00::/8"])
    for inside in ("10.255.0.1", "192.168.1.7", "fd12::1"):
        assert client_address(inside) in cidrs
    for outside in ("11.0.0.1", "192.168.1.8", "fe80::1", "::1"):
        assert client_address(outside) not in cidrs


def test_ipv4_mapped_ipv6_is_treated_as_ipv4() -> None:
    assert client_address("::ffff:10.1.2.3") == client_address("10.1.2.3")


async def test_global_deny_wins_over_allow() -> None:
    network = {"ip_allow": ["10.0.0.0/8"], "ip_deny": ["10.6.6.0/24"]}
    assert await verdict(network, "10.1.1.1") is None
    assert await verdict(network, "10.6.6.6") == "net.denied"
    assert await verdict(network, "11.1.1.1") == "net.denied"


async def test_route_rules_apply_on_top_of_global_ones() -> None:
    assert await verdict({}, "2001:db8::5", ip_deny=["2001:db8::/32"]) == "net.denied"
    assert await verdict({}, "2001:db9::5", ip_deny=["2001:db8::/32"]) is None
    assert await verdict({}, "10.0.0.1", ip_allow=["192.0.2.0/24"]) == "net.denied"
    assert await verdict({"ip_deny": ["192.0.2.9/32"]}, "192.0.2.9", ip_allow=["192.0.2.0/24"])


async def test_internal_route_only_from_internal_networks() -> None:
    network = {"internal_networks": ["10.0.0.0/8", "fd00::/8"]}
    assert await verdict(network, "10.2.3.4", network="internal") is None
    assert await verdict(network, "fd00::7", network="internal") is None
    assert await verdict(network, US, network="internal") == "net.denied"
    assert await verdict(network, "127.0.0.1", network="internal") == "net.denied"


async def test_country_deny_and_allow() -> None:
    assert await verdict({"countries_deny": ["US"]}, US) == "net.denied"
    assert await verdict({"countries_deny": ["US"]}, US6) == "net.denied"
    assert await verdict({"countries_deny": ["US"]}, NL) is None
    assert await verdict({}, US, countries_allow=["NL", "BE"]) == "net.denied"
    assert await verdict({}, NL, countries_allow=["nl"]) is None


async def test_unknown_country_fails_closed_on_an_allow_list() -> None:
    assert await verdict({}, "192.0.2.1", countries_allow=["NL"]) == "net.denied"


async def test_internal_callers_are_exempt_from_country_rules() -> None:
    network = {"internal_networks": ["10.0.0.0/8"], "countries_allow": ["NL"]}
    assert await verdict(network, "10.0.0.1") is None


async def test_a_client_address_that_is_not_an_ip_is_refused() -> None:
    assert await verdict({"ip_deny": ["192.0.2.0/24"]}, "unix-socket") == "net.denied"


def test_routes_without_rules_get_no_network_stage() -> None:
    assert not needs_network_stage(NetworkConfig(internal_networks=["10.0.0.0/8"]), route())
    assert needs_network_stage(NetworkConfig(), route(network="internal"))
    assert needs_network_stage(NetworkConfig(countries_deny=["KP"]), route())


@pytest.mark.parametrize(
    "fields",
    [{"ip_allow": ["10.0.0.300/8"]}, {"countries_deny": ["Netherlands"]}, {"ip_deny": ["x"]}],
)
def test_bad_network_configuration_is_refused(fields: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=r"not an IP network|country code"):
        NetworkConfig(**fields)
