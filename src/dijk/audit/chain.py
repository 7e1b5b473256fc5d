"""Hash chain, signed checkpoints, verification and chain-preserving pruning.

Each record in a chain gets a sequence number and

    hash = HMAC-SHA256(hmac_key, prev_hash || canonical(record))

where ``prev_hash`` is the previous record's hash (32 zero bytes for the first record)
and ``canonical`` is the encoding of ``record.py``. Each stored row keeps its own
``prev_hash`` too. That column adds no security (it is an input the HMAC covers) but it
lets verification tell *what* happened to a broken chain, not only *where*:

* a row whose HMAC does not match its own content was **modified** (or, if the chain
  runs on around it, **inserted**);
* an authentic row that does not follow its predecessor was **reordered** (its
  predecessor exists elsewhere), follows a **deleted** row (its predecessor exists
  nowhere), or is an **inserted** copy (its hash occurs twice);
* a gap in the sequence numbers is a **deleted** row;
* a chain that ends before the latest signed checkpoint has a **truncated** tail.

The classification is a diagnosis, the detection is not: any change to a row without
the key breaks the HMAC or the linkage. Two limits are inherent and documented: rows
appended after the newest checkpoint can be cut off unnoticed (the writer checkpoints
every N records or T seconds and on close, and checkpoints should be exported), and
whoever holds the key can rewrite the chain (exported checkpoints catch that too).

Several gateway instances write to one database on separate chains (one per instance
name), so no instance waits for another to extend a chain.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final, Literal, NamedTuple, Protocol

import orjson
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from dijk.audit.keys import AuditKeys, key_id_of
from dijk.audit.record import (
    AuditRecord,
    canonical_bytes,
    datetime_from_us,
    datetime_to_us,
    sanitise_record,
)

__all__ = [
    "ZERO_HASH",
    "ChainReport",
    "ChainSealer",
    "ChainSource",
    "ChainedRecord",
    "Checkpoint",
    "CheckpointKind",
    "Problem",
    "ProblemKind",
    "PruneRefusedError",
    "VerifyReport",
    "record_hash",
    "verify_chain",
    "verify_store",
]

ZERO_HASH: Final = bytes(32)
_PAGE: Final = 5000

ProblemKind = Literal["modified", "deleted", "reordered", "inserted", "truncated", "checkpoint"]
CheckpointKind = Literal["periodic", "prune"]


class ChainedRecord(NamedTuple):
    """A record sealed into a chain: its place (``chain``, ``seq``) and its hashes.

    A named tuple rather than a dataclass: one is made per request on the writer's hot
    path, and tuples are the cheapest immutable objects Python builds.
    """

    chain: str
    seq: int
    prev_hash: bytes
    hash: bytes
    record: AuditRecord


def record_hash(hmac_key: bytes, prev_hash: bytes, record: AuditRecord, chain: str) -> bytes:
    """The chain hash of ``record`` after ``prev_hash`` (see the module docstring)."""
    return hmac.digest(hmac_key, prev_hash + canonical_bytes(record, chain), "sha256")


class _Mac:
    """HMAC-SHA256 (RFC 2104) with the padded-key states hashed once, not per record.

    Equal to ``hmac.digest(key, message, "sha256")`` (a unit test holds it to that), but
    copying two prepared SHA-256 states is cheaper than building an HMAC object per call.
    """

    __slots__ = ("_inner", "_outer")

    def __init__(self, key: bytes):
        if len(key) > 64:
            key = hashlib.sha256(key).digest()
        padded = key.ljust(64, b"\0")
        self._inner = hashlib.sha256(bytes(byte ^ 0x36 for byte in padded))
        self._outer = hashlib.sha256(bytes(byte ^ 0x5C for byte in padded))

    def digest(self, message: bytes) -> bytes:
        inner = self._inner.copy()
        inner.update(message)
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer.digest()


class ChainSealer:
    """Extends one chain: assigns the next ``seq`` and hash to each record.

    Not thread-safe and not shared: one writer owns a chain.
    """

    __slots__ = ("_mac", "chain", "prev_hash", "seq")

    def __init__(self, hmac_key: bytes, chain: str, seq: int = 0, prev_hash: bytes = ZERO_HASH):
        self._mac = _Mac(hmac_key)
        self.chain = chain
        self.seq = seq
        self.prev_hash = prev_hash

    def seal(self, record: AuditRecord) -> ChainedRecord:
        try:
            body = canonical_bytes(record, self.chain)
        except orjson.JSONEncodeError:  # lone surrogates in a string
            record = sanitise_record(record)
            body = canonical_bytes(record, self.chain)
        if b"\\u0000" in body:
            record = sanitise_record(record)
            body = canonical_bytes(record, self.chain)
        digest = self._mac.digest(self.prev_hash + body)
        self.seq += 1
        sealed = ChainedRecord(self.chain, self.seq, self.prev_hash, digest, record)
        self.prev_hash = digest
        return sealed


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A signed statement "chain C had hash H at sequence number S at time T".

    ``prune`` checkpoints anchor the start of a chain whose older records were removed
    by retention; ``periodic`` ones bound how much of the tail can disappear unnoticed.
    """

    chain: str
    seq: int
    hash: bytes
    time: datetime
    kind: CheckpointKind
    key_id: str
    signature: bytes

    @staticmethod
    def message(
        chain: str, seq: int, digest: bytes, time: datetime, kind: str, key_id: str
    ) -> bytes:
        """The signed bytes: canonical JSON, like records."""
        body = {
            "chain": chain,
            "hash": digest.hex(),
            "key_id": key_id,
            "kind": kind,
            "seq": seq,
            "time_us": datetime_to_us(time),
            "type": "dijk.audit.checkpoint",
            "v": 1,
        }
        return orjson.dumps(body, option=orjson.OPT_SORT_KEYS)

    @classmethod
    def create(
        cls,
        keys: AuditKeys,
        chain: str,
        seq: int,
        digest: bytes,
        kind: CheckpointKind = "periodic",
        time: datetime | None = None,
    ) -> Checkpoint:
        moment = datetime_from_us(datetime_to_us(time or datetime.now(UTC)))
        key_id = keys.key_id
        signature = keys.signing_key.sign(cls.message(chain, seq, digest, moment, kind, key_id))
        return cls(chain, seq, digest, moment, kind, key_id, signature)

    def is_signed_by(self, public_key: Ed25519PublicKey) -> bool:
        if self.key_id != key_id_of(public_key):
            return False
        message = self.message(self.chain, self.seq, self.hash, self.time, self.kind, self.key_id)
        try:
            public_key.verify(self.signature, message)
        except InvalidSignature:
            return False
        return True

    def to_json(self, public_key_hex: str | None = None) -> dict[str, Any]:
        """The export form (one JSON object per line in ``checkpoint export``)."""
        data: dict[str, Any] = {
            "type": "dijk.audit.checkpoint",
            "v": 1,
            "chain": self.chain,
            "seq": self.seq,
            "hash": self.hash.hex(),
            "time": self.time.isoformat().replace("+00:00", "Z"),
            "kind": self.kind,
            "key_id": self.key_id,
            "signature": self.signature.hex(),
        }
        if public_key_hex is not None:
            data["public_key"] = public_key_hex
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Checkpoint:
        """Parse the export form; raises ``ValueError`` with the offending field."""
        try:
            kind = data["kind"]
            if kind not in ("periodic", "prune"):
                raise ValueError(f"unknown checkpoint kind {kind!r}")
            time = datetime.fromisoformat(str(data["time"]).replace("Z", "+00:00"))
            if time.tzinfo is None:
                raise ValueError("checkpoint time has no time zone")
            return cls(
                chain=str(data["chain"]),
                seq=int(data["seq"]),
                hash=bytes.fromhex(data["hash"]),
                time=time.astimezone(UTC),
                kind=kind,
                key_id=str(data["key_id"]),
                signature=bytes.fromhex(data["signature"]),
            )
        except KeyError as exc:
            raise ValueError(f"checkpoint lacks field {exc.args[0]!r}") from None
        except (TypeError, AttributeError) as exc:
            raise ValueError(f"malformed checkpoint: {exc}") from None


