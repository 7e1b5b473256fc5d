"""The fast paths of PII detection and masking give what the straightforward code gives.

The scanners find candidates with comprehensions, lookup tables and per-text indexes, and
the masker copies only the containers on the way to a finding. Each of those has a plain
reference here (the obvious loop, or the general code path) and a property test that the
two agree, so the speed-ups cannot change a finding or a masked byte.
"""

from __future__ import annotations

import bisect
import dataclasses
import json
import re
import string
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from stdnum import luhn

from dijk.detect import pii_digits, pii_identifiers, pii_text
from dijk.detect.masking import Masker, Strategy
from dijk.detect.pii import PiiDetector
from dijk.detect.pii_model import CATEGORY_PRIORITY, Category
from dijk.detect.pii_paths import found, resolve_node, resolve_path

DETECTOR = PiiDetector()
KEY = b"0123456789abcdef0123456789abcdef"
FAST = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# --- grouped IBANs ----------------------------------------------------------------------

iban_texts = st.lists(
    st.sampled_from(["NL91", "ABNA", "0417", "1643", "00", "AB12", "ab12", "Z9Z9", " ", "  "])
    | st.sampled_from(["X", "1", "12", "é", "-", "DE89", "NL"]),
    max_size=25,
).map("".join)


@FAST
@given(iban_texts)
def test_iban_group_index_agrees_with_the_look_back(text: str) -> None:
    runs = pii_digits._Runs(text, [], [text])
    for start in range(len(text) + 1):
        assert runs.in_iban_groups(start) == pii_digits.in_grouped_iban(text, start), start


def _grouped_iban_end_reference(text: str, end: int, length: int) -> int | None:
    """Group by group, as the scanner first did it."""
    run = re.compile(r"[A-Z0-9]{0,65}")
    total = 4
    position = end
    while total < length:
        if position + 1 >= len(text) or text[position] != " ":
            return None
        group = run.match(text, position + 1, position + 6)
        size = group.end() - group.start() if group is not None else 0
        if not 1 <= size <= 4 or (size < 4 and total + size != length):
            return None
        total += size
        position += 1 + size
    if total != length or (position < len(text) and text[position].isalnum()):
        return None
    return position


@FAST
@given(iban_texts, st.sampled_from(sorted(set(pii_identifiers.IBAN_LENGTHS.values()))))
def test_grouped_iban_layout_check_agrees_with_the_group_walk(text: str, length: int) -> None:
    text = "NL91" + text
    assert pii_identifiers._grouped_iban_end(text, 4, length) == _grouped_iban_end_reference(
        text, 4, length
    )


# --- cards ------------------------------------------------------------------------------


def _issuer_uses(number: str) -> bool:
    """The issuer rule as `_CARD_RANGES` states it (prefix range and lengths)."""
    first_four = int(number[:4])
    return any(
        len(number) in lengths and low <= first_four // pii_digits._PREFIX_SCALE[width] <= high
        for low, high, width, lengths in pii_digits._CARD_RANGES
    )


def test_card_prefix_table_agrees_with_the_issuer_ranges() -> None:
    for first_four in range(10_000):
        for length in range(12, 20):
            number = f"{first_four:04d}" + "0" * (length - 4)
            table = length in pii_digits._CARD_LENGTHS.get(number[:4], frozenset())
            assert table == _issuer_uses(number), number


def _card_rule(number: str) -> bool:
    return luhn.is_valid(number) and _issuer_uses(number) and len(set(number)) > 1


prefixes = st.sampled_from(["4111", "5500", "3782", "6011", "3528", "5018", "2221", "1234"])


@settings(max_examples=1000, deadline=None)
@given(prefixes, st.text(alphabet=string.digits, min_size=8, max_size=15))
def test_cards_are_found_exactly_when_luhn_and_the_issuer_allow(prefix: str, rest: str) -> None:
    """The Luhn sums on slices of the text's digits agree with python-stdnum."""
    number = prefix + rest
    cards = [m for m in DETECTOR.scan_text("kaart " + number) if m.category is Category.CARD]
    assert bool(cards) == _card_rule(number), number


