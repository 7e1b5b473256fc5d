"""Invariants of the parsers, stated as hypothesis properties.

- the path normaliser is idempotent, and what it returns has no dot segment left;
- the router only ever matches a path that literally meets the chosen route's definition
  after normalisation (``/public/../admin`` never matches the ``/public`` prefix), and the
  choice is the same for the normalised form normalised again;
- the streaming JSON limits scanner agrees with ``json.loads``: it never calls a document
  the parser accepts malformed (RFC 8259 documents: Python's extras such as ``NaN`` are
  left out), and it refuses one for depth exactly when the parsed document is deeper than
  the limit; its verdict does not depend on how the body is cut into chunks.
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dijk.detect.json_limits import JsonLimits, JsonLimitScanner, check_json_limits
from dijk.routing.normalise import PathError, normalise_path
from fuzz.targets import ROUTER, route_satisfied

PROPERTIES = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

SEGMENTS = st.sampled_from(
    [
        "",
        ".",
        "..",
        "%2e",
        "%2E%2e",
        ".%2e",
        "public",
        "admin",
        "api",
        "v1",
        "accounts",
        "tx",
        "1",
        "health",
        "%2F",
        "%2f",
        "%5C",
        "..;",
        "%3B",
        "a%20b",
        "%41",
        "~",
        "x.y",
        "%252e",
        "%c0%ae",
        "%zz",
        "%",
    ]
)
PATHS = st.lists(SEGMENTS, min_size=1, max_size=8).map(lambda parts: "/" + "/".join(parts))
OPTIONS = st.fixed_dictionaries(
    {"merge_slashes": st.booleans(), "allow_encoded_slash": st.booleans()}
)


@PROPERTIES
@given(PATHS | st.text(max_size=40).map(lambda text: "/" + text), OPTIONS)
def test_the_normaliser_is_idempotent(path: str, options: dict[str, bool]) -> None:
    try:
        normal = normalise_path(path, **options)
    except PathError:
        return
    assert normalise_path(normal, **options) == normal
    assert "/../" not in normal + "/"
    assert "/./" not in normal + "/"


@PROPERTIES
@given(PATHS, st.sampled_from(["GET", "POST", "DELETE"]))
def test_the_router_never_matches_what_the_normalised_path_does_not_meet(
    path: str, method: str
) -> None:
    try:
        normal = normalise_path(path)
    except PathError:
        return
    found = ROUTER.match(method, normal)
    again = ROUTER.match(method, normalise_path(normal))
    assert (found.route, found.params) == (again.route, again.params)
    if found.route is not None:
        assert route_satisfied(found.route, normal), (path, normal, found.route.name)


def test_a_dot_segment_cannot_carry_a_path_into_a_prefix_route() -> None:
    for path in ("/public/../admin", "/public/%2e%2e/admin", "/admin/../public/x"):
        normal = normalise_path(path)
        found = ROUTER.match("GET", normal)
        assert found.route is None or route_satisfied(found.route, normal)
    assert ROUTER.match("GET", normalise_path("/public/../admin")).route is None


JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=4), children, max_size=4)
    ),
    max_leaves=25,
)


def _depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max((_depth(child) for child in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((_depth(child) for child in value), default=0)
    return 0


def _mutate(text: bytes, data: st.DataObject) -> bytes:
    if not text or not data.draw(st.booleans()):
        return text
    index = data.draw(st.integers(0, len(text) - 1))
    replacement = data.draw(
        st.sampled_from([b"", b"[", b"]", b"{", b"}", b",", b'"', b"\\", b":", b"\x01"])
    )
    return text[:index] + replacement + text[index + 1 :]


@PROPERTIES
@given(JSON_VALUES, st.integers(0, 8), st.booleans(), st.data())
def test_the_limits_scanner_agrees_with_json_loads(
    value: Any, max_depth: int, indent: bool, data: st.DataObject
) -> None:
    body = _mutate(json.dumps(value, indent=2 if indent else None).encode(), data)
    limits = JsonLimits(max_depth=max_depth, max_array_length=1 << 30, max_string_length=1 << 30)
    violation = check_json_limits(body, limits)
    try:
        parsed = json.loads(body)
    except ValueError:
        return  # the scanner is no validator: the parse later refuses what it let through
    if violation is None:
        assert _depth(parsed) <= max_depth
    else:
        assert violation.reason == "json.too_deep", violation
        assert _depth(parsed) > max_depth


@PROPERTIES
@given(JSON_VALUES, st.integers(1, 9), st.data())
def test_the_limits_scanner_verdict_does_not_depend_on_chunking(
    value: Any, step: int, data: st.DataObject
) -> None:
    body = _mutate(json.dumps(value).encode(), data)
    limits = JsonLimits(max_depth=3, max_array_length=3, max_string_length=6, max_object_keys=3)
    whole = check_json_limits(body, limits)
    scanner = JsonLimitScanner(limits)
    verdict = None
    for start in range(0, len(body), step):
        verdict = scanner.feed(body[start : start + step])
        if verdict is not None:
            break
    assert whole == (verdict if verdict is not None else scanner.finish())
