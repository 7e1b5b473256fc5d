"""AES-256-GCM under a versioned key ring: how Dijk seals its own sensitive data at rest.

A :class:`KeyRing` holds data keys by version and one *primary* version. Everything is
sealed with the primary key; anything sealed with an older version stays readable for as
long as that version is in the ring, so rotation never breaks old data, and
re-encryption (:mod:`dijk.crypto.files`) moves old data to the primary key at leisure.

Two encodings of one sealed value, both self-describing:

- **binary** (whole files, e.g. key material)::

      b"DJKE" | format 0x01 | version (4 bytes, big-endian) | label length (1 byte) | label
      | nonce (12 bytes) | ciphertext and GCM tag (16 bytes)

- **text** (one record per line, e.g. a spool file)::

      dijk1:<version, 8 hex digits>:<label>:<base64url(nonce | ciphertext and tag), no padding>

The *label* names what the value is (``audit-spool``, ``privacy-pseudonym-key``). It is
not secret, but it is authenticated together with the format and the key version (GCM
associated data), so a value cannot be passed off as another kind of value, or as sealed
under another key version. Because the label travels with the value, re-encryption needs
nothing but the ring.

A text token's length depends only on the plaintext's length and the label, never on the
key version, so re-encrypting a line file in place keeps every byte offset valid (a spool
reader's replay offset survives a ``dijk keys rotate --reencrypt``).

Nonces are 96 random bits: under one key, stay well below 2^32 seals (NIST SP 800-38D);
rotating keys (``dijk keys rotate``) resets the count.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
import struct
from collections.abc import Mapping
from typing import Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

__all__ = [
    "KEY_BYTES",
    "MAGIC",
    "TEXT_PREFIX",
    "CryptoError",
    "DecryptionError",
    "KeyRing",
    "UnknownKeyVersionError",
    "is_sealed",
    "is_token",
    "new_data_key",
    "sealed_version",
]

MAGIC: Final = b"DJKE"
_FORMAT: Final = 1
TEXT_PREFIX: Final = "dijk1:"
KEY_BYTES: Final = 32  # AES-256
_NONCE_BYTES: Final = 12
_TAG_BYTES: Final = 16
_HEADER: Final = struct.Struct(">4sBIB")  # magic, format, version, label length
_LABEL: Final = re.compile(r"[a-z0-9][a-z0-9._-]{0,47}")
_MAX_VERSION: Final = 0xFFFFFFFF


class CryptoError(Exception):
    """Base of every error here; messages never contain key material or plaintext."""


class UnknownKeyVersionError(CryptoError):
    """The value was sealed under a key version that is not in the ring."""


class DecryptionError(CryptoError):
    """The value is malformed, was changed, or belongs to another label or key."""


def new_data_key() -> bytes:
    """A fresh random AES-256 key."""
    return AESGCM.generate_key(bit_length=KEY_BYTES * 8)


def _check_label(label: str) -> bytes:
    if not _LABEL.fullmatch(label):
        raise ValueError(
            f"bad label {label!r}: 1-48 characters, lower-case letters, digits, '.', '_', '-'"
        )
    return label.encode("ascii")


def is_sealed(data: bytes) -> bool:
    """Whether ``data`` starts like a binary sealed value."""
    return data[:4] == MAGIC and len(data) > 4 and data[4] == _FORMAT


def is_token(text: str | bytes) -> bool:
    """Whether ``text`` starts like a text token."""
    if isinstance(text, bytes):
        return text.startswith(TEXT_PREFIX.encode("ascii"))
    return text.startswith(TEXT_PREFIX)


def sealed_version(value: bytes | str) -> int:
    """The key version a binary value or text token was sealed under."""
    if isinstance(value, str):
        return _parse_token(value)[0]
    return _parse_binary(value)[0]


def _parse_binary(data: bytes) -> tuple[int, bytes, bytes, bytes]:
    """(version, label, header, rest) of a binary sealed value."""
    if len(data) < _HEADER.size or not is_sealed(data):
        raise DecryptionError("not a Dijk sealed value")
    _, _, version, label_length = _HEADER.unpack_from(data)
    start = _HEADER.size + label_length
    label = data[_HEADER.size : start]
    if len(data) < start + _NONCE_BYTES + _TAG_BYTES:
        raise DecryptionError("sealed value is truncated")
    return version, label, data[:start], data[start:]


def _parse_token(token: str) -> tuple[int, bytes, bytes, bytes]:
    """(version, label, associated data, nonce|ciphertext) of a text token."""
    if not token.startswith(TEXT_PREFIX):
        raise DecryptionError("not a Dijk sealed token")
    parts = token.rstrip("\r\n").split(":")
    if len(parts) != 4 or len(parts[1]) != 8:
        raise DecryptionError("malformed sealed token")
    try:
        version = int(parts[1], 16)
        payload = base64.urlsafe_b64decode(parts[3] + "=" * (-len(parts[3]) % 4))
    except (ValueError, binascii.Error):
        raise DecryptionError("malformed sealed token") from None
    if len(payload) < _NONCE_BYTES + _TAG_BYTES:
        raise DecryptionError("sealed token is truncated")
    associated = f"{TEXT_PREFIX}{parts[1]}:{parts[2]}:".encode("ascii", "replace")
    return version, parts[2].encode("ascii", "replace"), associated, payload


class KeyRing:
    """Data keys by version, one of them primary; immutable once built.

    The ring holds key material in memory only; where it is stored, and how (a 0600 file
    or wrapped by Vault Transit), is :mod:`dijk.crypto.keyfile`'s business.
    """

    __slots__ = ("_ciphers", "_primary")

    def __init__(self, keys: Mapping[int, bytes], primary: int) -> None:
        if primary not in keys:
            raise ValueError(f"primary key version {primary} is not in the ring")
        for version, key in keys.items():
            if not 1 <= version <= _MAX_VERSION:
                raise ValueError(f"key version {version} out of range")
            if len(key) != KEY_BYTES:
                raise ValueError(f"key version {version} is not a {KEY_BYTES * 8}-bit key")
        self._ciphers = {version: AESGCM(key) for version, key in keys.items()}
        self._primary = primary

    @property
    def primary(self) -> int:
        return self._primary

    @property
    def versions(self) -> tuple[int, ...]:
        return tuple(sorted(self._ciphers))

    def __repr__(self) -> str:  # never the keys
        return f"KeyRing(versions={list(self.versions)}, primary={self._primary})"

    # -- binary --------------------------------------------------------------------------

    def encrypt(self, plaintext: bytes, label: str) -> bytes:
        """Seal ``plaintext`` under the primary key (binary encoding)."""
        label_bytes = _check_label(label)
        header = _HEADER.pack(MAGIC, _FORMAT, self._primary, len(label_bytes)) + label_bytes
        nonce = os.urandom(_NONCE_BYTES)
        return header + nonce + self._ciphers[self._primary].encrypt(nonce, plaintext, header)

    def decrypt(self, sealed: bytes, label: str) -> bytes:
        """Open a binary sealed value; ``label`` must be the one it was sealed with."""
        version, found, header, rest = _parse_binary(sealed)
        if found != _check_label(label):
            raise DecryptionError(f"sealed value is a {found!r} value, not {label!r}")
        return self._open(version, rest, header)

    # -- text ----------------------------------------------------------------------------

    def encrypt_text(self, plaintext: bytes, label: str) -> str:
        """Seal ``plaintext`` under the primary key as one line of ASCII (no newline)."""
        _check_label(label)
        prefix = f"{TEXT_PREFIX}{self._primary:08x}:{label}:"
        nonce = os.urandom(_NONCE_BYTES)
        sealed = nonce + self._ciphers[self._primary].encrypt(
            nonce, plaintext, prefix.encode("ascii")
        )
        return prefix + base64.urlsafe_b64encode(sealed).decode("ascii").rstrip("=")

    def decrypt_text(self, token: str, label: str) -> bytes:
        """Open a text token; ``label`` must be the one it was sealed with."""
        version, found, associated, payload = _parse_token(token)
        if found != _check_label(label):
            raise DecryptionError(f"sealed token is a {found!r} value, not {label!r}")
        return self._open(version, payload, associated)

    # -- re-encryption -------------------------------------------------------------------

    def reencrypt(self, sealed: bytes) -> bytes:
        """The same binary value sealed under the primary key (unchanged if it already is)."""
        version, label, header, rest = _parse_binary(sealed)
        if version == self._primary:
            return sealed
        plaintext = self._open(version, rest, header)
        return self.encrypt(plaintext, label.decode("ascii", "replace"))

    def reencrypt_text(self, token: str) -> str:
        """The same token sealed under the primary key (unchanged if it already is)."""
        version, label, associated, payload = _parse_token(token)
        if version == self._primary:
            return token
        plaintext = self._open(version, payload, associated)
        return self.encrypt_text(plaintext, label.decode("ascii", "replace"))

    def _open(self, version: int, payload: bytes, associated: bytes) -> bytes:
        cipher = self._ciphers.get(version)
        if cipher is None:
            raise UnknownKeyVersionError(
                f"sealed under key version {version}, which is not in the key ring"
                f" (versions: {', '.join(map(str, self.versions))})"
            )
        nonce, ciphertext = payload[:_NONCE_BYTES], payload[_NONCE_BYTES:]
        try:
            return cipher.decrypt(nonce, ciphertext, associated)
        except InvalidTag:
            raise DecryptionError(
                f"sealed value does not authenticate under key version {version}"
                " (changed, truncated, or sealed by another key ring)"
            ) from None
