"""Strict, bounded decoding of request Content-Encodings."""

from __future__ import annotations

import gzip
import zlib

from dijk.stages.content_coding import content_codings, decode_body

DOC = b'{"item": "tea", "count": 2}'


def test_codings_are_listed_in_the_order_applied_without_identity() -> None:
    assert content_codings("deflate, Identity ,GZIP") == ["deflate", "gzip"]


def test_gzip_deflate_raw_deflate_and_stacked_codings_decode() -> None:
    assert decode_body(gzip.compress(DOC), ["gzip"], 1000).body == DOC
    assert decode_body(zlib.compress(DOC), ["deflate"], 1000).body == DOC
    raw = zlib.compressobj(wbits=-15)
    assert decode_body(raw.compress(DOC) + raw.flush(), ["deflate"], 1000).body == DOC
    stacked = gzip.compress(zlib.compress(DOC))
    assert decode_body(stacked, ["deflate", "gzip"], 1000).body == DOC


def test_every_gzip_member_is_decoded_and_zero_padding_tolerated() -> None:
    body = gzip.compress(DOC[:4]) + gzip.compress(DOC[4:]) + b"\x00" * 8
    assert decode_body(body, ["gzip"], 1000).body == DOC


def test_output_at_the_budget_passes_and_one_byte_more_is_too_large() -> None:
    body = gzip.compress(b"a" * 5000)
    assert decode_body(body, ["gzip"], 5000).body == b"a" * 5000
    assert decode_body(body, ["gzip"], 4999).error == "too_large"


def test_budget_holds_across_members() -> None:
    body = gzip.compress(b"a" * 3000) + gzip.compress(b"b" * 3000)
    assert decode_body(body, ["gzip"], 5999).error == "too_large"


def test_bomb_stops_at_the_budget() -> None:
    bomb = gzip.compress(b"\x00" * (64 << 20))
    assert decode_body(bomb, ["gzip"], 1 << 20).error == "too_large"


def test_truncated_corrupt_or_trailing_bytes_are_malformed() -> None:
    body = gzip.compress(DOC)
    assert decode_body(body[:-4], ["gzip"], 1000).error == "malformed"
    assert decode_body(body[:12] + b"\xff" * 8 + body[20:], ["gzip"], 1000).error == "malformed"
    assert decode_body(body + b"junk", ["gzip"], 1000).error == "malformed"
    assert decode_body(zlib.compress(DOC) + b"x", ["deflate"], 1000).error == "malformed"


def test_unknown_coding_is_unsupported_before_anything_is_decoded() -> None:
    assert decode_body(gzip.compress(DOC), ["br", "gzip"], 1000).error == "unsupported"
