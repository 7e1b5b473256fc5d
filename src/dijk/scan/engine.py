"""``dijk scan``: run the checks in order against one target and build the report.

Order matters and is fixed: the baseline first (it harvests ids and proves operations
work), then reads-only checks, then — with ``--allow-writes`` — the ones that change data,
mass assignment last because it may change the identity itself (a role). Every answer
passes the passive checks (:func:`dijk.scan.exposure.observe`); baseline answers also the
conformance and undeclared-data checks. When the request budget is spent the remaining
checks do not run and the report says so (as an error: the scan is incomplete).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import orjson

from dijk import __version__
from dijk.reporting import Report, TargetError
from dijk.scan.access import baseline, check_authentication, check_bfla, check_bola
from dijk.scan.canary import Canary
from dijk.scan.client import BudgetExhausted, Exchange, ScanClient, TargetUnreachable
from dijk.scan.context import ScanContext, ScanOptions
from dijk.scan.exposure import check_inventory, check_misconfiguration, observe
from dijk.scan.identities import Identity, LoginRecipe, parse_identity, token_from
from dijk.scan.injection import check_injection
from dijk.scan.properties import check_mass_assignment, inspect_response
from dijk.scan.resources import check_resources
from dijk.scan.rules import RULES
from dijk.scan.spec import ApiOperation, ApiSpec
from dijk.scan.ssrf import check_ssrf

__all__ = ["CHECKS", "ScanResult", "SetupFailed", "run_scan"]

Check = Callable[[ScanContext], Awaitable[None]]

#: (name for --checks, what the progress bar says, the check), in the order they run.
CHECKS: list[tuple[str, str, Check]] = [
    ("baseline", "baseline: every read, every identity", baseline),
    ("auth", "API2 authentication", check_authentication),
    ("bola", "API1 object-level authorisation", check_bola),
    ("bfla", "API5 function-level authorisation", check_bfla),
    ("misconfig", "API8 misconfiguration", check_misconfiguration),
    ("inventory", "API9 inventory", check_inventory),
    ("ssrf", "API7 SSRF (canary)", check_ssrf),
    ("injection", "injection probes", check_injection),
    ("resources", "API4 resource consumption", check_resources),
    ("properties", "API3 mass assignment", check_mass_assignment),
]
CHECK_NAMES = (*(name for name, _label, _check in CHECKS), "schema")


@dataclass(slots=True)
class ScanResult:
    report: Report
    requests: int
    notes: list[str]


Progress = Callable[[str, int, int, int], None]


async def run_scan(
    spec: ApiSpec, options: ScanOptions, progress: Progress | None = None
) -> ScanResult:
    """Scan ``options.target``; raises :class:`TargetUnreachable` when it cannot be reached."""
    started = time.monotonic()
    secrets = [secret for identity in options.identities for secret in identity.secrets()]
    secrets += [secret for recipe in options.logins for secret in recipe.secrets()]
    secrets += [options.jwt_secret] if options.jwt_secret else []
    canary = Canary(options.canary_address)
    try:
        await canary.start()
    except OSError as exc:
        raise SetupFailed(
            f"--canary-address {options.canary_address}: cannot listen ({exc.strerror or exc})"
        ) from None
    errors: list[TargetError] = []
    try:
        async with ScanClient(
            options.target,
            budget=options.budget,
            concurrency=options.concurrency,
            rate=options.rate,
            timeout_s=options.timeout_s,
            secrets=secrets,
        ) as client:
            ctx = ScanContext(spec, client, options, canary)

            step: list[tuple[str, int, int]] = [("starting", 0, 1)]

            def on_exchange(operation: ApiOperation | None, exchange: Exchange) -> None:
                observe(ctx, operation, exchange)
                if operation is not None and exchange.purpose == "baseline":
                    inspect_response(ctx, operation, exchange)
                if progress is not None and client.sent % 10 == 0:
                    progress(*step[0], client.sent)

            ctx.on_exchange = on_exchange
            await _preflight(client)
            for recipe in options.logins:
                options.identities.append(await _log_in(client, recipe))
            for identity in options.identities:
                identity.admin = identity.admin or identity.name in options.admins
            selected = [
                (n, label, check) for n, label, check in CHECKS if n == "baseline" or ctx.enabled(n)
            ]
            for index, (_name, label, check) in enumerate(selected):
                step[0] = (label, index, len(selected))
                if progress is not None:
                    progress(label, index, len(selected), client.sent)
                try:
                    await check(ctx)
                except BudgetExhausted:
                    message = (
                        f"request budget ({options.budget}) spent during '{label}': "
                        "later checks did not run; raise --budget for a complete scan"
                    )
                    errors.append(TargetError(options.target, message))
                    break
                except TargetUnreachable as exc:
                    message = f"the target stopped answering during '{label}' ({exc})"
                    errors.append(TargetError(options.target, message + "; scan incomplete"))
                    break
            if progress is not None:
                progress("done", len(selected), len(selected), client.sent)
            report = Report(
                tool="dijk scan",
                version=__version__,
                rules=list(RULES),
                findings=list(ctx.findings.values()),
                targets=[options.target],
                errors=errors,
                elapsed_s=round(time.monotonic() - started, 2),
            )
            return ScanResult(report, client.sent, ctx.notes)
    finally:
        await canary.stop()


class SetupFailed(Exception):
    """The scan cannot start as asked: a ``--login`` recipe yielded no token, or the canary
    cannot listen; the message says why."""


async def _log_in(client: ScanClient, recipe: LoginRecipe) -> Identity:
    answer = await client.send(
        "POST", recipe.path, body=orjson.dumps(recipe.body), identity=recipe.name, purpose="login"
    )
    token = token_from(answer.json) if answer.ok else None
    if token is None:
        why = f"answered {answer.status}" if not answer.ok else "answered without a token field"
        raise SetupFailed(f"--login {recipe.name}: POST {recipe.path} {why}")
    client.secrets = (*client.secrets, token)
    return parse_identity(f"{recipe.name}=Authorization:Bearer {token}")


async def _preflight(client: ScanClient) -> None:
    """One plain request, so that an unreachable target fails at once and clearly."""
    try:
        await client.send("GET", "/", purpose="preflight")
    except TargetUnreachable as exc:
        raise TargetUnreachable(f"cannot reach {client.target}: {exc}") from None
