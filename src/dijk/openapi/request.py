"""Checking one request (and its response) against a compiled document.

Pure functions: they take the request's parts and return ``None`` or a
:class:`Violation`; the stage (:mod:`dijk.stages.openapi`) turns violations into
decisions. Each check only looks things up and runs compiled validators: the fast path
is one ``is_valid`` call per parameter location and one per body; errors are only
collected and described when that says no.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from email.message import Message
from email.parser import BytesParser
from email.policy import HTTP
from typing import Any, TypeVar
from urllib.parse import parse_qsl

import orjson

from dijk.openapi.compiler import Body, CompiledSpec, Operation, Response, ResponseBody
from dijk.openapi.messages import (
    INVALID,
    READ_ONLY,
    UNDECLARED,
    WRITE_ONLY,
    Problem,
    describe,
    safe_name,
)
from dijk.openapi.params import (
    ANY,
    Location,
    ParameterError,
    Shape,
    coerce,
    read_cookies,
    read_location_value,
    read_query,
)

__all__ = [
    "Violation",
    "check_body",
    "check_parameters",
    "check_response_body",
    "check_response_head",
    "find_operation",
    "select_body",
]

UNKNOWN_PATH = "openapi.unknown_path"
METHOD_NOT_ALLOWED = "openapi.method_not_allowed"
UNSUPPORTED_MEDIA_TYPE = "openapi.unsupported_media_type"
INVALID_REQUEST = "openapi.invalid_request"
UNDECLARED_PROPERTY = "openapi.undeclared_property"
READ_ONLY_PROPERTY = "openapi.read_only_property"
UNDECLARED_PARAMETER = "openapi.undeclared_parameter"
INVALID_RESPONSE = "openapi.invalid_response"

MAX_QUERY_FIELDS = 1000
MAX_FORM_FIELDS = 1000
MAX_PARTS = 256
MAX_SHOWN = 3

_LOCATION_NAMES: dict[Location, str] = {
    "path": "path parameter",
    "query": "query parameter",
    "header": "header",
    "cookie": "cookie",
}
_KEY = re.compile(rb'"\s*:')
_MEDIA = re.compile(r"[a-z0-9!#$&^_.+-]{1,64}/[a-z0-9!#$&^_.+*-]{1,64}")


@dataclass(frozen=True, slots=True)
class Violation:
    status: int
    reason: str
    detail: str
    allow: str = ""


def find_operation(
    spec: CompiledSpec, method: str, path: str
) -> tuple[Operation, dict[str, str]] | Violation:
    found = spec.match(path)
    if found is None:
        return Violation(404, UNKNOWN_PATH, "The path is not declared in the API contract.")
    item, params = found
    operation = item.operations.get(method)
    if operation is None and method == "HEAD":
        operation = item.operations.get("GET")
    if operation is None:
        return Violation(
            405,
            "openapi.method_not_allowed",
            f"The method {method} is not declared for this path in the API contract.",
            item.allow,
        )
    return operation, params


# --------------------------------------------------------------------------- parameters


def check_parameters(
    operation: Operation,
    path_params: dict[str, str],
    query: str,
    headers: list[tuple[str, str]],
    *,
    deny_undeclared_query: bool,
) -> Violation | None:
    try:
        return _check_parameters(operation, path_params, query, headers, deny_undeclared_query)
    except ParameterError as error:
        where = f"{_LOCATION_NAMES[error.location]} '{safe_name(error.parameter)}'"
        return Violation(400, INVALID_REQUEST, f"{where}: {error.message}")


def _check_parameters(
    operation: Operation,
    path_params: dict[str, str],
    query: str,
    headers: list[tuple[str, str]],
    deny_undeclared_query: bool,
) -> Violation | None:
    parameters = operation.parameters
    validators = operation.validators
    declared = parameters["path"]
    if declared:
        values = {
            parameter.key: read_location_value(parameter, path_params[parameter.name])
            for parameter in declared
            if parameter.name in path_params
        }
        violation = _validate(validators["path"], values, "path")
        if violation is not None:
            return violation
    if query or parameters["query"]:
        try:
            pairs = parse_qsl(query, keep_blank_values=True, max_num_fields=MAX_QUERY_FIELDS)
        except ValueError:
            return Violation(400, INVALID_REQUEST, "The query has too many parameters.")
        values, used = read_query(parameters["query"], pairs)
        if deny_undeclared_query:
            for name, _ in pairs:
                if name not in used:
                    return Violation(
                        400,
                        UNDECLARED_PARAMETER,
                        f"query parameter '{safe_name(name)}': is not declared in the API "
                        "contract (undeclared)",
                    )
        if parameters["query"]:
            violation = _validate(validators["query"], values, "query")
            if violation is not None:
                return violation
    if parameters["header"]:
        values = {}
        for parameter in parameters["header"]:
            found = [value for name, value in headers if name == parameter.key]
            if found:
                values[parameter.key] = read_location_value(parameter, ", ".join(found))
        violation = _validate(validators["header"], values, "header")
        if violation is not None:
            return violation
    if parameters["cookie"]:
        cookies = read_cookies([value for name, value in headers if name == "cookie"])
        values = {
            parameter.key: read_location_value(parameter, cookies[parameter.name])
            for parameter in parameters["cookie"]
            if parameter.name in cookies
        }
        violation = _validate(validators["cookie"], values, "cookie")
        if violation is not None:
            return violation
    return None


def _validate(validator: Any, value: Any, location: Location | None) -> Violation | None:
    if validator.is_valid(value):
        return None
    problems = describe(validator.iter_errors(value))
    where = "request body" if location is None else _LOCATION_NAMES[location]
    return _violation(problems, where)


def _violation(problems: list[Problem], where: str) -> Violation:
    categories = {problem.category for problem in problems}
    if categories == {UNDECLARED}:
        reason = UNDECLARED_PROPERTY
    elif categories and categories <= {UNDECLARED, READ_ONLY}:
        reason = READ_ONLY_PROPERTY
    else:
        reason = INVALID_REQUEST
    return Violation(400, reason, _detail(problems, where))


def _detail(problems: list[Problem], where: str) -> str:
    shown = "; ".join(problem.text(where) for problem in problems[:MAX_SHOWN])
    if len(problems) > MAX_SHOWN:
        shown += f"; and {len(problems) - MAX_SHOWN} more"
    return shown or f"{where}: does not match the API contract"


# --------------------------------------------------------------------------- bodies


def media_type(content_type: str) -> str:
    return content_type.split(";", 1)[0].strip().lower()


_T = TypeVar("_T", Body, ResponseBody)


def _choose(media: str, candidates: list[_T]) -> _T | None:
    """The declared entry for ``media``: exact, then ``type/*``, then ``*/*``."""
    exact = wildcard = anything = None
    major = media.split("/", 1)[0] + "/*"
    for candidate in candidates:
        declared = candidate.media
        if declared == media:
            exact = candidate
            break
        if declared == major and wildcard is None:
            wildcard = candidate
        elif declared == "*/*" and anything is None:
            anything = candidate
    return exact or wildcard or anything


def select_body(operation: Operation, content_type: str, has_body: bool) -> Body | Violation | None:
    """The declared body for this request's content type, ``None`` if there is nothing to check."""
    bodies = operation.bodies
    if not has_body:
        if operation.body_required:
            return Violation(400, INVALID_REQUEST, "request body: is required (requestBody)")
        return None
    if bodies is None:
        return Violation(
            415, UNSUPPORTED_MEDIA_TYPE, "This operation takes no request body in the API contract."
        )
    media = media_type(content_type)
    if not media:
        return Violation(415, UNSUPPORTED_MEDIA_TYPE, "The request body has no Content-Type.")
    chosen = _choose(media, bodies)
    if chosen is None:
        declared = ", ".join(body.media for body in bodies[:5]) or "none"
        return Violation(
            415,
            UNSUPPORTED_MEDIA_TYPE,
            f"The content type is not accepted here; the API contract accepts: {declared}.",
        )
    return chosen


