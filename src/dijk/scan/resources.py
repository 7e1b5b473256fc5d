"""Unrestricted resource consumption (API4): bursts, page sizes, request sizes.

- *Burst*: ``--burst`` requests at once (not paced, still counted in the budget) to the
  login operation (with a made-up user name, so no real account is locked) and to one
  ordinary read; not a single 429 (or 503) means no limit was met. A bounded burst cannot
  prove there is *no* limit higher up, so the finding says how many were sent.
- *Page size*: an integer query parameter with a documented ``maximum`` that names a page
  size is sent at ten times the maximum; an answer holding more items than the maximum
  proves the limit is not applied.
- *Request size* (``--allow-writes``): a create operation that worked is repeated with a
  2 MiB string in one of its string properties.
"""

from __future__ import annotations

import asyncio
from typing import Any

from dijk.reporting import Severity
from dijk.scan.context import ScanContext, token
from dijk.scan.spec import ApiOperation, is_login
from dijk.scan.values import example_body, example_value, string_properties

__all__ = ["check_resources"]

_PAGE_NAMES = frozenset(
    {
        "limit",
        "size",
        "page_size",
        "pagesize",
        "per_page",
        "perpage",
        "count",
        "top",
        "take",
        "first",
        "max",
        "maxresults",
    }
)
BIG_BODY = 2 * 1024 * 1024


def _login(ctx: ScanContext) -> ApiOperation | None:
    return next((operation for operation in ctx.spec.operations if is_login(operation)), None)


def _longest_list(value: Any, depth: int = 0) -> int:
    if depth > 4:
        return 0
    if isinstance(value, list):
        return len(value)
    if isinstance(value, dict):
        return max((_longest_list(child, depth + 1) for child in value.values()), default=0)
    return 0


async def check_resources(ctx: ScanContext) -> None:
    await _bursts(ctx)
    await _page_sizes(ctx)
    await _body_sizes(ctx)


async def _bursts(ctx: ScanContext) -> None:
    size = ctx.options.burst
    if size < 2:
        return
    login = _login(ctx)
    if login is not None and login.body_schema is not None:
        body = example_body(login.body_schema)
        for name in login.body_schema.get("properties") or {}:
            lowered = name.lower()
            if "password" in lowered:
                body[name] = f"wrong-{token()}"
            elif any(word in lowered for word in ("user", "email", "login", "name")):
                body[name] = (
                    f"dijk-scan-{token()}@example.invalid"
                    if "mail" in lowered
                    else f"dijk-scan-{token()}"
                )
        await _burst(ctx, login, None, body, Severity.high)
    primary = ctx.primary
    for operation in ctx.spec.operations:
        if operation.method != "GET" or operation.path_params or operation.admin:
            continue
        who = None if operation.public else primary
        seen = ctx.baseline.get((operation.label, who.name if who else "(none)"))
        if seen is None or not seen.ok:
            continue
        await _burst(ctx, operation, who, None, Severity.medium)
        break


async def _burst(
    ctx: ScanContext, operation: ApiOperation, who: Any, body: Any, severity: Severity
) -> None:
    size = min(ctx.options.burst, max(ctx.client.remaining - 1, 0))
    if size < 2:
        return
    results = await asyncio.gather(
        *(ctx.call(operation, who, body=body, purpose="burst", paced=False) for _ in range(size))
    )
    statuses = [exchange.status for exchange in results]
    if any(status in (429, 503) for status in statuses):
        return
    if not any(status and status < 500 for status in statuses):
        return
    counts: dict[int, int] = {}
    for status in statuses:
        counts[status] = counts.get(status, 0) + 1
    ctx.report(
        "scan.resource.no_rate_limit",
        operation,
        f"{size} requests at once, no 429: statuses {dict(sorted(counts.items()))}.",
        [results[0], results[-1]],
        severity=severity,
        extra={"burst": size, "statuses": counts},
    )


async def _page_sizes(ctx: ScanContext) -> None:
    primary = ctx.primary
    for operation in ctx.spec.operations:
        if operation.method != "GET":
            continue
        for param in operation.params:
            maximum = param.schema.get("maximum")
            if (
                param.location != "query"
                or not isinstance(maximum, int)
                or param.name.lower() not in _PAGE_NAMES
            ):
                continue
            who = None if operation.public else primary
            asked = maximum * 10
            exchange = await ctx.call(
                operation, who, query={param.name: asked}, purpose="page size"
            )
            items = _longest_list(exchange.json)
            if exchange.ok and items > maximum:
                ctx.report(
                    "scan.resource.page_size",
                    operation,
                    f"{param.name}={asked} (documented maximum {maximum}) returned {items} items.",
                    [exchange],
                    extra={"parameter": param.name, "maximum": maximum, "items": items},
                )


async def _body_sizes(ctx: ScanContext) -> None:
    if not ctx.options.allow_writes:
        ctx.notes.append("Request size: not tried (it writes; use --allow-writes).")
        return
    primary = ctx.primary
    for operation in ctx.spec.operations:
        if operation.method != "POST" or operation.body_schema is None or operation.path_params:
            continue
        if operation.admin or operation.public:
            continue
        strings = string_properties(operation.body_schema)
        if not strings:
            continue
        name, schema = max(strings, key=lambda pair: int(pair[1].get("maxLength", 0) or 0))
        body = example_body(operation.body_schema)
        body[name] = example_value(schema)
        first = await ctx.call(operation, primary, body=body, purpose="request size: baseline")
        if not first.ok:
            continue
        body[name] = "A" * BIG_BODY
        big = await ctx.call(operation, primary, body=body, purpose="request size: 2 MiB")
        if big.ok:
            limit = schema.get("maxLength")
            ctx.report(
                "scan.resource.body_size",
                operation,
                f"a 2 MiB body ('{name}' of {BIG_BODY} characters"
                + (f", documented maxLength {limit}" if limit else "")
                + f") was accepted ({big.status}).",
                [big],
            )
