"""An OpenAPI 3.1 draft from an inventory: what the traffic showed, marked as learnt.

Every operation carries ``x-dijk-first-seen``, ``x-dijk-last-seen`` (RFC 3339, UTC) and
``x-dijk-count``, and where known ``x-dijk-route`` and ``x-dijk-pii-categories``. Path
parameters get names (``{id}``, then ``{postId}``... after the literal before them) and a
schema from the shapes of the values seen (integer, uuid, email, date...). Examples are
redacted shapes (``<email>``), never values. Pure: a dictionary in, a dictionary out.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any, Final

from dijk.discovery import shapes
from dijk.discovery.inventory import Endpoint, is_json
from dijk.discovery.paths import PARAM, SegmentKind, parameter_names, template_segments

__all__ = ["build_document", "iso_time"]

_METHODS: Final = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
_PARAM_SCHEMAS: Final[dict[str, dict[str, Any]]] = {
    SegmentKind.INTEGER: {"type": "integer"},
    SegmentKind.SHORT_NUMBER: {"type": "integer"},
    SegmentKind.NUMBER: {"type": "number"},
    SegmentKind.UUID: {"type": "string", "format": "uuid"},
    SegmentKind.EMAIL: {"type": "string", "format": "email"},
    SegmentKind.DATE: {"type": "string", "format": "date"},
    SegmentKind.DATE_TIME: {"type": "string", "format": "date-time"},
    SegmentKind.HEX: {"type": "string", "pattern": "^[0-9a-fA-F]+$"},
}
_SCHEMES: Final[dict[str, dict[str, Any]]] = {
    "api_key": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
    "jwt": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
    "bearer": {"type": "http", "scheme": "bearer"},
    "introspection": {"type": "http", "scheme": "bearer"},
    "basic": {"type": "http", "scheme": "basic"},
    "mtls": {"type": "mutualTLS"},
    "cookie": {"type": "apiKey", "in": "cookie", "name": "session"},
}


def iso_time(micros: int) -> str:
    moment = datetime.fromtimestamp(micros / 1_000_000, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def build_document(
    endpoints: Iterable[Endpoint],
    *,
    title: str = "Discovered API",
    include_unrouted: bool = False,
    api_key_header: str = "X-API-Key",
) -> dict[str, Any]:
    """The OpenAPI 3.1 document of the endpoints (see the module docstring)."""
    paths: dict[str, dict[str, Any]] = {}
    schemes: dict[str, dict[str, Any]] = {}
    requests = 0
    first: int | None = None
    last: int | None = None
    for endpoint in endpoints:
        if not include_unrouted and endpoint.get("unrouted", 0) >= endpoint["count"]:
            continue
        method = endpoint["method"].lower()
        if method not in _METHODS:
            continue
        named, names = parameter_names(endpoint["template"])
        operation = _operation(endpoint, named, names)
        security = _security(endpoint, schemes, api_key_header)
        if security is not None:
            operation["security"] = security
        paths.setdefault(named, {})[method] = operation
        requests += endpoint["count"]
        first = endpoint["first_us"] if first is None else min(first, endpoint["first_us"])
        last = endpoint["last_us"] if last is None else max(last, endpoint["last_us"])
    description = f"Learnt by Dijk from {requests} requests"
    if first is not None and last is not None:
        description += f" between {iso_time(first)} and {iso_time(last)}"
    document: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {
            "title": title,
            "version": "draft",
            "description": description + ". A draft: review it before you enforce it.",
        },
        "paths": dict(sorted(paths.items())),
    }
    if schemes:
        document["components"] = {"securitySchemes": dict(sorted(schemes.items()))}
    return document


def _operation(endpoint: Endpoint, named: str, names: list[str]) -> dict[str, Any]:
    operation: dict[str, Any] = {
        "summary": f"{endpoint['method']} {named}",
    }
    parameters = _path_parameters(endpoint, names) + _query_parameters(endpoint)
    if parameters:
        operation["parameters"] = parameters
    body = _request_body(endpoint)
    if body is not None:
        operation["requestBody"] = body
    operation["responses"] = _responses(endpoint)
    operation["x-dijk-first-seen"] = iso_time(endpoint["first_us"])
    operation["x-dijk-last-seen"] = iso_time(endpoint["last_us"])
    operation["x-dijk-count"] = endpoint["count"]
    if endpoint.get("route"):
        operation["x-dijk-route"] = endpoint["route"]
    if endpoint.get("pii"):
        operation["x-dijk-pii-categories"] = sorted(endpoint["pii"])
    if endpoint.get("undeclared"):
        operation["x-dijk-undeclared"] = endpoint["undeclared"]
    return operation


def _path_parameters(endpoint: Endpoint, names: list[str]) -> list[dict[str, Any]]:
    positions = [
        index
        for index, segment in enumerate(template_segments(endpoint["template"]))
        if segment.startswith(PARAM)
    ]
    kinds: Mapping[str, Mapping[str, int]] = endpoint.get("params", {})
    result = []
    for name, position in zip(names, positions, strict=True):
        seen = kinds.get(str(position), {})
        schema: dict[str, Any] = {"type": "string"}
        if len(seen) == 1:
            schema = dict(_PARAM_SCHEMAS.get(next(iter(seen)), schema))
        elif seen and set(seen) <= {SegmentKind.INTEGER, SegmentKind.SHORT_NUMBER}:
            schema = {"type": "integer"}
        result.append({"name": name, "in": "path", "required": True, "schema": schema})
    return result


def _query_parameters(endpoint: Endpoint) -> list[dict[str, Any]]:
    samples = endpoint.get("samples", 0)
    result = []
    for name, shape in sorted(endpoint.get("query", {}).items()):
        parameter: dict[str, Any] = {"name": name, "in": "query", "schema": shapes.to_schema(shape)}
        if samples >= 5 and shape.get("n", 0) >= samples:
            parameter["required"] = True
        result.append(parameter)
    return result


def _media(types: Mapping[str, int], shape: shapes.Shape | None) -> dict[str, Any]:
    content: dict[str, Any] = {}
    for media in sorted(types) or (["application/json"] if shape is not None else []):
        entry: dict[str, Any] = {}
        if is_json(media) and shape is not None:
            schema = shapes.to_schema(shape)
            entry["schema"] = schema
            entry["example"] = shapes.redacted_example(schema)
        content[media] = entry
    return content


def _request_body(endpoint: Endpoint) -> dict[str, Any] | None:
    types = endpoint.get("request_types", {})
    shape = endpoint.get("request")
    if not types and shape is None:
        return None
    return {"content": _media(types, shape)}


def _responses(endpoint: Endpoint) -> dict[str, Any]:
    statuses: Mapping[str, int] = endpoint.get("status", {})
    responses: dict[str, Any] = {}
    for status in sorted(statuses):
        seen = statuses[status]
        answer: dict[str, Any] = {"description": f"Seen {seen} time{'s' if seen != 1 else ''}."}
        content = _media(
            endpoint.get("response_types", {}).get(status, {}),
            endpoint.get("responses", {}).get(status),
        )
        if content:
            answer["content"] = content
        responses[status] = answer
    if not responses:
        responses["default"] = {"description": "No answer was observed."}
    return responses


def _security(
    endpoint: Endpoint, schemes: dict[str, dict[str, Any]], api_key_header: str
) -> list[dict[str, list[str]]] | None:
    seen = endpoint.get("auth", {})
    methods = sorted(name for name in seen if name in _SCHEMES)
    if not methods:
        return [] if seen else None
    for name in methods:
        scheme = dict(_SCHEMES[name])
        if name == "api_key":
            scheme["name"] = api_key_header
        schemes[name] = scheme
    requirements: list[dict[str, list[str]]] = [{name: []} for name in methods]
    if "none" in seen:
        requirements.append({})
    return requirements