def is_json(media: str) -> bool:
    return media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    )


def parse_body(
    body: Body, content_type: str, raw: bytes, loaded: tuple[Any, bool] | None = None
) -> Any | Violation:
    """The body as a value its schema can check, or a violation if it cannot be read.

    ``loaded`` is ``raw`` already parsed by orjson (value, whether it parsed), when the
    caller has it: a JSON body is then not parsed again."""
    media = media_type(content_type)
    if is_json(media):
        return parse_json(raw, "request body", loaded)
    if media == "application/x-www-form-urlencoded":
        return _form(body.shape, raw)
    if media == "multipart/form-data":
        return _multipart(body.shape, content_type, raw)
    return _UNCHECKED


_UNCHECKED = object()


def check_body(
    body: Body, content_type: str, raw: bytes, loaded: tuple[Any, bool] | None = None
) -> Violation | None:
    value = parse_body(body, content_type, raw, loaded)
    if isinstance(value, Violation):
        return value
    if value is _UNCHECKED or body.validator is None:
        return None
    return _validate(body.validator, value, None)


def parse_json(raw: bytes, where: str, loaded: tuple[Any, bool] | None = None) -> Any | Violation:
    if loaded is None:
        try:
            loaded = orjson.loads(raw), True
        except orjson.JSONDecodeError:
            loaded = None, False
    value, parsed = loaded
    if not parsed:
        return Violation(400, INVALID_REQUEST, f"{where}: is not valid JSON")
    if has_duplicate_keys(raw, value):
        return Violation(
            400,
            INVALID_REQUEST,
            f"{where}: repeats a property name in one object (parsers disagree on which wins)",
        )
    return value


