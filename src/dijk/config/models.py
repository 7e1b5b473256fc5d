"""Typed configuration (the shape is a contract: fields are added, never renamed).

Every model forbids unknown keys, every option has a safe default and a description; the
README's configuration reference is generated from these descriptions
(``dijk config reference``).
"""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from dijk.abuse.settings import AbuseSettings, RouteAbuse
from dijk.alerts.settings import AlertSettings
from dijk.audit.settings import AuditSettings
from dijk.discovery.settings import DiscoverySettings, RouteDiscovery
from dijk.pipeline.stage import OnError
from dijk.privacy.settings import PrivacySettings, RoutePrivacy

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
        return _check_listen_address(value)


def _check_listen_address(value: str) -> str:
    if value in {"localhost", "*"}:
        return value
    ipaddress.ip_address(value)
    return value


DashboardRole = Literal["viewer", "operator", "privacy"]


class AdminUser(Model):
    name: str = Field(
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$",
        description="Sign-in name (letters, digits, . _ @ -); the audit log names it user:<name>.",
    )
    password_hash: str = Field(
        description="scrypt hash of the password as printed by `dijk admin hash-password` "
        "(scrypt$15$8$1$<salt>$<hash>); a plain password is refused.",
    )
    roles: list[DashboardRole] = Field(
        min_length=1, description="viewer, operator and/or privacy (at least one)."
    )

    @field_validator("password_hash")
    @classmethod
    def _hash(cls, value: str) -> str:
        from dijk.auth.passwords import check_hash

        return check_hash(value)


class AdminConfig(Model):
    address: str = Field(default="127.0.0.1", description="Address of the admin listener.")
    port: Port = Field(default=9090, description="Port of /healthz, /readyz, /metrics, admin API.")
    token_env: str = Field(
        default="DIJK_ADMIN_TOKEN",
        description="Environment variable holding the admin API bearer token; "
        "without it the admin API (not health or metrics) is disabled.",
    )

    users: list[AdminUser] = Field(
        default_factory=list,
        description="People who sign in to the dashboard (/ui/) by name and password, each "
        "with roles: viewer (overview, security events, audit search, inventory), operator "
        "(viewer, plus the configuration page and its reload), privacy (the privacy page, "
        "the Art. 30 register and breach reports). The admin token still signs in with "
        "every right. The admin API itself takes only the token.",
    )

    @field_validator("token_env")
    @classmethod
    def _env(cls, value: str) -> str:
        return _check_env_name(value)

    @model_validator(mode="after")
    def _unique_users(self) -> AdminConfig:
        names = [user.name for user in self.users]
        doubled = sorted({name for name in names if names.count(name) > 1})
        if doubled:
            raise ValueError(f"admin.users: names must be unique ({', '.join(doubled)})")
        return self


class StorageConfig(Model):
    url: str = Field(
        default="memory://",
        description="Shared state (counters, revocations): memory://, redis://host:port/db.",
    )
    timeout_s: float = Field(
        default=0.25,
        gt=0,
        le=10,
        description="Longest wait for one storage call (connect, pool, command); past it the "
        "call fails and the caller's on_storage_error applies, so no request hangs on storage.",
    )


# The audit and alerts sections live beside the code that uses them (audit/settings.py,
# alerts/settings.py); `audit: {url: ...}` keeps its name and meaning.
AuditConfig = AuditSettings


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
    min_body_rate_bytes_s: int = Field(
        default=1024,
        ge=0,
        description="Slowest request body upload accepted, from its first byte (408 "
        "http.body_too_slow: slow POST): each byte buys 1/rate seconds; 0 turns it off.",
    )
    body_rate_grace_s: PositiveSeconds = Field(
        default=5,
        description="How far a body may fall behind min_body_rate_bytes_s: the wait for its "
        "first byte, and the longest stall (an early burst saves up no more than this).",
    )
    max_uploads: int = Field(
        default=1024,
        ge=1,
        le=1_000_000,
        description="Requests whose body is still arriving, at once (503 "
        "overload.too_many_uploads); they are counted apart from overload.max_in_flight.",
    )
    max_uploads_per_ip: int = Field(
        default=0,
        ge=0,
        le=1_000_000,
        description="Uploads in progress one client address may have (429 "
        "limits.too_many_uploads). 0 turns it off (the default: behind a load balancer not "
        "listed in trusted_proxies every request comes from one address).",
    )
    max_buffered_body_bytes: int = Field(
        default=64 * 1024 * 1024,
        ge=1 << 20,
        le=1 << 40,
        description="Request body bytes held in memory by all requests together (read "
        "whole for inspection, or waiting to be streamed); past it 503 overload.body_memory.",
    )
    max_pipelined_requests: int = Field(
        default=16,
        ge=1,
        le=1024,
        description="Requests one connection may have waiting behind the one being answered "
        "(HTTP pipelining); past it the connection is not read until answers go out.",
    )

    @model_validator(mode="after")
    def _body_fits_budget(self) -> LimitsConfig:
        if self.max_buffered_body_bytes < self.max_body_bytes:
            raise ValueError(
                f"max_buffered_body_bytes ({self.max_buffered_body_bytes}) must be at least "
                f"max_body_bytes ({self.max_body_bytes}): a body read whole could never fit"
            )
        return self

    max_connections_per_ip: int = Field(
        default=0,
        ge=0,
        le=1_000_000,
        description="Open connections one client address may hold (more are answered 429 "
        "and closed); trusted_proxies are exempt. 0 turns it off (the default, because "
        "behind a load balancer every connection comes from the balancer).",
    )


def _check_upstream_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https"):
        raise ValueError("only http:// and https:// upstreams are supported")
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


UpstreamUrl = Annotated[str, AfterValidator(_check_upstream_url)]


class UpstreamTargetConfig(Model):
    url: UpstreamUrl = Field(description="http://host:port or https://host:port of one target.")
    weight: int = Field(default=1, ge=1, le=1000, description="Share of requests (relative).")


class UpstreamTlsConfig(Model):
    ca_file: str | None = Field(
        default=None,
        description="PEM bundle of the CAs trusted for https:// targets (default: the system's).",
    )
    verify: bool = Field(
        default=True,
        description="Verify the target's certificate and host name. false is for tests only: "
        "anyone on the path can then read and change the traffic.",
    )
    server_name: str | None = Field(
        default=None,
        description="Name sent in SNI and checked against the certificate (default: the "
        "target URL's host).",
    )
    cert_file: str | None = Field(
        default=None, description="Client certificate (PEM) presented to the targets (mTLS)."
    )
    key_file: str | None = Field(default=None, description="Private key of cert_file (PEM).")

    @model_validator(mode="after")
    def _pair(self) -> UpstreamTlsConfig:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("give both 'cert_file' and 'key_file', or neither")
        return self


