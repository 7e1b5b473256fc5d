"""The machine-readable report: every finding with its rule, plus summary and score."""

from __future__ import annotations

import json
from typing import Any

from dijk.reporting.model import Report, score, summary

__all__ = ["render_json", "report_dict"]


def report_dict(report: Report) -> dict[str, Any]:
    used = {finding.rule_id for finding in report.findings}
    return {
        "tool": report.tool,
        "version": report.version,
        "score": score(report.findings),
        "summary": summary(report.findings),
        "targets": list(report.targets),
        "errors": [{"target": e.target, "message": e.message} for e in report.errors],
        "elapsed_s": report.elapsed_s,
        "findings": [finding.to_dict() for finding in report.sorted_findings()],
        "rules": {
            rule.id: {
                "name": rule.name,
                "severity": str(rule.severity),
                "owasp": rule.owasp,
                "description": rule.description,
                "fix": rule.fix,
            }
            for rule in report.rules
            if rule.id in used
        },
    }


def render_json(report: Report) -> str:
    return json.dumps(report_dict(report), indent=2, ensure_ascii=False, default=str) + "\n"
