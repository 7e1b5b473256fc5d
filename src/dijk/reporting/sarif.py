"""SARIF 2.1.0, as code-scanning services read it.

- ``tool.driver.rules`` lists every rule the run checked, each with short and full
  descriptions, help text (the fix), default level and ``properties`` (OWASP category,
  ``security-severity`` for code-scanning UIs, tags). A rule always has a description:
  the model refuses one without.
- Each result names its rule by id and index, has a level from its severity, the message,
  ``properties.owasp``/``severity``/``fix``/``evidence``, a partial fingerprint, and:
  a ``physicalLocation`` (artifact URI relative to the working directory when it is under
  it, region ``startLine``/``startColumn``) for a file location, with the JSON pointer as
  a logical location; ``webRequest`` (method, target) for a request.
- Targets that could not be checked are ``toolExecutionNotifications`` and make
  ``executionSuccessful`` false.

Writing SARIF never fails on the findings and never depends on ``--fail-on``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Final

from dijk.reporting.model import Finding, Report, Rule, Severity

__all__ = ["SARIF_SCHEMA", "render_sarif", "sarif_log"]

SARIF_SCHEMA: Final = "https://json.schemastore.org/sarif-2.1.0.json"
_LEVEL: Final = {
    Severity.high: "error",
    Severity.medium: "warning",
    Severity.low: "note",
    Severity.info: "note",
}
#: GitHub code scanning reads this (0.1-10) to rank security results.
_SECURITY_SEVERITY: Final = {
    Severity.high: "8.0",
    Severity.medium: "5.0",
    Severity.low: "3.0",
    Severity.info: "0.0",
}


def _uri(path: str) -> str:
    """Relative to the working directory when under it (what code scanning expects)."""
    if "://" in path:
        return path
    absolute = Path(os.path.abspath(path))
    try:
        return absolute.relative_to(Path.cwd()).as_posix()
    except ValueError:
        return absolute.as_uri()


def _rule(rule: Rule) -> dict[str, Any]:
    return {
        "id": rule.id,
        "name": rule.name.title().replace(" ", "").replace("-", ""),
        "shortDescription": {"text": rule.name},
        "fullDescription": {"text": rule.description},
        "help": {
            "text": f"{rule.description}\n\nFix: {rule.fix}",
            "markdown": f"{rule.description}\n\n**Fix:** {rule.fix}\n\nOWASP {rule.owasp}",
        },
        "defaultConfiguration": {"level": _LEVEL[rule.severity]},
        "properties": {
            "owasp": rule.owasp,
            "severity": str(rule.severity),
            "security-severity": _SECURITY_SEVERITY[rule.severity],
            "tags": ["security", f"owasp-{rule.owasp.lower()}"],
        },
    }


def _result(finding: Finding, index: dict[str, int]) -> dict[str, Any]:
    where = finding.location
    result: dict[str, Any] = {
        "ruleId": finding.rule_id,
        "level": _LEVEL[finding.severity],
        "message": {"text": finding.message},
        "partialFingerprints": {"dijkFinding/v1": finding.fingerprint()},
        "properties": {
            "owasp": finding.owasp,
            "severity": str(finding.severity),
            "security-severity": _SECURITY_SEVERITY[finding.severity],
            "title": finding.title,
            "fix": finding.fix,
            "evidence": finding.evidence,
        },
    }
    if finding.rule_id in index:
        result["ruleIndex"] = index[finding.rule_id]
    location: dict[str, Any] = {}
    if where.file is not None:
        physical: dict[str, Any] = {"artifactLocation": {"uri": _uri(where.file)}}
        if where.line is not None:
            region: dict[str, Any] = {"startLine": where.line}
            if where.column is not None:
                region["startColumn"] = where.column
            physical["region"] = region
        location["physicalLocation"] = physical
    if where.pointer is not None:
        location["logicalLocations"] = [
            {"fullyQualifiedName": where.pointer or "/", "kind": "member"}
        ]
    elif where.url is not None:
        name = f"{where.method} {where.url}" if where.method else where.url
        location["logicalLocations"] = [{"fullyQualifiedName": name, "kind": "resource"}]
    if location:
        result["locations"] = [location]
    if where.url is not None:
        request: dict[str, Any] = {"target": where.url}
        if where.method:
            request["method"] = where.method
        result["webRequest"] = request
    return result


def sarif_log(report: Report) -> dict[str, Any]:
    index = {rule.id: position for position, rule in enumerate(report.rules)}
    run: dict[str, Any] = {
        "tool": {
            "driver": {
                "name": report.tool,
                "version": report.version,
                "semanticVersion": report.version,
                "informationUri": report.information_uri,
                "rules": [_rule(rule) for rule in report.rules],
            }
        },
        "invocations": [
            {
                "executionSuccessful": not report.errors,
                "toolExecutionNotifications": [
                    {
                        "level": "error",
                        "message": {"text": error.message},
                        "locations": [
                            {"physicalLocation": {"artifactLocation": {"uri": _uri(error.target)}}}
                        ],
                    }
                    for error in report.errors
                ],
            }
        ],
        "results": [_result(finding, index) for finding in report.sorted_findings()],
        "columnKind": "unicodeCodePoints",
    }
    return {"$schema": SARIF_SCHEMA, "version": "2.1.0", "runs": [run]}


def render_sarif(report: Report) -> str:
    # No indent: the C encoder is ~10x faster on reports with tens of thousands of findings.
    return json.dumps(sarif_log(report), ensure_ascii=False, default=str) + "\n"
