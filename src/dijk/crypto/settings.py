"""The ``privacy.keys`` configuration section: where the key ring lives and what wraps it."""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator

from dijk.crypto.keyfile import load_or_create_key_ring
from dijk.crypto.keyring import KeyRing
from dijk.crypto.vault import VaultTransit, check_vault_url

__all__ = ["KEY_RING_NAME", "KeyRingSettings", "VaultTransitSettings", "open_key_ring"]

KEY_RING_NAME = "keyring.json"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)


class VaultTransitSettings(_Model):
    url: str = Field(
        description="Vault address, https://vault:8200 (plain http only to a loopback agent)."
    )
    key: str = Field(default="dijk", description="Name of the Transit key that wraps data keys.")
    mount: str = Field(default="transit", description="Mount path of the Transit engine.")
    token_env: str = Field(
        default="VAULT_TOKEN", description="Environment variable holding the Vault token."
    )
    namespace: str | None = Field(default=None, description="Vault Enterprise namespace.")
    timeout_s: float = Field(default=5, gt=0, le=60, description="Timeout of one Vault call.")
    ca_file: str | None = Field(default=None, description="CA bundle to verify Vault's TLS.")
    create_key: bool = Field(
        default=True, description="Create the Transit key (aes256-gcm96) if it does not exist."
    )

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        return check_vault_url(value)

    @field_validator("key", "mount")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError("letters, digits, '_', '.', '-' (at most 128)")
        return value

    @field_validator("token_env")
    @classmethod
    def _env(cls, value: str) -> str:
        if not _ENV_NAME.match(value):
            raise ValueError("not a valid environment variable name")
        return value

    def transit(self) -> VaultTransit:
        return VaultTransit(
            self.url,
            self.key,
            mount=self.mount,
            token_env=self.token_env,
            namespace=self.namespace,
            timeout_s=self.timeout_s,
            ca_file=self.ca_file,
            create_key=self.create_key,
        )


class KeyRingSettings(_Model):
    file: str | None = Field(
        default=None,
        description="Key ring file (JSON, mode 0600; created on first use). "
        "Default: <data dir>/keyring.json.",
    )
    vault: VaultTransitSettings | None = Field(
        default=None,
        description="Wrap the data keys with HashiCorp Vault Transit instead of storing them "
        "in the file in the clear (envelope encryption).",
    )

    def path(self, data_dir: Path) -> Path:
        return Path(self.file) if self.file else data_dir / KEY_RING_NAME


def open_key_ring(settings: KeyRingSettings, data_dir: Path) -> KeyRing:
    """The configured ring, created (one fresh key) if it does not exist yet.

    This is the entry point for any component that seals data at rest, e.g. the audit
    spool: ``ring.encrypt_text(line, "audit-spool")`` / ``ring.decrypt_text(token,
    "audit-spool")``, one token per line, and ``dijk keys rotate --reencrypt`` covers it.
    """
    vault = settings.vault.transit() if settings.vault is not None else None
    ring, _ = load_or_create_key_ring(settings.path(data_dir), vault)
    return ring
