"""Typed configuration (the shape in DESIGN.md is a contract: fields are added, never renamed).

Every model forbids unknown keys, every option has a safe default and a description; the
README's configuration reference is generated from these descriptions
(``dijk config reference``).
"""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from dijk.pipeline.stage import OnError

_HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")

Port = Annotated[int, Field(ge=1, le=65535)]
PositiveSeconds = Annotated[float, Field(gt=0, le=3600)]


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)


class TlsConfig(Model):
    cert_file: str = Field(description="PEM certificate chain served to clients.")
    key_file: str = Field(description="PEM private key of the certificate.")
    client_ca_file: str | None = Field(
        default=None,
        description="PEM CA bundle; when set, clients must present a certificate it signed (mTLS).",
    )
    min_version: Literal["1.2", "1.3"] = Field(
        default="1.2", description="Lowest TLS version accepted (never below 1.2)."
    )


class ListenConfig(Model):
    address: str = Field(default="127.0.0.1", description="Address the gateway listens on.")
    port: Port = Field(default=8080, description="Port of the data plane.")
    tls: TlsConfig | None = Field(default=None, description="Serve HTTPS instead of HTTP.")

    @field_validator("address")
    @classmethod
    def _address(cls, value: str) -> str:
        if value in {"localhost", "*"}:
            return value
        ipaddress.ip_address(value)
        return value


class AdminConfig(Model):
    address: str = Field(default="127.0.0.1", description="Address of the admin listener.")
    port: Port = Field(default=9090, description="Port of /healthz, /readyz, /metrics, admin API.")
    token_env: str = Field(
        default="DIJK_ADMIN_TOKEN",
        description="Environment variable holding the admin API bearer token; "
        "without it the admin API (not health or metrics) is disabled.",
    )

    @field_validator("token_env")
    @classmethod
    def _env(cls, value: str) -> str:
        return _check_env_name(value)


class StorageConfig(Model):
    url: str = Field(
        default="memory://",
        description="Shared state (counters, revocations): memory://, redis://host:port/db.",
    )


class AuditConfig(Model):
    url: str = Field(
        default="sqlite:///./.dijk/audit.db",
        description="Audit log store: sqlite:///path or postgresql://user@host:port/db.",
    )


class LimitsConfig(Model):
    max_body_bytes: int = Field(
        default=1_048_576, ge=0, le=1 << 30, description="Largest request body accepted (413)."
    )
    max_header_bytes: int = Field(
        default=16_384,
        ge=1024,
        le=1 << 20,
        description="Largest request line plus headers accepted (431).",
    )
    max_headers: int = Field(default=100, ge=8, le=1000, description="Most header fields (431).")
    max_json_depth: int = Field(default=32, ge=1, le=1000, description="Deepest JSON nesting.")
    max_json_array_length: int = Field(
        default=10_000, ge=1, description="Most elements in one JSON array."
    )
    max_json_string_length: int = Field(
        default=65_536, ge=1, description="Longest JSON string (key or value) in bytes."
    )
    max_json_keys: int = Field(default=1_000, ge=1, description="Most keys in one JSON object.")
    header_timeout_s: PositiveSeconds = Field(
        default=10, description="Time allowed to send the request line and headers (408)."
    )
    body_timeout_s: PositiveSeconds = Field(
        default=30, description="Time allowed to send the whole request body (408)."
    )
    keepalive_timeout_s: PositiveSeconds = Field(
        default=60, description="Idle keep-alive connections are closed after this."
    )
    max_response_buffer_bytes: int = Field(
        default=8_388_608,
        ge=1024,
        description="Largest upstream response a stage may buffer (502 beyond it).",
    )


class UpstreamConfig(Model):
    url: str = Field(description="Base URL of the upstream service (http://host:port).")
    connect_timeout_s: PositiveSeconds = Field(default=2, description="TCP connect timeout (502).")
    read_timeout_s: PositiveSeconds = Field(
        default=30, description="Time to wait for response headers and between body reads (504)."
    )
    host: str = Field(
        default="upstream",
        description="Host header sent upstream: 'upstream' (the upstream URL's host), "
        "'preserve' (the client's Host), or a fixed host name.",
    )
    max_idle_connections: int = Field(
        default=64, ge=0, le=4096, description="Keep-alive connections kept open per upstream."
    )

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme != "http":
            raise ValueError("only http:// upstreams are supported")
        if not parts.hostname:
            raise ValueError("upstream URL needs a host")
        if parts.query or parts.fragment:
            raise ValueError("upstream URL must not have a query or fragment")
        if parts.path not in ("", "/"):
            raise ValueError("upstream URL must not have a path (use a route's strip_prefix)")
        if parts.username or parts.password:
            raise ValueError("upstream URL must not carry credentials")
        try:
            parts.port  # noqa: B018 - parsing the port validates it
        except ValueError as exc:
            raise ValueError(f"invalid port: {exc}") from None
        return value


class ApiKeyRef(Model):
    sha256: str | None = Field(default=None, description="Hex SHA-256 digest of the key.")
    env: str | None = Field(default=None, description="Environment variable holding the key.")

    @model_validator(mode="after")
    def _one(self) -> ApiKeyRef:
        if (self.sha256 is None) == (self.env is None):
            raise ValueError("give exactly one of 'sha256' or 'env'")
        if self.sha256 is not None and not re.fullmatch(r"[0-9a-fA-F]{64}", self.sha256):
            raise ValueError("sha256 must be 64 hex characters")
        if self.env is not None:
            _check_env_name(self.env)
        return self


