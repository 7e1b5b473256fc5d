"""Compressed content: archive bombs by compression ratio, and bounded inflation.

A decompression bomb is small on the wire and huge once unpacked (42.zip, overlapping-file
zips, a gzip of zeros). What gives it away is the *ratio* of expanded to compressed size,
so that is what is measured here, always within a fixed budget of work:

* **zip**: the central directory is read (never more than :data:`MAX_ZIP_ENTRIES`
  entries); declared sizes give the ratio, entries whose local headers overlap (the
  Fifield construction) are a bomb by themselves, zip64 sizes are taken at face value,
  and deflate members are inflated up to the shared output budget to check that the
  declared sizes do not lie;
* **gzip / zlib / bzip2 / xz**: the stream is inflated up to the budget; the ratio is
  expanded bytes per compressed byte consumed so far, so a bomb is recognised after a
  few megabytes of output whatever it would finally expand to.

A ratio counts only once the expanded size passes :data:`MIN_BOMB_BYTES`: a kilobyte of
zeros compresses a hundredfold and is harmless. Every function is pure and bounded in
time by the budget; none of them writes anything anywhere.
"""

from __future__ import annotations

import bz2
import itertools
import lzma
import struct
import zlib
from dataclasses import dataclass

MAX_RATIO = 100
MIN_BOMB_BYTES = 1 << 20
INFLATE_BUDGET = 8 << 20
MAX_ZIP_ENTRIES = 10_000
MAX_GZIP_MEMBERS = 1_000
_CHUNK = 64 << 10

_ZIP_LOCAL = b"PK\x03\x04"
_ZIP_EMPTY = b"PK\x05\x06"
_ZIP_END = b"PK\x05\x06"
_ZIP_CENTRAL = b"PK\x01\x02"
_ZIP64_LOCATOR = b"PK\x06\x07"
_GZIP = b"\x1f\x8b"
_BZIP2 = b"BZh"
_XZ = b"\xfd7zXZ\x00"


@dataclass(frozen=True, slots=True)
class ArchiveReport:
    """What inspecting compressed content found.

    ``bomb`` names the reason (``ratio 1030:1``, ``overlapping entries``) or is empty;
    ``expanded`` is what was inflated (at most the budget), for inspection as text.
    """

    kind: str
    bomb: str = ""
    expanded: bytes = b""
    truncated: bool = False
    inflated: int = 0


def archive_kind(data: bytes) -> str | None:
    """The compression format by magic number, or None."""
    if data.startswith(_ZIP_LOCAL) or data.startswith(_ZIP_EMPTY):
        return "zip"
    if data.startswith(_GZIP):
        return "gzip"
    if data.startswith(_BZIP2) and data[3:4].isdigit():
        return "bzip2"
    if data.startswith(_XZ):
        return "xz"
    return None


def _ratio_text(expanded: int, compressed: int) -> str:
    return f"ratio {expanded // max(compressed, 1)}:1 ({expanded} bytes from {compressed})"


def _is_bomb(expanded: int, compressed: int) -> bool:
    return expanded >= MIN_BOMB_BYTES and expanded >= MAX_RATIO * max(compressed, 1)


def inflate(data: bytes, kind: str, budget: int = INFLATE_BUDGET) -> ArchiveReport:
    """Inflate a gzip/zlib/deflate/bzip2/xz stream up to ``budget`` bytes, checking the
    ratio as it goes.

    A gzip body may hold several members one after the other (RFC 1952 §2.2), and HTTP
    libraries inflate them all: so does this, up to :data:`MAX_GZIP_MEMBERS` members
    (more is reported as truncated). Bytes after the last member that are not another
    member are kept as they are, so that they are inspected too.
    """
    if kind not in ("gzip", "zlib", "deflate", "bzip2", "xz"):
        raise ValueError(f"unknown compression {kind!r}")
    pieces: list[bytes] = []
    produced = 0
    consumed = 0
    truncated = False
    remaining = data
    members = 0
    while remaining and produced < budget:
        members += 1
        if members > MAX_GZIP_MEMBERS:
            truncated = True
            break
        decompressor = _decompressor(kind, remaining)
        tail = b""
        try:
            for offset in range(0, len(remaining), _CHUNK):
                chunk = remaining[offset : offset + _CHUNK]
                consumed += len(chunk)
                produced += _feed(decompressor, chunk, pieces, budget - produced)
                if produced >= budget:
                    break
                if kind == "gzip" and decompressor.eof:
                    unused = decompressor.unused_data
                    tail = unused + remaining[offset + _CHUNK :]
                    consumed -= len(unused)
                    break
        except (zlib.error, OSError, EOFError, lzma.LZMAError, ValueError):
            break
        if kind != "gzip" or not tail.strip(b"\x00"):
            break
        if not tail.startswith(_GZIP):
            room = max(budget - produced, 0)
            pieces.append(tail[:room])
            produced += min(len(tail), room)
            consumed += len(tail)
            break
        remaining = tail
    expanded = b"".join(pieces)
    if _is_bomb(produced, consumed):
        return ArchiveReport(kind, _ratio_text(produced, consumed), expanded, True, produced)
    return ArchiveReport(kind, "", expanded, truncated or produced >= budget, produced)