class ChainSource(Protocol):
    """What verification needs from a store (both backends implement it)."""

    async def chains(self) -> list[str]: ...

    async def read_chain(self, chain: str, after_seq: int, limit: int) -> list[ChainedRecord]: ...

    async def seqs_with_hash(self, chain: str, digest: bytes) -> list[int]: ...

    async def checkpoints(self, chain: str | None = None) -> list[Checkpoint]: ...


@dataclass(frozen=True, slots=True)
class Problem:
    seq: int
    kind: ProblemKind
    detail: str


@dataclass(slots=True)
class ChainReport:
    chain: str
    records: int = 0
    first_seq: int | None = None
    last_seq: int | None = None
    checkpoints: int = 0
    problems: list[Problem] = field(default_factory=list)

    @property
    def intact(self) -> bool:
        return not self.problems

    @property
    def first_problem(self) -> Problem | None:
        return min(self.problems, key=lambda problem: problem.seq, default=None)


@dataclass(slots=True)
class VerifyReport:
    chains: list[ChainReport]

    @property
    def intact(self) -> bool:
        return all(report.intact for report in self.chains)

    @property
    def records(self) -> int:
        return sum(report.records for report in self.chains)


class PruneRefusedError(Exception):
    """Pruning would cut through a chain that does not verify."""


