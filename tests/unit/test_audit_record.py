"""The audit record model and its canonical encoding (the bytes the chain hashes)."""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime, timedelta, timezone

import pytest

from dijk.audit.chain import ZERO_HASH, ChainSealer, record_hash
from dijk.audit.record import (
    AuditRecord,
    Finding,
    admin_record,
    canonical_body,
    canonical_bytes,
    datetime_from_us,
    datetime_to_us,
    pseudonymise,
    sanitise_record,
)

GOLDEN_CANONICAL = (
    b'{"auth_method":"api_key","bytes_in":42,"bytes_out":120,"chain":"default",'
    b'"client_ip":"5723e9f8","consumer":"mobile-app","credential_id":"c0ffee","decision":"deny",'
    b'"findings":[{"field":"$.name","rule_id":"942100"}],"gateway_latency_us":1500,'
    b'"method":"POST","path_template":"/api/v1/accounts/{id}","pii_categories":["email","iban"],'
    b'"reason":"waf.sqli","request_id":"req-1","route":"accounts","status":403,'
    b'"time_us":1738324800123456,"upstream_latency_us":null,"v":1}'
)
GOLDEN_HASH = "2b5dd2f0fb4edfe685ae29b13f30cca87da410c0531814355230fb539f0c1c2d"


def golden_record() -> AuditRecord:
    return AuditRecord(
        time=datetime(2025, 1, 31, 12, 0, 0, 123456, tzinfo=UTC),
        request_id="req-1",
        method="POST",
        status=403,
        decision="deny",
        route="accounts",
        path_template="/api/v1/accounts/{id}",
        reason="waf.sqli",
        consumer="mobile-app",
        auth_method="api_key",
        credential_id="c0ffee",
        client_ip="5723e9f8",
        findings=(Finding("942100", "$.name"),),
        gateway_latency_us=1500,
        bytes_in=42,
        bytes_out=120,
        pii_categories=("email", "iban"),
    )


def test_canonical_encoding_is_pinned_byte_for_byte() -> None:
    assert canonical_bytes(golden_record(), "default") == GOLDEN_CANONICAL


def test_canonical_body_lists_its_keys_sorted_so_no_sorting_is_needed() -> None:
    """canonical_bytes relies on this instead of orjson's OPT_SORT_KEYS (per-record cost)."""
    import orjson

    from dijk.audit.record import canonical_body

    for record in (golden_record(), AuditRecord(datetime.now(UTC), "r", "GET", 200, "allow")):
        body = canonical_body(record, "default")
        assert list(body) == sorted(body)
        assert canonical_bytes(record, "default") == orjson.dumps(body, option=orjson.OPT_SORT_KEYS)
        for finding in body["findings"]:
            assert list(finding) == sorted(finding)


def test_chain_hash_is_hmac_sha256_of_previous_hash_and_canonical_bytes() -> None:
    key = b"k" * 32
    expected = hmac.new(key, ZERO_HASH + GOLDEN_CANONICAL, hashlib.sha256).hexdigest()
    assert expected == GOLDEN_HASH
    assert record_hash(key, ZERO_HASH, golden_record(), "default").hex() == GOLDEN_HASH
    sealed = ChainSealer(key, "default").seal(golden_record())
    assert (sealed.seq, sealed.hash.hex()) == (1, GOLDEN_HASH)


def test_canonical_encoding_does_not_depend_on_the_time_zone_given() -> None:
    amsterdam = timezone(timedelta(hours=1))
    local = golden_record().time.astimezone(amsterdam)
    record = AuditRecord(time=local, request_id="req-1", method="POST", status=403, decision="deny")
    utc = AuditRecord(
        time=golden_record().time, request_id="req-1", method="POST", status=403, decision="deny"
    )
    assert canonical_bytes(record, "c") == canonical_bytes(utc, "c")


def test_the_chain_name_is_part_of_the_hashed_bytes() -> None:
    assert canonical_bytes(golden_record(), "a") != canonical_bytes(golden_record(), "b")


