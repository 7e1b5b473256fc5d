"""Network policy (priority 8000): IP allow/deny, internal-only routes, countries → 403.

Rules come from two places and both must pass: the global ``network`` block, then the
route's own fields. Within one place, deny wins over allow:

1. ``ip_deny`` contains the client → denied;
2. ``ip_allow`` is set and does not contain the client → denied;
3. the route is ``network: internal`` and the client is not in ``internal_networks`` →
   denied (the seeds' internal vs external callers);
4. country rules, for external callers only (``internal_networks`` are exempt, and private
   or reserved addresses have no country): ``countries_deny`` contains the client's
   country → denied; ``countries_allow`` is set and the country is not in it, or unknown →
   denied (fail closed).

The client address is the one the gateway resolved (``trusted_proxies`` decide whether
``X-Forwarded-For`` counts). Countries come from ``iptocc``: Regional Internet Registry
delegation data embedded in the package, looked up in memory, never over the network.
CIDRs are compiled to integer masks at load; a request costs a parse and a few ANDs.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass
from typing import ClassVar

from iptocc import country_code

from dijk.config.models import NetworkConfig, RouteConfig
from dijk.pipeline.context import RequestContext
from dijk.pipeline.decision import Decision
from dijk.pipeline.stage import Phase, Stage

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class IpSet:
    """CIDRs compiled to (network, mask) integers per IP version."""

    __slots__ = ("_v4", "_v6")

    def __init__(self, cidrs: Iterable[str]) -> None:
        v4: list[tuple[int, int]] = []
        v6: list[tuple[int, int]] = []
        for cidr in cidrs:
            network = ipaddress.ip_network(cidr, strict=False)
            entry = (int(network.network_address), int(network.netmask))
            (v4 if network.version == 4 else v6).append(entry)
        self._v4 = tuple(v4)
        self._v6 = tuple(v6)

    def __bool__(self) -> bool:
        return bool(self._v4 or self._v6)

    def __contains__(self, address: IPAddress) -> bool:
        value = int(address)
        entries = self._v4 if address.version == 4 else self._v6
        return any(value & mask == network for network, mask in entries)


@dataclass(frozen=True, slots=True)
class Rules:
    """One place's rules (global or route), compiled."""

    allow: IpSet
    deny: IpSet
    internal_only: bool
    countries_allow: frozenset[str]
    countries_deny: frozenset[str]

    @property
    def empty(self) -> bool:
        return not (
            self.allow
            or self.deny
            or self.internal_only
            or self.countries_allow
            or self.countries_deny
        )

    @property
    def uses_countries(self) -> bool:
        return bool(self.countries_allow or self.countries_deny)


def global_rules(network: NetworkConfig) -> Rules:
    return Rules(
        IpSet(network.ip_allow),
        IpSet(network.ip_deny),
        False,
        frozenset(network.countries_allow),
        frozenset(network.countries_deny),
    )


def route_rules(route: RouteConfig) -> Rules:
    return Rules(
        IpSet(route.ip_allow),
        IpSet(route.ip_deny),
        route.network == "internal",
        frozenset(route.countries_allow),
        frozenset(route.countries_deny),
    )


def needs_network_stage(network: NetworkConfig, route: RouteConfig) -> bool:
    return not (global_rules(network).empty and route_rules(route).empty)


class NetworkPolicy:
    """The rules of one or more places, compiled; a caller must pass all of them."""

    __slots__ = ("_countries", "_internal", "_rules")

    def __init__(self, network: NetworkConfig, places: Iterable[Rules]) -> None:
        self._internal = IpSet(network.internal_networks)
        self._rules = tuple(rules for rules in places if not rules.empty)
        self._countries = any(rules.uses_countries for rules in self._rules)

    def decide(self, client_ip: str) -> Decision | None:
        address = client_address(client_ip)
        if address is None:
            return _denied()  # not an IP address: no rule can vouch for it
        internal = address in self._internal
        country: str | None = None
        if self._countries and not internal:
            country = country_code(str(address))
        for rules in self._rules:
            if not allowed(rules, address, internal, country):
                return _denied()
        return None


def global_policy(network: NetworkConfig) -> NetworkPolicy | None:
    """The global rules alone, for requests that match no route (so that a refused
    network cannot tell which paths exist: it gets 403 everywhere, not 404 here and 403
    there). None when there are no global rules."""
    rules = global_rules(network)
    return None if rules.empty else NetworkPolicy(network, (rules,))


class NetworkStage(Stage):
    name: ClassVar[str] = "network"
    priority: ClassVar[int] = 8000
    phases: ClassVar[frozenset[Phase]] = frozenset({Phase.REQUEST_HEADERS})

    def __init__(self, network: NetworkConfig, route: RouteConfig) -> None:
        self._policy = NetworkPolicy(network, (global_rules(network), route_rules(route)))

    async def request_headers(self, ctx: RequestContext) -> Decision | None:
        return self._policy.decide(ctx.client_ip)


def client_address(text: str) -> IPAddress | None:
    try:
        address = ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def allowed(rules: Rules, address: IPAddress, internal: bool, country: str | None) -> bool:
    """One place's verdict; ``country`` is only looked at for external callers."""
    if address in rules.deny:
        return False
    if rules.allow and address not in rules.allow:
        return False
    if rules.internal_only and not internal:
        return False
    if internal or not rules.uses_countries:
        return True
    if country is not None and country in rules.countries_deny:
        return False
    return not rules.countries_allow or (country is not None and country in rules.countries_allow)


def _denied() -> Decision:
    return Decision.deny(403, "net.denied", "Requests from this network are not allowed here.")
