"""The unsafe build's truth file, and matching a scan report against it.

A planted flaw counts as found when a finding has the same rule and the same operation
(method and path template; ``*`` in the truth file matches any). Used by the tests (which
fail when a planted flaw is missed) and by ``bench/scan.py``.
"""

from __future__ import annotations

import importlib.resources
from dataclasses import dataclass
from typing import Any

import yaml

__all__ = ["PlantedFlaw", "load_truth", "missed_flaws"]


@dataclass(frozen=True, slots=True)
class PlantedFlaw:
    id: str
    flaw_class: str
    rule: str
    method: str
    path: str
    description: str
    writes: bool = False

    def matches(self, rule_id: str, operation: str) -> bool:
        method, _, path = operation.partition(" ")
        return rule_id == self.rule and self.method in ("*", method) and self.path in ("*", path)


def load_truth() -> list[PlantedFlaw]:
    text = (
        importlib.resources.files("dijk.demo").joinpath("vulnerable_truth.yaml").read_text("utf-8")
    )
    raw = yaml.safe_load(text)
    return [
        PlantedFlaw(
            id=str(entry["id"]),
            flaw_class=str(entry["class"]),
            rule=str(entry["rule"]),
            method=str(entry["method"]),
            path=str(entry["path"]),
            description=str(entry["description"]),
            writes=bool(entry.get("writes", False)),
        )
        for entry in raw["flaws"]
    ]


def missed_flaws(truth: list[PlantedFlaw], findings: list[dict[str, Any]]) -> list[PlantedFlaw]:
    """Planted flaws no finding (``Finding.to_dict()`` form) reports."""
    seen = [
        (str(f.get("rule_id")), str((f.get("evidence") or {}).get("operation", "")))
        for f in findings
    ]
    return [
        flaw for flaw in truth if not any(flaw.matches(rule, operation) for rule, operation in seen)
    ]
