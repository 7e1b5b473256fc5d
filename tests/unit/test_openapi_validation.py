"""The OpenAPI stages on requests and responses, without a server (pure pipeline calls)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import orjson
import pytest

from dijk.config.models import OpenApiConfig
from dijk.openapi import load_spec
from dijk.pipeline.context import RequestContext
from dijk.pipeline.decision import Decision
from dijk.stages.openapi import OpenApiResponseStage, OpenApiStage

PETS_30 = """\
openapi: 3.0.3
info: {title: pets, version: "1"}
servers: [{url: "https://api.example.org/v1"}]
paths:
  /pets:
    get:
      parameters:
        - {name: limit, in: query, schema: {type: integer, format: int32, minimum: 1}}
        - {name: tags, in: query, schema: {type: array, items: {type: string}}}
        - {name: ids, in: query, style: form, explode: false,
           schema: {type: array, items: {type: integer}}}
        - {name: filter, in: query, style: deepObject,
           schema: {type: object, properties: {color: {type: string}, age: {type: integer}}}}
        - {name: X-Trace, in: header, schema: {type: string, pattern: "^[a-f0-9]+$"}}
        - {name: session, in: cookie, schema: {type: integer}}
        - {name: verbose, in: query, schema: {type: boolean}}
      responses:
        "200":
          description: ok
          content:
            application/json:
              schema: {type: array, items: {$ref: "#/components/schemas/Pet"}}
    post:
      requestBody:
        required: true
        content:
          application/json:
            schema: {$ref: "#/components/schemas/NewPet"}
          application/x-www-form-urlencoded:
            schema: {$ref: "#/components/schemas/NewPet"}
          multipart/form-data:
            schema:
              type: object
              properties:
                name: {type: string}
                photo: {type: string, format: binary}
              required: [name]
      responses:
        "201":
          description: created
          content:
            application/json:
              schema: {$ref: "#/components/schemas/Pet"}
  /pets/{id}:
    parameters:
      - {name: id, in: path, required: true, schema: {type: integer, minimum: 1}}
    get:
      responses:
        "200":
          description: ok
          content:
            application/json: {schema: {$ref: "#/components/schemas/Pet"}}
        4XX:
          description: client error
          content:
            application/json: {schema: {$ref: "#/components/schemas/Error"}}
    put:
      requestBody:
        content:
          application/json: {schema: {$ref: "#/components/schemas/Pet"}}
      responses:
        "200": {description: ok}
  /pets/mine:
    get:
      responses:
        "200": {description: ok}
  /files/{name}.{ext}:
    get:
      parameters:
        - {name: name, in: path, required: true, schema: {type: string}}
        - {name: ext, in: path, required: true, schema: {type: string, enum: [txt, csv]}}
      responses:
        "200": {description: ok}
  /shapes:
    post:
      requestBody:
        required: true
        content:
          application/json:
            schema:
              oneOf:
                - {$ref: "#/components/schemas/Circle"}
                - {$ref: "#/components/schemas/Square"}
              discriminator: {propertyName: kind, mapping: {circle: "#/components/schemas/Circle"}}
      responses:
        "204": {description: ok}
components:
  schemas:
    Base:
      type: object
      properties:
        name: {type: string, maxLength: 20}
        nickname: {type: string, nullable: true}
    NewPet:
      allOf:
        - $ref: "#/components/schemas/Base"
        - type: object
          required: [name]
          properties:
            age: {type: integer, minimum: 0, exclusiveMinimum: true}
    Pet:
      allOf:
        - $ref: "#/components/schemas/NewPet"
        - type: object
          required: [id, secret]
          properties:
            id: {type: integer, readOnly: true}
            secret: {type: string, writeOnly: true}
            owner:
              type: object
              properties: {name: {type: string}}
            meta: {type: object}
    Circle:
      type: object
      required: [kind, radius]
      properties: {kind: {type: string}, radius: {type: number}}
    Square:
      type: object
      required: [kind, side]
      properties: {kind: {type: string}, side: {type: number}}
    Error:
      type: object
      properties: {error: {type: string}}