class PassiveHealthConfig(Model):
    failures: int = Field(
        default=3,
        ge=1,
        le=1000,
        description="Consecutive failed connections (refused, timed out, TLS refused) that "
        "eject a target.",
    )
    eject_s: PositiveSeconds = Field(
        default=30, description="How long an ejected target gets no requests."
    )


class HealthCheckConfig(Model):
    path: str = Field(default="/healthz", pattern=r"^/[!-~]*$", description="Path requested.")
    interval_s: PositiveSeconds = Field(default=5, description="Time between checks per target.")
    timeout_s: PositiveSeconds = Field(default=2, description="Time allowed for one check.")
    expected_status: list[Annotated[int, Field(ge=100, le=599)]] = Field(
        default=[200], min_length=1, description="Statuses that mean healthy."
    )
    unhealthy_after: int = Field(
        default=2, ge=1, le=100, description="Failed checks in a row that take a target out."
    )
    healthy_after: int = Field(
        default=1, ge=1, le=100, description="Passed checks in a row that bring it back."
    )


class RetryConfig(Model):
    attempts: int = Field(
        default=1,
        ge=0,
        le=10,
        description="Other targets tried when connecting to one fails (nothing was sent to "
        "it); 0: no retry.",
    )
    budget_ratio: float = Field(
        default=0.2,
        ge=0,
        le=1,
        description="Retries earned per request (0.2: at most one retry per five requests, "
        "after min_per_s); when the budget is spent the failure is answered, not retried.",
    )
    min_per_s: float = Field(
        default=10, ge=0, le=10000, description="Retries always allowed per second."
    )


class UpstreamConfig(Model):
    url: UpstreamUrl | None = Field(
        default=None,
        description="Base URL of a single-target upstream (http://host:port or https://...). "
        "Give either url or targets.",
    )
    targets: list[UpstreamTargetConfig] = Field(
        default_factory=list, max_length=256, description="Several targets, balanced."
    )
    balance: Literal["round_robin", "least_connections", "consistent_hash"] = Field(
        default="round_robin",
        description="round_robin (weighted), least_connections (requests in flight / weight), "
        "consistent_hash (the same key goes to the same target while it is healthy).",
    )
    hash_on: str = Field(
        default="ip",
        pattern=r"^(ip|header:[!#$%&'*+.^_`|~0-9A-Za-z-]+|cookie:[!#$%&'*+.^_`|~0-9A-Za-z-]+)$",
        description="consistent_hash key: ip (client address), header:<name> or cookie:<name>; "
        "a request without it hashes on the client address.",
    )
    tls: UpstreamTlsConfig = Field(
        default_factory=UpstreamTlsConfig, description="TLS towards https:// targets."
    )
    passive_health: PassiveHealthConfig = Field(
        default_factory=PassiveHealthConfig, description="Ejection on failed connections."
    )
    health_check: HealthCheckConfig | None = Field(
        default=None, description="Active health checks (HTTP GET per target); null: none."
    )
    retries: RetryConfig = Field(default_factory=RetryConfig, description="Retries, budgeted.")
    max_connections: int | None = Field(
        default=None,
        ge=1,
        le=100000,
        description="Connections in use per target at most; beyond it 503 "
        "upstream.pool_exhausted. null: no limit.",
    )
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
        default=64, ge=0, le=4096, description="Keep-alive connections kept open per target."
    )

    @model_validator(mode="after")
    def _one_form(self) -> UpstreamConfig:
        if (self.url is None) == (not self.targets):
            raise ValueError("give exactly one of 'url' or 'targets'")
        return self

    @property
    def target_list(self) -> list[UpstreamTargetConfig]:
        """Every target; the single-URL form is one target of weight 1."""
        if self.url is not None:
            return [UpstreamTargetConfig(url=self.url)]
        return list(self.targets)


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


_SAN_TYPES = {"dns": "DNS", "uri": "URI", "email": "email", "ip": "IP Address"}


class ClientCertRef(Model):
    sha256: str | None = Field(
        default=None,
        description="SHA-256 fingerprint of the DER certificate (hex, colons allowed).",
    )
    subject: str | None = Field(
        default=None,
        description="Exact subject, e.g. 'CN=payments,O=Polder Bank' (attribute order ignored).",
    )
    san: str | None = Field(
        default=None,
        description="A subjectAltName entry: 'DNS:name', 'URI:spiffe://...', 'email:...' "
        "or 'IP:...'.",
    )

    @model_validator(mode="after")
    def _one(self) -> ClientCertRef:
        given = [v for v in (self.sha256, self.subject, self.san) if v is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of 'sha256', 'subject' or 'san'")
        if self.sha256 is not None and not re.fullmatch(
            r"[0-9a-fA-F]{64}", self.sha256.replace(":", "")
        ):
            raise ValueError("sha256 must be 64 hex characters (colons allowed)")
        if self.subject is not None and not re.fullmatch(
            r"\s*[A-Za-z.0-9]+\s*=[^,=]+(,\s*[A-Za-z.0-9]+\s*=[^,=]+)*", self.subject
        ):
            raise ValueError("subject must look like 'CN=name,O=organisation'")
        if self.san is not None:
            kind, _, value = self.san.partition(":")
            if kind.lower() not in _SAN_TYPES or not value:
                raise ValueError("san must be 'DNS:...', 'URI:...', 'email:...' or 'IP:...'")
        return self


# ---- rate limiting and DoS protection (used by stages/ratelimit.py and friends) ----

_RATE_KEY_PARTS = frozenset({"consumer", "api_key", "ip", "route"})
_RATE_HEADER = re.compile(r"^header:[A-Za-z0-9-]{1,64}$")
_RATE_CLAIM = re.compile(r"^claim:[A-Za-z0-9_.:/-]{1,128}$")
_POLICY_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:+-]{0,63}$")