async def _rows(source: ChainSource, chain: str) -> AsyncIterator[ChainedRecord]:
    after = -1
    while True:
        page = await source.read_chain(chain, after, _PAGE)
        for row in page:
            yield row
        if len(page) < _PAGE:
            return
        after = page[-1].seq


class _Walk:
    """State of one chain walk; split out so each decision reads on its own."""

    def __init__(self, source: ChainSource, hmac_key: bytes, report: ChainReport, limit: int):
        self.source = source
        self.mac = _Mac(hmac_key)
        self.report = report
        self.limit = limit

    def authentic(self, row: ChainedRecord) -> bool:
        try:
            body = canonical_bytes(row.record, row.chain)
            expected = self.mac.digest(bytes(row.prev_hash) + body)
        except (TypeError, AttributeError, ValueError, orjson.JSONEncodeError):
            return False  # a column holds something no writer ever wrote
        return hmac.compare_digest(expected, bytes(row.hash))

    def add(self, seq: int, kind: ProblemKind, detail: str) -> None:
        if len(self.report.problems) < self.limit:
            self.report.problems.append(Problem(seq, kind, detail))

    @property
    def full(self) -> bool:
        return len(self.report.problems) >= self.limit

    async def misplaced(self, row: ChainedRecord) -> None:
        """An authentic row that does not follow its predecessor: classify why."""
        chain = row.chain
        if len(await self.source.seqs_with_hash(chain, row.hash)) > 1:
            self.add(row.seq, "inserted", "copy of another record of the chain")
        elif await self.source.seqs_with_hash(chain, row.prev_hash):
            self.add(row.seq, "reordered", "authentic record out of its place")
        else:
            self.add(row.seq, "deleted", "the record before this one is missing")

    def forged(
        self, row: ChainedRecord, following: ChainedRecord | None, expected_prev: bytes
    ) -> bytes:
        """A row whose HMAC fails; returns the hash the next row should follow."""
        if following is not None and self.authentic(following):
            if following.prev_hash == expected_prev:
                self.add(row.seq, "inserted", "record not in the chain; the chain runs around it")
                return expected_prev
            if following.prev_hash == row.hash:
                self.add(row.seq, "modified", "content does not match its hash")
                return row.hash
        if following is None and row.prev_hash != expected_prev:
            self.add(row.seq, "inserted", "record appended that is not in the chain")
            return expected_prev
        self.add(row.seq, "modified", "content does not match its hash")
        return row.hash