def _decompressor(
    kind: str, data: bytes
) -> zlib._Decompress | bz2.BZ2Decompressor | lzma.LZMADecompressor:
    if kind == "gzip":
        return zlib.decompressobj(16 + zlib.MAX_WBITS)
    if kind == "zlib":
        return zlib.decompressobj(zlib.MAX_WBITS)
    if kind == "deflate":
        # HTTP "deflate" is zlib-wrapped, though some clients send raw deflate.
        return zlib.decompressobj(zlib.MAX_WBITS if data[:1] == b"\x78" else -zlib.MAX_WBITS)
    if kind == "bzip2":
        return bz2.BZ2Decompressor()
    return lzma.LZMADecompressor()


def _feed(
    decompressor: zlib._Decompress | bz2.BZ2Decompressor | lzma.LZMADecompressor,
    chunk: bytes,
    pieces: list[bytes],
    room: int,
) -> int:
    """Feed one compressed chunk; keep at most ``room`` bytes of output; return its size."""
    produced = 0
    if isinstance(decompressor, bz2.BZ2Decompressor | lzma.LZMADecompressor):
        if decompressor.eof:
            return 0
        out = decompressor.decompress(chunk, max_length=max(room, 0))
        pieces.append(out)
        produced += len(out)
        while room - produced > 0 and not decompressor.eof and decompressor.needs_input is False:
            out = decompressor.decompress(b"", max_length=room - produced)
            if not out:
                break
            pieces.append(out)
            produced += len(out)
        return produced
    if decompressor.eof:
        return 0
    out = decompressor.decompress(chunk, max(room, 1))
    pieces.append(out)
    produced += len(out)
    while room - produced > 0 and decompressor.unconsumed_tail:
        out = decompressor.decompress(decompressor.unconsumed_tail, room - produced)
        if not out:
            break
        pieces.append(out)
        produced += len(out)
    return produced


def inspect_archive(data: bytes, budget: int = INFLATE_BUDGET) -> ArchiveReport | None:
    """Check compressed content (recognised by its magic number) for a bomb."""
    kind = archive_kind(data)
    if kind is None:
        return None
    if kind == "zip":
        return inspect_zip(data, budget)
    if kind == "gzip":
        claimed = _gzip_claimed_size(data)
        if claimed is not None and _is_bomb(claimed, len(data)):
            return ArchiveReport(kind, "declared " + _ratio_text(claimed, len(data)))
    report = inflate(data, kind, budget)
    return ArchiveReport(kind, report.bomb, b"", report.truncated, report.inflated)


def _gzip_claimed_size(data: bytes) -> int | None:
    """ISIZE from a single-member gzip trailer (the size modulo 2**32, as written)."""
    if len(data) < 18:
        return None
    return int(struct.unpack("<I", data[-4:])[0])


@dataclass(frozen=True, slots=True)
class _ZipEntry:
    method: int
    compressed: int
    uncompressed: int
    local_offset: int


def inspect_zip(data: bytes, budget: int = INFLATE_BUDGET) -> ArchiveReport:
    """Declared ratio, overlapping entries and (bounded) real inflation of a zip archive."""
    entries = _zip_entries(data)
    if entries is None:
        return ArchiveReport("zip")
    declared = sum(entry.uncompressed for entry in entries)
    if len(entries) >= MAX_ZIP_ENTRIES:
        return ArchiveReport("zip", f"more than {MAX_ZIP_ENTRIES} entries")
    if _is_bomb(declared, len(data)):
        return ArchiveReport("zip", "declared " + _ratio_text(declared, len(data)))
    spans: list[tuple[int, int, int]] = []
    for entry in entries:
        data_start = _zip_data_start(data, entry.local_offset) or entry.local_offset
        spans.append((entry.local_offset, data_start, entry.compressed))
    spans.sort()
    for (_, data_start, size), (next_offset, _, _) in itertools.pairwise(spans):
        if next_offset < data_start + size:
            return ArchiveReport("zip", "overlapping entries")
    produced = 0
    consumed = 0
    for entry in entries:
        if entry.method != 8 or produced >= budget:
            continue
        start = _zip_data_start(data, entry.local_offset)
        if start is None:
            continue
        member = data[start : start + entry.compressed]
        decompressor = zlib.decompressobj(-zlib.MAX_WBITS)
        pieces: list[bytes] = []
        try:
            out = _feed(decompressor, member, pieces, budget - produced)
        except zlib.error:
            continue
        produced += out
        consumed += len(member)
        if out > entry.uncompressed and out > MIN_BOMB_BYTES:
            lie = "an entry expands past its declared size"
            return ArchiveReport("zip", lie, inflated=produced)
    if _is_bomb(produced, consumed):
        return ArchiveReport("zip", _ratio_text(produced, consumed), b"", True, produced)
    return ArchiveReport("zip", truncated=produced >= budget, inflated=produced)


