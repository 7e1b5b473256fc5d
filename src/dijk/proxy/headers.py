"""Header rules of a correct proxy: hop-by-hop removal and forwarding headers."""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# RFC 9110 §7.6.1 plus the de-facto ones; these never cross the proxy.
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-connection",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)
# Set by the gateway itself; a client's value is dropped (or trusted only from a proxy).
_REQUEST_MANAGED = frozenset({"host", "content-length", "expect", "x-request-id"})
FORWARDING = frozenset(
    {"x-forwarded-for", "x-forwarded-proto", "x-forwarded-host", "forwarded", "x-real-ip"}
)
_RESPONSE_MANAGED = frozenset({"content-length", "x-request-id"})


def connection_listed(headers: Sequence[tuple[str, str]]) -> frozenset[str]:
    """Header names that the sender listed in ``Connection`` (also hop-by-hop)."""
    listed: set[str] = set()
    for name, value in headers:
        if name == "connection":
            listed.update(token.strip().lower() for token in value.split(",") if token.strip())
    return frozenset(listed)


class TrustedProxies:
    """Which peers may tell us the real client address through X-Forwarded-For."""

    def __init__(self, cidrs: Sequence[str]) -> None:
        self._networks: tuple[IPNetwork, ...] = tuple(
            ipaddress.ip_network(cidr, strict=False) for cidr in cidrs
        )
        self._cache: dict[str, bool] = {}

    def __bool__(self) -> bool:
        return bool(self._networks)

    def trusts(self, address: str) -> bool:
        if not self._networks:
            return False
        known = self._cache.get(address)
        if known is not None:
            return known
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            result = False
        else:
            result = any(ip in network for network in self._networks)
        if len(self._cache) < 65_536:
            self._cache[address] = result
        return result

    def client_address(self, peer: str, forwarded_for: str | None) -> str:
        """The real client: the right-most X-Forwarded-For entry that is not a trusted proxy.

        Only consulted when the socket peer itself is trusted; entries that are not IP
        addresses stop the walk (a client can put anything on the left).
        """
        if not forwarded_for or not self.trusts(peer):
            return peer
        client = peer
        for entry in reversed(forwarded_for.split(",")):
            candidate = entry.strip()
            try:
                ipaddress.ip_address(candidate)
            except ValueError:
                break
            client = candidate
            if not self.trusts(candidate):
                break
        return client


def upstream_request_headers(
    headers: Sequence[tuple[str, str]],
    *,
    peer_ip: str,
    peer_trusted: bool,
    scheme: str,
    host: str,
    request_id: str,
) -> list[tuple[str, str]]:
    """Headers to send upstream (without Host and framing, which the caller adds)."""
    listed = connection_listed(headers) if any(n == "connection" for n, _ in headers) else None
    out: list[tuple[str, str]] = []
    prior_for: list[str] = []
    prior_proto = prior_host = None
    for name, value in headers:
        if name in HOP_BY_HOP or name in _REQUEST_MANAGED:
            continue
        if listed is not None and name in listed:
            continue
        if name in FORWARDING:
            if peer_trusted:
                if name == "x-forwarded-for":
                    prior_for.append(value)
                elif name == "x-forwarded-proto":
                    prior_proto = value
                elif name == "x-forwarded-host":
                    prior_host = value
                else:
                    out.append((name, value))
            continue
        out.append((name, value))
    prior_for.append(peer_ip)
    out.append(("x-forwarded-for", ", ".join(prior_for)))
    out.append(("x-forwarded-proto", prior_proto or scheme))
    if prior_host or host:
        out.append(("x-forwarded-host", prior_host or host))
    out.append(("x-request-id", request_id))
    return out


def downstream_response_headers(
    headers: Sequence[tuple[str, str]], request_id: str
) -> list[tuple[str, str]]:
    """Upstream response headers fit to send to the client (framing is added by the writer)."""
    listed = connection_listed(headers) if any(n == "connection" for n, _ in headers) else None
    out = [
        (name, value)
        for name, value in headers
        if name not in HOP_BY_HOP
        and name not in _RESPONSE_MANAGED
        and (listed is None or name not in listed)
    ]
    out.append(("x-request-id", request_id))
    return out
