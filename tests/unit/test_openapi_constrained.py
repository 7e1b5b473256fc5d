"""The OpenAPI-aware WAF: which fields a document constrains, and when the stage says so."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import orjson
import pytest

from dijk.config.models import OpenApiConfig, WafConfig
from dijk.detect.engine import Detector, wildcard_indices
from dijk.detect.findings import RequestParts
from dijk.openapi import CompiledSpec, load_spec
from dijk.openapi.compiler import Operation
from dijk.openapi.constrained import ANNOTATION, plain_form_names, plain_query_names
from dijk.openapi.request import find_operation
from dijk.pipeline.context import RequestContext
from dijk.pipeline.decision import Decision
from dijk.pipeline.pipeline import Pipeline
from dijk.stages.openapi import OpenApiStage
from dijk.stages.waf import OPENAPI_CONSTRAINED_FIELDS, DetectorCache, WafStage

SHOP = """\
openapi: 3.0.3
info: {title: shop, version: "1"}
paths:
  /orders:
    post:
      parameters:
        - {name: limit, in: query, schema: {type: integer}}
        - {name: ids, in: query, schema: {type: array, items: {type: integer}}}
        - {name: sort, in: query, schema: {type: string, enum: [asc, desc]}}
        - {name: q, in: query, schema: {type: string}}
        - {name: filter, in: query, style: deepObject,
           schema: {type: object, properties: {age: {type: integer}}}}
        - {name: "a[0]", in: query, schema: {type: integer}}
        - {name: where, in: query, content: {application/json: {schema: {type: integer}}}}
        - {name: X-Page, in: header, schema: {type: integer}}
        - {name: X-Note, in: header, schema: {type: string}}
      requestBody:
        content:
          application/json: {schema: {$ref: "#/components/schemas/Order"}}
          application/x-www-form-urlencoded:
            schema:
              type: object
              properties:
                count: {type: integer}
                tags: {type: array, items: {$ref: "#/components/schemas/Tag"}}
                note: {type: string}
                x-mode: {type: string, enum: [fast, slow]}
      responses: {"200": {description: ok}}
components:
  schemas:
    Tag: {type: string, enum: [red, green, whoami]}
    Base:
      type: object
      properties:
        kind: {type: string, enum: [retail, wholesale]}
        note: {type: string}
    Item:
      type: object
      properties:
        id: {type: string, format: uuid}
        qty: {type: integer}
        label: {type: string}
    Node:
      type: object
      properties:
        id: {type: integer}
        children: {type: array, items: {$ref: "#/components/schemas/Node"}}
    Order:
      allOf:
        - $ref: "#/components/schemas/Base"
        - type: object
          properties:
            amount: {type: number}
            paid: {type: boolean}
            items: {type: array, items: {$ref: "#/components/schemas/Item"}}
            day: {type: string, format: date}
            at: {type: string, format: date-time}
            email: {type: string, format: email}
            code: {type: string, pattern: "^[A-Za-z0-9_-]{1,16}$"}
            loose: {type: string, pattern: "^[A-Z]"}
            odd: {type: string, enum: ["a<b>", c]}
            either: {oneOf: [{type: integer}, {type: string, format: uuid}]}
            text_or_int: {anyOf: [{type: integer}, {type: string}]}
            item_or_null: {$ref: "#/components/schemas/Item", nullable: true}
            shape:
              oneOf: [{$ref: "#/components/schemas/Item"}, {$ref: "#/components/schemas/Node"}]
            tree: {$ref: "#/components/schemas/Node"}
            tags: {type: array, items: {$ref: "#/components/schemas/Tag"}}
            meta: {type: object, additionalProperties: {type: integer}}
            x-ref: {type: integer}
            "b[1]": {type: integer}
            nums: {type: array, items: {type: integer, nullable: true}}
