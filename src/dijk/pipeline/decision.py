"""Decisions: what a stage returns instead of raising.

Denials are values. A stage returns ``None`` to let the request go on,
or a :class:`Decision`. Exceptions raised by a stage are faults, never policy.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class Action(StrEnum):
    """What a decision does to the request."""

    DENY = "deny"
    MONITOR = "monitor"


@dataclass(frozen=True, slots=True)
class Decision:
    """A stage's verdict.

    ``reason`` is a stable ``area.what`` code that also appears in metrics labels and the
    audit record. ``detail`` is shown to the client, so it must never echo raw attacker
    input or secrets.
    """

    action: Action
    status: int
    reason: str
    detail: str
    headers: tuple[tuple[str, str], ...] = ()
    extra: dict[str, object] = field(default_factory=dict)

    @classmethod
    def deny(
        cls,
        status: int,
        reason: str,
        detail: str,
        headers: tuple[tuple[str, str], ...] = (),
        **extra: object,
    ) -> Decision:
        return cls(Action.DENY, status, reason, detail, headers, dict(extra))

    @classmethod
    def monitor(cls, status: int, reason: str, detail: str, **extra: object) -> Decision:
        """Record what would have been denied, and let the request go on."""
        return cls(Action.MONITOR, status, reason, detail, (), dict(extra))

    @property
    def denies(self) -> bool:
        return self.action is Action.DENY
