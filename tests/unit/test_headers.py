"""Header rules of the proxy: hop-by-hop removal, forwarding headers, trusted proxies, ids."""

from __future__ import annotations

import re

import pytest

from dijk.config.models import DEFAULT_STRIP_REQUEST_HEADERS
from dijk.proxy.gateway import incoming_request_id, request_id_from
from dijk.proxy.headers import (
    CONNECTION_PROTECTED,
    HOP_BY_HOP,
    TrustedProxies,
    connection_conflict,
    connection_listed,
    downstream_response_headers,
    request_dropped,
    response_dropped,
    upstream_request_headers,
)


def upstream(
    headers: list[tuple[str, str]],
    *,
    trusted: bool = False,
    host: str = "gw.test",
    scheme: str = "http",
    strip: list[str] | None = None,
) -> list[tuple[str, str]]:
    return upstream_request_headers(
        headers,
        peer_ip="192.0.2.10",
        peer_trusted=trusted,
        scheme=scheme,
        host=host,
        request_id="rid-1",
        dropped=request_dropped(DEFAULT_STRIP_REQUEST_HEADERS if strip is None else strip),
    )


def values(headers: list[tuple[str, str]], name: str) -> list[str]:
    return [value for key, value in headers if key == name]


# ---- Connection-listed headers ------------------------------------------------------------------


def test_connection_listed_reads_every_connection_header_case_insensitively() -> None:
    listed = connection_listed(
        [("connection", "Keep-Alive, X-Foo ,,"), ("x-foo", "1"), ("connection", "X-BAR")]
    )
    assert listed == {"keep-alive", "x-foo", "x-bar"}


def test_connection_listed_is_empty_without_a_connection_header() -> None:
    assert connection_listed([("x-foo", "1")]) == frozenset()


# ---- upstream request headers -------------------------------------------------------------------


def test_hop_by_hop_and_connection_listed_request_headers_are_removed() -> None:
    incoming = [(name, "v") for name in sorted(HOP_BY_HOP)] + [
        ("connection", "close, x-hop-one, X-Hop-Two"),
        ("x-hop-one", "1"),
        ("x-hop-two", "2"),
        ("x-end-to-end", "kept"),
        ("accept", "application/json"),
    ]
    out = upstream(incoming)
    names = [name for name, _ in out]
    assert not set(names) & HOP_BY_HOP
    assert "x-hop-one" not in names
    assert "x-hop-two" not in names
    assert values(out, "x-end-to-end") == ["kept"]
    assert values(out, "accept") == ["application/json"]


def test_gateway_managed_request_headers_are_not_copied() -> None:
    out = upstream(
        [
            ("host", "client.example"),
            ("content-length", "5"),
            ("expect", "100-continue"),
            ("x-request-id", "from-client"),
        ]
    )
    names = [name for name, _ in out]
    assert "host" not in names  # the caller writes Host per the upstream's host mode
    assert "content-length" not in names  # and the framing
    assert "expect" not in names
    assert values(out, "x-request-id") == ["rid-1"]


def test_end_to_end_headers_keep_their_order_and_repeats() -> None:
    out = upstream([("accept", "a"), ("cookie", "x=1"), ("accept", "b"), ("cookie", "y=2")])
    assert [pair for pair in out if pair[0] in ("accept", "cookie")] == [
        ("accept", "a"),
        ("cookie", "x=1"),
        ("accept", "b"),
        ("cookie", "y=2"),
    ]


def test_forwarding_headers_are_added_for_a_direct_client() -> None:
    out = upstream([], scheme="https", host="api.example:8443")
    assert values(out, "x-forwarded-for") == ["192.0.2.10"]
    assert values(out, "x-forwarded-proto") == ["https"]
    assert values(out, "x-forwarded-host") == ["api.example:8443"]


def test_no_forwarded_host_without_a_host() -> None:
    assert values(upstream([], host=""), "x-forwarded-host") == []


SPOOFED = [
    ("x-forwarded-for", "6.6.6.6"),
    ("x-forwarded-proto", "https"),
    ("x-forwarded-host", "evil.example"),
    ("forwarded", "for=6.6.6.6"),
    ("x-real-ip", "6.6.6.6"),
]


