"""The shared findings model: severities, score, the CI threshold and every writer."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import pytest

from dijk.reporting import (
    Finding,
    Location,
    Report,
    Rule,
    Severity,
    TargetError,
    fails,
    parse_severity,
    render,
    score,
    summary,
)
from dijk.reporting.sarif import sarif_log
from tests.support.sarif import assert_valid_sarif, sarif_errors

QUERY_TOKEN = Rule(
    id="dijk-token-in-query",
    name="Credential in a query parameter",
    severity=Severity.high,
    owasp="API2:2023",
    description="Query strings end up in logs, browser history and Referer headers.",
    fix="Send the credential in a header.",
)
UNBOUNDED = Rule(
    id="dijk-string-unbounded",
    name="String without maxLength",
    severity=Severity.medium,
    owasp="API4:2023",
    description="An unbounded string lets a client send megabytes into one field.",
    fix="Add maxLength, or a pattern or format.",
)
DEPRECATED = Rule(
    id="dijk-deprecated-operation",
    name="Deprecated operation",
    severity=Severity.info,
    owasp="API9:2023",
    description="A deprecated operation still served is old inventory.",
    fix="Remove it when its clients have moved.",
)


def finding(rule: Rule, line: int = 3, severity: Severity | None = None, **where: str) -> Finding:
    location = (
        Location(**where)  # type: ignore[arg-type]
        if where
        else Location(file="api.yaml", line=line, column=5, pointer="/paths/~1a/get")
    )
    return Finding(
        rule_id=rule.id,
        title=rule.name,
        severity=severity or rule.severity,
        owasp=rule.owasp,
        message=f"{rule.name} here",
        fix=rule.fix,
        location=location,
        evidence={"name": "token"},
    )


def report(*findings: Finding, errors: list[TargetError] | None = None) -> Report:
    return Report(
        tool="dijk-lint",
        version="0.1.0",
        rules=[QUERY_TOKEN, UNBOUNDED, DEPRECATED],
        findings=list(findings),
        targets=["api.yaml"],
        errors=errors or [],
    )


def test_rule_without_description_or_known_owasp_category_is_refused() -> None:
    with pytest.raises(ValueError, match="description"):
        Rule("x", "x", Severity.low, "API1:2023", "", "fix")
    with pytest.raises(ValueError, match="OWASP"):
        Rule("x", "x", Severity.low, "API11:2023", "d", "fix")


def test_severity_parsing_and_order() -> None:
    assert parse_severity(" Medium ") is Severity.medium
    with pytest.raises(ValueError, match="high, medium, low or info"):
        parse_severity("critical")
    assert Severity.high.rank > Severity.medium.rank > Severity.low.rank > Severity.info.rank


def test_fail_on_threshold_counts_findings_at_or_above_it() -> None:
    found = [finding(UNBOUNDED)]
    assert fails(found, Severity.medium)
    assert fails(found, Severity.low)
    assert not fails(found, Severity.high)
    assert not fails(found, None)
    assert not fails([], Severity.info)


def test_score_is_100_when_clean_and_falls_with_severity_and_variety() -> None:
    assert score([]) == 100
    one_medium = score([finding(UNBOUNDED)])
    one_high = score([finding(QUERY_TOKEN)])
    assert one_high < one_medium < 100
    assert score([finding(DEPRECATED)]) == 100
    many_same = score([finding(UNBOUNDED, line=n) for n in range(1, 11)])
    two_kinds = score([finding(UNBOUNDED), finding(QUERY_TOKEN)])
    assert 0 < many_same < one_medium
    assert two_kinds < one_high
    assert score([finding(QUERY_TOKEN, line=n) for n in range(10_000)] * 3) >= 0


def test_summary_lists_every_severity() -> None:
    assert summary([finding(UNBOUNDED), finding(UNBOUNDED)]) == {
        "high": 0,
        "medium": 2,
        "low": 0,
        "info": 0,
    }


def test_text_report_groups_by_file_most_severe_first_with_file_line() -> None:
    text = render(report(finding(UNBOUNDED, line=9), finding(QUERY_TOKEN, line=20)), "text")
    assert "\x1b[" not in text
    lines = text.splitlines()
    assert lines[0].startswith("api.yaml  score ")
    assert "api.yaml:20:5" in lines[1]
    assert "dijk-token-in-query" in lines[1]
    assert "API2:2023" in lines[1]
    assert "fix: Send the credential in a header." in lines[2]
    assert "api.yaml:9:5" in lines[3]
    assert "2 finding(s)" in lines[-1]
    assert "score" in lines[-1]


def test_text_report_names_an_unreadable_target_once() -> None:
    text = render(
        report(
            errors=[
                TargetError("missing.yaml", "missing.yaml: file not found"),
                TargetError("api.yaml", "the document is nested too deeply"),
            ]
        ),
        "text",
    )
    assert "error: missing.yaml: file not found\n" in text
    assert "error: api.yaml: the document is nested too deeply\n" in text


def test_text_report_is_coloured_only_when_asked() -> None:
    coloured = render(report(finding(QUERY_TOKEN)), "text", colour=True)
    assert "\x1b[" in coloured


def test_json_report_has_findings_rules_summary_and_score() -> None:
    data = json.loads(render(report(finding(QUERY_TOKEN)), "json"))
    assert data["summary"]["high"] == 1
    assert data["score"] == score([finding(QUERY_TOKEN)])
    assert data["scores"] == {"api.yaml": data["score"]}
    (only,) = data["findings"]
    assert only["location"] == {
        "file": "api.yaml",
        "line": 3,
        "column": 5,
        "pointer": "/paths/~1a/get",
    }
    assert data["rules"]["dijk-token-in-query"]["fix"] == "Send the credential in a header."


def test_sarif_is_valid_against_the_official_schema_with_rules_and_owasp() -> None:
    log = json.loads(render(report(finding(QUERY_TOKEN), finding(DEPRECATED, line=7)), "sarif"))
    assert_valid_sarif(log)
    run = log["runs"][0]
    rules = run["tool"]["driver"]["rules"]
    assert [r["id"] for r in rules] == [QUERY_TOKEN.id, UNBOUNDED.id, DEPRECATED.id]
    assert all(r["fullDescription"]["text"] and r["help"]["text"] for r in rules)
    first = run["results"][0]
    assert first["ruleId"] == QUERY_TOKEN.id
    assert first["level"] == "error"
    assert first["properties"]["owasp"] == "API2:2023"
    region = first["locations"][0]["physicalLocation"]["region"]
    assert region == {"startLine": 3, "startColumn": 5}
    assert run["results"][1]["level"] == "note"
    assert run["invocations"][0]["executionSuccessful"] is True


def test_sarif_with_dynamic_findings_and_unreadable_targets_is_valid() -> None:
    dynamic = finding(QUERY_TOKEN, method="GET", url="http://127.0.0.1:8081/api/v1/accounts/2")
    log = sarif_log(report(dynamic, errors=[TargetError("missing.yaml", "file not found")]))
    assert_valid_sarif(log)
    run = log["runs"][0]
    assert run["results"][0]["webRequest"] == {
        "method": "GET",
        "target": "http://127.0.0.1:8081/api/v1/accounts/2",
    }
    assert run["invocations"][0]["executionSuccessful"] is False


def test_schema_check_would_catch_a_broken_sarif_log() -> None:
    log = sarif_log(report(finding(QUERY_TOKEN)))
    log["runs"][0]["results"][0]["level"] = "critical"
    del log["runs"][0]["tool"]["driver"]["name"]
    assert len(sarif_errors(log)) == 2


def test_fingerprint_is_stable_when_only_the_line_moves() -> None:
    assert finding(QUERY_TOKEN, line=3).fingerprint() == finding(QUERY_TOKEN, line=30).fingerprint()
    other = finding(QUERY_TOKEN, file="api.yaml", line=3, pointer="/paths/~1b/get")
    assert other.fingerprint() != finding(QUERY_TOKEN).fingerprint()


def test_junit_fails_a_rule_per_target_and_keeps_info_as_output() -> None:
    xml = render(report(finding(QUERY_TOKEN), finding(DEPRECATED)), "junit")
    root = ET.fromstring(xml)
    assert root.get("tests") == "3"
    assert root.get("failures") == "1"
    cases = {case.get("name"): case for case in root.iter("testcase")}
    failure = cases[QUERY_TOKEN.id].find("failure")
    assert failure is not None
    assert "api.yaml:3:5" in (failure.text or "")
    assert cases[UNBOUNDED.id].find("failure") is None
    assert cases[DEPRECATED.id].find("failure") is None
    assert cases[DEPRECATED.id].find("system-out") is not None


def test_junit_reports_unreadable_targets_as_errors() -> None:
    xml = render(report(errors=[TargetError("gone.yaml", "file not found")]), "junit")
    root = ET.fromstring(xml)
    assert root.get("errors") == "1"
    error = next(root.iter("error"))
    assert error.get("message") == "file not found"


def test_unknown_format_is_refused() -> None:
    with pytest.raises(ValueError, match="text, json, sarif, junit or html"):
        render(report(), "pdf")
