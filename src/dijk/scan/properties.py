"""Property-level authorisation (API3) and response conformance.

*Excessive data* and *conformance* are passive: they look at the baseline answers (ordinary
requests by the identities) through the gateway's own response checker
(:mod:`dijk.openapi.request`, in strip mode): what the stripper would remove is undeclared
data — high when :mod:`dijk.detect.pii` finds personal data or secrets in it — and what
still fails the schema afterwards is a conformance finding.

*Mass assignment* is active (``--allow-writes`` only): a write that worked with ordinary
data is repeated with read-only properties (from the request schema and the operation's
response schema) and an undeclared canary property; a success whose answer carries the
values sent back proves they were stored.
"""

from __future__ import annotations

import re
from typing import Any

from dijk.detect.pii import PiiDetector
from dijk.openapi.request import Violation, check_response_body, check_response_head
from dijk.reporting import Severity
from dijk.scan.client import Exchange
from dijk.scan.context import ScanContext, token
from dijk.scan.spec import ApiOperation, is_login
from dijk.scan.values import distinct_value, example_body

__all__ = ["check_mass_assignment", "inspect_response"]

_SENSITIVE_NAME = re.compile(
    r"password|passwd|secret|token|hash|salt|bsn|ssn|iban|card|cvv|api_?key|private", re.I
)
_detector: PiiDetector | None = None


def _pii() -> PiiDetector:
    global _detector
    if _detector is None:
        _detector = PiiDetector(region="NL")
    return _detector


def _value_at(document: Any, pointer: str) -> Any:
    node = document
    for part in pointer.split("/")[1:]:
        if isinstance(node, dict):
            node = node.get(part)
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return None
    return node


def inspect_response(ctx: ScanContext, operation: ApiOperation, exchange: Exchange) -> None:
    """Undeclared data and conformance of one ordinary answer."""
    if exchange.status == 0:
        return
    compiled = ctx.spec.compiled_operation(operation.method, operation.template)
    if compiled is None:
        return
    content_type = exchange.header("content-type") or ""
    head = check_response_head(compiled, exchange.status, content_type, bool(exchange.body))
    if isinstance(head, Violation):
        if ctx.enabled("schema"):
            ctx.report("scan.schema.response", operation, _plain(head.detail), [exchange])
        return
    if head is None:
        return
    result = check_response_body(head, content_type, exchange.body, strip=True)
    if result.removed and ctx.enabled("properties") and exchange.json is not None:
        _report_undeclared(ctx, operation, exchange, list(result.removed))
    if result.violation is not None and ctx.enabled("schema"):
        ctx.report("scan.schema.response", operation, _plain(result.violation.detail), [exchange])


def _plain(detail: str) -> str:
    return detail.replace("The upstream", "The target").replace("the upstream", "the target")


def _report_undeclared(
    ctx: ScanContext, operation: ApiOperation, exchange: Exchange, removed: list[str]
) -> None:
    names = sorted({pointer.rsplit("/", 1)[-1] for pointer in removed})
    categories: set[str] = set()
    sensitive: set[str] = set()
    for pointer in removed[:200]:
        value = _value_at(exchange.json, pointer)
        name = pointer.rsplit("/", 1)[-1]
        for match in _pii().scan_json({name: value}):
            categories.add(str(match.category))
        if _SENSITIVE_NAME.search(name):
            sensitive.add(name)
    severity = Severity.high if categories or sensitive else Severity.medium
    detail = ""
    if categories:
        detail += f"; personal data or secrets found: {', '.join(sorted(categories))}"
    if sensitive:
        detail += f"; sensitive names: {', '.join(sorted(sensitive))}"
    ctx.report(
        "scan.property.excessive_data",
        operation,
        f"the response carries undeclared properties {', '.join(names[:10])}{detail}.",
        [exchange],
        severity=severity,
        extra={
            "undeclared": removed[:50],
            "personal_data": sorted(categories),
            "sensitive_names": sorted(sensitive),
        },
    )


def _read_only(schema: dict[str, Any] | None) -> dict[str, dict[str, Any]]:
    properties = (schema or {}).get("properties")
    if not isinstance(properties, dict):
        return {}
    return {
        name: sub
        for name, sub in properties.items()
        if isinstance(sub, dict) and sub.get("readOnly")
    }


def _current(ctx: ScanContext, operation: ApiOperation) -> dict[str, Any]:
    """What the resource looks like now (the GET of the same path), to pick new values."""
    reader = ctx.spec.find("GET", operation.template)
    primary = ctx.primary
    if reader is None or primary is None:
        return {}
    seen = ctx.baseline.get((reader.label, primary.name))
    return seen.json if seen is not None and isinstance(seen.json, dict) else {}


async def check_mass_assignment(ctx: ScanContext) -> None:
    if not ctx.options.allow_writes:
        ctx.notes.append("Mass assignment: not tried (it writes; use --allow-writes).")
        return
    for operation in ctx.spec.operations:
        if operation.method not in ("POST", "PUT", "PATCH") or operation.body_schema is None:
            continue
        if operation.admin or is_login(operation):
            continue
        body = example_body(operation.body_schema)
        found = await ctx.working_write(operation, body)
        if found is None:
            continue
        who, values = found
        mark = token()
        current = _current(ctx, operation)
        probes: dict[str, Any] = {}
        declared = (operation.body_schema.get("properties") or {}) if operation.body_schema else {}
        read_only = {**_read_only(operation.response_schema), **_read_only(operation.body_schema)}
        for name, schema in read_only.items():
            if name == "id":
                continue
            probes[name] = distinct_value(schema, current.get(name), mark)
        probes[f"dijk_probe_{mark}"] = f"dijk-{mark}"
        attempt = await ctx.call(
            operation,
            who,
            path_values=values,
            body={**body, **probes},
            purpose="mass assignment: probe",
        )
        if not attempt.ok or not isinstance(attempt.json, dict):
            continue
        stored = sorted(name for name, value in probes.items() if attempt.json.get(name) == value)
        if not stored:
            continue
        kinds = [
            ("read-only" if name in read_only else "undeclared" if name not in declared else "")
            for name in stored
        ]
        ctx.report(
            "scan.property.mass_assignment",
            operation,
            "stored client-sent "
            + ", ".join(f"{kind} '{name}'" for kind, name in zip(kinds, stored, strict=True))
            + f" ({attempt.status}).",
            [attempt],
            extra={"stored": stored},
        )
