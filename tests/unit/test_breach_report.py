"""`dijk breach report`: exposure in a window, filters, subjects and the 72-hour deadline."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from dijk.cli.main import app
from dijk.privacy.breach import BreachFilter, build_breach, render_breach
from dijk.privacy.datamap import DataMapRecorder, Observation
from dijk.privacy.db import open_privacy_db
from dijk.privacy.keys import load_privacy_keys
from dijk.privacy.pseudonyms import client_pseudonyms
from dijk.privacy.settings import PrivacySettings

START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def at(minutes: float) -> int:
    return int((START + timedelta(minutes=minutes)).timestamp() * 1_000_000)


async def populate(db: Path, key: bytes) -> None:
    recorder = DataMapRecorder(lambda: open_privacy_db(f"sqlite:///{db}"), bucket_s=60)

    def exposed(minutes: float, consumer: str, ip: str, reason: str, emails: list[str]) -> None:
        client, net = client_pseudonyms(ip, key)
        recorder.record(
            Observation(
                time_us=at(minutes),
                method="GET",
                endpoint="/api/v1/accounts",
                route="accounts",
                consumer=consumer,
                client=client,
                client_net=net,
                reason=reason,
                response={("$.accounts[*].email", "email"): len(emails)},
                subjects={"email": {f"pii:email:{email}" for email in emails}},
                exposed=True,
            )
        )

    exposed(5, "partner", "198.51.100.7", "", ["a", "b"])
    exposed(6, "partner", "198.51.100.7", "", ["b", "c"])
    exposed(7, "mobile-app", "203.0.113.9", "waf.sqli", ["d"])
    exposed(300, "partner", "198.51.100.7", "", ["z"])  # outside the window
    await recorder.close()


@pytest.fixture
async def database(tmp_path: Path) -> tuple[Path, bytes]:
    keys = load_privacy_keys(PrivacySettings(), tmp_path)
    db = tmp_path / "audit.db"
    await populate(db, keys.pseudonym_key)
    return db, keys.pseudonym_key


async def report_for(db: Path, **filters: object) -> dict[str, object]:
    breach = BreachFilter(since=START, until=START + timedelta(hours=1), **filters)  # type: ignore[arg-type]
    async with open_privacy_db(f"sqlite:///{db}") as database:
        await database.connect(create=False)
        report = await build_breach(
            database, breach, detected=START + timedelta(hours=2), now=START + timedelta(hours=3)
        )
    return report.as_dict()


async def test_the_window_counts_records_subjects_and_consumers(
    database: tuple[Path, bytes],
) -> None:
    data = await report_for(database[0])
    totals = data["totals"]
    assert isinstance(totals, dict)
    assert totals["records"] == 3
    assert totals["distinct_subjects_by_category"] == {"email": 4}
    assert totals["data_subjects_estimate"] == 4
    assert totals["consumers"] == {"mobile-app": 1, "partner": 2}
    assert data["clients"] == {"distinct": 2, "networks": 2}


async def test_the_deadline_is_72_hours_after_detection(database: tuple[Path, bytes]) -> None:
    data = await report_for(database[0])
    detection = data["detection"]
    assert isinstance(detection, dict)
    assert detection["detected_at"] == "2026-03-02T11:00:00Z"
    assert detection["notification_deadline"] == "2026-03-05T11:00:00Z"
    assert detection["hours_left"] == 71.0
    assert detection["overdue"] is False


async def test_filters_narrow_to_a_consumer_a_reason_or_an_address_range(
    database: tuple[Path, bytes],
) -> None:
    db, key = database
    partner = await report_for(db, consumer="partner")
    assert partner["totals"]["records"] == 2  # type: ignore[index]
    assert partner["totals"]["data_subjects_estimate"] == 3  # type: ignore[index]
    sqli = await report_for(db, reason="waf.*")
    assert sqli["totals"]["consumers"] == {"mobile-app": 1}  # type: ignore[index]
    from dijk.privacy.pseudonyms import cidr_pseudonyms

    column, clients = cidr_pseudonyms("198.51.100.0/24", key)
    by_range = await report_for(db, ip="198.51.100.0/24", clients=clients, client_column=column)
    assert by_range["totals"]["consumers"] == {"partner": 2}  # type: ignore[index]
    column, clients = cidr_pseudonyms("198.50.0.0/15", key)  # wider: matched by network
    assert column == "client_net"
    wide = await report_for(db, ip="198.50.0.0/15", clients=clients, client_column=column)
    assert wide["totals"]["data_subjects_estimate"] == 3  # type: ignore[index]


async def test_notification_fields_and_prompts(database: tuple[Path, bytes]) -> None:
    data = await report_for(database[0])
    notification = data["notification"]
    assert isinstance(notification, dict)
    assert notification["approximate_number_of_data_subjects"] == 4
    assert notification["approximate_number_of_records"] == 3
    assert notification["categories_of_personal_data"] == ["email"]
    assert notification["likely_consequences"]["prompt"].startswith("FILL IN")
    assert notification["measures_taken_or_proposed"]["prompt"].startswith("FILL IN")
    assert "3 responses" in notification["nature_of_breach"]["summary"]


async def test_markdown_shows_the_deadline_and_overdue_reports_say_so(
    database: tuple[Path, bytes],
) -> None:
    breach = BreachFilter(since=START, until=START + timedelta(hours=1))
    async with open_privacy_db(f"sqlite:///{database[0]}") as db:
        await db.connect(create=False)
        report = await build_breach(db, breach, detected=START, now=START + timedelta(hours=80))
    text = render_breach(report, "markdown", START + timedelta(hours=80))
    assert "**2026-03-05T09:00:00Z**" in text
    assert "**OVERDUE** by 8.0 hours" in text
    assert "## Notification to the supervisory authority (Art. 33(3))" in text


def test_cli_breach_report(database: tuple[Path, bytes], tmp_path: Path) -> None:
    db, _ = database
    runner = CliRunner()
    base = ["breach", "report", "--db", f"sqlite:///{db}", "--since", "2026-03-02T09:00:00Z"]
    base += ["--until", "2026-03-02T10:00:00Z", "--detected", "2026-03-02T12:30:00Z"]
    result = runner.invoke(app, base)
    assert result.exit_code == 0, result.output
    assert "Notification deadline" in result.output
    assert "2026-03-05T12:30:00Z" in result.output
    result = runner.invoke(app, [*base, "--format", "json", "--ip", "203.0.113.0/24"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["totals"]["consumers"] == {"mobile-app": 1}
    result = runner.invoke(app, [*base, "--ip", "10.0.0.0/24", "--data-dir", str(tmp_path / "x")])
    assert result.exit_code == 2
    assert "needs the privacy keys" in result.output
    result = runner.invoke(app, [*base[:4], "--since", "yesterday-ish"])
    assert result.exit_code == 2
    assert "cannot read time" in result.output
