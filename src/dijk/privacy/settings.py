"""Privacy configuration: the top-level ``privacy:`` section and a route's ``privacy:``.

The configuration package embeds these models (``DijkConfig.privacy``,
``RouteConfig.privacy``); they import nothing from the gateway, only the pure detector's
category names and the masker (to check field patterns when the file loads).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from dijk.crypto.settings import KeyRingSettings
from dijk.detect.pii_model import Category

__all__ = [
    "DEFAULT_DATA_DIR",
    "PrivacySettings",
    "RoutePrivacy",
    "check_table_prefix",
    "data_dir_for",
]

DEFAULT_DATA_DIR = ".dijk"
_REGION = re.compile(r"^[A-Z]{2}$")
_PREFIX = re.compile(r"^[a-z_][a-z0-9_]{0,23}$")
_SCOPE = re.compile(r"^\S{1,128}$")

StrategyName = Literal["mask", "hash", "drop"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)


class RoutePrivacy(_Model):
    mask_response: bool = Field(
        default=False,
        description="Mask personal data in JSON responses (else only find and record it).",
    )
    strategy: StrategyName = Field(
        default="mask",
        description="mask (j***@example.nl, IBAN last 4), hash (keyed pseudonym "
        "pii:<category>:<hex>) or drop (remove the member) for personal data found.",
    )
    fields: dict[str, StrategyName] = Field(
        default_factory=dict,
        description="Field rules applied whatever is found: a field name (bsn) or a path "
        "($.accounts[*].bsn) mapped to mask, hash or drop.",
    )
    categories: list[Category] | None = Field(
        default=None,
        description="Categories masked in responses (default: all): email, phone, iban, bsn, "
        "card, ip, date_of_birth, postcode, secret.",
    )
    scan_requests: bool = Field(
        default=True,
        description="Also find personal data in JSON request bodies (recorded, never masked).",
    )
    scope_categories: dict[str, list[Category]] = Field(
        default_factory=dict,
        description="Categories each scope needs, e.g. {accounts:read: [email, iban]}; "
        "categories returned to a consumer none of whose scopes lists them are "
        "data-minimisation findings in `dijk privacy report`.",
    )

    @field_validator("fields")
    @classmethod
    def _patterns(cls, value: dict[str, StrategyName]) -> dict[str, StrategyName]:
        from dijk.detect.masking import Masker

        # Compiling the masker checks every pattern; the key only satisfies `hash`.
        Masker(fields=value, key=b"\0" * 32)
        return value

    @field_validator("scope_categories")
    @classmethod
    def _scopes(cls, value: dict[str, list[Category]]) -> dict[str, list[Category]]:
        for scope in value:
            if not _SCOPE.match(scope):
                raise ValueError(f"bad scope {scope!r}")
        return value


class PrivacySettings(_Model):
    organisation: str = Field(
        default="",
        max_length=200,
        description="Name of the organisation (the controller) printed on the Art. 30 and "
        "breach reports of the dashboard; the CLI takes --organisation.",
    )
    region: str = Field(default="NL", description="Default phone-number region (ISO 3166 alpha-2).")
    data_dir: str | None = Field(
        default=None,
        description="Directory of the key ring and the sealed pseudonym key. Default: the "
        "directory of a sqlite audit database, else ./.dijk.",
    )
    keys: KeyRingSettings = Field(
        default_factory=KeyRingSettings,
        description="Key ring that seals Dijk's own sensitive data at rest (AES-256-GCM).",
    )
    datamap: bool = Field(
        default=True,
        description="Keep the data map (categories per endpoint and field, consumers) and "
        "the exposure log for breach reports in the audit database.",
    )
    flush_interval_s: float = Field(
        default=10,
        gt=0,
        le=3600,
        description="The data map is aggregated in memory and written this often "
        "(and on shutdown), never per request.",
    )
    exposure_bucket_s: int = Field(
        default=300,
        ge=60,
        le=86_400,
        description="Time resolution of the exposure log that breach reports read.",
    )
    exposure_retention_days: int = Field(
        default=400,
        ge=1,
        le=3660,
        description="Exposure rows (pseudonymous subjects per endpoint and consumer) older "
        "than this are deleted.",
    )
    max_pending: int = Field(
        default=200_000,
        ge=1000,
        le=10_000_000,
        description="Most rows held in memory between flushes (or while the database is "
        "down); past it new subjects are counted as dropped and reports say 'at least'.",
    )
    table_prefix: str = Field(
        default="dijk_",
        description="Prefix of the privacy tables (<prefix>datamap, <prefix>exposure, ...).",
    )
    debug_log_bodies: bool = Field(
        default=False,
        description="Log request and response bodies of privacy routes at debug level, "
        "with every category masked (never raw). Off by default.",
    )

    @field_validator("region")
    @classmethod
    def _region(cls, value: str) -> str:
        upper = value.upper()
        if not _REGION.match(upper):
            raise ValueError("a two-letter ISO 3166 region such as NL")
        import phonenumbers

        if phonenumbers.country_code_for_region(upper) == 0:
            raise ValueError(f"unknown phone region {value!r}")
        return upper

    @field_validator("table_prefix")
    @classmethod
    def _prefix(cls, value: str) -> str:
        return check_table_prefix(value)

    @field_validator("exposure_bucket_s")
    @classmethod
    def _bucket(cls, value: int) -> int:
        if 86_400 % value:
            raise ValueError("must divide a day (e.g. 60, 300, 900, 3600)")
        return value


def check_table_prefix(value: str) -> str:
    """A prefix of Dijk's own table names (it is written into SQL, so strictly checked)."""
    if not _PREFIX.match(value):
        raise ValueError("lower-case letters, digits and _ (at most 24), not a digit first")
    return value


def data_dir_for(privacy: PrivacySettings, audit_url: str) -> Path:
    """Where key material lives: the setting, else beside a sqlite audit database."""
    if privacy.data_dir:
        return Path(privacy.data_dir)
    if audit_url.startswith("sqlite:///"):
        path = audit_url[len("sqlite:///") :].split("?", 1)[0]
        if path and path != ":memory:":
            return Path(path).parent
    return Path(DEFAULT_DATA_DIR)
