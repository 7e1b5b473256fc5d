"""Prometheus metrics of the audit log, its sinks and alerts (in the gateway's registry)."""

from __future__ import annotations

from typing import Final

from prometheus_client import Counter, Gauge

from dijk.metrics import REGISTRY

__all__ = [
    "ALERTS_FIRED",
    "ALERT_WEBHOOK",
    "RECORDS",
    "SINK_DROPPED",
    "SINK_FAILURES",
    "SINK_QUEUE",
    "SINK_SENT",
    "STORE_UP",
]

RECORDS: Final = Counter(
    "dijk_audit_records",
    "Audit records by what became of them: committed, spooled (store down), lost.",
    ("outcome",),
    registry=REGISTRY,
)
STORE_UP: Final = Gauge(
    "dijk_audit_store_up",
    "1 while audit records reach the database, 0 while they go to the local spool.",
    registry=REGISTRY,
)
SINK_SENT: Final = Counter(
    "dijk_audit_sink_sent",
    "Audit records delivered to a live sink (SIEM), by sink.",
    ("sink",),
    registry=REGISTRY,
)
SINK_DROPPED: Final = Counter(
    "dijk_audit_sink_dropped",
    "Audit record copies a sink never delivered (queue full or rejected); the database"
    " still holds them.",
    ("sink",),
    registry=REGISTRY,
)
SINK_FAILURES: Final = Counter(
    "dijk_audit_sink_failures",
    "Failed sends to a live sink (each is retried with backoff), by sink.",
    ("sink",),
    registry=REGISTRY,
)
SINK_QUEUE: Final = Gauge(
    "dijk_audit_sink_queue",
    "Audit records waiting in memory for a live sink, by sink.",
    ("sink",),
    registry=REGISTRY,
)
ALERTS_FIRED: Final = Counter(
    "dijk_alerts_fired", "Alerts raised, by rule.", ("rule",), registry=REGISTRY
)
ALERT_WEBHOOK: Final = Counter(
    "dijk_alert_webhook_posts",
    "Alert webhook deliveries by result: sent, failed (retried), dropped.",
    ("result",),
    registry=REGISTRY,
)
