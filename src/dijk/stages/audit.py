"""The audit log stage (log phase, priority 0): one tamper-evident record per request.

What a record holds is fixed by ``audit/record.py``: time, request id, route
and path *template* (never the raw path: ids and e-mail addresses travel in paths),
method, status, decision and reason, consumer, auth method and hashed credential id, the
client IP as a keyed pseudonym, detector findings as rule id + field path (never the
value or snippet), latencies, byte counts and the personal-data categories the privacy
stage saw (``ctx.annotations["pii_categories"]``). No credential, body or header value.

Durability (``audit.durability``):

``batched``  the log phase queues the record after the response went out.
``strict``   the gateway calls :meth:`AuditResources.commit` *before* it releases the
             response (``GatewayState.release_gate``): a problem document or buffered
             response is written only after the commit; a streamed response keeps its
             last chunk (and the end of the message) back until then. So a response a
             client received completely always has its committed record. The log phase
             then sees the request already recorded and does nothing: exactly one record.

``on_sink_error: deny`` adds the same stage to ``request_headers``: while the database is
down, requests are refused with 503 ``audit.unavailable`` before anything reaches the
upstream (their refusals are still recorded, in the spool).

Requests the HTTP server refuses itself (malformed, smuggling attempts, 408, 431, 501, too
many connections) never reach a pipeline; the gateway reports them through
:meth:`AuditResources.refused`, queued without waiting (the server answers them at once).
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar, Final

import structlog

from dijk.alerts.engine import AlertEngine
from dijk.alerts.settings import AlertSettings
from dijk.alerts.webhook import Payload, WebhookPoster
from dijk.audit.metrics import ALERTS_FIRED
from dijk.audit.record import AuditRecord, Finding, Outcome
from dijk.audit.service import AuditService
from dijk.audit.settings import AuditSettings, data_dir_of
from dijk.audit.writer import AuditUnavailableError
from dijk.pipeline.context import RequestContext
from dijk.pipeline.decision import Decision
from dijk.pipeline.stage import Phase, Stage

__all__ = ["AUDIT_RECORDED", "AuditGuardStage", "AuditResources", "AuditStage"]

_LOG: Final = structlog.get_logger("dijk.audit")
AUDIT_RECORDED: Final = "audit_recorded"
"""``ctx.annotations`` key set once the request's record is handed to the writer."""
_UNAVAILABLE_DETAIL: Final = (
    "The activity log cannot be written right now; the request was not processed."
)
_MAX_FINDINGS: Final = 64
_MAX_PII: Final = 32
_PSEUDONYM_CACHE: Final = 4096
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)


def unavailable() -> Decision:
    return Decision.deny(503, "audit.unavailable", _UNAVAILABLE_DETAIL, (("Retry-After", "5"),))


def outcome_of(ctx: RequestContext) -> Outcome:
    if ctx.decision is not None and ctx.decision.denies:
        return "deny"
    if ctx.monitored:
        return "monitor"
    return "allow"


def path_template_of(ctx: RequestContext) -> str | None:
    """The route's template; prefix routes show ``<prefix>/*`` (the rest may hold ids)."""
    route = ctx.route
    if route is None:
        return None
    template = route.template
    if route.kind != "prefix" or ctx.path == template:
        return template
    return "/*" if template == "/" else template + "/*"


def findings_of(items: Iterable[Any]) -> tuple[Finding, ...]:
    """Rule id and field path of each finding (``location:field``), never its value."""
    found: list[Finding] = []
    for item in items:
        if len(found) >= _MAX_FINDINGS:
            break
        if isinstance(item, Finding):
            found.append(item)
            continue
        if isinstance(item, dict):
            rule_id, field, location = item.get("rule_id"), item.get("field"), item.get("location")
        else:
            rule_id = getattr(item, "rule_id", None)
            field = getattr(item, "field", None)
            location = getattr(item, "location", None)
        if not rule_id:
            continue
        path = str(field or "")
        if location and not path.startswith("$"):
            path = f"{location}:{path}" if path else str(location)
        found.append(Finding(rule_id=str(rule_id)[:128], field=path[:256]))
    return tuple(found)


