"""``dijk lint SPEC...``: the static security audit of OpenAPI documents, for CI.

Exit codes: 0 no finding at or above ``--fail-on`` (default ``high``); 1 findings at or
above it; 2 bad usage, an unreadable configuration or an unreadable document (one line on
stderr each, never a traceback; the report is still written for the documents that could
be read).
"""

from __future__ import annotations

import os
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from dijk.lint import LintConfig, LintConfigError, lint_documents, load_lint_config
from dijk.reporting import Report, Severity, fails, render

__all__ = ["lint"]


class OutputFormat(StrEnum):
    text = "text"
    json = "json"
    sarif = "sarif"
    junit = "junit"


class FailOn(StrEnum):
    high = "high"
    medium = "medium"
    low = "low"
    info = "info"
    none = "none"


def lint(
    specs: Annotated[
        list[str] | None,
        typer.Argument(
            help="OpenAPI 2.0/3.0/3.1 documents (YAML or JSON): files or http(s) URLs.",
            show_default=False,
        ),
    ] = None,
    fmt: Annotated[
        OutputFormat, typer.Option("--format", "-f", help="text, json, sarif or junit.")
    ] = OutputFormat.text,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write the report to this file.")
    ] = None,
    fail_on: Annotated[
        FailOn | None,
        typer.Option(
            "--fail-on",
            help="Exit 1 when a finding is at or above this severity (default high; none: never).",
            show_default=False,
        ),
    ] = None,
    config: Annotated[
        Path | None,
        typer.Option("--config", "-c", help="Lint configuration: rule severities, rules off."),
    ] = None,
    remote_refs: Annotated[
        bool,
        typer.Option(
            "--remote-refs",
            help="Follow $refs to any http(s) URL (default: none from local files; the"
            " document's own origin from a URL).",
        ),
    ] = False,
    list_rules: Annotated[
        bool, typer.Option("--list-rules", help="Print the rules and exit.")
    ] = False,
) -> None:
    """Audit OpenAPI documents for security problems (OWASP API Top 10 2023).

    Exit 0: clean at the --fail-on threshold; 1: findings at or above it; 2: usage error or
    a document or configuration that cannot be read.
    """
    if list_rules:
        _print_rules()
        return
    if not specs:
        typer.echo("error: give at least one OpenAPI document (file or URL)", err=True)
        raise typer.Exit(2)
    settings = LintConfig()
    if config is not None:
        try:
            settings = load_lint_config(config)
        except LintConfigError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from None
    threshold_name = (fail_on.value if fail_on is not None else None) or settings.fail_on or "high"
    threshold = None if threshold_name == "none" else Severity(threshold_name)
    report = _run(specs, settings, remote_refs)
    colour = (
        fmt is OutputFormat.text
        and output is None
        and sys.stdout.isatty()
        and "NO_COLOR" not in os.environ
    )
    text = render(report, fmt.value, colour=colour)
    if output is None:
        sys.stdout.write(text)
        sys.stdout.flush()
    else:
        try:
            output.write_text(text, encoding="utf-8")
        except OSError as exc:
            typer.echo(f"error: {output}: cannot write: {exc.strerror or exc}", err=True)
            raise typer.Exit(2) from None
    for error in report.errors:
        typer.echo(f"error: {error.message}", err=True)
    if report.errors:
        raise typer.Exit(2)
    if fails(report.findings, threshold):
        raise typer.Exit(1)


def _run(specs: list[str], settings: LintConfig, remote_refs: bool) -> Report:
    if len(specs) < 2 or not sys.stderr.isatty():
        return lint_documents(specs, settings, remote_refs=remote_refs)
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    with Progress(
        TextColumn("linting"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.description}"),
        console=Console(stderr=True),
        transient=True,
    ) as progress:
        task = progress.add_task("", total=len(specs))
        return lint_documents(
            specs,
            settings,
            on_done=lambda result: progress.update(
                task, advance=1, description=os.path.basename(result.target)
            ),
            remote_refs=remote_refs,
        )


def _print_rules() -> None:
    from dijk.lint import RULES

    width = max(len(rule.id) for rule in RULES)
    for rule in RULES:
        typer.echo(f"{rule.id:<{width}}  {rule.severity!s:<6}  {rule.owasp:<10}  {rule.name}")
