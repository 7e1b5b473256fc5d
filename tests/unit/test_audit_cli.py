"""``dijk audit``: exit codes and messages as a user sees them (SQLite, real files)."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Iterator
from contextlib import closing, contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest
from typer.testing import CliRunner

from dijk.audit.keys import AuditKeys
from dijk.audit.record import AuditRecord, Finding
from dijk.audit.store import open_store
from dijk.audit.writer import AuditWriter
from dijk.cli.audit import audit_app

SECRET = "cli-test-secret-0123456789-abcdefghij"
RUNNER = CliRunner()


@contextmanager
def shell(path: Path) -> Iterator[sqlite3.Connection]:
    """Like the sqlite3 shell: statements committed, connection closed afterwards."""
    with closing(sqlite3.connect(path)) as connection, connection:
        yield connection


def write_log(path: Path, count: int = 30) -> str:
    url = f"sqlite:///{path}"
    keys = AuditKeys.from_secret(SECRET.encode())
    start = datetime.now(UTC) - timedelta(hours=1)

    async def main() -> None:
        store = open_store(url, create=True)
        async with AuditWriter(
            store, keys, spool_path=path.with_suffix(".spool"), checkpoint_every_records=10
        ) as writer:
            for number in range(1, count + 1):
                denied = number % 5 == 0
                await writer.append(
                    AuditRecord(
                        time=start + timedelta(seconds=number),
                        request_id=f"req-{number}",
                        method="GET",
                        status=403 if denied else 200,
                        decision="deny" if denied else "allow",
                        reason="waf.sqli" if denied else None,
                        consumer="alice" if number % 2 else "bob",
                        path_template="/api/v1/accounts/{id}",
                        findings=(Finding("942100", "$.q"),) if denied else (),
                    )
                )
                if number % 10 == 0:
                    await writer.flush()

    asyncio.run(main())
    return url


def run(*args: str, key: str | None = SECRET) -> tuple[int, str, str]:
    env = {"DIJK_AUDIT_KEY": key or "", "DIJK_AUDIT_KEY_FILE": ""}
    result = RUNNER.invoke(audit_app, list(args), env=env)
    return result.exit_code, result.stdout, result.stderr


def test_verify_exits_0_for_an_intact_log(tmp_path: Path) -> None:
    url = write_log(tmp_path / "audit.db")
    code, out, _ = run("verify", "--db", url)
    assert code == 0, out
    assert "audit log intact: 30 records" in out


def test_verify_exits_1_naming_the_changed_record(tmp_path: Path) -> None:
    url = write_log(tmp_path / "audit.db")
    with shell(tmp_path / "audit.db") as connection:
        connection.execute("UPDATE dijk_audit SET status = 200 WHERE seq = 15")
    code, out, _ = run("verify", "--db", url)
    assert code == 1
    assert "first bad seq 15: modified" in out


def test_verify_exits_1_for_a_deleted_record(tmp_path: Path) -> None:
    url = write_log(tmp_path / "audit.db")
    with shell(tmp_path / "audit.db") as connection:
        connection.execute("DELETE FROM dijk_audit WHERE seq = 4")
    code, out, _ = run("verify", "--db", url, "--format", "json")
    assert code == 1
    report = orjson.loads(out)
    assert report["intact"] is False
    assert report["chains"][0]["problems"][0] == {
        "seq": 4,
        "kind": "deleted",
        "detail": "seq 4..4 missing",
    }


def test_verify_with_an_exported_checkpoint_catches_a_cut_tail(tmp_path: Path) -> None:
    url = write_log(tmp_path / "audit.db")
    exported = tmp_path / "checkpoints.jsonl"
    code, _, _ = run("checkpoint", "export", "--db", url, "--output", str(exported))
    assert code == 0
    lines = exported.read_text().splitlines()
    assert len(lines) == 3
    assert "public_key" in orjson.loads(lines[0])
    with shell(tmp_path / "audit.db") as connection:
        connection.execute("DELETE FROM dijk_audit WHERE seq > 25")
        connection.execute("DELETE FROM dijk_audit_checkpoint")
    code, out, _ = run("verify", "--db", url, "--checkpoint", str(exported))
    assert code == 1
    assert "first bad seq 26: truncated" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["verify", "--db", "sqlite:///{dir}/missing.db"], "no audit database at"),
        (["verify", "--db", "mysql://host/db"], "unsupported audit URL"),
        (["verify", "--db", "sqlite:///{dir}/audit.db?table=Bad-Name"], "bad table name"),
        (["verify", "--db", "sqlite:///{dir}/audit.db?table=other"], "no audit table 'other'"),
        (["verify", "--db", "sqlite:///{dir}/garbage.db"], "not a usable SQLite database"),
        (["query", "--db", "sqlite:///{dir}/audit.db", "--since", "yesterday"], "cannot read time"),
        (["query", "--db", "sqlite:///{dir}/audit.db", "--status", "4x"], "status filter"),
        (["query", "--db", "sqlite:///{dir}/audit.db", "--cursor", "@@"], "cursor"),
    ],
)
def test_bad_input_is_one_clear_line_and_exit_1(
    tmp_path: Path, args: list[str], message: str
) -> None:
    write_log(tmp_path / "audit.db", count=3)
    (tmp_path / "garbage.db").write_bytes(b"this is not sqlite" * 100)
    code, out, err = run(*(arg.replace("{dir}", str(tmp_path)) for arg in args))
    assert code == 1, out + err
    assert message in err
    if args[0] == "verify":  # never mistaken for a verdict on the log
        assert err.startswith("error: cannot verify: ")
        assert "intact" not in out
    assert "Traceback" not in out + err
    assert len(err.strip().splitlines()) == 1


def test_verify_without_a_key_says_how_to_give_one(tmp_path: Path) -> None:
    url = write_log(tmp_path / "audit.db", count=3)
    code, _, err = run("verify", "--db", url, key=None)
    assert code == 1
    assert "DIJK_AUDIT_KEY" in err


def test_verify_finds_the_key_beside_a_sqlite_database(tmp_path: Path) -> None:
    """Where `dijk demo` and a default `dijk serve` keep it: `verify --db` alone works."""
    url = write_log(tmp_path / "audit.db", count=3)
    key_file = tmp_path / "audit.key"
    key_file.write_text(SECRET + "\n")
    key_file.chmod(0o600)
    code, out, err = run("verify", "--db", url, key=None)
    assert code == 0, out + err
    assert f"using key {key_file}" in err
    assert "audit log intact: 3 records" in out


def test_query_filters_and_prints_json_lines(tmp_path: Path) -> None:
    url = write_log(tmp_path / "audit.db")
    code, out, _ = run(
        "query", "--db", url, "--status", "4xx", "--consumer", "alice", "--format", "json"
    )
    assert code == 0
    rows = [orjson.loads(line) for line in out.splitlines()]
    assert [row["request_id"] for row in rows] == ["req-5", "req-15", "req-25"]
    assert all(row["reason"] == "waf.sqli" for row in rows)


def test_query_pages_with_a_cursor(tmp_path: Path) -> None:
    url = write_log(tmp_path / "audit.db")
    code, out, err = run("query", "--db", url, "--limit", "20", "--format", "json")
    assert code == 0
    assert len(out.splitlines()) == 20
    cursor = err.split("--cursor ")[1].strip()
    code, out, err = run("query", "--db", url, "--cursor", cursor, "--format", "json")
    assert [orjson.loads(line)["seq"] for line in out.splitlines()] == list(range(21, 31))
    assert "--cursor" not in err


def test_query_table_shows_records(tmp_path: Path) -> None:
    url = write_log(tmp_path / "audit.db", count=10)
    code, out, _ = run("query", "--db", url, "--reason", "waf.*")
    assert code == 0
    assert "2 records" in out
    assert "req-10" in out


@pytest.mark.parametrize("export_format", ["ecs", "cef", "syslog", "splunk-hec", "otlp-json"])
def test_export_writes_one_event_per_record(tmp_path: Path, export_format: str) -> None:
    url = write_log(tmp_path / "audit.db")
    code, out, err = run("export", "--db", url, "--format", export_format, "--since", "2h")
    assert code == 0, err
    lines = out.splitlines()
    assert len(lines) == (1 if export_format == "otlp-json" else 30)
    assert "exported 30 records" in err


def test_export_of_an_empty_range_writes_nothing(tmp_path: Path) -> None:
    url = write_log(tmp_path / "audit.db", count=3)
    code, out, _ = run("export", "--db", url, "--format", "ecs", "--until", "2000-01-01")
    assert code == 0
    assert out == ""


def test_prune_keeps_the_log_verifiable(tmp_path: Path) -> None:
    url = write_log(tmp_path / "audit.db")
    with shell(tmp_path / "audit.db") as connection:
        connection.execute(
            "UPDATE dijk_audit SET time_us = time_us - 86400000000 * 100 WHERE seq <= 12"
        )
    # Changing times breaks the chain: pruning must refuse to sign over it.
    code, _, err = run("prune", "--db", url, "--older-than", "90d")
    assert code == 1
    assert "refusing to prune" in err


def test_keygen_creates_a_private_key_file(tmp_path: Path) -> None:
    path = tmp_path / "audit.key"
    code, out, _ = run("keygen", "--key-file", str(path), key=None)
    assert code == 0
    assert "checkpoint public key:" in out
    assert path.stat().st_mode & 0o777 == 0o600
