"""The audit record: one per request, and its canonical encoding.

A record holds *what happened* to a request, never its content: no raw credentials, no
request or response bodies, no personal data. Identifiers that could point at a person
(client IP, credential) are stored as keyed hashes made with :func:`pseudonymise`.

Canonical encoding (version 1)
------------------------------
The hash chain (``chain.py``) hashes a record's *canonical encoding*. It must be the same
bytes on every machine and in every language that wants to check the log, so it is
pinned down here:

* a JSON object (RFC 8259) encoded as UTF-8 by ``orjson``: keys sorted by code point
  (``canonical_body`` lists them in that order), no insignificant whitespace, non-ASCII
  characters written as UTF-8 (not ``\\u`` escapes), ``/`` not escaped;
* every key is always present; absent values are ``null``;
* ``"v": 1`` (the encoding version) and ``"chain"`` (the chain the record belongs to);
  the sequence number is *not* part of it: order is fixed by the hash linkage instead,
  so a record moved to another place is recognised as the same, authentic record;
* ``time_us``: the request time as integer microseconds since the Unix epoch (UTC);
  there are no floating-point numbers anywhere in the encoding;
* ``findings``: a list of ``{"field": ..., "rule_id": ...}`` objects in detection order;
  ``pii_categories``: a list of strings in the order given.

Strings never contain NUL or lone surrogates: the writer replaces them with U+FFFD before
hashing (PostgreSQL cannot store NUL, and surrogates have no UTF-8 form).

Administrative actions
----------------------
Actions taken through the admin API (reload, revocations) and admin requests refused for
their token are recorded in the same chain, with the same fields (so the encoding, the
stores, the exports and verification are unchanged); :func:`admin_record` builds them:

* ``route``: ``admin:<action>`` (``admin:reload``, ``admin:keys.revoke``, ...); a colon
  cannot occur in a configured route name, so these never collide with request records;
* ``path_template``: the admin endpoint; ``method``, ``status`` as answered;
* ``decision``: ``allow`` for a 2xx answer, else ``deny`` with the answer's ``reason``;
* who: ``consumer`` ``admin:<token variable>`` and ``auth_method`` ``admin_token`` once
  the token was accepted (both null when it was not), ``credential_id`` ``adm:<16 hex>``
  (a keyed hash of the bearer token presented, accepted or not), ``client_ip`` as for
  requests;
* what: one finding ``{"rule_id": "admin.target", "field": <target>}``: the credential id
  revoked (``key:...``, ``tok:...``, ``cert:...``), ``jti:<SHA-256 hex of the jti>``, or
  ``generation:<n>``, the configuration generation serving after a reload.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Iterable
from dataclasses import dataclass, field, fields, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Final, Literal, get_args

import orjson

__all__ = [
    "ADMIN_AUTH_METHOD",
    "ADMIN_ROUTE_PREFIX",
    "ADMIN_TARGET",
    "CANONICAL_VERSION",
    "AuditRecord",
    "Finding",
    "Outcome",
    "admin_record",
    "canonical_body",
    "canonical_bytes",
    "datetime_from_us",
    "datetime_to_us",
    "findings_json",
    "pseudonymise",
    "sanitise_record",
]

CANONICAL_VERSION: Final = 1

Outcome = Literal["allow", "deny", "monitor", "abort"]
"""What the client got: served, refused, served while recording a would-be denial, or a
response cut short (``abort``: strict durability could not commit the record of a streamed
response, so its end was never sent; ``status`` is the one the head carried)."""

_OUTCOMES: Final = frozenset(get_args(Outcome))
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND: Final = timedelta(microseconds=1)
_MAX_INT64: Final = 2**63 - 1
_INT_FIELDS: Final = ("bytes_in", "bytes_out", "gateway_latency_us")

ADMIN_ROUTE_PREFIX: Final = "admin:"
"""``route`` of administrative records: ``admin:<action>`` (see the module docstring)."""
ADMIN_AUTH_METHOD: Final = "admin_token"
ADMIN_TARGET: Final = "admin.target"
"""``rule_id`` of the finding that names the target of an administrative action."""


def datetime_to_us(moment: datetime) -> int:
    """Exact microseconds since the epoch (no float rounding, unlike ``timestamp()``)."""
    return (moment - _EPOCH) // _MICROSECOND


def datetime_from_us(micros: int) -> datetime:
    """Inverse of :func:`datetime_to_us`; always timezone-aware UTC."""
    return _EPOCH + timedelta(microseconds=micros)


@dataclass(frozen=True, slots=True)
class Finding:
    """One detector hit: which rule fired, on which field (never the field's value)."""

    rule_id: str
    field: str


@dataclass(slots=True)
class AuditRecord:
    """What the gateway did with one request.

    ``client_ip`` and ``credential_id`` are expected to be pseudonyms already (see
    :func:`pseudonymise`); the record does not know and cannot check.

    Treat a record as immutable once made. It is deliberately not a *frozen* dataclass:
    one is built per request, and a frozen dataclass's ``__init__`` (one
    ``object.__setattr__`` call per field) cost 6 us against 1.6 us here (measured,
    ``bench/audit.py``). Changing a record after it was sealed cannot go unnoticed anyway:
    verification recomputes its hash.
    """

    time: datetime
    request_id: str
    method: str
    status: int
    decision: Outcome
    route: str | None = None
    path_template: str | None = None
    reason: str | None = None
    consumer: str | None = None
    auth_method: str | None = None
    credential_id: str | None = None
    client_ip: str | None = None
    findings: tuple[Finding, ...] = ()
    gateway_latency_us: int = 0
    upstream_latency_us: int | None = None
    bytes_in: int = 0
    bytes_out: int = 0
    pii_categories: tuple[str, ...] = ()
    time_us: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # Validation is cheap on purpose: this runs once per request on the hot path.
        if self.time.tzinfo is None:
            raise ValueError("audit record time must be timezone-aware")
        if self.decision not in _OUTCOMES:
            raise ValueError(f"decision must be allow, deny or monitor, not {self.decision!r}")
        if not 0 <= self.status <= 999:
            raise ValueError(f"status out of range: {self.status}")
        for name in _INT_FIELDS:
            value = getattr(self, name)
            if not 0 <= value <= _MAX_INT64:
                raise ValueError(f"{name} out of range: {value}")
        upstream = self.upstream_latency_us
        if upstream is not None and not 0 <= upstream <= _MAX_INT64:
            raise ValueError(f"upstream_latency_us out of range: {upstream}")
        if not isinstance(self.findings, tuple):
            object.__setattr__(self, "findings", tuple(self.findings))
        if not isinstance(self.pii_categories, tuple):
            object.__setattr__(self, "pii_categories", tuple(self.pii_categories))
        object.__setattr__(self, "time_us", datetime_to_us(self.time))

    @classmethod
    def unchecked(cls, **values: Any) -> AuditRecord:
        """Rebuild a stored record *without* validation (all fields, ``time_us`` included).

        Verification must see whatever a tamperer wrote into a row (a decision of
        ``"hacked"``, a negative status) and report it as a broken hash, not fail to load.
        """
        record = object.__new__(cls)
        for name, value in values.items():
            object.__setattr__(record, name, value)
        return record


def admin_record(
    *,
    time: datetime,
    request_id: str,
    action: str,
    method: str,
    path: str,
    status: int,
    reason: str | None = None,
    actor: str | None = None,
    credential_id: str | None = None,
    client_ip: str | None = None,
    target: str | None = None,
    latency_us: int = 0,
    bytes_in: int = 0,
    bytes_out: int = 0,
) -> AuditRecord:
    """The record of one admin API action or refused admin request.

    ``actor`` is the accepted admin identity (None when the token was refused); the
    caller pseudonymises ``credential_id`` and ``client_ip``. Never pass a secret.
    """
    allowed = 200 <= status < 300
    return AuditRecord(
        time=time,
        request_id=request_id,
        method=method,
        status=status,
        decision="allow" if allowed else "deny",
        route=ADMIN_ROUTE_PREFIX + action,
        path_template=path,
        reason=None if allowed else (reason or "admin.failed"),
        consumer=actor,
        auth_method=ADMIN_AUTH_METHOD if actor is not None else None,
        credential_id=credential_id,
        client_ip=client_ip,
        findings=(Finding(rule_id=ADMIN_TARGET, field=target),) if target else (),
        gateway_latency_us=latency_us,
        bytes_in=bytes_in,
        bytes_out=bytes_out,
    )


def findings_json(findings: Iterable[Finding]) -> list[dict[str, str]]:
    """The canonical (and stored) JSON shape of findings."""
    return [{"field": finding.field, "rule_id": finding.rule_id} for finding in findings]


def canonical_body(record: AuditRecord, chain: str) -> dict[str, Any]:
    """The JSON object whose encoding is hashed; see the module docstring."""
    return {
        "auth_method": record.auth_method,
        "bytes_in": record.bytes_in,
        "bytes_out": record.bytes_out,
        "chain": chain,
        "client_ip": record.client_ip,
        "consumer": record.consumer,
        "credential_id": record.credential_id,
        "decision": record.decision,
        "findings": [{"field": item.field, "rule_id": item.rule_id} for item in record.findings]
        if record.findings
        else [],
        "gateway_latency_us": record.gateway_latency_us,
        "method": record.method,
        "path_template": record.path_template,
        "pii_categories": list(record.pii_categories) if record.pii_categories else [],
        "reason": record.reason,
        "request_id": record.request_id,
        "route": record.route,
        "status": record.status,
        "time_us": record.time_us,
        "upstream_latency_us": record.upstream_latency_us,
        "v": CANONICAL_VERSION,
    }


def canonical_bytes(record: AuditRecord, chain: str) -> bytes:
    """Canonical encoding v1 of ``record`` in ``chain`` (the bytes the chain hashes).

    ``canonical_body`` builds its keys already in sorted order (a unit test holds it to
    that), so orjson's key sorting, a third of the encoding time, is not needed.
    """
    return orjson.dumps(canonical_body(record, chain))


_UNENCODABLE: Final = re.compile("[\x00\ud800-\udfff]")


def _clean(text: str) -> str:
    return _UNENCODABLE.sub("\ufffd", text)


def sanitise_record(record: AuditRecord) -> AuditRecord:
    """Replace NUL and lone surrogates in every string of ``record`` with U+FFFD.

    Slow path: the writer calls it only when the fast encoding shows such characters.
    """
    changes: dict[str, Any] = {}
    for item in fields(record):
        if not item.init:
            continue
        value = getattr(record, item.name)
        if isinstance(value, str):
            changes[item.name] = _clean(value)
    changes["findings"] = tuple(
        Finding(rule_id=_clean(found.rule_id), field=_clean(found.field))
        for found in record.findings
    )
    changes["pii_categories"] = tuple(_clean(category) for category in record.pii_categories)
    return replace(record, **changes)


def pseudonymise(key: bytes, value: str, *, length: int = 32) -> str:
    """A stable keyed pseudonym for an identifier (client IP, credential id).

    HMAC-SHA256 under a secret key: the same input gives the same pseudonym, so records
    can be correlated, but without the key nobody can test guesses (the IPv4 space is
    small enough to hash exhaustively, which is why a plain hash is not enough).
    """
    digest = hmac.new(key, value.encode("utf-8", "replace"), hashlib.sha256).hexdigest()
    return digest[:length]
