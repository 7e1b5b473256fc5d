"""What a rate-limiting stage does when its storage cannot answer.

``deny`` (the default) answers 503 ``ratelimit.storage_unavailable``; ``allow`` lets the
request through unlimited. Either way the error is counted in
``dijk_ratelimit_storage_errors_total`` and logged at most once per interval, so an outage
neither floods the log nor goes unnoticed.
"""

from __future__ import annotations

import time

import structlog
from prometheus_client import Counter

from dijk.metrics import REGISTRY
from dijk.pipeline.decision import Decision

log = structlog.get_logger("dijk.ratelimit")

STORAGE_ERRORS = Counter(
    "dijk_ratelimit_storage_errors",
    "Rate-limit checks whose storage did not answer, by stage and what was done.",
    ("stage", "action"),
    registry=REGISTRY,
)


class StorageErrorPolicy:
    def __init__(self, action: str, log_interval_s: float, stage: str) -> None:
        self.action = action
        self._interval = log_interval_s
        self._stage = stage
        self._last_log = -1e18
        self._suppressed = 0
        self._counter = STORAGE_ERRORS.labels(stage, action)

    def handle(self, error: Exception, request_id: str) -> Decision | None:
        self._counter.inc()
        now = time.monotonic()
        if now - self._last_log >= self._interval:
            log.error(
                "ratelimit_storage_unavailable",
                stage=self._stage,
                action=self.action,
                error=str(error)[:200],
                request_id=request_id,
                suppressed_since_last=self._suppressed,
            )
            self._last_log = now
            self._suppressed = 0
        else:
            self._suppressed += 1
        if self.action == "allow":
            return None
        return Decision.deny(
            503,
            "ratelimit.storage_unavailable",
            "The rate-limit store is unavailable; the request was not forwarded.",
            (("Retry-After", "5"),),
        )
