"""Lint documents: load, check, apply configuration and suppressions, place findings.

``x-dijk-lint-ignore: [rule-id, ...]`` (or ``["*"]``) on any object silences those rules
for findings written at that object or anywhere below it in the same file.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Final

from dijk import __version__
from dijk.lint.checks import Checker, Raw
from dijk.lint.config import LintConfig
from dijk.lint.rules import RULES, RULES_BY_ID
from dijk.lint.source import LoadError, Sources
from dijk.openapi.errors import pointer
from dijk.reporting import Finding, Location, Report, Rule, Severity, TargetError

__all__ = ["IGNORE_KEY", "DocumentResult", "lint_document", "lint_documents"]

IGNORE_KEY: Final = "x-dijk-lint-ignore"
TOOL: Final = "dijk-lint"


@dataclass(slots=True)
class DocumentResult:
    target: str
    findings: list[Finding]
    error: str | None = None
    suppressed: int = 0


def active_rules(config: LintConfig) -> list[Rule]:
    """The rules in force, with the configuration's severities."""
    rules = []
    for rule in RULES:
        setting = config.rules.get(rule.id)
        if setting == "off":
            continue
        if setting is not None and setting != str(rule.severity):
            rule = Rule(
                rule.id, rule.name, Severity(setting), rule.owasp, rule.description, rule.fix
            )
        rules.append(rule)
    return rules


def lint_document(
    location: str, config: LintConfig | None = None, *, remote_refs: bool = False
) -> DocumentResult:
    """Findings of one document (its referenced files included), or why it was unreadable.

    ``remote_refs`` lets ``$ref`` s reach any http(s) URL (by default: none from a local
    file, the document's own origin from a fetched one).
    """
    rules = {rule.id: rule for rule in active_rules(config or LintConfig())}
    try:
        sources = Sources(location, remote_refs=remote_refs)
        raws = Checker(sources).run()
    except LoadError as exc:
        return DocumentResult(location, [], str(exc))
    except RecursionError:
        return DocumentResult(location, [], f"{location}: the document is nested too deeply")
    except Exception as exc:  # a bug in a check: one clear line, not a traceback
        return DocumentResult(
            location,
            [],
            f"{location}: internal error while checking ({type(exc).__name__}: {exc}); "
            "please report it with the document",
        )
    kept: list[Raw] = []
    suppressed = 0
    for raw in raws:
        if raw.rule not in rules:
            continue
        if _ignored(sources.files[raw.file].data, raw):
            suppressed += 1
            continue
        kept.append(raw)
    by_file: dict[int, list[Raw]] = defaultdict(list)
    for raw in kept:
        by_file[raw.file].append(raw)
    findings: list[Finding] = []
    for index, group in by_file.items():
        source = sources.files[index]
        for raw in group:
            line, column = source.position(raw.tokens)
            rule = rules[raw.rule]
            findings.append(
                Finding(
                    rule_id=rule.id,
                    title=rule.name,
                    severity=rule.severity,
                    owasp=rule.owasp,
                    message=raw.message,
                    fix=rule.fix,
                    location=Location(
                        file=source.name, line=line, column=column, pointer=pointer(raw.tokens)
                    ),
                    evidence=raw.evidence,
                )
            )
        source.release()
    return DocumentResult(location, findings, None, suppressed)


def _ignored(data: Any, raw: Raw) -> bool:
    node = data
    for depth in range(len(raw.tokens) + 1):
        if isinstance(node, dict):
            ignore = node.get(IGNORE_KEY)
            if ignore is not None:
                listed = [ignore] if isinstance(ignore, str) else ignore
                if isinstance(listed, list) and (raw.rule in listed or "*" in listed):
                    return True
        if depth == len(raw.tokens):
            break
        token = raw.tokens[depth]
        if isinstance(node, dict):
            node = node.get(token)
        elif isinstance(node, list) and token.isdigit() and int(token) < len(node):
            node = node[int(token)]
        else:
            return False
    return False


def lint_documents(
    locations: Iterable[str],
    config: LintConfig | None = None,
    on_done: Callable[[DocumentResult], None] | None = None,
    *,
    remote_refs: bool = False,
) -> Report:
    """One report over many documents; ``on_done`` is called after each (progress)."""
    config = config or LintConfig()
    started = time.perf_counter()
    findings: list[Finding] = []
    errors: list[TargetError] = []
    targets: list[str] = []
    for location in locations:
        result = lint_document(location, config, remote_refs=remote_refs)
        targets.append(location)
        findings.extend(result.findings)
        if result.error is not None:
            errors.append(TargetError(location, result.error))
        if on_done is not None:
            on_done(result)
    return Report(
        tool=TOOL,
        version=__version__,
        rules=active_rules(config),
        findings=findings,
        targets=targets,
        errors=errors,
        elapsed_s=time.perf_counter() - started,
    )


def rule_table() -> list[Rule]:
    return list(RULES_BY_ID.values())
