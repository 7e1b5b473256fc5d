"""Hash chain verification: every kind of tampering is found and named, in memory.

The same cases run against SQLite and PostgreSQL, tampered with plain SQL, in
``tests/integration/test_audit_contract.py``; here the classifier is exercised fast.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest

from dijk.audit.chain import (
    ZERO_HASH,
    ChainedRecord,
    ChainSealer,
    Checkpoint,
    verify_chain,
    verify_store,
)
from dijk.audit.keys import AuditKeys
from dijk.audit.record import AuditRecord

KEYS = AuditKeys.from_secret(b"unit-test-secret-" * 3)
OTHER_KEYS = AuditKeys.from_secret(b"another-secret-!!" * 3)
START = datetime(2025, 3, 1, tzinfo=UTC)


class MemorySource:
    """A ChainSource over a list, tampered with by editing the list."""

    def __init__(self, rows: list[ChainedRecord], checkpoints: list[Checkpoint] | None = None):
        self.rows = rows
        self.saved_checkpoints = checkpoints or []

    async def chains(self) -> list[str]:
        return sorted({row.chain for row in self.rows})

    async def read_chain(self, chain: str, after_seq: int, limit: int) -> list[ChainedRecord]:
        found = sorted(
            (row for row in self.rows if row.chain == chain and row.seq > after_seq),
            key=lambda row: row.seq,
        )
        return found[:limit]

    async def seqs_with_hash(self, chain: str, digest: bytes) -> list[int]:
        return sorted(row.seq for row in self.rows if row.chain == chain and row.hash == digest)

    async def checkpoints(self, chain: str | None = None) -> list[Checkpoint]:
        return [item for item in self.saved_checkpoints if chain in (None, item.chain)]

    def at(self, seq: int) -> int:
        return next(index for index, row in enumerate(self.rows) if row.seq == seq)


def record(number: int) -> AuditRecord:
    return AuditRecord(
        time=START + timedelta(seconds=number),
        request_id=f"req-{number}",
        method="GET",
        status=200,
        decision="allow",
        consumer="mobile-app",
    )


def chain_of(count: int, chain: str = "default") -> tuple[MemorySource, ChainSealer]:
    sealer = ChainSealer(KEYS.hmac_key, chain)
    rows = [sealer.seal(record(number)) for number in range(1, count + 1)]
    tail = Checkpoint.create(KEYS, chain, rows[-1].seq, rows[-1].hash)
    return MemorySource(rows, [tail]), sealer


async def first_problem(source: MemorySource) -> tuple[int, str]:
    report = await verify_chain(source, "default", KEYS.hmac_key, KEYS.public_key)
    assert report.first_problem is not None, "tampering went unnoticed"
    return report.first_problem.seq, report.first_problem.kind


async def test_an_untouched_chain_verifies() -> None:
    source, _ = chain_of(50)
    report = await verify_chain(source, "default", KEYS.hmac_key, KEYS.public_key)
    assert report.intact
    assert (report.records, report.first_seq, report.last_seq, report.checkpoints) == (
        50,
        1,
        50,
        1,
    )


async def test_a_modified_field_is_reported_as_modified() -> None:
    source, _ = chain_of(50)
    index = source.at(17)
    changed = dataclasses.replace(source.rows[index].record, consumer="eve")
    source.rows[index] = source.rows[index]._replace(record=changed)
    assert await first_problem(source) == (17, "modified")


async def test_a_modified_last_record_is_reported_as_modified() -> None:
    source, _ = chain_of(50)
    changed = dataclasses.replace(source.rows[-1].record, status=500)
    source.rows[-1] = source.rows[-1]._replace(record=changed)
    assert await first_problem(source) == (50, "modified")


async def test_a_changed_hash_column_is_reported_as_modified() -> None:
    source, _ = chain_of(50)
    index = source.at(8)
    source.rows[index] = source.rows[index]._replace(hash=b"\x01" * 32)
    assert await first_problem(source) == (8, "modified")


async def test_a_deleted_record_is_reported_as_deleted() -> None:
    source, _ = chain_of(50)
    del source.rows[source.at(30)]
    assert await first_problem(source) == (30, "deleted")


async def test_a_deleted_record_hidden_by_renumbering_is_reported_as_deleted() -> None:
    source, _ = chain_of(50)
    del source.rows[source.at(30)]
    source.rows = [row._replace(seq=row.seq - 1) if row.seq > 30 else row for row in source.rows]
    assert await first_problem(source) == (30, "deleted")


async def test_a_deleted_first_record_is_reported_as_deleted() -> None:
    source, _ = chain_of(10)
    del source.rows[0]
    assert await first_problem(source) == (1, "deleted")


async def test_swapped_records_are_reported_as_reordered() -> None:
    source, _ = chain_of(50)
    first, second = source.at(20), source.at(25)
    source.rows[first], source.rows[second] = (
        source.rows[second]._replace(seq=20),
        source.rows[first]._replace(seq=25),
    )
    assert await first_problem(source) == (20, "reordered")


async def test_a_forged_record_spliced_in_is_reported_as_inserted() -> None:
    source, _ = chain_of(50)
    template = source.rows[source.at(39)]
    forged = template._replace(
        seq=40, record=dataclasses.replace(template.record, request_id="forged")
    )
    source.rows = [row._replace(seq=row.seq + 1) if row.seq >= 40 else row for row in source.rows]
    source.rows.append(forged)
    assert await first_problem(source) == (40, "inserted")


async def test_a_forged_record_appended_is_reported_as_inserted() -> None:
    source, _ = chain_of(50)
    template = source.rows[source.at(12)]
    forged = template._replace(
        seq=51, record=dataclasses.replace(template.record, request_id="forged")
    )
    source.rows.append(forged)
    assert await first_problem(source) == (51, "inserted")


async def test_an_exact_copy_appended_is_reported_as_inserted() -> None:
    source, _ = chain_of(50)
    source.rows.append(source.rows[source.at(12)]._replace(seq=51))
    assert await first_problem(source) == (51, "inserted")


async def test_a_cut_tail_is_reported_as_truncated_against_the_checkpoint() -> None:
    source, _ = chain_of(50)
    source.rows = [row for row in source.rows if row.seq < 45]
    assert await first_problem(source) == (45, "truncated")


async def test_a_cut_tail_without_newer_checkpoint_goes_unnoticed() -> None:
    """The documented limit: only checkpoints bound the tail (hence N records / T seconds)."""
    source, _ = chain_of(50)
    source.saved_checkpoints = []
    source.rows = [row for row in source.rows if row.seq < 45]
    assert (await verify_chain(source, "default", KEYS.hmac_key, KEYS.public_key)).intact


async def test_an_emptied_chain_is_reported_as_truncated_from_seq_1() -> None:
    source, _ = chain_of(5)
    source.rows = []
    report = await verify_store(source, KEYS)
    assert [(problem.seq, problem.kind) for problem in report.chains[0].problems] == [
        (1, "truncated")
    ]


async def test_a_chain_rewritten_with_the_key_is_caught_by_an_exported_checkpoint() -> None:
    source, _ = chain_of(20)
    exported = source.saved_checkpoints
    rewritten, _ = chain_of(20)
    index = rewritten.at(5)
    changed = dataclasses.replace(rewritten.rows[index].record, consumer="eve")
    sealer = ChainSealer(KEYS.hmac_key, "default")
    rows = []
    for row in rewritten.rows:
        body = changed if row.seq == 5 else row.record
        rows.append(sealer.seal(body))
    forged_source = MemorySource(rows, [])
    report = await verify_chain(forged_source, "default", KEYS.hmac_key, KEYS.public_key, exported)
    assert report.first_problem is not None
    assert (report.first_problem.seq, report.first_problem.kind) == (20, "modified")


async def test_a_checkpoint_signed_with_another_key_is_reported() -> None:
    source, _ = chain_of(10)
    rows = source.rows
    source.saved_checkpoints = [Checkpoint.create(OTHER_KEYS, "default", 10, rows[-1].hash)]
    assert await first_problem(source) == (10, "checkpoint")


async def test_a_checkpoint_with_a_changed_seq_fails_its_signature() -> None:
    source, _ = chain_of(10)
    original = source.saved_checkpoints[0]
    source.saved_checkpoints = [dataclasses.replace(original, seq=12)]
    assert await first_problem(source) == (12, "checkpoint")


def test_checkpoints_survive_their_export_form() -> None:
    checkpoint = Checkpoint.create(KEYS, "default", 7, b"\x07" * 32, kind="prune")
    again = Checkpoint.from_json(checkpoint.to_json(KEYS.public_key_hex))
    assert again == checkpoint
    assert again.is_signed_by(KEYS.public_key)
    assert not again.is_signed_by(OTHER_KEYS.public_key)


@pytest.mark.parametrize("missing", ["seq", "hash", "signature", "kind"])
def test_a_malformed_exported_checkpoint_is_a_clear_error(missing: str) -> None:
    data = Checkpoint.create(KEYS, "default", 7, b"\x07" * 32).to_json()
    del data[missing]
    with pytest.raises(ValueError, match=missing):
        Checkpoint.from_json(data)


async def test_a_pruned_chain_verifies_from_its_anchor() -> None:
    source, _ = chain_of(30)
    cut = source.rows[source.at(10)]
    anchor = Checkpoint.create(KEYS, "default", 10, cut.hash, kind="prune")
    source.rows = [row for row in source.rows if row.seq > 10]
    source.saved_checkpoints.append(anchor)
    report = await verify_chain(source, "default", KEYS.hmac_key, KEYS.public_key)
    assert report.intact
    assert report.first_seq == 11


async def test_a_pruned_chain_without_anchor_reports_the_missing_head() -> None:
    source, _ = chain_of(30)
    source.rows = [row for row in source.rows if row.seq > 10]
    assert await first_problem(source) == (1, "deleted")


async def test_several_chains_are_verified_independently() -> None:
    first, _ = chain_of(5, "gateway-a")
    second, _ = chain_of(7, "gateway-b")
    both = MemorySource(
        first.rows + second.rows, first.saved_checkpoints + second.saved_checkpoints
    )
    report = await verify_store(both, KEYS)
    assert report.intact
    assert [(chain.chain, chain.records) for chain in report.chains] == [
        ("gateway-a", 5),
        ("gateway-b", 7),
    ]


async def test_the_wrong_key_fails_every_record() -> None:
    source, _ = chain_of(3)
    report = await verify_chain(source, "default", OTHER_KEYS.hmac_key, KEYS.public_key)
    assert not report.intact
    assert report.problems[0].seq == 1


def test_a_sealer_continues_a_chain_from_its_tail() -> None:
    sealer = ChainSealer(KEYS.hmac_key, "default")
    first = sealer.seal(record(1))
    resumed = ChainSealer(KEYS.hmac_key, "default", first.seq, first.hash)
    second = resumed.seal(record(2))
    assert (second.seq, second.prev_hash) == (2, first.hash)
    assert first.prev_hash == ZERO_HASH
