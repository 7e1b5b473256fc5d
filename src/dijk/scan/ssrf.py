"""Server-side request forgery (API7), proved with a canary on 127.0.0.1.

URL-like parameters — ``format: uri``/``url``, or a name such as ``url``, ``callback``,
``webhook``, ``image`` — get the address of the scanner's own listener with a fresh token
per probe. Only a request for that token arriving at the listener counts: reflection,
error messages or timing are not evidence. Body properties are tried with
``--allow-writes`` only.
"""

from __future__ import annotations

import re
from typing import Any

from dijk.scan.context import ScanContext, token
from dijk.scan.spec import ApiOperation
from dijk.scan.values import example_body

__all__ = ["check_ssrf", "url_like"]

WAIT_S = 1.5  # a fetch made while answering arrives before the answer; later ones rarely
_URL_NAME = re.compile(
    r"url|uri|link|href|callback|webhook|redirect|endpoint|feed|image|avatar|src|fetch|proxy|target|dest",
    re.I,
)


def url_like(name: str, schema: dict[str, Any]) -> bool:
    kind = schema.get("type")
    if kind not in (None, "string") and not (isinstance(kind, list) and "string" in kind):
        return False
    if str(schema.get("format", "")).lower() in ("uri", "url", "iri", "uri-reference"):
        return True
    return bool(_URL_NAME.search(name))


async def check_ssrf(ctx: ScanContext) -> None:
    primary = ctx.primary
    for operation in ctx.spec.operations:
        who = None if operation.public else primary
        if not operation.public and who is None:
            continue
        for param in operation.params:
            if param.location in ("query", "path") and url_like(param.name, param.schema):
                if not operation.safe and not ctx.options.allow_writes:
                    continue
                mark = token()
                if param.location == "query":
                    probe = await ctx.call(
                        operation, who, query={param.name: ctx.canary.url(mark)}, purpose="ssrf"
                    )
                else:
                    probe = await ctx.call(
                        operation,
                        who,
                        path_values={param.name: ctx.canary.url(mark)},
                        purpose="ssrf",
                    )
                await _verdict(ctx, operation, param.name, mark, probe)
        if operation.body_schema is None or operation.safe:
            continue
        properties = operation.body_schema.get("properties") or {}
        names = [
            name
            for name, schema in properties.items()
            if isinstance(schema, dict) and url_like(name, schema)
        ]
        if not names:
            continue
        if not ctx.options.allow_writes:
            ctx.notes.append(f"SSRF: {operation.label} not tried (it writes; use --allow-writes).")
            continue
        for name in names:
            mark = token()
            body = {**example_body(operation.body_schema), name: ctx.canary.url(mark)}
            probe = await ctx.call(operation, who, body=body, purpose="ssrf")
            await _verdict(ctx, operation, name, mark, probe)


async def _verdict(
    ctx: ScanContext, operation: ApiOperation, name: str, mark: str, probe: Any
) -> None:
    hit = await ctx.canary.wait_for(mark, WAIT_S)
    if hit is None:
        return
    ctx.report(
        "scan.ssrf",
        operation,
        f"'{name}' made the target fetch the scanner's canary ({hit.method} {hit.path}, "
        f"User-Agent {hit.user_agent!r}).",
        [probe],
        extra={
            "parameter": name,
            "canary_request": {
                "method": hit.method,
                "path": hit.path,
                "user_agent": hit.user_agent,
            },
        },
    )
