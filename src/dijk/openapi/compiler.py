"""Compile a bundled OpenAPI document into what the per-request code looks up.

Everything here runs once per configuration load: path templates go
into a segment trie, each operation gets one validator per parameter location and one
per request content type (and per response content type when responses are checked),
all compiled by jsonschema-rs from one 2020-12 document (:mod:`dijk.openapi.schema`).
The result, :class:`CompiledSpec`, is immutable and shared by every route using the
document.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import unquote, urlsplit

from dijk.openapi.constrained import NOTHING, ConstraintFinder, Field
from dijk.openapi.document import Document, Version
from dijk.openapi.errors import SpecIssue, escape_token
from dijk.openapi.params import ANY, Location, Parameter, Shape
from dijk.openapi.schema import Compiled, Direction, SchemaError, SchemaSet, resolve_pointer
from dijk.openapi.strip import Stripper, StripperBuilder

__all__ = [
    "Body",
    "CompiledSpec",
    "Operation",
    "PathItem",
    "Response",
    "compile_document",
]

METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
LOCATIONS: tuple[Location, ...] = ("path", "query", "header", "cookie")
# OpenAPI: header parameters with these names are ignored (other fields describe them).
_IGNORED_HEADERS = frozenset({"accept", "content-type", "authorization"})
_DEFAULT_STYLE = {"path": "simple", "query": "form", "header": "simple", "cookie": "form"}
_SWAGGER_COLLECTION = {
    "csv": ("form", False),
    "ssv": ("spaceDelimited", False),
    "tsv": ("tabDelimited", False),
    "pipes": ("pipeDelimited", False),
    "multi": ("form", True),
}
_SWAGGER_SCHEMA_FIELDS = (
    "type",
    "format",
    "items",
    "enum",
    "default",
    "maximum",
    "exclusiveMaximum",
    "minimum",
    "exclusiveMinimum",
    "maxLength",
    "minLength",
    "pattern",
    "maxItems",
    "minItems",
    "uniqueItems",
    "multipleOf",
    "x-nullable",
)
_PARAM = re.compile(r"\{([^{}/]+)\}")
ResponseMode = Literal["off", "monitor", "strip", "enforce"]


@dataclass(slots=True)
class Body:
    media: str
    entry: str | None
    shape: Shape
    validator: Any = None
    # Fields a conforming body keeps harmless (dijk.openapi.constrained), by how it is read.
    constrained_json: frozenset[Field] = NOTHING
    constrained_form: frozenset[Field] = NOTHING
    # Fields whose schema declares a kind of text (dijk.detect.content), by how it is read.
    content_json: dict[Field, str] = field(default_factory=dict)
    content_form: dict[Field, str] = field(default_factory=dict)


@dataclass(slots=True)
class ResponseBody:
    media: str
    entry: str | None
    stripper: Stripper | None = None
    validator: Any = None
    # The entry closes declared objects and refuses writeOnly properties: a body it accepts
    # has nothing to strip, so strip mode can skip the rewrite for clean answers.
    closed: bool = False


@dataclass(slots=True)
class Response:
    bodies: list[ResponseBody]


@dataclass(slots=True)
class Operation:
    method: str
    template: str
    parameters: dict[Location, list[Parameter]]
    entries: dict[Location, str]
    body_required: bool
    bodies: list[Body] | None
    responses: dict[str, Response]
    validators: dict[Location, Any] = field(default_factory=dict)
    # Parameters whose conforming values are harmless (dijk.openapi.constrained): header
    # ones, query ones, and both together (what a request with plain query names gets).
    constrained_headers: frozenset[Field] = NOTHING
    constrained_query: frozenset[Field] = NOTHING
    constrained_params: frozenset[Field] = NOTHING

    @property
    def label(self) -> str:
        return f"{self.method} {self.template}"


@dataclass(slots=True)
class PathItem:
    template: str
    operations: dict[str, Operation] = field(default_factory=dict)
    allow: str = ""


@dataclass(slots=True)
class _Node:
    literal: dict[str, _Node] = field(default_factory=dict)
    partial: list[tuple[re.Pattern[str], tuple[str, ...], _Node]] = field(default_factory=list)
    whole: list[tuple[str, _Node]] = field(default_factory=list)
    item: PathItem | None = None


class CompiledSpec:
    """One compiled document: find the operation for a path, then its validators."""

    def __init__(
        self,
        file: str,
        version: Version,
        base_paths: tuple[str, ...],
        items: list[PathItem],
        compiled: Compiled,
        operations: int,
    ) -> None:
        self.file = file
        self.version = version
        self.base_paths = base_paths
        self.items = items
        self.compiled = compiled
        self.operation_count = operations
        self._root = _Node()
        for item in items:
            self._add(item)

    def _add(self, item: PathItem) -> None:
        node = self._root
        for segment in _segments(item.template):
            names = tuple(_PARAM.findall(segment))
            if not names:
                node = node.literal.setdefault(segment, _Node())
            elif _PARAM.fullmatch(segment):
                for name, child in node.whole:
                    if name == names[0]:
                        node = child
                        break
                else:
                    child = _Node()
                    node.whole.append((names[0], child))
                    node = child
            else:
                pattern = _segment_pattern(segment)
                for existing, _, child in node.partial:
                    if existing.pattern == pattern.pattern:
                        node = child
                        break
                else:
                    child = _Node()
                    node.partial.append((pattern, names, child))
                    node = child
        if node.item is None:
            node.item = item
        else:  # the same template twice (names differ): keep the first of each method
            for method, operation in item.operations.items():
                node.item.operations.setdefault(method, operation)
            node.item.allow = _allow(node.item.operations)

    def match(self, path: str) -> tuple[PathItem, dict[str, str]] | None:
        """The path item for a normalised request path, with raw path parameter values."""
        for base in self.base_paths:
            if base:
                if path == base:
                    rest = "/"
                elif path.startswith(base + "/"):
                    rest = path[len(base) :]
                else:
                    continue
            else:
                rest = path
            params: dict[str, str] = {}
            found = _walk(self._root, rest.split("/")[1:], 0, params)
            if found is not None:
                return found, {name: unquote(value) for name, value in params.items()}
        return None


def _walk(node: _Node, segments: list[str], index: int, params: dict[str, str]) -> PathItem | None:
    if index == len(segments):
        return node.item
    segment = segments[index]
    child = node.literal.get(segment)
    if child is not None:
        found = _walk(child, segments, index + 1, params)
        if found is not None:
            return found
    for pattern, names, child in node.partial:
        matched = pattern.fullmatch(segment)
        if matched is not None:
            found = _walk(child, segments, index + 1, params)
            if found is not None:
                params.update(zip(names, matched.groups(), strict=True))
                return found
    if segment:
        for name, child in node.whole:
            found = _walk(child, segments, index + 1, params)
            if found is not None:
                params[name] = segment
                return found
    return None


def _segments(template: str) -> list[str]:
    return template.split("/")[1:]


def _segment_pattern(segment: str) -> re.Pattern[str]:
    parts: list[str] = []
    position = 0
    for found in _PARAM.finditer(segment):
        parts.append(re.escape(segment[position : found.start()]))
        parts.append("([^/]+?)")
        position = found.end()
    parts.append(re.escape(segment[position:]))
    return re.compile("".join(parts))


def _allow(operations: dict[str, Operation]) -> str:
    methods = set(operations)
    if "GET" in methods:
        methods.add("HEAD")
    return ", ".join(sorted(methods))


# --------------------------------------------------------------------------- compiling


@dataclass(slots=True)
class _Context:
    document: Document
    schemas: SchemaSet
    response_mode: ResponseMode
    strippers: StripperBuilder | None
    issues: list[SpecIssue] = field(default_factory=list)
    shapes: dict[tuple[int, int], Shape] = field(default_factory=dict)

    @property
    def root(self) -> dict[str, Any]:
        return self.document.root

    def resolve(self, value: Any) -> Any:
        """Follow ``$ref`` chains of non-schema objects (parameters, bodies, responses)."""
        for _ in range(16):
            if not (isinstance(value, dict) and isinstance(value.get("$ref"), str)):
                return value
            try:
                value = resolve_pointer(self.root, value["$ref"])
            except KeyError:
                return None
        return None


def compile_document(
    document: Document,
    *,
    close_objects: bool,
    response_mode: ResponseMode,
    base_path: str | None,
) -> CompiledSpec:
    """Compile ``document``; raises :class:`~dijk.openapi.errors.SpecError` on problems."""
    from dijk.openapi.errors import SpecError

    schemas = SchemaSet(document.root, document.version, close_objects)
    strippers = (
        StripperBuilder(document.root, document.version) if response_mode == "strip" else None
    )
    context = _Context(document, schemas, response_mode, strippers)
    items: list[PathItem] = []
    paths = document.root.get("paths")
    count = 0
    if isinstance(paths, dict):
        for template, path_item in paths.items():
            if not isinstance(template, str) or not template.startswith("/"):
                continue
            try:
                item = _path_item(context, template, path_item)
            except SchemaError as exc:
                context.issues.append(document.issue(_ref_parts(exc.ref), exc.message))
                continue
            if item.operations:
                items.append(item)
                count += len(item.operations)
    if context.issues:
        raise SpecError(context.issues[:20])
    try:
        compiled = schemas.compile()
    except SchemaError as exc:
        raise SpecError([document.issue(_ref_parts(exc.ref), exc.message)]) from None
    finder = ConstraintFinder(schemas.defs)
    for item in items:
        for operation in item.operations.values():
            _attach_validators(compiled, operation)
            _attach_constraints(finder, operation)
    bases = _base_paths(document, base_path)
    return CompiledSpec(document.path, document.version, bases, items, compiled, count)


def _attach_validators(compiled: Compiled, operation: Operation) -> None:
    for location, entry in operation.entries.items():
        operation.validators[location] = compiled.validator(entry)
    for body in operation.bodies or ():
        if body.entry is not None:
            body.validator = compiled.validator(body.entry)
    for response in operation.responses.values():
        for response_body in response.bodies:
            if response_body.entry is not None:
                response_body.validator = compiled.validator(response_body.entry)


def _attach_constraints(finder: ConstraintFinder, operation: Operation) -> None:
    """Which fields the WAF may leave alone once the request conforms (computed here,
    once, so that the stage only hands over a frozenset per request)."""
    parameters, entries = operation.parameters, operation.entries
    operation.constrained_query = finder.parameters(
        "query", parameters["query"], entries.get("query")
    )
    operation.constrained_headers = finder.parameters(
        "header", parameters["header"], entries.get("header")
    )
    operation.constrained_params = operation.constrained_query | operation.constrained_headers
    for body in operation.bodies or ():
        if body.entry is not None:
            json_fields, form_fields = finder.body(body.entry, body.shape)
            # Kept only for the media types a request matching this entry can have.
            anything = body.media in ("*/*", "application/*")
            if anything or _is_json(body.media):
                body.constrained_json = json_fields
            if anything or body.media == "application/x-www-form-urlencoded":
                body.constrained_form = form_fields
            kinds = finder.content_kinds(body.entry)
            if kinds and (anything or _is_json(body.media)):
                body.content_json = {("json", "$" + suffix): kind for suffix, kind in kinds.items()}
            if kinds and (anything or body.media == "application/x-www-form-urlencoded"):
                body.content_form = {
                    ("form", suffix[1:]): kind
                    for suffix, kind in kinds.items()
                    if suffix.startswith(".") and suffix[1:].isidentifier()
                }


def _ref_parts(ref: str) -> list[str | int]:
    from dijk.openapi.errors import split_pointer

    try:
        return list(split_pointer(ref[1:]))
    except ValueError:
        return []


def _base_paths(document: Document, configured: str | None) -> tuple[str, ...]:
    if configured is not None:
        return (configured.rstrip("/"),)
    root = document.root
    found: list[str] = []
    if document.version == "2.0":
        base = root.get("basePath")
        found.append(base.rstrip("/") if isinstance(base, str) else "")
    else:
        servers = root.get("servers")
        for server in servers if isinstance(servers, list) else []:
            if isinstance(server, dict) and isinstance(server.get("url"), str):
                found.append(_server_path(server))
    if not found:
        found.append("")
    unique = sorted(set(found), key=len, reverse=True)
    return tuple(unique)


def _server_path(server: dict[str, Any]) -> str:
    url = server["url"]
    variables = server.get("variables")
    if isinstance(variables, dict):
        for name, variable in variables.items():
            default = variable.get("default") if isinstance(variable, dict) else None
            url = url.replace("{" + str(name) + "}", str(default if default is not None else ""))
    url = re.sub(r"\{[^}]*\}", "", url)
    path = urlsplit(url).path if "://" in url else url.split("?", 1)[0]
    path = "/" + path.strip("/") if path.strip("/") else ""
    return path


def _path_item(context: _Context, template: str, raw: Any) -> PathItem:
    item = PathItem(template)
    path_item = context.resolve(raw)
    if not isinstance(path_item, dict):
        return item
    found = path_item.get("parameters")
    shared: list[Any] = found if isinstance(found, list) else []
    for method in METHODS:
        operation = path_item.get(method)
        if isinstance(operation, dict):
            where = pointer_of("paths", template, method)
            item.operations[method.upper()] = _operation(
                context, template, method.upper(), operation, shared, where
            )
    item.allow = _allow(item.operations)
    return item


def _operation(
    context: _Context,
    template: str,
    method: str,
    raw: dict[str, Any],
    shared: list[Any],
    where: str,
) -> Operation:
    merged: dict[tuple[str, str], dict[str, Any]] = {}
    for candidate in [*shared, *(raw.get("parameters") or [])]:
        parameter = context.resolve(candidate)
        if isinstance(parameter, dict) and isinstance(parameter.get("name"), str):
            merged[(parameter["name"], str(parameter.get("in")))] = parameter
    version = context.document.version
    parameters: dict[Location, list[Parameter]] = {location: [] for location in LOCATIONS}
    schemas_by_location: dict[Location, dict[str, Any]] = {loc: {} for loc in LOCATIONS}
    required: dict[Location, list[str]] = {location: [] for location in LOCATIONS}
    body_required = False
    bodies: list[Body] | None = None
    form_fields: dict[str, Any] = {}
    form_required: list[str] = []
    swagger_body: Any = None
    for (name, location), parameter in merged.items():
        if version == "2.0" and location == "body":
            swagger_body = parameter.get("schema", {})
            body_required = parameter.get("required") is True
            continue
        if version == "2.0" and location == "formData":
            form_fields[name] = _swagger_schema(parameter)
            if parameter.get("required") is True:
                form_required.append(name)
            continue
        if location not in LOCATIONS:
            continue
        if location == "header" and name.lower() in _IGNORED_HEADERS:
            continue
        compiled, schema = _parameter(context, name, location, parameter)
        parameters[compiled.location].append(compiled)
        schemas_by_location[compiled.location][compiled.key] = context.schemas.value(
            schema, "request"
        )
        if compiled.required:
            required[compiled.location].append(compiled.key)
    entries: dict[Location, str] = {}
    for location in LOCATIONS:
        if parameters[location]:
            location_schema: dict[str, Any] = {
                "type": "object",
                "properties": schemas_by_location[location],
            }
            if required[location]:
                location_schema["required"] = required[location]
            entries[location] = context.schemas.entry_raw(location_schema, where + "/parameters")
    if version == "2.0":
        consumes = raw.get("consumes") or context.root.get("consumes") or ["application/json"]
        if swagger_body is not None:
            bodies = [
                _body(context, str(media), swagger_body, where + "/parameters")
                for media in consumes
                if isinstance(media, str)
            ]
        elif form_fields:
            form_schema: dict[str, Any] = {"type": "object", "properties": form_fields}
            if form_required:
                form_schema["required"] = form_required
            body_required = bool(form_required)
            form_media = [
                str(media)
                for media in consumes
                if str(media).split(";")[0].strip().lower()
                in ("application/x-www-form-urlencoded", "multipart/form-data")
            ] or ["application/x-www-form-urlencoded", "multipart/form-data"]
            bodies = [
                _body(context, media, form_schema, where + "/parameters") for media in form_media
            ]
    else:
        request_body = context.resolve(raw.get("requestBody"))
        if isinstance(request_body, dict):
            body_required = request_body.get("required") is True
            content = request_body.get("content")
            bodies = []
            if isinstance(content, dict):
                for media, media_type in content.items():
                    schema = media_type.get("schema") if isinstance(media_type, dict) else None
                    at = f"{where}/requestBody/content/{escape_token(media)}/schema"
                    bodies.append(_body(context, str(media), schema, at))
    responses = _responses(context, raw, where)
    return Operation(method, template, parameters, entries, body_required, bodies, responses)


def _parameter(
    context: _Context, name: str, location: Location, raw: dict[str, Any]
) -> tuple[Parameter, Any]:
    version = context.document.version
    json_content = False
    if version == "2.0":
        schema: Any = _swagger_schema(raw)
        collection = raw.get("collectionFormat", "csv")
        style, explode = _SWAGGER_COLLECTION.get(str(collection), ("form", False))
        if location in ("path", "header"):
            style = "simple" if style == "form" else style
    else:
        schema = raw.get("schema")
        content = raw.get("content")
        if schema is None and isinstance(content, dict) and content:
            media, media_type = next(iter(content.items()))
            schema = media_type.get("schema") if isinstance(media_type, dict) else None
            json_content = _is_json(str(media))
        style = str(raw.get("style") or _DEFAULT_STYLE[location])
        explode_value = raw.get("explode")
        explode = explode_value if isinstance(explode_value, bool) else style == "form"
    required = raw.get("required") is True or location == "path"
    shape = _shape(context, schema, 0)
    return (
        Parameter(name, location, required, style, explode, shape, json_content),
        schema if schema is not None else {},
    )


def _swagger_schema(raw: dict[str, Any]) -> dict[str, Any]:
    schema = {key: raw[key] for key in _SWAGGER_SCHEMA_FIELDS if key in raw}
    if isinstance(schema.get("items"), dict):
        schema["items"] = _swagger_schema(schema["items"])
    if schema.get("type") == "file":
        schema["type"] = "string"
    schema.pop("default", None)
    return schema


# Media ranges whose bodies may be read as fields (so the fields' types are needed).
_FIELD_MEDIA = frozenset(
    {"application/x-www-form-urlencoded", "multipart/form-data", "multipart/*", "*/*"}
)


def _body(context: _Context, media: str, schema: Any, where: str) -> Body:
    entry = context.schemas.entry(schema, "request", where) if schema is not None else None
    declared = _media(media)
    shape = _shape(context, schema, 0) if declared in _FIELD_MEDIA else ANY
    return Body(declared, entry, shape)


def _responses(context: _Context, operation: dict[str, Any], where: str) -> dict[str, Response]:
    mode = context.response_mode
    if mode == "off":
        return {}
    found: dict[str, Response] = {}
    raw = operation.get("responses")
    if not isinstance(raw, dict):
        return found
    version = context.document.version
    produces = operation.get("produces") or context.root.get("produces") or ["application/json"]
    for status, value in raw.items():
        response = context.resolve(value)
        if not isinstance(response, dict):
            continue
        bodies: list[ResponseBody] = []
        if version == "2.0":
            schema = response.get("schema")
            if schema is not None:
                at = f"{where}/responses/{escape_token(status)}/schema"
                for media in produces:
                    bodies.append(_response_body(context, str(media), schema, at))
        else:
            content = response.get("content")
            if isinstance(content, dict):
                for media, media_type in content.items():
                    schema = media_type.get("schema") if isinstance(media_type, dict) else None
                    at = f"{where}/responses/{escape_token(status)}/content/{escape_token(media)}"
                    bodies.append(_response_body(context, str(media), schema, at + "/schema"))
        found[str(status).upper()] = Response(bodies)
    return found


def _response_body(context: _Context, media: str, schema: Any, where: str) -> ResponseBody:
    direction: Direction = "response"
    entry = context.schemas.entry(schema, direction, where) if schema is not None else None
    stripper = None
    if context.strippers is not None and schema is not None:
        stripper = context.strippers.build(schema)
    return ResponseBody(_media(media), entry, stripper, closed=context.schemas.close_objects)


def _media(media: str) -> str:
    return media.split(";", 1)[0].strip().lower()


def _is_json(media: str) -> bool:
    media = _media(media)
    return media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    )


def _shape(context: _Context, schema: Any, depth: int) -> Shape:
    """What reading a parameter's text needs to know about its schema (see params.py)."""
    if depth > 6 or not isinstance(schema, dict):
        return ANY
    key = (id(schema), depth)
    known = context.shapes.get(key)
    if known is None:
        known = context.shapes[key] = _shape_of(context, schema, depth)
    return known


