"""Field encryption for Dijk's own sensitive data at rest.

AES-256-GCM (``cryptography``) under a versioned key ring; the ring lives in a 0600 file
or is wrapped by HashiCorp Vault Transit. For a component that stores something
sensitive (spooled records, key material)::

    from dijk.crypto import open_key_ring
    ring = open_key_ring(config.privacy.keys, data_dir)      # once, at load
    token = ring.encrypt_text(line_bytes, "audit-spool")     # one ASCII line, no newline
    line_bytes = ring.decrypt_text(token, "audit-spool")     # any version in the ring
    blob = ring.encrypt(data, "my-label"); ring.decrypt(blob, "my-label")

``dijk keys rotate`` adds a key (new data uses it after the next reload); older versions
stay readable; ``dijk keys rotate --reencrypt`` re-encrypts every sealed file and every
line file of tokens under the data directory (:func:`reencrypt_tree`).
"""

from dijk.crypto.files import ReencryptReport, read_sealed, reencrypt_tree, write_sealed
from dijk.crypto.keyfile import (
    KeyRingFileError,
    create_key_ring,
    describe_key_ring,
    load_key_ring,
    load_or_create_key_ring,
    rewrap_key_ring,
    rotate_key_ring,
)
from dijk.crypto.keyring import (
    CryptoError,
    DecryptionError,
    KeyRing,
    UnknownKeyVersionError,
    is_sealed,
    is_token,
    sealed_version,
)
from dijk.crypto.settings import KeyRingSettings, VaultTransitSettings, open_key_ring
from dijk.crypto.vault import VaultTransit

__all__ = [
    "CryptoError",
    "DecryptionError",
    "KeyRing",
    "KeyRingFileError",
    "KeyRingSettings",
    "ReencryptReport",
    "UnknownKeyVersionError",
    "VaultTransit",
    "VaultTransitSettings",
    "create_key_ring",
    "describe_key_ring",
    "is_sealed",
    "is_token",
    "load_key_ring",
    "load_or_create_key_ring",
    "open_key_ring",
    "read_sealed",
    "reencrypt_tree",
    "rewrap_key_ring",
    "rotate_key_ring",
    "sealed_version",
    "write_sealed",
]
