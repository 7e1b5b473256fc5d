"""The OpenAPI document as the scanner sees it: operations with resolved schemas.

The document is read, checked and compiled by :mod:`dijk.openapi` (the same code the
gateway enforces with), so a document the gateway refuses is refused here with the same
messages. On top of that the scanner needs what requests to *send*: parameters and
request bodies with every ``$ref`` inlined, the effective security requirement, tags,
and the line of each operation (findings point at it in SARIF).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from dijk.openapi import CompiledSpec, SpecError, load_spec
from dijk.openapi.compiler import Operation
from dijk.openapi.document import Document, read_document

__all__ = ["ApiOperation", "ApiSpec", "Param", "is_login", "load_api_spec"]

METHODS = ("get", "put", "post", "delete", "patch", "head", "options")
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
MAX_REF_DEPTH = 12
_ADMIN_WORDS = frozenset({"admin", "admins", "administration", "internal", "manage", "staff"})
_PARAM = re.compile(r"\{([^{}/]+)\}")


@dataclass(frozen=True, slots=True)
class Param:
    name: str
    location: str  # path | query | header | cookie
    required: bool
    schema: dict[str, Any]


@dataclass(slots=True)
class ApiOperation:
    method: str
    template: str
    operation_id: str
    tags: tuple[str, ...]
    params: list[Param]
    body_schema: dict[str, Any] | None
    body_media: str | None
    security: list[dict[str, list[str]]]
    responses: dict[str, dict[str, Any]]
    line: int | None
    pointer: str
    response_schema: dict[str, Any] | None = None

    @property
    def label(self) -> str:
        return f"{self.method} {self.template}"

    @property
    def public(self) -> bool:
        """No credential required: ``security: []`` or an empty alternative."""
        return not self.security or any(not requirement for requirement in self.security)

    @property
    def safe(self) -> bool:
        return self.method in SAFE_METHODS

    @property
    def scopes(self) -> set[str]:
        return {
            scope
            for requirement in self.security
            for scopes in requirement.values()
            for scope in scopes
        }

    @property
    def admin(self) -> bool:
        """Meant for administrators: a tag, a path segment or a scope says so."""
        if any(tag.lower() in _ADMIN_WORDS for tag in self.tags):
            return True
        segments = {segment.lower() for segment in self.template.split("/")}
        if segments & _ADMIN_WORDS:
            return True
        return any("admin" in scope.lower() for scope in self.scopes)

    @property
    def path_params(self) -> list[Param]:
        return [param for param in self.params if param.location == "path"]


@dataclass(slots=True)
class ApiSpec:
    path: str
    document: Document
    compiled: CompiledSpec
    operations: list[ApiOperation] = field(default_factory=list)

    def find(self, method: str, template: str) -> ApiOperation | None:
        for operation in self.operations:
            if operation.method == method and operation.template == template:
                return operation
        return None

    def compiled_operation(self, method: str, template: str) -> Operation | None:
        for item in self.compiled.items:
            if item.template == template:
                return item.operations.get(method)
        return None

    def documented(self, path: str) -> bool:
        """Whether ``path`` (relative to the target) matches a documented template."""
        for operation in self.operations:
            pattern = (
                "^"
                + _PARAM.sub(
                    "[^/]+", re.escape(operation.template).replace("\\{", "{").replace("\\}", "}")
                )
                + "$"
            )
            if re.match(pattern, path):
                return True
        return False


def load_api_spec(path: str) -> ApiSpec:
    """Read, check and compile ``path``; raises :class:`~dijk.openapi.SpecError`."""
    compiled = load_spec(path, close_objects=False, response_mode="strip")
    document = read_document(path)
    spec = ApiSpec(path, document, compiled)
    root = document.root
    global_security = _security(root.get("security"))
    paths = root.get("paths")
    if not isinstance(paths, dict):
        raise SpecError([document.issue(["paths"], "the document declares no paths")])
    for template, item in paths.items():
        if not isinstance(template, str) or not isinstance(item, dict):
            continue
        item = _resolve(root, item, 0)
        shared = item.get("parameters") or []
        for method in METHODS:
            raw = item.get(method)
            if not isinstance(raw, dict):
                continue
            spec.operations.append(
                _operation(document, template, method, raw, shared, global_security)
            )
    if not spec.operations:
        raise SpecError([document.issue(["paths"], "the document declares no operations")])
    return spec


def _operation(
    document: Document,
    template: str,
    method: str,
    raw: dict[str, Any],
    shared: list[Any],
    global_security: list[dict[str, list[str]]],
) -> ApiOperation:
    root = document.root
    params: dict[tuple[str, str], Param] = {}
    for entry in [*shared, *(raw.get("parameters") or [])]:
        resolved = _resolve(root, entry, 0)
        if not isinstance(resolved, dict) or "name" not in resolved:
            continue
        schema = resolved.get("schema") if isinstance(resolved.get("schema"), dict) else {}
        location = str(resolved.get("in", "query"))
        params[(str(resolved["name"]), location)] = Param(
            str(resolved["name"]),
            location,
            bool(resolved.get("required", location == "path")),
            _inline(root, schema),
        )
    body_schema = None
    body_media = None
    request_body = _resolve(root, raw.get("requestBody"), 0)
    if isinstance(request_body, dict) and isinstance(request_body.get("content"), dict):
        for media, content in request_body["content"].items():
            if "json" in str(media) and isinstance(content, dict):
                body_media = str(media)
                body_schema = _inline(root, content.get("schema") or {})
                break
    responses: dict[str, dict[str, Any]] = {}
    response_schema = None
    for status, response in (raw.get("responses") or {}).items():
        resolved = _resolve(root, response, 0)
        responses[str(status)] = resolved if isinstance(resolved, dict) else {}
        if response_schema is None and str(status).startswith("2"):
            for media, content in (responses[str(status)].get("content") or {}).items():
                if "json" in str(media) and isinstance(content, dict):
                    response_schema = _inline(root, content.get("schema") or {})
                    break
    security = _security(raw["security"]) if "security" in raw else global_security
    issue = document.issue(["paths", template, method], "")
    return ApiOperation(
        method=method.upper(),
        template=template,
        operation_id=str(raw.get("operationId") or f"{method} {template}"),
        tags=tuple(str(tag) for tag in raw.get("tags") or ()),
        params=list(params.values()),
        body_schema=body_schema,
        body_media=body_media,
        security=security,
        responses=responses,
        line=issue.line,
        pointer="/paths/" + template.replace("~", "~0").replace("/", "~1") + "/" + method,
        response_schema=response_schema,
    )


def _security(value: Any) -> list[dict[str, list[str]]]:
    if not isinstance(value, list):
        return []
    out: list[dict[str, list[str]]] = []
    for requirement in value:
        if isinstance(requirement, dict):
            out.append({str(k): [str(s) for s in (v or [])] for k, v in requirement.items()})
    return out


def _resolve(root: dict[str, Any], value: Any, depth: int) -> Any:
    """Follow a local ``$ref`` chain (not into the referenced object's children)."""
    while isinstance(value, dict) and isinstance(value.get("$ref"), str) and depth < MAX_REF_DEPTH:
        ref = value["$ref"]
        if not ref.startswith("#/"):
            return {}
        target: Any = root
        for part in ref[2:].split("/"):
            part = part.replace("~1", "/").replace("~0", "~")
            target = target.get(part) if isinstance(target, dict) else None
        value = target if target is not None else {}
        depth += 1
    return value


def _inline(root: dict[str, Any], schema: Any, depth: int = 0) -> dict[str, Any]:
    """``schema`` with local references inlined, cut off at ``MAX_REF_DEPTH`` (cycles)."""
    if depth > MAX_REF_DEPTH:
        return {}
    resolved = _resolve(root, schema, 0)
    if not isinstance(resolved, dict):
        return {}
    out: dict[str, Any] = {}
    for key, value in resolved.items():
        if key in ("properties", "patternProperties") and isinstance(value, dict):
            out[key] = {name: _inline(root, sub, depth + 1) for name, sub in value.items()}
        elif key in ("items", "additionalProperties", "not") and isinstance(value, dict):
            out[key] = _inline(root, value, depth + 1)
        elif key in ("allOf", "anyOf", "oneOf") and isinstance(value, list):
            out[key] = [_inline(root, sub, depth + 1) for sub in value]
        else:
            out[key] = value
    if "allOf" in out:  # merge members' properties: what a generator and a reader need
        merged = dict(out)
        for member in out["allOf"]:
            merged.setdefault("properties", {}).update(member.get("properties", {}))
            merged["required"] = [*merged.get("required", []), *member.get("required", [])]
            if "type" in member:
                merged.setdefault("type", member["type"])
        out = merged
    return out


def is_login(operation: ApiOperation) -> bool:
    """A public POST whose body has a password: failed attempts at it change nothing."""
    properties = (operation.body_schema or {}).get("properties") or {}
    return (
        operation.method == "POST"
        and operation.public
        and any("password" in str(name).lower() for name in properties)
    )


def template_params(template: str) -> list[str]:
    return _PARAM.findall(template)
