"""``dijk discover openapi`` and ``dijk discover diff``: the API inventory, as a document
and against the declared one.

The inventory comes from the gateway's database (``--db``, its ``audit.url``) or from
traffic files learnt on the spot (``--har``, ``--access-log``, ``--audit-log``), so a team
can discover before deploying Dijk. Exit codes: 0 success; 1 ``diff`` found something at
or above ``--fail-on``; 2 the command could not run (one line on stderr, no traceback).
"""

from __future__ import annotations

import asyncio
import sys
import time
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import orjson
import typer
import yaml

from dijk import __version__
from dijk.cli.privacy import OutputOption, _write

__all__ = ["discover_app"]

discover_app = typer.Typer(
    help="API discovery: the endpoints traffic shows, as OpenAPI, and shadow/zombie/drift.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


class DocumentFormat(StrEnum):
    yaml = "yaml"
    json = "json"


class DiffFormat(StrEnum):
    text = "text"
    json = "json"
    sarif = "sarif"


DbOption = Annotated[
    str | None,
    typer.Option(
        "--db",
        envvar="DIJK_AUDIT_DB",
        help="Audit database URL (the gateway's audit.url): sqlite:///path.db or"
        " postgresql://user@host:port/db.",
    ),
]
HarOption = Annotated[
    list[Path] | None, typer.Option("--har", help="HAR file to learn from (repeatable).")
]
AccessLogOption = Annotated[
    list[Path] | None,
    typer.Option("--access-log", help="nginx/Apache combined access log (repeatable)."),
]
AuditLogOption = Annotated[
    list[Path] | None,
    typer.Option(
        "--audit-log", help="Dijk audit records as JSON lines (dijk audit query --format json)."
    ),
]
PrefixOption = Annotated[
    str, typer.Option("--table-prefix", help="Prefix of the inventory tables.")
]
UnroutedOption = Annotated[
    bool,
    typer.Option(
        "--include-unrouted", help="Also requests that matched no gateway route (404 probes)."
    ),
]


class CommandError(Exception):
    """A problem to report on one line with exit code 2."""


def _inventory(
    db: str | None,
    har: list[Path] | None,
    access_log: list[Path] | None,
    audit_log: list[Path] | None,
    prefix: str,
) -> list[dict[str, object]]:
    from dijk.discovery.db import DiscoveryDatabaseError
    from dijk.discovery.importers import ImportError_
    from dijk.discovery.report import TrafficFiles, learn_files, load_inventory

    files = TrafficFiles(har or (), access_log or (), audit_log or ())
    if (db is None) == files.empty:
        raise CommandError(
            "give either --db URL or traffic files (--har, --access-log, --audit-log)"
        )
    try:
        if db is not None:
            endpoints, _ = asyncio.run(load_inventory(db, prefix))
            return endpoints
        return learn_files(files)
    except (DiscoveryDatabaseError, ImportError_) as exc:
        raise CommandError(str(exc)) from None
    except OSError as exc:
        name = f"{exc.filename}: " if exc.filename else ""
        raise CommandError(f"{name}{exc.strerror or exc}") from None


def _fail(message: str) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(2)


def render_document(document: dict[str, object], fmt: str) -> str:
    if fmt == "json":
        return orjson.dumps(document, option=orjson.OPT_INDENT_2).decode() + "\n"
    return yaml.safe_dump(document, sort_keys=False, allow_unicode=True, width=100)


@discover_app.command("openapi")
def openapi(
    db: DbOption = None,
    har: HarOption = None,
    access_log: AccessLogOption = None,
    audit_log: AuditLogOption = None,
    fmt: Annotated[
        DocumentFormat, typer.Option("--format", "-f", help="yaml or json.")
    ] = DocumentFormat.yaml,
    title: Annotated[str, typer.Option(help="info.title of the document.")] = "Discovered API",
    include_unrouted: UnroutedOption = False,
    table_prefix: PrefixOption = "dijk_",
    output: OutputOption = None,
) -> None:
    """Write an OpenAPI 3.1 draft of the endpoints the traffic shows."""
    from dijk.discovery.openapi import build_document

    try:
        endpoints = _inventory(db, har, access_log, audit_log, table_prefix)
    except CommandError as exc:
        raise _fail(str(exc)) from None
    document = build_document(endpoints, title=title, include_unrouted=include_unrouted)
    _write(render_document(document, fmt.value), output)
    typer.echo(f"{len(document['paths'])} paths from {len(endpoints)} endpoints", err=True)


@discover_app.command("diff")
def diff(
    spec: Annotated[
        list[str], typer.Option("--spec", help="Declared OpenAPI document (repeatable).")
    ],
    db: DbOption = None,
    har: HarOption = None,
    access_log: AccessLogOption = None,
    audit_log: AuditLogOption = None,
    fmt: Annotated[
        DiffFormat, typer.Option("--format", "-f", help="text, json or sarif.")
    ] = DiffFormat.text,
    unused_days: Annotated[
        int,
        typer.Option(
            "--unused-days",
            min=1,
            max=3650,
            help="Declared operations not called for this long are zombies (said only when"
            " the inventory reaches back that far).",
        ),
    ] = 30,
    base_path: Annotated[
        str | None, typer.Option(help="Path prefix the document's paths are served under.")
    ] = None,
    fail_on: Annotated[
        str | None,
        typer.Option(help="Exit 1 when a finding is at least this severe (high|medium|low|info)."),
    ] = None,
    table_prefix: PrefixOption = "dijk_",
    output: OutputOption = None,
) -> None:
    """List shadow endpoints (seen, not declared), zombies and drift against --spec."""
    from dijk.discovery.report import diff_documents, load_documents
    from dijk.openapi.errors import SpecError
    from dijk.reporting import fails, parse_severity, render

    try:
        threshold = parse_severity(fail_on) if fail_on is not None else None
        endpoints = _inventory(db, har, access_log, audit_log, table_prefix)
        documents = load_documents(spec)
    except (CommandError, ValueError) as exc:
        raise _fail(str(exc)) from None
    except SpecError as exc:
        raise _fail(f"cannot read the document:\n{exc}") from None
    except OSError as exc:
        raise _fail(f"{exc.filename or ''}: {exc.strerror or exc}") from None
    report = diff_documents(
        documents,
        endpoints,
        now_us=time.time_ns() // 1000,
        unused_days=unused_days,
        base_path=base_path,
        version=__version__,
    )
    text = render(
        report, fmt.value, colour=output is None and fmt is DiffFormat.text and sys.stdout.isatty()
    )
    _write(text if text.endswith("\n") else text + "\n", output)
    if fails(report.findings, threshold):
        raise typer.Exit(1)
