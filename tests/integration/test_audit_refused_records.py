"""A strict record whose commit is refused says what the client saw, and the chain holds.

Under ``durability: strict`` and ``on_sink_error: deny`` the gateway releases a response
only after its record is committed. When the store is down the client gets a 503 (or a
streamed response cut short) instead, so the record kept in the spool, and replayed into
the chain later, must say that, not ``200 allow`` for an answer that never arrived.
The replacement is sealed in the record's place: the chain verifies after replay.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Sequence

from dijk.audit.chain import ChainedRecord, Checkpoint, verify_store
from dijk.audit.store import AuditQuery, AuditStore
from dijk.audit.writer import AuditUnavailableError, AuditWriter
from tests.integration.test_audit_contract import (
    KEYS,
    Backend,
    FlakyStore,
    backend,  # noqa: F401 - the fixture
    record,
    wait_until,
)


class SlowFailingStore(FlakyStore):
    """Writes take a while to fail, so that later batches are sealed meanwhile."""

    async def append(
        self, rows: Sequence[ChainedRecord], checkpoint: Checkpoint | None = None
    ) -> None:
        if self.down:
            await asyncio.sleep(0.1)
        await super().append(rows, checkpoint)


async def stored(store: AuditStore) -> dict[str, tuple[int, str, str | None]]:
    page = await store.query(AuditQuery(limit=1000))
    return {
        row.record.request_id: (row.record.status, row.record.decision, row.record.reason)
        for row in page.records
    }


async def strict_request(writer: AuditWriter, number: int, cut: bool = False) -> str:
    original = dataclasses.replace(record(number), status=200, decision="allow", reason=None)
    if cut:
        seen = dataclasses.replace(
            original, decision="abort", reason="audit.unavailable", bytes_out=4096
        )
    else:
        seen = dataclasses.replace(
            original, status=503, decision="deny", reason="audit.unavailable", bytes_out=190
        )
    try:
        await writer.append(original, if_refused=seen)
    except AuditUnavailableError:
        return "refused"
    return "released"


async def test_a_refused_strict_record_says_what_the_client_saw(backend: Backend) -> None:  # noqa: F811
    flaky = FlakyStore(backend.store(create=True))
    writer = backend.writer(store=flaky, durability="strict", on_sink_error="deny")
    async with writer:
        assert await strict_request(writer, 1) == "released"
        flaky.down = True
        outcomes = await asyncio.gather(
            strict_request(writer, 2), strict_request(writer, 3, cut=True)
        )
        # A refusal the server answers itself (no alternative): recorded as it is.
        writer.append_nowait(dataclasses.replace(record(4), status=400, decision="deny"))
        await writer.flush()
        assert outcomes == ["refused", "refused"]
        flaky.down = False
        await wait_until(lambda: writer.sink_available)
        assert await strict_request(writer, 5) == "released"
    async with backend.store() as store:
        rows = await stored(store)
        report = await verify_store(store, KEYS)
    assert rows["req-1"] == (200, "allow", None)
    assert rows["req-2"] == (503, "deny", "audit.unavailable")
    assert rows["req-3"] == (200, "abort", "audit.unavailable")
    assert rows["req-4"][:2] == (400, "deny")
    assert rows["req-5"] == (200, "allow", None)
    assert report.intact, report.chains[0].problems
    assert report.records == 5


async def test_batches_sealed_behind_a_refused_one_still_chain(backend: Backend) -> None:  # noqa: F811
    """Small batches: while one batch's write is failing, the next is sealed; when the
    first is sealed again with what its clients saw, the next must follow it."""
    slow = SlowFailingStore(backend.store(create=True))
    writer = backend.writer(
        store=slow, durability="strict", on_sink_error="deny", max_batch=4, max_queue=100
    )
    async with writer:
        assert await strict_request(writer, 1) == "released"
        slow.down = True
        last = 13
        outcomes = await asyncio.gather(*(strict_request(writer, n) for n in range(2, last + 1)))
        assert set(outcomes) == {"refused"}
        slow.down = False
        await wait_until(lambda: writer.sink_available)
    async with backend.store() as store:
        rows = await stored(store)
        report = await verify_store(store, KEYS)
    assert report.intact, report.chains[0].problems
    assert len(rows) == last
    assert all(rows[f"req-{n}"] == (503, "deny", "audit.unavailable") for n in range(2, last + 1))
