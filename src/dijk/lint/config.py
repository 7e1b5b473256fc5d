"""The lint configuration file (``dijk lint --config FILE``).

.. code-block:: yaml

    fail_on: medium              # high | medium | low | info | none (the CLI option wins)
    rules:
      string-unbounded: low      # a new severity for the rule ...
      deprecated-operation: off  # ... or off

Unknown keys and unknown rule ids are errors, so a typo cannot silently switch a rule off.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from dijk.lint.rules import RULES_BY_ID

__all__ = ["LintConfig", "LintConfigError", "load_lint_config"]

RuleSetting = Literal["high", "medium", "low", "info", "off"]


class LintConfigError(Exception):
    """The configuration file cannot be used (one line, with the file name)."""


class LintConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    fail_on: Literal["high", "medium", "low", "info", "none"] | None = Field(
        default=None,
        description="Lowest severity that makes `dijk lint` exit 1 (default high).",
    )
    rules: dict[str, RuleSetting] = Field(
        default_factory=dict,
        description="Per rule id: a severity that replaces the rule's default, or `off`.",
    )

    @field_validator("rules")
    @classmethod
    def _known_rules(cls, value: dict[str, RuleSetting]) -> dict[str, RuleSetting]:
        unknown = sorted(set(value) - set(RULES_BY_ID))
        if unknown:
            raise ValueError(
                f"unknown rule id(s): {', '.join(unknown)} (see `dijk lint --list-rules`)"
            )
        return value


def load_lint_config(path: Path) -> LintConfig:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise LintConfigError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise LintConfigError(f"{path}: not UTF-8 text") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}" if mark is not None else ""
        raise LintConfigError(f"{path}{where}: invalid YAML") from None
    if data is None:
        return LintConfig()
    if not isinstance(data, dict):
        raise LintConfigError(f"{path}: expected a mapping with fail_on and rules")
    data = {str(k): v for k, v in data.items()}
    if isinstance(data.get("rules"), dict):
        # YAML reads a bare `off` as false: that is what the user meant.
        data["rules"] = {str(k): ("off" if v is False else v) for k, v in data["rules"].items()}
    try:
        return LintConfig.model_validate(data)
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(part) for part in error["loc"])
        raise LintConfigError(f"{path}: {where}: {error['msg']}") from None
