"""``dijk scan``: test a running API against its OpenAPI document (OWASP API Top 10).

Exit codes: 0 scan complete and nothing at or above ``--fail-on``; 1 findings at or above
``--fail-on``; 2 the scan could not run (bad arguments, unreadable document, unreachable
target) or stopped early (budget spent). Errors are one line on standard error, never a
traceback.
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated
from urllib.parse import urlsplit

import typer

if TYPE_CHECKING:
    from dijk.scan.context import ScanOptions
    from dijk.scan.engine import ScanResult
    from dijk.scan.spec import ApiSpec

__all__ = ["scan_command"]

FORMATS = ("text", "json", "sarif", "junit", "html")


def _fail(message: str) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(2)


def scan_command(
    spec: Annotated[
        str, typer.Option("--spec", help="OpenAPI document (file) describing the target.")
    ],
    target: Annotated[
        str, typer.Option("--target", help="Base URL the document's paths are relative to.")
    ],
    auth: Annotated[
        list[str] | None,
        typer.Option(
            "--auth", help="Identity NAME=HEADER:VALUE (repeat; two users or more for BOLA)."
        ),
    ] = None,
    login: Annotated[
        list[str] | None,
        typer.Option(
            "--login",
            help="Identity from a login: NAME=PATH:JSON (POSTed; the token in the answer "
            'becomes "Authorization: Bearer"). Repeat.',
        ),
    ] = None,
    admin: Annotated[
        list[str] | None,
        typer.Option(
            "--admin", help="Name of an --auth or --login identity that is an administrator."
        ),
    ] = None,
    allow_writes: Annotated[
        bool,
        typer.Option("--allow-writes", help="Also send POST/PUT/PATCH/DELETE with generated data."),
    ] = False,
    budget: Annotated[int, typer.Option(help="Most requests the scan may send.", min=10)] = 2000,
    concurrency: Annotated[
        int, typer.Option(help="Requests in flight at once.", min=1, max=64)
    ] = 4,
    rate: Annotated[
        float, typer.Option(help="Requests per second (bursts excepted); 0: unpaced.", min=0)
    ] = 50.0,
    burst: Annotated[
        int, typer.Option(help="Requests in the rate-limit burst (0: no burst).", min=0, max=500)
    ] = 25,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for one answer.", min=0.5)] = 10.0,
    checks: Annotated[
        str | None,
        typer.Option(
            help="Comma-separated checks to run (default all): auth, bola, bfla, misconfig, "
            "inventory, ssrf, injection, resources, properties, schema."
        ),
    ] = None,
    canary_address: Annotated[
        str,
        typer.Option(
            help="Address the SSRF canary listens on; the target must reach it "
            "(127.0.0.1 suits a target on this machine)."
        ),
    ] = "127.0.0.1",
    jwt_secret_env: Annotated[
        str | None,
        typer.Option(
            help="Environment variable holding the HMAC key of the identities' JWTs (a test "
            "environment's): lets the scan sign an expired token. Never pass keys as arguments."
        ),
    ] = None,
    output_format: Annotated[
        str, typer.Option("--format", help="Standard output: " + ", ".join(FORMATS) + ".")
    ] = "text",
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write the --format report here.")
    ] = None,
    sarif: Annotated[Path | None, typer.Option(help="Also write SARIF 2.1.0 here.")] = None,
    html: Annotated[Path | None, typer.Option(help="Also write the HTML report here.")] = None,
    json_file: Annotated[Path | None, typer.Option("--json", help="Also write JSON here.")] = None,
    junit: Annotated[Path | None, typer.Option(help="Also write JUnit XML here.")] = None,
    fail_on: Annotated[
        str | None,
        typer.Option("--fail-on", help="Exit 1 when a finding is at or above: high, medium, low."),
    ] = None,
    progress: Annotated[
        bool | None,
        typer.Option("--progress/--no-progress", help="Progress bar (default: on a terminal)."),
    ] = None,
) -> None:
    """Scan a running API for the OWASP API Security Top 10 (2023), driven by its document."""
    from dijk.openapi import SpecError
    from dijk.reporting import fails, parse_severity, render
    from dijk.scan.client import TargetUnreachable
    from dijk.scan.context import ScanOptions
    from dijk.scan.engine import CHECK_NAMES, SetupFailed
    from dijk.scan.identities import IdentityError, parse_identity, parse_login
    from dijk.scan.spec import load_api_spec

    if output_format not in FORMATS:
        raise _fail(f"--format {output_format!r}: use one of {', '.join(FORMATS)}")
    threshold = None
    if fail_on is not None:
        try:
            threshold = parse_severity(fail_on)
        except ValueError as exc:
            raise _fail(f"--fail-on: {exc}") from None
    try:
        parts = urlsplit(target)  # raises on a malformed IPv6 literal: http://[::1
    except ValueError:
        parts = None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        raise _fail(f"--target {target!r}: expected an http:// or https:// URL")
    try:
        identities = [parse_identity(text) for text in auth or []]
        logins = [parse_login(text) for text in login or []]
    except IdentityError as exc:
        raise _fail(str(exc)) from None
    names = [identity.name for identity in identities] + [recipe.name for recipe in logins]
    if len(set(names)) != len(names):
        raise _fail("--auth/--login: two identities have the same name")
    for name in admin or []:
        if name not in names:
            raise _fail(f"--admin {name}: no --auth or --login identity has that name")
    jwt_secret = None
    if jwt_secret_env is not None:
        jwt_secret = os.environ.get(jwt_secret_env)
        if not jwt_secret:
            raise _fail(f"--jwt-secret-env {jwt_secret_env}: that variable is not set or empty")
    selected: frozenset[str] = frozenset()
    if checks:
        selected = frozenset(part.strip() for part in checks.split(",") if part.strip())
        unknown = selected - set(CHECK_NAMES)
        if unknown:
            choices = ", ".join(CHECK_NAMES[1:])
            raise _fail(f"--checks: unknown {', '.join(sorted(unknown))}; choose from {choices}")
    try:
        api = load_api_spec(spec)
    except SpecError as exc:
        raise _fail(f"the document cannot be used:\n{exc}") from None
    except OSError as exc:
        raise _fail(f"--spec {spec}: {exc.strerror or exc}") from None
    options = ScanOptions(
        spec_path=spec,
        target=target,
        identities=identities,
        allow_writes=allow_writes,
        budget=budget,
        concurrency=concurrency,
        rate=rate,
        timeout_s=timeout,
        burst=burst,
        checks=selected,
        logins=logins,
        admins=frozenset(admin or []),
        canary_address=canary_address,
        jwt_secret=jwt_secret,
    )
    show = sys.stderr.isatty() if progress is None else progress
    try:
        result = asyncio.run(_scan_with_progress(api, options, show))
    except (TargetUnreachable, SetupFailed) as exc:
        raise _fail(str(exc)) from None
    except KeyboardInterrupt:
        raise _fail("interrupted; no report written") from None
    except Exception as exc:  # a bug of ours: one line, not a traceback, and no report
        if os.environ.get("DIJK_DEBUG"):
            raise
        raise _fail(
            f"the scan failed unexpectedly ({exc.__class__.__name__}: {exc}); "
            "rerun with DIJK_DEBUG=1 for the traceback and please report it"
        ) from None
    report = result.report
    colour = (
        output is None
        and output_format == "text"
        and sys.stdout.isatty()
        and "NO_COLOR" not in os.environ
    )
    text = render(report, output_format, colour=colour)
    if output_format == "text":
        text += f"{result.requests} requests sent.\n"
        text += "".join(f"note: {note}\n" for note in result.notes)
    if output is not None:
        _write(output, text)
    else:
        typer.echo(text, nl=False)
    for path, fmt in ((sarif, "sarif"), (html, "html"), (json_file, "json"), (junit, "junit")):
        if path is not None:
            _write(path, render(report, fmt))
    if report.errors:
        raise typer.Exit(2)
    if fails(report.findings, threshold):
        raise typer.Exit(1)


def _write(path: Path, text: str) -> None:
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise _fail(f"cannot write {path}: {exc.strerror or exc}") from None


async def _scan_with_progress(api: ApiSpec, options: ScanOptions, show: bool) -> ScanResult:
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn

    from dijk.scan.engine import run_scan

    if not show:
        return await run_scan(api, options)
    console = Console(stderr=True)
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        TextColumn("{task.fields[requests]} requests"),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    ) as bar:
        task = bar.add_task("scanning", total=1, requests=0)

        def update(label: str, done: int, total: int, sent: int) -> None:
            bar.update(task, description=label, completed=done, total=total, requests=sent)

        return await run_scan(api, options, update)
