"""A self-contained HTML report a person can read: summary, then findings with evidence.

Everything that came from outside — messages, URLs, headers, bodies — passes through
:func:`html.escape` (quotes included) before it is written; the page loads nothing from
elsewhere (inline CSS, no scripts), and a Content-Security-Policy meta tag forbids scripts
should a future change forget an escape. Evidence is shown as the exchanges recorded in
``finding.evidence["exchanges"]`` (already redacted by whoever built the finding); any
other evidence keys are listed as JSON.
"""

from __future__ import annotations

import json
from html import escape
from typing import Any

from dijk.reporting.model import OWASP_API_2023, SEVERITIES, Finding, Report, score, summary

__all__ = ["render_html"]

_CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:2em auto;max-width:72em;color:#1d2330;
padding:0 1em}
h1{font-size:1.6em;margin-bottom:.2em} .meta{color:#5b6475}
.cards{display:flex;gap:.8em;margin:1em 0}
.card{padding:.6em 1em;border-radius:6px;background:#f1f3f7}
.card b{display:block;font-size:1.5em}
.high{border-left:5px solid #c62828} .medium{border-left:5px solid #ef8f00}
.low{border-left:5px solid #1e88e5} .info{border-left:5px solid #9e9e9e}
details{margin:.6em 0;padding:.5em .8em;background:#fafbfc;border-radius:4px}
summary{cursor:pointer} summary .sev{font-weight:bold;text-transform:uppercase;margin-right:.5em}
code,pre{font:12px/1.4 ui-monospace,monospace}
pre{background:#eef1f5;padding:.6em;overflow:auto;white-space:pre-wrap;word-break:break-all}
table{border-collapse:collapse} td,th{padding:.2em .6em;text-align:left;vertical-align:top}
.error{color:#c62828}
"""


def _e(value: object) -> str:
    return escape(str(value), quote=True)


def _exchange(exchange: dict[str, Any]) -> str:
    request = exchange.get("request", {})
    response = exchange.get("response", {})
    head = f"{request.get('method', '')} {request.get('url', '')}\n"
    head += "".join(f"{name}: {value}\n" for name, value in (request.get("headers") or {}).items())
    if request.get("body"):
        head += "\n" + str(request["body"]) + "\n"
    answer = f"HTTP {response.get('status', '')}  ({response.get('elapsed_ms', '?')} ms)\n"
    answer += "".join(
        f"{name}: {value}\n" for name, value in (response.get("headers") or {}).items()
    )
    if response.get("body"):
        answer += "\n" + str(response["body"]) + "\n"
    who = request.get("identity", "")
    return (
        f"<p>Request as <code>{_e(who)}</code></p><pre>{_e(head)}</pre>"
        f"<p>Response</p><pre>{_e(answer)}</pre>"
    )


def _finding(finding: Finding) -> str:
    evidence = dict(finding.evidence)
    exchanges = evidence.pop("exchanges", [])
    parts = [
        f'<details class="{_e(finding.severity)}"><summary>'
        f'<span class="sev">{_e(finding.severity)}</span>'
        f"{_e(finding.title)} — <code>{_e(finding.rule_id)}</code> [{_e(finding.owasp)}]</summary>",
        f"<p>{_e(finding.message)}</p>",
        f"<p><b>Where:</b> <code>{_e(finding.location.label())}</code>",
    ]
    if finding.location.url and finding.location.file:
        parts.append(
            f" — <code>{_e(finding.location.method or '')} {_e(finding.location.url)}</code>"
        )
    parts.append("</p>")
    parts.append(f"<p><b>Fix:</b> {_e(finding.fix)}</p>")
    if evidence:
        parts.append(
            f"<pre>{_e(json.dumps(evidence, indent=2, ensure_ascii=False, default=str))}</pre>"
        )
    if isinstance(exchanges, list):
        for exchange in exchanges:
            if isinstance(exchange, dict):
                parts.append(_exchange(exchange))
    parts.append("</details>")
    return "".join(parts)


def _owasp_order(category: str) -> int:
    number = category.removeprefix("API").split(":", 1)[0]
    return int(number) if number.isdigit() else 99


def render_html(report: Report) -> str:
    counts = summary(report.findings)
    findings = sorted(
        report.findings, key=lambda f: (-f.severity.rank, f.owasp, f.rule_id, f.message)
    )
    cards = "".join(
        f'<div class="card {_e(severity)}"><b>{counts[str(severity)]}</b>{_e(severity)}</div>'
        for severity in SEVERITIES
    )
    cards += f'<div class="card"><b>{score(report.findings)}</b>score /100</div>'
    by_owasp: dict[str, int] = {}
    for finding in report.findings:
        by_owasp[finding.owasp] = by_owasp.get(finding.owasp, 0) + 1
    owasp_rows = "".join(
        f"<tr><td>{_e(k)} {_e(OWASP_API_2023.get(k, ''))}</td><td>{v}</td></tr>"
        for k, v in sorted(by_owasp.items(), key=lambda item: _owasp_order(item[0]))
    )
    errors = "".join(
        f'<p class="error">{_e(error.target)}: {_e(error.message)}</p>' for error in report.errors
    )
    elapsed = f", {report.elapsed_s:.1f} s" if report.elapsed_s is not None else ""
    body = "".join(_finding(finding) for finding in findings) or "<p>No findings.</p>"
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; style-src '
        "'unsafe-inline'\">"
        f"<title>{_e(report.tool)} report</title><style>{_CSS}</style></head><body>"
        f"<h1>{_e(report.tool)} report</h1>"
        f'<p class="meta">{_e(", ".join(report.targets))} — '
        f"{_e(report.tool)} {_e(report.version)}{_e(elapsed)}</p>"
        f'{errors}<div class="cards">{cards}</div>'
        f"<table><tr><th>OWASP API Top 10 (2023)</th><th>findings</th></tr>{owasp_rows}</table>"
        f"<h2>Findings</h2>{body}</body></html>\n"
    )