@settings(max_examples=1000, deadline=None)
@given(prefixes, st.text(alphabet=string.digits, min_size=12, max_size=12))
def test_grouped_cards_try_the_longest_allowed_length_first(prefix: str, rest: str) -> None:
    number = prefix + rest
    text = "kaart " + " ".join(number[index : index + 4] for index in range(0, 16, 4))
    # (a card may also start at a later group: only the one at the first is checked)
    cards = [m for m in DETECTOR.scan_text(text) if m.category is Category.CARD and m.start == 6]
    if _card_rule(number):
        expected = text[6:]
    elif _card_rule(number[:12]):
        expected = text[6:20]
    else:
        expected = None
    assert (text[cards[0].start : cards[0].end] if cards else None) == expected


# --- phone gaps and keywords --------------------------------------------------------------


@FAST
@given(st.text(alphabet=" -./()+a0", max_size=5))
def test_phone_gap_table_agrees_with_the_gap_rule(gap: str) -> None:
    assert (gap in pii_digits._PHONE_GAPS) == pii_digits._is_phone_gap(gap)


@pytest.mark.parametrize(
    ("stems", "keywords"),
    [
        (pii_digits._BSN_KEYWORD_STEMS, pii_digits._BSN_KEYWORDS),
        (pii_digits._BIRTH_KEYWORD_STEMS, pii_digits._BIRTH_KEYWORDS),
    ],
)
def test_every_keyword_contains_a_stem_the_quick_test_looks_for(
    stems: tuple[str, ...], keywords: tuple[str, ...]
) -> None:
    assert all(any(stem in keyword for stem in stems) for keyword in keywords)


# --- overlaps ---------------------------------------------------------------------------

_RANK = {category: rank for rank, category in enumerate(CATEGORY_PRIORITY)}


def _resolve_overlaps_reference(found: list[pii_text.Finding]) -> list[pii_text.Finding]:
    """Priority, then length, then position; a finding that overlaps a kept one goes."""
    if len(found) <= 1:
        return found
    ordered = sorted(found, key=lambda item: (_RANK[item[0]], item[1] - item[2], item[1]))
    starts: list[int] = []
    ends: list[int] = []
    kept: list[pii_text.Finding] = []
    for finding in ordered:
        _, start, end = finding
        index = bisect.bisect_right(starts, start)
        if index > 0 and ends[index - 1] > start:
            continue
        if index < len(starts) and starts[index] < end:
            continue
        starts.insert(index, start)
        ends.insert(index, end)
        kept.append(finding)
    kept.sort(key=lambda item: item[1])
    return kept


findings = st.lists(
    st.tuples(st.sampled_from(list(Category)), st.integers(0, 40), st.integers(0, 12)).map(
        lambda item: (item[0], item[1], item[1] + item[2])
    ),
    max_size=30,
)


@settings(max_examples=1000, deadline=None)
@given(findings)
def test_overlap_resolution_agrees_with_the_insertion_reference(
    found: list[pii_text.Finding],
) -> None:
    assert pii_text._resolve_overlaps(list(found)) == _resolve_overlaps_reference(list(found))


# --- documents: nodes, paths, masking -----------------------------------------------------

PII_VALUES = [
    "jan@example.nl",
    "06-12345678",
    "NL91 ABNA 0417 1643 00",
    "4111 1111 1111 1111",
    "111222333",
    "1985-03-14",
    "1012 AB",
    "AKIAIOSFODNN7EXAMPLE",
]
words = st.text(alphabet=string.ascii_letters, min_size=1, max_size=6)
keys = words | st.sampled_from(["email", "bsn", "phone", "jan@example.nl", "06-12345678", "dob"])
leaves = (
    st.sampled_from(PII_VALUES)
    | st.lists(words | st.sampled_from(PII_VALUES), min_size=1, max_size=4).map(" ".join)
    | st.sampled_from([111222333, 612345678, 1, True, None, 1.5])
)
documents = st.recursive(
    leaves,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(keys, children, max_size=4),
    max_leaves=25,
)


