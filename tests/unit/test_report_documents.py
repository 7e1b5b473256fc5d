"""`dijk breach report` and `dijk privacy report` as HTML and PDF documents."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from dijk.cli.main import app
from dijk.privacy.documents import body_html, document_html
from tests.unit.test_breach_report import database  # noqa: F401  (fixture)

BASE = ["--since", "2026-03-02T09:00:00Z", "--until", "2026-03-02T10:00:00Z"]


def test_breach_report_as_html_names_the_organisation_deadline_and_time(
    database: tuple[Path, bytes],  # noqa: F811
    tmp_path: Path,
) -> None:
    db, _ = database
    out = tmp_path / "breach.html"
    result = CliRunner().invoke(
        app,
        [
            "breach",
            "report",
            "--db",
            f"sqlite:///{db}",
            *BASE,
            "--detected",
            "2026-03-02T12:30:00Z",
            "--format",
            "html",
            "-o",
            str(out),
            "--organisation",
            "Polder <Bank> B.V.",
        ],
    )
    assert result.exit_code == 0, result.output
    html = out.read_text()
    assert html.startswith("<!DOCTYPE html>")
    assert "Polder &lt;Bank&gt; B.V." in html  # escaped, never raw markup
    assert "2026-03-05T12:30:00Z" in html  # the 72-hour deadline
    assert "generated 20" in html
    assert "GET /api/v1/accounts" in html
    assert "<script" not in html


def test_breach_report_as_pdf(database: tuple[Path, bytes], tmp_path: Path) -> None:  # noqa: F811
    pytest.importorskip("weasyprint")
    db, _ = database
    out = tmp_path / "breach.pdf"
    result = CliRunner().invoke(
        app,
        ["breach", "report", "--db", f"sqlite:///{db}", *BASE, "--format", "pdf", "-o", str(out)],
    )
    assert result.exit_code == 0, result.output
    data = out.read_bytes()
    assert data.startswith(b"%PDF-")
    assert len(data) > 2000


def test_privacy_report_as_html_and_pdf(database: tuple[Path, bytes], tmp_path: Path) -> None:  # noqa: F811
    db, _ = database
    html_out, pdf_out = tmp_path / "register.html", tmp_path / "register.pdf"
    base = ["privacy", "report", "--db", f"sqlite:///{db}", "--organisation", "Polder Bank"]
    result = CliRunner().invoke(app, [*base, "--format", "html", "-o", str(html_out)])
    assert result.exit_code == 0, result.output
    html = html_out.read_text()
    assert "Record of processing activities" in html
    assert "Polder Bank" in html
    assert "/api/v1/accounts" in html
    assert "<svg" in html  # the chart of categories
    result = CliRunner().invoke(app, [*base, "--format", "pdf", "-o", str(pdf_out)])
    assert result.exit_code == 0, result.output
    assert pdf_out.read_bytes().startswith(b"%PDF-")


def test_report_body_escapes_values_from_traffic() -> None:
    data = {
        "data_updated_at": None,
        "processing": [
            {
                "method": "GET",
                "endpoint": "/x/<img src=x onerror=alert(1)>",
                "personal_data": {"request": [], "response": ["email"]},
                "recipients": [{"consumer": "<b>c</b>", "categories": ["email"]}],
                "last_seen": None,
                "fields": [{"category": "email", "occurrences": 1, "masked": 0}],
            }
        ],
        "findings": [],
        "retention": {"note": "n"},
        "security_measures": [],
    }
    html = body_html("register", data, "Org", datetime(2026, 1, 1, tzinfo=UTC))
    assert "<img" not in html
    assert "&lt;img src=x" in html
    assert "<b>c</b>" not in html
    assert "generated 2026-01-01 00:00:00 UTC" in html
    document = document_html("register", data, "Org", datetime(2026, 1, 1, tzinfo=UTC))
    assert "<section" in document
    assert "&lt;img src=x" in document
