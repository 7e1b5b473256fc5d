"""``dijk privacy report`` and ``dijk breach report``.

Both read the privacy tables the gateway keeps in its audit database (``--db``, the
``audit.url``). Exit codes: 0 success; 2 the command could not run (bad URL, no data map,
bad arguments, missing key). Errors are one line on stderr, never a traceback.
"""

from __future__ import annotations

import asyncio
import re
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Final, TypeVar

import typer

from dijk.privacy.db import PrivacyDatabaseError, open_privacy_db

__all__ = ["breach_app", "privacy_app"]

privacy_app = typer.Typer(
    help="Personal data in API traffic: the Art. 30 register and data-minimisation findings.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
breach_app = typer.Typer(
    help="Personal data breaches: what was exposed, to whom, and the 72-hour deadline.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)

_T = TypeVar("_T")
_RELATIVE: Final = re.compile(r"(\d+)([smhdw])")
_UNITS: Final = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


class CommandError(Exception):
    """A problem to report on one line with exit code 2."""


class RegisterFormat(StrEnum):
    json = "json"
    markdown = "markdown"
    csv = "csv"
    html = "html"
    pdf = "pdf"


class BreachFormat(StrEnum):
    markdown = "markdown"
    json = "json"
    html = "html"
    pdf = "pdf"


DbOption = Annotated[
    str,
    typer.Option(
        "--db",
        envvar="DIJK_AUDIT_DB",
        help="Audit database URL (the gateway's audit.url): sqlite:///path.db or"
        " postgresql://user@host:port/db.",
    ),
]
PrefixOption = Annotated[
    str, typer.Option("--table-prefix", help="Prefix of the privacy tables (privacy.table_prefix).")
]
OutputOption = Annotated[
    Path | None, typer.Option("--output", "-o", help="Write to this file instead of stdout.")
]
OrganisationOption = Annotated[
    str,
    typer.Option(
        "--organisation",
        envvar="DIJK_ORGANISATION",
        help="Organisation (controller) named on html and pdf reports.",
    ),
]


def parse_time(text: str, now: datetime) -> datetime:
    """ISO 8601 (naive means UTC), ``now``, or ``<n><s|m|h|d|w>`` ago (``24h``)."""
    value = text.strip()
    if value == "now":
        return now
    relative = _RELATIVE.fullmatch(value)
    if relative:
        return now - timedelta(**{_UNITS[relative.group(2)]: int(relative.group(1))})
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise CommandError(
            f"cannot read time {text!r}: use ISO 8601 (2026-01-31T12:00:00Z), now, or 15m, 2h, 7d"
        ) from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _run(work: Callable[[], Awaitable[_T]]) -> _T:
    try:
        return asyncio.run(_call(work))
    except (CommandError, PrivacyDatabaseError, ValueError) as exc:
        typer.echo(f"error: {exc}", err=True)
    except OSError as exc:
        typer.echo(f"error: {exc.strerror or exc}", err=True)
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
    raise typer.Exit(2)


async def _call(work: Callable[[], Awaitable[_T]]) -> _T:
    return await work()


def _write(text: str | bytes, output: Path | None) -> None:
    if isinstance(text, bytes):
        if output is None:
            if sys.stdout.isatty():
                typer.echo("error: a PDF is not for a terminal: pass --output FILE", err=True)
                raise typer.Exit(2)
            sys.stdout.buffer.write(text)
            sys.stdout.flush()
        else:
            output.write_bytes(text)
        return
    if output is None:
        sys.stdout.write(text)
        sys.stdout.flush()
    else:
        output.write_text(text, encoding="utf-8")


def _document(
    kind: str, data: dict[str, Any], fmt: str, organisation: str, now: datetime
) -> str | bytes:
    """HTML or PDF of a report (``dijk.privacy.documents``)."""
    from dijk.privacy.documents import document_html, document_pdf

    if fmt == "pdf":
        try:
            return document_pdf(kind, data, organisation, now)
        except RuntimeError as exc:
            raise CommandError(str(exc)) from None
    return document_html(kind, data, organisation, now)


@privacy_app.command("report")
def privacy_report(
    db: DbOption,
    fmt: Annotated[
        RegisterFormat, typer.Option("--format", "-f", help="json, markdown, csv, html or pdf.")
    ] = RegisterFormat.markdown,
    openapi: Annotated[
        list[str] | None,
        typer.Option(
            "--openapi",
            help="OpenAPI document to check responses against (repeatable); default: the"
            " routes' openapi.spec recorded by the gateway.",
        ),
    ] = None,
    table_prefix: PrefixOption = "dijk_",
    output: OutputOption = None,
    organisation: OrganisationOption = "",
) -> None:
    """Art. 30 register per endpoint (categories, recipients, retention) and findings."""
    from dijk.privacy.report import build_register, render_register

    async def work() -> str | bytes:
        async with open_privacy_db(db, table_prefix) as database:
            await database.connect(create=False)
            register = await build_register(database, openapi or [])
        if fmt in (RegisterFormat.html, RegisterFormat.pdf):
            now = datetime.now(UTC)
            return _document("register", register.as_dict(), fmt.value, organisation, now)
        return render_register(register, fmt.value)

    _write(_run(work), output)


@breach_app.command("report")
def breach_report(
    db: DbOption,
    since: Annotated[
        str, typer.Option(help="Start of the breach window: ISO 8601, or 2h, 7d ago.")
    ],
    until: Annotated[str, typer.Option(help="End of the window (default: now).")] = "now",
    consumer: Annotated[
        str | None, typer.Option(help="Only what this consumer received (a leaked key).")
    ] = None,
    ip: Annotated[
        str | None,
        typer.Option(
            help="Only clients in this CIDR (matched by pseudonym; needs the privacy keys)."
        ),
    ] = None,
    reason: Annotated[
        str | None,
        typer.Option(help="Only requests recorded with this reason code (waf.sqli, waf.*)."),
    ] = None,
    detected: Annotated[
        str, typer.Option(help="When the breach was detected (default: now); deadline +72 h.")
    ] = "now",
    fmt: Annotated[
        BreachFormat, typer.Option("--format", "-f", help="markdown, json, html or pdf.")
    ] = BreachFormat.markdown,
    config: Annotated[
        Path | None,
        typer.Option("--config", "-c", help="Gateway configuration (privacy keys for --ip)."),
    ] = None,
    data_dir: Annotated[
        Path | None,
        typer.Option(help="Directory of the privacy keys (default: beside a SQLite --db)."),
    ] = None,
    table_prefix: PrefixOption = "dijk_",
    output: OutputOption = None,
    organisation: OrganisationOption = "",
) -> None:
    """Endpoints, categories, records and data subjects exposed; the 72-hour deadline."""
    from dijk.audit.store import parse_store_url
    from dijk.privacy.breach import BreachFilter, build_breach, render_breach

    async def work() -> str | bytes:
        now = datetime.now(UTC)
        start, end = parse_time(since, now), parse_time(until, now)
        if end <= start:
            raise CommandError("--until must be after --since")
        clients = column = None
        if ip is not None:
            column, clients = _ip_pseudonyms(ip, db, config, data_dir)
        breach = BreachFilter(
            since=start,
            until=end,
            consumer=consumer,
            reason=reason,
            ip=ip,
            clients=clients,
            client_column=column or "client",
        )
        audit_table = parse_store_url(db).table
        async with open_privacy_db(db, table_prefix) as database:
            await database.connect(create=False)
            report = await build_breach(
                database,
                breach,
                detected=parse_time(detected, now),
                now=now,
                audit_table=audit_table,
            )
        if fmt in (BreachFormat.html, BreachFormat.pdf):
            return _document("breach", report.as_dict(now), fmt.value, organisation, now)
        return render_breach(report, fmt.value, now)

    _write(_run(work), output)


def _ip_pseudonyms(
    cidr: str, db: str, config: Path | None, data_dir: Path | None
) -> tuple[str, frozenset[str]]:
    """The pseudonyms that stand for the clients of ``cidr`` (needs the pseudonym key)."""
    from dijk.crypto.keyring import CryptoError
    from dijk.privacy.keys import PSEUDONYM_KEY_FILE, load_privacy_keys
    from dijk.privacy.pseudonyms import cidr_pseudonyms
    from dijk.privacy.settings import PrivacySettings, data_dir_for

    settings = PrivacySettings()
    directory = data_dir
    if config is not None:
        from dijk.config import ConfigError, load_config

        try:
            loaded = load_config(config)
        except ConfigError as exc:
            raise CommandError(str(exc).splitlines()[0]) from None
        settings = loaded.privacy
        directory = directory or data_dir_for(settings, loaded.audit.url)
    directory = directory or data_dir_for(settings, db)
    ring_path = settings.keys.path(directory)
    key_path = directory / PSEUDONYM_KEY_FILE
    if not ring_path.exists() or not key_path.exists():
        raise CommandError(
            f"--ip needs the privacy keys ({ring_path}, {key_path}): pass --data-dir or --config"
        )
    try:
        keys = load_privacy_keys(settings, directory)
    except CryptoError as exc:
        raise CommandError(str(exc)) from None
    column, pseudonyms = cidr_pseudonyms(cidr, keys.pseudonym_key)
    return column, pseudonyms
