"""Security misconfiguration (API8) and improper inventory (API9).

Passive, on every answer the scan receives (:func:`observe`): stack traces and database
errors, CORS that lets a foreign origin read with credentials (every request carries
``Origin: https://dijk-scan.invalid``), software versions in headers, missing
``nosniff``/``no-store``. Active: malformed path parameters (to provoke errors), TRACE,
plain HTTP, other versions of documented paths (``/v0/`` beside ``/v1/``) and a short list
of common undocumented paths — each compared with the answer to a path that certainly
does not exist, so a catch-all server raises no alarm.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from dijk.reporting import Severity
from dijk.scan.client import Exchange
from dijk.scan.context import ORIGIN, ScanContext, token
from dijk.scan.spec import ApiOperation

__all__ = ["check_inventory", "check_misconfiguration", "observe"]

_ERROR_SIGNS = re.compile(
    "|".join(
        (
            r"Traceback \(most recent call last\)",
            r"File \"[^\"]+\", line \d+",
            r"\bat [a-z]+(?:\.[A-Za-z0-9_$]+){2,}\([A-Za-z]+\.java:\d+\)",
            r"Exception in thread",
            r"java\.lang\.[A-Za-z]+Exception",
            r"System\.[A-Za-z.]+Exception",
            r"\bpanic: ",
            r"goroutine \d+ \[",
            r"sqlite3\.OperationalError",
            r"SQLSTATE\[",
            r"You have an error in your SQL syntax",
            r"ORA-\d{5}",
            r"PG::[A-Za-z]+Error",
            r"psycopg2?\.errors",
            r"unterminated quoted string",
            r"\bnear \"[^\"]*\": syntax error",
            r"unrecognized token:",
            r"Microsoft OLE DB Provider",
            r"ODBC [A-Za-z ]+Driver",
            r"MongoError|MongoServerError",
            r"<b>(?:Fatal error|Warning)</b>:",
            r"Stack trace:",
            r"node_modules/[^\s]+\.js:\d+",
        )
    )
)
_VERSION = re.compile(r"\d+\.\d+")
_LOOPBACK = re.compile(r"^(127\.|localhost$|\[?::1\]?$)")
_WORDS = (
    "debug",
    "internal",
    "admin",
    "config",
    "env",
    ".env",
    "actuator",
    "actuator/env",
    "console",
    "server-status",
    "phpinfo.php",
    "test",
    "dev",
    "backup",
    "metrics",
    "swagger.json",
    "openapi.json",
    "api-docs",
    "graphql",
)
_SENSITIVE_WORDS = frozenset(
    {
        "debug",
        "config",
        "env",
        ".env",
        "actuator/env",
        "console",
        "server-status",
        "phpinfo.php",
        "backup",
    }
)
_VERSION_SEGMENT = re.compile(r"/v(\d+)(?=/|$)")


def error_signature(text: str) -> str | None:
    found = _ERROR_SIGNS.search(text)
    return found.group(0) if found else None


def observe(ctx: ScanContext, operation: ApiOperation | None, exchange: Exchange) -> None:
    """Passive checks on one answer."""
    if exchange.status == 0:
        return
    if ctx.enabled("misconfig"):
        sign = error_signature(exchange.text()[:200_000])
        if sign is not None and operation is not None:
            ctx.report(
                "scan.misconfig.error_disclosure",
                operation,
                f"the {exchange.status} answer shows internals: {sign[:120]!r}.",
                [exchange],
            )
        allowed = exchange.header("access-control-allow-origin")
        credentials = (exchange.header("access-control-allow-credentials") or "").lower() == "true"
        if allowed in (ORIGIN, "*") and credentials and operation is not None:
            ctx.report(
                "scan.misconfig.cors",
                operation,
                f"Origin {ORIGIN} {'reflected' if allowed == ORIGIN else 'allowed by *'} with "
                "credentials.",
                [exchange],
                severity=Severity.high if allowed == ORIGIN else Severity.medium,
            )
        for name in ("server", "x-powered-by", "x-aspnet-version"):
            value = exchange.header(name)
            if value and _VERSION.search(value):
                ctx.report(
                    "scan.misconfig.version_disclosure",
                    None,
                    f"{name}: {value[:120]}",
                    [exchange],
                )
                break
        if exchange.ok and "json" in (exchange.header("content-type") or ""):
            missing = []
            if (exchange.header("x-content-type-options") or "").lower() != "nosniff":
                missing.append("X-Content-Type-Options: nosniff")
            cache = (exchange.header("cache-control") or "").lower()
            if exchange.identity and "no-store" not in cache and "private" not in cache:
                missing.append("Cache-Control: no-store")
            if ctx.client.target.startswith("https:") and not exchange.header(
                "strict-transport-security"
            ):
                missing.append("Strict-Transport-Security")
            if missing:
                ctx.report(
                    "scan.misconfig.security_headers",
                    None,
                    "responses lack " + ", ".join(missing) + ".",
                    [exchange],
                )


async def check_misconfiguration(ctx: ScanContext) -> None:
    host = urlsplit(ctx.client.target).hostname or ""
    if ctx.client.target.startswith("http:"):
        ctx.report(
            "scan.misconfig.plain_http",
            None,
            f"{ctx.client.target} is plain HTTP"
            + (" (loopback here; check the production URL)." if _LOOPBACK.match(host) else "."),
            [],
            severity=Severity.low if _LOOPBACK.match(host) else Severity.medium,
        )
    primary = ctx.primary
    for operation in ctx.spec.operations:
        if not operation.safe:
            continue
        for param in operation.path_params:
            if param.schema.get("type") in ("integer", "number") or "format" in param.schema:
                who = None if operation.public else primary
                await ctx.call(
                    operation,
                    who,
                    path_values={param.name: "dijk'\"x"},
                    purpose="malformed parameter",
                )
                break
    first = next((op for op in ctx.spec.operations if not op.path_params), ctx.spec.operations[0])
    trace = await ctx.call(
        first,
        None,
        method="TRACE",
        path=first.template,
        headers={"Cookie": f"dijk={token()}"},
        purpose="TRACE",
    )
    if trace.ok and "TRACE" in trace.text()[:2000]:
        ctx.report(
            "scan.misconfig.trace",
            first,
            f"TRACE answered {trace.status} and echoed the request.",
            [trace],
            method="TRACE",
            template="*",
        )


async def _not_found(ctx: ScanContext, base: str) -> Exchange:
    operation = ctx.spec.operations[0]
    return await ctx.call(
        operation,
        ctx.primary,
        method="GET",
        path=f"{base}/dijk-scan-{token()}",
        purpose="inventory: missing path",
    )


def _answers(candidate: Exchange, missing: Exchange) -> bool:
    if not candidate.ok:
        return False
    if not missing.ok:
        return True
    return candidate.body != missing.body and abs(len(candidate.body) - len(missing.body)) > 16


async def check_inventory(ctx: ScanContext) -> None:
    primary = ctx.primary
    tried: set[str] = set()
    missing_by_base: dict[str, Exchange] = {}
    for operation in ctx.spec.operations:
        if operation.method != "GET":
            continue
        for found in _VERSION_SEGMENT.finditer(operation.template):
            number = int(found.group(1))
            for other in range(number - 1, max(number - 3, -1), -1):
                template = (
                    operation.template[: found.start()]
                    + f"/v{other}"
                    + operation.template[found.end() :]
                )
                if template in tried or ctx.spec.documented(
                    ctx.path_for_template(operation, template)
                ):
                    continue
                tried.add(template)
                base = template[: found.start() + len(f"/v{other}")]
                if base not in missing_by_base:
                    missing_by_base[base] = await _not_found(ctx, base)
                path = ctx.path_for_template(operation, template)
                exchange = await ctx.call(
                    operation, primary, method="GET", path=path, purpose="inventory: old version"
                )
                if _answers(exchange, missing_by_base[base]):
                    ctx.report(
                        "scan.inventory.old_version",
                        operation,
                        f"{path} answers {exchange.status} beside the documented "
                        f"{operation.template}.",
                        [exchange],
                        method="GET",
                        template=template,
                    )
    bases = {""}
    for operation in ctx.spec.operations:
        parts = operation.template.split("/")
        for length in (2, 3):
            if len(parts) > length and not any("{" in part for part in parts[:length]):
                bases.add("/".join(parts[:length]))
    for base in sorted(bases):
        if base not in missing_by_base:
            missing_by_base[base] = await _not_found(ctx, base)
        for word in _WORDS:
            path = f"{base}/{word}"
            if ctx.spec.documented(path):
                continue
            exchange = await ctx.call(
                ctx.spec.operations[0],
                primary,
                method="GET",
                path=path,
                purpose="inventory: common path",
            )
            if _answers(exchange, missing_by_base[base]):
                ctx.report(
                    "scan.inventory.undocumented_path",
                    None,
                    f"{path} is not in the document but answers {exchange.status}.",
                    [exchange],
                    severity=Severity.high if word in _SENSITIVE_WORDS else Severity.medium,
                    method="GET",
                    template=path,
                )