"""

JSON_FIELDS = {
    "$.kind",
    "$.amount",
    "$.paid",
    "$.items[*].id",
    "$.items[*].qty",
    "$.day",
    "$.at",
    "$.code",
    "$.either",
    "$.item_or_null.id",
    "$.item_or_null.qty",
    "$.shape.id",
    "$.tree.id",
    "$.tags[*]",
    '$["x-ref"]',
    "$.nums[*]",
}


def compile_spec(
    tmp_path: Path, text: str, name: str = "spec.yaml", *, close_objects: bool = True
) -> CompiledSpec:
    path = tmp_path / name
    path.write_text(text)
    return load_spec(str(path), close_objects=close_objects)


def operation(spec: CompiledSpec, method: str, path: str) -> Operation:
    found = find_operation(spec, method, path)
    assert isinstance(found, tuple), found
    return found[0]


@pytest.fixture
def shop(tmp_path: Path) -> CompiledSpec:
    return compile_spec(tmp_path, SHOP)


# ---- what is constrained ------------------------------------------------------------------


def test_json_body_fields_follow_refs_arrays_allof_oneof_and_nullable(shop: CompiledSpec) -> None:
    order = operation(shop, "POST", "/orders")
    bodies = {body.media: body for body in order.bodies or ()}
    found = {field for location, field in bodies["application/json"].constrained_json}
    assert {location for location, _ in bodies["application/json"].constrained_json} == {"json"}
    assert found == JSON_FIELDS
    # free text, email (see below), loose patterns, non-plain enums, mixed anyOf branches,
    # open maps and names the detector would read as array indices stay fully inspected
    for free in ("$.note", "$.items[*].label", "$.email", "$.loose", "$.odd", "$.text_or_int"):
        assert free not in found
    assert not any(field.startswith(("$.meta", '$["b[1]"]')) for field in found)
    # a JSON body entry has no form fields, and the other way round
    assert bodies["application/json"].constrained_form == frozenset()
    assert bodies["application/x-www-form-urlencoded"].constrained_json == frozenset()


def test_form_fields_and_parameters_by_name(shop: CompiledSpec) -> None:
    order = operation(shop, "POST", "/orders")
    form = {body.media: body for body in order.bodies or ()}["application/x-www-form-urlencoded"]
    assert form.constrained_form == {("form", "count"), ("form", "tags"), ("form", "x-mode")}
    # scalars and arrays of scalars only: not deepObject, JSON content or bracketed names
    assert order.constrained_query == {("query", "limit"), ("query", "ids"), ("query", "sort")}
    assert order.constrained_headers == {("header", "x-page")}
    assert order.constrained_params == order.constrained_query | order.constrained_headers


def test_discriminator_values_are_constrained_but_conditional_branches_are_not(
    tmp_path: Path,
) -> None:
    spec = compile_spec(
        tmp_path,
        """\
openapi: 3.0.3
info: {title: pets, version: "1"}
paths:
  /pets:
    post:
      requestBody:
        content:
          application/json:
            schema:
              oneOf: [{$ref: "#/components/schemas/Cat"}, {$ref: "#/components/schemas/Dog"}]
              discriminator: {propertyName: kind}
      responses: {"200": {description: ok}}
components:
  schemas:
    Cat:
      type: object
      properties: {kind: {type: string}, lives: {type: integer}}
    Dog:
      type: object
      properties: {kind: {type: string}, bark: {type: string}}
""",
    )
    (body,) = operation(spec, "POST", "/pets").bodies or ()
    # the rewrite turns the discriminator into an enum of Cat/Dog plus if/then per branch:
    # the enum holds whatever the branch; a branch's own fields hold only conditionally
    assert body.constrained_json == {("json", "$.kind")}


def test_recursive_and_large_documents_compile(tmp_path: Path) -> None:
    properties = "\n".join(f"        f{i}: {{$ref: '#/components/schemas/Big'}}" for i in range(40))
    spec = compile_spec(
        tmp_path,
        f"""\
openapi: 3.1.0
info: {{title: big, version: "1"}}
paths:
  /big:
    post:
      requestBody:
        content: {{application/json: {{schema: {{$ref: "#/components/schemas/Top"}}}}}}
      responses: {{"200": {{description: ok}}}}
components:
  schemas:
    Top:
      type: object
      properties:
{properties}
    Big:
      type: object
      properties:
        n: {{type: integer}}
        more: {{type: array, items: {{$ref: "#/components/schemas/Big"}}}}
        self: {{$ref: "#/components/schemas/Top"}}
