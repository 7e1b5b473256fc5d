"""Alert rules evaluated over audit records: pure, clock passed in, no I/O.

Per rule and key the engine keeps the times of the last ``threshold + 1`` matching records
(a deque, so memory per key is bounded by the rule); a rule fires when the oldest of them
is still inside the window, i.e. more than ``threshold`` records in ``window_s``. After
firing, the key is quiet for ``cooldown_s``. At most ``max_keys`` keys are tracked per
rule; the least recently seen are forgotten first.
"""

from __future__ import annotations

from collections import Counter, OrderedDict, deque
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from dijk.alerts.settings import AlertRule, AlertSettings
from dijk.audit.record import AuditRecord

__all__ = ["Alert", "AlertEngine"]


@dataclass(frozen=True, slots=True)
class Alert:
    rule: str
    per: str
    key: str
    count: int
    threshold: int
    window_s: float
    time: datetime
    reasons: dict[str, int]
    request_ids: tuple[str, ...]
    client_ip: str | None = None

    def payload(self) -> dict[str, Any]:
        """The JSON body posted to the webhook."""
        body: dict[str, Any] = {
            "type": "dijk.alert",
            "version": 1,
            "rule": self.rule,
            "per": self.per,
            "key": self.key,
            "count": self.count,
            "threshold": self.threshold,
            "window_s": self.window_s,
            "time": self.time.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "reasons": self.reasons,
            "request_ids": list(self.request_ids),
            "summary": f"{self.rule}: {self.count} matching requests within {self.window_s:g} s"
            f" for {self.per} {self.key} (threshold {self.threshold})",
        }
        if self.client_ip is not None:
            body["client_ip"] = self.client_ip
        return body


@dataclass(slots=True)
class _Track:
    hits: deque[tuple[float, str, str]]
    quiet_until: float = 0.0


@dataclass(slots=True)
class _Rule:
    config: AlertRule
    exact: frozenset[str]
    prefixes: tuple[str, ...]
    any_reason: bool
    decisions: frozenset[str]
    tracks: OrderedDict[str, _Track] = field(default_factory=OrderedDict)

    def matches(self, record: AuditRecord) -> bool:
        if record.decision not in self.decisions:
            return False
        if self.any_reason:
            return True
        reason = record.reason
        if reason is None:
            return False
        return reason in self.exact or reason.startswith(self.prefixes)


def _compile(rule: AlertRule) -> _Rule:
    exact = frozenset(reason for reason in rule.reasons if not reason.endswith("*"))
    prefixes = tuple(reason[:-1] for reason in rule.reasons if reason.endswith(".*"))
    return _Rule(rule, exact, prefixes, "*" in rule.reasons, frozenset(rule.decisions))


class AlertEngine:
    def __init__(self, settings: AlertSettings) -> None:
        self._rules = [_compile(rule) for rule in settings.rules]
        self._max_keys = settings.max_keys
        self._include_ip = settings.include_client_ip

    @property
    def active(self) -> bool:
        return bool(self._rules)

    def observe(
        self, record: AuditRecord, now: float, raw_client_ip: str | None = None
    ) -> list[Alert]:
        """Count ``record`` (at monotonic time ``now``); return the alerts it fires."""
        fired: list[Alert] = []
        for rule in self._rules:
            if not rule.matches(record):
                continue
            key = self._key(rule.config, record)
            if key is None:
                continue
            alert = self._count(rule, key, record, now, raw_client_ip)
            if alert is not None:
                fired.append(alert)
        return fired

    @staticmethod
    def _key(rule: AlertRule, record: AuditRecord) -> str | None:
        if rule.per == "client_ip":
            return record.client_ip
        if rule.per == "consumer":
            return record.consumer
        if rule.per == "route":
            return record.route
        return "*"

    def _count(
        self, rule: _Rule, key: str, record: AuditRecord, now: float, raw_ip: str | None
    ) -> Alert | None:
        config = rule.config
        track = rule.tracks.get(key)
        if track is None:
            track = _Track(deque(maxlen=config.threshold + 1))
            rule.tracks[key] = track
            if len(rule.tracks) > self._max_keys:
                rule.tracks.popitem(last=False)
        else:
            rule.tracks.move_to_end(key)
        track.hits.append((now, record.reason or "", record.request_id))
        if now < track.quiet_until or len(track.hits) <= config.threshold:
            return None
        oldest = track.hits[0][0]
        if now - oldest > config.window_s:
            return None
        track.quiet_until = now + config.cooldown_s
        reasons = Counter(reason for _, reason, _ in track.hits)
        alert = Alert(
            rule=config.name,
            per=config.per,
            key=key,
            count=len(track.hits),
            threshold=config.threshold,
            window_s=config.window_s,
            time=record.time,
            reasons=dict(sorted(reasons.items())),
            request_ids=tuple(request_id for _, _, request_id in track.hits)[-10:],
            client_ip=raw_ip if self._include_ip and config.per == "client_ip" else None,
        )
        track.hits.clear()
        return alert
