"""URL host parsing for SSRF: every spelling of an internal address is recognised."""

from __future__ import annotations

import ipaddress

import pytest

from dijk.detect.ssrf import classify_host, find_url_issues, parse_ipv4_loose


@pytest.mark.parametrize(
    ("host", "address"),
    [
        ("2130706433", "127.0.0.1"),
        ("0x7f000001", "127.0.0.1"),
        ("0177.0.0.1", "127.0.0.1"),
        ("0x7f.1", "127.0.0.1"),
        ("127.1", "127.0.0.1"),
        ("169.16689662", "169.254.169.254"),
        ("0xA9.0xFE.0xA9.0xFE", "169.254.169.254"),
    ],
)
def test_inet_aton_spellings(host: str, address: str) -> None:
    assert parse_ipv4_loose(host) == ipaddress.IPv4Address(address)


@pytest.mark.parametrize(
    "host", ["256.1.1.1", "1.2.3.4.5", "example.com", "0x", "1..2", "08.1.1.1"]
)
def test_non_addresses_are_not_parsed(host: str) -> None:
    assert parse_ipv4_loose(host) is None


@pytest.mark.parametrize(
    ("host", "kind"),
    [
        ("localhost", "loopback"),
        ("api.localhost", "loopback"),
        ("[::1]", "loopback"),
        ("[::ffff:127.0.0.1]", "loopback"),
        ("[::ffff:7f00:1]", "loopback"),
        ("169.254.169.254", "metadata"),
        ("metadata.google.internal", "metadata"),
        ("[fe80::1%25eth0]", "link_local"),
        ("10.1.2.3", "private"),
        ("192.168.0.1", "private"),
        ("[fd00::1]", "private"),
        ("0.0.0.0", "loopback"),
        ("8.8.8.8", None),
        ("example.com", None),
    ],
)
def test_host_classification(host: str, kind: str | None) -> None:
    assert classify_host(host)[0] == kind


def test_obfuscated_public_ip_is_flagged() -> None:
    kinds = {issue.kind for issue in find_url_issues("see http://134744072/ now")}
    assert kinds == {"obfuscated_ip"}


def test_userinfo_and_port_do_not_hide_the_host() -> None:
    kinds = {issue.kind for issue in find_url_issues("http://example.com@127.0.0.1:8080/x")}
    assert "loopback" in kinds


def test_dangerous_schemes() -> None:
    kinds = [
        issue.kind
        for issue in find_url_issues("gopher://a:70/_x dict://b:11211/ file:///etc/passwd")
    ]
    assert kinds == ["scheme_gopher", "scheme_dict", "scheme_file"]


def test_public_urls_have_no_issue() -> None:
    assert find_url_issues("https://api.example.com/v1/items?page=2") == []
