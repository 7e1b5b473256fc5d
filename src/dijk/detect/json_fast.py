"""A fast path for JSON bodies: find the few strings worth a closer look in one scan.

Walking a parsed JSON document in Python costs more than everything else the detector
does for an ordinary API request. Most string values of ordinary traffic match no rule
and no gate at all, so they need no per-value work. This module finds the ones that do,
without walking:

1. the parsed document is serialised compactly with orjson; when the result has no
   backslash (no string needed an escape), every ``"`` in it is a string delimiter and
   every string appears verbatim (the backslash is looked for by the scan itself, with
   :data:`SLOW_JSON_PATTERN`);
2. turning each ``"`` into NUL gives a buffer in which every string is a NUL-delimited
   segment, exactly as :class:`~dijk.detect.patterns.PatternSet` joins values, with the
   JSON punctuation in the segments between them;
3. one Hyperscan scan of that buffer reports where rules and gates matched; a match lies
   inside one segment (no pattern crosses a NUL), and a segment is a string when an odd
   number of NULs precede it, a key when ``:`` follows it.

Only the matched strings go on to the detector's usual evaluation. A string that no rule
and no gate matches can produce no finding there either, so nothing is lost; a string
that does produce a finding is re-inspected on the slow path, which knows its field
path. Documents the fast path cannot represent faithfully (escapes, ``$`` keys,
``__proto__``, deep nesting, very many values) take the slow path from the start.
"""

from __future__ import annotations

import orjson

from dijk.detect.findings import JsonValue

MAX_DEPTH = 64
MAX_STRINGS = 20_000
MAX_BYTES = 1 << 26  # far above any body limit: large bodies gain the most

_QUOTES_TO_NUL = bytes.maketrans(b'"', b"\x00")

#: Matched in the same Hyperscan scan (as a gate of its own): escapes (strings would not
#: appear verbatim), ``$`` keys and prototype keys (their structural checks need the
#: walk). A document where it matches takes the slow path.
SLOW_JSON_PATTERN = r"\\|{B}\$|__proto__|prototype"

#: Field reference of strings found on the fast path (never a real path, never excluded).
FAST_FIELD = "\x00fast"


def scan_buffer(value: JsonValue) -> bytes | None:
    """The NUL-delimited scan buffer of a parsed JSON value, or None for the slow path."""
    try:
        data = orjson.dumps(value)
    except (TypeError, orjson.JSONEncodeError):
        return None
    if len(data) > MAX_BYTES:
        return None
    # Brackets inside strings count too: an overestimate only costs the fast path.
    if len(data) >= MAX_DEPTH and data.count(b"{") + data.count(b"[") >= MAX_DEPTH:
        return None
    if len(data) >= 2 * MAX_STRINGS and data.count(b'"') >= 2 * MAX_STRINGS:
        return None
    return data.translate(_QUOTES_TO_NUL)


def matched_strings(buffer: bytes, ends: list[int]) -> list[tuple[str, str]]:
    """(location, text) of every string segment in which a match ended.

    ``location`` is ``json`` for values and ``json_name`` for keys; keys that are plain
    identifiers are left out, as the slow path leaves them out.
    """
    found: list[tuple[str, str]] = []
    seen: set[int] = set()
    for end in sorted(set(ends)):
        position = end - 1
        if position >= 0 and buffer[position] == 0:
            position -= 1  # the match ended on the closing delimiter ({E})
        if position < 0 or buffer[position] == 0:
            continue
        start = buffer.rfind(b"\x00", 0, position) + 1
        if start == 0 or start in seen:
            continue
        seen.add(start)
        if buffer.count(b"\x00", 0, start) % 2 == 0:
            continue  # JSON punctuation, numbers, true/false/null between strings
        stop = buffer.find(b"\x00", position)
        text = buffer[start:stop].decode("utf-8", "replace")
        if buffer[stop + 1 : stop + 2] == b":":
            if not text.isidentifier():
                found.append(("json_name", text))
        else:
            found.append(("json", text))
    return found