"""


def spec_file(tmp_path: Path, text: str = PETS_30, name: str = "pets.yaml") -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def context(
    method: str,
    path: str,
    query: str = "",
    body: Any = None,
    content_type: str = "application/json",
    headers: list[tuple[str, str]] | None = None,
) -> RequestContext:
    raw: bytes | None
    if body is None:
        raw = None
    elif isinstance(body, bytes):
        raw = body
    else:
        raw = orjson.dumps(body)
    all_headers = list(headers or [])
    if raw is not None:
        all_headers.append(("content-type", content_type))
    ctx = RequestContext(
        request_id="r",
        method=method,
        path=path,
        query=query,
        headers=all_headers,
        client_ip="127.0.0.1",
        client_port=1,
        scheme="http",
        http_version="1.1",
        content_length=len(raw) if raw is not None else None,
    )
    ctx.body = raw
    return ctx


class Harness:
    def __init__(self, tmp_path: Path, text: str = PETS_30, **settings: Any) -> None:
        self.config = OpenApiConfig(spec="x", **settings)
        spec = load_spec(
            spec_file(tmp_path, text),
            close_objects=self.config.additional_properties == "deny",
            response_mode=self.config.response,
            base_path=self.config.base_path,
        )
        self.stage = OpenApiStage(spec, self.config)
        self.response_stage = OpenApiResponseStage(self.config)

    async def request(self, ctx: RequestContext) -> Decision | None:
        decision = await self.stage.request_headers(ctx)
        if decision is not None:
            return decision
        if ctx.body is not None and self.stage.wants_request_body(ctx):
            return await self.stage.request_body(ctx)
        return None

    async def response(
        self, ctx: RequestContext, status: int, body: Any, content_type: str = "application/json"
    ) -> Decision | None:
        raw = body if isinstance(body, bytes) else orjson.dumps(body)
        ctx.response_status = status
        ctx.response_headers = [("content-type", content_type), ("etag", '"x"')]
        decision = await self.response_stage.response_headers(ctx)
        if decision is not None:
            return decision
        if self.response_stage.wants_response_body(ctx):
            ctx.response_body = raw
            return await self.response_stage.response_body(ctx)
        return None


@pytest.fixture
def pets(tmp_path: Path) -> Harness:
    return Harness(tmp_path)


def denied(decision: Decision | None, status: int, reason: str) -> str:
    assert decision is not None, f"expected {status} {reason}, got a pass"
    assert decision.denies
    assert (decision.status, decision.reason) == (status, reason), decision
    return decision.detail


# ---- operations --------------------------------------------------------------------------


async def test_declared_requests_pass(pets: Harness) -> None:
    assert await pets.request(context("GET", "/v1/pets", "limit=5&tags=a&tags=b")) is None
    assert await pets.request(context("GET", "/v1/pets/7")) is None
    assert await pets.request(context("HEAD", "/v1/pets/7")) is None
    assert await pets.request(context("POST", "/v1/pets", body={"name": "Rex"})) is None


async def test_undeclared_path_is_404_and_method_405_with_allow(pets: Harness) -> None:
    denied(await pets.request(context("GET", "/v1/admin-export")), 404, "openapi.unknown_path")
    denied(await pets.request(context("GET", "/pets")), 404, "openapi.unknown_path")
    decision = await pets.request(context("DELETE", "/v1/pets/1"))
    denied(decision, 405, "openapi.method_not_allowed")
    assert decision is not None
    assert dict(decision.headers)["Allow"] == "GET, HEAD, PUT"


async def test_literal_paths_win_over_templates_and_partial_segments_match(pets: Harness) -> None:
    assert await pets.request(context("GET", "/v1/pets/mine")) is None
    assert await pets.request(context("GET", "/v1/files/report.csv")) is None
    detail = denied(
        await pets.request(context("GET", "/v1/files/report.exe")), 400, "openapi.invalid_request"
    )
    assert detail == "path parameter /ext: must be one of 'txt', 'csv' (enum)"


async def test_base_path_can_be_configured(tmp_path: Path) -> None:
    harness = Harness(tmp_path, base_path="/api")
    assert await harness.request(context("GET", "/api/pets/7")) is None
    denied(await harness.request(context("GET", "/v1/pets/7")), 404, "openapi.unknown_path")


# ---- parameters --------------------------------------------------------------------------


async def test_path_parameter_of_the_wrong_type_names_it(pets: Harness) -> None:
    detail = denied(
        await pets.request(context("GET", "/v1/pets/not-a-number")), 400, "openapi.invalid_request"
    )
    assert detail == "path parameter /id: must be of type integer (type)"
    detail = denied(
        await pets.request(context("GET", "/v1/pets/0")), 400, "openapi.invalid_request"
    )
    assert detail == "path parameter /id: must be >= 1 (minimum)"


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("limit=0", "query parameter /limit: must be >= 1 (minimum)"),
        ("limit=99999999999", "query parameter /limit: must be <= 2147483647 (maximum)"),
        ("ids=1,x", "query parameter /ids/1: must be of type integer (type)"),
        ("filter[age]=old", "query parameter /filter/age: must be of type integer (type)"),
        ("verbose=yes", "query parameter /verbose: must be of type boolean (type)"),
        ("limit=1&limit=2", "query parameter 'limit': is given more than once"),
    ],
)
async def test_query_styles_are_read_and_checked(pets: Harness, query: str, expected: str) -> None:
    detail = denied(
        await pets.request(context("GET", "/v1/pets", query)), 400, "openapi.invalid_request"
    )
    assert detail == expected


async def test_query_styles_accept_valid_values(pets: Harness) -> None:
    query = "ids=1,2,3&filter[color]=red&filter[age]=3&verbose=true&tags=x"
    assert await pets.request(context("GET", "/v1/pets", query)) is None


async def test_undeclared_query_parameters_follow_additional_properties(tmp_path: Path) -> None:
    strict = Harness(tmp_path)
    detail = denied(
        await strict.request(context("GET", "/v1/pets", "limit=1&debug=1")),
        400,
        "openapi.undeclared_parameter",
    )
    assert "'debug'" in detail
    lenient = Harness(tmp_path, additional_properties="allow")
    assert await lenient.request(context("GET", "/v1/pets", "limit=1&debug=1")) is None


async def test_headers_and_cookies_are_checked(pets: Harness) -> None:
    ok = context("GET", "/v1/pets", headers=[("x-trace", "abc123"), ("cookie", "session=5; a=b")])
    assert await pets.request(ok) is None
    detail = denied(
        await pets.request(context("GET", "/v1/pets", headers=[("x-trace", "XYZ")])),
        400,
        "openapi.invalid_request",
    )
    assert detail == "header /x-trace: must match the pattern ^[a-f0-9]+$ (pattern)"
    detail = denied(
        await pets.request(context("GET", "/v1/pets", headers=[("cookie", "session=abc")])),
        400,
        "openapi.invalid_request",
    )
    assert detail == "cookie /session: must be of type integer (type)"


# ---- bodies ------------------------------------------------------------------------------


async def test_body_field_of_the_wrong_type_is_named_without_its_value(pets: Harness) -> None:
    secret_value = "x" * 30
    detail = denied(
        await pets.request(context("POST", "/v1/pets", body={"name": secret_value})),
        400,
        "openapi.invalid_request",
    )
    assert detail == "request body /name: must be at most 20 characters long (maxLength)"
    assert secret_value not in detail


async def test_mass_assignment_is_refused_through_allof(pets: Harness) -> None:
    detail = denied(
        await pets.request(context("POST", "/v1/pets", body={"name": "Rex", "role": "admin"})),
        400,
        "openapi.undeclared_property",
    )
    assert detail == "request body /role: is not declared (unevaluatedProperties)"
    # properties declared in either allOf member are fine, and so are free-form objects
    body = {"name": "Rex", "age": 3, "nickname": None}
    assert await pets.request(context("POST", "/v1/pets", body=body)) is None


async def test_nested_objects_are_closed_but_free_form_ones_stay_open(pets: Harness) -> None:
    body = {"name": "Rex", "secret": "s", "owner": {"name": "A", "admin": True}}
    denied(
        await pets.request(context("PUT", "/v1/pets/1", body=body)),
        400,
        "openapi.undeclared_property",
    )
    body = {"name": "Rex", "secret": "s", "meta": {"anything": [1, 2]}}
    assert await pets.request(context("PUT", "/v1/pets/1", body=body)) is None


async def test_read_only_properties_are_refused_in_requests(pets: Harness) -> None:
    # id is readOnly (and required): not required in a request, refused when sent
    assert (
        await pets.request(context("PUT", "/v1/pets/1", body={"name": "A", "secret": "s"})) is None
    )
    detail = denied(
        await pets.request(
            context("PUT", "/v1/pets/1", body={"name": "A", "secret": "s", "id": 9})
        ),
        400,
        "openapi.read_only_property",
    )
    assert detail == "request body /id: is read-only and must not be sent (readOnly)"


async def test_mass_assignment_is_allowed_when_configured(tmp_path: Path) -> None:
    harness = Harness(tmp_path, additional_properties="allow")
    assert await harness.request(context("POST", "/v1/pets", body={"name": "R", "x": 1})) is None


async def test_openapi30_nullable_and_boolean_exclusive_minimum(pets: Harness) -> None:
    assert (
        await pets.request(context("POST", "/v1/pets", body={"name": "R", "nickname": None}))
        is None
    )
    detail = denied(
        await pets.request(context("POST", "/v1/pets", body={"name": "R", "age": 0})),
        400,
        "openapi.invalid_request",
    )
    assert detail == "request body /age: must be > 0 (exclusiveMinimum)"


async def test_discriminator_selects_the_branch(pets: Harness) -> None:
    assert (
        await pets.request(context("POST", "/v1/shapes", body={"kind": "circle", "radius": 2}))
        is None
    )
    assert (
        await pets.request(context("POST", "/v1/shapes", body={"kind": "Square", "side": 2}))
        is None
    )
    detail = denied(
        await pets.request(context("POST", "/v1/shapes", body={"kind": "circle", "side": 2})),
        400,
        "openapi.invalid_request",
    )
    assert "request body /radius: is required (required)" in detail
    detail = denied(
        await pets.request(context("POST", "/v1/shapes", body={"kind": "blob"})),
        400,
        "openapi.invalid_request",
    )
    assert detail == "request body /kind: must be one of 'Square', 'circle' (enum)"


async def test_content_types(pets: Harness) -> None:
    denied(
        await pets.request(
            context("POST", "/v1/pets", body=b"name=Rex", content_type="text/plain")
        ),
        415,
        "openapi.unsupported_media_type",
    )
    form = context(
        "POST", "/v1/pets", body=b"name=Rex&age=2", content_type="application/x-www-form-urlencoded"
    )
    assert await pets.request(form) is None
    form = context(
        "POST", "/v1/pets", body=b"name=Rex&age=x", content_type="application/x-www-form-urlencoded"
    )
    detail = denied(await pets.request(form), 400, "openapi.invalid_request")
    assert detail == "request body /age: must be of type integer (type)"
    denied(
        await pets.request(context("GET", "/v1/pets/1", body={"a": 1})),
        415,
        "openapi.unsupported_media_type",
    )
    denied(await pets.request(context("POST", "/v1/pets")), 400, "openapi.invalid_request")


async def test_multipart_bodies_are_checked(pets: Harness) -> None:
    boundary = "XyZ"
    parts = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="photo"; filename="a.png"\r\n'
        f"Content-Type: image/png\r\n\r\n\x89PNG\r\n--{boundary}--\r\n"
    ).encode("latin-1")
    ctx = context(
        "POST", "/v1/pets", body=parts, content_type=f"multipart/form-data; boundary={boundary}"
    )
    detail = denied(await pets.request(ctx), 400, "openapi.invalid_request")
    assert detail == "request body /name: is required (required)"
    named = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="name"\r\n\r\nRex\r\n'
    ).encode() + parts
    ctx = context(
        "POST", "/v1/pets", body=named, content_type=f"multipart/form-data; boundary={boundary}"
    )
    assert await pets.request(ctx) is None


async def test_malformed_and_duplicate_key_json_is_refused(pets: Harness) -> None:
    denied(
        await pets.request(context("POST", "/v1/pets", body=b'{"name": ')),
        400,
        "openapi.invalid_request",
    )
    detail = denied(
        await pets.request(context("POST", "/v1/pets", body=b'{"name":"ok","name":42}')),
        400,
        "openapi.invalid_request",
    )
    assert "repeats a property name" in detail
    assert await pets.request(context("POST", "/v1/pets", body=b'{"name":"a\\":b"}')) is None


async def test_hostile_property_names_are_escaped_and_cut(pets: Harness) -> None:
    name = "<script>" + "a" * 500
    detail = denied(
        await pets.request(context("POST", "/v1/pets", body={"name": "R", name: 1})),
        400,
        "openapi.undeclared_property",
    )
    assert "<script>" not in detail
    assert len(detail) < 200


async def test_monitor_mode_records_and_passes(tmp_path: Path) -> None:
    harness = Harness(tmp_path, mode="monitor")
    ctx = context("POST", "/v1/pets", "debug=1", body={"name": 42})
    assert await harness.request(ctx) is None
    reasons = [decision.reason for decision in ctx.monitored]
    assert reasons == ["openapi.undeclared_parameter", "openapi.invalid_request"]
    ctx = context("GET", "/v1/nowhere")
    assert await harness.request(ctx) is None
    assert [decision.reason for decision in ctx.monitored] == ["openapi.unknown_path"]


# ---- responses ---------------------------------------------------------------------------


async def test_strip_removes_undeclared_and_write_only_properties(tmp_path: Path) -> None:
    harness = Harness(tmp_path, response="strip")
    ctx = context("GET", "/v1/pets/1")
    assert await harness.request(ctx) is None
    assert all(name != "accept-encoding" for name, _ in ctx.headers)
    upstream = {
        "id": 1,
        "name": "Rex",
        "secret": "hunter2",
        "internal_score": 7,
        "owner": {"name": "A", "ssn": "1"},
    }
    assert await harness.response(ctx, 200, upstream) is None
    assert ctx.response_body is not None
    assert json.loads(ctx.response_body) == {"id": 1, "name": "Rex", "owner": {"name": "A"}}
    assert ctx.annotations["openapi_stripped"] == ["/secret", "/internal_score", "/owner/ssn"]
    assert all(name != "etag" for name, _ in ctx.response_headers)
    assert ctx.monitored == []


async def test_strip_applies_to_arrays_and_status_ranges(tmp_path: Path) -> None:
    harness = Harness(tmp_path, response="strip")
    ctx = context("GET", "/v1/pets")
    await harness.request(ctx)
    assert await harness.response(ctx, 200, [{"id": 1, "name": "a", "x": 1}]) is None
    assert ctx.response_body is not None
    assert json.loads(ctx.response_body) == [{"id": 1, "name": "a"}]
    ctx = context("GET", "/v1/pets/1")
    await harness.request(ctx)
    assert await harness.response(ctx, 404, {"error": "not_found", "trace": "..."}) is None
    assert ctx.response_body is not None
    assert json.loads(ctx.response_body) == {"error": "not_found"}


async def test_response_monitor_records_and_enforce_answers_502(tmp_path: Path) -> None:
    monitor = Harness(tmp_path, response="monitor")
    ctx = context("GET", "/v1/pets/1")
    await monitor.request(ctx)
    assert await monitor.response(ctx, 200, {"id": "one", "name": "Rex"}) is None
    assert [decision.reason for decision in ctx.monitored] == ["openapi.invalid_response"]
    assert "/id: must be of type integer" in ctx.monitored[0].detail
    ctx = context("GET", "/v1/pets/1")
    await monitor.request(ctx)
    assert await monitor.response(ctx, 500, {"boom": 1}) is None
    assert "500" in ctx.monitored[0].detail

    enforce = Harness(tmp_path, response="enforce")
    ctx = context("GET", "/v1/pets/1")
    await enforce.request(ctx)
    detail = denied(
        await enforce.response(ctx, 200, {"id": 1, "name": "Rex", "leak": 1}),
        502,
        "openapi.invalid_response",
    )
    assert "leak" not in detail
    ctx = context("GET", "/v1/pets/1")
    await enforce.request(ctx)
    denied(await enforce.response(ctx, 500, {"boom": 1}), 502, "openapi.invalid_response")
    ctx = context("GET", "/v1/pets/1")
    await enforce.request(ctx)
    assert await enforce.response(ctx, 200, {"id": 1, "name": "Rex"}) is None
    ctx = context("GET", "/v1/pets/1")
    await enforce.request(ctx)
    denied(
        await enforce.response(ctx, 200, b"<html/>", "text/html"), 502, "openapi.invalid_response"
    )


# ---- dialects ----------------------------------------------------------------------------

OPENAPI_31 = """\
openapi: 3.1.0
info: {title: t, version: "1"}
paths:
  /things:
    post:
      requestBody:
        required: true
        content:
          application/json:
            schema: {$ref: "#/components/schemas/Thing"}
      responses:
        "200": {description: ok}
