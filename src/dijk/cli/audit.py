"""``dijk audit``: verify, query and export the activity log.

Exit codes: 0 success (``verify``: the log is intact); 1 otherwise: ``verify`` found
tampering, or any command could not run (bad URL, missing database or key). ``verify``
exits 1 when it cannot run because a gate in a pipeline must never read "could not check"
as "intact"; its message then starts ``error: cannot verify:`` instead of naming a record.
Wrong options are usage errors (exit 2, from the option parser). Errors are one line on
stderr, never a traceback.

The key: ``--key-file``, ``$DIJK_AUDIT_KEY_FILE`` or ``$DIJK_AUDIT_KEY``; for a SQLite
database without any of them, ``audit.key`` beside the database (where ``dijk demo`` and a
default ``dijk serve`` create it) is used, and the command says so.
"""

from __future__ import annotations

import asyncio
import os
import socket
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import IO, Annotated, Any, Final, TypeVar

import orjson
import typer

from dijk.audit.chain import ChainedRecord, Checkpoint, PruneRefusedError, verify_store
from dijk.audit.export import export_lines, record_json
from dijk.audit.keys import (
    KEY_ENV,
    KEY_FILE_ENV,
    AuditKeyError,
    AuditKeys,
    generate_key_file,
    load_public_key,
)
from dijk.audit.store import (
    AuditQuery,
    AuditStore,
    AuditStoreError,
    open_store,
    parse_store_url,
    prune,
)
from dijk.audit.store import parse_time as parse_store_time

__all__ = ["audit_app"]

