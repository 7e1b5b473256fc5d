"""``dijk waf explain``: every rule, transform and score on the way to a verdict.

The request comes from a file as it went over the wire (request line, headers, blank line,
body; what a proxy's "save request" or ``curl --trace-ascii`` shows), LF or CRLF line
endings, ``Transfer-Encoding: chunked`` bodies undone. The detector runs at paranoia 4 so
that every rule that fires is listed; the verdict is then worked out at the paranoia and
threshold asked for (or a route's), as the gateway would, so the listing also shows what
a higher paranoia level would add.
"""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

import typer

from dijk.detect.engine import Detector, rescore
from dijk.detect.findings import Exclusion, Finding, GraphQLLimits, RequestParts, Verdict

waf_app = typer.Typer(help="Attack detection: explain a verdict.", no_args_is_help=True)

MAX_REQUEST_BYTES = 16 << 20


class RequestFileError(ValueError):
    """The file is not an HTTP request."""


def parse_request(data: bytes) -> RequestParts:
    """A raw HTTP/1.x request as request parts (absolute-form targets become their path)."""
    data = data.lstrip(b"\r\n")
    head, separator, body = data.partition(b"\r\n\r\n")
    if not separator:
        head, separator, body = data.partition(b"\n\n")
    lines = head.decode("latin-1").replace("\r\n", "\n").split("\n")
    if not lines or not lines[0].strip():
        raise RequestFileError("the file is empty")
    parts = lines[0].split()
    if (
        len(parts) not in (2, 3)
        or not (parts[0].isalpha() and parts[0].isupper())
        or (len(parts) == 3 and not parts[2].startswith("HTTP/"))
    ):
        raise RequestFileError(f"the first line is not a request line: {lines[0][:80]!r}")
    method, target = parts[0], parts[1]
    if "://" in target:
        split = urlsplit(target)
        target = (split.path or "/") + (f"?{split.query}" if split.query else "")
    headers: list[tuple[str, str]] = []
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        if not colon or not name.strip():
            raise RequestFileError(f"not a header line: {line[:80]!r}")
        headers.append((name.strip(), value.strip()))
    chunked = any(
        name.lower() == "transfer-encoding" and "chunked" in value.lower()
        for name, value in headers
    )
    if chunked:
        body = _dechunk(body)
    return RequestParts.from_target(method, target, headers, body)


def _dechunk(body: bytes) -> bytes:
    out: list[bytes] = []
    position = 0
    while True:
        line_end = body.find(b"\n", position)
        if line_end < 0:
            raise RequestFileError("a chunked body ends before its last chunk")
        size_text = body[position:line_end].split(b";", 1)[0].strip()
        try:
            size = int(size_text, 16)
        except ValueError:
            raise RequestFileError(f"bad chunk size {size_text[:16]!r}") from None
        if size == 0:
            return b"".join(out)
        start = line_end + 1
        out.append(body[start : start + size])
        position = start + size
        position += 2 if body[position : position + 2] == b"\r\n" else 1


def explain(
    request: RequestParts,
    paranoia: int,
    threshold: int,
    exclusions: tuple[Exclusion, ...] = (),
    graphql: GraphQLLimits | None = None,
) -> tuple[Verdict, Verdict]:
    """(every finding at paranoia 4, the verdict at ``paranoia`` and ``threshold``)."""
    detector = Detector(4, threshold, exclusions, graphql_limits=graphql)
    everything = detector.inspect(request)
    return everything, rescore(everything.findings, paranoia, threshold)


def report(
    request: RequestParts, everything: Verdict, verdict: Verdict, paranoia: int, threshold: int
) -> dict[str, Any]:
    counted = set(verdict.findings)
    category = verdict.primary_category
    return {
        "request": f"{request.method} {request.path}"
        + (f"?{request.raw_query}" if request.raw_query else ""),
        "paranoia": paranoia,
        "threshold": threshold,
        "findings": [
            {
                "rule": finding.rule_id,
                "category": finding.category,
                "severity": finding.severity,
                "paranoia": finding.paranoia,
                "location": finding.location,
                "field": finding.field,
                "transform": finding.transform,
                "snippet": finding.snippet,
                "counted": finding in counted,
            }
            for finding in everything.findings
        ],
        "scores": _scores(verdict.findings),
        "score": verdict.score,
        "blocked": verdict.blocked,
        "reason": f"waf.{category}" if verdict.blocked and category else None,
    }