class RateLimitRule(Model):
    key: str = Field(
        default="consumer",
        description="What is counted separately: consumer, api_key, ip, route, header:<name>, "
        "claim:<name>, or several joined with '+' (e.g. consumer+ip).",
    )
    limit: int = Field(
        ge=1, le=1_000_000_000, description="Requests allowed per window (or per quota period)."
    )
    per_s: float | None = Field(
        default=None, gt=0, le=31_622_400, description="Length of the rolling window in seconds."
    )
    per: Literal["day", "month"] | None = Field(
        default=None,
        description="A calendar quota (UTC day or month) instead of a rolling window; "
        "refusals are ratelimit.quota_exceeded.",
    )
    algorithm: Literal["sliding_window", "gcra"] = Field(
        default="sliding_window",
        description="sliding_window (weighted counter of two windows) or gcra (token bucket "
        "that allows 'burst' requests at once and refills at limit/per_s).",
    )
    burst: int | None = Field(
        default=None, ge=1, le=1_000_000_000, description="gcra only: bucket size (default: limit)."
    )
    ipv4_prefix: int = Field(
        default=32, ge=8, le=32, description="IPv4 addresses are counted per network of this size."
    )
    ipv6_prefix: int = Field(
        default=64,
        ge=16,
        le=128,
        description="IPv6 addresses are counted per network of this size (one /64 is one host).",
    )
    name: str | None = Field(
        default=None,
        description="Policy name in the RateLimit-Policy and RateLimit headers "
        "(default: key and window).",
    )

    @field_validator("key")
    @classmethod
    def _key(cls, value: str) -> str:
        parts = [part.strip() for part in value.split("+")]
        normalised = []
        for part in parts:
            if part.startswith("header:") and _RATE_HEADER.match(part):
                part = part.lower()
            elif not (part in _RATE_KEY_PARTS or _RATE_CLAIM.match(part)):
                raise ValueError(
                    f"unknown key part {part!r}: use consumer, api_key, ip, route, "
                    "header:<name> or claim:<name>, joined with '+'"
                )
            normalised.append(part)
        if len(set(normalised)) != len(normalised):
            raise ValueError("a key part is listed twice")
        return "+".join(normalised)

    @field_validator("name")
    @classmethod
    def _policy_name(cls, value: str | None) -> str | None:
        if value is not None and not _POLICY_NAME.match(value):
            raise ValueError("1-64 characters: letters, digits, '_', '.', ':', '+', '-'")
        return value

    @model_validator(mode="after")
    def _window(self) -> RateLimitRule:
        if (self.per_s is None) == (self.per is None):
            raise ValueError("give exactly one of 'per_s' (rolling window) or 'per' (quota)")
        if self.algorithm != "gcra" and self.burst is not None:
            raise ValueError("'burst' only applies to algorithm: gcra")
        if self.per is not None and self.algorithm == "gcra":
            raise ValueError("calendar quotas ('per') count requests; they cannot use gcra")
        return self


class RateLimitSettings(Model):
    on_storage_error: Literal["deny", "allow"] = Field(
        default="deny",
        description="When the storage cannot answer: deny (503 ratelimit.storage_unavailable) "
        "or allow the request unlimited. Either way it is counted and logged.",
    )
    key_prefix: str = Field(
        default="dijk:rl:",
        pattern=r"^[A-Za-z0-9:_.-]{1,64}$",
        description="Prefix of every counter key in the storage (separates environments).",
    )
    error_log_interval_s: PositiveSeconds = Field(
        default=10, description="Storage errors are logged at most once per this interval."
    )
    max_connections: int = Field(
        default=64,
        ge=1,
        le=4096,
        description="Redis connections the rate limiter of one instance may open (a bounded "
        "pool: past it, a check waits up to storage.timeout_s, then on_storage_error applies).",
    )


class LoginAttemptLimit(Model):
    limit: int = Field(ge=1, le=1_000_000, description="Attempts allowed per window.")
    per_s: float = Field(gt=0, le=31_622_400, description="Window length in seconds.")


class LoginGuardConfig(Model):
    ip: LoginAttemptLimit | None = Field(
        default_factory=lambda: LoginAttemptLimit(limit=10, per_s=60),
        description="Login attempts per client IP (429 ratelimit.login_ip).",
    )
    account: LoginAttemptLimit | None = Field(
        default_factory=lambda: LoginAttemptLimit(limit=5, per_s=900),
        description="Failed logins per username, from any IP (429 ratelimit.login_account).",
    )
    username_field: str = Field(
        default="username",
        pattern=r"^[A-Za-z0-9_.-]{1,64}$",
        description="Field of the JSON or form body that holds the username.",
    )
    failure_statuses: list[int] = Field(
        default_factory=lambda: [401, 403],
        description="Upstream status codes that mean 'wrong credentials'.",
    )
    ipv6_prefix: int = Field(
        default=64, ge=16, le=128, description="IPv6 clients are counted per network of this size."
    )


class OverloadConfig(Model):
    max_in_flight: int = Field(
        default=0,
        ge=0,
        description="Shed new requests (503 overload.shed) while this many are in flight; "
        "0 turns it off.",
    )
    max_event_loop_lag_s: float = Field(
        default=0,
        ge=0,
        le=60,
        description="Shed new requests while the event loop runs this late; 0 turns it off.",
    )
    ready_reserve: float = Field(
        default=0.25,
        ge=0,
        lt=1,
        description="Share of max_in_flight kept for requests that are ready (body complete "
        "or none): a request whose body is still arriving is shed once the rest is in use.",
    )
    retry_after_s: int = Field(
        default=2, ge=1, le=3600, description="Retry-After sent with overload.shed."
    )
    max_concurrent_per_consumer: int = Field(
        default=0,
        ge=0,
        description="Requests one consumer may have in flight on this instance (429 "
        "ratelimit.concurrency_exceeded); consumers[].max_concurrent_requests overrides; "
        "0 means no cap.",
    )


# A token's consumer claim as the verifiers accept it: a non-empty string of at most 256.
TokenSubject = Annotated[str, Field(min_length=1, max_length=256)]


class ConsumerConfig(Model):
    name: str = Field(description="Unique consumer name (appears in logs and metrics).")
    api_keys: list[ApiKeyRef] = Field(
        default_factory=list, description="Keys of this consumer; several allow rotation."
    )
    scopes: list[str] = Field(default_factory=list, description="Scopes granted.")
    groups: list[str] = Field(default_factory=list, description="Groups the consumer is in.")
    client_certificates: list[ClientCertRef] = Field(
        default_factory=list,
        description="Client certificates (mTLS) that identify this consumer; any of them.",
    )
    rate_limit: list[RateLimitRule] = Field(
        default_factory=list,
        description="Limits on this consumer across every route it calls (key defaults to "
        "consumer); calendar quotas go here too.",
    )
    max_concurrent_requests: int | None = Field(
        default=None, ge=1, description="Requests this consumer may have in flight at once."
    )
    jwt_subjects: list[TokenSubject] = Field(
        default_factory=list,
        description="Values of auth.jwt.consumer_claim ('sub' by default), from tokens of "
        "auth.jwt.issuer, that are this consumer: its limits, concurrency cap and groups "
        "apply, and the token's scopes are capped by its scopes. Other tokens are the "
        "consumer 'jwt:<value>'.",
    )
    introspection_subjects: list[TokenSubject] = Field(
        default_factory=list,
        description="Values of auth.introspection.consumer_claim ('client_id' by default) "
        "that are this consumer, as jwt_subjects. Other tokens are the consumer "
        "'introspection:<value>'.",
    )

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return _check_name(value)


