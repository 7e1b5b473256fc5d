"""Our own rules, compiled once into one Hyperscan database and scanned in one pass.

Hyperscan is an automaton-based matcher: its scan time is linear in the input whatever
the patterns, so a request cannot make it backtrack. All values of a request (and their
decoded variants) are joined into one buffer separated by NUL, and scanned with one call;
a match is attributed to the value that holds its last byte.

For that to be sound no pattern may match across a separator. :func:`prepare_pattern`
enforces it: the bare ``.`` and the negated shorthands ``\\W``, ``\\S``, ``\\D`` are
refused, and every negated class ``[^...]`` gets ``\\x00`` added. ``{B}`` and ``{E}`` in a
pattern stand for the start and the end of a value.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass

import hyperscan

SEPARATOR = "\x00"
_BEGIN_MACRO = "{B}"
_END_MACRO = "{E}"


class PatternError(ValueError):
    """A rule pattern could match across the separator between values."""


def prepare_pattern(pattern: str) -> str:
    """Rewrite a rule pattern so that it cannot match across a value separator."""
    out: list[str] = []
    index = 0
    in_class = False
    length = len(pattern)
    while index < length:
        char = pattern[index]
        if char == "\\":
            escaped = pattern[index + 1 : index + 2]
            if escaped in ("W", "S", "D", "N", "H", "V", "R", "X", "C") and not in_class:
                raise PatternError(f"negated shorthand \\{escaped} may match NUL: {pattern!r}")
            if escaped in ("W", "S", "D") and in_class:
                raise PatternError(f"negated shorthand \\{escaped} in a class: {pattern!r}")
            out.append(pattern[index : index + 2])
            index += 2
            continue
        if in_class:
            if char == "]":
                in_class = False
            out.append(char)
            index += 1
            continue
        if char == "[":
            in_class = True
            if pattern.startswith("[^", index):
                out.append("[^\\x00")
                index += 2
            else:
                out.append("[")
                index += 1
            # A ']' right after the opening bracket is a literal member of the class.
            if index < length and pattern[index] == "]":
                out.append("]")
                index += 1
            continue
        if char == ".":
            raise PatternError(f"bare '.' may match NUL: {pattern!r}")
        if pattern.startswith(_BEGIN_MACRO, index) or pattern.startswith(_END_MACRO, index):
            out.append("\\x00")
            index += len(_BEGIN_MACRO)
            continue
        out.append(char)
        index += 1
    if in_class:
        raise PatternError(f"unterminated class: {pattern!r}")
    return "".join(out)


@dataclass(frozen=True, slots=True)
class Segment:
    """One value in the scan buffer and where it came from."""

    leaf: int
    transform: str
    text: str


class PatternSet:
    """A compiled Hyperscan database; scanning is thread-safe (one scratch per thread)."""

    def __init__(self, patterns: Sequence[tuple[int, str]]) -> None:
        self._database = hyperscan.Database(mode=hyperscan.HS_MODE_BLOCK)
        flags = hyperscan.HS_FLAG_CASELESS
        expressions = [prepare_pattern(pattern).encode("utf-8") for _, pattern in patterns]
        self._database.compile(
            expressions=expressions,
            ids=[pattern_id for pattern_id, _ in patterns],
            elements=len(expressions),
            flags=[flags] * len(expressions),
        )
        self._prototype = hyperscan.Scratch(self._database)
        self._local = threading.local()
        self._lock = threading.Lock()

    def _scratch(self) -> hyperscan.Scratch:
        scratch = getattr(self._local, "scratch", None)
        if scratch is None:
            with self._lock:
                scratch = self._prototype.clone()
            self._local.scratch = scratch
        return scratch

    def scan(self, texts: Sequence[str]) -> list[tuple[int, int]]:
        """(pattern id, index of the text) for every pattern that matched, sorted."""
        return sorted({(pattern, text) for pattern, text, _ in self.scan_with_offsets(texts)})

    def scan_with_offsets(self, texts: Sequence[str]) -> list[tuple[int, int, int]]:
        """(pattern id, index of the text, end byte offset in that text), first match each."""
        if not texts:
            return []
        starts: list[int] = []
        pieces: list[bytes] = [b"\x00"]
        offset = 1
        for text in texts:
            encoded = text.encode("utf-8", "replace")
            starts.append(offset)
            pieces.append(encoded)
            pieces.append(b"\x00")
            offset += len(encoded) + 1
        buffer = b"".join(pieces)
        hits: dict[tuple[int, int], int] = {}
        last = len(starts) - 1

        def on_match(pattern_id: int, _start: int, end: int, _flags: int, _context: object) -> None:
            # ``end`` is exclusive; the last byte of the match decides the value.
            position = end - 1
            low, high = 0, last
            while low < high:
                middle = (low + high + 1) // 2
                if starts[middle] <= position:
                    low = middle
                else:
                    high = middle - 1
            key = (pattern_id, low)
            if key not in hits:
                hits[key] = (
                    min(end, starts[low] + len(texts[low].encode("utf-8", "replace"))) - starts[low]
                )

        self._database.scan(buffer, match_event_handler=on_match, scratch=self._scratch())
        return [(pattern, text, end) for (pattern, text), end in hits.items()]