def test_client_forwarding_headers_are_dropped_from_an_untrusted_peer() -> None:
    out = upstream(SPOOFED)
    assert values(out, "x-forwarded-for") == ["192.0.2.10"]
    assert values(out, "x-forwarded-proto") == ["http"]
    assert values(out, "x-forwarded-host") == ["gw.test"]
    assert values(out, "forwarded") == []
    assert values(out, "x-real-ip") == []


def test_forwarding_headers_from_a_trusted_proxy_are_kept_and_appended() -> None:
    out = upstream(SPOOFED, trusted=True)
    assert values(out, "x-forwarded-for") == ["6.6.6.6, 192.0.2.10"]
    assert values(out, "x-forwarded-proto") == ["https"]
    assert values(out, "x-forwarded-host") == ["evil.example"]
    assert values(out, "forwarded") == ["for=6.6.6.6"]
    assert values(out, "x-real-ip") == ["6.6.6.6"]


def test_several_forwarded_for_lines_from_a_trusted_proxy_become_one_list_in_order() -> None:
    out = upstream(
        [("x-forwarded-for", "203.0.113.1"), ("x-forwarded-for", "203.0.113.2, 10.0.0.1")],
        trusted=True,
    )
    assert values(out, "x-forwarded-for") == ["203.0.113.1, 203.0.113.2, 10.0.0.1, 192.0.2.10"]


def test_forwarding_headers_listed_in_connection_are_dropped_even_from_a_trusted_proxy() -> None:
    out = upstream(
        [("connection", "x-forwarded-for"), ("x-forwarded-for", "6.6.6.6")], trusted=True
    )
    assert values(out, "x-forwarded-for") == ["192.0.2.10"]


OVERRIDES = [
    ("x-http-method-override", "DELETE"),
    ("x-http-method", "DELETE"),
    ("x-method-override", "DELETE"),
    ("x-original-url", "/admin"),
    ("x-rewrite-url", "/admin"),
    ("x-client-ip", "6.6.6.6"),
    ("true-client-ip", "6.6.6.6"),
    ("cf-connecting-ip", "6.6.6.6"),
]


@pytest.mark.parametrize("trusted", [False, True], ids=["direct", "trusted-proxy"])
def test_method_override_rewrite_and_client_ip_headers_are_stripped_by_default(
    trusted: bool,
) -> None:
    out = upstream([*OVERRIDES, ("accept", "a")], trusted=trusted)
    names = {name for name, _ in out}
    assert not names & {name for name, _ in OVERRIDES}
    assert values(out, "accept") == ["a"]


def test_a_client_ip_header_taken_off_the_strip_list_passes_only_from_a_trusted_proxy() -> None:
    for trusted, expected in ((False, []), (True, ["6.6.6.6"])):
        incoming = [("cf-connecting-ip", "6.6.6.6"), ("x-http-method-override", "PUT")]
        out = upstream(incoming, trusted=trusted, strip=[])
        assert values(out, "cf-connecting-ip") == expected
        assert values(out, "x-http-method-override") == ["PUT"]  # the operator's choice


def test_underscore_spellings_of_dropped_and_forwarding_headers_are_dropped() -> None:
    incoming = [
        ("x_http_method_override", "DELETE"),
        ("x_original-url", "/admin"),
        ("x_forwarded_for", "6.6.6.6"),
        ("x_forwarded_host", "evil.example"),
        ("x_request_id", "chosen"),
        ("transfer_encoding", "chunked"),
        ("x_custom_name", "kept"),
    ]
    for trusted in (False, True):
        out = upstream(incoming, trusted=trusted)
        assert [name for name, _ in out if "_" in name] == ["x_custom_name"]


def test_x_forwarded_port_and_prefix_pass_only_from_a_trusted_proxy() -> None:
    incoming = [("x-forwarded-port", "443"), ("x-forwarded-prefix", "/evil")]
    assert values(upstream(incoming), "x-forwarded-prefix") == []
    assert values(upstream(incoming), "x-forwarded-port") == []
    assert values(upstream(incoming, trusted=True), "x-forwarded-prefix") == ["/evil"]


