"""``GET /admin/api/v1/audit``: the activity log over the admin API (token required).

Query parameters (all optional; unknown ones are refused, so a typo never silently
widens a search): ``since``, ``until`` (ISO 8601 or 15m/2h/7d ago), ``consumer``,
``status`` (404 or 4xx), ``reason`` (waf.sqli or waf.*), ``decision`` (allow, deny,
monitor, abort), ``chain``, ``route`` (a route's name, or ``admin:reload`` for an admin
action), ``order`` (newest, the default, or oldest), ``limit`` (1-1000,
default 100) and ``cursor`` (``next_cursor`` of the previous page).

Answer: ``{"records": [...], "count": n, "next_cursor": "..." | null}``, records in the
shape of ``dijk audit query --format json``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final
from urllib.parse import parse_qsl

from dijk.audit.export import record_json
from dijk.audit.store import AuditQuery, AuditStore, AuditStoreError, parse_time

__all__ = ["MAX_LIMIT", "query_page"]

MAX_LIMIT: Final = 1000
_PARAMS: Final = frozenset(
    {"since", "until", "consumer", "status", "reason", "decision", "chain", "order", "limit"}
    | {"cursor", "route"}
)
_DECISIONS: Final = frozenset({"allow", "deny", "monitor", "abort"})


def _problem(status: int, reason: str, detail: str) -> tuple[int, dict[str, Any]]:
    return status, {"status": status, "reason": reason, "detail": detail}


def parse_query(pairs: Sequence[tuple[str, str]]) -> AuditQuery:
    """An :class:`AuditQuery` from query-string pairs; ``ValueError`` names the problem."""
    values: dict[str, str] = {}
    for name, value in pairs:
        if name not in _PARAMS:
            raise ValueError(f"unknown parameter {name!r}; known: {', '.join(sorted(_PARAMS))}")
        if name in values:
            raise ValueError(f"parameter {name!r} given twice")
        values[name] = value
    limit = 100
    if "limit" in values:
        if not values["limit"].isdigit() or not 1 <= int(values["limit"]) <= MAX_LIMIT:
            raise ValueError(f"limit must be a number from 1 to {MAX_LIMIT}")
        limit = int(values["limit"])
    order = values.get("order", "newest")
    if order not in ("newest", "oldest"):
        raise ValueError("order must be newest or oldest")
    decision = values.get("decision")
    if decision is not None and decision not in _DECISIONS:
        raise ValueError("decision must be allow, deny, monitor or abort")
    query = AuditQuery(
        since=parse_time(values["since"]) if "since" in values else None,
        until=parse_time(values["until"]) if "until" in values else None,
        consumer=values.get("consumer"),
        status=values.get("status"),
        reason=values.get("reason"),
        decision=decision,
        chain=values.get("chain"),
        route=values.get("route"),
        limit=limit,
        cursor=values.get("cursor"),
        newest_first=order == "newest",
    )
    query.status_range()  # raises ValueError for a bad status filter
    return query


async def query_page(store: AuditStore, query_string: str) -> tuple[int, dict[str, Any]]:
    """Status and JSON body for one page of the log."""
    try:
        pairs = parse_qsl(query_string, keep_blank_values=True, strict_parsing=bool(query_string))
        query = parse_query(pairs)
    except ValueError as exc:
        return _problem(400, "audit.bad_query", str(exc))
    try:
        page = await store.query(query)
    except ValueError as exc:  # a malformed cursor
        return _problem(400, "audit.bad_query", str(exc))
    except AuditStoreError as exc:
        return _problem(503, "audit.unavailable", f"The audit database cannot be read: {exc}")
    return 200, {
        "records": [record_json(row) for row in page.records],
        "count": len(page.records),
        "next_cursor": page.next_cursor,
    }
