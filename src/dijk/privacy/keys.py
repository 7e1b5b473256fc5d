"""The privacy pseudonym key: random, kept sealed by the key ring, never in the clear on disk.

``<data dir>/privacy-pseudonym.key`` is a binary sealed value (label
``privacy-pseudonym-key``): AES-256-GCM under the key ring's primary key, so the file
alone reveals nothing, and ``dijk keys rotate --reencrypt`` moves it to a new key like any
other sealed file. With the ring wrapped by Vault Transit, reading the pseudonym key needs
Vault: a copied data directory is useless on its own.

Several gateway instances that share one audit database must share this key (copy the
sealed file and the key ring, or point them at the same Vault-wrapped ring), so that they
give one data subject one pseudonym.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from dijk.crypto.files import create_sealed, read_sealed
from dijk.crypto.keyring import KeyRing
from dijk.crypto.settings import open_key_ring
from dijk.privacy.settings import PrivacySettings

__all__ = ["PSEUDONYM_KEY_FILE", "PSEUDONYM_LABEL", "PrivacyKeys", "load_privacy_keys"]

PSEUDONYM_KEY_FILE: Final = "privacy-pseudonym.key"
PSEUDONYM_LABEL: Final = "privacy-pseudonym-key"
_KEY_BYTES: Final = 32


@dataclass(frozen=True, slots=True)
class PrivacyKeys:
    ring: KeyRing
    pseudonym_key: bytes

    def __repr__(self) -> str:  # never the key
        return f"PrivacyKeys(ring={self.ring!r})"


def load_privacy_keys(settings: PrivacySettings, data_dir: Path) -> PrivacyKeys:
    """The key ring and the pseudonym key, each created on first use.

    Raises :class:`dijk.crypto.CryptoError` when a file is unreadable, too widely
    readable, or does not decrypt.
    """
    ring = open_key_ring(settings.keys, data_dir)
    path = data_dir / PSEUDONYM_KEY_FILE
    if not path.exists():
        create_sealed(path, os.urandom(_KEY_BYTES), ring, PSEUDONYM_LABEL)
    return PrivacyKeys(ring, read_sealed(path, ring, PSEUDONYM_LABEL))
