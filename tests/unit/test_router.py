"""The route table: precedence, segment-boundary prefixes, templates and methods."""

from __future__ import annotations

from typing import Any

import pytest

from dijk.config.models import RouteConfig
from dijk.routing.router import Router


def route(name: str, methods: list[str] | None = None, **match: str) -> RouteConfig:
    spec: dict[str, Any] = dict(match)
    if methods is not None:
        spec["methods"] = methods
    return RouteConfig.model_validate({"name": name, "match": spec, "upstream": "u"})


def matched(router: Router, path: str, method: str = "GET") -> str | None:
    found = router.match(method, path)
    return found.route.name if found.route is not None else None


# ---- precedence ---------------------------------------------------------------------------------


def test_exact_beats_template_beats_prefix_whatever_the_order_in_the_file() -> None:
    routes = [
        route("prefix", path_prefix="/users"),
        route("template", path_template="/users/{id}"),
        route("exact", path="/users/me"),
    ]
    for ordering in (routes, list(reversed(routes))):
        router = Router(ordering)
        assert matched(router, "/users/me") == "exact"
        assert matched(router, "/users/42") == "template"
        assert matched(router, "/users/42/orders") == "prefix"
        assert matched(router, "/users") == "prefix"


def test_longest_prefix_wins_whatever_the_order_in_the_file() -> None:
    routes = [
        route("api", path_prefix="/api"),
        route("v1", path_prefix="/api/v1"),
        route("root", path_prefix="/"),
    ]
    for ordering in (routes, list(reversed(routes))):
        router = Router(ordering)
        assert matched(router, "/api/v1/x") == "v1"
        assert matched(router, "/api/v1") == "v1"
        assert matched(router, "/api/v2") == "api"
        assert matched(router, "/api/v1x") == "api"
        assert matched(router, "/other") == "root"
        assert matched(router, "/") == "root"


def test_template_with_more_literal_segments_wins() -> None:
    routes = [
        route("generic", path_template="/{kind}/{id}"),
        route("users", path_template="/users/{id}"),
    ]
    for ordering in (routes, list(reversed(routes))):
        router = Router(ordering)
        assert matched(router, "/users/1") == "users"
        assert matched(router, "/teams/1") == "generic"


def test_equally_specific_templates_go_by_file_order() -> None:
    router = Router(
        [route("first", path_template="/a/{x}"), route("second", path_template="/a/{y}")]
    )
    assert matched(router, "/a/1") == "first"


def test_equal_prefixes_go_by_file_order() -> None:
    router = Router([route("first", path_prefix="/a"), route("second", path_prefix="/a/")])
    assert matched(router, "/a/b") == "first"


# ---- prefixes on segment boundaries -------------------------------------------------------------


@pytest.mark.parametrize("prefix", ["/api", "/api/"])
@pytest.mark.parametrize(
    ("path", "matches"),
    [
        ("/api", True),
        ("/api/", True),
        ("/api/x", True),
        ("/api/x/y/z", True),
        ("/apix", False),
        ("/api-v1", False),
        ("/ap", False),
        ("/API", False),
        ("/", False),
        ("/x/api", False),
    ],
)
def test_prefix_matches_only_on_segment_boundaries(prefix: str, path: str, matches: bool) -> None:
    router = Router([route("api", path_prefix=prefix)])
    assert (matched(router, path) == "api") is matches


def test_root_prefix_matches_everything() -> None:
    router = Router([route("root", path_prefix="/")])
    for path in ("/", "/a", "/a/b/"):
        assert matched(router, path) == "root"


def test_exact_path_matches_only_itself() -> None:
    router = Router([route("status", path="/status")])
    assert matched(router, "/status") == "status"
    for path in ("/status/", "/status/x", "/statusx", "/Status", "/"):
        assert matched(router, path) is None


# ---- templates ----------------------------------------------------------------------------------


def test_template_parameters_are_extracted() -> None:
    router = Router([route("order", path_template="/users/{user_id}/orders/{order_id}")])
    found = router.match("GET", "/users/u-1/orders/%2Fx")
    assert found.route is not None
    assert found.params == {"user_id": "u-1", "order_id": "%2Fx"}


@pytest.mark.parametrize(
    "path",
    [
        "/users",
        "/users/",
        "/users//orders/1",
        "/users/1/orders",
        "/users/1/orders/1/x",
        "/users/1/orders/1/",
        "/people/1/orders/2",
    ],
)
def test_template_needs_every_segment_and_no_more(path: str) -> None:
    router = Router([route("order", path_template="/users/{user_id}/orders/{order_id}")])
    assert matched(router, path) is None


def test_template_parameter_never_spans_segments() -> None:
    router = Router([route("file", path_template="/files/{name}")])
    assert router.match("GET", "/files/a.txt").params == {"name": "a.txt"}
    assert matched(router, "/files/a/b.txt") is None


@pytest.mark.parametrize("template", ["/u/{id}/{id}", "/u/{id}x", "/u/{}", "/u/{1d}", "/u/{a}{b}"])
def test_malformed_templates_are_refused_at_load(template: str) -> None:
    with pytest.raises(ValueError, match=r"template segment|repeats"):
        Router([route("bad", path_template=template)])


# ---- methods ------------------------------------------------------------------------------------


def test_methods_restrict_a_route_and_405_lists_what_is_allowed() -> None:
    router = Router([route("items", ["GET", "POST"], path="/items")])
    assert matched(router, "/items", "POST") == "items"
    refused = router.match("DELETE", "/items")
    assert refused.route is None
    assert refused.allowed == {"GET", "HEAD", "POST"}


def test_head_is_allowed_where_get_is() -> None:
    router = Router(
        [route("items", ["GET"], path="/items"), route("writes", ["POST"], path="/writes")]
    )
    assert matched(router, "/items", "HEAD") == "items"
    refused = router.match("HEAD", "/writes")
    assert refused.route is None
    assert refused.allowed == {"POST"}


def test_no_methods_means_any_method() -> None:
    router = Router([route("any", path_prefix="/any")])
    for method in ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"):
        assert matched(router, "/any/x", method) == "any"


def test_allow_collects_the_methods_of_every_route_matching_the_path() -> None:
    router = Router(
        [
            route("read", ["GET"], path="/items/1"),
            route("update", ["PUT"], path_template="/items/{id}"),
            route("delete", ["DELETE"], path_prefix="/items"),
        ]
    )
    refused = router.match("PATCH", "/items/1")
    assert refused.route is None
    assert refused.allowed == {"GET", "HEAD", "PUT", "DELETE"}


def test_a_less_specific_route_takes_a_method_the_more_specific_one_refuses() -> None:
    router = Router(
        [route("read-one", ["GET"], path="/items/1"), route("items", path_prefix="/items")]
    )
    assert matched(router, "/items/1", "GET") == "read-one"
    assert matched(router, "/items/1", "DELETE") == "items"


def test_no_route_is_not_a_405() -> None:
    found = Router([route("items", ["GET"], path="/items")]).match("POST", "/other")
    assert found.route is None
    assert found.allowed == frozenset()


def test_routes_are_kept_in_file_order_for_the_gateway_to_compile() -> None:
    routes = [
        route("b", path_prefix="/b"),
        route("a", path="/a"),
        route("c", path_template="/c/{x}"),
    ]
    assert [compiled.name for compiled in Router(routes).routes] == ["b", "a", "c"]
