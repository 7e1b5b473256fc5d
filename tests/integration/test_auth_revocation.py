"""Revocation through storage.url, on memory:// and on a real Redis (one parametrised suite).

A revocation written by one gateway instance (or the admin API of one instance) must be
seen by every stage reading the same store, at once; a store that cannot answer fails
the request closed (503), it never lets a possibly revoked credential through.
"""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import AsyncIterator

import orjson
import pytest

from dijk.auth.revocation import (
    RevocationList,
    credential_for_key_digest,
    credential_for_token,
    revoke_from_request,
)
from dijk.config.models import ApiKeyAuthConfig
from dijk.pipeline.pipeline import Pipeline
from dijk.pipeline.stage import DependencyUnavailable
from dijk.stages.authn_api_key import ApiKeyStage, KeyOwner, KeyRing
from dijk.stages.authn_jwt import JwtStage
from dijk.storage import open_storage
from tests.conftest import require_service
from tests.unit.test_jwt_advisories import Issuer, context, verifier_for

REDIS_URL = os.environ.get("DIJK_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


async def _redis_available() -> bool:
    storage = open_storage(REDIS_URL, timeout_s=0.5)
    try:
        await storage.ping()
    except Exception:
        return False
    finally:
        await storage.close()
    return True


@pytest.fixture(params=["memory", "redis"])
async def url(request: pytest.FixtureRequest) -> AsyncIterator[str]:
    if request.param == "redis":
        require_service(await _redis_available(), f"Redis is not reachable at {REDIS_URL}")
        yield REDIS_URL
    else:
        yield f"memory://revocation-{uuid.uuid4().hex}"


def _key_stage(url: str, key: str) -> ApiKeyStage:
    digest = hashlib.sha256(key.encode()).digest()
    ring = KeyRing({digest: KeyOwner("mobile", frozenset(), frozenset(), digest)})
    return ApiKeyStage(ApiKeyAuthConfig(), ring, RevocationList.from_url(url))


async def test_revoked_api_key_is_refused_by_every_instance(url: str) -> None:
    key = "pk_" + uuid.uuid4().hex
    first, second = _key_stage(url, key), _key_stage(url, key)  # two gateway instances
    assert await first.request_headers(context(x_api_key=key)) is None
    assert await second.request_headers(context(x_api_key=key)) is None
    admin = RevocationList.from_url(url)
    status, answer = await revoke_from_request(
        admin, "keys", orjson.dumps({"sha256": hashlib.sha256(key.encode()).hexdigest()}), 60
    )
    assert status == 200
    assert answer["credential_id"] == credential_for_key_digest(
        hashlib.sha256(key.encode()).hexdigest()
    )
    for stage in (first, second):
        decision = await stage.request_headers(context(x_api_key=key))
        assert decision is not None
        assert (decision.status, decision.reason) == (401, "auth.key_revoked")
    for stage in (first, second, admin):
        if isinstance(stage, RevocationList):
            await stage.detach()
        else:
            await stage.close()


async def test_revoked_jti_is_refused_and_the_revocation_expires(url: str) -> None:
    issuer = Issuer()
    revocations = RevocationList.from_url(url)
    stage = JwtStage(verifier_for(issuer.jwks()), revocations)
    jti = "jti-" + uuid.uuid4().hex
    token = issuer.token(jti=jti)
    assert await stage.request_headers(context(token)) is None
    status, answer = await revoke_from_request(
        RevocationList.from_url(url), "tokens", orjson.dumps({"jti": jti, "ttl_s": 0.3}), 60
    )
    assert status == 200
    assert "jti" not in orjson.dumps(answer).decode().replace("jti_sha256", "")
    decision = await stage.request_headers(context(token))
    assert decision is not None
    assert decision.reason == "auth.token_revoked"
    import asyncio

    await asyncio.sleep(0.5)
    assert await revocations.jti_revoked(jti) is False
    await stage.close()


async def test_revocation_by_token_digest(url: str) -> None:
    token = "opaque-" + uuid.uuid4().hex
    revocations = RevocationList.from_url(url)
    digest = hashlib.sha256(token.encode()).hexdigest()
    status, _ = await revoke_from_request(
        revocations, "tokens", orjson.dumps({"token_sha256": digest}), 60
    )
    assert status == 200
    assert await revocations.credential_revoked(credential_for_token(token))
    await revocations.detach()


@pytest.mark.parametrize(
    ("kind", "body"),
    [
        ("keys", b"not json"),
        ("keys", b"[]"),
        ("keys", b'{"sha256": "abc"}'),
        ("keys", b'{"credential_id": "tok:0123456789abcdef"}'),
        ("tokens", b"{}"),
        ("tokens", b'{"jti": ""}'),
        ("tokens", b'{"jti": "x", "ttl_s": -1}'),
        ("tokens", b'{"jti": "x", "ttl_s": true}'),
    ],
)
async def test_bad_revocation_requests_are_refused(kind: str, body: bytes) -> None:
    status, answer = await revoke_from_request(
        RevocationList.from_url("memory://bad"), kind, body, 60
    )
    assert status == 400
    assert answer["reason"] == "admin.invalid_request"


async def test_unreachable_store_fails_closed_with_503() -> None:
    key = "pk_" + uuid.uuid4().hex
    stage = _key_stage("redis://127.0.0.1:1/0", key)
    with pytest.raises(DependencyUnavailable):
        await stage.request_headers(context(x_api_key=key))
    decision = await Pipeline([_key_stage("redis://127.0.0.1:1/0", key)]).request_headers(
        context(x_api_key=key)
    )
    assert decision is not None
    assert (decision.status, decision.reason) == (503, "auth.revocation_unavailable")
    status, answer = await revoke_from_request(
        RevocationList.from_url("redis://127.0.0.1:1/0"),
        "keys",
        orjson.dumps({"sha256": "0" * 64}),
        60,
    )
    assert status == 503
    # A dependency fault, not the admin's mistake: its own reason code.
    assert answer["reason"] == "auth.revocation_unavailable"


async def test_memory_revocations_survive_a_new_configuration() -> None:
    url = f"memory://reload-{uuid.uuid4().hex}"
    await RevocationList.from_url(url).revoke_credential("key:0123456789abcdef")
    assert await RevocationList.from_url(url).credential_revoked("key:0123456789abcdef")
