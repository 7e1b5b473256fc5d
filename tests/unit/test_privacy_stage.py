"""The privacy stage: masking responses, recording what it saw, never leaking values."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError
from structlog.testing import capture_logs

from dijk.config.models import DijkConfig
from dijk.pipeline.context import Identity, RequestContext
from dijk.pipeline.decision import Decision
from dijk.privacy.resources import PrivacyResources
from dijk.routing.router import Router
from dijk.stages.privacy import PrivacyStage

EMAIL = "jan.jansen@example.nl"
IBAN = "NL91ABNA0417164300"
PHONE = "+31612345678"
BSN = "111222333"
ACCOUNTS: dict[str, Any] = {
    "accounts": [
        {
            "id": 1,
            "name": "Jan Jansen",
            "email": EMAIL,
            "phone": PHONE,
            "iban": IBAN,
            "bsn": BSN,
            "date_of_birth": "1980-02-29",
            "balance": "10.00",
        }
    ],
    "count": 1,
}
JSON = [("content-type", "application/json")]


def config(tmp_path: Path, privacy: dict[str, Any], **settings: Any) -> DijkConfig:
    return DijkConfig.model_validate(
        {
            "version": 1,
            "audit": {"url": f"sqlite:///{tmp_path}/audit.db"},
            "privacy": settings,
            "upstreams": {"up": {"url": "http://127.0.0.1:9"}},
            "routes": [
                {
                    "name": "accounts",
                    "match": {"path_prefix": "/api/v1/accounts"},
                    "upstream": "up",
                    "privacy": privacy,
                }
            ],
        }
    )


def stage_for(tmp_path: Path, privacy: dict[str, Any], **settings: Any) -> PrivacyStage:
    loaded = config(tmp_path, privacy, **settings)
    resources = PrivacyResources(loaded)
    route = loaded.routes[0]
    assert route.privacy is not None
    return PrivacyStage(route, route.privacy, resources, loaded.limits.max_response_buffer_bytes)


def request(
    method: str = "GET",
    path: str = "/api/v1/accounts",
    query: str = "",
    headers: list[tuple[str, str]] | None = None,
    body: bytes | None = None,
) -> RequestContext:
    ctx = RequestContext(
        request_id="r1",
        method=method,
        path=path,
        query=query,
        headers=headers or [("host", "bank"), ("accept-encoding", "gzip, br")],
        client_ip="203.0.113.7",
        client_port=40000,
        scheme="http",
        http_version="1.1",
        body=body,
    )
    loaded = DijkConfig.model_validate(
        {
            "version": 1,
            "upstreams": {"up": {"url": "http://127.0.0.1:9"}},
            "routes": [
                {"name": "accounts", "match": {"path_prefix": "/api/v1/accounts"}, "upstream": "up"}
            ],
        }
    )
    ctx.route = Router(loaded.routes).match(method, path).route
    ctx.identity = Identity(consumer="mobile-app", method="api_key", scopes=frozenset({"read"}))
    if body is not None:
        ctx.content_type = "application/json"
    return ctx


async def through(
    stage: PrivacyStage,
    ctx: RequestContext,
    body: bytes,
    headers: list[tuple[str, str]] | None = None,
    status: int = 200,
) -> Decision | None:
    """Run the stage's phases as the pipeline would."""
    assert await stage.request_headers(ctx) is None
    if ctx.body is not None and stage.wants_request_body(ctx):
        assert await stage.request_body(ctx) is None
    ctx.response_status = status
    ctx.response_headers = list(headers if headers is not None else JSON)
    decision = None
    if stage.wants_response_body(ctx):
        ctx.response_body = body
        decision = await stage.response_body(ctx)
    else:
        ctx.response_body = None
    ctx.decision = decision
    await stage.log(ctx)
    return decision


def sent(ctx: RequestContext, original: bytes) -> bytes:
    return ctx.response_body if ctx.response_body is not None else original


async def test_email_iban_phone_and_bsn_are_masked_and_the_json_stays_valid(
    tmp_path: Path,
) -> None:
    stage = stage_for(tmp_path, {"mask_response": True})
    ctx = request()
    body = json.dumps(ACCOUNTS).encode()
    assert await through(stage, ctx, body) is None
    out = sent(ctx, body)
    account = json.loads(out)["accounts"][0]
    assert account["email"] == "j***@example.nl"
    assert account["iban"] == "**************4300"
    assert account["phone"].endswith("78")
    assert PHONE not in out.decode()
    assert account["bsn"] == "*********"
    assert account["name"] == "Jan Jansen"
    assert account["balance"] == "10.00"
    for raw in (EMAIL, IBAN, PHONE, BSN):
        assert raw.encode() not in out
    await stage.close()