class ApiKeyAuthConfig(Model):
    header: str = Field(default="X-API-Key", description="Request header carrying the key.")
    query_param: str | None = Field(
        default=None,
        description="Query parameter that may carry the key instead of the header (exact, "
        "case-sensitive name after percent-decoding). Off by default: URLs end up in logs, "
        "browser history and Referer headers; prefer the header.",
    )

    @field_validator("header")
    @classmethod
    def _header(cls, value: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9-]{1,64}", value):
            raise ValueError("not a valid header name")
        return value

    @field_validator("query_param")
    @classmethod
    def _query_param(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", value):
            raise ValueError("not a valid parameter name (1-64 letters, digits, '_', '.', '-')")
        return value


JwtAlgorithm = Literal[
    "RS256", "RS384", "RS512", "PS256", "PS384", "PS512",
    "ES256", "ES384", "ES512", "EdDSA", "HS256", "HS384", "HS512",
]  # fmt: skip


def _identity_url(value: str, what: str) -> str:
    """https://, or http:// only to a loopback address (tests, a sidecar IdP)."""
    parts = urlsplit(value)
    if not parts.hostname:
        raise ValueError(f"{what} needs a host")
    if parts.username or parts.password:
        raise ValueError(f"{what} must not carry credentials")
    if parts.scheme == "https":
        return value
    if parts.scheme == "http" and parts.hostname in ("localhost", "127.0.0.1", "::1"):
        return value
    raise ValueError(f"{what} must use https:// (http:// only to a loopback address)")


class JwtAuthConfig(Model):
    jwks_url: str | None = Field(
        default=None,
        description="URL of the issuer's JWKS (https); fetched, cached and refreshed on an "
        "unknown 'kid' at most once per jwks_refresh_interval_s.",
    )
    jwks_file: str | None = Field(
        default=None, description="Local JWKS file, read when the configuration loads."
    )
    issuer: str = Field(description="Required 'iss' claim (exact match).")
    audience: str | list[str] = Field(
        description="Accepted 'aud' value(s); the token's 'aud' must contain one of them."
    )
    algorithms: list[JwtAlgorithm] = Field(
        description="Accepted signature algorithms; each key is bound to its own. "
        "'none' is never accepted; HS* cannot be mixed with public-key algorithms."
    )
    max_lifetime_s: int = Field(
        default=3600, ge=1, le=86_400 * 7, description="Refuse tokens whose exp - iat exceeds this."
    )
    leeway_s: float = Field(
        default=30, ge=0, le=300, description="Clock skew allowed on exp, nbf and iat."
    )
    max_token_bytes: int = Field(
        default=8192, ge=256, le=65_536, description="Longer tokens are refused unread."
    )
    consumer_claim: str = Field(
        default="sub",
        description="Claim that names the caller: a value listed in a consumer's jwt_subjects "
        "is that consumer; any other is the consumer 'jwt:<value>'.",
    )
    groups_claim: str | None = Field(
        default=None, description="Claim holding the caller's groups (a list or a string)."
    )
    require_jti: bool = Field(
        default=False, description="Refuse tokens without 'jti' (needed to revoke one token)."
    )
    jwks_timeout_s: float = Field(
        default=3, gt=0, le=30, description="Timeout of one JWKS fetch (503 when no keys yet)."
    )
    jwks_refresh_interval_s: float = Field(
        default=60, ge=1, le=86_400, description="Least time between two JWKS fetches."
    )
    jwks_max_age_s: float = Field(
        default=3600, ge=10, le=604_800, description="Fetch the JWKS again after this long."
    )
    cache_size: int = Field(
        default=10_000, ge=0, le=1_000_000, description="Verified tokens cached until expiry."
    )

    @field_validator("algorithms", mode="before")
    @classmethod
    def _no_none(cls, value: object) -> object:
        if isinstance(value, list) and any(str(v).lower() == "none" for v in value):
            raise ValueError("alg 'none' is never accepted")
        return value

    @model_validator(mode="after")
    def _check(self) -> JwtAuthConfig:
        if (self.jwks_url is None) == (self.jwks_file is None):
            raise ValueError("give exactly one of 'jwks_url' or 'jwks_file'")
        if self.jwks_url is not None:
            _identity_url(self.jwks_url, "jwks_url")
        if not self.algorithms:
            raise ValueError("algorithms must list at least one algorithm")
        symmetric = {alg for alg in self.algorithms if alg.startswith("HS")}
        if symmetric and len(symmetric) != len(set(self.algorithms)):
            raise ValueError(
                "HS* algorithms cannot be mixed with public-key algorithms (algorithm confusion)"
            )
        if symmetric and self.jwks_url is not None:
            raise ValueError("HS* secrets are never fetched from a URL: use jwks_file")
        if not self.issuer:
            raise ValueError("issuer must not be empty")
        if not self.audience:
            raise ValueError("audience must not be empty")
        return self


class IntrospectionAuthConfig(Model):
    url: str = Field(description="OAuth2 token introspection endpoint (RFC 7662), https.")
    client_id: str = Field(description="Client id Dijk authenticates with at the endpoint.")
    client_secret_env: str = Field(description="Environment variable holding the client secret.")
    client_auth: Literal["client_secret_basic", "client_secret_post"] = Field(
        default="client_secret_basic", description="How the client authenticates (RFC 6749)."
    )
    timeout_s: float = Field(
        default=2, gt=0, le=30, description="Answer time allowed; slower counts as unavailable."
    )
    cache_ttl_s: float = Field(
        default=60, ge=0, le=3600, description="Active answers are cached min(exp, this)."
    )
    negative_cache_s: float = Field(
        default=5, ge=0, le=300, description="Inactive answers are cached this long."
    )
    on_unavailable: Literal["deny", "allow"] = Field(
        default="deny",
        description="Endpoint down or slow: deny (503 auth.introspection_unavailable) or "
        "allow as an unverified caller with no scopes (logged and counted).",
    )
    issuer: str | None = Field(default=None, description="If set, required 'iss' of the answer.")
    audience: str | list[str] | None = Field(
        default=None, description="If set, the answer's 'aud' must contain one of these."
    )
    consumer_claim: str = Field(
        default="client_id",
        description="Field of the answer that names the caller (client_id: the client the "
        "token was issued to; sub: its resource owner): a value listed in a consumer's "
        "introspection_subjects is that consumer; any other is 'introspection:<value>'.",
    )
    groups_claim: str | None = Field(
        default=None, description="Field of the answer holding the caller's groups."
    )
    max_token_bytes: int = Field(
        default=8192, ge=64, le=65_536, description="Longer tokens are refused unsent."
    )
    cache_size: int = Field(
        default=10_000, ge=0, le=1_000_000, description="Most cached introspection answers."
    )

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        return _identity_url(value, "url")

    @field_validator("client_secret_env")
    @classmethod
    def _env(cls, value: str) -> str:
        return _check_env_name(value)


class AuthConfig(Model):
    api_key: ApiKeyAuthConfig | None = Field(
        default=None, description="API key authentication (keys belong to consumers)."
    )
    jwt: JwtAuthConfig | None = Field(
        default=None, description="JWT bearer tokens verified locally against a JWKS."
    )
    introspection: IntrospectionAuthConfig | None = Field(
        default=None, description="Opaque bearer tokens checked at an introspection endpoint."
    )


def _check_cidrs(value: list[str]) -> list[str]:
    for cidr in value:
        try:
            ipaddress.ip_network(cidr, strict=False)
        except ValueError:
            raise ValueError(f"not an IP network: {cidr!r}") from None
    return value


def _check_countries(value: list[str]) -> list[str]:
    upper = [code.upper() for code in value]
    for code in upper:
        if not re.fullmatch(r"[A-Z]{2}", code):
            raise ValueError(f"not an ISO 3166-1 alpha-2 country code: {code!r}")
    return upper


CidrList = Annotated[list[str], AfterValidator(_check_cidrs)]
CountryList = Annotated[list[str], AfterValidator(_check_countries)]


# RFC 9110 §5.1: a field name is a token.
_HEADER_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]{1,256}")


