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

import hashlib
import threading
from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import accumulate

import hyperscan

SEPARATOR = "\x00"
_BEGIN_MACRO = "{B}"
_END_MACRO = "{E}"


_FLAGS = hyperscan.HS_FLAG_CASELESS
_HYPERSCAN_VERSION = str(getattr(hyperscan, "__version__", "unknown"))


def fingerprint(patterns: Sequence[tuple[int, str]]) -> str:
    """A digest of the patterns, flags and Hyperscan version: the key under which a
    serialized database of exactly these patterns may be cached."""
    digest = hashlib.sha256(f"dijk-patterns-1|{_FLAGS}|{_HYPERSCAN_VERSION}".encode())
    for pattern_id, pattern in patterns:
        digest.update(f"\x00{pattern_id}\x00{pattern}".encode("utf-8", "surrogatepass"))
    return digest.hexdigest()[:32]


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
        if char in "^$":
            # The scan buffer holds many values: ^ and $ would only ever see the first and
            # the last one. {B} and {E} mark the start and end of each value.
            raise PatternError(f"anchor {char!r} spans the buffer, use {{B}}/{{E}}: {pattern!r}")
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

    def __init__(
        self, patterns: Sequence[tuple[int, str]], serialized: bytes | None = None
    ) -> None:
        """Compile ``patterns``, or load ``serialized`` (from :meth:`serialize` of the same
        patterns, see :func:`fingerprint`) when given and loadable."""
        loaded = self._load(serialized) if serialized else None
        self.loaded = loaded is not None
        if loaded is None:
            loaded = hyperscan.Database(mode=hyperscan.HS_MODE_BLOCK)
            expressions = [prepare_pattern(pattern).encode("utf-8") for _, pattern in patterns]
            loaded.compile(
                expressions=expressions,
                ids=[pattern_id for pattern_id, _ in patterns],
                elements=len(expressions),
                flags=[_FLAGS] * len(expressions),
            )
        self._database: hyperscan.Database = loaded
        self._prototype = hyperscan.Scratch(self._database)
        self._local = threading.local()
        self._lock = threading.Lock()

    @staticmethod
    def _load(serialized: bytes) -> hyperscan.Database | None:
        # Hyperscan checks the database's CRC, version and target platform on load.
        try:
            database = hyperscan.loadb(serialized, hyperscan.HS_MODE_BLOCK)
        except (hyperscan.error, TypeError, ValueError):
            return None
        return database if isinstance(database, hyperscan.Database) else None

    def serialize(self) -> bytes:
        """The compiled database as bytes (Hyperscan's own format, with a CRC)."""
        return bytes(hyperscan.dumpb(self._database))

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
        joined = "\x00".join(texts)
        if joined.isascii():
            buffer = b"\x00" + joined.encode("ascii") + b"\x00"
            lengths = [len(text) for text in texts]
        else:
            encoded = [text.encode("utf-8", "replace") for text in texts]
            buffer = b"\x00" + b"\x00".join(encoded) + b"\x00"
            lengths = [len(piece) for piece in encoded]
        starts = list(accumulate((length + 1 for length in lengths[:-1]), initial=1))
        raw = self.scan_buffer(buffer)
        hits: dict[tuple[int, int], int] = {}
        for pattern_id, end in raw:
            # ``end`` is exclusive; the last byte of the match decides the value.
            index = bisect_right(starts, end - 1) - 1
            key = (pattern_id, index)
            if key not in hits:
                start = starts[index]
                hits[key] = min(end, start + lengths[index]) - start
        return [(pattern, text, end) for (pattern, text), end in hits.items()]

    def scan_buffer(self, buffer: bytes) -> list[tuple[int, int]]:
        """(pattern id, exclusive end offset) of every match in an already joined buffer,
        in the order Hyperscan reports them (by end offset)."""
        found: list[tuple[int, int]] = []
        append = found.append

        def on_match(pattern_id: int, _start: int, end: int, _flags: int, _context: object) -> None:
            append((pattern_id, end))

        self._database.scan(buffer, match_event_handler=on_match, scratch=self._scratch())
        return found