audit_app = typer.Typer(
    help="Tamper-evident activity log: verify, query, export.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
checkpoint_app = typer.Typer(
    help="Signed checkpoints of the hash chain.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
audit_app.add_typer(checkpoint_app, name="checkpoint")

_T = TypeVar("_T")
_SHOWN_PROBLEMS: Final = 10


class OutputFormat(StrEnum):
    table = "table"
    json = "json"


class ExportFormatChoice(StrEnum):
    ecs = "ecs"
    cef = "cef"
    syslog = "syslog"
    splunk_hec = "splunk-hec"
    elastic_bulk = "elastic-bulk"
    otlp_json = "otlp-json"


class CommandError(Exception):
    """A problem to report on one line with exit code 1."""


DbOption = Annotated[
    str,
    typer.Option(
        "--db",
        envvar="DIJK_AUDIT_DB",
        help="Audit database URL: sqlite:///path.db or postgresql://user@host:port/db"
        " (?table=name for another table).",
    ),
]
KeyFileOption = Annotated[
    Path | None,
    typer.Option(
        "--key-file",
        help="File with the audit secret (mode 0600). Default: $DIJK_AUDIT_KEY_FILE,"
        " else the secret itself in $DIJK_AUDIT_KEY.",
    ),
]
SinceOption = Annotated[
    str | None,
    typer.Option(help="From this time: ISO 8601 (UTC unless a zone is given) or 15m, 2h, 7d ago."),
]
UntilOption = Annotated[str | None, typer.Option(help="Before this time (same forms as --since).")]


def parse_time(text: str, now: datetime | None = None) -> datetime:
    """ISO 8601 date/time (naive means UTC) or a relative ``<n><s|m|h|d|w>`` ago."""
    try:
        return parse_store_time(text, now)
    except ValueError as exc:
        raise CommandError(str(exc)) from None


def _run(work: Callable[[], Awaitable[_T]], prefix: str = "error: ") -> _T:
    """Run a command body; turn every failure into one line on stderr and exit code 1."""
    try:
        return asyncio.run(_call(work))
    except typer.Exit:
        raise
    except (CommandError, AuditStoreError, AuditKeyError, PruneRefusedError) as exc:
        typer.echo(f"{prefix}{exc}", err=True)
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
    except BrokenPipeError:  # e.g. `dijk audit export ... | head`: the reader has enough
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        raise typer.Exit(0) from None
    except Exception as exc:  # never a traceback for the user
        typer.echo(f"{prefix}{type(exc).__name__}: {exc}", err=True)
    raise typer.Exit(1)


async def _call(work: Callable[[], Awaitable[_T]]) -> _T:
    return await work()


@contextmanager
def _output(path: Path | None) -> Iterator[IO[str]]:
    if path is None:
        yield sys.stdout
        return
    try:
        handle = path.open("w", encoding="utf-8")
    except OSError as exc:
        raise CommandError(f"cannot write {path}: {exc.strerror}") from None
    with handle:
        yield handle


def _keys(key_file: Path | None, db: str | None = None) -> AuditKeys:
    """Keys from the options or environment; else ``audit.key`` beside a SQLite database."""
    if (
        key_file is None
        and db is not None
        and not (os.environ.get(KEY_FILE_ENV) or os.environ.get(KEY_ENV))
    ):
        beside = _key_beside(db)
        if beside is not None:
            typer.echo(f"using key {beside}", err=True)
            return AuditKeys.load(beside)
    return AuditKeys.load(key_file)


def _key_beside(db: str) -> Path | None:
    try:
        parsed = parse_store_url(db)
    except AuditStoreError:
        return None
    if parsed.scheme != "sqlite" or parsed.target == ":memory:":
        return None
    candidate = Path(parsed.target).parent / "audit.key"
    return candidate if candidate.is_file() else None


def _load_checkpoints(paths: list[Path]) -> list[Checkpoint]:
    found: list[Checkpoint] = []
    for path in paths:
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except OSError as exc:
            raise CommandError(f"cannot read checkpoint file {path}: {exc.strerror}") from None
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                found.append(Checkpoint.from_json(orjson.loads(line)))
            except (orjson.JSONDecodeError, ValueError) as exc:
                raise CommandError(f"{path}:{number}: not a checkpoint: {exc}") from None
    return found


async def _records(store: AuditStore, query: AuditQuery) -> AsyncIterator[ChainedRecord]:
    """All records matching ``query``, page by page."""
    cursor = query.cursor
    while True:
        page = await store.query(
            AuditQuery(
                since=query.since,
                until=query.until,
                consumer=query.consumer,
                status=query.status,
                reason=query.reason,
                decision=query.decision,
                chain=query.chain,
                limit=query.limit,
                cursor=cursor,
                newest_first=query.newest_first,
            )
        )
        for row in page.records:
            yield row
        if page.next_cursor is None:
            return
        cursor = page.next_cursor


@audit_app.command()
def verify(
    db: DbOption,
    key_file: KeyFileOption = None,
    checkpoint: Annotated[
        list[Path] | None,
        typer.Option(
            "--checkpoint",
            help="Exported checkpoint file (JSON lines) kept elsewhere; catches a cut tail"
            " or rewritten chain even when the database's own checkpoints were changed.",
        ),
    ] = None,
    public_key: Annotated[
        str | None,
        typer.Option(help="Trusted checkpoint public key (hex); default: derived from the key."),
    ] = None,
    output: Annotated[OutputFormat, typer.Option("--format", help="table or json.")] = (
        OutputFormat.table
    ),
) -> None:
    """Check the hash chain: exit 0 if intact, 1 naming the first bad record and its kind."""

    async def work() -> bool:
        keys = _keys(key_file, db)
        trusted = load_public_key(public_key) if public_key else None
        extra = _load_checkpoints(checkpoint or [])
        async with open_store(db) as store:
            report = await verify_store(store, keys, trusted, extra)
        if output is OutputFormat.json:
            typer.echo(orjson.dumps(_report_json(report.intact, report.chains)).decode())
            return report.intact
        for chain in report.chains:
            span = f"seq {chain.first_seq}..{chain.last_seq}" if chain.records else "no records"
            state = "intact" if chain.intact else "TAMPERED"
            typer.echo(
                f"chain {chain.chain!r}: {state}: {chain.records} records ({span}),"
                f" {chain.checkpoints} signed checkpoints"
            )
            for item in chain.problems[:_SHOWN_PROBLEMS]:
                typer.echo(f"  seq {item.seq}: {item.kind}: {item.detail}")
        if not report.chains:
            typer.echo("no records and no checkpoints: nothing to verify")
        if report.intact:
            typer.echo(f"audit log intact: {report.records} records verified")
        else:
            firsts = [
                (chain.first_problem.seq, chain.chain, chain.first_problem.kind)
                for chain in report.chains
                if chain.first_problem is not None
            ]
            seq, name, kind = min(firsts)
            typer.echo(f"audit log TAMPERED: chain {name!r} first bad seq {seq}: {kind}")
        return report.intact

    intact = _run(work, prefix="error: cannot verify: ")
    raise typer.Exit(0 if intact else 1)


def _report_json(intact: bool, chains: list[Any]) -> dict[str, Any]:
    return {
        "intact": intact,
        "chains": [
            {
                "chain": chain.chain,
                "records": chain.records,
                "first_seq": chain.first_seq,
                "last_seq": chain.last_seq,
                "checkpoints": chain.checkpoints,
                "problems": [
                    {"seq": problem.seq, "kind": problem.kind, "detail": problem.detail}
                    for problem in chain.problems
                ],
            }
            for chain in chains
        ],
    }


def _query_from(
    since: str | None,
    until: str | None,
    consumer: str | None = None,
    status: str | None = None,
    reason: str | None = None,
    limit: int = 5000,
    cursor: str | None = None,
) -> AuditQuery:
    query = AuditQuery(
        since=parse_time(since) if since else None,
        until=parse_time(until) if until else None,
        consumer=consumer,
        status=status,
        reason=reason,
        limit=limit,
        cursor=cursor,
    )
    try:
        query.status_range()
    except ValueError as exc:
        raise CommandError(str(exc)) from None
    return query


@audit_app.command()
def query(
    db: DbOption,
    since: SinceOption = None,
    until: UntilOption = None,
    consumer: Annotated[str | None, typer.Option(help="Only this consumer.")] = None,
    status: Annotated[str | None, typer.Option(help="Status code (404) or class (4xx).")] = None,
    reason: Annotated[
        str | None, typer.Option(help="Reason code (waf.sqli) or prefix (waf.*).")
    ] = None,
    limit: Annotated[int, typer.Option(help="Records per page.", min=1, max=10_000)] = 100,
    cursor: Annotated[str | None, typer.Option(help="Continue after a previous page.")] = None,
    output: Annotated[OutputFormat, typer.Option("--format", help="table or json lines.")] = (
        OutputFormat.table
    ),
) -> None:
    """Show records, oldest first, one page at a time."""

    async def work() -> None:
        filters = _query_from(since, until, consumer, status, reason, limit, cursor)
        async with open_store(db) as store:
            try:
                page = await store.query(filters)
            except ValueError as exc:
                raise CommandError(str(exc)) from None
        if output is OutputFormat.json:
            for row in page.records:
                typer.echo(orjson.dumps(record_json(row)).decode())
        else:
            _print_table(page.records)
        if page.next_cursor:
            typer.echo(f"more records: add --cursor {page.next_cursor}", err=True)

    _run(work)


def _print_table(rows: list[ChainedRecord]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(box=None, pad_edge=False)
    for heading in (
        "time",
        "chain:seq",
        "request id",
        "method",
        "path",
        "status",
        "decision",
        "reason",
        "consumer",
    ):
        table.add_column(heading, overflow="fold")
    for row in rows:
        record = row.record
        table.add_row(
            record.time.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            f"{row.chain}:{row.seq}",
            record.request_id,
            record.method,
            record.path_template or record.route or "",
            str(record.status),
            record.decision,
            record.reason or "",
            record.consumer or "",
        )
    Console(soft_wrap=False, width=200, markup=False, highlight=False).print(table)
    typer.echo(f"{len(rows)} records")


@audit_app.command()
def export(
    db: DbOption,
    export_format: Annotated[
        ExportFormatChoice, typer.Option("--format", help="SIEM format.", case_sensitive=False)
    ],
    since: SinceOption = None,
    until: UntilOption = None,
    output_file: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write here instead of stdout.")
    ] = None,
    hostname: Annotated[
        str | None, typer.Option(help="Host name in syslog/HEC output; default: this host.")
    ] = None,
) -> None:
    """Write records of a time range in a SIEM format, one event per line."""

    async def work() -> None:
        filters = _query_from(since, until)
        host = hostname or socket.gethostname()
        count = 0
        async with open_store(db) as store:
            with _output(output_file) as handle:
                batch: list[ChainedRecord] = []
                async for row in _records(store, filters):
                    batch.append(row)
                    count += 1
                    if len(batch) >= 5000:
                        _write_lines(handle, batch, export_format.value, host)
                        batch = []
                _write_lines(handle, batch, export_format.value, host)
        typer.echo(f"exported {count} records as {export_format.value}", err=True)

    _run(work)


def _write_lines(handle: IO[str], rows: list[ChainedRecord], fmt: str, host: str) -> None:
    if rows:
        handle.writelines(line + "\n" for line in export_lines(rows, fmt, hostname=host))


@audit_app.command("prune")
def prune_command(
    db: DbOption,
    older_than: Annotated[
        str, typer.Option(help="Delete records older than this: 90d, 12w, or an ISO time.")
    ],
    key_file: KeyFileOption = None,
) -> None:
    """Apply retention: delete old records, anchoring the cut with a signed checkpoint."""

    async def work() -> None:
        keys = _keys(key_file, db)
        cutoff = parse_time(older_than)
        async with open_store(db) as store:
            deleted = await prune(store, keys, cutoff)
        for chain, count in sorted(deleted.items()):
            typer.echo(f"chain {chain!r}: {count} records deleted")

    _run(work)


@audit_app.command()
def keygen(
    key_file: Annotated[Path, typer.Option("--key-file", help="Where to create the key (0600).")],
) -> None:
    """Create a new audit secret and print the checkpoint public key."""

    async def work() -> None:
        generate_key_file(key_file)
        keys = AuditKeys.load(key_file)
        typer.echo(f"created {key_file} (mode 0600); keep it secret and backed up")
        typer.echo(f"checkpoint public key: {keys.public_key_hex}")

    _run(work)


@checkpoint_app.command("export")
def checkpoint_export(
    db: DbOption,
    output_file: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write here instead of stdout.")
    ] = None,
    key_file: KeyFileOption = None,
) -> None:
    """Write the signed checkpoints as JSON lines, to keep them safe elsewhere.

    With a key (``--key-file`` or the environment) each line also carries the public key.
    """

    async def work() -> None:
        public_hex: str | None = None
        try:
            public_hex = _keys(key_file, db).public_key_hex
        except AuditKeyError:
            if key_file is not None:
                raise
        async with open_store(db) as store:
            checkpoints = await store.checkpoints()
        with _output(output_file) as handle:
            for item in checkpoints:
                handle.write(orjson.dumps(item.to_json(public_hex)).decode() + "\n")
        typer.echo(f"exported {len(checkpoints)} checkpoints", err=True)

    _run(work)