def _zip_data_start(data: bytes, offset: int) -> int | None:
    if data[offset : offset + 4] != _ZIP_LOCAL or offset + 30 > len(data):
        return None
    name_length, extra_length = struct.unpack("<HH", data[offset + 26 : offset + 30])
    return int(offset + 30 + name_length + extra_length)


def _zip_entries(data: bytes) -> list[_ZipEntry] | None:
    """Central directory entries, or None when there is no readable directory."""
    end = data.rfind(_ZIP_END, max(0, len(data) - 65_557))
    if end < 0 or end + 22 > len(data):
        return None
    count, directory_size, directory_offset = struct.unpack("<6xHII", data[end + 4 : end + 20])
    if count == 0xFFFF or 0xFFFFFFFF in (directory_size, directory_offset):
        zip64 = _zip64_directory(data, end)
        if zip64 is None:
            return None
        count, directory_size, directory_offset = zip64
    if directory_offset + directory_size > end:
        # Bytes before the archive (a self-extractor or a polyglot): offsets are relative
        # to where the archive starts.
        shift = end - directory_size - directory_offset
        if shift < 0:
            return None
        directory_offset += shift
    entries: list[_ZipEntry] = []
    position = directory_offset
    while len(entries) < min(count, MAX_ZIP_ENTRIES):
        if data[position : position + 4] != _ZIP_CENTRAL or position + 46 > len(data):
            break
        method, compressed, uncompressed, name_length, extra_length, comment_length = struct.unpack(
            "<6xH8xIIHHH", data[position + 4 : position + 34]
        )
        local_offset = int(struct.unpack("<I", data[position + 42 : position + 46])[0])
        if 0xFFFFFFFF in (compressed, uncompressed, local_offset):
            extra_start = position + 46 + name_length
            extra = data[extra_start : extra_start + extra_length]
            compressed, uncompressed, local_offset = _zip64_sizes(
                extra, compressed, uncompressed, local_offset
            )
        entries.append(_ZipEntry(method, compressed, uncompressed, local_offset))
        position += 46 + name_length + extra_length + comment_length
    return entries


def _zip64_directory(data: bytes, end: int) -> tuple[int, int, int] | None:
    """(entries, directory size, directory offset) from the zip64 end record."""
    locator = end - 20
    if locator < 0 or data[locator : locator + 4] != _ZIP64_LOCATOR:
        return None
    record = int(struct.unpack("<Q", data[locator + 8 : locator + 16])[0])
    if data[record : record + 4] != b"PK\x06\x06" or record + 56 > len(data):
        record = data.rfind(b"PK\x06\x06", 0, locator)
        if record < 0 or record + 56 > len(data):
            return None
    count, size, offset = struct.unpack("<QQQ", data[record + 32 : record + 56])
    return int(min(count, MAX_ZIP_ENTRIES)), int(size), int(offset)


def _zip64_sizes(
    extra: bytes, compressed: int, uncompressed: int, local_offset: int
) -> tuple[int, int, int]:
    """Replace 0xFFFFFFFF placeholders with the zip64 extra field's 64-bit values."""
    position = 0
    while position + 4 <= len(extra):
        header_id, size = struct.unpack("<HH", extra[position : position + 4])
        body = extra[position + 4 : position + 4 + size]
        position += 4 + size
        if header_id != 0x0001:
            continue
        values = [int(v) for v in struct.unpack(f"<{len(body) // 8}Q", body[: len(body) // 8 * 8])]
        if uncompressed == 0xFFFFFFFF and values:
            uncompressed = values.pop(0)
        if compressed == 0xFFFFFFFF and values:
            compressed = values.pop(0)
        if local_offset == 0xFFFFFFFF and values:
            local_offset = values.pop(0)
        break
    return compressed, uncompressed, local_offset
