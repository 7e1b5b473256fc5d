"""Request-path normalisation: one canonical path for routing *and* for the upstream.

The gateway normalises the path exactly once. Route matching and the request forwarded
upstream both use the result, so ``/public/../admin`` cannot be routed as ``/public/...``
while the upstream serves ``/admin``: the gateway and the upstream see the same path.

What the normaliser does, in order:

1. **Reject** what a legitimate client never sends: a path that does not start with ``/``,
   bytes outside visible ASCII (0x21-0x7E), a fragment marker ``#``, a raw backslash
   (some upstreams treat ``\\`` as ``/``), a path longer than :data:`MAX_PATH_LENGTH`.
2. **Percent-decode** only the unreserved characters of RFC 3986 §2.3 (ALPHA, DIGIT,
   ``-``, ``.``, ``_``, ``~``); every other escape stays encoded with its hex uppercased
   (``%2f`` becomes ``%2F``, RFC 3986 §6.2.2.1). Malformed escapes are rejected. Encoded
   control characters (``%00``-``%1F``, ``%7F``) are rejected. Encoded ``/`` and ``\\``
   (``%2F``, ``%5C``) are rejected unless ``allow_encoded_slash`` is set, and then they are
   kept encoded: never decoded into a separator. ``%C0`` and ``%C1`` are rejected: they
   only ever start an overlong UTF-8 sequence (``%C0%AE`` is a disguised ``.`` to some
   decoders).

   Decoding happens once. ``%2e`` is an encoded ``.`` and takes part in dot-segment
   removal, but ``%252e`` is an encoded ``%`` followed by the literal text ``2e``: it
   stays exactly ``%252e``. The literal ``2e`` is *not* uppercased, because it is not the
   hex of an escape and paths are case-sensitive. An upstream that decodes twice is
   broken; that is for a traversal detector to flag, not for the normaliser to guess.
3. **Remove dot segments** (RFC 3986 §5.2.4) after decoding. A path that climbs above the
   root (``/../x``) is rejected, not clamped: a legitimate client never sends one.
   Segments that some servers read as dot segments (``..;jsessionid`` in Tomcat,
   ``..%2F`` when encoded slashes are allowed) are rejected too.
4. **Merge duplicate slashes** (``//a///b`` becomes ``/a/b``) when ``merge_slashes`` is
   set, the default. Keeping ``//`` is risky: a leading ``//host`` reads as an authority
   to some URL parsers.

A trailing slash is kept (``/a/`` stays ``/a/``) because many APIs distinguish it.
The result is idempotent: ``normalise_path(normalise_path(p)) == normalise_path(p)``.

This module is pure: no I/O, no state, no clock. It runs on every request, so paths
without ``%``, ``.`` or ``//`` take a fast path that only checks the characters.
"""

from __future__ import annotations

import re
import string
from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

__all__ = [
    "MAX_PATH_LENGTH",
    "REASON_ENCODED_SLASH",
    "REASON_INVALID_PATH",
    "REASON_PATH_TOO_LONG",
    "REASON_PATH_TRAVERSAL",
    "PathError",
    "canonical_escapes",
    "normalise_path",
]

MAX_PATH_LENGTH: Final = 8192
"""Longest raw path accepted, in characters (bytes). Longer paths are rejected."""

REASON_INVALID_PATH: Final = "http.invalid_path"
REASON_PATH_TOO_LONG: Final = "http.path_too_long"
REASON_ENCODED_SLASH: Final = "http.encoded_slash"
REASON_PATH_TRAVERSAL: Final = "http.path_traversal"

# Anything but visible ASCII, and the two visible characters never allowed in a path:
# `#` (0x23, a fragment has no business in a request target) and `\` (0x5C).
_FORBIDDEN_CHARACTER: Final = re.compile(r"[^\x21\x22\x24-\x5b\x5d-\x7e]")

# A segment that is not literally `.` or `..` but that some server may still read as
# one: `..;param` (Tomcat strips path parameters), or a dot segment hidden between
# encoded separators when `allow_encoded_slash` keeps `%2F`/`%5C`. Run on the decoded
# path after dot-segment removal, where hex is uppercase and real dot segments are gone.
_DISGUISED_DOT_SEGMENT: Final = re.compile(r"(?:/|%2F|%5C)\.\.?(?=$|/|;|%3B|%2F|%5C)")

_REFUSED_BYTES: Final = frozenset([*range(0x20), 0x7F, 0xC0, 0xC1])
_UNRESERVED: Final = frozenset(string.ascii_letters + string.digits + "-._~")
_ENCODED_SEPARATORS: Final = frozenset({"%2F", "%5C"})


def _build_escape_table() -> Mapping[str, str]:
    """Map every acceptable two-digit hex pair (any case) to its canonical form.

    Unreserved characters map to themselves decoded; everything else maps to its escape
    with uppercase hex. Control characters and the overlong-UTF-8 lead bytes 0xC0 and
    0xC1 are absent, so a lookup miss means "reject".
    """
    table: dict[str, str] = {}
    hex_digits = "0123456789abcdefABCDEF"
    for high in hex_digits:
        for low in hex_digits:
            value = int(high + low, 16)
            if value in _REFUSED_BYTES:
                continue
            character = chr(value)
            if character in _UNRESERVED:
                table[high + low] = character
            else:
                table[high + low] = f"%{value:02X}"
    return MappingProxyType(table)