def _check_header_name(value: str) -> str:
    if not _HEADER_NAME.fullmatch(value):
        shown = value if len(value) <= 64 else value[:64] + "..."
        raise ValueError(
            f"not a valid header name: {shown!r} (a name is letters, digits and "
            "!#$%&'*+-.^_`|~, without ':' or spaces)"
        )
    return value.lower()


def _unique(value: list[str]) -> list[str]:
    return list(dict.fromkeys(value))


HeaderName = Annotated[str, AfterValidator(_check_header_name)]
HeaderNames = Annotated[list[HeaderName], AfterValidator(_unique)]
# Headers that name the upstream's software and version (information leakage).
DEFAULT_STRIP_RESPONSE_HEADERS = [
    "server",
    "x-powered-by",
    "x-aspnet-version",
    "x-aspnetmvc-version",
]

# Request headers that make an upstream act on another method or path than the one Dijk
# routed and authorised (method overrides, URL rewrites), or that name a client address
# only a proxy in front may state (CDN client-IP headers; with its name taken off this
# list, such a header is still forwarded only from trusted_proxies).
CLIENT_ADDRESS_HEADERS = (
    "x-client-ip",
    "true-client-ip",
    "cf-connecting-ip",
    "x-cluster-client-ip",
    "fastly-client-ip",
    "x-originating-ip",
)
DEFAULT_STRIP_REQUEST_HEADERS = [
    "x-http-method-override",
    "x-http-method",
    "x-method-override",
    "x-original-method",
    "x-original-url",
    "x-rewrite-url",
    *CLIENT_ADDRESS_HEADERS,
]


class NetworkConfig(Model):
    internal_networks: CidrList = Field(
        default_factory=list,
        description="CIDRs of internal callers: the only ones that reach 'network: internal' "
        "routes; country rules do not apply to them.",
    )
    ip_allow: CidrList = Field(
        default_factory=list, description="If set, only these CIDRs may call (403 net.denied)."
    )
    ip_deny: CidrList = Field(
        default_factory=list, description="CIDRs refused everywhere (deny wins over allow)."
    )
    countries_allow: CountryList = Field(
        default_factory=list,
        description="If set, only callers from these countries (ISO codes; offline database).",
    )
    countries_deny: CountryList = Field(
        default_factory=list, description="Callers from these countries are refused."
    )


# ---- attack detection (used by stages/waf.py) ----

# The detector's categories (dijk.detect.rules.CATEGORIES; a unit test keeps them equal).
WafCategory = Literal[
    "sqli",
    "xss",
    "cmdi",
    "path_traversal",
    "ssrf",
    "nosql",
    "ldap",
    "ssti",
    "log4shell",
    "prototype_pollution",
    "xxe",
    "graphql_abuse",
    "code_injection",
    "crlf",
    "upload",
    "scanner",
    "limits",
]
WafLocation = Literal[
    "path",
    "query",
    "header",
    "cookie",
    "jwt",
    "json",
    "form",
    "multipart",
    "filename",
    "xml",
    "graphql",
    "body",
]


class WafExclusion(Model):
    field: str | None = Field(
        default=None,
        min_length=1,
        max_length=512,
        description="Field as findings name it: '$.description' for a JSON body field "
        "('$.items[*].note' for any array index), a query or form parameter name, or a "
        "lower-case header name; default: every field (with rules or categories only).",
    )
    categories: list[WafCategory] = Field(
        default_factory=list,
        description="Categories not reported for this field (e.g. [sqli]); with rules "
        "also empty, all.",
    )
    rules: list[str] = Field(
        default_factory=list,
        description="Rule ids not reported (as findings and `dijk waf explain` name them, "
        "e.g. [sqli-libinjection-weak]); with categories also empty, all.",
    )
    location: WafLocation | None = Field(
        default=None,
        description="Only where the field appears in this part of the request (query, json, "
        "form, header, ...); default: anywhere.",
    )
    consumers: list[str] = Field(
        default_factory=list,
        description="Only for requests of these consumers (a trusted integration that "
        "sends SQL on purpose); default: every caller.",
    )

    @model_validator(mode="after")
    def _known_rules_and_some_scope(self) -> WafExclusion:
        from dijk.detect.rules import RULES_BY_ID

        unknown = [rule for rule in self.rules if rule not in RULES_BY_ID]
        if unknown:
            raise ValueError(f"unknown rule id(s): {', '.join(unknown)}")
        if self.field is None and not self.rules and not self.categories:
            raise ValueError("an exclusion needs a field, rules or categories")
        return self


class WafGraphQLLimits(Model):
    max_depth: int = Field(
        default=10, ge=1, le=1000, description="Deepest selection nesting (waf.graphql_abuse)."
    )
    max_aliases: int = Field(
        default=15, ge=0, le=10_000, description="Most aliases in one document (waf.graphql_abuse)."
    )
    max_batch: int = Field(
        default=5, ge=1, le=1000, description="Most operations in one batch (waf.graphql_abuse)."
    )
    allow_introspection: bool = Field(
        default=False, description="Allow __schema/__type introspection queries."
    )
    max_fields: int = Field(
        default=5_000,
        ge=1,
        le=10_000_000,
        description="Most fields one document executes once its fragments are expanded "
        "(a fragment spread twice counts twice; waf.graphql_abuse).",
    )
    max_duplicate_fields: int = Field(
        default=10,
        ge=1,
        le=100_000,
        description="Most times one selection set may ask for the same field (field "
        "duplication; waf.graphql_abuse).",
    )
    max_directives: int = Field(
        default=10,
        ge=0,
        le=100_000,
        description="Most directives on one field, fragment, operation or variable "
        "(directive overloading; waf.graphql_abuse).",
    )
    max_fragment_depth: int = Field(
        default=16,
        ge=1,
        le=10_000,
        description="Longest chain of fragments spreading fragments (waf.graphql_abuse).",
    )
    max_page_size: int = Field(
        default=1_000,
        ge=1,
        le=1_000_000_000,
        description="Largest value of a page-size argument (first, last, limit, pageSize, "
        "perPage, count, take, top...) written inline, as a variable default or in the "
        "variables (waf.graphql_abuse).",
    )


