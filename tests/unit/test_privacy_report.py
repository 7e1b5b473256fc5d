"""`dijk privacy report`: the Art. 30 register and data-minimisation findings."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from dijk.cli.main import app
from dijk.privacy.datamap import DataMapRecorder, Observation
from dijk.privacy.db import open_privacy_db
from dijk.privacy.report import build_register, render_register

T0 = 1_790_000_000_000_000
OPENAPI = """
openapi: 3.0.3
info: {title: t, version: "1"}
paths:
  /api/v1/accounts:
    get:
      responses:
        "200":
          description: ok
          content:
            application/json:
              schema:
                type: object
                properties:
                  accounts:
                    type: array
                    items: {$ref: "#/components/schemas/Account"}
  /api/v1/accounts/{accountId}:
    get:
      responses:
        "200":
          description: ok
          content:
            application/json:
              schema: {$ref: "#/components/schemas/Account"}
components:
  schemas:
    Account:
      type: object
      properties:
        id: {type: integer}
        email: {type: string}
        extra: {type: object}
"""


async def populate(db: Path) -> None:
    recorder = DataMapRecorder(lambda: open_privacy_db(f"sqlite:///{db}"), meta={"region": "NL"})
    recorder.record(
        Observation(
            time_us=T0,
            method="GET",
            endpoint="/api/v1/accounts",
            route="accounts",
            consumer="mobile-app",
            auth_method="api_key",
            scopes=("accounts:read",),
            response={
                ("$.accounts[*].email", "email"): 2,
                ("$.accounts[*].iban", "iban"): 2,
                ("$.accounts[*].bsn", "bsn"): 2,
            },
            masked=frozenset({"iban", "bsn"}),
            unneeded=frozenset({"bsn"}),
            exposed=True,
        )
    )
    recorder.record(
        Observation(
            time_us=T0 + 1,
            method="GET",
            endpoint="/api/v1/accounts/{id}",
            route="account",
            consumer="partner",
            response={("$.email", "email"): 1, ("$.extra.phone", "phone"): 1},
            exposed=True,
        )
    )
    recorder.record(
        Observation(
            time_us=T0 + 2,
            method="POST",
            endpoint="/api/v1/login",
            route="login",
            request={("$.password", "secret"): 1, ("$.username", "email"): 1},
        )
    )
    await recorder.close()


@pytest.fixture
async def database(tmp_path: Path) -> Path:
    db = tmp_path / "audit.db"
    await populate(db)
    return db


async def test_register_maps_categories_to_endpoints_and_recipients(database: Path) -> None:
    async with open_privacy_db(f"sqlite:///{database}") as db:
        await db.connect(create=False)
        register = await build_register(db)
    data = register.as_dict()
    by_endpoint = {(item["method"], item["endpoint"]): item for item in data["processing"]}
    accounts = by_endpoint[("GET", "/api/v1/accounts")]
    assert accounts["personal_data"]["response"] == ["bsn", "email", "iban"]
    assert accounts["recipients"] == [
        {
            "consumer": "mobile-app",
            "scopes": ["accounts:read"],
            "categories": ["bsn", "email", "iban"],
        }
    ]
    assert accounts["special_or_sensitive"]
    login = by_endpoint[("POST", "/api/v1/login")]
    assert login["personal_data"] == {"request": ["email", "secret"], "response": []}
    assert data["controller"]["name"] == "FILL IN"
    assert [finding["kind"] for finding in data["findings"]] == ["unneeded_category"]
    assert data["findings"][0]["category"] == "bsn"


async def test_fields_the_contract_does_not_declare_are_findings(
    database: Path, tmp_path: Path
) -> None:
    spec = tmp_path / "openapi.yaml"
    spec.write_text(OPENAPI)
    async with open_privacy_db(f"sqlite:///{database}") as db:
        await db.connect(create=False)
        register = await build_register(db, [str(spec)])
    kinds = {(finding.kind, finding.field) for finding in register.findings}
    assert ("undeclared_field", "$.accounts[*].iban") in kinds
    assert ("undeclared_field", "$.accounts[*].bsn") in kinds
    assert ("undeclared_field", "$.accounts[*].email") not in kinds
    # a free-form object declares whatever is under it; {accountId} matches {id}
    assert ("undeclared_field", "$.extra.phone") not in kinds
    assert ("undeclared_operation", "$.username") not in kinds  # requests are not checked


async def test_markdown_json_and_csv_render_the_same_register(database: Path) -> None:
    async with open_privacy_db(f"sqlite:///{database}") as db:
        await db.connect(create=False)
        register = await build_register(db)
    markdown = render_register(register, "markdown")
    assert "# Register of processing activities (GDPR Art. 30)" in markdown
    assert "### GET /api/v1/accounts" in markdown
    assert "unneeded_category" in markdown
    assert json.loads(render_register(register, "json"))["kind"] == "dijk.privacy.register"
    table = list(csv.DictReader(io.StringIO(render_register(register, "csv"))))
    assert {row["category"] for row in table} >= {"email", "iban", "bsn", "secret"}
    bsn = next(row for row in table if row["category"] == "bsn")
    assert bsn["findings"] == "unneeded_category"
    assert bsn["masked"] == "2"


def test_cli_prints_the_register_and_fails_cleanly_without_a_data_map(
    database: Path, tmp_path: Path
) -> None:
    runner = CliRunner()
    result = runner.invoke(
        app, ["privacy", "report", "--db", f"sqlite:///{database}", "--format", "json"]
    )
    assert result.exit_code == 0, result.output
    endpoints = {item["endpoint"]: item for item in json.loads(result.output)["processing"]}
    assert {"email", "iban"} <= set(endpoints["/api/v1/accounts"]["personal_data"]["response"])
    missing = runner.invoke(app, ["privacy", "report", "--db", f"sqlite:///{tmp_path}/none.db"])
    assert missing.exit_code == 2
    assert "no database" in missing.output
    empty = tmp_path / "empty.db"
    empty.write_bytes(b"")
    result = runner.invoke(app, ["privacy", "report", "--db", f"sqlite:///{empty}"])
    assert result.exit_code == 2
    assert "no data map" in result.output
    result = runner.invoke(app, ["privacy", "report", "--db", "mysql://x"])
    assert result.exit_code == 2
    assert "unsupported" in result.output