""",
    )
    (body,) = operation(spec, "POST", "/big").bodies or ()
    assert ("json", "$.f0.n") in body.constrained_json
    assert len(body.constrained_json) <= 1024


def test_field_paths_are_spelt_as_the_detector_spells_findings(shop: CompiledSpec) -> None:
    """Every constrained field, given an attack-looking string, is reported by the detector
    under a path the constrained set contains (after wildcard_indices), so nothing is lost
    to spelling."""
    body = {
        "kind": "' or 1=1--",
        "items": [{"id": "../../etc/passwd"}, {"id": "x", "qty": "1 or 1=1"}],
        "day": "; cat /etc/passwd",
        "either": "1 union select password from users",
        "item_or_null": {"id": "<script>alert(1)</script>"},
        "shape": {"id": "$(id)"},
        "tree": {"id": "`id`"},
        "tags": ["ok", "../../etc/shadow"],
        "x-ref": "' or 1=1--",
        "nums": [None, "1 union select 1"],
    }
    detector = Detector(1, 5)
    parts = RequestParts(
        method="POST", path="/orders", content_type="application/json", body=orjson.dumps(body)
    )
    verdict = detector.inspect_body(parts)
    order = operation(shop, "POST", "/orders")
    (json_body,) = [b for b in order.bodies or () if b.media == "application/json"]
    reported = {(finding.location, wildcard_indices(finding.field)) for finding in verdict.findings}
    assert len({field for _, field in reported}) >= 10
    assert reported <= json_body.constrained_json
    query = detector.inspect_head(
        RequestParts.from_target(
            "GET",
            "/orders?limit=1%20or%201=1&sort=../../etc/passwd",
            [("X-Page", "; cat /etc/passwd")],
        )
    )
    reported = {(finding.location, finding.field) for finding in query.findings}
    assert reported == {("query", "limit"), ("query", "sort"), ("header", "x-page")}
    assert reported <= order.constrained_params


# ---- the formats relied on are enforced -------------------------------------------------------


async def openapi_says(tmp_path: Path, body: Any) -> Decision | None:
    """The OpenAPI stage alone (document compiled as the gateway compiles it)."""
    harness = Harness(tmp_path)
    ctx = context("POST", "/orders", body=body)
    decision = await harness.head(ctx)
    return decision if decision is not None else await harness.openapi.request_body(ctx)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("items", [{"id": "' or 1=1-- aaaaaaaaaaaaaaaaaaaaaaaaa"}]),
        ("items", [{"id": "123e4567-e89b-12d3-a456-426614174000\n"}]),
        ("day", "2024-01-31' or 1=1--"),
        ("at", "2024-01-31T10:00:00Z<script>"),
        ("email", "x' or 1=1--"),
        ("code", "abc\n"),
        ("code", "a b"),
        ("kind", "retail' or 1=1--"),
        ("tags", ["whoami; id"]),
    ],
)
async def test_payloads_in_constrained_fields_are_refused_by_validation(
    tmp_path: Path, field: str, value: Any
) -> None:
    refused(await openapi_says(tmp_path, {field: value}), "openapi.invalid_request")


async def test_valid_constrained_values_pass_validation(tmp_path: Path) -> None:
    body = {
        "items": [{"id": "123E4567-E89B-12D3-A456-426614174000", "qty": 2}],
        "day": "2024-01-31",
        "at": "2024-01-31T10:00:00.5+01:00",
        "code": "AB_12-x",
        "kind": "retail",
        "tags": ["whoami"],
    }
    assert await openapi_says(tmp_path, body) is None


async def test_email_is_enforced_but_not_constrained(tmp_path: Path) -> None:
    """RFC 5322 lets a valid address carry SQL: email fields keep the full check."""
    address = "admin'--@example.com"
    assert await openapi_says(tmp_path, {"email": address}) is None
    verdict = Detector(1, 5).inspect_body(
        RequestParts(
            method="POST",
            path="/orders",
            content_type="application/json",
            body=orjson.dumps({"email": address}),
        )
    )
    assert verdict.blocked
    harness = Harness(tmp_path)
    ctx = context("POST", "/orders", body={"email": address})
    decision = await harness.pipeline.request_headers(ctx)
    assert decision is None
    refused(await harness.pipeline.request_body(ctx), "waf.sqli")


def test_names_that_decode_differently_are_recognised() -> None:
    assert plain_query_names("limit=5&sort=asc&q=a%20b")
    assert plain_query_names("")
    assert not plain_query_names("limit=5&%c1%acimit=x")  # over-long "l" to the detector
    assert not plain_query_names("limit=5&%u006cimit=x")  # IIS %u to the detector
    assert not plain_query_names("limit=5&l\xe9=1")
    assert plain_form_names(b"count=1&note=a%20b")
    assert not plain_form_names(b"count=1&%u0063ount=x")
    assert not plain_form_names(b"count=1&%U0063ount=x")


# ---- the stage ------------------------------------------------------------------------------

_WAF_CACHE = DetectorCache()


def context(
    method: str,
    target: str,
    body: Any = None,
    content_type: str = "application/json",
    headers: list[tuple[str, str]] | None = None,
) -> RequestContext:
    path, _, query = target.partition("?")
    raw = None if body is None else body if isinstance(body, bytes) else orjson.dumps(body)
    all_headers = list(headers or [])
    if raw is not None:
        all_headers.append(("content-type", content_type))
    ctx = RequestContext(
        "r",
        method,
        path,
        query,
        all_headers,
        "127.0.0.1",
        1,
        "http",
        "1.1",
        raw_target=target,
        content_length=len(raw) if raw is not None else None,
    )
    ctx.content_type = content_type if raw is not None else ""
    ctx.body = raw
    return ctx


class Harness:
    """The OpenAPI stage and the WAF on one route, run by the real pipeline."""

    def __init__(
        self, tmp_path: Path, text: str = SHOP, mode: str = "enforce", undeclared: str = "deny"
    ) -> None:
        config = OpenApiConfig.model_validate(
            {"spec": "x", "mode": mode, "additional_properties": undeclared}
        )
        spec = compile_spec(
            tmp_path, text, f"spec-{mode}-{undeclared}.yaml", close_objects=undeclared == "deny"
        )
        self.openapi = OpenApiStage(spec, config)
        waf_config = WafConfig()
        self.waf = WafStage(waf_config, _WAF_CACHE.get(waf_config))
        self.pipeline = Pipeline([self.waf, self.openapi])

    async def head(self, ctx: RequestContext) -> Decision | None:
        return await self.openapi.request_headers(ctx)

    async def run(self, ctx: RequestContext) -> Decision | None:
        decision = await self.pipeline.request_headers(ctx)
        if decision is None and ctx.body is not None and self.pipeline.wants_request_body(ctx):
            decision = await self.pipeline.request_body(ctx)
        return decision


FORM = "application/x-www-form-urlencoded"


def refused(decision: Decision | None, reason: str) -> Decision:
    assert decision is not None, f"expected {reason}, got a pass"
    assert decision.denies
    assert decision.reason == reason, decision
    return decision


def body_fields(ctx: RequestContext) -> set[tuple[str, str]]:
    published = ctx.annotations.get(ANNOTATION, frozenset())
    return {(location, field) for location, field in published if location in ("json", "form")}


def test_the_annotation_is_the_one_the_waf_reads() -> None:
    assert ANNOTATION == OPENAPI_CONSTRAINED_FIELDS


async def test_parameters_are_published_after_the_head_conforms(tmp_path: Path) -> None:
    harness = Harness(tmp_path, undeclared="allow")
    ctx = context("POST", "/orders?limit=5&sort=asc", headers=[("x-page", "2")])
    assert await harness.head(ctx) is None
    assert ctx.annotations[ANNOTATION] == {
        ("query", "limit"),
        ("query", "ids"),
        ("query", "sort"),
        ("header", "x-page"),
    }
    # names with escapes the detector decodes its own way: headers only
    ctx = context("POST", "/orders?limit=5&%u006cimit=whoami", headers=[("x-page", "2")])
    assert await harness.head(ctx) is None
    assert ctx.annotations[ANNOTATION] == {("header", "x-page")}


async def test_body_fields_are_added_after_the_body_conforms(tmp_path: Path) -> None:
    harness = Harness(tmp_path)
    ctx = context("POST", "/orders?limit=5", body={"tags": ["whoami"], "kind": "retail"})
    assert await harness.run(ctx) is None
    published = ctx.annotations[ANNOTATION]
    assert ("query", "limit") in published
    assert ("json", "$.tags[*]") in published
    assert ("form", "count") not in published  # read as JSON, not as a form
    form = context(
        "POST",
        "/orders",
        body=b"tags=whoami&tags=red&x-mode=fast",
        content_type="application/x-www-form-urlencoded",
    )
    assert await harness.run(form) is None
    assert body_fields(form) == {("form", "count"), ("form", "tags"), ("form", "x-mode")}


async def test_a_valid_enum_value_passes_only_thanks_to_the_annotation(tmp_path: Path) -> None:
    """The tag "whoami" is declared; on its own it looks like command reconnaissance."""
    harness = Harness(tmp_path)
    body = {"tags": ["red", "whoami"], "note": "weekly"}
    plain = context("POST", "/orders", body=body)
    assert await harness.waf.request_headers(plain) is None
    refused(await harness.waf.request_body(plain), "waf.cmdi")
    assert await harness.run(context("POST", "/orders", body=body)) is None
    # the same word in a free-text field is still refused
    decision = await harness.run(context("POST", "/orders", body={"note": "; cat /etc/passwd"}))
    refused(decision, "waf.cmdi")
    # ...and in the constrained field it is not an enum value: the contract refuses it
    decision = await harness.run(context("POST", "/orders", body={"tags": ["whoami; id"]}))
    assert refused(decision, "openapi.invalid_request").status == 400


async def test_a_query_enum_passes_and_free_text_does_not(tmp_path: Path) -> None:
    text = SHOP.replace("enum: [asc, desc]", "enum: [asc, desc, whoami]")
    harness = Harness(tmp_path, text, undeclared="allow")
    assert await harness.run(context("POST", "/orders?sort=whoami")) is None
    decision = await harness.run(context("POST", "/orders?q=whoami"))
    refused(decision, "waf.cmdi")
    # spelt so that only the detector reads the name as "sort": nothing is vouched for
    decision = await harness.run(context("POST", "/orders?sort=asc&%u0073ort=whoami"))
    refused(decision, "waf.cmdi")


async def test_monitor_mode_vouches_for_nothing_in_a_request_that_broke_the_contract(
    tmp_path: Path,
) -> None:
    harness = Harness(tmp_path, mode="monitor")
    # the head breaks the contract: no parameters, and no body fields either
    ctx = context("POST", "/orders?limit=many", body={"tags": ["whoami"]})
    decision = await harness.run(ctx)
    assert ANNOTATION not in ctx.annotations
    refused(decision, "waf.cmdi")
    assert [d.reason for d in ctx.monitored][:1] == ["openapi.invalid_request"]
    # the head conforms but the body does not: what the head published is withdrawn
    ctx = context("POST", "/orders?limit=5", body={"tags": ["whoami"], "amount": "lots"})
    decision = await harness.run(ctx)
    assert ANNOTATION not in ctx.annotations
    refused(decision, "waf.cmdi")
    # a conforming request in monitor mode gets the same benefit as in enforce mode
    ctx = context("POST", "/orders?limit=5", body={"tags": ["whoami"]})
    assert await harness.run(ctx) is None
    assert ("json", "$.tags[*]") in ctx.annotations[ANNOTATION]


async def test_bodies_the_waf_reads_differently_get_no_body_fields(tmp_path: Path) -> None:
    harness = Harness(tmp_path, undeclared="allow")
    ctx = context(
        "POST",
        "/orders",
        body={"tags": ["whoami"]},
        headers=[("content-encoding", "x-unknown")],
    )
    await harness.head(ctx)
    assert await harness.openapi.request_body(ctx) is None
    assert body_fields(ctx) == set()
    ctx = context(
        "POST",
        "/orders",
        body=b"tags=red&%u0074ags=whoami",
        content_type="application/x-www-form-urlencoded",
    )
    await harness.head(ctx)
    assert await harness.openapi.request_body(ctx) is None
    assert body_fields(ctx) == set()
    # the same bodies, plainly sent, do get them
    ctx = context("POST", "/orders", body=b"tags=red", content_type=FORM)
    await harness.head(ctx)
    assert await harness.openapi.request_body(ctx) is None
    assert ("form", "tags") in body_fields(ctx)


def test_operations_without_constrained_fields_publish_nothing(tmp_path: Path) -> None:
    spec = compile_spec(
        tmp_path,
        json.dumps(
            {
                "openapi": "3.1.0",
                "info": {"title": "t", "version": "1"},
                "paths": {
                    "/notes": {
                        "post": {
                            "requestBody": {
                                "content": {
                                    "application/json": {
                                        "schema": {
                                            "type": "object",
                                            "properties": {"text": {"type": "string"}},
                                        }
                                    }
                                }
                            },
                            "responses": {"200": {"description": "ok"}},
                        }
                    }
                },
            }
        ),
        "notes.json",
    )
    notes = operation(spec, "POST", "/notes")
    assert notes.constrained_params == frozenset()
    assert all(body.constrained_json == frozenset() for body in notes.bodies or ())
