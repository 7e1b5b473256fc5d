"""The ``audit:`` section of the configuration, and the writer built from it.

The configuration package embeds :class:`AuditSettings` as its ``audit`` field; the field
names here extend the design's ``audit: {url: ...}`` and never rename it.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Final, Literal
from urllib.parse import urlsplit

import structlog
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from dijk.audit.keys import KEY_ENV, KEY_FILE_ENV, AuditKeyError, AuditKeys, generate_key_file
from dijk.audit.store import AuditURLError, open_store, parse_store_url
from dijk.audit.writer import AuditWriter

__all__ = ["AuditSettings", "SinkSettings", "create_writer", "data_dir_of", "load_keys"]

_LOG: Final = structlog.get_logger("dijk.audit")
_ENV_NAME: Final = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
_SYSLOG_SCHEMES: Final = ("udp", "tcp", "tls")
_HTTP_SCHEMES: Final = ("http", "https")

SinkType = Literal["syslog", "splunk-hec", "elastic-bulk", "otlp"]


class SinkSettings(BaseModel):
    """One live copy of the audit log in a SIEM (``audit.sinks``).

    Records reach a sink after they are committed (or spooled), with their chain, sequence
    number and hash. A sink that is down never slows requests: it retries with backoff
    while at most ``max_queue`` records wait for it in memory; past that the oldest copies
    are dropped, counted (``dijk_audit_sink_dropped_total``) and logged. The database keeps
    everything: ``dijk audit export --since`` refills a SIEM after a long outage.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: SinkType = Field(
        description="syslog (RFC 5424), splunk-hec, elastic-bulk (ECS documents) or otlp"
        " (OpenTelemetry logs, OTLP/HTTP JSON)."
    )
    url: str = Field(
        description="syslog: udp://host:port, tcp://host:port (octet counting) or"
        " tls://host:port; others: the http(s) endpoint (.../services/collector/event,"
        " .../_bulk, .../v1/logs)."
    )
    name: str | None = Field(None, description="Name in logs and metrics; default: the type.")
    token_env: str | None = Field(
        None,
        description="Environment variable with the credential: Splunk HEC token"
        " (Authorization: Splunk ...), Elasticsearch API key (Authorization: ApiKey ...),"
        " OTLP bearer token.",
    )
    index: str | None = Field(
        None, description="elastic-bulk: index or data stream (default logs-dijk.audit-default)."
    )
    ca_file: str | None = Field(
        None, description="tls:// and https://: CA bundle that signed the receiver's certificate."
    )
    hostname: str | None = Field(
        None, description="Host name in syslog headers and HEC events; default: this host."
    )
    batch_size: int = Field(500, ge=1, le=10_000, description="Records per send at most.")
    flush_interval_ms: int = Field(
        1000, ge=10, le=60_000, description="Send at least this often while records wait."
    )
    max_queue: int = Field(
        10_000, ge=1, le=1_000_000, description="Records waiting in memory for this sink at most."
    )
    timeout_s: float = Field(5.0, gt=0, le=120, description="Longest wait for one send.")
    max_backoff_s: float = Field(
        60.0, gt=0, le=3600, description="Longest pause between retries of a failing send."
    )

    @field_validator("token_env")
    @classmethod
    def _env_name(cls, value: str | None) -> str | None:
        if value is not None and not _ENV_NAME.match(value):
            raise ValueError("not a valid environment variable name")
        return value

    @model_validator(mode="after")
    def _url_fits_type(self) -> SinkSettings:
        parts = urlsplit(self.url)
        allowed = _SYSLOG_SCHEMES if self.type == "syslog" else _HTTP_SCHEMES
        if parts.scheme not in allowed:
            raise ValueError(
                f"url of a {self.type} sink must start with "
                + " or ".join(f"{scheme}://" for scheme in allowed)
            )
        if not parts.hostname:
            raise ValueError("url names no host")
        try:
            port = parts.port
        except ValueError:
            raise ValueError("url has an invalid port") from None
        if self.type == "syslog" and port is None:
            raise ValueError("a syslog url needs a port (udp://host:514, tls://host:6514)")
        if self.ca_file is not None and parts.scheme not in ("tls", "https"):
            raise ValueError("ca_file applies to tls:// and https:// urls only")
        return self

    @property
    def label(self) -> str:
        return self.name or self.type