class WafConfig(Model):
    mode: Literal["block", "monitor", "off"] = Field(
        default="block",
        description="block: 403 waf.<category>; monitor: record what would have been blocked "
        "and forward the request; off: no inspection.",
    )
    paranoia: int = Field(
        default=1,
        ge=1,
        le=4,
        description="Rule set level as in OWASP CRS: 1 is safe on ordinary API traffic, "
        "higher levels catch more and raise more false alarms.",
    )
    threshold: int = Field(
        default=5,
        ge=1,
        le=1000,
        description="Anomaly score that blocks (one critical finding scores 5, an error 4, "
        "a warning 3, a notice 2; each rule counts once per request).",
    )
    exclude: list[WafExclusion] = Field(
        default_factory=list,
        description="Fields where some (or all) categories are not reported, e.g. "
        "[{field: $.description, categories: [sqli]}].",
    )
    graphql: WafGraphQLLimits = Field(
        default_factory=WafGraphQLLimits, description="Limits for GraphQL documents."
    )
    content: dict[str, Literal["prose", "markdown", "code", "html"]] = Field(
        default_factory=dict,
        description="The kind of text a body field holds, as its owner knows it: "
        "{$.description: markdown} (JSON path, array indices as [*]) or {notes: code} (form "
        "or multipart field). markdown: fenced and inline code is only checked for Log4j "
        "lookups and CR/LF, the rest fully; code: only those checks; html: no SQL, shell, "
        "NoSQL, LDAP or path checks (markup shows them), XSS and the rest as usual; prose: "
        "every check (the default). An OpenAPI document declares the same with "
        "x-dijk-content, contentMediaType or format on a string schema.",
    )
    opaque_bodies: Literal["inspect", "stream"] = Field(
        default="inspect",
        description="Bodies labelled as images, audio, video, fonts, PDF or other opaque "
        "types. inspect: read them and inspect whatever reads as JSON, XML, a form or text "
        "(an upstream may parse a body whatever its label says); stream: forward them "
        "uninspected, unbuffered (only for upstreams that never parse such bodies).",
    )
    unknown_encoding: Literal["refuse", "inspect"] = Field(
        default="refuse",
        description="Request bodies in a Content-Encoding the detector cannot decode (only "
        "gzip, x-gzip and deflate, also stacked, are decoded). refuse: 415 "
        "waf.unsupported_encoding; inspect: inspect the bytes as sent and score the coding "
        "as a warning (limits-unknown-encoding).",
    )


