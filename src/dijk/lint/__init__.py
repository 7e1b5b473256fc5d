"""``dijk lint``: a static security audit of OpenAPI 2.0 / 3.0 / 3.1 documents.

:mod:`.source` reads the files (local or HTTP(S)) and places pointers at line and column,
:mod:`.checks` walks the document and yields raw findings, :mod:`.rules` describes each
rule, :mod:`.engine` applies the configuration and inline suppressions and builds the
:class:`dijk.reporting.Report` that the shared writers print.
"""

from __future__ import annotations

from dijk.lint.config import LintConfig, LintConfigError, load_lint_config
from dijk.lint.engine import IGNORE_KEY, DocumentResult, lint_document, lint_documents
from dijk.lint.rules import RULES, RULES_BY_ID

__all__ = [
    "IGNORE_KEY",
    "RULES",
    "RULES_BY_ID",
    "DocumentResult",
    "LintConfig",
    "LintConfigError",
    "lint_document",
    "lint_documents",
    "load_lint_config",
]
