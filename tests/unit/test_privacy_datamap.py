"""The data map: aggregation in memory, periodic flush, what reaches the database."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from dijk.detect.pii_model import Category
from dijk.privacy.datamap import DataMapRecorder, Observation
from dijk.privacy.db import PrivacyDatabase, open_privacy_db
from dijk.privacy.endpoint import endpoint_template
from dijk.privacy.pseudonyms import (
    SubjectHasher,
    cidr_pseudonyms,
    client_pseudonyms,
    network_of,
)

KEY = b"k" * 32
T0 = 1_790_000_000_000_000  # microseconds


def observation(**changes: object) -> Observation:
    base = Observation(
        time_us=T0,
        method="GET",
        endpoint="/api/v1/accounts",
        route="accounts",
        consumer="mobile-app",
        auth_method="api_key",
        scopes=("accounts:read",),
        client="client:aaaa",
        client_net="net:bbbb",
        response={("$.accounts[*].email", "email"): 3, ("$.accounts[*].iban", "iban"): 3},
        masked=frozenset({"email"}),
        subjects={"email": {"pii:email:1", "pii:email:2", "pii:email:3"}},
        exposed=True,
    )
    for name, value in changes.items():
        setattr(base, name, value)
    return base


def recorder_for(url: str, **options: object) -> DataMapRecorder:
    return DataMapRecorder(
        lambda: open_privacy_db(url),
        flush_interval_s=3600,
        meta={"region": "NL"},
        **options,  # type: ignore[arg-type]
    )


def rows(path: Path, table: str) -> list[tuple[object, ...]]:
    with sqlite3.connect(path) as connection:
        return list(connection.execute(f"SELECT * FROM {table}"))


async def test_observations_are_aggregated_and_flushed_in_one_write(tmp_path: Path) -> None:
    db = tmp_path / "audit.db"
    recorder = recorder_for(f"sqlite:///{db}")
    for offset in range(3):
        recorder.record(observation(time_us=T0 + offset))
    assert not db.exists()  # nothing per request
    assert await recorder.flush()
    datamap = {row[3]: row for row in rows(db, "dijk_datamap")}
    email = datamap["$.accounts[*].email"]
    # records, occurrences, masked, unneeded, first, last
    assert email[7:13] == (3, 9, 9, 0, T0, T0 + 2)
    assert datamap["$.accounts[*].iban"][9] == 0  # not masked
    exposure = {row[6]: row for row in rows(db, "dijk_exposure")}
    assert exposure["*"][8:] == (3, 18, 9)
    assert len(rows(db, "dijk_exposure_subject")) == 3
    assert rows(db, "dijk_datamap_consumer")[0][:3] == (
        "mobile-app",
        "api_key",
        '["accounts:read"]',
    )
    await recorder.close()


async def test_later_flushes_add_to_what_is_stored(tmp_path: Path) -> None:
    db = tmp_path / "audit.db"
    recorder = recorder_for(f"sqlite:///{db}")
    recorder.record(observation())
    await recorder.flush()
    recorder.record(observation(time_us=T0 + 10))
    await recorder.flush()
    email = next(row for row in rows(db, "dijk_datamap") if row[4] == "email")
    assert email[7:9] == (2, 6)
    assert email[11:13] == (T0, T0 + 10)
    assert len(rows(db, "dijk_exposure_subject")) == 3  # the same subjects once
    await recorder.close()


async def test_close_flushes_what_is_pending(tmp_path: Path) -> None:
    db = tmp_path / "audit.db"
    recorder = recorder_for(f"sqlite:///{db}")
    recorder.record(observation())
    await recorder.close()
    assert rows(db, "dijk_datamap")
    recorder.record(observation())  # after close: ignored, not an error
    assert recorder.pending == 0


async def test_the_timer_flushes_without_being_asked(tmp_path: Path) -> None:
    db = tmp_path / "audit.db"
    recorder = DataMapRecorder(lambda: open_privacy_db(f"sqlite:///{db}"), flush_interval_s=0.05)
    recorder.record(observation())
    for _ in range(100):
        await asyncio.sleep(0.05)
        if db.exists() and rows(db, "dijk_datamap"):
            break
    assert rows(db, "dijk_datamap")
    await recorder.close()


class _Down(PrivacyDatabase):
    """A database that is down until told otherwise."""

    def __init__(self, real: PrivacyDatabase, state: dict[str, bool]) -> None:
        super().__init__("dijk_", "down://")
        self.real = real
        self.state = state

    async def connect(self, *, create: bool) -> None:
        if self.state["down"]:
            raise OSError("connection refused")
        await self.real.connect(create=create)

    async def close(self) -> None:
        await self.real.close()

    async def write(self, batch: object) -> None:
        await self.real.write(batch)  # type: ignore[arg-type]

    async def fetch(self, sql: str, params: object = ()) -> list[tuple[object, ...]]:
        return await self.real.fetch(sql)

    async def has_table(self, name: str) -> bool:
        return await self.real.has_table(name)


async def test_rows_survive_a_database_outage_and_are_written_later(tmp_path: Path) -> None:
    db = tmp_path / "audit.db"
    state = {"down": True}
    recorder = DataMapRecorder(
        lambda: _Down(open_privacy_db(f"sqlite:///{db}"), state), flush_interval_s=3600
    )
    recorder.record(observation())
    assert not await recorder.flush()
    recorder.record(observation(time_us=T0 + 5))
    assert recorder.failures == 1
    assert recorder.pending > 0
    state["down"] = False
    assert await recorder.flush()
    email = next(row for row in rows(db, "dijk_datamap") if row[4] == "email")
    assert email[7:9] == (2, 6)
    await recorder.close()


async def test_memory_is_bounded_and_drops_are_recorded(tmp_path: Path) -> None:
    db = tmp_path / "audit.db"
    recorder = recorder_for(f"sqlite:///{db}", max_pending=10)
    for index in range(50):
        recorder.record(
            observation(subjects={"email": {f"pii:email:{index}"}}, endpoint=f"/e/{index}")
        )
    assert recorder.pending <= 10
    assert recorder.dropped > 0
    await recorder.flush()
    meta = dict((name, value) for name, value in rows(db, "dijk_datamap_meta"))
    assert int(str(meta["dropped_rows"])) > 0
    await recorder.close()


async def test_many_distinct_token_callers_cannot_grow_memory(tmp_path: Path) -> None:
    # Unlinked tokens are consumers named by their own subject (jwt:<sub>): an attacker
    # with a valid issuer could mint one per request. They count against max_pending.
    db = tmp_path / "audit.db"
    recorder = recorder_for(f"sqlite:///{db}", max_pending=10)
    for index in range(50):
        recorder.record(observation(consumer=f"jwt:user-{index}"))
    assert recorder.pending <= 10
    assert recorder.dropped > 0
    await recorder.close()


async def test_nothing_but_templates_categories_and_pseudonyms_is_stored(tmp_path: Path) -> None:
    """The stage end to end into SQLite: no raw value in any table, WAL included."""
    from tests.unit.test_privacy_stage import ACCOUNTS, EMAIL, IBAN, request, stage_for, through

    stage = stage_for(tmp_path, {"mask_response": True})
    import json

    await through(
        stage,
        request("POST", query=f"email={EMAIL}", body=json.dumps({EMAIL: IBAN}).encode()),
        json.dumps(ACCOUNTS).encode(),
    )
    await stage.close()
    assert_no_raw_values(tmp_path, (EMAIL, IBAN, "111222333", "+31612345678", "203.0.113.7"))
    fields = {row[3] for row in rows(tmp_path / "audit.db", "dijk_datamap")}
    assert "$[<email>]" in fields
    assert "query.email" in fields


def assert_no_raw_values(directory: Path, values: tuple[str, ...]) -> None:
    for file in directory.iterdir():
        data = file.read_bytes()
        for raw in values:
            assert raw.encode() not in data, (file.name, raw)


# -- endpoints and pseudonyms ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "template", "path", "expected"),
    [
        ("exact", "/api/v1/status", "/api/v1/status", "/api/v1/status"),
        ("template", "/api/v1/accounts/{id}", "/api/v1/accounts/7", "/api/v1/accounts/{id}"),
        ("prefix", "/api", "/api/v1/users/jan%40example.nl", "/api/v1/users/{id}"),
        ("prefix", "/", "/orders/42/items/ab12", "/orders/{id}/items/{id}"),
        ("prefix", "/api", "/api", "/api"),
    ],
)
def test_endpoints_are_templates_never_raw_paths(
    kind: str, template: str, path: str, expected: str
) -> None:
    assert endpoint_template(kind, template, path) == expected


def test_a_template_from_another_stage_wins() -> None:
    assert endpoint_template("prefix", "/", "/a/1", "/a/{accountId}") == "/a/{accountId}"


def test_subject_pseudonyms_agree_across_spellings_and_keys_differ() -> None:
    hasher = SubjectHasher(KEY)
    assert hasher.subject("06-12345678", Category.PHONE) == hasher.subject(
        "+31 6 12345678", Category.PHONE
    )
    assert hasher.subject("Jan@Example.NL", Category.EMAIL) == hasher.subject(
        "jan@example.nl", Category.EMAIL
    )
    assert SubjectHasher(b"x" * 32).subject("jan@example.nl", Category.EMAIL) != hasher.subject(
        "jan@example.nl", Category.EMAIL
    )


def test_client_ranges_are_found_by_pseudonym() -> None:
    client, net = client_pseudonyms("198.51.100.23", KEY)
    assert network_of("198.51.100.23") == "198.51.100.0/24"
    column, small = cidr_pseudonyms("198.51.100.0/27", KEY)
    assert column == "client"
    assert client in small
    assert len(small) == 32
    column, wide = cidr_pseudonyms("198.0.0.0/8", KEY)
    assert column == "client_net"
    assert net in wide
    with pytest.raises(ValueError, match="too wide"):
        cidr_pseudonyms("2001:db8::/16", KEY)
    with pytest.raises(ValueError, match="not an IP network"):
        cidr_pseudonyms("nope", KEY)
