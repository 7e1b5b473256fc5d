"""The Hyperscan pattern dialect: no match may cross the separator between values."""

from __future__ import annotations

import pytest

from dijk.detect.engine import compiled_patterns
from dijk.detect.patterns import PatternError, PatternSet, prepare_pattern
from dijk.detect.rules import RULES


def test_negated_classes_exclude_the_separator() -> None:
    assert prepare_pattern("a[^>]*b") == "a[^\\x00>]*b"
    assert prepare_pattern("[]a]") == "[]a]"
    assert prepare_pattern("{B}x{E}") == "\\x00x\\x00"


@pytest.mark.parametrize("pattern", ["a.b", "\\W", "[\\S]", "[abc", "(^|;)select", "x$"])
def test_patterns_that_could_cross_values_are_refused(pattern: str) -> None:
    with pytest.raises(PatternError):
        prepare_pattern(pattern)


def test_every_rule_pattern_is_accepted() -> None:
    for rule in RULES:
        if rule.pattern is not None:
            prepare_pattern(rule.pattern)


def test_anchors_inside_classes_and_escaped_are_allowed() -> None:
    assert prepare_pattern("[^a]\\$x") == "[^\\x00a]\\$x"


def test_a_rule_that_starts_a_value_matches_every_value_not_just_the_first() -> None:
    # Regression: '(^|...)select' only ever matched the first value of the scan buffer.
    patterns = compiled_patterns()
    index = next(i for i, rule in enumerate(RULES) if rule.rule_id == "sqli-select-from")
    hits = patterns.scan_with_offsets(["/api/v1/search", "select * from sysusers"])
    assert (index, 1) in {(pattern, segment) for pattern, segment, _ in hits}


def test_matches_are_attributed_to_the_right_value() -> None:
    patterns = PatternSet([(1, "union\\s+select"), (2, "{B}abc{E}")])
    hits = patterns.scan(["xx", "1 union select 2", "abc", "zabc", "union", "select"])
    assert hits == [(1, 1), (2, 2)]


def test_no_rule_matches_across_two_values() -> None:
    patterns = compiled_patterns()
    halves = [("1 union", "select 1,2"), ("<script", ">alert(1)"), ("; cat /etc/", "passwd")]
    for left, right in halves:
        alone = {pattern for pattern, _ in patterns.scan([left])} | {
            pattern for pattern, _ in patterns.scan([right])
        }
        together = {pattern for pattern, _ in patterns.scan([left, right])}
        assert together == alone