def _scores(findings: tuple[Finding, ...]) -> dict[str, int]:
    """Each rule's contribution: its highest severity, once per request."""
    scores: dict[str, int] = {}
    for finding in findings:
        scores[finding.rule_id] = max(scores.get(finding.rule_id, 0), finding.severity)
    return scores


def render(explained: dict[str, Any]) -> str:
    lines = [
        f"request: {explained['request'][:200]}",
        f"paranoia {explained['paranoia']}, threshold {explained['threshold']}",
        "",
    ]
    findings = explained["findings"]
    if not findings:
        lines.append("no rule fired")
    else:
        header = ("rule", "category", "sev", "pl", "where", "transform", "snippet")
        rows = [
            (
                finding["rule"] + ("" if finding["counted"] else " (*)"),
                finding["category"],
                str(finding["severity"]),
                str(finding["paranoia"]),
                f"{finding['location']} {finding['field']}"[:48],
                finding["transform"],
                finding["snippet"],
            )
            for finding in findings
        ]
        widths = [max(len(row[i]) for row in (header, *rows)) for i in range(len(header) - 1)]
        for row in (header, *rows):
            cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
            lines.append("  ".join([*cells, row[-1]]).rstrip())
        if any(not finding["counted"] for finding in findings):
            lines.append(f"(*) above paranoia {explained['paranoia']}: not counted")
    lines.append("")
    scores = explained["scores"]
    terms = " + ".join(f"{rule} {score}" for rule, score in scores.items()) or "0"
    lines.append(f"score: {terms} = {explained['score']} (threshold {explained['threshold']})")
    if explained["blocked"]:
        lines.append(f"verdict: refused, 403 {explained['reason']}")
    else:
        lines.append("verdict: passed")
    return "\n".join(lines)


@waf_app.command("explain")
def explain_command(
    request_file: Annotated[
        Path, typer.Argument(help="Raw HTTP request (request line, headers, body); - for stdin.")
    ],
    paranoia: Annotated[int, typer.Option(min=1, max=4, help="Paranoia level.")] = 1,
    threshold: Annotated[int, typer.Option(min=1, max=1000, help="Blocking score.")] = 5,
    config: Annotated[
        Path | None,
        typer.Option("--config", "-c", help="Take the settings of --route from this file."),
    ] = None,
    route: Annotated[str | None, typer.Option(help="Route name in --config.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Show every rule, transform and score on the way to the verdict for one request.

    Exit code 0 when the request passes, 1 when it is refused, 2 on bad input.
    """
    try:
        data = (
            sys.stdin.buffer.read(MAX_REQUEST_BYTES + 1)
            if str(request_file) == "-"
            else request_file.read_bytes()
        )
    except OSError as exc:
        typer.echo(f"error: cannot read {request_file}: {exc.strerror or exc}", err=True)
        raise typer.Exit(2) from None
    if len(data) > MAX_REQUEST_BYTES:
        typer.echo(f"error: the request is larger than {MAX_REQUEST_BYTES} bytes", err=True)
        raise typer.Exit(2)
    try:
        request = parse_request(data)
    except RequestFileError as exc:
        typer.echo(f"error: {request_file}: {exc}", err=True)
        raise typer.Exit(2) from None
    exclusions: tuple[Exclusion, ...] = ()
    graphql: GraphQLLimits | None = None
    if config is not None:
        paranoia, threshold, exclusions, graphql, kinds = _route_settings(config, route)
        if kinds:
            request = replace(request, content_kinds=kinds)
    everything, verdict = explain(request, paranoia, threshold, exclusions, graphql)
    explained = report(request, everything, verdict, paranoia, threshold)
    typer.echo(json.dumps(explained, indent=2) if as_json else render(explained))
    raise typer.Exit(1 if verdict.blocked else 0)


def _route_settings(
    path: Path, route_name: str | None
) -> tuple[int, int, tuple[Exclusion, ...], GraphQLLimits, dict[tuple[str, str], str]]:
    from dijk.config import ConfigError, load_config
    from dijk.stages.waf import content_kinds, detector_key

    try:
        loaded = load_config(path)
    except ConfigError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from None
    names = [route.name for route in loaded.routes]
    chosen = next((route for route in loaded.routes if route.name == route_name), None)
    if chosen is None:
        typer.echo(f"error: --route must name a route of {path}: {', '.join(names)}", err=True)
        raise typer.Exit(2)
    if chosen.waf is None:
        typer.echo(f"error: route {chosen.name!r} has no waf: settings", err=True)
        raise typer.Exit(2)
    paranoia, threshold, exclusions, limits = detector_key(chosen.waf)
    return paranoia, threshold, exclusions, limits, content_kinds(chosen.waf.content)