def _without_locations(matches: list[Any]) -> list[Any]:
    return [dataclasses.replace(match, location=None) for match in matches]


@FAST
@given(
    documents,
    st.sampled_from(list(Strategy)),
    st.none() | st.sets(st.sampled_from(list(Category)), min_size=1).map(sorted),
)
def test_masking_along_the_scan_nodes_agrees_with_the_path_walk(
    document: Any, strategy: Strategy, categories: list[Category] | None
) -> None:
    """With nodes the masker copies only what leads to a finding; without, it visits
    every value and looks its path up. The JSON must be the same."""
    masker = Masker(strategy=strategy, key=KEY, categories=categories)
    matches = DETECTOR.scan_json(document)
    by_nodes = masker.mask_json(document, matches)
    by_paths = masker.mask_json(document, _without_locations(matches))
    assert json.dumps(by_nodes) == json.dumps(by_paths)


@FAST
@given(documents)
def test_a_document_scanned_again_gives_the_same_matches(document: Any) -> None:
    """Matches are kept per node and reused: the second scan, and one after `forget`,
    give equal lists, all located in one tree."""
    first = DETECTOR.scan_json(document)
    again = DETECTOR.scan_json(document)
    fresh = PiiDetector().scan_json(document)
    assert first == again == fresh
    roots = set()
    for match in again:
        assert match.location is not None
        node = match.location
        while node.parent is not None:
            node = node.parent
        roots.add(id(node))
        assert match.location.path == match.path
        assert match.location.template == match.path_template
    assert len(roots) <= 1


@FAST
@given(documents)
def test_nodes_and_paths_lead_to_the_same_value(document: Any) -> None:
    containers: dict[Any, object] = {}
    for match in DETECTOR.scan_json(document):
        assert match.location is not None
        by_node = resolve_node(document, match.location, containers)
        by_path = resolve_path(document, match.path)
        assert found(by_node[0])
        assert by_node[0] is by_path[0]
        assert by_node[1] == by_path[1]


def test_keys_that_are_not_strings_leave_matches_without_nodes() -> None:
    document = {1: "jan@example.nl", "x": {"email": "piet@example.nl"}}
    matches = DETECTOR.scan_json(document)
    assert [match.path for match in matches] == ['$["1"]', "$.x.email"]
    assert all(match.location is None for match in matches)
    assert Masker().mask_json(document, matches) == {
        "1": "j***@example.nl",
        "x": {"email": "p***@example.nl"},
    }


def test_nodes_kept_between_documents_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    from dijk.detect import pii as pii_module

    monkeypatch.setattr(pii_module, "_NODE_LIMIT", 50)
    detector = PiiDetector()
    for round_number in range(5):
        document = [{"email": f"user{round_number}.{index}@example.nl"} for index in range(40)]
        matches = detector.scan_json(document)
        assert len(matches) == 40
        assert detector._node_count <= 50
    assert detector.scan_json(document) == PiiDetector().scan_json(document)


def test_matches_of_two_documents_still_hide_every_finding() -> None:
    """Nodes are kept across documents, so `$.x` can be a value in one scan and an object
    in the next; matches mixed from both must not make the masker skip a finding."""
    detector = PiiDetector()
    first = {"x": "jan@example.nl"}
    second = {"x": {"y": "piet@example.nl"}}
    matches = detector.scan_json(first) + detector.scan_json(second)
    masker = Masker()
    assert masker.mask_json(first, matches) == {"x": "j***@example.nl"}
    assert masker.mask_json(second, matches) == {"x": {"y": "p***@example.nl"}}
    assert masker.mask_json(first, matches) == masker.mask_json(first, _without_locations(matches))