@pytest.mark.parametrize(
    "connection",
    [
        "content-type",
        "Keep-Alive, Content-Type",
        "content-length",
        "content-encoding",
        "authorization",
        "host",
        "cookie",
        "x-request-id",
    ],
)
def test_connection_naming_an_end_to_end_field_is_a_conflict(connection: str) -> None:
    assert connection_conflict([("connection", connection)]) is not None


def test_connection_naming_hop_by_hop_or_custom_fields_is_no_conflict() -> None:
    headers = [("connection", "keep-alive, close, te, upgrade, x-private-hop")]
    assert connection_conflict(headers) is None
    assert connection_conflict([("x-foo", "content-type")]) is None


def test_connection_naming_the_configured_key_header_is_a_conflict() -> None:
    protected = CONNECTION_PROTECTED | {"x-api-key"}
    assert connection_conflict([("connection", "X-API-Key")], protected) == "x-api-key"
    assert connection_conflict([("connection", "X-API-Key")]) is None


# ---- downstream response headers ----------------------------------------------------------------


def test_hop_by_hop_and_listed_response_headers_are_removed() -> None:
    out = downstream_response_headers(
        [
            ("connection", "x-secret-hop"),
            ("x-secret-hop", "1"),
            ("keep-alive", "timeout=5"),
            ("transfer-encoding", "chunked"),
            ("proxy-authenticate", "Basic"),
            ("trailer", "x-checksum"),
            ("upgrade", "h2c"),
            ("content-type", "application/json"),
        ],
        "rid-1",
    )
    assert out == [("content-type", "application/json"), ("x-request-id", "rid-1")]


def test_upstream_content_length_and_request_id_are_replaced_by_the_gateway() -> None:
    out = downstream_response_headers(
        [
            ("content-length", "12"),
            ("x-request-id", "upstream-id"),
            ("set-cookie", "a=1"),
            ("set-cookie", "b=2"),
        ],
        "rid-1",
    )
    assert out == [("set-cookie", "a=1"), ("set-cookie", "b=2"), ("x-request-id", "rid-1")]


LEAKY = [
    ("server", "aiohttp/3.9.5"),
    ("x-powered-by", "Express"),
    ("x-aspnet-version", "4.0.30319"),
    ("x-aspnetmvc-version", "5.2"),
    ("content-type", "application/json"),
    ("connection", "x-secret-hop"),
    ("x-secret-hop", "1"),
]


def test_configured_response_headers_are_stripped_case_insensitively() -> None:
    from dijk.config.models import DEFAULT_STRIP_RESPONSE_HEADERS

    dropped = response_dropped(["SERVER", *DEFAULT_STRIP_RESPONSE_HEADERS[1:]])
    out = downstream_response_headers(LEAKY, "rid-1", dropped)
    assert out == [("content-type", "application/json"), ("x-request-id", "rid-1")]


def test_empty_strip_list_keeps_upstream_headers_but_still_drops_hop_by_hop() -> None:
    dropped = response_dropped([])
    assert dropped >= HOP_BY_HOP
    assert "content-length" in dropped
    assert "x-request-id" in dropped
    out = downstream_response_headers(LEAKY, "rid-1", dropped)
    assert out == [*LEAKY[:5], ("x-request-id", "rid-1")]
    # the default argument is the same set: nothing extra is stripped
    assert downstream_response_headers(LEAKY, "rid-1") == out


def test_equal_strip_lists_share_one_precomputed_set() -> None:
    assert response_dropped(["server", "x-powered-by"]) is response_dropped(
        ["X-Powered-By", "Server"]
    )


# ---- trusted proxies ----------------------------------------------------------------------------


def test_trusted_proxies_match_ipv4_and_ipv6_networks() -> None:
    proxies = TrustedProxies(["10.0.0.0/8", "2001:db8::/32", "192.0.2.7"])
    assert proxies
    assert proxies.trusts("10.1.2.3")
    assert proxies.trusts("192.0.2.7")
    assert proxies.trusts("2001:db8::1")
    assert not proxies.trusts("11.0.0.1")
    assert not proxies.trusts("192.0.2.8")
    assert not proxies.trusts("2001:db9::1")
    assert not proxies.trusts("not-an-ip")
    assert not proxies.trusts("")


