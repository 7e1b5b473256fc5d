"""JUnit XML, for CI systems that show test reports: one suite per target, one case per rule.

A rule with findings at ``low`` or above in a target is a failed test case listing each
finding's place and message; ``info`` findings are written to the case's ``system-out``
and do not fail it. A target that could not be checked is a suite with one errored case.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections import defaultdict

from dijk.reporting.model import Finding, Report, Severity

__all__ = ["render_junit"]


def render_junit(report: Report) -> str:
    root = ET.Element("testsuites", name=report.tool)
    by_target: dict[str, dict[str, list[Finding]]] = defaultdict(lambda: defaultdict(list))
    for finding in report.sorted_findings():
        by_target[finding.location.target()][finding.rule_id].append(finding)
    targets = list(report.targets)
    targets += [t for t in by_target if t not in targets]
    total_tests = total_failures = total_errors = 0
    for target in targets:
        suite = ET.SubElement(root, "testsuite", name=target)
        failures = 0
        for rule in report.rules:
            case = ET.SubElement(suite, "testcase", classname=target, name=rule.id)
            found = by_target.get(target, {}).get(rule.id, [])
            failing = [f for f in found if f.severity != Severity.info]
            lines = [
                f"{f.location.label()}: [{f.severity}] {f.message}"
                + (f" ({f.location.pointer})" if f.location.pointer else "")
                for f in found
            ]
            if failing:
                failures += 1
                failure = ET.SubElement(
                    case,
                    "failure",
                    message=f"{len(failing)} finding(s): {rule.name}",
                    type=str(max(failing, key=lambda f: f.severity.rank).severity),
                )
                failure.text = "\n".join(lines) + f"\nfix: {rule.fix}"
            elif found:
                ET.SubElement(case, "system-out").text = "\n".join(lines)
        suite.set("tests", str(len(report.rules)))
        suite.set("failures", str(failures))
        suite.set("errors", "0")
        total_tests += len(report.rules)
        total_failures += failures
    for error in report.errors:
        suite = ET.SubElement(root, "testsuite", name=error.target, tests="1", errors="1")
        suite.set("failures", "0")
        case = ET.SubElement(suite, "testcase", classname=error.target, name="load")
        ET.SubElement(case, "error", message=error.message)
        total_tests += 1
        total_errors += 1
    root.set("tests", str(total_tests))
    root.set("failures", str(total_failures))
    root.set("errors", str(total_errors))
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
