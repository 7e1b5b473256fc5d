"""What the abuse stages of one configuration share: store, incident mirror, lists, memo.

Built at load without I/O (the Redis pool connects on first use). ``memory://`` stores are
kept per URL for the process, with their incident mirror, so a reload forgets nothing.
"""

from __future__ import annotations

import ipaddress
import time
from collections import OrderedDict
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Final

import structlog
from iptocc import country_code
from prometheus_client import Counter

from dijk.abuse.anomaly import AnomalyModel
from dijk.abuse.incidents import Incident, IncidentBook, Throttle, incident_id
from dijk.abuse.reputation import ReputationLists, resolve_directory
from dijk.abuse.settings import AbuseSettings
from dijk.abuse.signals import Finding, Plan
from dijk.abuse.store import AbuseStore, RedisAbuseStore, open_store
from dijk.metrics import REGISTRY

__all__ = ["INCIDENTS", "AbuseEvent", "AbuseResources", "Memo"]

_LOG: Final = structlog.get_logger("dijk.abuse")
_SYNC_EVERY_S: Final = 1.0

INCIDENTS: Final = Counter(
    "dijk_abuse_incidents",
    "Abuse incidents opened, by reason code and action.",
    ("reason", "action"),
    registry=REGISTRY,
)
STORE_ERRORS: Final = Counter(
    "dijk_abuse_store_errors",
    "Abuse observations lost because storage.url did not answer.",
    registry=REGISTRY,
)


