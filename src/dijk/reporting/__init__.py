"""Security findings shared by ``dijk lint`` and ``dijk scan``: the model and its writers.

A :class:`Report` holds the :class:`Rule` s a tool checked, the :class:`Finding` s it made
and the targets it looked at. Writers turn a report into human text (:mod:`.text`), JSON
(:mod:`.json_report`), SARIF 2.1.0 (:mod:`.sarif`), JUnit XML (:mod:`.junit`) or a
readable HTML page (:mod:`.html`);
:func:`score` and :func:`fails` are the numbers a CI gate needs. Standard library only
(rich for colour in a terminal), so that the scanner and the linter share one vocabulary.
"""

from __future__ import annotations

from dijk.reporting.model import (
    OWASP_API_2023,
    SEVERITIES,
    Finding,
    Location,
    Report,
    Rule,
    Severity,
    TargetError,
    fails,
    parse_severity,
    score,
    summary,
)

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
    "render",
    "score",
    "summary",
]


def render(report: Report, fmt: str, *, colour: bool = False) -> str:
    """``report`` in ``fmt`` (``text``, ``json``, ``sarif``, ``junit`` or ``html``)."""
    if fmt == "text":
        from dijk.reporting.text import render_text

        return render_text(report, colour=colour)
    if fmt == "json":
        from dijk.reporting.json_report import render_json

        return render_json(report)
    if fmt == "sarif":
        from dijk.reporting.sarif import render_sarif

        return render_sarif(report)
    if fmt == "junit":
        from dijk.reporting.junit import render_junit

        return render_junit(report)
    if fmt == "html":
        from dijk.reporting.html import render_html

        return render_html(report)
    raise ValueError(f"unknown report format {fmt!r}: use text, json, sarif, junit or html")
