"""The audit secret and the keys derived from it.

One secret (at least 32 bytes) is kept in a key file readable only by its owner (mode
0600) or in the environment variable ``DIJK_AUDIT_KEY``. From it, HKDF-SHA256 derives
three independent keys with distinct labels, so a single value has to be kept safe:

* the HMAC key of the hash chain;
* the Ed25519 key that signs checkpoints (its *public* half can be handed to anyone who
  should check exported checkpoints without being able to forge records);
* the pseudonymisation key for client IPs and credential ids.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from dijk.audit.record import pseudonymise

__all__ = [
    "KEY_ENV",
    "KEY_FILE_ENV",
    "MIN_SECRET_BYTES",
    "AuditKeyError",
    "AuditKeys",
    "generate_key_file",
    "key_id_of",
    "load_public_key",
]

KEY_ENV: Final = "DIJK_AUDIT_KEY"
KEY_FILE_ENV: Final = "DIJK_AUDIT_KEY_FILE"
MIN_SECRET_BYTES: Final = 32

_LABEL_HMAC: Final = b"dijk audit chain hmac v1"
_LABEL_SIGNING: Final = b"dijk audit checkpoint ed25519 v1"
_LABEL_PSEUDONYM: Final = b"dijk audit pseudonym v1"


class AuditKeyError(Exception):
    """The audit key is missing, too short, or its file is readable by others."""


def _derive(secret: bytes, label: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=label).derive(secret)


def key_id_of(public_key: Ed25519PublicKey) -> str:
    """Short identifier of a checkpoint signing key: sha256 of its raw bytes, 16 hex."""
    raw = public_key.public_bytes(Encoding.Raw, PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def load_public_key(text: str) -> Ed25519PublicKey:
    """Parse a public key given as 64 hex digits (as ``checkpoint export`` prints it)."""
    try:
        raw = bytes.fromhex(text.strip())
        return Ed25519PublicKey.from_public_bytes(raw)
    except ValueError as exc:
        raise AuditKeyError("public key must be 64 hex digits (32-byte Ed25519 key)") from exc


@dataclass(frozen=True, slots=True)
class AuditKeys:
    """Keys derived from the audit secret."""

    hmac_key: bytes
    signing_key: Ed25519PrivateKey
    pseudonym_key: bytes

    @classmethod
    def from_secret(cls, secret: bytes) -> AuditKeys:
        if len(secret) < MIN_SECRET_BYTES:
            raise AuditKeyError(
                f"audit key is too short: {len(secret)} bytes, at least {MIN_SECRET_BYTES} needed"
            )
        signing = Ed25519PrivateKey.from_private_bytes(_derive(secret, _LABEL_SIGNING))
        return cls(
            hmac_key=_derive(secret, _LABEL_HMAC),
            signing_key=signing,
            pseudonym_key=_derive(secret, _LABEL_PSEUDONYM),
        )

    @classmethod
    def load(
        cls, key_file: Path | None = None, environ: Mapping[str, str] | None = None
    ) -> AuditKeys:
        """Keys from ``key_file``, else ``$DIJK_AUDIT_KEY_FILE``, else ``$DIJK_AUDIT_KEY``."""
        env = os.environ if environ is None else environ
        if key_file is None and env.get(KEY_FILE_ENV):
            key_file = Path(env[KEY_FILE_ENV])
        if key_file is not None:
            return cls.from_secret(_read_key_file(key_file))
        value = env.get(KEY_ENV, "")
        if not value:
            raise AuditKeyError(
                f"no audit key: pass --key-file, or set {KEY_ENV} or {KEY_FILE_ENV}"
            )
        return cls.from_secret(value.strip().encode("utf-8"))

    @property
    def public_key(self) -> Ed25519PublicKey:
        return self.signing_key.public_key()

    @property
    def key_id(self) -> str:
        return key_id_of(self.public_key)

    def pseudonym(self, value: str) -> str:
        """Keyed pseudonym for a client IP or credential id (see ``record.pseudonymise``)."""
        return pseudonymise(self.pseudonym_key, value)

    @property
    def public_key_hex(self) -> str:
        return self.public_key.public_bytes(Encoding.Raw, PublicFormat.Raw).hex()


def _read_key_file(path: Path) -> bytes:
    try:
        info = path.stat()
    except FileNotFoundError:
        raise AuditKeyError(f"audit key file not found: {path}") from None
    except OSError as exc:
        raise AuditKeyError(f"cannot read audit key file {path}: {exc.strerror}") from None
    if not stat.S_ISREG(info.st_mode):
        raise AuditKeyError(f"audit key file is not a regular file: {path}")
    if info.st_mode & 0o077:
        raise AuditKeyError(
            f"audit key file {path} is readable by others (mode {stat.S_IMODE(info.st_mode):04o});"
            " run: chmod 600 " + str(path)
        )
    try:
        return path.read_bytes().strip()
    except OSError as exc:
        raise AuditKeyError(f"cannot read audit key file {path}: {exc.strerror}") from None


def generate_key_file(path: Path) -> None:
    """Create a new key file with a random secret, mode 0600; refuses to overwrite."""
    path.parent.mkdir(parents=True, exist_ok=True)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL
    try:
        descriptor = os.open(path, flags, 0o600)
    except FileExistsError:
        raise AuditKeyError(f"audit key file already exists: {path}") from None
    with os.fdopen(descriptor, "w", encoding="ascii") as handle:
        handle.write(secrets.token_urlsafe(48) + "\n")
