"""Sealed files, and moving everything sealed under a directory to the primary key.

Two shapes of file hold sealed data (see :mod:`dijk.crypto.keyring` for the encodings):

- a **sealed file**: the whole file is one binary sealed value (key material);
- a **sealed line file**: an append-only file of text tokens, one per line (a spool).
  Lines that are not tokens are left alone.

:func:`reencrypt_tree` finds both by their first bytes, so any component that seals its
data with the ring is covered without being registered here. A sealed file is replaced
atomically; a line file is rewritten *in place*, token by token at the same offsets
(a re-encrypted token has the same length), so a process appending to it meanwhile loses
nothing and a reader's byte offset stays valid. A partial last line (a write in
progress) is skipped.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from dijk.crypto.keyring import MAGIC, TEXT_PREFIX, CryptoError, KeyRing, is_sealed

__all__ = ["ReencryptReport", "read_sealed", "reencrypt_file", "reencrypt_tree", "write_sealed"]

_TOKEN_PREFIX = TEXT_PREFIX.encode("ascii")


def write_sealed(path: Path, plaintext: bytes, ring: KeyRing, label: str) -> None:
    """Seal ``plaintext`` into ``path`` (mode 0600, atomic replace)."""
    _replace(path, ring.encrypt(plaintext, label))


def create_sealed(path: Path, plaintext: bytes, ring: KeyRing, label: str) -> bool:
    """Like :func:`write_sealed` but never overwrites; False if ``path`` already exists."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return False
    try:
        data = ring.encrypt(plaintext, label)
        view = memoryview(data)
        while view:
            view = view[os.write(descriptor, view) :]
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
    return True


def read_sealed(path: Path, ring: KeyRing, label: str) -> bytes:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise CryptoError(f"cannot read sealed file {path}: {exc.strerror}") from None
    return ring.decrypt(data, label)


def _replace(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(descriptor, 0o600)
        view = memoryview(data)
        while view:
            view = view[os.write(descriptor, view) :]
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
    os.replace(temporary, path)


@dataclass(slots=True)
class ReencryptReport:
    """What :func:`reencrypt_tree` did; ``errors`` are one line each, nothing secret."""

    files: int = 0
    values: int = 0
    already_current: int = 0
    errors: list[str] = field(default_factory=list)


def reencrypt_file(path: Path, ring: KeyRing, report: ReencryptReport) -> None:
    """Re-encrypt one sealed file or sealed line file (other files are not touched)."""
    try:
        with path.open("rb") as handle:
            head = handle.read(len(_TOKEN_PREFIX))
    except OSError as exc:
        report.errors.append(f"{path}: {exc.strerror}")
        return
    if head[:4] == MAGIC:
        _reencrypt_sealed(path, ring, report)
    elif head == _TOKEN_PREFIX:
        _reencrypt_lines(path, ring, report)


def _reencrypt_sealed(path: Path, ring: KeyRing, report: ReencryptReport) -> None:
    data = path.read_bytes()
    if not is_sealed(data):
        return
    try:
        new = ring.reencrypt(data)
    except CryptoError as exc:
        report.errors.append(f"{path}: {exc}")
        return
    if new is data:
        report.already_current += 1
        return
    _replace(path, new)
    report.files += 1
    report.values += 1


def _reencrypt_lines(path: Path, ring: KeyRing, report: ReencryptReport) -> None:
    changed = 0
    descriptor = os.open(path, os.O_RDWR)
    try:
        with os.fdopen(os.dup(descriptor), "rb") as reader:
            offset = 0
            for line in reader:
                start = offset
                offset += len(line)
                if not line.endswith(b"\n") or not line.startswith(_TOKEN_PREFIX):
                    continue
                token = line[:-1].decode("ascii", "replace").rstrip("\r")
                try:
                    new = ring.reencrypt_text(token)
                except CryptoError as exc:
                    report.errors.append(f"{path} at byte {start}: {exc}")
                    continue
                if new == token:
                    report.already_current += 1
                    continue
                encoded = new.encode("ascii")
                if len(encoded) != len(token):  # pragma: no cover - lengths are fixed
                    report.errors.append(f"{path} at byte {start}: token length changed")
                    continue
                os.pwrite(descriptor, encoded, start)
                changed += 1
        if changed:
            os.fsync(descriptor)
    finally:
        os.close(descriptor)
    if changed:
        report.files += 1
        report.values += changed


def reencrypt_tree(
    root: Path, ring: KeyRing, *, exclude: Iterable[str] = ("upstream",)
) -> ReencryptReport:
    """Re-encrypt every sealed file and sealed line file under ``root``.

    ``exclude`` names top-level directories to skip (the demo upstream's own data).
    Symbolic links are not followed.
    """
    report = ReencryptReport()
    skipped = set(exclude)
    if not root.is_dir():
        return report
    for directory, subdirectories, files in os.walk(root, followlinks=False):
        here = Path(directory)
        if here == root:
            subdirectories[:] = [name for name in subdirectories if name not in skipped]
        for name in sorted(files):
            path = here / name
            if path.is_symlink() or not path.is_file() or name.endswith(".tmp"):
                continue
            reencrypt_file(path, ring, report)
    return report
