"""The human report: grouped by file (or URL), most severe first, a summary and the score.

Colour is added only when asked (the CLI asks when standard output is a terminal and
``NO_COLOR`` is not set); otherwise the text is plain, so that it reads the same in a CI
log, a file or a pipe.
"""

from __future__ import annotations

import io
from itertools import groupby

from rich.console import Console
from rich.text import Text

from dijk.reporting.model import Report, Severity, score, summary

__all__ = ["render_text"]

_STYLE = {
    Severity.high: "bold red",
    Severity.medium: "yellow",
    Severity.low: "cyan",
    Severity.info: "dim",
}


def render_text(report: Report, *, colour: bool = False) -> str:
    buffer = io.StringIO()
    console = Console(
        file=buffer,
        force_terminal=colour,
        no_color=not colour,
        color_system="standard" if colour else None,
        highlight=False,
        soft_wrap=True,
        width=200,
    )
    findings = report.sorted_findings()
    for target, grouped in groupby(findings, key=lambda f: f.location.target()):
        group = list(grouped)
        header = Text(target, style="bold underline")
        header.append(f"  score {score(group)}/100", style="dim")
        console.print(header)
        for finding in group:
            line = Text("  ")
            line.append(finding.location.label(), style="bold")
            line.append("  ")
            line.append(f"{finding.severity:<6}", style=_STYLE[finding.severity])
            line.append(f"  {finding.rule_id}", style="magenta")
            line.append(f"  [{finding.owasp}]  ")
            line.append(finding.message)
            if finding.location.pointer is not None:
                line.append(f"  ({finding.location.pointer or '/'})", style="dim")
            console.print(line)
            console.print(Text(f"      fix: {finding.fix}", style="dim"))
        console.print()
    for error in report.errors:
        # A loader's message usually names the file already (it may be a referenced file
        # rather than the target): the target is added only when it is not there.
        named = error.message.startswith(f"{error.target}: ")
        shown = error.message if named else f"{error.target}: {error.message}"
        console.print(Text(f"error: {shown}", style="bold red"))
    counts = summary(report.findings)
    checked = len(report.targets)
    parts = ", ".join(f"{counts[str(s)]} {s}" for s in Severity)
    tail = Text(
        f"{len(report.findings)} finding(s) in {checked} target(s): {parts}; "
        f"score {score(report.findings)}/100"
    )
    if report.elapsed_s is not None:
        tail.append(f"; {report.elapsed_s:.2f} s")
    if report.errors:
        tail.append(f"; {len(report.errors)} target(s) could not be checked", style="bold red")
    console.print(tail)
    return buffer.getvalue()