def pii_categories_of(value: Any) -> tuple[str, ...]:
    if not value:
        return ()
    if isinstance(value, str):
        value = (value,)
    return tuple(dict.fromkeys(str(item)[:64] for item in value))[:_MAX_PII]


class AuditResources:
    """The audit log of one configuration: settings, the (shared) service, alerts.

    Built at load without I/O; :meth:`start` (before the configuration serves) opens the
    database or adopts the previous configuration's running service.
    """

    def __init__(
        self, settings: AuditSettings, alerts: AlertSettings, data_dir: Path | None = None
    ) -> None:
        self.settings = settings
        self.alert_settings = alerts
        self.data_dir = data_dir if data_dir is not None else data_dir_of(settings)
        self.strict = settings.durability == "strict"
        self.deny_when_down = settings.on_sink_error == "deny"
        self.service: AuditService | None = None
        self._pseudonyms: dict[str, str] = {}
        self._pseudonymise = settings.pseudonymise_client_ip
        self._alerts = AlertEngine(alerts)
        self._poster: WebhookPoster | None = None
        self._closed = False

    @classmethod
    def from_config(cls, audit: AuditSettings, alerts: AlertSettings) -> AuditResources | None:
        return cls(audit, alerts) if audit.enabled else None

    # -- lifecycle ---------------------------------------------------------------------

    async def start(self, previous: AuditResources | None = None) -> None:
        """Open the log, or keep the previous configuration's when store and chain match."""
        if self.service is not None:
            return
        identity = AuditService.identity_of(self.settings)
        shared = previous.service if previous is not None else None
        if shared is not None and shared.identity == identity:
            await shared.reconfigure(self.settings)
            service = shared
        else:
            service = AuditService.create(self.settings, self.data_dir)
            try:
                await service.start()
            except BaseException:
                await service.close()
                raise
        service.acquire()
        self.service = service
        if self.alert_settings.webhook is not None:
            self._poster = WebhookPoster(self.alert_settings.webhook)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._poster is not None:
            await self._poster.close()
        if self.service is not None:
            await self.service.release()

    # -- records -----------------------------------------------------------------------

    def _client(self, ip: str) -> str | None:
        if not ip:
            return None
        if not self._pseudonymise or self.service is None:
            return ip
        pseudonym = self._pseudonyms.get(ip)
        if pseudonym is None:
            if len(self._pseudonyms) >= _PSEUDONYM_CACHE:
                self._pseudonyms.clear()
            pseudonym = self.service.keys.pseudonym(ip)
            self._pseudonyms[ip] = pseudonym
        return pseudonym

    def record_for(self, ctx: RequestContext) -> AuditRecord:
        now = time.perf_counter()
        elapsed = max(0.0, now - ctx.started)
        # The wall-clock start is derived here, once, rather than read per request on the
        # hot path: time.time() now minus the monotonic time the request has taken.
        started_us = int((time.time() - elapsed) * 1_000_000)
        status = ctx.response_status
        reason = ctx.reason or None
        if not status:  # the handler failed before any answer: the server sends 500
            status = 500
            reason = reason or "gateway.internal_error"
        identity = ctx.identity
        upstream = ctx.upstream_seconds
        return AuditRecord(
            time=_EPOCH + timedelta(microseconds=started_us),
            request_id=ctx.request_id,
            method=ctx.method,
            status=status,
            decision=outcome_of(ctx),
            route=ctx.route.name if ctx.route is not None else None,
            path_template=path_template_of(ctx),
            reason=reason,
            consumer=identity.consumer if identity is not None else None,
            auth_method=identity.method if identity is not None else None,
            credential_id=(identity.credential_id or None) if identity is not None else None,
            client_ip=self._client(ctx.client_ip),
            findings=findings_of(ctx.findings) if ctx.findings else (),
            gateway_latency_us=int(elapsed * 1_000_000),
            upstream_latency_us=int(upstream * 1_000_000) if upstream is not None else None,
            bytes_in=max(0, ctx.bytes_in),
            bytes_out=max(0, ctx.bytes_out),
            pii_categories=pii_categories_of(ctx.annotations.get("pii_categories")),
        )

    def _writer_ready(self) -> AuditService:
        service = self.service
        if service is None:
            raise RuntimeError("audit log not started")
        return service

    async def commit(
        self, ctx: RequestContext, if_refused: tuple[Outcome, int, int] | None = None
    ) -> Decision | None:
        """Record ``ctx`` once; in strict mode return after the commit.

        Returns 503 ``audit.unavailable`` when the record could not be committed and
        ``on_sink_error`` is ``deny`` (the record is in the spool by then). The gateway,
        which holds the response back until the commit, says with ``if_refused`` what the
        client gets in that case: ``(decision, status, bytes_out)``, a 503 (``deny``) or a
        response cut short (``abort``); that is then what the record says (see
        :meth:`AuditWriter.append`), never the answer the client did not receive.
        """
        annotations = ctx.annotations
        if annotations.get(AUDIT_RECORDED):
            return None
        service = self._writer_ready()
        record = self.record_for(ctx)
        annotations[AUDIT_RECORDED] = True
        alternative = None
        if if_refused is not None:
            decision, status, bytes_out = if_refused
            alternative = replace(
                record,
                decision=decision,
                status=status,
                reason="audit.unavailable",
                bytes_out=bytes_out,
            )
        if self._alerts.active:
            self._observe(record, ctx.client_ip)
        try:
            await service.writer.append(record, if_refused=alternative)
        except AuditUnavailableError as exc:
            if self.deny_when_down:
                return unavailable()
            _LOG.error("audit: record %s not committed: %s", ctx.request_id, exc)
        return None

    def refused(
        self, status: int, reason: str, request_id: str, client_ip: str, bytes_out: int = 0
    ) -> None:
        """Record a request the HTTP server refused before any pipeline saw it."""
        service = self.service
        if service is None:
            _LOG.error("audit: refusal %s not recorded: audit log not started", request_id)
            return
        record = AuditRecord(
            time=datetime.now(UTC),
            request_id=request_id,
            method="-",  # the request line may not even have been read
            status=status,
            decision="deny",
            reason=reason,
            client_ip=self._client(client_ip),
            bytes_out=bytes_out,
        )
        if self._alerts.active:
            self._observe(record, client_ip)
        service.writer.append_nowait(record)

    def _observe(self, record: AuditRecord, raw_ip: str) -> None:
        alerts = self._alerts.observe(record, time.monotonic(), raw_ip or None)
        if alerts and self._poster is not None:
            for alert in alerts:
                ALERTS_FIRED.labels(alert.rule).inc()
                _LOG.warning("alert: %s", alert.payload()["summary"])
                self._poster.post(alert)

    def notify(self, event: Payload) -> None:
        """Post an event other than an alert rule's (an abuse incident) to the webhook."""
        if self._poster is not None:
            ALERTS_FIRED.labels(event.rule).inc()
            self._poster.post(event)

    def store_available(self) -> bool:
        service = self.service
        return service is not None and service.writer.sink_available

    async def probe_store(self) -> bool:
        """Ask the store now (readiness), rather than wait for the next write to fail."""
        service = self.service
        return service is not None and await service.writer.probe()


class AuditStage(Stage):
    """Writes the request's record in the log phase (unless strict mode already did)."""

    name: ClassVar[str] = "audit_log"
    priority: ClassVar[int] = 0
    phases: ClassVar[frozenset[Phase]] = frozenset({Phase.LOG})

    def __init__(self, resources: AuditResources) -> None:
        self.resources = resources

    async def log(self, ctx: RequestContext) -> None:
        if ctx.annotations.get(AUDIT_RECORDED):
            return
        await self.resources.commit(ctx)


class AuditGuardStage(AuditStage):
    """``on_sink_error: deny``: refuse (503) before forwarding while the log is down."""

    phases: ClassVar[frozenset[Phase]] = frozenset({Phase.REQUEST_HEADERS, Phase.LOG})

    async def request_headers(self, ctx: RequestContext) -> Decision | None:
        if self.resources.store_available():
            return None
        return unavailable()
