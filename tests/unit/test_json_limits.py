"""Streaming JSON limits: table cases, chunk-split invariance, properties."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dijk.detect import json_limits
from dijk.detect.json_limits import (
    REASON_ARRAY_TOO_LONG,
    REASON_MALFORMED,
    REASON_STRING_TOO_LONG,
    REASON_TOO_DEEP,
    REASON_TOO_MANY_KEYS,
    JsonLimits,
    JsonLimitScanner,
    JsonLimitViolation,
    check_json_limits,
)

SMALL = JsonLimits(max_depth=3, max_array_length=3, max_string_length=5, max_object_keys=2)
DEFAULT = JsonLimits()

LIMIT_REASONS = {
    REASON_TOO_DEEP,
    REASON_ARRAY_TOO_LONG,
    REASON_STRING_TOO_LONG,
    REASON_TOO_MANY_KEYS,
}


def scan(
    data: bytes,
    limits: JsonLimits,
    *,
    cuts: Iterable[int] = (),
    fast: bool = True,
) -> JsonLimitViolation | None:
    """Feed ``data`` split at the offsets in ``cuts`` and finish."""
    scanner = JsonLimitScanner(limits)
    scanner._fast = fast
    start = 0
    for cut in [*sorted(set(cuts)), len(data)]:
        scanner.feed(data[start:cut])
        start = cut
    return scanner.finish()


def chunks_of(data: bytes, size: int) -> list[int]:
    return list(range(size, len(data), size))


# (document, limits, expected reason or None, expected offset or None)
CASES: list[tuple[bytes, JsonLimits, str | None, int | None]] = [
    (b"[]", SMALL, None, None),
    (b"{}", SMALL, None, None),
    (b"123", SMALL, None, None),
    (b"", SMALL, None, None),
    (b"  \t\r\n ", SMALL, None, None),
    (b'"abc"', SMALL, None, None),
    (b"[[[]]]", SMALL, None, None),
    (b"[[[[]]]]", SMALL, REASON_TOO_DEEP, 3),
    (b'{"a":{"b":{"c":{}}}}', SMALL, REASON_TOO_DEEP, 15),
    (b'[{"a":[{}]}]', SMALL, REASON_TOO_DEEP, 7),
    (b"[1,2,3]", SMALL, None, None),
    (b"[1,2,3,4]", SMALL, REASON_ARRAY_TOO_LONG, 6),
    (b"[[1,2,3],[1,2,3],[1,2,3]]", SMALL, None, None),
    (b"[[1,2,3],[1,2,3,4]]", SMALL, REASON_ARRAY_TOO_LONG, 15),
    (b'[",,,,,,", ",,,,,"]', SMALL, REASON_STRING_TOO_LONG, 1),
    (b'[",,,,,", ",,,,,"]', SMALL, None, None),
    (b'{"a":1,"b":2}', SMALL, None, None),
    (b'{"a":1,"b":2,"c":3}', SMALL, REASON_TOO_MANY_KEYS, 12),
    (b'{"a":[1,2,3],"b":{"c":1,"d":2}}', SMALL, None, None),
    (b'{"a":{"x":1,"y":2,"z":3}}', SMALL, REASON_TOO_MANY_KEYS, 17),
    (b'"abcde"', SMALL, None, None),
    (b'"abcdef"', SMALL, REASON_STRING_TOO_LONG, 0),
    (b'{"abcdef":1}', SMALL, REASON_STRING_TOO_LONG, 1),
    (b'["\\u00e9\\u00e9"]', SMALL, None, None),
    (b'["\\u00e9\\u00e9\\u00e9"]', SMALL, REASON_STRING_TOO_LONG, 1),
    (b'["\\u20ac\\u20AC"]', SMALL, REASON_STRING_TOO_LONG, 1),
    (b'["\\u20aca"]', SMALL, None, None),
    (b'["\\ud83d\\ude00a"]', SMALL, None, None),
    (b'["\\uD83D\\uDE00ab"]', SMALL, REASON_STRING_TOO_LONG, 1),
    (b'["\\u0041\\u007f\\u0000\\u0020\\u0061"]', SMALL, None, None),
    (b'["\\u0041\\u007f\\u0000\\u0020\\u0061\\u0062"]', SMALL, REASON_STRING_TOO_LONG, 1),
    (b'["\\u0080\\u07ff"]', SMALL, None, None),
    (b'["\\u0080\\u07ff\\u0800"]', SMALL, REASON_STRING_TOO_LONG, 1),
    (b'"\\n\\n\\n\\n\\n"', SMALL, None, None),
    (b'"\\n\\n\\n\\n\\n\\t"', SMALL, REASON_STRING_TOO_LONG, 0),
    (b'"\\"\\\\\\/\\b\\f"', SMALL, None, None),
    (b'"\\"\\\\\\/\\b\\f\\r"', SMALL, REASON_STRING_TOO_LONG, 0),
    ('"ééé"'.encode(), SMALL, REASON_STRING_TOO_LONG, 0),
    ('"éé"'.encode(), SMALL, None, None),
    (b'["[[[[[", "]]]]}"]', SMALL, None, None),
    (b'["{,,,", "[[[["]', SMALL, None, None),
    (b'["a\\"]"]', SMALL, None, None),
    (b'["a\\\\"]', SMALL, None, None),
    (b'["a\\\\\\"]"]', SMALL, None, None),
    (b'["\\\\u0041"]', SMALL, REASON_STRING_TOO_LONG, 1),
    (b'["abcdefgh", [[[[]]]]]', SMALL, REASON_STRING_TOO_LONG, 1),
    (b'[[[[ "abcdefgh"', SMALL, REASON_TOO_DEEP, 3),
    (b"[}", SMALL, REASON_MALFORMED, 1),
    (b"{]", SMALL, REASON_MALFORMED, 1),
    (b"]", SMALL, REASON_MALFORMED, 0),
    (b"[1]]", SMALL, REASON_MALFORMED, 3),
    (b"[1", SMALL, REASON_MALFORMED, 2),
    (b'{"a":[1,2', SMALL, REASON_MALFORMED, 9),
    (b'"abc', SMALL, REASON_MALFORMED, 4),
    (b'["a', SMALL, REASON_MALFORMED, 3),
    (b'"a\\', SMALL, REASON_MALFORMED, 3),
    (b'"\\u12', SMALL, REASON_MALFORMED, 5),
    (b'"\\x"', SMALL, REASON_MALFORMED, 1),
    (b'"\\u12"', SMALL, REASON_MALFORMED, 1),
    (b'"\\u12g4"', SMALL, REASON_MALFORMED, 1),
    (b'"\\U0041"', SMALL, REASON_MALFORMED, 1),
    (b"1,2", SMALL, REASON_MALFORMED, 1),
    (b"[1],[2]", SMALL, REASON_MALFORMED, 3),
    (b"[1]\\", SMALL, REASON_MALFORMED, 3),
    (b"[\\n]", SMALL, REASON_MALFORMED, 1),
    (b'[\\"a"]', SMALL, REASON_MALFORMED, 1),
    (b'"a\x00b"', SMALL, REASON_MALFORMED, 2),
    (b'"a\x1fb"', SMALL, REASON_MALFORMED, 2),
    (b"[\x01]", SMALL, REASON_MALFORMED, 1),
    (b'"a\tb"', SMALL, None, None),
    (b"[1]\x7f\xff", SMALL, None, None),
]


@pytest.mark.parametrize(("document", "limits", "reason", "offset"), CASES)
def test_table_case_gives_the_expected_verdict(
    document: bytes, limits: JsonLimits, reason: str | None, offset: int | None
) -> None:
    for fast in (True, False):
        violation = scan(document, limits, fast=fast)
        if reason is None:
            assert violation is None
        else:
            assert violation is not None
            assert (violation.reason, violation.offset) == (reason, offset)


@pytest.mark.parametrize(("document", "limits", "reason", "offset"), CASES)
def test_verdict_is_the_same_for_every_split_of_the_document(
    document: bytes, limits: JsonLimits, reason: str | None, offset: int | None
) -> None:
    expected = check_json_limits(document, limits)
    for fast in (True, False):
        for cut in range(len(document) + 1):
            assert scan(document, limits, cuts=[cut], fast=fast) == expected
        assert scan(document, limits, cuts=range(len(document)), fast=fast) == expected


def test_violation_names_the_limit_and_never_echoes_input() -> None:
    violation = check_json_limits(b'["<script>alert(1)</script>"]', SMALL)
    assert violation == JsonLimitViolation(
        REASON_STRING_TOO_LONG, 5, 1, "a JSON string is longer than 5 bytes"
    )
    malformed = check_json_limits(b'["<b>', SMALL)
    assert malformed is not None
    assert malformed.limit is None
    assert "<b>" not in malformed.detail
    assert malformed.reason == REASON_MALFORMED


def test_default_limits_accept_exactly_the_limit_and_reject_one_more() -> None:
    assert check_json_limits(b"[" * 32 + b"]" * 32, DEFAULT) is None
    deep = check_json_limits(b"[" * 33 + b"]" * 33, DEFAULT)
    assert deep is not None
    assert (deep.reason, deep.offset) == (REASON_TOO_DEEP, 32)

    assert check_json_limits(json.dumps([0] * 10_000).encode(), DEFAULT) is None
    long_array = check_json_limits(json.dumps([0] * 10_001).encode(), DEFAULT)
    assert long_array is not None
    assert long_array.reason == REASON_ARRAY_TOO_LONG

    assert check_json_limits(json.dumps("x" * 65_536).encode(), DEFAULT) is None
    long_string = check_json_limits(json.dumps("x" * 65_537).encode(), DEFAULT)
    assert long_string is not None
    assert long_string.reason == REASON_STRING_TOO_LONG

    keys = {f"k{index}": index for index in range(1_000)}
    assert check_json_limits(json.dumps(keys).encode(), DEFAULT) is None
    keys["one-more"] = 0
    too_many = check_json_limits(json.dumps(keys).encode(), DEFAULT)
    assert too_many is not None
    assert too_many.reason == REASON_TOO_MANY_KEYS


def test_string_length_counts_decoded_bytes_across_blocks() -> None:
    limits = JsonLimits(max_string_length=40_000)
    exactly = b'"' + b"\\u00e9" * 20_000 + b'"'  # 120 000 bytes of JSON, 40 000 decoded
    assert len(exactly) > 3 * json_limits.BLOCK_SIZE
    assert check_json_limits(exactly, limits) is None
    one_more = b'"' + b"\\u00e9" * 20_000 + b'a"'
    violation = check_json_limits(one_more, limits)
    assert violation is not None
    assert (violation.reason, violation.offset) == (REASON_STRING_TOO_LONG, 0)
    for size in (1, 5, 4_099, json_limits.BLOCK_SIZE - 1, json_limits.BLOCK_SIZE + 3):
        assert scan(one_more, limits, cuts=chunks_of(one_more, size)) == violation


def test_long_string_streams_in_bounded_memory() -> None:
    limits = JsonLimits(max_string_length=8 * 1024 * 1024)
    scanner = JsonLimitScanner(limits)
    assert scanner.feed(b'{"blob": "') is None
    piece = b"abc\\n\\u00e9\\\\" * 5_000
    for _ in range(100):
        assert scanner.feed(piece) is None
        assert len(scanner._carry) <= 5
        assert len(scanner._stack) == 2
    assert scanner.feed(b'"}') is None
    assert scanner.finish() is None


def test_deep_nesting_is_rejected_at_the_first_level_too_many() -> None:
    scanner = JsonLimitScanner(DEFAULT)
    violation = None
    for _ in range(1_000):
        violation = scanner.feed(b"[" * 1_000)
        assert len(scanner._stack) <= DEFAULT.max_depth + 1
        if violation is not None:
            break
    assert violation is not None
    assert (violation.reason, violation.offset) == (REASON_TOO_DEEP, 32)


def test_violation_is_sticky_and_finish_is_idempotent() -> None:
    scanner = JsonLimitScanner(SMALL)
    first = scanner.feed(b"[1,2,3,4")
    assert first is not None
    assert scanner.feed(b"]") is first
    assert scanner.finish() is first
    assert scanner.finish() is first
    assert scanner.feed(b"more") is first


def test_feeding_after_finish_is_a_programming_error() -> None:
    scanner = JsonLimitScanner(SMALL)
    scanner.feed(b"[]")
    assert scanner.finish() is None
    with pytest.raises(ValueError, match="after finish"):
        scanner.feed(b"[]")


def test_empty_chunks_change_nothing() -> None:
    scanner = JsonLimitScanner(SMALL)
    for chunk in (b"", b'["a', b"", b'b"', b"", b"]", b""):
        assert scanner.feed(chunk) is None
    assert scanner.finish() is None


@pytest.mark.parametrize(
    "arguments",
    [
        {"max_depth": -1},
        {"max_string_length": -1},
        {"max_array_length": 0},
        {"max_object_keys": 0},
    ],
)
def test_nonsensical_limits_are_refused(arguments: dict[str, int]) -> None:
    with pytest.raises(ValueError, match="must"):
        JsonLimits(**arguments)


def test_zero_depth_and_zero_string_length_allow_only_scalars_and_empty_strings() -> None:
    limits = JsonLimits(max_depth=0, max_string_length=0)
    assert check_json_limits(b'""', limits) is None
    assert check_json_limits(b"12", limits) is None
    deep = check_json_limits(b"[]", limits)
    assert deep is not None
    assert deep.reason == REASON_TOO_DEEP
    long_string = check_json_limits(b'"a"', limits)
    assert long_string is not None
    assert long_string.reason == REASON_STRING_TOO_LONG


# --- properties ---------------------------------------------------------------------

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
)
json_values = st.recursive(
    json_scalars,
    lambda children: st.lists(children, max_size=6) | st.dictionaries(st.text(), children),
    max_leaves=25,
)


def measure(value: Any, depth: int = 0) -> tuple[int, int, int, int]:
    """Reference: (depth, longest array, longest string in UTF-8 bytes, most keys)."""
    if isinstance(value, str):
        return (depth, 0, len(value.encode("utf-8")), 0)
    if isinstance(value, list):
        found = [measure(item, depth + 1) for item in value]
        return _combine(found, depth + 1, len(value), 0)
    if isinstance(value, dict):
        found = [measure(item, depth + 1) for item in value.values()]
        found += [(0, 0, len(key.encode("utf-8")), 0) for key in value]
        return _combine(found, depth + 1, 0, len(value))
    return (depth, 0, 0, 0)


def _combine(
    found: Sequence[tuple[int, int, int, int]], depth: int, length: int, keys: int
) -> tuple[int, int, int, int]:
    return (
        max([depth, *(item[0] for item in found)]),
        max([length, *(item[1] for item in found)]),
        max([0, *(item[2] for item in found)]),
        max([keys, *(item[3] for item in found)]),
    )


def serialise(value: Any, style: int) -> bytes:
    if style == 0:
        return json.dumps(value).encode()
    if style == 1:
        return json.dumps(value, ensure_ascii=False).encode()
    if style == 2:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()
    return json.dumps(value, indent=2).encode()


@settings(suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(json_values, st.integers(0, 3), st.data())
def test_scanner_agrees_with_a_reference_computed_from_the_parsed_value(
    value: Any, style: int, data: st.DataObject
) -> None:
    depth, array_length, string_length, keys = measure(value)
    offsets = (-1, 0, 1)
    limits = JsonLimits(
        max_depth=max(0, depth + data.draw(st.sampled_from(offsets))),
        max_array_length=max(1, array_length + data.draw(st.sampled_from(offsets))),
        max_string_length=max(0, string_length + data.draw(st.sampled_from(offsets))),
        max_object_keys=max(1, keys + data.draw(st.sampled_from(offsets))),
    )
    exceeded = set()
    if depth > limits.max_depth:
        exceeded.add(REASON_TOO_DEEP)
    if array_length > limits.max_array_length:
        exceeded.add(REASON_ARRAY_TOO_LONG)
    if string_length > limits.max_string_length:
        exceeded.add(REASON_STRING_TOO_LONG)
    if keys > limits.max_object_keys:
        exceeded.add(REASON_TOO_MANY_KEYS)
    document = serialise(value, style)
    cuts = data.draw(st.lists(st.integers(0, len(document)), max_size=4))
    for fast in (True, False):
        violation = scan(document, limits, cuts=cuts, fast=fast)
        if exceeded:
            assert violation is not None
            assert violation.reason in exceeded
        else:
            assert violation is None


_PIECES = [
    b"[",
    b"]",
    b"{",
    b"}",
    b",",
    b",,,,,,,,",
    b",,,,,,,,,,,",
    b":",
    b'"',
    b'"',
    b'"',
    b"\\",
    b'\\"',
    b"\\\\",
    b"\\n",
    b"\\/",
    b"\\u00e9",
    b"\\u20AC",
    b"\\ud83d",
    b"\\u12",
    b"\\x",
    b"a",
    b"1",
    b" ",
    b"\n",
    b"\t",
    b"\x00",
    b"\x01",
    b"\x01\x01",
    "é".encode(),
    b"\xff",
]

json_like = st.lists(st.sampled_from(_PIECES), max_size=40).map(b"".join)
tiny_limits = st.builds(
    JsonLimits,
    max_depth=st.integers(0, 4),
    max_array_length=st.integers(1, 4),
    max_string_length=st.integers(0, 8),
    max_object_keys=st.integers(1, 4),
)


@settings(deadline=None)
@given(json_like | st.binary(max_size=64), tiny_limits | st.just(DEFAULT), st.data())
def test_fast_and_exact_scanners_agree_on_any_bytes_and_any_split(
    document: bytes, limits: JsonLimits, data: st.DataObject
) -> None:
    expected = scan(document, limits, fast=False)
    cuts = data.draw(st.lists(st.integers(0, len(document)), max_size=5))
    assert scan(document, limits, cuts=cuts, fast=False) == expected
    assert scan(document, limits, cuts=cuts, fast=True) == expected
    assert scan(document, limits, fast=True) == expected


@settings(deadline=None)
@given(json_like, tiny_limits, st.integers(1, 9))
def test_blocks_smaller_than_chunks_give_the_same_verdict(
    document: bytes, limits: JsonLimits, block_size: int
) -> None:
    expected = scan(document, limits, fast=False)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(json_limits, "BLOCK_SIZE", block_size)
        assert scan(document, limits) == expected
        assert scan(document, limits, fast=False) == expected


@given(st.lists(st.binary(max_size=32), max_size=8), tiny_limits | st.just(DEFAULT))
def test_random_chunks_never_raise(chunks: list[bytes], limits: JsonLimits) -> None:
    scanner = JsonLimitScanner(limits)
    for chunk in chunks:
        result = scanner.feed(chunk)
        assert result is None or isinstance(result, JsonLimitViolation)
    final = scanner.finish()
    assert final is None or final.reason in {*LIMIT_REASONS, REASON_MALFORMED}


@settings(deadline=None)
@given(json_like | st.binary(max_size=64), tiny_limits | st.just(DEFAULT), st.data())
def test_fast_scanner_hands_a_block_to_the_exact_one_only_to_report_a_violation(
    document: bytes, limits: JsonLimits, data: st.DataObject
) -> None:
    """So exact (slow) scanning costs at most one block per body, whatever the input."""
    cuts = data.draw(st.lists(st.integers(0, len(document)), max_size=5))
    original_block = JsonLimitScanner._scan_block_exactly
    original_tokens = JsonLimitScanner._scan_exact

    def block_then_check(scanner: JsonLimitScanner, block: bytes, base: int) -> None:
        original_block(scanner, block, base)
        assert scanner._violation is not None

    def tokens_then_check(
        scanner: JsonLimitScanner, block: bytes, position: int, base: int
    ) -> None:
        original_tokens(scanner, block, position, base)
        assert scanner._violation is not None

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(JsonLimitScanner, "_scan_block_exactly", block_then_check)
        patch.setattr(JsonLimitScanner, "_scan_exact", tokens_then_check)
        scan(document, limits, cuts=cuts)
