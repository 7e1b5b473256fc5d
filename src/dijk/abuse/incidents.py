"""Incidents: what a detector concluded, about whom, for how long, and what it does.

An incident names a *subject* (``ip:203.0.113.7``, ``net:203.0.113.0/24``,
``cred:<hashed credential>``, ``account:<username digest>``, ``country:NL``,
``route:login``) and a *scope* (a route name, or ``*`` for every route). Every instance
keeps a mirror of the incident table (:class:`IncidentBook`), refreshed whenever the
shared epoch moves, so the request phase decides from memory. A request's verdict is
pure: :func:`verdict` turns an incident into a decision.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field
from typing import Any

import orjson

from dijk.pipeline.decision import Decision

__all__ = ["Incident", "IncidentBook", "Throttle", "incident_id", "verdict"]


def incident_id(reason: str, subject: str, scope: str) -> str:
    return hashlib.sha256(f"{reason}|{subject}|{scope}".encode()).hexdigest()[:16]


@dataclass(frozen=True, slots=True)
class Incident:
    id: str
    reason: str  # abuse.credential_stuffing ...
    signal: str  # which signal fired: accounts_per_network, distinct_ids ...
    subject: str
    scope: str
    action: str  # monitor | throttle | block
    opened: float  # wall-clock seconds
    until: float
    detail: str  # the human explanation, safe to show the client
    throttle_per_minute: int = 0
    values: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> bytes:
        return orjson.dumps(asdict(self))

    @classmethod
    def from_json(cls, data: bytes) -> Incident:
        document = orjson.loads(data)
        return cls(**document)

    def public(self) -> dict[str, Any]:
        """For the admin API: everything (subjects are addresses and hashed credentials)."""
        return asdict(self)


class IncidentBook:
    """This instance's mirror of the shared incident table."""

    __slots__ = ("_by_subject", "epoch", "synced")

    def __init__(self) -> None:
        self.epoch = -1  # never synced: the first batch brings the table
        self.synced = 0.0
        self._by_subject: dict[str, list[Incident]] = {}

    def load(self, epoch: int, table: dict[str, bytes], now: float) -> list[str]:
        """Replace the mirror; returns ids of expired incidents (to drop from the store)."""
        by_subject: dict[str, list[Incident]] = {}
        expired: list[str] = []
        for key, payload in table.items():
            try:
                incident = Incident.from_json(payload)
            except (ValueError, TypeError):
                expired.append(key)  # unreadable (another version wrote it): forget it
                continue
            if incident.until <= now:
                expired.append(key)
                continue
            by_subject.setdefault(incident.subject, []).append(incident)
        self._by_subject = by_subject
        self.epoch = epoch
        return expired

    def add(self, incident: Incident) -> None:
        found = self._by_subject.setdefault(incident.subject, [])
        found[:] = [item for item in found if item.id != incident.id]
        found.append(incident)

    def remove(self, incident_id_: str) -> None:
        for subject, found in list(self._by_subject.items()):
            kept = [item for item in found if item.id != incident_id_]
            if kept:
                self._by_subject[subject] = kept
            else:
                del self._by_subject[subject]

    def active(self, subject: str, scope: str, now: float) -> Incident | None:
        """The strongest live incident for ``subject`` on route ``scope``."""
        found = self._by_subject.get(subject)
        if not found:
            return None
        best: Incident | None = None
        for incident in found:
            if incident.until <= now or (incident.scope != "*" and incident.scope != scope):
                continue
            if best is None or _strength(incident) > _strength(best):
                best = incident
        return best

    def exists(self, reason: str, subject: str, scope: str, now: float) -> bool:
        found = self._by_subject.get(subject)
        if not found:
            return False
        return any(
            item.reason == reason and item.scope == scope and item.until > now for item in found
        )

    def __bool__(self) -> bool:
        return bool(self._by_subject)

    def all(self, now: float) -> list[Incident]:
        return sorted(
            (item for found in self._by_subject.values() for item in found if item.until > now),
            key=lambda item: item.opened,
        )


_STRENGTH = {"block": 3, "throttle": 2, "monitor": 1}


def _strength(incident: Incident) -> int:
    return _STRENGTH.get(incident.action, 0)


class Throttle:
    """Requests per subject per minute under a throttle incident (this instance only)."""

    __slots__ = ("_counts",)

    def __init__(self) -> None:
        self._counts: dict[str, tuple[int, int]] = {}

    def take(self, key: str, limit: int, now: float) -> int:
        """0 when allowed, else seconds until the minute ends."""
        minute = int(now // 60)
        found = self._counts.get(key)
        count = found[1] + 1 if found is not None and found[0] == minute else 1
        if len(self._counts) > 100_000:
            self._counts.clear()
        self._counts[key] = (minute, count)
        if count <= limit:
            return 0
        return max(1, 60 - int(now % 60))


def verdict(incident: Incident, now: float, throttle: Throttle, key: str) -> Decision | None:
    """What ``incident`` does to one request from its subject (None: nothing)."""
    remaining = max(1, int(incident.until - now + 0.999))
    extra = {"incident": incident.id}
    if incident.action == "block":
        return Decision.deny(
            403,
            incident.reason,
            f"{incident.detail} Blocked for {remaining} s more.",
            (("Retry-After", str(remaining)),),
            **extra,
        )
    if incident.action == "throttle":
        wait = throttle.take(incident.id + key, incident.throttle_per_minute, now)
        if not wait:
            return None
        return Decision.deny(
            429,
            incident.reason,
            f"{incident.detail} Throttled to {incident.throttle_per_minute} requests a minute "
            f"for {remaining} s more.",
            (("Retry-After", str(wait)),),
            **extra,
        )
    # monitor: the finding was recorded on the request that tripped the detector, the
    # incident is listed and alerted; the subject's other requests are not flagged.
    return None