async def verify_chain(
    source: ChainSource,
    chain: str,
    hmac_key: bytes,
    public_key: Ed25519PublicKey,
    extra_checkpoints: Iterable[Checkpoint] = (),
    max_problems: int = 20,
) -> ChainReport:
    """Walk one chain in sequence order and report what is wrong with it."""
    report = ChainReport(chain)
    walk = _Walk(source, hmac_key, report, max_problems)
    anchors: dict[int, bytes] = {}
    for checkpoint in [*await source.checkpoints(chain), *extra_checkpoints]:
        if checkpoint.chain != chain:
            continue
        if not checkpoint.is_signed_by(public_key):
            walk.add(checkpoint.seq, "checkpoint", "checkpoint signature does not verify")
            continue
        report.checkpoints += 1
        known = anchors.setdefault(checkpoint.seq, checkpoint.hash)
        if known != checkpoint.hash:
            walk.add(checkpoint.seq, "checkpoint", "two signed checkpoints disagree")

    rows = aiter(_rows(source, chain))
    row = await anext(rows, None)
    expected_prev = ZERO_HASH
    expected_seq = 1
    if row is not None and row.seq != 1:
        if row.seq - 1 in anchors:
            expected_prev = anchors[row.seq - 1]
        else:
            first_missing = max((seq for seq in anchors if seq < row.seq), default=0) + 1
            walk.add(first_missing, "deleted", f"records before seq {row.seq} are missing")
            expected_prev = row.prev_hash
        expected_seq = row.seq
        report.first_seq = row.seq
    elif row is not None:
        report.first_seq = 1

    while row is not None and not walk.full:
        following = await anext(rows, None)
        report.records += 1
        report.last_seq = row.seq
        authentic = walk.authentic(row)
        if row.seq != expected_seq:
            walk.add(expected_seq, "deleted", f"seq {expected_seq}..{row.seq - 1} missing")
            if not authentic:
                walk.add(row.seq, "modified", "content does not match its hash")
            expected_prev = row.hash
        elif authentic and row.prev_hash == expected_prev:
            expected_prev = row.hash
        elif authentic:
            await walk.misplaced(row)
            expected_prev = row.hash
        else:
            expected_prev = walk.forged(row, following, expected_prev)
        anchor = anchors.get(row.seq)
        if anchor is not None and anchor != row.hash:
            walk.add(row.seq, "modified", "record differs from the signed checkpoint")
        expected_seq = row.seq + 1
        row = following

    newest = max(anchors, default=0)
    last = report.last_seq or 0
    if newest > last and not walk.full:
        walk.add(last + 1, "truncated", f"chain ends at seq {last}; checkpoint at seq {newest}")
    report.problems.sort(key=lambda problem: problem.seq)
    return report


async def verify_store(
    source: ChainSource,
    keys: AuditKeys,
    public_key: Ed25519PublicKey | None = None,
    extra_checkpoints: Sequence[Checkpoint] = (),
    max_problems: int = 20,
) -> VerifyReport:
    """Verify every chain found in the store or named by an external checkpoint.

    ``public_key`` defaults to the one derived from ``keys``; pass the exported public key
    to check checkpoints independently of the secret.
    """
    trusted = public_key or keys.public_key
    names = set(await source.chains())
    names.update(checkpoint.chain for checkpoint in extra_checkpoints)
    names.update(checkpoint.chain for checkpoint in await source.checkpoints())
    reports = [
        await verify_chain(
            source, name, keys.hmac_key, trusted, extra_checkpoints, max_problems=max_problems
        )
        for name in sorted(names)
    ]
    return VerifyReport(reports)