async def test_validators_of_the_upstream_bytes_are_dropped(tmp_path: Path) -> None:
    stage = stage_for(tmp_path, {"mask_response": True})
    ctx = request()
    headers = [*JSON, ("etag", '"abc"'), ("content-md5", "x"), ("cache-control", "no-store")]
    await through(stage, ctx, json.dumps(ACCOUNTS).encode(), headers)
    names = [name for name, _ in ctx.response_headers]
    assert "etag" not in names
    assert "content-md5" not in names
    assert "content-type" in names
    assert "cache-control" in names
    await stage.close()


async def test_the_upstream_is_asked_for_the_whole_uncompressed_body(tmp_path: Path) -> None:
    stage = stage_for(tmp_path, {"mask_response": True})
    ctx = request(headers=[("host", "b"), ("accept-encoding", "br"), ("range", "bytes=0-9")])
    await stage.request_headers(ctx)
    assert ("accept-encoding", "identity") in ctx.headers
    assert not any(name == "range" for name, _ in ctx.headers)
    assert [value for name, value in ctx.headers if name == "accept-encoding"] == ["identity"]
    await stage.close()


async def test_a_gzip_response_is_decoded_masked_and_sent_uncompressed(tmp_path: Path) -> None:
    stage = stage_for(tmp_path, {"mask_response": True})
    ctx = request()
    body = gzip.compress(json.dumps(ACCOUNTS).encode())
    await through(stage, ctx, body, [*JSON, ("content-encoding", "gzip")])
    assert not any(name == "content-encoding" for name, _ in ctx.response_headers)
    assert json.loads(sent(ctx, body))["accounts"][0]["email"] == "j***@example.nl"
    await stage.close()


async def test_an_encoding_it_cannot_read_is_refused_not_forwarded(tmp_path: Path) -> None:
    stage = stage_for(tmp_path, {"mask_response": True})
    decision = await through(stage, request(), b"\x8b\x00", [*JSON, ("content-encoding", "br")])
    assert decision is not None
    assert decision.status == 502
    assert decision.reason == "privacy.unreadable_response"
    await stage.close()


async def test_only_json_or_unlabelled_responses_are_buffered(tmp_path: Path) -> None:
    stage = stage_for(tmp_path, {"mask_response": True})
    ctx = request()
    await stage.request_headers(ctx)
    ctx.response_status = 200
    ctx.response_headers = [("content-type", "image/png")]
    assert not stage.wants_response_body(ctx)
    ctx.response_headers = [("content-type", "application/problem+json")]
    assert stage.wants_response_body(ctx)
    ctx.response_headers = []
    assert stage.wants_response_body(ctx)  # no label: look rather than leak
    ctx.response_status = 204
    assert not stage.wants_response_body(ctx)
    await stage.close()


async def test_an_unlabelled_json_body_is_masked_too(tmp_path: Path) -> None:
    stage = stage_for(tmp_path, {"mask_response": True})
    ctx = request()
    body = json.dumps({"email": EMAIL}).encode()
    await through(stage, ctx, body, headers=[])
    assert json.loads(sent(ctx, body)) == {"email": "j***@example.nl"}
    await stage.close()


async def test_a_recording_only_route_never_changes_or_buffers_oversized_bodies(
    tmp_path: Path,
) -> None:
    stage = stage_for(tmp_path, {})
    ctx = request()
    body = json.dumps(ACCOUNTS).encode()
    await through(stage, ctx, body)
    assert ctx.response_body == body  # untouched
    assert ctx.annotations["pii_categories"] == ["bsn", "date_of_birth", "email", "iban", "phone"]
    big = request()
    await stage.request_headers(big)
    big.response_status = 200
    big.response_headers = [*JSON, ("content-length", str(64 * 1024 * 1024))]
    assert not stage.wants_response_body(big)
    await stage.close()


async def test_pii_categories_are_the_sorted_union_of_request_and_response(
    tmp_path: Path,
) -> None:
    stage = stage_for(tmp_path, {"mask_response": True})
    ctx = request(
        "POST",
        query="q=" + IBAN,
        body=json.dumps({"username": EMAIL, "password": "hunter2-secret"}).encode(),
    )
    await through(stage, ctx, json.dumps({"phone": PHONE}).encode())
    assert ctx.annotations["pii_categories"] == ["email", "iban", "phone", "secret"]
    await stage.close()


async def test_hash_strategy_gives_the_same_keyed_pseudonym_every_time(tmp_path: Path) -> None:
    stage = stage_for(tmp_path, {"mask_response": True, "strategy": "hash"})
    outputs = []
    for spelling in (EMAIL, EMAIL.upper()):
        ctx = request()
        body = json.dumps({"email": spelling}).encode()
        await through(stage, ctx, body)
        outputs.append(json.loads(sent(ctx, body))["email"])
    assert outputs[0] == outputs[1]
    assert outputs[0].startswith("pii:email:")
    assert len(outputs[0]) == len("pii:email:") + 16
    await stage.close()


