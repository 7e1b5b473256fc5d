"""Findings, rules and reports; the score and the CI threshold.

Severities are ordered ``info < low < medium < high``. A rule carries its default severity;
a finding carries the severity it was reported with (a configuration may raise or lower a
rule's). Locations are either static (file, 1-based line and column, JSON pointer into the
document) or dynamic (method and URL of the request that showed the problem); a finding
may have both, e.g. a scan finding traced back to the operation in the document.
"""

from __future__ import annotations

import hashlib
import math
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Final

__all__ = [
    "OWASP_API_2023",
    "SEVERITIES",
    "Finding",
    "Location",
    "Report",
    "Rule",
    "Severity",
    "TargetError",
    "fails",
    "parse_severity",
    "score",
    "summary",
]


class Severity(StrEnum):
    high = "high"
    medium = "medium"
    low = "low"
    info = "info"

    @property
    def rank(self) -> int:
        return _RANK[self]


_RANK: Final = {Severity.info: 0, Severity.low: 1, Severity.medium: 2, Severity.high: 3}
#: Most severe first: the order reports list them in.
SEVERITIES: Final = (Severity.high, Severity.medium, Severity.low, Severity.info)

#: The OWASP API Security Top 10, 2023 edition: the categories findings are filed under.
OWASP_API_2023: Final = {
    "API1:2023": "Broken Object Level Authorization",
    "API2:2023": "Broken Authentication",
    "API3:2023": "Broken Object Property Level Authorization",
    "API4:2023": "Unrestricted Resource Consumption",
    "API5:2023": "Broken Function Level Authorization",
    "API6:2023": "Unrestricted Access to Sensitive Business Flows",
    "API7:2023": "Server Side Request Forgery",
    "API8:2023": "Security Misconfiguration",
    "API9:2023": "Improper Inventory Management",
    "API10:2023": "Unsafe Consumption of APIs",
}


def parse_severity(text: str) -> Severity:
    """``high``/``medium``/``low``/``info`` (any case), or ``ValueError`` naming the choices."""
    try:
        return Severity(text.strip().lower())
    except ValueError:
        raise ValueError(f"unknown severity {text!r}: use high, medium, low or info") from None


@dataclass(frozen=True, slots=True)
class Rule:
    """What a check looks for, why it matters and how to fix what it finds."""

    id: str
    name: str
    severity: Severity
    owasp: str
    description: str
    fix: str

    def __post_init__(self) -> None:
        if self.owasp not in OWASP_API_2023:
            raise ValueError(f"rule {self.id}: unknown OWASP API Top 10 2023 category {self.owasp}")
        if not self.description or not self.fix:
            raise ValueError(f"rule {self.id}: a rule needs a description and a fix")


@dataclass(frozen=True, slots=True)
class Location:
    """Where a finding is: a place in a file, a request, or both."""

    file: str | None = None
    line: int | None = None
    column: int | None = None
    pointer: str | None = None
    method: str | None = None
    url: str | None = None

    def label(self) -> str:
        """``FILE:LINE:COLUMN`` for a file, ``METHOD URL`` for a request."""
        if self.file is not None:
            text = self.file
            if self.line is not None:
                text += f":{self.line}"
                if self.column is not None:
                    text += f":{self.column}"
            return text
        if self.url is not None:
            return f"{self.method} {self.url}" if self.method else self.url
        return "-"

    def target(self) -> str:
        """What a report groups by: the file, else the URL."""
        return self.file or self.url or "-"


@dataclass(frozen=True, slots=True)
class Finding:
    rule_id: str
    title: str
    severity: Severity
    owasp: str
    message: str
    fix: str
    location: Location
    evidence: dict[str, Any] = field(default_factory=dict)

    def fingerprint(self) -> str:
        """Stable across runs and line moves: rule, target and pointer (or request)."""
        where = self.location
        anchor = where.pointer if where.pointer is not None else f"{where.method} {where.url}"
        text = "\0".join((self.rule_id, where.target(), anchor or "", self.message))
        return hashlib.sha256(text.encode()).hexdigest()[:32]

    def to_dict(self) -> dict[str, Any]:
        where = self.location
        location = {
            key: value
            for key, value in (
                ("file", where.file),
                ("line", where.line),
                ("column", where.column),
                ("pointer", where.pointer),
                ("method", where.method),
                ("url", where.url),
            )
            if value is not None
        }
        return {
            "rule_id": self.rule_id,
            "title": self.title,
            "severity": str(self.severity),
            "owasp": self.owasp,
            "message": self.message,
            "fix": self.fix,
            "location": location,
            "evidence": self.evidence,
        }


@dataclass(frozen=True, slots=True)
class TargetError:
    """A target the tool could not check (unreadable file, unreachable API)."""

    target: str
    message: str


@dataclass(slots=True)
class Report:
    tool: str
    version: str
    rules: list[Rule]
    findings: list[Finding]
    targets: list[str]
    errors: list[TargetError] = field(default_factory=list)
    information_uri: str = "https://github.com/dijk-gateway/dijk"
    elapsed_s: float | None = None

    def rule(self, rule_id: str) -> Rule | None:
        for rule in self.rules:
            if rule.id == rule_id:
                return rule
        return None

    def sorted_findings(self) -> list[Finding]:
        """By target, most severe first, then position."""
        return sorted(
            self.findings,
            key=lambda f: (
                f.location.target(),
                -f.severity.rank,
                f.location.line or 0,
                f.location.column or 0,
                f.rule_id,
            ),
        )


#: Points one rule costs at each severity, before its count is taken into account.
_WEIGHT: Final = {Severity.high: 20.0, Severity.medium: 8.0, Severity.low: 2.0, Severity.info: 0.0}


def score(findings: Iterable[Finding]) -> int:
    """0 (worst) to 100 (nothing found).

    Each rule that fired costs its severity's weight (high 20, medium 8, low 2, info 0)
    times ``1 + log10(count)``: a second kind of problem costs more than the hundredth
    instance of the first, so a large document is not sunk by one noisy rule alone.
    """
    per_rule: dict[str, tuple[Severity, int]] = {}
    for finding in findings:
        severity, count = per_rule.get(finding.rule_id, (finding.severity, 0))
        if finding.severity.rank > severity.rank:
            severity = finding.severity
        per_rule[finding.rule_id] = (severity, count + 1)
    penalty = sum(_WEIGHT[sev] * (1 + math.log10(count)) for sev, count in per_rule.values())
    return max(0, min(100, round(100 - penalty)))


def fails(findings: Iterable[Finding], threshold: Severity | None) -> bool:
    """True when a finding is at or above ``threshold`` (``None``: never)."""
    if threshold is None:
        return False
    return any(finding.severity.rank >= threshold.rank for finding in findings)


def summary(findings: Iterable[Finding]) -> dict[str, int]:
    """Findings per severity, every severity present (zero when none)."""
    counts = Counter(str(finding.severity) for finding in findings)
    return {str(severity): counts.get(str(severity), 0) for severity in SEVERITIES}