def _shape_of(context: _Context, schema: dict[str, Any], depth: int) -> Shape:
    seen = 0
    while isinstance(schema.get("$ref"), str) and seen < 16:
        try:
            schema = resolve_pointer(context.root, schema["$ref"])
        except KeyError:
            return ANY
        seen += 1
        if not isinstance(schema, dict):
            return ANY
    types: set[str] = set()
    kind = schema.get("type")
    if isinstance(kind, str):
        types.add("string" if kind == "file" else kind)
    elif isinstance(kind, list):
        types.update(str(item) for item in kind)
    if schema.get("nullable") is True or schema.get("x-nullable") is True:
        types.add("null")
    items = None
    properties: dict[str, Shape] = {}
    for keyword in ("allOf", "anyOf", "oneOf"):
        members = schema.get(keyword)
        if isinstance(members, list):
            for member in members:
                inner = _shape(context, member, depth + 1)
                types.update(inner.types)
                items = items or inner.items
                for name, prop in inner.properties.items():
                    properties.setdefault(name, prop)
    if isinstance(schema.get("items"), dict):
        items = _shape(context, schema["items"], depth + 1)
    raw_properties = schema.get("properties")
    if isinstance(raw_properties, dict):
        for name, prop in raw_properties.items():
            properties[str(name)] = _shape(context, prop, depth + 1)
    if items is not None and not types:
        types.add("array")
    if properties and not types:
        types.add("object")
    return Shape(frozenset(types), items, properties)


def pointer_of(*parts: str | int) -> str:
    return "".join("/" + escape_token(part) for part in parts)
