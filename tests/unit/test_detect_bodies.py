"""Bodies are inspected as what the upstream will parse, whatever their label says, and
compressed bodies as the upstream will inflate them (every gzip member)."""

from __future__ import annotations

import gzip
import json
import zlib

import pytest

from dijk.detect.archives import MAX_GZIP_MEMBERS, inflate
from dijk.detect.engine import Detector, decodable_encoding, looks_textual
from dijk.detect.findings import RequestParts, Verdict

DETECTOR = Detector()
ATTACK = json.dumps({"name": "<script>alert(document.cookie)</script>", "role": "admin"}).encode()
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)) * 8


def post(body: bytes, content_type: str, encoding: str = "") -> Verdict:
    headers = [("Content-Type", content_type)]
    if encoding:
        headers.append(("Content-Encoding", encoding))
    return DETECTOR.inspect(RequestParts.from_target("POST", "/api/v1/accounts", headers, body))


@pytest.mark.parametrize(
    "content_type",
    ["application/octet-stream", "image/png", "video/mp4", "application/pdf", "text/plain"],
)
def test_json_under_any_label_is_inspected_as_json(content_type: str) -> None:
    verdict = post(ATTACK, content_type)
    assert verdict.blocked
    assert "xss" in verdict.categories
    # as JSON: the finding names the field
    assert "$.name" in {finding.field for finding in verdict.findings}


def test_a_nosql_operator_key_in_json_labelled_octet_stream_is_found() -> None:
    verdict = post(b'{"user": {"$ne": null}}', "application/octet-stream")
    assert "nosql-operator-key" in verdict.rule_ids


def test_a_form_labelled_as_an_image_is_inspected_as_a_form() -> None:
    verdict = post(b"name=x&bio=%3Cscript%3Ealert(1)%3C%2Fscript%3E", "image/png")
    assert verdict.blocked
    assert "xss" in verdict.categories


def test_xml_labelled_as_an_image_is_inspected_as_xml() -> None:
    body = b'<?xml version="1.0"?><!DOCTYPE a [<!ENTITY x SYSTEM "file:///etc/passwd">]><a>&x;</a>'
    verdict = post(body, "image/png")
    assert verdict.blocked
    assert "xxe-doctype" in verdict.rule_ids


@pytest.mark.parametrize("content_type", ["image/png", "application/octet-stream"])
def test_real_binary_content_is_not_inspected_as_text(content_type: str) -> None:
    # bytes that happen to contain a pattern, inside binary data nobody parses as text
    body = PNG + b"<script>alert(1)</script>" + PNG
    assert not looks_textual(body)
    assert not post(body, content_type).findings


@pytest.mark.parametrize(
    "body", [b"[WIP] fix the login page", b"{not json at all", b"[1, 2, 3]", b'{"a": "b"}']
)
def test_text_that_only_starts_like_json_passes(body: bytes) -> None:
    assert not post(body, "text/plain").blocked


def test_every_gzip_member_is_inflated() -> None:
    body = gzip.compress(b'{"name": "Jansen", ') + gzip.compress(
        b'"bio": "<script>alert(document.cookie)</script>"}'
    )
    assert gzip.decompress(body).startswith(b'{"name"')  # what aiohttp and others do
    verdict = post(body, "application/json", "gzip")
    assert verdict.blocked
    assert "xss" in verdict.categories


def test_bytes_after_the_last_gzip_member_are_inspected() -> None:
    body = gzip.compress(b"hello ") + b"<script>alert(document.cookie)</script>"
    assert b"<script>" in inflate(body, "gzip").expanded


def test_too_many_gzip_members_is_a_limits_refusal() -> None:
    body = gzip.compress(b"") * (MAX_GZIP_MEMBERS + 5)
    verdict = post(body, "application/json", "gzip")
    assert verdict.blocked
    assert "limits-inflated-too-large" in verdict.rule_ids


def test_stacked_codings_are_undone_in_reverse_order() -> None:
    body = zlib.compress(gzip.compress(ATTACK))
    verdict = post(body, "application/json", "gzip, deflate")
    assert verdict.blocked
    assert "xss" in verdict.categories


@pytest.mark.parametrize(
    ("encoding", "decodable"),
    [
        ("gzip", True),
        ("x-gzip", True),
        ("deflate", True),
        ("identity", True),
        ("GZIP , deflate", True),
        ("br", False),
        ("zstd", False),
        ("compress", False),
        ("gzip, br", False),
        ("x-unknown", False),
    ],
)
def test_which_codings_the_detector_can_undo(encoding: str, decodable: bool) -> None:
    assert decodable_encoding(encoding) is decodable
