"""route_defaults and route_groups: settings written once, a route's own key winning whole;
mistakes reported where they are written."""

from __future__ import annotations

import pytest

from dijk.config import ConfigError, load_config_text

HEAD = """\
version: 1
upstreams: {app: {url: "http://127.0.0.1:3000"}, other: {url: "http://127.0.0.1:3001"}}
"""


def load(text: str):  # type: ignore[no-untyped-def]
    return load_config_text(HEAD + text, "dijk.yaml")


def test_defaults_apply_to_every_route_and_a_routes_own_key_wins_whole() -> None:
    config = load(
        """\
route_defaults:
  upstream: app
  waf: {mode: block, paranoia: 2}
routes:
  - {name: a, match: {path_prefix: /a}}
  - {name: b, match: {path_prefix: /b}, upstream: other, waf: {mode: monitor}}
  - {name: c, match: {path_prefix: /c}, waf: null}
"""
    )
    a, b, c = config.routes
    assert (a.upstream, a.waf.mode, a.waf.paranoia) == ("app", "block", 2)  # type: ignore[union-attr]
    assert (b.upstream, b.waf.mode, b.waf.paranoia) == ("other", "monitor", 1)  # type: ignore[union-attr]
    assert c.waf is None  # a default turned off


def test_a_route_group_sits_between_the_defaults_and_the_route() -> None:
    config = load(
        """\
route_defaults: {upstream: app, auth: []}
route_groups:
  private: {auth: [api_key], hide_credentials: true, upstream: other}
auth: {api_key: {header: X-API-Key}}
routes:
  - {name: public, match: {path_prefix: /p}}
  - {name: private, match: {path_prefix: /x}, route_group: private}
  - {name: mine, match: {path_prefix: /m}, route_group: private, upstream: app}
"""
    )
    public, private, mine = config.routes
    assert (public.auth, public.upstream) == ([], "app")
    assert (private.auth, private.hide_credentials, private.upstream) == (
        ["api_key"],
        True,
        "other",
    )
    assert (mine.auth, mine.upstream) == (["api_key"], "app")


def test_an_unknown_group_name_is_reported_with_the_known_ones() -> None:
    with pytest.raises(ConfigError) as raised:
        load(
            "route_groups: {g: {upstream: app}}\n"
            "routes:\n  - {name: a, match: {path_prefix: /}, route_group: x}\n"
        )
    assert "routes[0].route_group: route group 'x' is not defined (known: g)" in str(raised.value)


def test_shared_settings_cannot_name_or_match_a_route_and_unknown_keys_are_errors() -> None:
    with pytest.raises(ConfigError) as raised:
        load(
            "route_defaults: {name: x, wafs: {}}\n"
            "routes:\n  - {name: a, match: {path_prefix: /}, upstream: app}\n"
        )
    message = str(raised.value)
    assert "route_defaults.name: 'name' belongs to each route" in message
    assert "route_defaults.wafs: unknown route setting 'wafs'" in message


def test_an_invalid_shared_value_is_reported_at_its_own_line() -> None:
    with pytest.raises(ConfigError) as raised:
        load(
            "route_defaults:\n  upstream: app\n  waf: {mode: blok}\n"
            "routes:\n  - {name: a, match: {path_prefix: /}}\n"
        )
    assert (
        "dijk.yaml:5: routes[0].waf.mode: Input should be 'block', 'monitor' or 'off'"
        " (the value comes from route_defaults.waf)"
    ) in str(raised.value)