class ConsumerConfig(Model):
    name: str = Field(description="Unique consumer name (appears in logs and metrics).")
    api_keys: list[ApiKeyRef] = Field(
        default_factory=list, description="Keys of this consumer; several allow rotation."
    )
    scopes: list[str] = Field(default_factory=list, description="Scopes granted.")
    groups: list[str] = Field(default_factory=list, description="Groups the consumer is in.")

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return _check_name(value)


class ApiKeyAuthConfig(Model):
    header: str = Field(default="X-API-Key", description="Request header carrying the key.")

    @field_validator("header")
    @classmethod
    def _header(cls, value: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9-]{1,64}", value):
            raise ValueError("not a valid header name")
        return value


class AuthConfig(Model):
    api_key: ApiKeyAuthConfig | None = Field(
        default=None, description="API key authentication (keys belong to consumers)."
    )


class RouteMatch(Model):
    path: str | None = Field(default=None, description="Exact path.")
    path_prefix: str | None = Field(
        default=None, description="Path prefix, matched on segment boundaries."
    )
    path_template: str | None = Field(
        default=None, description="Template such as /api/v1/accounts/{id}."
    )
    methods: list[str] | None = Field(
        default=None, description="Allowed methods; other methods get 405. Default: any."
    )

    @model_validator(mode="after")
    def _exactly_one(self) -> RouteMatch:
        given = [v for v in (self.path, self.path_prefix, self.path_template) if v is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of 'path', 'path_prefix' or 'path_template'")
        if not given[0].startswith("/"):
            raise ValueError("paths must start with '/'")
        return self

    @field_validator("methods")
    @classmethod
    def _methods(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return None
        upper = [method.upper() for method in value]
        unknown = sorted(set(upper) - _HTTP_METHODS)
        if unknown:
            raise ValueError(f"unknown HTTP method(s): {', '.join(unknown)}")
        if not upper:
            raise ValueError("methods must not be empty (omit it to allow any method)")
        return upper


class RouteConfig(Model):
    name: str = Field(description="Unique route name (appears in logs and metrics).")
    match: RouteMatch = Field(description="Which requests this route takes.")
    upstream: str = Field(description="Name of an entry in 'upstreams'.")
    auth: list[Literal["api_key"]] = Field(
        default_factory=list,
        description="Accepted authentication methods (any of them); [] means public.",
    )
    scopes: list[str] = Field(
        default_factory=list, description="Scopes the caller must all have (403 otherwise)."
    )
    strip_prefix: str | None = Field(
        default=None, description="Remove this prefix from the path before forwarding."
    )
    on_error: OnError = Field(
        default=OnError.DENY,
        description="What a fault inside this route's stages does: deny (fail closed) or allow.",
    )

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return _check_name(value)


class LoggingConfig(Model):
    level: Literal["debug", "info", "warning", "error"] = Field(
        default="info", description="Lowest level written."
    )
    format: Literal["json", "console"] = Field(default="json", description="Log line format.")
    access_log: bool = Field(
        default=False,
        description="One log line per request (the audit log is the record of every request).",
    )


class DijkConfig(Model):
    version: Literal[1] = Field(description="Configuration format version.")
    listen: ListenConfig = Field(default_factory=ListenConfig, description="Data plane listener.")
    admin: AdminConfig = Field(default_factory=AdminConfig, description="Admin listener.")
    storage: StorageConfig = Field(default_factory=StorageConfig, description="Shared state.")
    audit: AuditConfig = Field(default_factory=AuditConfig, description="Audit log.")
    limits: LimitsConfig = Field(default_factory=LimitsConfig, description="Client limits.")
    trusted_proxies: list[str] = Field(
        default_factory=list,
        description="CIDRs of proxies in front of Dijk whose X-Forwarded-* headers are trusted.",
    )
    logging: LoggingConfig = Field(default_factory=LoggingConfig, description="Logging.")
    upstreams: dict[str, UpstreamConfig] = Field(description="Upstream services by name.")
    consumers: list[ConsumerConfig] = Field(
        default_factory=list, description="Known API consumers."
    )
    auth: AuthConfig = Field(default_factory=AuthConfig, description="Authentication methods.")
    routes: list[RouteConfig] = Field(description="Routes, matched most specific first.")

    @field_validator("trusted_proxies")
    @classmethod
    def _cidrs(cls, value: list[str]) -> list[str]:
        for cidr in value:
            try:
                ipaddress.ip_network(cidr, strict=False)
            except ValueError:
                raise ValueError(f"not an IP network: {cidr!r}") from None
        return value

    @field_validator("upstreams")
    @classmethod
    def _upstream_names(cls, value: dict[str, UpstreamConfig]) -> dict[str, UpstreamConfig]:
        for name in value:
            _check_name(name)
        if not value:
            raise ValueError("at least one upstream is required")
        return value


def _check_name(value: str) -> str:
    if not _NAME.match(value):
        raise ValueError("names are 1-64 characters: letters, digits, '_', '.', '-'")
    return value


def _check_env_name(value: str) -> str:
    if not _ENV_NAME.match(value):
        raise ValueError("not a valid environment variable name")
    return value