def has_duplicate_keys(raw: bytes, value: Any) -> bool:
    """Whether some JSON object in ``raw`` names a property twice.

    orjson keeps the last value, other parsers the first: the gateway would check one value
    and the upstream act on another. Counting ``"`` + ``:`` pairs in the text gives an upper
    bound on the keys written; if it equals the keys parsed there is no duplicate (the
    usual case, a few microseconds). Otherwise the text is parsed again, exactly.
    """
    if b":" not in raw:
        return False
    # Compact JSON (no blank between a key and its colon) is counted in C; otherwise the
    # regular expression counts every quote-blanks-colon.
    compact = not (b'" ' in raw or b'"\n' in raw or b'"\r' in raw or b'"\t' in raw)
    written = raw.count(b'":') if compact else len(_KEY.findall(raw))
    if written == _count_keys(value):
        return False

    def pairs_hook(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        names = [name for name, _ in pairs]
        if len(set(names)) != len(names):
            raise _Duplicate
        return dict(pairs)

    try:
        json.loads(raw, object_pairs_hook=pairs_hook)
    except _Duplicate:
        return True
    except ValueError:
        return False
    return False


class _Duplicate(Exception):
    pass


def _count_keys(value: Any) -> int:
    if type(value) is not dict and type(value) is not list:
        return 0
    count = 0
    stack = [value]
    pop = stack.pop
    push = stack.append
    while stack:
        item = pop()
        if type(item) is dict:
            count += len(item)
            for child in item.values():
                kind = type(child)
                if kind is dict or kind is list:
                    push(child)
        else:
            for child in item:
                kind = type(child)
                if kind is dict or kind is list:
                    push(child)
    return count


def _fields(shape: Shape, pairs: list[tuple[str, str]]) -> dict[str, Any] | Violation:
    grouped: dict[str, list[str]] = {}
    for name, value in pairs:
        grouped.setdefault(name, []).append(value)
    fields: dict[str, Any] = {}
    for name, values in grouped.items():
        prop = shape.properties.get(name, ANY)
        if prop.is_array:
            item = prop.items or ANY
            fields[name] = [coerce(value, item) for value in values]
        elif len(values) > 1:
            return Violation(
                400, INVALID_REQUEST, f"request body /{safe_name(name)}: is given more than once"
            )
        else:
            fields[name] = coerce(values[0], prop)
    return fields


def _form(shape: Shape, raw: bytes) -> dict[str, Any] | Violation:
    try:
        text = raw.decode("utf-8")
        pairs = parse_qsl(
            text, keep_blank_values=True, max_num_fields=MAX_FORM_FIELDS, errors="strict"
        )
    except UnicodeDecodeError:
        return Violation(400, INVALID_REQUEST, "request body: is not valid UTF-8 form data")
    except ValueError:
        return Violation(400, INVALID_REQUEST, "request body: has too many form fields")
    return _fields(shape, pairs)


def _multipart(shape: Shape, content_type: str, raw: bytes) -> dict[str, Any] | Violation:
    head = b"Content-Type: " + content_type.encode("latin-1", "replace") + b"\r\n\r\n"
    message = BytesParser(policy=HTTP).parsebytes(head + raw)
    if not message.is_multipart() or message.defects:
        return Violation(400, INVALID_REQUEST, "request body: is not valid multipart/form-data")
    parts = message.get_payload()
    if not isinstance(parts, list) or len(parts) > MAX_PARTS:
        return Violation(400, INVALID_REQUEST, "request body: has too many parts")
    pairs: list[tuple[str, str]] = []
    json_fields: dict[str, Any] = {}
    for part in parts:
        if not isinstance(part, Message):
            return Violation(400, INVALID_REQUEST, "request body: is not valid multipart/form-data")
        name = part.get_param("name", header="content-disposition")
        if not isinstance(name, str):
            return Violation(400, INVALID_REQUEST, "request body: a part has no field name")
        payload = part.get_payload(decode=True)
        data = payload if isinstance(payload, bytes) else b""
        if part.get_filename() is not None:
            pairs.append((name, data.decode("latin-1")))
            continue
        if is_json(part.get_content_type()):
            value = parse_json(data, f"request body /{safe_name(name)}")
            if isinstance(value, Violation):
                return value
            json_fields[name] = value
            continue
        pairs.append((name, data.decode("utf-8", "replace")))
    fields = _fields(shape, pairs)
    if isinstance(fields, dict):
        fields.update(json_fields)
    return fields


# --------------------------------------------------------------------------- responses


def response_for(operation: Operation, status: int) -> Response | None:
    responses = operation.responses
    return (
        responses.get(str(status))
        or responses.get(f"{status // 100}XX")
        or responses.get("DEFAULT")
    )


def check_response_head(
    operation: Operation, status: int, content_type: str, has_body: bool
) -> ResponseBody | Violation | None:
    response = response_for(operation, status)
    if response is None:
        return Violation(
            502,
            INVALID_RESPONSE,
            f"The upstream answered {status}, a status the API contract does not declare "
            f"for {operation.label}.",
        )
    if not has_body:
        return None
    if not response.bodies:
        return Violation(
            502,
            INVALID_RESPONSE,
            f"The upstream sent a body with {status}, where the API contract declares none.",
        )
    media = media_type(content_type)
    chosen = _choose(media, response.bodies) if media else None
    if chosen is None:
        shown = media if _MEDIA.fullmatch(media) else "(missing or malformed)"
        return Violation(
            502,
            INVALID_RESPONSE,
            f"The upstream answered with content type {shown}, which the API contract does "
            f"not declare for {status}.",
        )
    return chosen


@dataclass(slots=True)
class ResponseCheck:
    violation: Violation | None = None
    body: bytes | None = None
    removed: tuple[str, ...] = ()


def check_response_body(
    response: ResponseBody, content_type: str, raw: bytes, *, strip: bool
) -> ResponseCheck:
    """Validate (and with ``strip`` first rewrite) a JSON response body."""
    if not is_json(media_type(content_type)):
        return ResponseCheck()
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return ResponseCheck(
            Violation(502, INVALID_RESPONSE, "The upstream response body is not valid JSON.")
        )
    result = ResponseCheck()
    validator = response.validator
    if strip and response.closed and validator is not None and validator.is_valid(value):
        return result  # nothing undeclared, nothing write-only: nothing to strip
    if strip and response.stripper is not None:
        removed: list[str] = []
        value = response.stripper.strip(value, removed)
        if removed:
            result.body = orjson.dumps(value)
            result.removed = tuple(removed)
    if validator is not None and not validator.is_valid(value):
        problems = describe(validator.iter_errors(value))
        result.violation = Violation(
            502,
            INVALID_RESPONSE,
            "The upstream response does not match the API contract: "
            + _detail(problems, "response body"),
        )
    return result


__all__ += ["INVALID", "WRITE_ONLY", "ResponseCheck", "is_json", "media_type", "parse_body"]
