"""The key ring on disk: a JSON file, mode 0600, holding data keys by version.

    {"format": "dijk-keyring/1", "primary": 2, "protection": "file",
     "keys": [{"version": 1, "created": "2026-01-01T00:00:00Z", "key": "<base64>"},
              {"version": 2, "created": "2026-04-01T00:00:00Z", "key": "<base64>"}]}

With ``"protection": "vault-transit"`` each entry holds ``"wrapped": "vault:vN:..."``
instead of ``"key"``: the data key encrypted by a HashiCorp Vault Transit key
(:mod:`dijk.crypto.vault`), and ``"vault"`` records which Transit key (URL, mount, name).

The file is created with ``O_EXCL`` and mode 0600 and refused when group or others can
read it. Every change (creation, rotation, rewrap) writes a new file beside it and renames
it over the old one, under an exclusive lock, so a crash or two concurrent ``dijk keys``
commands never leave a half-written ring or lose a key.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import fcntl
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import orjson

from dijk.crypto.keyring import KEY_BYTES, CryptoError, KeyRing, new_data_key
from dijk.crypto.vault import VaultTransit, wrapped_version

__all__ = [
    "KeyRingFileError",
    "KeyRingInfo",
    "create_key_ring",
    "describe_key_ring",
    "load_key_ring",
    "load_or_create_key_ring",
    "rewrap_key_ring",
    "rotate_key_ring",
]

_FORMAT: Final = "dijk-keyring/1"
_FILE: Final = "file"
_VAULT: Final = "vault-transit"


class KeyRingFileError(CryptoError):
    """The key ring file is missing, unreadable, malformed or too widely readable."""


@dataclass(frozen=True, slots=True)
class KeyRingInfo:
    """What ``dijk keys status`` shows: never key material."""

    path: str
    protection: str
    primary: int
    versions: tuple[tuple[int, str], ...]  # (version, created)
    vault: dict[str, str] | None


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive lock beside the ring, held while it is read-modified-written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lock_path = path.with_name(path.name + ".lock")
    descriptor = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        yield
    finally:
        os.close(descriptor)


def _read(path: Path) -> dict[str, Any]:
    try:
        info = path.stat()
    except FileNotFoundError:
        raise KeyRingFileError(f"key ring not found: {path} (create it: dijk keys init)") from None
    except OSError as exc:
        raise KeyRingFileError(f"cannot read key ring {path}: {exc.strerror}") from None
    if not stat.S_ISREG(info.st_mode):
        raise KeyRingFileError(f"key ring is not a regular file: {path}")
    if info.st_mode & 0o077:
        raise KeyRingFileError(
            f"key ring {path} is readable by others (mode {stat.S_IMODE(info.st_mode):04o});"
            f" run: chmod 600 {path}"
        )
    try:
        document = orjson.loads(path.read_bytes())
    except OSError as exc:
        raise KeyRingFileError(f"cannot read key ring {path}: {exc.strerror}") from None
    except orjson.JSONDecodeError:
        raise KeyRingFileError(f"key ring {path} is not valid JSON") from None
    if not isinstance(document, dict) or document.get("format") != _FORMAT:
        raise KeyRingFileError(f"key ring {path} is not a {_FORMAT} file")
    keys = document.get("keys")
    if not isinstance(keys, list) or not keys:
        raise KeyRingFileError(f"key ring {path} holds no keys")
    return document


def _write(path: Path, document: dict[str, Any]) -> None:
    """Write atomically: a new 0600 file beside it, fsync, rename, fsync the directory."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    data = orjson.dumps(document, option=orjson.OPT_INDENT_2 | orjson.OPT_APPEND_NEWLINE)
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
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def _entry(version: int, data_key: bytes, vault: VaultTransit | None) -> dict[str, Any]:
    entry: dict[str, Any] = {"version": version, "created": _now()}
    if vault is None:
        entry["key"] = base64.b64encode(data_key).decode("ascii")
    else:
        entry["wrapped"] = vault.wrap(data_key)
    return entry


def _protection(document: dict[str, Any], path: Path, vault: VaultTransit | None) -> None:
    """Refuse a ring whose protection does not match the configuration."""
    protection = document.get("protection", _FILE)
    if protection == _VAULT and vault is None:
        where = document.get("vault") or {}
        raise KeyRingFileError(
            f"key ring {path} is wrapped by Vault Transit ({where.get('url', '?')},"
            f" key {where.get('key', '?')}): configure privacy.keys.vault"
        )
    if protection == _FILE and vault is not None:
        raise KeyRingFileError(
            f"key ring {path} holds unwrapped keys but privacy.keys.vault is configured:"
            " point privacy.keys.file at a new path to start a Vault-wrapped ring"
        )
    if protection not in (_FILE, _VAULT):
        raise KeyRingFileError(f"key ring {path}: unknown protection {protection!r}")