_ESCAPES: Final = _build_escape_table()


class PathError(ValueError):
    """The request path is not acceptable.

    ``reason`` is a stable ``area.what`` code for the denial, metrics and audit record;
    the message is safe to show to a client: it never echoes the path.
    """

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message

    def __reduce__(self) -> tuple[type[PathError], tuple[str, str]]:
        return (type(self), (self.reason, self.message))


def normalise_path(
    raw: str | bytes,
    *,
    merge_slashes: bool = True,
    allow_encoded_slash: bool = False,
) -> str:
    """Return the canonical form of an origin-form request path, or raise :class:`PathError`.

    ``raw`` is the path without the query string (split at the first ``?`` before calling).
    See the module docstring for the rules and why each exists.
    """
    if len(raw) > MAX_PATH_LENGTH:
        raise PathError(REASON_PATH_TOO_LONG, f"path is longer than {MAX_PATH_LENGTH} bytes")
    # latin-1 maps every byte to one character; non-ASCII ones are rejected just below.
    path = raw.decode("latin-1") if isinstance(raw, bytes) else raw
    if not path.startswith("/"):
        raise PathError(REASON_INVALID_PATH, "path must start with '/'")
    forbidden = _FORBIDDEN_CHARACTER.search(path)
    if forbidden is not None:
        raise PathError(REASON_INVALID_PATH, _forbidden_character_message(forbidden.group()))
    if "%" not in path and "." not in path and "//" not in path:
        return path
    if "%" in path:
        path = _decode_unreserved(path, allow_encoded_slash=allow_encoded_slash)
    normalised = _remove_dot_segments(path, merge_slashes=merge_slashes)
    if "." in normalised and _DISGUISED_DOT_SEGMENT.search(normalised) is not None:
        raise PathError(REASON_PATH_TRAVERSAL, "path contains a disguised dot segment")
    return normalised


def canonical_escapes(raw: str) -> str:
    """``raw`` with only step 2 applied: unreserved escapes decoded, other escapes in
    uppercase hex; no dot-segment removal, no slash merging.

    ``normalise_path(raw) == canonical_escapes(raw)`` says that normalising changed nothing
    an upstream could read differently: a proxy that forwards ``raw`` as sent (a decision
    service's nginx or Envoy in front) then forwards the very path that was judged. Call it
    only on a path :func:`normalise_path` accepted.
    """
    if "%" not in raw:
        return raw
    return _decode_unreserved(raw, allow_encoded_slash=True)


def _forbidden_character_message(character: str) -> str:
    """Say what kind of character was refused, without echoing it."""
    if character == "#":
        return "path must not contain a fragment ('#')"
    if character == "\\":
        return "path must not contain a backslash"
    return "path contains a byte outside visible ASCII"


def _decode_unreserved(path: str, *, allow_encoded_slash: bool) -> str:
    """Decode escapes of unreserved characters; canonicalise all other escapes.

    One pass, left to right: the output of a decoded escape is never decoded again.
    """
    pieces = path.split("%")
    decoded = [pieces[0]]
    for piece in pieces[1:]:
        pair = piece[:2]
        replacement = _ESCAPES.get(pair)
        if replacement is None:
            raise PathError(REASON_INVALID_PATH, _bad_escape_message(pair))
        if replacement in _ENCODED_SEPARATORS and not allow_encoded_slash:
            raise PathError(REASON_ENCODED_SLASH, "path contains an encoded '/' or '\\'")
        decoded.append(replacement)
        decoded.append(piece[2:])
    return "".join(decoded)


def _bad_escape_message(pair: str) -> str:
    if len(pair) < 2 or not all(character in string.hexdigits for character in pair):
        return "path contains a malformed percent-escape"
    if int(pair, 16) in (0xC0, 0xC1):
        return "path contains an overlong UTF-8 sequence"
    return "path contains an encoded control character"


def _remove_dot_segments(path: str, *, merge_slashes: bool) -> str:
    """Resolve ``.`` and ``..`` segments (RFC 3986 §5.2.4), refusing to climb above root.

    With ``merge_slashes`` empty segments are dropped first, so ``/a//../b`` is ``/b``:
    the same answer as a server that merges slashes before resolving.
    """
    segments = path.split("/")
    last = len(segments) - 1
    kept: list[str] = []
    trailing_slash = False
    for index in range(1, len(segments)):
        segment = segments[index]
        if segment == ".":
            trailing_slash = index == last
        elif segment == "..":
            if not kept:
                raise PathError(REASON_PATH_TRAVERSAL, "path climbs above the root")
            kept.pop()
            trailing_slash = index == last
        elif not segment and (merge_slashes or index == last):
            trailing_slash = index == last
        else:
            kept.append(segment)
            trailing_slash = False
    if not kept:
        return "/"
    joined = "/" + "/".join(kept)
    return joined + "/" if trailing_slash else joined