class AbuseEvent:
    """An incident as an alert webhook body (``type: dijk.abuse``)."""

    rule = "abuse"

    def __init__(self, incident: Incident) -> None:
        self.incident = incident

    def payload(self) -> dict[str, Any]:
        incident = self.incident
        return {
            "type": "dijk.abuse",
            "version": 1,
            "incident": incident.public(),
            "time": datetime.fromtimestamp(incident.opened, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "summary": f"{incident.reason} ({incident.action}) {incident.subject} on "
            f"{incident.scope}: {incident.detail}",
        }


class Memo:
    """Keys seen recently (bounded LRU): a repeat within ``ttl_s`` needs no observation."""

    __slots__ = ("_max", "_seen", "_ttl")

    def __init__(self, ttl_s: float = 60.0, max_keys: int = 50_000) -> None:
        self._seen: OrderedDict[str, float] = OrderedDict()
        self._ttl = ttl_s
        self._max = max_keys

    def fresh(self, key: str, now: float) -> bool:
        """True if ``key`` was seen within the ttl; records it otherwise."""
        seen = self._seen.get(key)
        if seen is not None and now - seen < self._ttl:
            return True
        self._seen[key] = now
        self._seen.move_to_end(key)
        if len(self._seen) > self._max:
            self._seen.popitem(last=False)
        return False


class AbuseResources:
    def __init__(
        self,
        settings: AbuseSettings,
        url: str,
        timeout_s: float,
        source: str = "",
        clock: Callable[[], float] = time.time,
        anomaly: bool = False,
    ) -> None:
        self.settings = settings
        self.prefix = settings.key_prefix
        self.store: AbuseStore = open_store(
            url, timeout_s, settings.key_prefix, settings.window_slices, settings.max_memory_keys
        )
        book = getattr(self.store, "book", None)
        if not isinstance(book, IncidentBook):
            book = IncidentBook()
            self.store.book = book  # type: ignore[attr-defined]
        self.book: IncidentBook = book
        self.throttle = Throttle()
        self.memo = Memo()
        self.clock = clock
        self.notify: Callable[[AbuseEvent], None] | None = None
        reputation = settings.reputation
        self.reputation: ReputationLists | None = None
        if reputation.directory is not None and reputation.action != "off":
            self.reputation = ReputationLists(
                resolve_directory(reputation.directory, source), reputation.reload_interval_s
            )
        self._error_logged = 0.0
        self._networks: dict[str, str] = {}
        self.anomaly: AnomalyModel | None = None
        if anomaly:
            self.anomaly = _anomaly_model(settings, url, source)

    def network(self, address: str) -> str:
        """The address's /24 (IPv4) or /48 (IPv6), cached (bounded)."""
        found = self._networks.get(address)
        if found is None:
            settings = self.settings
            found = network_of(address, settings.ipv4_prefix, settings.ipv6_prefix)
            if len(self._networks) >= 65_536:
                self._networks.clear()
            self._networks[address] = found
        return found

    def country(self, address: str) -> str | None:
        try:
            return country_code(address.split("%", 1)[0])
        except ValueError:
            return None

    # -- observing ------------------------------------------------------------------------
    async def observe(self, plan: Plan, now: float) -> list[Finding]:
        """Run the plan's operations (one round trip) and judge the answers."""
        from dijk.storage import StorageUnavailable

        try:
            batch = await self.store.run(plan.ops, self.book.epoch, now)
        except StorageUnavailable as exc:
            self._store_error(exc)
            return []
        if batch.incidents is not None:
            await self._load(batch.epoch, batch.incidents, now)
        self.book.synced = now
        return plan.judge(batch.results) if plan.ops else []

    async def sync(self, now: float) -> None:
        """Bring the incident mirror up to date when no observation has for a while."""
        if now - self.book.synced >= _SYNC_EVERY_S:
            await self.observe(Plan(), now)

    async def _load(self, epoch: int, table: dict[str, bytes], now: float) -> None:
        expired = self.book.load(epoch, table, now)
        if expired and isinstance(self.store, RedisAbuseStore):
            from dijk.storage import StorageUnavailable

            try:
                await self.store.drop_expired(expired)
            except StorageUnavailable as exc:
                self._store_error(exc)

    def _store_error(self, exc: Exception) -> None:
        STORE_ERRORS.inc()
        now = time.monotonic()
        if now - self._error_logged > 10:
            self._error_logged = now
            _LOG.error("abuse: storage unavailable, observations lost: %s", exc)

    # -- incidents ------------------------------------------------------------------------
    async def open(
        self, finding: Finding, action: str, duration_s: float, per_minute: int, now: float
    ) -> Incident | None:
        """Open an incident for ``finding`` unless one is already open; the new incident."""
        if self.book.exists(finding.reason, finding.subject, finding.scope, now):
            return None
        incident = Incident(
            id=incident_id(finding.reason, finding.subject, finding.scope),
            reason=finding.reason,
            signal=finding.signal,
            subject=finding.subject,
            scope=finding.scope,
            action=action,
            opened=now,
            until=now + duration_s,
            detail=finding.detail,
            throttle_per_minute=per_minute,
            values=dict(finding.values),
        )
        self.book.add(incident)
        INCIDENTS.labels(incident.reason, incident.action).inc()
        _LOG.warning(
            "abuse incident",
            reason=incident.reason,
            action=action,
            subject=incident.subject,
            scope=incident.scope,
            detail=incident.detail,
        )
        from dijk.storage import StorageUnavailable

        try:
            await self.store.put_incident(incident.id, incident.to_json(), incident.until)
        except StorageUnavailable as exc:
            self._store_error(exc)  # still enforced here; other instances miss it
        if self.notify is not None:
            self.notify(AbuseEvent(incident))
        return incident

    async def list_incidents(self) -> list[Incident]:
        epoch, table = await self.store.incidents()
        now = self.clock()
        await self._load(epoch, table, now)
        return self.book.all(now)

    async def lift(self, incident_id_: str) -> bool:
        found = await self.store.lift(incident_id_)
        self.book.remove(incident_id_)
        return found

    def acquire(self) -> None:
        self.store.acquire()

    async def release(self) -> None:
        if self.anomaly is not None and self.store._users <= 1:
            self.anomaly.save()
        await self.store.release()


_MODELS: dict[tuple[str, str], AnomalyModel] = {}


def _anomaly_model(settings: AbuseSettings, url: str, source: str) -> AnomalyModel:
    """The behaviour model, carried over from the previous configuration of this process."""
    chosen = settings.anomaly
    path = resolve_directory(chosen.state_file, source) if chosen.state_file else None
    model = AnomalyModel(chosen, path)
    previous = _MODELS.get((url, settings.key_prefix))
    if previous is not None:
        model.adopt(previous)
    _MODELS[(url, settings.key_prefix)] = model
    return model


def network_of(address: str, ipv4_prefix: int, ipv6_prefix: int) -> str:
    """``203.0.113.0/24`` for ``203.0.113.7``; IPv4-mapped IPv6 counts as IPv4."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return "invalid"
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    prefix = ipv4_prefix if ip.version == 4 else ipv6_prefix
    return str(ipaddress.ip_network(f"{ip}/{prefix}", strict=False))