class AuditSettings(BaseModel):
    """Where and how the activity log is written."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = Field(
        True,
        description="Write the activity log (one record per request). Turn off only for"
        " benchmarks or throwaway setups: it is the evidence of what the gateway did.",
    )
    url: str = Field(
        "sqlite:///./.dijk/audit.db",
        description="Audit database: sqlite:///path or postgresql://user@host:port/db;"
        " ?table=name picks the table (default dijk_audit).",
    )
    chain: str = Field(
        "default",
        pattern=r"^[A-Za-z0-9_.:-]{1,64}$",
        description="Name of this instance's hash chain. Every gateway instance writing to"
        " the same database needs its own: a gateway refuses to start on a chain another"
        " one is writing.",
    )
    durability: Literal["batched", "strict"] = Field(
        "batched",
        description="batched: commit at least every flush_interval_ms; strict: a response"
        " is released only after its record is committed (group commit).",
    )
    on_sink_error: Literal["spool", "deny"] = Field(
        "spool",
        description="When the database is down: spool records to a local file and go on,"
        " or (strict mode) answer 503. Records are spooled in both cases.",
    )
    flush_interval_ms: int = Field(100, ge=1, le=1000, description="Batched mode flush bound.")
    max_batch: int = Field(5000, ge=1, le=100_000, description="Records per commit at most.")
    max_queue: int = Field(
        20_000,
        ge=1,
        description="Records waiting in memory at most; then appends wait. In batched mode a"
        " crash loses at most this many plus one batch being written.",
    )
    checkpoint_every_records: int = Field(
        10_000, ge=1, description="Signed checkpoint after this many records."
    )
    checkpoint_every_s: float = Field(
        60.0, gt=0, description="Signed checkpoint at least this often while records arrive."
    )
    retention_days: int | None = Field(
        None, ge=1, description="Prune records older than this; None keeps everything."
    )
    key_file: str | None = Field(
        None,
        description="File with the audit secret (mode 0600). Default: $DIJK_AUDIT_KEY_FILE"
        " or $DIJK_AUDIT_KEY.",
    )
    generate_key: bool = Field(
        True,
        description="SQLite only: with no key configured, create <database dir>/audit.key"
        " (mode 0600) on first start. Keep a copy elsewhere; PostgreSQL always needs a key.",
    )
    spool_dir: str | None = Field(
        None, description="Directory for the spool file; default <data dir>/audit-spool."
    )
    pseudonymise_client_ip: bool = Field(
        True, description="Store client IPs as keyed hashes (recommended under GDPR)."
    )
    sinks: list[SinkSettings] = Field(
        default_factory=list,
        description="Live copies to SIEMs: syslog (UDP/TCP/TLS), Splunk HEC, Elasticsearch"
        " bulk, OTLP logs. Retries with backoff, bounded memory, never blocks requests.",
    )

    @field_validator("url")
    @classmethod
    def _url_is_usable(cls, value: str) -> str:
        try:
            parse_store_url(value)
        except AuditURLError as exc:
            raise ValueError(str(exc)) from None
        return value


def data_dir_of(settings: AuditSettings) -> Path:
    """Where the audit log keeps local files (spool, generated key) by default.

    The SQLite database's directory; ``./.dijk`` for PostgreSQL.
    """
    parsed = parse_store_url(settings.url)
    if parsed.scheme == "sqlite" and parsed.target != ":memory:":
        return Path(parsed.target).parent
    return Path(".dijk")


def load_keys(
    settings: AuditSettings, data_dir: Path | None = None
) -> tuple[AuditKeys, Path | None]:
    """The audit keys, and the key file created for them (None when one existed).

    Order: ``key_file``, ``$DIJK_AUDIT_KEY_FILE``, ``$DIJK_AUDIT_KEY``; then, for SQLite
    with ``generate_key``, ``<data dir>/audit.key``, created (0600) when missing. Raises
    :class:`AuditKeyError` with what to do when there is no key.
    """
    if settings.key_file or os.environ.get(KEY_FILE_ENV) or os.environ.get(KEY_ENV):
        return AuditKeys.load(Path(settings.key_file) if settings.key_file else None), None
    parsed = parse_store_url(settings.url)
    if parsed.scheme != "sqlite" or not settings.generate_key:
        raise AuditKeyError(
            f"no audit key: set audit.key_file, or {KEY_FILE_ENV} or {KEY_ENV}"
            " (create one with: dijk audit keygen --key-file FILE)"
        )
    path = (data_dir if data_dir is not None else data_dir_of(settings)) / "audit.key"
    created = None
    if not path.exists():
        generate_key_file(path)
        created = path
        _LOG.warning(
            "audit: generated a new audit key at %s; back it up and keep a copy away from the"
            " database (whoever has both can rewrite the log)",
            path,
        )
    return AuditKeys.load(path), created


def create_writer(
    settings: AuditSettings, *, data_dir: Path, keys: AuditKeys | None = None
) -> AuditWriter:
    """A writer for ``settings`` (call ``await writer.start()`` before use)."""
    if keys is None:
        keys, _ = load_keys(settings, data_dir)
    parsed = parse_store_url(settings.url)
    spool_dir = Path(settings.spool_dir) if settings.spool_dir else data_dir / "audit-spool"
    spool_path = spool_dir / f"{parsed.table}-{settings.chain}.spool.jsonl"
    store = open_store(settings.url, create=True, durable=settings.durability == "strict")
    return AuditWriter(
        store,
        keys,
        spool_path=spool_path,
        chain=settings.chain,
        durability=settings.durability,
        on_sink_error=settings.on_sink_error,
        flush_interval_s=settings.flush_interval_ms / 1000,
        max_batch=settings.max_batch,
        max_queue=max(settings.max_queue, settings.max_batch),
        checkpoint_every_records=settings.checkpoint_every_records,
        checkpoint_every_s=settings.checkpoint_every_s,
    )