def test_microsecond_conversion_is_exact() -> None:
    moment = datetime(2262, 4, 11, 23, 47, 16, 854775, tzinfo=UTC)
    assert datetime_from_us(datetime_to_us(moment)) == moment


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"decision": "maybe"}, "decision"),
        ({"status": 1000}, "status"),
        ({"bytes_in": -1}, "bytes_in"),
        ({"upstream_latency_us": -5}, "upstream_latency_us"),
        ({"time": datetime(2025, 1, 1)}, "timezone"),  # naive on purpose
    ],
)
def test_invalid_records_are_rejected(changes: dict[str, object], message: str) -> None:
    values: dict[str, object] = {
        "time": datetime.now(UTC),
        "request_id": "r",
        "method": "GET",
        "status": 200,
        "decision": "allow",
    }
    values.update(changes)
    with pytest.raises(ValueError, match=message):
        AuditRecord(**values)  # type: ignore[arg-type]


def test_lists_are_stored_as_tuples_so_records_stay_immutable() -> None:
    record = AuditRecord(
        time=datetime.now(UTC),
        request_id="r",
        method="GET",
        status=200,
        decision="allow",
        findings=[Finding("1", "a")],  # type: ignore[arg-type]
        pii_categories=["email"],  # type: ignore[arg-type]
    )
    assert record.findings == (Finding("1", "a"),)
    assert record.pii_categories == ("email",)


def test_nul_and_lone_surrogates_are_replaced_before_hashing() -> None:
    record = AuditRecord(
        time=datetime.now(UTC),
        request_id="bad\x00id",
        method="GET",
        status=200,
        decision="allow",
        path_template="/x\ud800",
        findings=(Finding("r\x00", "f"),),
    )
    sealer = ChainSealer(b"k" * 32, "c")
    sealed = sealer.seal(record)
    assert sealed.record.request_id == "bad\ufffdid"
    assert sealed.record.path_template == "/x\ufffd"
    assert sealed.record.findings == (Finding("r\ufffd", "f"),)
    assert sanitise_record(sealed.record) == sealed.record


def test_pseudonyms_are_stable_keyed_and_do_not_contain_the_value() -> None:
    first = pseudonymise(b"a" * 32, "192.0.2.7")
    assert first == pseudonymise(b"a" * 32, "192.0.2.7")
    assert first != pseudonymise(b"b" * 32, "192.0.2.7")
    assert "192" not in first
    assert len(first) == 32


@pytest.mark.parametrize("key_length", [0, 1, 32, 64, 65, 200])
def test_the_chain_mac_is_standard_hmac_sha256(key_length: int) -> None:
    from dijk.audit.chain import _Mac

    key = bytes(range(256))[:key_length]
    message = b"prev" * 8 + GOLDEN_CANONICAL
    assert _Mac(key).digest(message) == hmac.digest(key, message, "sha256")


# -- administrative actions ----------------------------------------------------------------

ADMIN_CANONICAL = (
    b'{"auth_method":"admin_token","bytes_in":78,"bytes_out":64,"chain":"default",'
    b'"client_ip":"5723e9f8","consumer":"admin:DIJK_ADMIN_TOKEN",'
    b'"credential_id":"adm:0123456789abcdef","decision":"allow",'
    b'"findings":[{"field":"key:fedcba9876543210","rule_id":"admin.target"}],'
    b'"gateway_latency_us":800,"method":"POST","path_template":"/admin/api/v1/keys/revoke",'
    b'"pii_categories":[],"reason":null,"request_id":"adm-1","route":"admin:keys.revoke",'
    b'"status":200,"time_us":1738324800123456,"upstream_latency_us":null,"v":1}'
)