def test_no_trusted_proxies_trusts_nobody() -> None:
    proxies = TrustedProxies([])
    assert not proxies
    assert not proxies.trusts("127.0.0.1")
    assert proxies.client_address("127.0.0.1", "203.0.113.9") == "127.0.0.1"


@pytest.mark.parametrize(
    ("peer", "forwarded_for", "client"),
    [
        # an untrusted peer is the client, whatever it claims
        ("198.51.100.1", "203.0.113.9", "198.51.100.1"),
        ("198.51.100.1", "10.0.0.1", "198.51.100.1"),
        # a trusted peer: the right-most entry that is not a trusted proxy
        ("10.0.0.1", "203.0.113.9", "203.0.113.9"),
        ("10.0.0.1", None, "10.0.0.1"),
        ("10.0.0.1", "", "10.0.0.1"),
        # left-most entries are written by the client and are ignored
        ("10.0.0.1", "6.6.6.6, 203.0.113.9", "203.0.113.9"),
        ("10.0.0.1", "127.0.0.1, 6.6.6.6, 203.0.113.9", "203.0.113.9"),
        ("10.0.0.1", "10.9.9.9, 203.0.113.9", "203.0.113.9"),
        # a chain of trusted proxies is walked through
        ("10.0.0.1", "203.0.113.9, 10.0.0.3, 10.0.0.2", "203.0.113.9"),
        ("10.0.0.1", "6.6.6.6,203.0.113.9 ,10.0.0.2", "203.0.113.9"),
        # garbage stops the walk at the last address before it
        ("10.0.0.1", "<script>, 203.0.113.9", "203.0.113.9"),
        ("10.0.0.1", "203.0.113.9, garbage", "10.0.0.1"),
        ("10.0.0.1", "203.0.113.9:4711", "10.0.0.1"),
        ("10.0.0.1", "6.6.6.6, unknown, 10.0.0.2", "10.0.0.2"),
        # every entry trusted: the left-most one is as far as we can see
        ("10.0.0.1", "10.0.0.3, 10.0.0.2", "10.0.0.3"),
        # IPv6
        ("10.0.0.1", "6.6.6.6, 2001:db8::9", "2001:db8::9"),
    ],
)
def test_client_address_ignores_spoofed_entries(
    peer: str, forwarded_for: str | None, client: str
) -> None:
    assert TrustedProxies(["10.0.0.0/8"]).client_address(peer, forwarded_for) == client


# ---- request id ---------------------------------------------------------------------------------


GENERATED = re.compile(r"[0-9a-f]{32}")


@pytest.mark.parametrize(
    "value", ["abc", "A-b_c.d:e", "x" * 128, "0f8fad5b-d9cb-469f-a165-70867728950e"]
)
def test_valid_incoming_request_id_from_a_trusted_proxy_is_kept(value: str) -> None:
    assert request_id_from([("x-request-id", value)], trusted=True) == value


@pytest.mark.parametrize("value", ["abc", "0f8fad5b-d9cb-469f-a165-70867728950e"])
def test_request_id_chosen_by_a_direct_client_is_replaced_but_readable(value: str) -> None:
    headers = [("x-request-id", value)]
    assert GENERATED.fullmatch(request_id_from(headers, trusted=False))
    assert incoming_request_id(headers) == value  # what the access log records beside it


@pytest.mark.parametrize(
    "value", ["", "x" * 129, "a b", "a\tb", "a/b", "<x>", "a;b", "caf\xe9", "a\nb", "a\x00b"]
)
def test_invalid_incoming_request_id_is_replaced(value: str) -> None:
    assert GENERATED.fullmatch(request_id_from([("x-request-id", value)], trusted=True))
    assert incoming_request_id([("x-request-id", value)]) is None


def test_request_id_is_generated_fresh_each_time() -> None:
    first, second = request_id_from([], trusted=True), request_id_from([], trusted=True)
    assert GENERATED.fullmatch(first)
    assert first != second


def test_only_the_first_request_id_counts() -> None:
    assert GENERATED.fullmatch(
        request_id_from([("x-request-id", "bad id"), ("x-request-id", "good")], trusted=True)
    )
    assert (
        request_id_from([("x-request-id", "good"), ("x-request-id", "bad id")], trusted=True)
        == "good"
    )
