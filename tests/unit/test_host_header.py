"""The Host grammar the server accepts: host[:port] with a reg-name of unreserved characters."""

from __future__ import annotations

import pytest

from dijk.proxy.http1 import valid_host


@pytest.mark.parametrize(
    "value",
    [
        "",
        "api.example",
        "API.Example.:8080",
        "127.0.0.1",
        "127.0.0.1:80",
        "[::1]",
        "[::1]:8443",
        "[2001:db8::1]:65535",
        "under_score.example",
        "a.example:",
    ],
)
def test_host_and_port_forms_are_valid(value: str) -> None:
    assert valid_host(value)


@pytest.mark.parametrize(
    "value",
    [
        "a b",
        "x/../y",
        "a%0d%0ab",
        "a\\b",
        "a.example,b.example",
        "user@a.example",
        "a;b",
        "a.example:99999",
        "a.example:123456",
        "a.example:8o",
        "[not:an:address]",
        "[::1",
        "::1",
        "h" * 254,
        "a.example:80:80",
        "é.example",
    ],
)
def test_anything_else_is_invalid(value: str) -> None:
    assert not valid_host(value)
