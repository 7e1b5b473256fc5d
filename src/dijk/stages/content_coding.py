"""Undoing a request body's ``Content-Encoding`` once, strictly and within a budget.

Every stage that reads a request body (client limits, OpenAPI, WAF, privacy, discovery)
must read what the upstream will read once it has undone the coding, not the compressed
bytes. The client limits stage (the first stage with a body) decodes it here and keeps the
result on :attr:`RequestContext.decoded_body`; the upstream still receives the body as the
client sent it.

Decoding is strict: an unknown coding, a corrupt or truncated stream, or bytes after the
last gzip member that are not another member are errors, and so is output past the budget
(the decoded size counts against the same limit as the body on the wire). Inflation stops
at the budget: a decompression bomb costs at most ``budget`` bytes of memory.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

from dijk.detect.engine import content_codings

__all__ = ["Decoded", "content_codings", "decode_body"]

#: Codings that can be undone, and the zlib window bits for each (deflate: see below).
_WBITS = {"gzip": 16 + zlib.MAX_WBITS, "x-gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS}
#: More gzip members than this in one body is not something a client sends.
MAX_MEMBERS = 1_000


@dataclass(frozen=True, slots=True)
class Decoded:
    """The outcome of decoding: ``body`` on success, else ``error`` (one of
    ``unsupported``, ``too_large``, ``malformed``) with ``detail`` for the client."""

    body: bytes = b""
    error: str = ""
    detail: str = ""


def decode_body(body: bytes, codings: list[str], budget: int) -> Decoded:
    """``body`` with ``codings`` undone (last applied first), at most ``budget`` bytes."""
    for coding in codings:
        if coding not in _WBITS:
            return Decoded(error="unsupported", detail=coding[:32])
    for coding in reversed(codings):
        result = _inflate(body, coding, budget)
        if result.error:
            return result
        body = result.body
    return Decoded(body)


def _inflate(data: bytes, coding: str, budget: int) -> Decoded:
    pieces: list[bytes] = []
    produced = 0
    remaining = data
    for _member in range(MAX_MEMBERS):
        wbits = _WBITS[coding]
        if coding == "deflate" and remaining[:1] != b"\x78":
            wbits = -zlib.MAX_WBITS  # HTTP says zlib-wrapped; some clients send raw deflate
        decompressor = zlib.decompressobj(wbits)
        try:
            # budget + 1: one byte past the budget proves the output is too large.
            chunk = decompressor.decompress(remaining, budget - produced + 1)
        except zlib.error as exc:
            return Decoded(error="malformed", detail=f"{coding}: {exc}")
        produced += len(chunk)
        if produced > budget:
            return Decoded(error="too_large", detail=coding)
        pieces.append(chunk)
        if not decompressor.eof:
            return Decoded(error="malformed", detail=f"{coding}: the stream is truncated")
        remaining = decompressor.unused_data
        if coding != "deflate" and remaining.startswith(b"\x1f\x8b"):
            continue  # another gzip member (RFC 1952 2.2): HTTP libraries read them all
        if remaining.strip(b"\x00"):  # zero padding after gzip is tolerated, as zcat does
            return Decoded(error="malformed", detail=f"{coding}: bytes after the stream")
        return Decoded(b"".join(pieces) if len(pieces) > 1 else pieces[0])
    return Decoded(error="malformed", detail=f"{coding}: more than {MAX_MEMBERS} members")