components:
  schemas:
    Thing:
      type: object
      required: [label]
      properties:
        label: {type: [string, "null"]}
        size: {type: number, exclusiveMinimum: 0}
        tags: {type: array, prefixItems: [{const: first}], items: {type: string}}
      dependentRequired: {size: [unit]}
      unevaluatedProperties: {type: string}
"""


async def test_openapi31_is_json_schema_2020_12(tmp_path: Path) -> None:
    harness = Harness(tmp_path, OPENAPI_31)
    assert await harness.request(context("POST", "/things", body={"label": None})) is None
    assert (
        await harness.request(context("POST", "/things", body={"label": "a", "note": "x"})) is None
    )
    decision = await harness.request(context("POST", "/things", body={"label": "a", "note": 1}))
    assert decision is not None
    assert decision.status == 400
    detail = denied(
        await harness.request(context("POST", "/things", body={"label": "a", "size": 0})),
        400,
        "openapi.invalid_request",
    )
    assert "/size: must be > 0 (exclusiveMinimum)" in detail
    denied(
        await harness.request(context("POST", "/things", body={"label": "a", "tags": ["second"]})),
        400,
        "openapi.invalid_request",
    )


SWAGGER_2 = """\
swagger: "2.0"
info: {title: t, version: "1"}
basePath: /v2
consumes: [application/json]
paths:
  /users:
    get:
      parameters:
        - {name: ids, in: query, type: array, items: {type: integer}, collectionFormat: pipes}
        - {name: page, in: query, type: integer, minimum: 1, required: true}
      responses:
        200: {description: ok, schema: {type: array, items: {$ref: "#/definitions/User"}}}
    post:
      parameters:
        - {name: body, in: body, required: true, schema: {$ref: "#/definitions/User"}}
      responses:
        201: {description: created}
  /avatars:
    post:
      consumes: [multipart/form-data]
      parameters:
        - {name: file, in: formData, type: file, required: true}
        - {name: note, in: formData, type: string, maxLength: 5}
      responses:
        201: {description: created}