def _ring(document: dict[str, Any], path: Path, vault: VaultTransit | None) -> KeyRing:
    _protection(document, path, vault)
    keys: dict[int, bytes] = {}
    for entry in document["keys"]:
        if not isinstance(entry, dict) or not isinstance(entry.get("version"), int):
            raise KeyRingFileError(f"key ring {path} has a malformed entry")
        version = entry["version"]
        if vault is not None:
            wrapped = entry.get("wrapped")
            if not isinstance(wrapped, str):
                raise KeyRingFileError(f"key ring {path}: version {version} is not wrapped")
            material = vault.unwrap(wrapped)
        else:
            try:
                material = base64.b64decode(str(entry.get("key", "")), validate=True)
            except (binascii.Error, ValueError):
                material = b""
        if len(material) != KEY_BYTES:
            raise KeyRingFileError(f"key ring {path}: version {version} is not a 256-bit key")
        keys[version] = material
    primary = document.get("primary")
    if not isinstance(primary, int) or primary not in keys:
        raise KeyRingFileError(f"key ring {path}: primary version {primary!r} is not in it")
    return KeyRing(keys, primary)


def load_key_ring(path: Path, vault: VaultTransit | None = None) -> KeyRing:
    """The ring stored at ``path`` (unwrapping each key through Vault when configured)."""
    return _ring(_read(path), path, vault)


def create_key_ring(path: Path, vault: VaultTransit | None = None) -> KeyRing:
    """A new ring with one random key (version 1); refuses to overwrite an existing one."""
    with _locked(path):
        if path.exists():
            raise KeyRingFileError(f"key ring already exists: {path}")
        if vault is not None:
            vault.ensure_key()
        data_key = new_data_key()
        document: dict[str, Any] = {
            "format": _FORMAT,
            "primary": 1,
            "protection": _VAULT if vault is not None else _FILE,
            "keys": [_entry(1, data_key, vault)],
        }
        if vault is not None:
            document["vault"] = vault.describe()
        _write(path, document)
        return KeyRing({1: data_key}, 1)


def load_or_create_key_ring(path: Path, vault: VaultTransit | None = None) -> tuple[KeyRing, bool]:
    """The ring at ``path``, created first if there is none; (ring, created)."""
    if path.exists():
        return load_key_ring(path, vault), False
    try:
        return create_key_ring(path, vault), True
    except KeyRingFileError:
        if path.exists():  # another process created it just now
            return load_key_ring(path, vault), False
        raise


def rotate_key_ring(
    path: Path, vault: VaultTransit | None = None, *, rotate_vault_key: bool = True
) -> KeyRing:
    """Add a new random key as the primary; older versions stay for reading.

    With Vault, the Transit key is rotated first (unless ``rotate_vault_key`` is off), so
    the new data key is wrapped by the newest Transit version.
    """
    with _locked(path):
        document = _read(path)
        ring = _ring(document, path, vault)
        if vault is not None and rotate_vault_key:
            vault.rotate()
        version = max(ring.versions) + 1
        data_key = new_data_key()
        document["keys"].append(_entry(version, data_key, vault))
        document["primary"] = version
        _write(path, document)
    return load_key_ring(path, vault)


def rewrap_key_ring(path: Path, vault: VaultTransit) -> int:
    """Rewrap stored data keys older than the newest Transit version; returns how many."""
    with _locked(path):
        document = _read(path)
        _protection(document, path, vault)
        latest = vault.latest_version()
        changed = 0
        for entry in document["keys"]:
            wrapped = entry.get("wrapped")
            if isinstance(wrapped, str) and (wrapped_version(wrapped) or 0) < latest:
                entry["wrapped"] = vault.rewrap(wrapped)
                changed += 1
        if changed:
            _write(path, document)
        return changed


def describe_key_ring(path: Path) -> KeyRingInfo:
    """Versions, creation times and protection of the ring (reads no key material)."""
    document = _read(path)
    versions: list[tuple[int, str]] = []
    for entry in document["keys"]:
        if isinstance(entry, dict) and isinstance(entry.get("version"), int):
            created = str(entry.get("created", ""))
            wrapped = entry.get("wrapped")
            if isinstance(wrapped, str):
                transit = wrapped_version(wrapped)
                created += f" (wrapped by Transit v{transit})" if transit else " (wrapped)"
            versions.append((entry["version"], created))
    vault = document.get("vault")
    return KeyRingInfo(
        path=str(path),
        protection=str(document.get("protection", _FILE)),
        primary=int(document.get("primary", 0)),
        versions=tuple(versions),
        vault=dict(vault) if isinstance(vault, dict) else None,
    )
