"""The admin audit query's parameters, as the API and the dashboard read them."""

from __future__ import annotations

import pytest

from dijk.audit.api import parse_query


def test_route_and_the_other_filters_are_read() -> None:
    query = parse_query(
        [("route", "admin:reload"), ("consumer", "alice"), ("decision", "deny"), ("limit", "5")]
    )
    assert query.route == "admin:reload"
    assert query.consumer == "alice"
    assert query.decision == "deny"
    assert query.limit == 5
    assert query.newest_first


@pytest.mark.parametrize(
    ("pairs", "message"),
    [
        ([("routes", "x")], "unknown parameter 'routes'"),
        ([("route", "a"), ("route", "b")], "given twice"),
        ([("decision", "maybe")], "decision must be"),
        ([("limit", "0")], "limit must be"),
        ([("status", "4x")], "status filter"),
    ],
)
def test_a_bad_parameter_is_refused_never_ignored(
    pairs: list[tuple[str, str]], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        parse_query(pairs)