def revocation(status: int = 200, **changes: object) -> AuditRecord:
    values: dict[str, object] = {
        "time": datetime(2025, 1, 31, 12, 0, 0, 123456, tzinfo=UTC),
        "request_id": "adm-1",
        "action": "keys.revoke",
        "method": "POST",
        "path": "/admin/api/v1/keys/revoke",
        "status": status,
        "actor": "admin:DIJK_ADMIN_TOKEN",
        "credential_id": "adm:0123456789abcdef",
        "client_ip": "5723e9f8",
        "target": "key:fedcba9876543210",
        "latency_us": 800,
        "bytes_in": 78,
        "bytes_out": 64,
    }
    values.update(changes)
    return admin_record(**values)  # type: ignore[arg-type]


def test_an_admin_record_is_an_ordinary_v1_record_pinned_byte_for_byte() -> None:
    """Same keys, same encoding version: old chains, stores, exports and verify unchanged."""
    record = revocation()
    assert canonical_bytes(record, "default") == ADMIN_CANONICAL
    assert list(canonical_body(record, "default")) == list(canonical_body(golden_record(), "c"))
    sealer = ChainSealer(b"k" * 32, "default")
    first, second = sealer.seal(golden_record()), sealer.seal(record)
    assert second.prev_hash == first.hash
    assert second.hash == record_hash(b"k" * 32, first.hash, record, "default")


@pytest.mark.parametrize(
    ("status", "reason", "decision", "recorded"),
    [
        (200, None, "allow", None),
        (200, "ignored.on_success", "allow", None),
        (400, "admin.invalid_request", "deny", "admin.invalid_request"),
        (401, "auth.invalid_token", "deny", "auth.invalid_token"),
        (503, None, "deny", "admin.failed"),
    ],
)
def test_an_admin_record_allows_only_a_2xx_answer_and_a_denial_always_has_a_reason(
    status: int, reason: str | None, decision: str, recorded: str | None
) -> None:
    record = revocation(status, reason=reason)
    assert (record.decision, record.reason) == (decision, recorded)


def test_a_refused_admin_request_names_no_actor_and_an_untargeted_one_no_finding() -> None:
    record = revocation(401, reason="auth.invalid_token", actor=None, target=None)
    assert (record.consumer, record.auth_method, record.findings) == (None, None, ())
    assert record.route == "admin:keys.revoke"


def test_admin_outcomes_take_only_values_of_a_known_harmless_shape() -> None:
    from dijk.admin.audit import action_of, bearer_token, outcome_of

    assert action_of("/admin/api/v1/tokens/revoke") == "tokens.revoke"
    assert bearer_token([("authorization", "bearer  t0k ")]) == "t0k"
    # Two Authorization fields: which one counts would be a guess, so neither does.
    assert bearer_token([("authorization", "Basic x"), ("authorization", "bearer  t0k ")]) == ""
    # Only SP and HTAB are trimmed: a no-break space is part of the token.
    assert bearer_token([("authorization", "Bearer t0k\xa0")]) == "t0k\xa0"
    assert bearer_token([("x-api-key", "k")]) == ""
    revoked = b'{"revoked": true, "credential_id": "cert:00112233445566aa"}'
    assert outcome_of("keys.revoke", 200, revoked).target == "cert:00112233445566aa"
    jti = "ab" * 32
    assert outcome_of("tokens.revoke", 200, b'{"jti_sha256": "%s"}' % jti.encode()).target == (
        "jti:" + jti
    )
    # a credential id or reason of an unexpected shape (free text, a secret) is never copied
    odd = outcome_of(
        "keys.revoke", 400, b'{"credential_id": "key:not-hex-secret", "reason": "Bearer s3cret"}'
    )
    assert (odd.target, odd.reason) == (None, None)
    failed = outcome_of("reload", 422, b'{"ok": false, "generation": 3, "errors": ["x"]}')
    assert (failed.reason, failed.target) == ("admin.reload_failed", "generation:3")
    assert outcome_of("reload", 200, b'{"generation": true}').target is None
    assert outcome_of("reload", 500, b"not json").reason == "admin.reload_failed"
