"""Header rules of a correct proxy: hop-by-hop removal and forwarding headers."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence

from dijk.config.models import CLIENT_ADDRESS_HEADERS

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
# What a proxy in front says about the client and the original request: kept only from
# trusted_proxies (X-Forwarded-For/-Proto/-Host are then extended, the rest passed as sent),
# dropped from anyone else. The CDN client-address headers are also on the default
# strip_request_headers list, so they pass only if the operator takes them off it.
FORWARDING = frozenset(
    {
        "x-forwarded-for",
        "x-forwarded-proto",
        "x-forwarded-host",
        "x-forwarded-port",
        "x-forwarded-prefix",
        "x-forwarded-server",
        "x-forwarded-scheme",
        "x-forwarded-ssl",
        "forwarded",
        "x-real-ip",
        *CLIENT_ADDRESS_HEADERS,
    }
)
_RESPONSE_MANAGED = frozenset({"content-length", "x-request-id"})
# What never crosses in each direction, whatever the Connection header says.
_REQUEST_DROPPED = HOP_BY_HOP | _REQUEST_MANAGED
_RESPONSE_DROPPED = HOP_BY_HOP | _RESPONSE_MANAGED

# Connection field values recur ("keep-alive", "close"): their parsed tokens are cached.
# Only short values are kept, and only so many, so a client cannot grow the cache.
_TOKENS: dict[str, frozenset[str]] = {}
_TOKENS_MAX = 256
_TOKENS_VALUE_MAX = 64


def _connection_tokens(value: str) -> frozenset[str]:
    found = _TOKENS.get(value)
    if found is None:
        found = frozenset(token.strip().lower() for token in value.split(",") if token.strip())
        if len(value) <= _TOKENS_VALUE_MAX and len(_TOKENS) < _TOKENS_MAX:
            _TOKENS[value] = found
    return found


# Lower-cased header names by their bytes on the wire: the same few names arrive on every
# request and response. Bounded (short names, so many entries): random names cannot grow it.
HEADER_NAMES: dict[bytes, str] = {}
_NAMES_MAX = 512
_NAME_MAX = 64


def header_name(raw: bytes) -> str:
    """``raw`` decoded as latin-1 and lower-cased, from :data:`HEADER_NAMES` when there."""
    name = HEADER_NAMES.get(raw)
    if name is None:
        name = raw.decode("latin-1").lower()
        if len(raw) <= _NAME_MAX and len(HEADER_NAMES) < _NAMES_MAX:
            HEADER_NAMES[raw] = name
    return name


def connection_listed(headers: Sequence[tuple[str, str]]) -> frozenset[str]:
    """Header names that the sender listed in ``Connection`` (also hop-by-hop)."""
    listed: frozenset[str] = frozenset()
    for name, value in headers:
        if name == "connection":
            listed = listed | _connection_tokens(value)
    return listed


# End-to-end fields that the gateway reads, validates or sets and that the upstream must see
# as the gateway saw them. RFC 9110 §7.6.1 forbids a sender to name a field meant for all
# recipients in Connection; a request that does so anyway (``Connection: content-type``
# would make the upstream parse a body the gateway inspected as JSON by other rules) is
# refused rather than honoured. Every ``content-*`` field belongs here too.
CONNECTION_PROTECTED = frozenset({"host", "authorization", "cookie", "x-request-id"})


def connection_conflict(
    headers: Sequence[tuple[str, str]], protected: frozenset[str] = CONNECTION_PROTECTED
) -> str | None:
    """The first end-to-end field name that ``Connection`` lists (``protected``, or any
    ``content-*``), else ``None``. ``protected`` is :data:`CONNECTION_PROTECTED` plus the
    configured credential header names (see ``GatewayState``)."""
    for name, value in headers:
        if name == "connection":
            for token in _connection_tokens(value):
                if token in protected or token.startswith("content-"):
                    return token
    return None


def hyphenated(name: str) -> str:
    """``name`` with ``_`` read as ``-``: CGI/WSGI upstreams (PHP, Django, Rails behind
    Rack...) see ``X_API_Key`` and ``X-API-Key`` as the same field, so a rule about a name
    must hold for both spellings."""
    return name.replace("_", "-")


def _also_listed(headers: Sequence[tuple[str, str]], dropped: frozenset[str]) -> frozenset[str]:
    """Names listed in ``Connection`` that ``dropped`` does not already remove (usually none:
    ``keep-alive`` and ``close`` are hop-by-hop anyway)."""
    listed: frozenset[str] | None = None
    for name, value in headers:
        if name == "connection":
            tokens = _connection_tokens(value)
            listed = tokens if listed is None else listed | tokens
    return listed - dropped if listed else frozenset()


class TrustedProxies:
    """Which peers may tell us the real client address through X-Forwarded-For."""

    def __init__(self, cidrs: Sequence[str]) -> None:
        self._networks: tuple[IPNetwork, ...] = tuple(
            ipaddress.ip_network(cidr, strict=False) for cidr in cidrs
        )
        self._cache: dict[str, bool] = {}
        self.configured = bool(self._networks)  # a plain attribute: read on every request

    def __bool__(self) -> bool:
        return self.configured

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


# (direction's fixed set, configured names) → their union, shared by equal lists.
_DROPPED_BY_STRIP: dict[tuple[frozenset[str], frozenset[str]], frozenset[str]] = {}


def _with_strip(fixed: frozenset[str], strip: Iterable[str]) -> frozenset[str]:
    names = frozenset(name.lower() for name in strip)
    found = _DROPPED_BY_STRIP.get((fixed, names))
    if found is None:
        found = fixed | names
        if len(_DROPPED_BY_STRIP) < 1024:
            _DROPPED_BY_STRIP[(fixed, names)] = found
    return found


def request_dropped(strip: Iterable[str]) -> frozenset[str]:
    """Every request header name that never reaches the upstream whoever sends it:
    hop-by-hop, the ones Dijk sets itself, and ``strip`` (``strip_request_headers``),
    lower-cased. Built once per route at load; equal lists share one set."""
    return _with_strip(_REQUEST_DROPPED, strip)


def configured_strip(dropped: frozenset[str]) -> frozenset[str]:
    """The ``strip_request_headers`` names in a route's :func:`request_dropped` set, without
    the hop-by-hop and gateway-managed ones (a proxy in front handles those itself)."""
    return dropped - _REQUEST_DROPPED


def upstream_request_headers(
    headers: Sequence[tuple[str, str]],
    *,
    peer_ip: str,
    peer_trusted: bool,
    scheme: str,
    host: str,
    request_id: str,
    dropped: frozenset[str] = _REQUEST_DROPPED,
) -> list[tuple[str, str]]:
    """Headers to send upstream (without Host and framing, which the caller adds).

    ``dropped`` is :func:`request_dropped` of the route's ``strip_request_headers``. A name
    spelt with ``_`` for ``-`` is dropped when its hyphenated form would be, and is never
    taken for a forwarding header: a proxy in front writes those with hyphens.
    """
    listed = _also_listed(headers, dropped)
    out: list[tuple[str, str]] = []
    prior_for: list[str] = []
    prior_proto = prior_host = None
    for header in headers:
        name, value = header
        if name in dropped or name in listed:
            continue
        if "_" in name:
            canonical = hyphenated(name)
            if canonical in dropped or canonical in FORWARDING or canonical in listed:
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
                    out.append(header)
            continue
        out.append(header)
    prior_for.append(peer_ip)
    out.append(("x-forwarded-for", ", ".join(prior_for)))
    out.append(("x-forwarded-proto", prior_proto or scheme))
    if prior_host or host:
        out.append(("x-forwarded-host", prior_host or host))
    out.append(("x-request-id", request_id))
    return out


def response_dropped(strip: Iterable[str]) -> frozenset[str]:
    """Every response header name that does not reach the client: hop-by-hop, the ones
    Dijk sets itself, and ``strip`` (a route's ``strip_response_headers``), lower-cased.

    Built once per route at load, so removing the configured names costs nothing per
    response: it is the same set look-up that already removes hop-by-hop headers. Equal
    lists share one set.
    """
    return _with_strip(_RESPONSE_DROPPED, strip)


def downstream_response_headers(
    headers: Sequence[tuple[str, str]],
    request_id: str,
    dropped: frozenset[str] = _RESPONSE_DROPPED,
) -> list[tuple[str, str]]:
    """Upstream response headers fit to send to the client (framing is added by the writer).

    ``headers`` have lower-case names (as the upstream parser gives them); ``dropped`` is
    :func:`response_dropped` of the route's ``strip_response_headers``.
    """
    listed = _also_listed(headers, dropped)
    if listed:
        out = [h for h in headers if h[0] not in dropped and h[0] not in listed]
    else:
        out = [h for h in headers if h[0] not in dropped]
    out.append(("x-request-id", request_id))
    return out
