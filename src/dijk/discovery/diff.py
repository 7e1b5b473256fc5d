"""The inventory against a declared OpenAPI document: shadow, zombie and drifting endpoints.

- **shadow**: seen in traffic, not declared (no path matches, or the path has no such
  method);
- **zombie**: declared ``deprecated`` yet still called; or declared and not seen for
  ``unused_days`` days (only said when the inventory reaches back that far: a day of
  traffic proves nothing about a monthly job);
- **drift** on declared operations: query parameters, request or response properties,
  status codes and content types that traffic used but the document does not declare.

Pure: the document's root (bundled: ``$ref`` s are local) and the endpoints in, a
:class:`~dijk.reporting.Report` out (text, JSON and SARIF come from ``dijk.reporting``).
Endpoints that matched no gateway route (answered 404 by the gateway) are not shadow
APIs: nothing served them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import urlsplit

from dijk.discovery import shapes
from dijk.discovery.inventory import Endpoint
from dijk.discovery.openapi import iso_time
from dijk.discovery.paths import PARAM, parameter_names, template_segments
from dijk.reporting import Finding, Location, Report, Rule, Severity

__all__ = ["RULES", "diff_inventory"]

_OPERATIONS: Final = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
_PLACEHOLDER: Final = "\x00"
_TEMPLATE_PARAM: Final = re.compile(r"\{[^{}/]*\}")
_DAY_US: Final = 86_400 * 1_000_000
_MAX_FIELDS: Final = 200

SHADOW: Final = Rule(
    "discovery.shadow_endpoint",
    "Shadow endpoint",
    Severity.medium,
    "API9:2023",
    "Traffic reached an endpoint the API's document does not declare: nobody reviewed, "
    "documented or tested it, and contract enforcement cannot protect it.",
    "Declare the endpoint in the document (and enforce it), or retire it upstream and "
    "block it at the gateway.",
)
ZOMBIE_DEPRECATED: Final = Rule(
    "discovery.zombie_deprecated",
    "Deprecated endpoint still called",
    Severity.medium,
    "API9:2023",
    "The document marks the operation deprecated, yet clients still call it.",
    "Find the callers (the audit log names consumers), move them, then remove the endpoint.",
)
ZOMBIE_UNUSED: Final = Rule(
    "discovery.zombie_unused",
    "Declared endpoint not called",
    Severity.low,
    "API9:2023",
    "The document declares an operation no traffic used for the whole period observed: "
    "an attack surface that serves nobody.",
    "Remove the operation from the upstream and the document, or confirm who still needs it.",
)
DRIFT_PARAMETER: Final = Rule(
    "discovery.undeclared_parameter",
    "Undeclared query parameter",
    Severity.low,
    "API8:2023",
    "Clients send a query parameter the document does not declare.",
    "Declare the parameter, or refuse it (openapi mode enforce).",
)
DRIFT_FIELD: Final = Rule(
    "discovery.undeclared_field",
    "Undeclared body field",
    Severity.medium,
    "API3:2023",
    "A request or response body carries a property the document does not declare: mass "
    "assignment on the way in, excessive data exposure on the way out.",
    "Declare the property, or strip it (openapi response: strip) and refuse it in requests.",
)
DRIFT_STATUS: Final = Rule(
    "discovery.undeclared_status",
    "Undeclared status code",
    Severity.low,
    "API8:2023",
    "The upstream answers with a status code the operation does not declare.",
    "Declare the status (and its body), or fix the upstream.",
)
DRIFT_CONTENT_TYPE: Final = Rule(
    "discovery.undeclared_content_type",
    "Undeclared content type",
    Severity.low,
    "API8:2023",
    "A request or response used a media type the document does not declare.",
    "Declare the media type, or refuse it (openapi mode enforce answers 415).",
)
RULES: Final = (
    SHADOW,
    ZOMBIE_DEPRECATED,
    ZOMBIE_UNUSED,
    DRIFT_PARAMETER,
    DRIFT_FIELD,
    DRIFT_STATUS,
    DRIFT_CONTENT_TYPE,
)


@dataclass(slots=True)
class _Declared:
    template: str
    method: str
    operation: dict[str, Any]
    path_item: dict[str, Any]
    patterns: list[re.Pattern[str] | str]
    seen: list[Endpoint] = field(default_factory=list)

    @property
    def pointer(self) -> str:
        escaped = self.template.replace("~", "~0").replace("/", "~1")
        return f"/paths/{escaped}/{self.method.lower()}"


class _Resolver:
    def __init__(self, root: Mapping[str, Any]) -> None:
        self._root = root

    def __call__(self, value: Any, depth: int = 0) -> Any:
        while isinstance(value, Mapping) and isinstance(value.get("$ref"), str) and depth < 32:
            ref: str = value["$ref"]
            if not ref.startswith("#/"):
                return {}
            target: Any = self._root
            for part in ref[2:].split("/"):
                part = part.replace("~1", "/").replace("~0", "~")
                if isinstance(target, Mapping) and part in target:
                    target = target[part]
                elif isinstance(target, list) and part.isdigit() and int(part) < len(target):
                    target = target[int(part)]
                else:
                    return {}
            value = target
            depth += 1
        return value


def _base_paths(root: Mapping[str, Any], configured: str | None) -> list[str]:
    bases = {""}
    if configured:
        bases.add(configured.rstrip("/"))
    for server in root.get("servers") or ():
        if isinstance(server, Mapping) and isinstance(server.get("url"), str):
            path = urlsplit(server["url"]).path.rstrip("/")
            if path and "{" not in path:
                bases.add(path)
    return sorted(bases, key=len, reverse=True)


def _patterns(template: str) -> list[re.Pattern[str] | str]:
    result: list[re.Pattern[str] | str] = []
    for segment in template_segments(template):
        if _TEMPLATE_PARAM.search(segment):
            pieces = _TEMPLATE_PARAM.split(segment)
            result.append(re.compile("[^/]+".join(re.escape(piece) for piece in pieces)))
        else:
            result.append(segment)
    return result


def _declared(root: Mapping[str, Any], resolve: _Resolver) -> list[_Declared]:
    found: list[_Declared] = []
    for template, raw_item in (root.get("paths") or {}).items():
        item = resolve(raw_item)
        if not isinstance(item, Mapping) or not isinstance(template, str):
            continue
        for method in _OPERATIONS:
            operation = resolve(item.get(method))
            if isinstance(operation, Mapping):
                found.append(
                    _Declared(
                        template, method.upper(), dict(operation), dict(item), _patterns(template)
                    )
                )
    return found


def _match_score(patterns: list[re.Pattern[str] | str], segments: list[str]) -> int | None:
    """Literal segments matched (higher is more specific); None if the path differs."""
    if len(patterns) != len(segments):
        return None
    literal = 0
    for pattern, segment in zip(patterns, segments, strict=True):
        if isinstance(pattern, str):
            if pattern != segment:
                return None
            literal += 1
        elif not pattern.fullmatch(segment):
            return None
    return literal


def _observed_segments(template: str, base: str) -> list[str] | None:
    if base:
        if template != base and not template.startswith(base + "/"):
            return None
        template = template[len(base) :] or "/"
    return [segment.replace(PARAM, _PLACEHOLDER) for segment in template_segments(template)]


def _find(
    declared: list[_Declared], bases: list[str], endpoint: Endpoint
) -> tuple[_Declared | None, bool]:
    """The declared operation of an endpoint, and whether its path (any method) is declared."""
    best: tuple[int, _Declared] | None = None
    path_known = False
    for base in bases:
        segments = _observed_segments(endpoint["template"], base)
        if segments is None:
            continue
        for candidate in declared:
            score = _match_score(candidate.patterns, segments)
            if score is None:
                continue
            path_known = True
            if candidate.method == endpoint["method"] and (best is None or score > best[0]):
                best = (score, candidate)
    return (best[1] if best else None), path_known


def diff_inventory(
    root: Mapping[str, Any],
    endpoints: Iterable[Endpoint],
    *,
    spec_file: str,
    now_us: int,
    unused_days: int = 30,
    base_path: str | None = None,
    version: str = "",
) -> Report:
    """Findings of the inventory against the document (see the module docstring)."""
    resolve = _Resolver(root)
    declared = _declared(root, resolve)
    bases = _base_paths(root, base_path)
    findings: list[Finding] = []
    oldest: int | None = None
    for endpoint in endpoints:
        if endpoint.get("unrouted", 0) >= endpoint.get("count", 0):
            continue
        oldest = endpoint["first_us"] if oldest is None else min(oldest, endpoint["first_us"])
        operation, path_known = _find(declared, bases, endpoint)
        named, _ = parameter_names(endpoint["template"])
        if operation is None:
            findings.append(_shadow(endpoint, named, path_known, spec_file))
            continue
        operation.seen.append(endpoint)
        findings.extend(_drift(endpoint, named, operation, resolve, spec_file))
    cutoff = now_us - unused_days * _DAY_US
    for operation in declared:
        findings.extend(_zombie(operation, spec_file, oldest, cutoff, unused_days))
    return Report(
        tool="dijk discover diff",
        version=version,
        rules=list(RULES),
        findings=findings,
        targets=[spec_file],
    )


def _finding(
    rule: Rule,
    message: str,
    spec_file: str,
    method: str,
    template: str,
    pointer: str | None,
    evidence: dict[str, Any],
) -> Finding:
    return Finding(
        rule_id=rule.id,
        title=rule.name,
        severity=rule.severity,
        owasp=rule.owasp,
        message=message,
        fix=rule.fix,
        location=Location(file=spec_file, pointer=pointer, method=method, url=template),
        evidence=evidence,
    )


def _seen(endpoint: Endpoint) -> dict[str, Any]:
    evidence: dict[str, Any] = {
        "count": endpoint["count"],
        "first_seen": iso_time(endpoint["first_us"]),
        "last_seen": iso_time(endpoint["last_us"]),
    }
    if endpoint.get("route"):
        evidence["route"] = endpoint["route"]
    if endpoint.get("pii"):
        evidence["pii_categories"] = sorted(endpoint["pii"])
    if endpoint.get("status"):
        evidence["status"] = dict(sorted(endpoint["status"].items()))
    return evidence


def _shadow(endpoint: Endpoint, named: str, path_known: bool, spec_file: str) -> Finding:
    method = endpoint["method"]
    why = "the path is declared, not this method" if path_known else "no declared path matches"
    count = endpoint["count"]
    times = "once" if count == 1 else f"{count} times"
    message = f"{method} {named} was called {times} but is not declared ({why})"
    if endpoint.get("pii"):
        message += f"; it carried personal data: {', '.join(sorted(endpoint['pii']))}"
    return _finding(SHADOW, message, spec_file, method, named, "/paths", _seen(endpoint))


def _zombie(
    operation: _Declared, spec_file: str, oldest: int | None, cutoff: int, days: int
) -> Iterator[Finding]:
    seen = operation.seen
    label = f"{operation.method} {operation.template}"
    if operation.operation.get("deprecated") is True and seen:
        count = sum(endpoint["count"] for endpoint in seen)
        last = max(endpoint["last_us"] for endpoint in seen)
        yield _finding(
            ZOMBIE_DEPRECATED,
            f"{label} is deprecated but was called {count} times (last {iso_time(last)})",
            spec_file,
            operation.method,
            operation.template,
            operation.pointer,
            {"count": count, "last_seen": iso_time(last)},
        )
    last_seen = max((endpoint["last_us"] for endpoint in seen), default=None)
    covered = oldest is not None and oldest <= cutoff
    if covered and (last_seen is None or last_seen < cutoff):
        when = "never" if last_seen is None else f"last {iso_time(last_seen)}"
        yield _finding(
            ZOMBIE_UNUSED,
            f"{label} was not called in the last {days} days ({when})",
            spec_file,
            operation.method,
            operation.template,
            operation.pointer,
            {"last_seen": None if last_seen is None else iso_time(last_seen)},
        )


def _drift(
    endpoint: Endpoint, named: str, operation: _Declared, resolve: _Resolver, spec_file: str
) -> Iterator[Finding]:
    method = endpoint["method"]
    where = f"{method} {operation.template}"

    def make(rule: Rule, message: str, pointer: str, evidence: dict[str, Any]) -> Finding:
        return _finding(rule, message, spec_file, method, operation.template, pointer, evidence)

    declared_query = {
        parameter.get("name")
        for raw in [
            *operation.path_item.get("parameters", []),
            *operation.operation.get("parameters", []),
        ]
        if isinstance(parameter := resolve(raw), Mapping) and parameter.get("in") == "query"
    }
    for name in sorted(endpoint.get("query", {})):
        if name not in declared_query:
            yield make(
                DRIFT_PARAMETER,
                f"{where}: query parameter {name!r} is used but not declared",
                operation.pointer + "/parameters",
                {"parameter": name},
            )
    responses = resolve(operation.operation.get("responses")) or {}
    for status in sorted(endpoint.get("status", {})):
        if not _status_declared(responses, status):
            yield make(
                DRIFT_STATUS,
                f"{where}: answered {status} ({endpoint['status'][status]} times), not declared",
                operation.pointer + "/responses",
                {"status": status, "count": endpoint["status"][status]},
            )
    body = resolve(operation.operation.get("requestBody")) or {}
    content = resolve(body.get("content")) or {} if isinstance(body, Mapping) else {}
    for media in sorted(endpoint.get("request_types", {})):
        if not _media_declared(content, media):
            yield make(
                DRIFT_CONTENT_TYPE,
                f"{where}: request body sent as {media}, not declared",
                operation.pointer + "/requestBody",
                {"direction": "request", "media_type": media},
            )
    request_shape = endpoint.get("request")
    if request_shape is not None:
        schema = _json_schema(content, resolve)
        if schema is not None:
            for path in _undeclared(request_shape, schema, resolve, "$"):
                yield make(
                    DRIFT_FIELD,
                    f"{where}: request property {path} is sent but not declared",
                    operation.pointer + "/requestBody",
                    {"direction": "request", "field": path},
                )
    for status, types in sorted(endpoint.get("response_types", {}).items()):
        answer = _response_for(responses, status, resolve)
        if answer is None:
            continue
        answer_content = resolve(answer.get("content")) or {}
        for media in sorted(types):
            if not _media_declared(answer_content, media):
                yield make(
                    DRIFT_CONTENT_TYPE,
                    f"{where}: {status} answered as {media}, not declared",
                    f"{operation.pointer}/responses/{status}",
                    {"direction": "response", "status": status, "media_type": media},
                )
    for status, shape in sorted(endpoint.get("responses", {}).items()):
        answer = _response_for(responses, status, resolve)
        if answer is None or shape is None:
            continue
        schema = _json_schema(resolve(answer.get("content")) or {}, resolve)
        if schema is None:
            continue
        for path in _undeclared(shape, schema, resolve, "$"):
            yield make(
                DRIFT_FIELD,
                f"{where}: {status} response property {path} is returned but not declared",
                f"{operation.pointer}/responses/{status}",
                {"direction": "response", "status": status, "field": path},
            )


def _status_declared(responses: Mapping[str, Any], status: str) -> bool:
    if status in responses or "default" in responses:
        return True
    return f"{status[:1]}XX" in responses or f"{status[:1]}xx" in responses


def _response_for(
    responses: Mapping[str, Any], status: str, resolve: _Resolver
) -> Mapping[str, Any] | None:
    for key in (status, f"{status[:1]}XX", f"{status[:1]}xx", "default"):
        if key in responses:
            answer = resolve(responses[key])
            return answer if isinstance(answer, Mapping) else None
    return None


def _media_declared(content: Mapping[str, Any], media: str) -> bool:
    if not content:
        return False
    major = media.split("/", 1)[0]
    for declared in content:
        name = str(declared).split(";", 1)[0].strip().lower()
        if name in (media, "*/*", f"{major}/*"):
            return True
    return False


def _json_schema(content: Mapping[str, Any], resolve: _Resolver) -> Any:
    for media, entry in content.items():
        name = str(media).split(";", 1)[0].strip().lower()
        if name == "application/json" or name.endswith("+json") or name in ("*/*",):
            entry = resolve(entry)
            if isinstance(entry, Mapping) and "schema" in entry:
                return resolve(entry["schema"])
    return None


def _declared_properties(
    schema: Any, resolve: _Resolver, depth: int = 0
) -> tuple[dict[str, Any], bool, Any]:
    """(properties, open, items) of a schema, through $ref and allOf/anyOf/oneOf.

    ``open`` means the schema says nothing about properties (no ``properties``, or
    ``additionalProperties`` a schema/true with nothing listed): nothing there can drift.
    """
    schema = resolve(schema)
    if not isinstance(schema, Mapping) or depth > 16:
        return {}, True, None
    properties: dict[str, Any] = dict(schema.get("properties") or {})
    items = schema.get("items")
    listed = "properties" in schema or schema.get("additionalProperties") is False
    for key in ("allOf", "anyOf", "oneOf"):
        for part in schema.get(key) or ():
            more, part_open, part_items = _declared_properties(part, resolve, depth + 1)
            properties.update(more)
            listed = listed or (bool(more) or not part_open)
            items = items if items is not None else part_items
    pattern = bool(schema.get("patternProperties"))
    extra = schema.get("additionalProperties")
    opened = (not listed) or pattern or (isinstance(extra, Mapping) and not properties)
    return properties, opened, items


def _undeclared(shape: shapes.Shape, schema: Any, resolve: _Resolver, path: str) -> list[str]:
    found: list[str] = []
    _walk(shape, schema, resolve, path, found, 0)
    return found[:_MAX_FIELDS]


def _walk(
    shape: shapes.Shape, schema: Any, resolve: _Resolver, path: str, found: list[str], depth: int
) -> None:
    if depth > 16 or len(found) >= _MAX_FIELDS:
        return
    properties, opened, items = _declared_properties(schema, resolve)
    for name, child in sorted((shape.get("p") or {}).items()):
        where = f"{path}.{name}"
        if name in properties:
            _walk(child, properties[name], resolve, where, found, depth + 1)
        elif not opened:
            found.append(where)
    if shape.get("i") is not None and items is not None:
        _walk(shape["i"], items, resolve, path + "[*]", found, depth + 1)