async def test_drop_strategy_and_field_rules(tmp_path: Path) -> None:
    stage = stage_for(
        tmp_path,
        {
            "mask_response": True,
            "strategy": "drop",
            "fields": {"balance": "mask", "$.count": "drop"},
        },
    )
    ctx = request()
    body = json.dumps(ACCOUNTS).encode()
    await through(stage, ctx, body)
    document = json.loads(sent(ctx, body))
    account = document["accounts"][0]
    assert "email" not in account
    assert "iban" not in account
    assert "bsn" not in account
    assert account["balance"] == "**.**"
    assert account["name"] == "Jan Jansen"
    assert "count" not in document
    await stage.close()


async def test_categories_limit_what_is_masked(tmp_path: Path) -> None:
    stage = stage_for(tmp_path, {"mask_response": True, "categories": ["email", "iban"]})
    ctx = request()
    body = json.dumps(ACCOUNTS).encode()
    await through(stage, ctx, body)
    account = json.loads(sent(ctx, body))["accounts"][0]
    assert account["email"] == "j***@example.nl"
    assert account["iban"].endswith("4300")
    assert account["bsn"] == BSN
    assert account["date_of_birth"] == "1980-02-29"
    await stage.close()


async def test_big_integers_and_malformed_json_do_not_break_masking(tmp_path: Path) -> None:
    stage = stage_for(tmp_path, {"mask_response": True})
    ctx = request()
    body = b'{"id": 123456789012345678901234567890, "email": "' + EMAIL.encode() + b'"}'
    await through(stage, ctx, body)
    out = sent(ctx, body)
    assert json.loads(out) == {"id": 123456789012345678901234567890, "email": "j***@example.nl"}
    broken = request()
    text = b'{"note": "mail ' + EMAIL.encode() + b' now", '  # truncated JSON
    await through(stage, broken, text)
    assert EMAIL.encode() not in sent(broken, text)
    assert b"j***@example.nl" in sent(broken, text)
    await stage.close()


async def test_bodies_are_not_logged_by_default(tmp_path: Path) -> None:
    stage = stage_for(tmp_path, {"mask_response": True})
    with capture_logs() as logs:
        await through(
            stage, request("POST", body=b'{"password": "hunter2"}'), json.dumps(ACCOUNTS).encode()
        )
    assert not any(entry["event"] == "privacy_body" for entry in logs)
    await stage.close()


async def test_debug_body_logging_masks_every_category(tmp_path: Path) -> None:
    stage = stage_for(tmp_path, {"categories": ["iban"]}, debug_log_bodies=True)
    with capture_logs() as logs:
        await through(
            stage,
            request("POST", body=json.dumps({"username": EMAIL, "password": "hunter2"}).encode()),
            json.dumps(ACCOUNTS).encode(),
        )
    bodies = [entry["body_masked"] for entry in logs if entry["event"] == "privacy_body"]
    assert len(bodies) == 2
    joined = " ".join(bodies)
    for raw in (EMAIL, "hunter2", IBAN, BSN, PHONE):
        assert raw not in joined
    assert "j***@example.nl" in joined
    assert "********" in joined
    await stage.close()


async def test_a_denied_response_is_not_counted_as_exposed(tmp_path: Path) -> None:
    stage = stage_for(tmp_path, {"mask_response": True})
    recorder = stage._resources.recorder
    assert recorder is not None
    ctx = request()
    await through(stage, ctx, json.dumps(ACCOUNTS).encode())
    assert recorder._exposure  # delivered: in the exposure log
    recorder._exposure.clear()
    denied = request()
    await stage.request_headers(denied)
    denied.response_status = 200
    denied.response_headers = list(JSON)
    denied.response_body = json.dumps(ACCOUNTS).encode()
    await stage.response_body(denied)
    denied.decision = Decision.deny(403, "test.denied", "no")
    await stage.log(denied)
    assert not recorder._exposure
    await stage.close()


def test_config_rejects_bad_field_patterns_and_unknown_categories(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="field pattern"):
        config(tmp_path, {"fields": {"$.a[": "mask"}})
    with pytest.raises(ValidationError, match="categories"):
        config(tmp_path, {"categories": ["passport"]})
    with pytest.raises(ValidationError, match="divide a day"):
        config(tmp_path, {}, exposure_bucket_s=7777)
    with pytest.raises(ValidationError, match="region"):
        config(tmp_path, {}, region="XX")
