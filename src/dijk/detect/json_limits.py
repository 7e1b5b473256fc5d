"""Streaming JSON limits: reject deep, wide or long JSON before anything parses it.

A JSON parser given ``[[[[...]]]]`` a million levels deep, an array of a million
elements or a 100 MB string spends the memory before any limit can be checked. This
scanner checks the limits on the raw bytes as the body arrives, chunk by chunk:

- **bounded memory**: it never builds the document. Its state is one int per open
  container (at most ``max_depth``), a few counters, and at most five bytes of an escape
  sequence cut by a chunk boundary. Chunks are worked through in blocks of at most
  :data:`BLOCK_SIZE` bytes;
- **linear time**: Python code runs per bracket and comma, never per byte. Strings,
  escapes included, are skipped and measured with C-level ``bytes`` operations
  (``split``, ``translate``, ``count``); the regular expressions have possessive
  quantifiers only;
- **early rejection**: a violation is reported at the first chunk that proves it, and it
  is sticky.

It is not a JSON validator: the body is parsed later (orjson) and that parse rejects
what this scanner lets through. It flags as ``json.malformed`` only what it meets on the
way: a mismatched or extra bracket, a ``,`` outside any container, a backslash outside a
string, an invalid escape, a raw control character other than tab, LF and CR, and (at
:meth:`JsonLimitScanner.finish`) a truncated document.

How things are measured:

- **depth**: the number of open ``[``/``{``; a scalar at the top is depth 0, ``[]`` is 1;
- **array length / object keys**: commas at that level plus one. The limit is exceeded
  at the comma that proves it, so ``max_array_length`` and ``max_object_keys`` must be at
  least 1. Duplicate keys count every time they appear;
- **string length**: the length in UTF-8 bytes of the *decoded* string, keys and values
  alike: ``\\n`` counts 1, ``\\u00e9`` counts 2, a surrogate pair counts 4 (each
  ``\\uD800``-``\\uDFFF`` half counts 2, so a lone surrogate counts 2).

The violation reported is the one that comes first in the document. Its offset is where
it is proven: the opening bracket one level too deep, the comma one too many, the
opening quote of the string that is too long, the offending byte, or the end of the
document if it is truncated. Verdicts and offsets do not depend on how the body was
split into chunks.

Two scanners live here. The *exact* one walks every token with a regular expression; it
defines the semantics above and finds offsets. The *fast* one takes a whole block with
``split``/``join``/``translate`` and walks only its brackets and commas; it either proves
the block free of violations and updates the state, or gives up without touching the
state and the exact one redoes the block. So a violation costs at most one block of
exact scanning, and clean input never takes the slow road.

This module is pure: no I/O, no clock, no state outside a scanner instance.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

__all__ = [
    "BLOCK_SIZE",
    "REASON_ARRAY_TOO_LONG",
    "REASON_MALFORMED",
    "REASON_STRING_TOO_LONG",
    "REASON_TOO_DEEP",
    "REASON_TOO_MANY_KEYS",
    "JsonLimitScanner",
    "JsonLimitViolation",
    "JsonLimits",
    "check_json_limits",
]

REASON_TOO_DEEP: Final = "json.too_deep"
REASON_ARRAY_TOO_LONG: Final = "json.array_too_long"
REASON_STRING_TOO_LONG: Final = "json.string_too_long"
REASON_TOO_MANY_KEYS: Final = "json.too_many_keys"
REASON_MALFORMED: Final = "json.malformed"

BLOCK_SIZE: Final = 8_192
"""Chunks are scanned in blocks of at most this many bytes; bounds an exact rescan."""

_QUOTE: Final = 0x22
_COMMA: Final = 0x2C
_BACKSLASH: Final = 0x5C

# Raw bytes JSON allows nowhere: control characters other than tab, LF and CR (those are
# whitespace outside strings; inside strings, the later parse rejects them). Refusing
# them also frees 0x01 to serve as a placeholder in the fast scanner.
_CONTROL_CLASS: Final = rb"\x00-\x08\x0b\x0c\x0e-\x1f"
_NOT_CONTROL: Final = bytes(
    byte for byte in range(256) if not (byte < 0x20 and byte not in b"\t\n\r")
)

# --- the exact scanner's patterns -------------------------------------------------------

# The contents of a string up to (not including) its closing quote: allowed bytes and
# complete, valid escapes. It stops at the closing quote, at the end of the buffer, or
# at a byte that cannot continue the string (an invalid escape or a control character).
_PLAIN: Final = rb'[^"\\' + _CONTROL_CLASS + rb"]*+"
_STRING_BODY: Final = _PLAIN + rb'(?:\\(?:["\\/bfnrt]|u[0-9A-Fa-f]{4})' + _PLAIN + rb")*+"

# A token outside strings: a string (group 1 = contents, group 2 = closing quote, empty
# if the string does not end in this buffer), a structural character, or a byte never
# valid outside a string.
_TOKEN: Final = re.compile(rb'"(' + _STRING_BODY + rb')("?)|[\[\]{},\\' + _CONTROL_CLASS + rb"]")

# The rest of a string that began in an earlier block.
_STRING_REST: Final = re.compile(rb"(" + _STRING_BODY + rb')("?)')

# The start of an escape cut by the end of a block, held back for the next block.
_CUT_ESCAPE: Final = re.compile(rb"\\(?:u[0-9A-Fa-f]{0,3})?\Z")

# --- the fast scanner's tables ----------------------------------------------------------

# `\\` and `\"` are replaced by two placeholder bytes each, so that no escape can hide a
# quote or pair up with a neighbouring backslash.
_PLACEHOLDER: Final = b"\x01\x01"

# Eight commas in a row, walked as one step (the walk gives up, and the exact scanner
# takes over, if the eight together would pass a limit).
_COMMA_RUN: Final = b",,,,,,,,"

# Keep quotes, brackets and commas, and backslashes and placeholders (which must not
# appear outside strings).
_NOT_SKELETON: Final = bytes(byte for byte in range(256) if byte not in b'[]{},"\\\x01')


def _translation(mapping: dict[bytes, bytes]) -> bytes:
    """A ``bytes.translate`` table: each byte of a key becomes its value, others stay."""
    table = bytearray(range(256))
    for sources, target in mapping.items():
        for byte in sources:
            table[byte] = target[0]
    return bytes(table)


# Simple escape letters become `s`, so valid simple escapes are counted in one pass.
_SIMPLE_ESCAPES: Final = _translation({b"/bfnrt": b"s", b"s": b"x"})
# Hex digits become `h`, so `\uhhhh` counts the well-formed `\u` escapes in one pass.
_HEX_DIGITS: Final = _translation({b"0123456789abcdefABCDEF": b"h", b"h": b"x"})
# Classify `\u` escapes by code point: `\u00`+`0`/`l` needs one UTF-8 byte, `\u0`+`0`/`l`
# at most two, `\ud`+`h`/`d` is a surrogate half.
_CODE_POINT_CLASSES: Final = _translation(
    {b"1234567": b"l", b"89abcefABCEF": b"h", b"dD": b"d", b"lh": b"x"}
)

# The stack of open containers is a list of ints, one per container, innermost last:
# `remaining * 4 + kind`, where `remaining` is how many more commas the container takes
# before its limit is exceeded. The bottom entry is a sentinel of kind 0 that matches no
# closing bracket and takes no comma. One int per level keeps the hot loop short.
_ARRAY: Final = 1
_OBJECT: Final = 2
_KIND_MASK: Final = 3
_COMMA_STEP: Final = 4
_TOP_LEVEL: Final = 0


@dataclass(frozen=True, slots=True)
class JsonLimits:
    """Bounds on the shape of a JSON document; the defaults suit typical APIs."""

    max_depth: int = 32
    max_array_length: int = 10_000
    max_string_length: int = 65_536
    max_object_keys: int = 1_000

    def __post_init__(self) -> None:
        if self.max_depth < 0 or self.max_string_length < 0:
            raise ValueError("max_depth and max_string_length must not be negative")
        if self.max_array_length < 1 or self.max_object_keys < 1:
            raise ValueError("max_array_length and max_object_keys must be at least 1")


@dataclass(frozen=True, slots=True)
class JsonLimitViolation:
    """The first limit a document breaks, or the reason it cannot be JSON.

    ``detail`` is safe to show to a client: it states the limit, never the input.
    """

    reason: str
    limit: int | None
    offset: int
    detail: str


class JsonLimitScanner:
    """Check :class:`JsonLimits` on a JSON body fed in chunks of any size.

    Feed every chunk, then call :meth:`finish`. Both return the first violation (the
    same one on every later call) or ``None``. One scanner per body.
    """

    __slots__ = (
        "_carry",
        "_fast",
        "_finished",
        "_in_string",
        "_limits",
        "_offset",
        "_stack",
        "_string_length",
        "_string_start",
        "_violation",
    )

    def __init__(self, limits: JsonLimits) -> None:
        self._limits = limits
        self._fast = True  # tests switch the fast scanner off to compare the two
        self._offset = 0  # absolute offset of the next byte to be fed
        self._carry = b""  # an escape cut by the end of the previous block
        self._stack = [_TOP_LEVEL]  # see _ARRAY above
        self._in_string = False
        self._string_start = 0  # absolute offset of the open string's opening quote
        self._string_length = 0  # decoded UTF-8 bytes of the open string so far
        self._violation: JsonLimitViolation | None = None
        self._finished = False

    def feed(self, chunk: bytes) -> JsonLimitViolation | None:
        """Scan the next chunk of the body; return the first violation so far, if any."""
        if self._violation is not None:
            return self._violation
        if self._finished:
            raise ValueError("feed() called after finish()")
        if len(chunk) <= BLOCK_SIZE:
            self._feed_block(chunk)
            return self._violation
        for start in range(0, len(chunk), BLOCK_SIZE):
            self._feed_block(chunk[start : start + BLOCK_SIZE])
            if self._violation is not None:
                break
        return self._violation

    def finish(self) -> JsonLimitViolation | None:
        """Declare the body complete; a string or container still open is malformed."""
        self._finished = True
        if self._violation is None:
            if self._in_string:
                self._violation = _malformed(self._offset, "unterminated string")
            elif self._carry:
                offset = self._offset - len(self._carry)
                self._violation = _malformed(offset, "backslash outside a string")
            elif len(self._stack) > 1:
                self._violation = _malformed(self._offset, "unclosed array or object")
        return self._violation

    def _feed_block(self, block: bytes) -> None:
        base = self._offset - len(self._carry)  # absolute offset of block[0] below
        self._offset += len(block)
        if self._carry:
            block = self._carry + block
        cut = _cut_escape_length(block)
        self._carry = block[len(block) - cut :] if cut else b""
        if cut:
            block = block[:-cut]
        # A control byte anywhere, or an invalid escape, ends the scan with a violation:
        # the exact scanner takes such blocks. So the fast one may use 0x01 as a
        # placeholder and rely on every backslash beginning a valid escape.
        if not self._fast or block.translate(None, _NOT_CONTROL):
            self._scan_block_exactly(block, base)
            return
        neutral = block
        if b"\\" in block:
            # The block starts at an escape boundary, and runs of backslashes inside
            # strings start at an escape, so pairing backslashes left to right is exact.
            # A backslash outside a string stays visible as a backslash or placeholder
            # between strings, and the fast scanner gives up on it.
            neutral = _neutralise(block)
            if not _escapes_valid(neutral):
                self._scan_block_exactly(block, base)
                return
        position = self._continue_string_fast(neutral) if self._in_string else 0
        if 0 <= position < len(block) and not self._scan_fast(neutral, position, base):
            self._scan_exact(block, position, base)

    # --- exact scanner ------------------------------------------------------------------

    def _scan_block_exactly(self, block: bytes, base: int) -> None:
        position = self._continue_string_exact(block, base) if self._in_string else 0
        if 0 <= position < len(block):
            self._scan_exact(block, position, base)

    def _continue_string_exact(self, block: bytes, base: int) -> int:
        """Consume the rest of an open string; return where tokens resume, or -1."""
        rest = _STRING_REST.match(block)
        assert rest is not None  # the pattern matches the empty string
        contents_end = rest.end(1)
        self._string_length += _decoded_length(block[:contents_end])
        if self._string_length > self._limits.max_string_length:
            self._violation = _string_too_long(self._string_start, self._limits)
            return -1
        if rest.end(2) > contents_end:
            self._in_string = False
            return contents_end + 1
        if contents_end < len(block):
            self._violation = _bad_string_byte(block, contents_end, base)
        return -1

    def _scan_exact(self, block: bytes, position: int, base: int) -> None:
        """Walk every token of ``block`` from ``position``, outside strings.

        This defines the semantics; the fast scanner must agree with it.
        """
        limits = self._limits
        stack = self._stack
        for token in _TOKEN.finditer(block, position):
            start = token.start()
            byte = block[start]
            if byte == _QUOTE:
                contents_start, contents_end = token.span(1)
                length = _decoded_length(block[contents_start:contents_end])
                if length > limits.max_string_length:
                    self._violation = _string_too_long(base + start, limits)
                    return
                if token.end(2) > contents_end:  # the string is closed
                    continue
                if contents_end < len(block):
                    self._violation = _bad_string_byte(block, contents_end, base)
                    return
                self._in_string = True
                self._string_start = base + start
                self._string_length = length
                return
            if byte == _COMMA:
                entry = stack[-1] - _COMMA_STEP
                if entry < _COMMA_STEP:
                    self._violation = _too_many_commas(entry & _KIND_MASK, base + start, limits)
                    return
                stack[-1] = entry
            elif byte in b"[{":
                if len(stack) > limits.max_depth:
                    self._violation = _too_deep(base + start, limits)
                    return
                stack.append(_open_entry(byte, limits))
            elif byte in b"]}":
                if stack[-1] & _KIND_MASK != (_ARRAY if byte == 0x5D else _OBJECT):
                    self._violation = _malformed(base + start, "mismatched bracket")
                    return
                stack.pop()
            elif byte == _BACKSLASH:
                self._violation = _malformed(base + start, "backslash outside a string")
                return
            else:
                self._violation = _malformed(base + start, "control character")
                return

    # --- fast scanner -------------------------------------------------------------------

    def _continue_string_fast(self, neutral: bytes) -> int:
        """Consume the rest of an open string; return where tokens resume, or -1."""
        quote = neutral.find(b'"')
        contents = neutral[:quote] if quote >= 0 else neutral
        self._string_length += _neutral_decoded_length(contents)
        if self._string_length > self._limits.max_string_length:
            self._violation = _string_too_long(self._string_start, self._limits)
            return -1
        if quote < 0:
            return -1
        self._in_string = False
        return quote + 1

    def _scan_fast(self, neutral: bytes, position: int, base: int) -> bool:
        """Prove ``neutral[position:]`` free of violations and update the state, or give up.

        ``neutral`` is the block with `\\\\` and `\\"` replaced by placeholders. Gives up
        (returns False, state untouched) on anything unusual or on any violation; the
        exact scanner then redoes the rest of the block and finds the offset.
        """
        rest = neutral[position:] if position else neutral
        # Splitting the skeleton at its quotes is cheap: the parts are short and mostly
        # empty. Even parts are outside strings.
        skeleton = rest.translate(None, _NOT_SKELETON).split(b'"')
        structure = b"".join(skeleton[0::2]) if len(skeleton) > 1 else skeleton[0]
        if b"\\" in structure or b"\x01" in structure:
            return False
        limit = self._limits.max_string_length
        if len(rest) > limit + 1 and not _strings_fit(rest, limit):
            return False
        if not self._walk_structure(structure):
            return False
        if len(skeleton) % 2 == 0:  # the last string is still open
            opening_quote = rest.rfind(b'"')
            self._in_string = True
            self._string_start = base + position + opening_quote
            self._string_length = _neutral_decoded_length(rest[opening_quote + 1 :])
        return True

    def _walk_structure(self, structure: bytes) -> bool:
        """Apply brackets and commas to a copy of the stack; commit it if no violation.

        The hot loop of the scanner: literals instead of named constants on purpose.
        """
        limits = self._limits
        max_stack = limits.max_depth  # the sentinel makes the stack one longer than depth
        array_entry = _open_entry(0x5B, limits)
        object_entry = _open_entry(0x7B, limits)
        if _COMMA_RUN in structure:  # long arrays of numbers: eight commas at a time
            structure = structure.replace(_COMMA_RUN, b"8")
        stack = self._stack.copy()
        push = stack.append
        pop = stack.pop
        for byte in structure:
            if byte == 0x2C:  # ,
                entry = stack[-1] - 4
                if entry < 4:
                    return False
                stack[-1] = entry
            elif byte == 0x5B:  # [
                if len(stack) > max_stack:
                    return False
                push(array_entry)
            elif byte == 0x7B:  # {
                if len(stack) > max_stack:
                    return False
                push(object_entry)
            elif byte == 0x5D:  # ]
                if pop() & 3 != 1:
                    return False
            elif byte == 0x7D:  # }
                if pop() & 3 != 2:
                    return False
            else:  # 8, eight commas
                entry = stack[-1] - 32
                if entry < 4:
                    return False
                stack[-1] = entry
        self._stack = stack
        return True


def check_json_limits(data: bytes, limits: JsonLimits) -> JsonLimitViolation | None:
    """Check a whole body at once: :meth:`JsonLimitScanner.feed` then ``finish``."""
    scanner = JsonLimitScanner(limits)
    violation = scanner.feed(data)
    return violation if violation is not None else scanner.finish()


def _cut_escape_length(block: bytes) -> int:
    """How many bytes at the end of ``block`` are an escape cut short, or 0.

    The block starts at an escape boundary, so the parity of the final run of
    backslashes tells whether its last backslash begins an escape or is escaped itself.
    """
    tail = max(0, len(block) - 5)
    if block.find(b"\\", tail) < 0:
        return 0
    cut = _CUT_ESCAPE.search(block, tail)
    if cut is None:
        return 0
    backslash = cut.start()
    run = backslash + 1 - len(block[: backslash + 1].rstrip(b"\\"))
    return len(block) - backslash if run % 2 else 0


def _neutralise(data: bytes) -> bytes:
    """Replace each `\\\\` and `\\"` escape by a two-byte placeholder."""
    return data.replace(b"\\\\", _PLACEHOLDER).replace(b'\\"', _PLACEHOLDER)


def _escapes_valid(neutral: bytes) -> bool:
    """Whether every backslash left in ``neutral`` begins a complete, valid escape."""
    backslashes = neutral.count(b"\\")
    if not backslashes:
        return True
    unicode_escapes = neutral.count(b"\\u")
    simple_escapes = neutral.translate(_SIMPLE_ESCAPES).count(b"\\s")
    if simple_escapes + unicode_escapes != backslashes:
        return False
    return (
        not unicode_escapes or neutral.translate(_HEX_DIGITS).count(b"\\uhhhh") == unicode_escapes
    )


def _strings_fit(neutral: bytes, limit: int) -> bool:
    """Whether every string in ``neutral`` decodes to at most ``limit`` bytes."""
    strings = neutral.split(b'"')[1::2]
    if not strings or max(map(len, strings)) <= limit:
        return True
    return all(
        _neutral_decoded_length(contents) <= limit for contents in strings if len(contents) > limit
    )


def _decoded_length(contents: bytes) -> int:
    """UTF-8 length of string contents made of raw bytes and complete valid escapes."""
    if b"\\" not in contents:
        return len(contents)
    # Each `\\` is one escaped backslash; every backslash left begins another escape.
    unpaired = contents.replace(b"\\\\", b"")
    return (len(contents) - len(unpaired)) // 2 + _unpaired_decoded_length(unpaired)


def _neutral_decoded_length(neutral: bytes) -> int:
    """UTF-8 length of string contents where `\\\\` and `\\"` became placeholders."""
    if b"\\" not in neutral and b"\x01" not in neutral:
        return len(neutral)
    return _unpaired_decoded_length(neutral) - neutral.count(b"\x01") // 2


def _unpaired_decoded_length(contents: bytes) -> int:
    """UTF-8 length of contents whose backslashes each begin a valid escape.

    A fixed number of C-level passes, so a string of nothing but escapes costs no more
    Python work than one without.
    """
    escapes = contents.count(b"\\")
    length = len(contents) - escapes  # an escape is two bytes or more for one or more
    unicode_escapes = contents.count(b"\\u") if escapes else 0
    if unicode_escapes:
        classes = contents.translate(_CODE_POINT_CLASSES)
        up_to_two_bytes = classes.count(b"\\u00") + classes.count(b"\\u0l")
        one_byte = classes.count(b"\\u000") + classes.count(b"\\u00l")
        surrogate_halves = classes.count(b"\\udh") + classes.count(b"\\udd")
        # `\uXXXX` counts 5 so far: 3 bytes, 2 below U+0800 or for a surrogate half,
        # 1 below U+0080.
        length -= 2 * unicode_escapes + up_to_two_bytes + one_byte + surrogate_halves
    return length


def _open_entry(bracket: int, limits: JsonLimits) -> int:
    if bracket == 0x5B:
        return limits.max_array_length * _COMMA_STEP + _ARRAY
    return limits.max_object_keys * _COMMA_STEP + _OBJECT


def _too_many_commas(kind: int, offset: int, limits: JsonLimits) -> JsonLimitViolation:
    if kind == _ARRAY:
        return _array_too_long(offset, limits)
    if kind == _OBJECT:
        return _too_many_keys(offset, limits)
    return _malformed(offset, "',' outside an array or object")


def _bad_string_byte(block: bytes, index: int, base: int) -> JsonLimitViolation:
    if block[index] == _BACKSLASH:
        return _malformed(base + index, "invalid escape in a string")
    return _malformed(base + index, "control character in a string")


def _malformed(offset: int, detail: str) -> JsonLimitViolation:
    return JsonLimitViolation(REASON_MALFORMED, None, offset, f"malformed JSON: {detail}")


def _too_deep(offset: int, limits: JsonLimits) -> JsonLimitViolation:
    return JsonLimitViolation(
        REASON_TOO_DEEP,
        limits.max_depth,
        offset,
        f"JSON nesting is deeper than {limits.max_depth} levels",
    )


def _string_too_long(offset: int, limits: JsonLimits) -> JsonLimitViolation:
    return JsonLimitViolation(
        REASON_STRING_TOO_LONG,
        limits.max_string_length,
        offset,
        f"a JSON string is longer than {limits.max_string_length} bytes",
    )


def _array_too_long(offset: int, limits: JsonLimits) -> JsonLimitViolation:
    return JsonLimitViolation(
        REASON_ARRAY_TOO_LONG,
        limits.max_array_length,
        offset,
        f"a JSON array has more than {limits.max_array_length} elements",
    )


def _too_many_keys(offset: int, limits: JsonLimits) -> JsonLimitViolation:
    return JsonLimitViolation(
        REASON_TOO_MANY_KEYS,
        limits.max_object_keys,
        offset,
        f"a JSON object has more than {limits.max_object_keys} keys",
    )
