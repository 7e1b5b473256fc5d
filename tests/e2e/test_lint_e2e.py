"""`dijk lint` as a CI job runs it: a real process, its exit code, its files."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.support.sarif import assert_valid_sarif

DOCUMENT = """\
openapi: 3.1.0
info: {title: Payments, version: "2"}
servers:
  - url: http://payments.example.com
paths:
  /payments:
    get:
      security: []
      parameters:
        - name: access_token
          in: query
          schema: {type: string, maxLength: 64}
        - name: reference
          in: query
          schema: {type: string}
      responses:
        "200": {description: ok}
"""


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dijk", "lint", *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd,
        check=False,
    )


def test_new_user_gets_three_findings_at_file_line_a_failing_exit_and_valid_sarif(
    tmp_path: Path,
) -> None:
    (tmp_path / "payments.yaml").write_text(DOCUMENT)
    gate = run("payments.yaml", "--fail-on", "medium", cwd=tmp_path)
    assert gate.returncode == 1, gate.stderr
    assert gate.stderr == ""
    lines = gate.stdout.splitlines()
    for place, rule in (
        ("payments.yaml:4:5", "server-not-https"),
        ("payments.yaml:10:11", "credential-in-query"),
        ("payments.yaml:15:11", "string-unbounded"),
    ):
        assert any(place in line and rule in line for line in lines), (place, rule)

    sarif = run("payments.yaml", "--format", "sarif", "--output", "out.sarif", cwd=tmp_path)
    assert sarif.returncode == 1  # the default threshold (high) still gates
    log = json.loads((tmp_path / "out.sarif").read_text())
    assert_valid_sarif(log)
    located = {
        (r["ruleId"], r["locations"][0]["physicalLocation"]["region"]["startLine"])
        for r in log["runs"][0]["results"]
    }
    assert {("server-not-https", 4), ("credential-in-query", 10), ("string-unbounded", 15)} <= (
        located
    )
    uri = log["runs"][0]["results"][0]["locations"][0]["physicalLocation"]["artifactLocation"]
    assert uri == {"uri": "payments.yaml"}


def test_help_lists_lint() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "dijk", "--help"], capture_output=True, text=True, timeout=60
    )
    assert "lint" in result.stdout
