"""``dijk scan`` as a user runs it, against real processes on loopback.

- against ``dijk demo --vulnerable`` it must report every planted flaw of the truth file,
  by class, rule and operation (a test fails naming any flaw it missed), with evidence in
  SARIF (valid against the OASIS schema, ``properties.owasp`` set) and in HTML (escaped),
  and never print a credential;
- against the safe demo behind the gateway it must report nothing of high severity;
- without ``--allow-writes`` it sends no write besides the login burst (failed logins for
  a made-up user);
- errors (unreachable target, bad document, bad ``--auth``, spent budget) are one line,
  exit code 2, no traceback.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.testing import CliRunner

from dijk.cli.main import app
from dijk.demo.truth import load_truth, missed_flaws
from tests.support.demo import start_demo
from tests.support.gateway import free_port
from tests.support.sarif import assert_valid_sarif
from tests.support.upstream import RecordingUpstream

pytestmark = pytest.mark.timeout(120)

REPO = Path(__file__).resolve().parents[2]
VULNERABLE_SPEC = REPO / "src" / "dijk" / "demo" / "vulnerable_openapi.yaml"
SAFE_SPEC = REPO / "src" / "dijk" / "demo" / "openapi.yaml"
_LINE = re.compile(r"^DIJK_VULN_([A-Z_]+)=(.*)$")


@dataclass
class Vulnerable:
    url: str
    identities: dict[str, str]
    process: subprocess.Popen[bytes]
    banner: str
    passwords: dict[str, str]


@dataclass
class ScanRun:
    returncode: int
    stdout: str
    stderr: str
    report: dict[str, object]
    sarif: dict[str, object]
    html: str


def dijk(*args: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dijk", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "NO_COLOR": "1"},
    )


def in_process(*args: str) -> tuple[int, str, str]:
    """The CLI in this process (start-up of a new interpreter is the slow part)."""
    result = CliRunner().invoke(app, list(args), env={"NO_COLOR": "1"})
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


def start_vulnerable(*, fixed: bool = False, env: dict[str, str] | None = None) -> Vulnerable:
    port = free_port()
    argv = ["-m", "dijk", "demo", "--vulnerable", "--port", str(port)]
    if fixed:  # the same build with every planted flaw repaired (not a CLI option)
        argv = ["-m", "dijk.demo.vulnerable", "--fixed", "--port", str(port)]
    process = subprocess.Popen(
        [sys.executable, *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env={**os.environ, **(env or {})},
    )
    assert process.stdout is not None
    lines: list[str] = []
    values: dict[str, str] = {}
    while True:
        line = process.stdout.readline().decode()
        if not line:
            process.kill()
            raise AssertionError("the unsafe build exited: " + "".join(lines))
        lines.append(line)
        found = _LINE.match(line.strip())
        if found:
            values[found.group(1)] = found.group(2)
        if line.startswith("Stop with Ctrl-C"):
            break
    identities = {
        name.lower(): value for name, value in values.items() if name in ("ALICE", "BOB", "ADMIN")
    }
    passwords = {
        name.removeprefix("PASSWORD_").lower(): value
        for name, value in values.items()
        if name.startswith("PASSWORD_")
    }
    return Vulnerable(values["URL"], identities, process, "".join(lines), passwords)


@pytest.fixture(scope="module")
def vulnerable() -> Iterator[Vulnerable]:
    bank = start_vulnerable()
    yield bank
    bank.process.terminate()
    bank.process.wait(10)


def auth_args(identities: dict[str, str]) -> list[str]:
    return [f"--auth={name}={value}" for name, value in identities.items()]


@pytest.fixture(scope="module")
def full_scan(vulnerable: Vulnerable, tmp_path_factory: pytest.TempPathFactory) -> ScanRun:
    out = tmp_path_factory.mktemp("scan")
    result = dijk(
        "scan",
        "--spec",
        str(VULNERABLE_SPEC),
        "--target",
        vulnerable.url,
        *auth_args(vulnerable.identities),
        "--admin",
        "admin",
        "--allow-writes",
        "--no-progress",
        "--rate",
        "0",
        "--fail-on",
        "high",
        "--json",
        str(out / "report.json"),
        "--sarif",
        str(out / "report.sarif"),
        "--html",
        str(out / "report.html"),
    )
    assert "Traceback" not in result.stderr, result.stderr
    return ScanRun(
        result.returncode,
        result.stdout,
        result.stderr,
        json.loads((out / "report.json").read_text()),
        json.loads((out / "report.sarif").read_text()),
        (out / "report.html").read_text(),
    )


def test_unsafe_build_prints_its_url_identities_and_a_scan_command(vulnerable: Vulnerable) -> None:
    assert vulnerable.url.startswith("http://127.0.0.1:")
    assert set(vulnerable.identities) == {"alice", "bob", "admin"}
    assert all(
        value.startswith("Authorization: Bearer ey") for value in vulnerable.identities.values()
    )
    assert "dijk scan --spec" in vulnerable.banner
    assert "--allow-writes" in vulnerable.banner
    assert "no gateway" in vulnerable.banner


def test_truth_file_plants_at_least_two_flaws_of_every_class() -> None:
    truth = load_truth()
    counts: dict[str, int] = {}
    for flaw in truth:
        counts[flaw.flaw_class] = counts.get(flaw.flaw_class, 0) + 1
    assert set(counts) == {
        "bola",
        "broken_authentication",
        "property_authorization",
        "resource_consumption",
        "bfla",
        "ssrf",
        "misconfiguration",
        "inventory",
        "injection",
        "schema_conformance",
    }
    assert min(counts.values()) >= 2, counts


def test_scan_finds_every_planted_flaw_by_class_rule_and_operation(full_scan: ScanRun) -> None:
    findings = full_scan.report["findings"]
    assert isinstance(findings, list)
    missed = missed_flaws(load_truth(), findings)
    assert not missed, "planted flaws not reported: " + "; ".join(
        f"{flaw.id} {flaw.rule} {flaw.method} {flaw.path}" for flaw in missed
    )
    classes = {f["evidence"]["class"] for f in findings}
    assert {flaw.flaw_class for flaw in load_truth()} <= classes


def test_scan_fails_the_build_on_high_findings(full_scan: ScanRun) -> None:
    assert full_scan.returncode == 1, full_scan.stderr
    assert "requests sent" in full_scan.stdout


def test_sarif_is_valid_and_carries_owasp_and_evidence_for_the_headline_flaws(
    full_scan: ScanRun,
) -> None:
    assert_valid_sarif(full_scan.sarif)
    results = full_scan.sarif["runs"][0]["results"]  # type: ignore[index]
    by_rule = {result["ruleId"]: result for result in results}
    for rule_id, owasp in (
        ("scan.bola.read", "API1:2023"),
        ("scan.bfla", "API5:2023"),
        ("scan.property.mass_assignment", "API3:2023"),
        ("scan.auth.alg_none", "API2:2023"),
        ("scan.ssrf", "API7:2023"),
    ):
        result = by_rule[rule_id]
        assert result["properties"]["owasp"] == owasp
        exchanges = result["properties"]["evidence"]["exchanges"]
        assert exchanges
        assert exchanges[0]["request"]["method"]
        assert exchanges[0]["response"]["status"]
        assert result["locations"][0]["physicalLocation"]["region"]["startLine"] > 0


def test_html_report_shows_the_headline_findings_with_escaped_evidence(full_scan: ScanRun) -> None:
    html = full_scan.html
    for title in ("object read by another user", "admin function open to users", "mass assignment"):
        assert title in html
    assert "unsigned JWT accepted" in html
    assert "server-side request forgery" in html
    assert "<script" not in html.lower()
    # The SQL probe's database error quotes the payload: it must appear escaped.
    assert "unrecognized token: \\&quot;&#x27;" in html
    assert "Traceback (most recent call last)" in html  # evidence of the disclosure, as text


def test_reports_never_contain_the_identities_credentials(
    full_scan: ScanRun, vulnerable: Vulnerable
) -> None:
    tokens = [value.split("Bearer ", 1)[1] for value in vulnerable.identities.values()]
    outputs = (
        full_scan.stdout,
        json.dumps(full_scan.report),
        json.dumps(full_scan.sarif),
        full_scan.html,
    )
    for token in tokens:
        for output in outputs:
            assert token not in output
            assert token.split(".")[1] not in output  # not even the claims segment
    assert "Bearer [redacted]" in json.dumps(full_scan.report)


def test_scan_of_safe_demo_behind_the_gateway_reports_no_high_finding(tmp_path: Path) -> None:
    demo = start_demo(tmp_path / "demo")
    try:
        code, out, err = in_process(
            "scan",
            "--spec",
            str(SAFE_SPEC),
            "--target",
            f"http://127.0.0.1:{demo.port}",
            f"--auth=reader=X-API-Key:{demo.read_key}",
            f"--auth=writer=X-API-Key:{demo.write_key}",
            "--allow-writes",
            "--no-progress",
            "--rate",
            "0",
            "--format",
            "json",
            "--fail-on",
            "high",
        )
    finally:
        demo.stop()
    report = json.loads(out)
    high = [f["message"] for f in report["findings"] if f["severity"] == "high"]
    assert not high, high
    assert code == 0, err
    assert not report["errors"]


def test_login_recipes_make_identities_and_their_passwords_never_show(
    vulnerable: Vulnerable,
) -> None:
    def recipe(name: str) -> str:
        body = json.dumps({"username": name, "password": vulnerable.passwords[name]})
        return f"--login={name}=/api/v1/login:{body}"

    code, out, err = in_process(
        "scan",
        "--spec",
        str(VULNERABLE_SPEC),
        "--target",
        vulnerable.url,
        recipe("alice"),
        recipe("bob"),
        "--checks",
        "bola,auth",
        "--rate",
        "0",
        "--no-progress",
        "--format",
        "json",
    )
    assert code == 0, err
    report = json.loads(out)
    rules = {f["rule_id"] for f in report["findings"]}
    assert {"scan.bola.read", "scan.auth.alg_none", "scan.auth.weak_jwt_secret"} <= rules
    for password in vulnerable.passwords.values():
        assert password not in out


def test_known_jwt_key_lets_the_scan_prove_expired_tokens_are_accepted(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    key = "k-" + os.urandom(24).hex()
    bank = start_vulnerable(env={"DIJK_VULN_JWT_SECRET": key})
    monkeypatch.setenv("SCAN_TEST_JWT_KEY", key)
    try:
        common = [
            "scan",
            "--spec",
            str(VULNERABLE_SPEC),
            "--target",
            bank.url,
            *auth_args(bank.identities),
            "--checks",
            "auth",
            "--rate",
            "0",
            "--no-progress",
            "--format",
            "json",
        ]
        _code, without, _err = in_process(*common)
        _code, with_key, _err = in_process(*common, "--jwt-secret-env", "SCAN_TEST_JWT_KEY")
    finally:
        bank.process.terminate()
        bank.process.wait(10)

    def rules(out: str) -> set[str]:
        return {(f["rule_id"], f["evidence"]["operation"]) for f in json.loads(out)["findings"]}

    expired = ("scan.auth.expired_token", "GET /api/v1/transfers")
    assert expired not in rules(without)
    assert expired in rules(with_key)
    assert not any(rule == "scan.auth.weak_jwt_secret" for rule, _op in rules(with_key))
    assert key not in with_key


def test_failed_login_recipe_is_a_clear_error(vulnerable: Vulnerable) -> None:
    code, _out, err = in_process(
        "scan",
        "--spec",
        str(VULNERABLE_SPEC),
        "--target",
        vulnerable.url,
        '--login=alice=/api/v1/login:{"username":"alice","password":"wrong"}',
        "--no-progress",
    )
    assert code == 2
    assert err.strip() == "error: --login alice: POST /api/v1/login answered 401"


def test_scan_of_the_repaired_build_reports_none_of_the_planted_flaws(tmp_path: Path) -> None:
    """The false-positive control: the same API and document with every flaw repaired."""
    bank = start_vulnerable(fixed=True)
    try:
        code, out, err = in_process(
            "scan",
            "--spec",
            str(VULNERABLE_SPEC),
            "--target",
            bank.url,
            *auth_args(bank.identities),
            "--admin",
            "admin",
            "--allow-writes",
            "--rate",
            "0",
            "--no-progress",
            "--format",
            "json",
        )
    finally:
        bank.process.terminate()
        bank.process.wait(10)
    report = json.loads(out)
    assert not report["errors"], report["errors"]
    findings = {
        (f["rule_id"], f["evidence"]["operation"]): f["severity"] for f in report["findings"]
    }
    assert all(severity != "high" for severity in findings.values()), findings
    # What remains is true of the repaired build too: plain HTTP on loopback, and no 429
    # in a burst on the public status route.
    assert set(findings) <= {
        ("scan.misconfig.plain_http", "* *"),
        ("scan.resource.no_rate_limit", "GET /api/v1/status"),
    }, findings
    assert code == 0, err


def test_scan_without_allow_writes_sends_no_writes_but_the_login_burst(tmp_path: Path) -> None:
    upstream = RecordingUpstream().start()
    try:
        code, _out, err = in_process(
            "scan",
            "--spec",
            str(VULNERABLE_SPEC),
            "--target",
            f"http://127.0.0.1:{upstream.port}",
            "--auth=alice=Authorization:Bearer alice-token",
            "--auth=bob=Authorization:Bearer bob-token",
            "--no-progress",
            "--rate",
            "0",
        )
        requests = upstream.requests
    finally:
        upstream.stop()
    assert code in (0, 1), err
    writes = {
        (r.method, r.target.split("?")[0])
        for r in requests
        if r.method not in ("GET", "HEAD", "OPTIONS", "TRACE")
    }
    assert writes <= {("POST", "/api/v1/login")}, writes
    assert any(r.method == "GET" for r in requests)


def test_unreachable_target_is_a_clear_error_without_traceback() -> None:
    code, _out, err = in_process(
        "scan", "--spec", str(VULNERABLE_SPEC), "--target", f"http://127.0.0.1:{free_port()}"
    )
    assert code == 2
    assert err.startswith("error: cannot reach http://127.0.0.1:")
    assert "Traceback" not in err


def test_bad_document_is_a_clear_error_with_file_and_line(tmp_path: Path) -> None:
    spec = tmp_path / "broken.yaml"
    spec.write_text(
        "openapi: 3.1.0\ninfo: {title: x, version: '1'}\npaths:\n  /a:\n    get: {responses: 7}\n"
    )
    code, _out, err = in_process("scan", "--spec", str(spec), "--target", "http://127.0.0.1:9")
    assert code == 2
    assert "error: the document cannot be used" in err
    assert "broken.yaml:5" in err
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--auth", "alice"], "expected NAME=HEADER:VALUE"),
        (["--login", "alice=/login"], "expected NAME=PATH:JSON"),
        (["--login", "alice=/login:{oops}"], "not valid JSON"),
        (["--auth", "a=X-Key:1", "--admin", "root"], "--admin root: no --auth or --login identity"),
        (["--fail-on", "severe"], "--fail-on"),
        (["--checks", "bola,telepathy"], "unknown telepathy"),
    ],
)
def test_bad_options_are_refused_with_a_reason(args: list[str], message: str) -> None:
    code, _out, err = in_process(
        "scan", "--spec", str(VULNERABLE_SPEC), "--target", "http://127.0.0.1:9", *args
    )
    assert code == 2
    assert message in err
    assert "Traceback" not in err


@pytest.mark.parametrize("target", ["http://[::1", "https://[fe80::1/x", "ftp://127.0.0.1/"])
def test_a_malformed_target_url_is_refused_without_traceback(target: str) -> None:
    code, _out, err = in_process("scan", "--spec", str(VULNERABLE_SPEC), "--target", target)
    assert code == 2
    assert err.startswith(f"error: --target {target!r}: expected an http:// or https:// URL")
    assert "Traceback" not in err


def test_spent_budget_stops_the_scan_and_says_so(vulnerable: Vulnerable) -> None:
    code, out, _err = in_process(
        "scan",
        "--spec",
        str(VULNERABLE_SPEC),
        "--target",
        vulnerable.url,
        *auth_args(vulnerable.identities),
        "--budget",
        "20",
        "--rate",
        "0",
        "--no-progress",
    )
    assert code == 2
    assert "request budget (20) spent" in out
    sent = int(re.search(r"(\d+) requests sent", out).group(1))  # type: ignore[union-attr]
    assert sent <= 20


def test_target_that_dies_mid_scan_ends_it_with_an_incomplete_report(tmp_path: Path) -> None:
    upstream = RecordingUpstream().start()
    report = tmp_path / "report.json"
    outcome: list[tuple[int, str, str]] = []
    args = [
        "scan",
        "--spec",
        str(VULNERABLE_SPEC),
        "--target",
        f"http://127.0.0.1:{upstream.port}",
        "--auth=alice=Authorization:Bearer a",
        "--auth=bob=Authorization:Bearer b",
        "--rate",
        "20",  # slow enough that the target is gone long before the scan would end
        "--timeout",
        "0.5",  # the stopped server's open connections hang rather than close
        "--no-progress",
        "--json",
        str(report),
    ]
    scan = threading.Thread(target=lambda: outcome.append(in_process(*args)))
    scan.start()
    deadline = time.monotonic() + 30
    while len(upstream.requests) < 20 and time.monotonic() < deadline:
        time.sleep(0.05)
    upstream.stop()
    scan.join(60)
    code, stdout, stderr = outcome[0]
    assert code == 2, stdout + stderr
    assert "the target stopped answering" in stdout
    assert json.loads(report.read_text())["errors"]
