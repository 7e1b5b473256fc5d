"""Accountability for the admin API: administrative actions go into the audit log.

Every state-changing admin action (reload, key and token revocation) and every admin API
request refused for its bearer token gets one record in the same chain, written by the
same writer as the request records, so the hash chain covers them and ``dijk audit
verify`` checks them. The record's shape is described in ``dijk.audit.record``
(:func:`~dijk.audit.record.admin_record`): ``route`` ``admin:<action>``, who (the admin
identity, a keyed hash of the token presented, the client pseudonym), what (the target as
a hashed credential id or the configuration generation), when, and the outcome with its
reason. Never a token, key or request body. Read-only endpoints (``/healthz``,
``/readyz``, ``/metrics``, and the status and log queries once the token is accepted) are
not recorded.

Where a record goes: the log in force when the action was authorised. A reload that moves
the log elsewhere (another ``audit.url`` or ``chain``, or ``enabled: false``) is recorded
in the old log, which is still open for the drain delay, *and* in the new one.

With ``on_sink_error: deny`` an action is refused with 503 ``audit.unavailable`` while the
log's database is down, before anything changes (the refusal itself is spooled).
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Final

import orjson
import structlog

from dijk.audit.record import admin_record
from dijk.audit.writer import AuditUnavailableError
from dijk.pipeline.decision import Decision

if TYPE_CHECKING:
    from dijk.audit.service import AuditService
    from dijk.proxy.http1 import Request
    from dijk.proxy.server import GatewayServer

__all__ = [
    "READ_ONLY",
    "ActionOutcome",
    "AdminAudit",
    "action_of",
    "authorization_count",
    "bearer_token",
    "outcome_of",
]

_LOG: Final = structlog.get_logger("dijk.admin")
_PREFIX: Final = "/admin/api/v1/"
READ_ONLY: Final = frozenset({"GET", "HEAD"})
"""Methods of the admin endpoints that change nothing; every other admin request is an
action (today ``POST`` reload, ``keys/revoke``, ``tokens/revoke``), recorded whatever its
outcome, so an endpoint added later is on record without a list to keep up to date."""
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_REASON: Final = re.compile(r"[a-z][a-z0-9_]{0,31}(?:\.[a-z0-9_]{1,32}){1,3}")
_CREDENTIAL_ID: Final = re.compile(r"(?:key|tok|cert):[0-9a-f]{16}")
_HEX64: Final = re.compile(r"[0-9a-f]{64}")
_UNAVAILABLE: Final = "The activity log cannot be written right now; nothing was changed."


def action_of(path: str) -> str:
    """``keys.revoke`` for ``/admin/api/v1/keys/revoke`` (the record's ``route`` suffix)."""
    return path.removeprefix(_PREFIX).replace("/", ".")


def authorization_count(headers: list[tuple[str, str]]) -> int:
    """How many ``Authorization`` fields the request carries (more than one is refused)."""
    return sum(1 for name, _ in headers if name == "authorization")


def bearer_token(headers: list[tuple[str, str]]) -> str:
    """The admin bearer token of the one ``Authorization: Bearer`` field, or ``""`` (none,
    another scheme, or several fields: which one counts would be a guess).

    Only SP and HTAB around it are removed (RFC 9110 OWS): any other byte, a no-break
    space or NEL included, is part of the token and must match.
    """
    values = [value for name, value in headers if name == "authorization"]
    if len(values) != 1:
        return ""
    scheme, _, token = values[0].strip(" \t").partition(" ")
    if scheme.lower() != "bearer":
        return ""
    return token.strip(" \t")


@dataclass(frozen=True, slots=True)
class ActionOutcome:
    status: int
    reason: str | None = None
    target: str | None = None


def outcome_of(action: str, status: int, body: bytes) -> ActionOutcome:
    """Reason and target of an action from its JSON answer; never copies free text.

    Only values of a known, harmless shape are taken: a reason code, a credential id
    (``key:``/``tok:``/``cert:`` + 16 hex), a SHA-256 of a ``jti``, a generation number.
    """
    try:
        answer = orjson.loads(body)
    except orjson.JSONDecodeError:
        answer = None
    if not isinstance(answer, dict):
        answer = {}
    reason = answer.get("reason")
    if not (isinstance(reason, str) and _REASON.fullmatch(reason)):
        reason = None
    target: str | None = None
    if action == "reload":
        generation = answer.get("generation")
        if isinstance(generation, int) and not isinstance(generation, bool):
            target = f"generation:{generation}"
        if status >= 300 and reason is None:
            reason = "admin.reload_failed"
    else:
        credential, jti = answer.get("credential_id"), answer.get("jti_sha256")
        if isinstance(credential, str) and _CREDENTIAL_ID.fullmatch(credential):
            target = credential
        elif isinstance(jti, str) and _HEX64.fullmatch(jti):
            target = "jti:" + jti
    return ActionOutcome(status, reason, target)


class AdminAudit:
    """Writes the admin API's records into the audit log of the serving configuration."""

    def __init__(self, server: GatewayServer) -> None:
        self._server = server

    def services(self) -> list[AuditService]:
        """The running audit log of the configuration serving now (none when disabled)."""
        audit = self._server.gateway.state.resources.audit
        if audit is None or audit.service is None:
            return []
        return [audit.service]

    def after(self, before: list[AuditService]) -> list[AuditService]:
        """``before``, plus the log of a configuration a reload put in place meanwhile."""
        return before + [service for service in self.services() if service not in before]

    @staticmethod
    def guard(services: list[AuditService]) -> Decision | None:
        """503 ``audit.unavailable`` when a fail-closed log cannot be written now."""
        for service in services:
            if service.settings.on_sink_error == "deny" and not service.writer.sink_available:
                return Decision.deny(
                    503, "audit.unavailable", _UNAVAILABLE, (("Retry-After", "5"),)
                )
        return None

    async def record(
        self,
        request: Request,
        request_id: str,
        outcome: ActionOutcome,
        *,
        accepted: bool,
        bytes_out: int,
        services: list[AuditService] | None = None,
        action: str | None = None,
        token: str | None = None,
        actor: str | None = None,
    ) -> None:
        """Append the record of ``request`` to each log (``services``: the current one).

        ``action`` defaults to the one named by the admin API path; ``token`` (the admin
        token presented, pseudonymised here) to the bearer token of the request;
        ``actor`` to ``admin:<token_env>`` for an accepted request. The dashboard passes
        all three: its login form carries the token, its later requests a session.

        In strict durability this returns after the commit, so the answer goes out only
        once the action is on record. A log that cannot take it is logged, not raised:
        the action has happened (or been refused) either way.
        """
        targets = self.services() if services is None else services
        if not targets:
            return
        elapsed = max(0.0, time.perf_counter() - request.received_at)
        started = _EPOCH + timedelta(microseconds=int((time.time() - elapsed) * 1_000_000))
        presented = bearer_token(request.headers) if token is None else token
        who = actor or f"admin:{self._server.admin_token_env}"
        for service in targets:
            record = admin_record(
                time=started,
                request_id=request_id,
                action=action or action_of(request.path),
                method=request.method,
                path=request.path,
                status=outcome.status,
                reason=outcome.reason,
                actor=who if accepted else None,
                credential_id=(
                    "adm:" + service.keys.pseudonym("admin-token:" + presented)[:16]
                    if presented
                    else None
                ),
                client_ip=service.client_pseudonym(request.client_ip),
                target=outcome.target,
                latency_us=int(elapsed * 1_000_000),
                bytes_in=max(0, request.content_length or 0),
                bytes_out=bytes_out,
            )
            try:
                await service.writer.append(record)
            except AuditUnavailableError as exc:
                _LOG.error("audit: admin record %s not committed: %s", request_id, exc)
