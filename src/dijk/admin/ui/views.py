"""What the dashboard's pages show, as plain data for the templates.

Only reading here: the audit store (summary, query, checkpoints, verification), the
privacy tables (data map, Art. 30 register, breach report) and the running configuration,
with secrets redacted. The actions (reload, reports as files) are in ``app.py``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final
from urllib.parse import quote, urlencode

from dijk.audit.export import record_json
from dijk.audit.store import AuditPage, AuditQuery, AuditStore
from dijk.audit.summary import TrafficSummary, percentile
from dijk.detect.findings import CRITICAL, ERROR, NOTICE, WARNING
from dijk.detect.rules import RULES_BY_ID

_SEVERITY: Final = {CRITICAL: "critical", ERROR: "error", WARNING: "warning", NOTICE: "notice"}
"""Severity names of the detection rules (the anomaly score each contributes)."""

__all__ = [
    "RANGES",
    "chart_data",
    "data_map",
    "event_rows",
    "redact",
]

RANGES: Final = {
    "15m": (timedelta(minutes=15), 30),
    "24h": (timedelta(hours=24), 48),
    "7d": (timedelta(days=7), 56),
}
"""Overview ranges: span and number of time buckets."""

_SECRET_KEY: Final = re.compile(r"secret|password|passwd|token|credential|private|api_key|sha256")
_NOT_SECRET: Final = re.compile(r"(_env|_file|_path|_header|_s|_param|_claim)$|^header")
_URL_PASSWORD: Final = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://)(?P<user>[^:/@\s]*):[^@/\s]*@")
_OUTBOUND: Final = re.compile(r"^(?P<origin>[a-z][a-z0-9+.-]*://[^/?#]*)[/?#].+$", re.S)
REDACTED: Final = "***"


def redact(value: Any, key: str = "", outbound: bool = False) -> Any:
    """The configuration with secret values replaced by ``***``.

    A value is secret when its key names a secret (``secret``, ``password``, ``token``,
    ``api_key``...) and is not merely the *name* of where the secret lives (``token_env``,
    ``key_file``); passwords inside URLs (``redis://user:pw@host``) are cut out too, and
    so is everything after the host of a webhook or SIEM sink URL, where services put
    their tokens (``https://hooks.example/services/<team>/<channel>/<token>``).
    """
    if isinstance(value, dict):
        inner = outbound or key in ("webhook", "sinks")
        return {name: redact(item, str(name), inner) for name, item in value.items()}
    if isinstance(value, list):
        return [redact(item, key, outbound or key == "sinks") for item in value]
    if outbound and key == "url" and isinstance(value, str):
        return _OUTBOUND.sub(r"\g<origin>/" + REDACTED, value)
    lowered = key.lower()
    secret = bool(_SECRET_KEY.search(lowered)) and not _NOT_SECRET.search(lowered)
    if secret and isinstance(value, str | bytes | int) and not isinstance(value, bool):
        return REDACTED
    if isinstance(value, str):
        return _URL_PASSWORD.sub(r"\g<scheme>\g<user>:" + REDACTED + "@", value)
    return value


def _ms(value: int | None) -> float | None:
    return None if value is None else value / 1000


def chart_data(summary: TrafficSummary) -> dict[str, Any]:
    """Series for the overview charts (seconds since the epoch; latency in ms)."""
    return {
        "t": [bucket.start_us // 1_000_000 for bucket in summary.buckets],
        "requests": [bucket.requests for bucket in summary.buckets],
        "refused": [bucket.refused for bucket in summary.buckets],
        "upstream_errors": [bucket.upstream_errors for bucket in summary.buckets],
        "p50": [_ms(percentile(bucket.latency, 0.5)) for bucket in summary.buckets],
        "p95": [_ms(percentile(bucket.latency, 0.95)) for bucket in summary.buckets],
        "p99": [_ms(percentile(bucket.latency, 0.99)) for bucket in summary.buckets],
    }


@dataclass(slots=True)
class EventPage:
    rows: list[dict[str, Any]]
    next_cursor: str | None


def event_rows(page: AuditPage) -> EventPage:
    """Records for a table: the JSON shape of the admin API plus a readable time."""
    rows = []
    for row in page.records:
        data = record_json(row)
        data["when"] = row.record.time.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")
        data["record_url"] = record_url(row.record.time, row.record.route, row.record.request_id)
        for finding in data.get("findings", []):
            rule = RULES_BY_ID.get(finding["rule_id"])
            if rule is not None:
                finding["rule"] = {
                    "category": rule.category,
                    "severity": _SEVERITY.get(rule.severity, "severity"),
                    "score": rule.severity,
                    "description": rule.description,
                }
        rows.append(data)
    return EventPage(rows, page.next_cursor)


def record_url(moment: datetime, route: str | None, request_id: str) -> str:
    """The audit search that shows exactly this record (its microsecond, its route),
    scrolled to its row: the audit query has no request-id filter."""
    stamp = "%Y-%m-%dT%H:%M:%S.%fZ"
    at = moment.astimezone(UTC)
    query = {"since": at.strftime(stamp), "until": (at + timedelta(microseconds=1)).strftime(stamp)}
    if route:
        query["route"] = route
    return "/ui/audit?" + urlencode(query) + "#rec-" + quote(request_id, safe="")


async def query(store: AuditStore, query: AuditQuery) -> EventPage:
    return event_rows(await store.query(query))


def incident_row(incident: dict[str, Any]) -> dict[str, Any]:
    """An abuse incident (the admin API's form) with readable times."""
    return {
        **incident,
        "opened_at": local(datetime.fromtimestamp(incident["opened"], UTC)),
        "until_at": local(datetime.fromtimestamp(incident["until"], UTC)),
    }


def data_map(register: dict[str, Any]) -> list[dict[str, Any]]:
    """Endpoints by categories by consumers from the Art. 30 register's dictionary."""
    rows = []
    for item in register["processing"]:
        for use in item["fields"]:
            consumers = list(use["consumers"]) + (["(anonymous)"] if use.get("anonymous") else [])
            rows.append(
                {
                    "endpoint": f"{item['method']} {item['endpoint']}",
                    "direction": use["direction"],
                    "field": use["field"],
                    "category": use["category"],
                    "occurrences": use["occurrences"],
                    "masked": use["masked"],
                    "consumers": consumers,
                }
            )
    return rows


def local(moment: datetime | None) -> str:
    if moment is None:
        return "—"
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


INVENTORY_ROWS: Final = 100
"""Endpoints on one page of the inventory (the OpenAPI draft has them all)."""

FINDING_KINDS: Final = {
    "discovery.shadow_endpoint": "shadow",
    "discovery.zombie_deprecated": "zombie",
    "discovery.zombie_unused": "zombie",
}
"""Diff rules by the list they go in on the inventory page; the other rules are drift."""


def _counts(counts: dict[str, int]) -> list[tuple[str, int]]:
    return sorted(counts.items(), key=lambda item: (-item[1], item[0]))


def inventory_rows(endpoints: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every endpoint as a table row, busiest first (made once, then filtered per look)."""
    from dijk.discovery.openapi import iso_time
    from dijk.discovery.paths import parameter_names

    rows = []
    for endpoint in endpoints:
        named, _ = parameter_names(endpoint["template"])
        rows.append(
            {
                "method": endpoint["method"],
                "template": named,
                "lowered": named.lower(),
                "route": endpoint.get("route") or "",
                "count": endpoint["count"],
                "first_seen": iso_time(endpoint["first_us"]).replace("T", " ").rstrip("Z"),
                "last_seen": iso_time(endpoint["last_us"]).replace("T", " ").rstrip("Z"),
                "status": _counts(endpoint.get("status", {})),
                "auth": _counts(endpoint.get("auth", {})),
                "pii": sorted(endpoint.get("pii", {})),
                "undeclared": endpoint.get("undeclared", 0),
                "unrouted": endpoint.get("unrouted", 0) >= endpoint["count"],
            }
        )
    rows.sort(key=lambda row: (-row["count"], row["template"], row["method"]))
    return rows


def filter_inventory(rows: list[dict[str, Any]], filters: dict[str, str]) -> list[dict[str, Any]]:
    """The rows the page's filters keep.

    ``method`` (exact), ``path`` (part of the template), ``route`` (exact), ``pii`` (a
    category the endpoint carried), ``unrouted`` (``show``: also requests that matched no
    route, which the gateway answered 404 - probes, not endpoints).
    """
    method = filters.get("method", "").upper()
    path = filters.get("path", "").lower()
    route = filters.get("route", "")
    category = filters.get("pii", "")
    show_unrouted = filters.get("unrouted") == "show"
    return [
        row
        for row in rows
        if (show_unrouted or not row["unrouted"])
        and (not method or row["method"] == method)
        and (not path or path in row["lowered"])
        and (not route or row["route"] == route)
        and (not category or category in row["pii"])
    ]


def inventory_findings(findings: list[Any], filters: dict[str, str]) -> dict[str, list[Any]]:
    """The diff's findings in three lists (shadow, zombie, drift), by the page's filters."""
    method = filters.get("method", "").upper()
    path = filters.get("path", "").lower()
    lists: dict[str, list[Any]] = {"shadow": [], "zombie": [], "drift": []}
    for finding in findings:
        where = finding.location
        if method and (where.method or "").upper() != method:
            continue
        if path and path not in (where.url or "").lower():
            continue
        lists[FINDING_KINDS.get(finding.rule_id, "drift")].append(finding)
    return lists