definitions:
  User:
    type: object
    required: [name]
    properties:
      name: {type: string}
      manager: {$ref: "#/definitions/User", x-nullable: true}
"""


async def test_swagger2_parameters_bodies_and_base_path(tmp_path: Path) -> None:
    harness = Harness(tmp_path, SWAGGER_2)
    assert await harness.request(context("GET", "/v2/users", "page=1&ids=1|2")) is None
    detail = denied(
        await harness.request(context("GET", "/v2/users", "page=1&ids=1|b")),
        400,
        "openapi.invalid_request",
    )
    assert detail == "query parameter /ids/1: must be of type integer (type)"
    denied(await harness.request(context("GET", "/v2/users")), 400, "openapi.invalid_request")
    body = {"name": "a", "manager": {"name": "b", "manager": None}}
    assert await harness.request(context("POST", "/v2/users", body=body)) is None
    denied(
        await harness.request(context("POST", "/v2/users", body={"name": "a", "admin": True})),
        400,
        "openapi.undeclared_property",
    )
    boundary = "b0"
    form = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="note"\r\n\r\ntoo long\r\n'
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="x"\r\n\r\n'
        f"data\r\n--{boundary}--\r\n"
    ).encode()
    ctx = context(
        "POST", "/v2/avatars", body=form, content_type=f"multipart/form-data; boundary={boundary}"
    )
    detail = denied(await harness.request(ctx), 400, "openapi.invalid_request")
    assert detail == "request body /note: must be at most 5 characters long (maxLength)"