class OpenApiConfig(Model):
    """Positive security from the API's OpenAPI document (stages/openapi.py)."""

    spec: str = Field(
        description="OpenAPI 3.0/3.1 or Swagger 2.0 document (YAML or JSON): a path relative "
        "to this configuration file's directory, an absolute path, or "
        "package:PACKAGE/FILE for a file shipped in an installed Python package "
        "(package:dijk.demo/openapi.yaml). Relative $refs to other files are followed."
    )
    mode: Literal["enforce", "monitor", "off"] = Field(
        default="enforce",
        description="enforce: refuse what the document does not declare (404 unknown path, "
        "405 method, 415 content type, 400 parameter or body); monitor: let it through and "
        "record what would have been refused; off: no checks.",
    )
    additional_properties: Literal["deny", "allow"] = Field(
        default="deny",
        description="deny: properties a request body object does not declare, and query "
        "parameters the operation does not declare, are refused (400 "
        "openapi.undeclared_property / openapi.undeclared_parameter: mass assignment); "
        "allow: only where the document itself says additionalProperties: false.",
    )
    response: Literal["off", "monitor", "strip", "enforce"] = Field(
        default="off",
        description="Responses: monitor records undeclared status codes, content types and "
        "bodies that break the schema; strip also removes properties the schema does not "
        "declare and writeOnly ones (excessive data exposure); enforce answers 502 "
        "openapi.invalid_response instead. Checked JSON responses are buffered.",
    )
    base_path: str | None = Field(
        default=None,
        description="Path prefix under which clients reach the document's paths at this "
        "gateway. Default: the path of each 'servers' URL (3.x) or 'basePath' (2.0).",
    )

    @field_validator("base_path")
    @classmethod
    def _base_path(cls, value: str | None) -> str | None:
        if value is not None and value != "" and not value.startswith("/"):
            raise ValueError("base_path must be empty or start with '/'")
        return value


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
    auth: list[Literal["api_key", "jwt", "introspection", "mtls"]] = Field(
        default_factory=list,
        description="Accepted authentication methods (any of them); [] means public.",
    )
    hide_credentials: bool = Field(
        default=False,
        description="Once the caller is identified, remove from the upstream request every "
        "credential location of the methods in 'auth': the API key header and query "
        "parameter, the Authorization header (jwt, introspection). mTLS has nothing to remove.",
    )
    scopes: list[str] = Field(
        default_factory=list, description="Scopes the caller must all have (403 otherwise)."
    )
    scopes_by_method: dict[str, list[str]] = Field(
        default_factory=dict,
        description="Extra scopes per HTTP method, e.g. {GET: [accounts:read], "
        "POST: [accounts:write]}; required on top of 'scopes'.",
    )
    groups: list[str] = Field(
        default_factory=list,
        description="If set, the caller must be in at least one of these consumer groups.",
    )
    network: Literal["any", "internal"] = Field(
        default="any",
        description="'internal': reachable only from network.internal_networks (403 net.denied).",
    )
    ip_allow: CidrList = Field(
        default_factory=list, description="If set, only these CIDRs may call this route."
    )
    ip_deny: CidrList = Field(
        default_factory=list, description="CIDRs refused on this route (deny wins over allow)."
    )
    countries_allow: CountryList = Field(
        default_factory=list, description="If set, only callers from these countries."
    )
    countries_deny: CountryList = Field(
        default_factory=list, description="Callers from these countries are refused."
    )
    strip_prefix: str | None = Field(
        default=None, description="Remove this prefix from the path before forwarding."
    )
    strip_response_headers: HeaderNames | None = Field(
        default=None,
        description="Upstream response headers removed on this route; replaces the top-level "
        "strip_response_headers list ([] keeps them all). Default: the top-level list.",
    )
    strip_request_headers: HeaderNames | None = Field(
        default=None,
        description="Request headers never forwarded on this route; replaces the top-level "
        "strip_request_headers list ([] removes none of them). Default: the top-level list.",
    )
    on_error: OnError = Field(
        default=OnError.DENY,
        description="What a fault inside this route's stages does: deny (fail closed) or allow.",
    )
    rate_limit: list[RateLimitRule] = Field(
        default_factory=list,
        description="Rate limits and quotas on this route, e.g. "
        "[{key: consumer, limit: 100, per_s: 60}, {key: ip, limit: 1000, per_s: 60}].",
    )
    openapi: OpenApiConfig | None = Field(
        default=None,
        description="Check requests (and optionally responses) against an OpenAPI document, "
        "e.g. {spec: ./bank.openapi.yaml, mode: enforce}.",
    )
    login_guard: LoginGuardConfig | None = Field(
        default=None,
        description="Credential-stuffing guard for a login route: attempts per IP and failed "
        "logins per username (read from the request body and the upstream status).",
    )
    waf: WafConfig | None = Field(
        default=None,
        description="Attack detection on this route (SQL/NoSQL/command injection, XSS, "
        "traversal, SSRF, XXE, Log4Shell, GraphQL abuse...): {mode: block, paranoia: 1}.",
    )
    privacy: RoutePrivacy | None = Field(
        default=None,
        description="Personal data on this route: found in requests and responses, masked in "
        "responses, recorded in the data map: {mask_response: true, strategy: mask}.",
    )
    abuse: RouteAbuse | None = Field(
        default=None,
        description="Behaviour and abuse detection on this route: credential_stuffing (login "
        "routes), enumeration (path templates with ids), token_misuse, anomaly; each with an "
        "action.",
    )
    discovery: RouteDiscovery | None = Field(
        default=None,
        description="Learn this route's endpoints from its traffic (API inventory: path "
        "templates, parameters, body shapes, status codes; no values): discovery: {}. "
        "`dijk discover openapi|diff` read the inventory.",
    )
    route_group: str | None = Field(
        default=None,
        description="Name of an entry in 'route_groups' whose settings this route takes "
        "(its own keys win). Not 'groups', which lists consumer groups.",
    )

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return _check_name(value)

    @field_validator("scopes_by_method")
    @classmethod
    def _scopes_by_method(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        upper = {method.upper(): scopes for method, scopes in value.items()}
        unknown = sorted(set(upper) - _HTTP_METHODS)
        if unknown:
            raise ValueError(f"unknown HTTP method(s): {', '.join(unknown)}")
        return upper


class TracingConfig(Model):
    enabled: bool = Field(default=False, description="Export traces over OTLP.")
    endpoint: str = Field(
        default="http://127.0.0.1:4318/v1/traces",
        pattern=r"^https?://[^\s]+$",
        description="OTLP/HTTP (protobuf) traces endpoint of the collector.",
    )
    sample_ratio: float = Field(
        default=1.0,
        ge=0,
        le=1,
        description="Share of traces recorded, decided on the trace id (the same decision for "
        "a trace everywhere). A client's sampled flag is not obeyed: it cannot make the "
        "gateway record (and export) every one of its requests.",
    )
    service_name: str = Field(
        default="dijk", min_length=1, max_length=128, description="service.name of the spans."
    )
    export_delay_ms: int = Field(
        default=2000, ge=100, le=60000, description="Most time a finished span waits to be sent."
    )


class LoggingConfig(Model):
    level: Literal["debug", "info", "warning", "error"] = Field(
        default="info", description="Lowest level written."
    )
    format: Literal["json", "console"] = Field(default="json", description="Log line format.")
    access_log: bool = Field(
        default=False,
        description="One log line per request (the audit log is the record of every request). "
        "It names the route and its path template (e.g. /api/v1/accounts/{id}, /api/* for a "
        "prefix route), never the raw path; '-' when no route matched.",
    )


class DecisionListen(Model):
    address: str = Field(default="127.0.0.1", description="Address the listener binds.")
    port: Port = Field(description="Port of the listener.")

    @field_validator("address")
    @classmethod
    def _address(cls, value: str) -> str:
        return _check_listen_address(value)


class OriginalRequestHeaders(Model):
    path: str = Field(description="Path on the decision listener where the proxy asks.")
    method_header: HeaderName = Field(description="Header carrying the original method.")
    uri_header: HeaderName = Field(
        description="Header carrying the original request target (path and query)."
    )
    client_ip_header: HeaderName = Field(
        description="Header carrying the client address the proxy saw (a list such as "
        "X-Forwarded-For: the right-most entry that is not one of trusted_proxies)."
    )
    content_length_header: HeaderName | None = Field(
        default=None,
        description="Header carrying the original Content-Length when the proxy does not send "
        "the body (so OpenAPI checks know a body was sent); null: not sent.",
    )
    request_id_header: HeaderName | None = Field(
        default=None,
        description="Header whose well-formed value becomes the request id (the proxy's own "
        "id, so that its log and Dijk's audit log join up); the proxy must set it, never pass "
        "the client's. null: Dijk makes a fresh id.",
    )

    @field_validator("path")
    @classmethod
    def _path(cls, value: str) -> str:
        if not value.startswith("/"):
            raise ValueError("the path must start with '/'")
        return value


class ExtAuthzHttpConfig(Model):
    path_prefix: str = Field(
        default="/ext-authz",
        description="Envoy ext_authz (HTTP service, path_prefix): the original method, path "
        "below this prefix, headers, and the body when Envoy sends it (with_request_body).",
    )
    client_ip_header: HeaderName = Field(
        default="x-forwarded-for",
        description="Header carrying the client address Envoy saw (the right-most entry that "
        "is not one of trusted_proxies).",
    )

    @field_validator("path_prefix")
    @classmethod
    def _prefix(cls, value: str) -> str:
        if not value.startswith("/") or value.endswith("/"):
            raise ValueError("the prefix must start with '/' and not end with '/'")
        return value


class DecisionConfig(Model):
    listen: DecisionListen | None = Field(
        default=None,
        description="HTTP decision listener (nginx auth_request, Envoy ext_authz HTTP, Traefik "
        "forwardAuth), e.g. {address: 127.0.0.1, port: 8181}; null: none.",
    )
    grpc: DecisionListen | None = Field(
        default=None,
        description="gRPC decision listener: envoy.service.auth.v3.Authorization/Check "
        "(Envoy ext_authz grpc_service), plaintext HTTP/2; null: none.",
    )
    inline: bool = Field(
        default=True,
        description="Also serve the inline proxy on 'listen'; false runs Dijk as a decision "
        "service only (routes still name an upstream, which is then never called).",
    )
    proxies: CidrList = Field(
        default_factory=lambda: ["127.0.0.1/32", "::1/128"],
        description="Peers that may ask for decisions; their client-address header is "
        "believed. Any other peer is refused (403 decision.untrusted_peer).",
    )
    auth_request: OriginalRequestHeaders = Field(
        default_factory=lambda: OriginalRequestHeaders(
            path="/auth-request",
            method_header="X-Original-Method",
            uri_header="X-Original-URI",
            client_ip_header="X-Real-IP",
            content_length_header="X-Original-Content-Length",
            request_id_header="X-Request-Id",
        ),
        description="nginx auth_request: where nginx asks and the headers it sets. nginx "
        "accepts only 2xx, 401 and 403 from the subrequest, so every refusal is answered 401 "
        "or 403 with the real status in X-Dijk-Status and the problem document in "
        "X-Dijk-Problem (see deploy/nginx).",
    )
    forward_auth: OriginalRequestHeaders = Field(
        default_factory=lambda: OriginalRequestHeaders(
            path="/forward-auth",
            method_header="X-Forwarded-Method",
            uri_header="X-Forwarded-Uri",
            client_ip_header="X-Forwarded-For",
        ),
        description="Traefik forwardAuth: where Traefik asks and the headers it sets; the "
        "body is checked when Traefik sends it (forwardBody).",
    )
    ext_authz: ExtAuthzHttpConfig = Field(
        default_factory=ExtAuthzHttpConfig, description="Envoy ext_authz over HTTP."
    )
    consumer_header: HeaderName = Field(
        default="X-Dijk-Consumer",
        description="Header of an allow answer naming the consumer (for the proxy to pass "
        "upstream); absent for public routes.",
    )
    scopes_header: HeaderName = Field(
        default="X-Dijk-Scopes",
        description="Header of an allow answer listing the consumer's scopes, space-separated.",
    )

    @model_validator(mode="after")
    def _paths(self) -> DecisionConfig:
        prefix = self.ext_authz.path_prefix
        paths = [self.auth_request.path, self.forward_auth.path]
        if paths[0] == paths[1]:
            raise ValueError("auth_request.path and forward_auth.path must differ")
        for path in paths:
            if path == prefix or path.startswith(prefix + "/"):
                raise ValueError(f"{path} lies under ext_authz.path_prefix {prefix}")
        if not self.inline and self.listen is None and self.grpc is None:
            raise ValueError("inline: false needs a decision listener (listen or grpc)")
        return self


class DijkConfig(Model):
    version: Literal[1] = Field(description="Configuration format version.")
    listen: ListenConfig = Field(default_factory=ListenConfig, description="Data plane listener.")
    admin: AdminConfig = Field(default_factory=AdminConfig, description="Admin listener.")
    storage: StorageConfig = Field(default_factory=StorageConfig, description="Shared state.")
    audit: AuditSettings = Field(
        default_factory=AuditSettings, description="Tamper-evident activity log and SIEM sinks."
    )
    alerts: AlertSettings = Field(
        default_factory=AlertSettings, description="Alert rules over the audit records."
    )
    limits: LimitsConfig = Field(default_factory=LimitsConfig, description="Client limits.")
    trusted_proxies: list[str] = Field(
        default_factory=list,
        description="CIDRs of proxies in front of Dijk whose X-Forwarded-*, Forwarded, "
        "X-Real-IP and X-Request-Id headers are trusted (from any other peer they are "
        "replaced or dropped).",
    )
    strip_response_headers: HeaderNames = Field(
        default=DEFAULT_STRIP_RESPONSE_HEADERS,
        description="Upstream response headers never passed to clients (names, any case), so "
        "the upstream's software and version do not leak; [] keeps them all. A route's own "
        "strip_response_headers replaces this list.",
    )
    strip_request_headers: HeaderNames = Field(
        default=DEFAULT_STRIP_REQUEST_HEADERS,
        description="Request headers never forwarded upstream (names, any case; the same "
        "name with '_' for '-' too): method overrides (X-HTTP-Method-Override...), URL "
        "rewrites (X-Original-URL, X-Rewrite-URL) and CDN client-address headers "
        "(True-Client-IP, CF-Connecting-IP...). A route's own strip_request_headers replaces "
        "this list.",
    )
    logging: LoggingConfig = Field(default_factory=LoggingConfig, description="Logging.")
    tracing: TracingConfig = Field(
        default_factory=TracingConfig,
        description="OpenTelemetry traces: a span per request, per stage and for the upstream "
        "call; W3C traceparent continued from the client and sent upstream.",
    )
    workers: Annotated[int, Field(ge=1, le=256)] | Literal["auto"] = Field(
        1,
        description="Worker processes serving the listeners (SO_REUSEPORT), supervised by a "
        "parent that restarts a crashed one and passes SIGHUP/SIGTERM on; auto: one per CPU "
        "available. memory:// state (rate limits, login guard, revocations) is per worker: "
        "use a redis:// storage.url with more than one. Each worker writes its own audit "
        "chain (<audit.chain>-w<n>). Applies at start; a reload keeps the count.",
    )
    upstreams: dict[str, UpstreamConfig] = Field(description="Upstream services by name.")
    consumers: list[ConsumerConfig] = Field(
        default_factory=list, description="Known API consumers."
    )
    auth: AuthConfig = Field(default_factory=AuthConfig, description="Authentication methods.")
    network: NetworkConfig = Field(
        default_factory=NetworkConfig, description="IP and country rules for every route."
    )
    ratelimit: RateLimitSettings = Field(
        default_factory=RateLimitSettings, description="Rate limiting: storage errors, keys."
    )
    overload: OverloadConfig = Field(
        default_factory=OverloadConfig, description="Load shedding and concurrency caps."
    )
    privacy: PrivacySettings = Field(
        default_factory=PrivacySettings,
        description="GDPR/AVG: data map, pseudonym and encryption keys, breach reporting.",
    )
    abuse: AbuseSettings = Field(
        default_factory=AbuseSettings,
        description="Behaviour and abuse detection shared by all routes: storage keys, "
        "scanning (also on paths that match no route), address reputation lists, the anomaly "
        "model.",
    )
    decision: DecisionConfig = Field(
        default_factory=DecisionConfig,
        description="Decision service for a proxy in front (nginx auth_request, Envoy "
        "ext_authz, Traefik forwardAuth): the request-phase stages answer allow or deny.",
    )
    discovery: DiscoverySettings = Field(
        default_factory=DiscoverySettings,
        description="API discovery on routes with `discovery`: sampling, memory bounds, flush.",
    )
    route_defaults: dict[str, Any] = Field(
        default_factory=dict,
        description="Route settings every route takes unless it sets the key itself (or its "
        "route_group does), e.g. {waf: {mode: block}, openapi: {spec: api.yaml}}. A route "
        "replaces a whole key (no deep merge); 'waf: null' on a route turns a default off.",
    )
    route_groups: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description="Named sets of route settings; a route with route_group: <name> takes "
        "them over route_defaults (its own keys still win).",
    )
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
