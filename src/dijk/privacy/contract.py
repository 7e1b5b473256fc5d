"""Which response fields an OpenAPI document declares, in the data map's path syntax.

The data-minimisation check of ``dijk privacy report`` compares the fields where personal
data was actually returned (``$.accounts[*].email``) with the fields the contract's
response schemas declare. A field is *declared* when the schemas name it (``properties``
through ``$ref``, ``allOf``/``anyOf``/``oneOf``, ``items``), or when it lies under a
free-form object (no ``properties``, or ``additionalProperties`` true or a schema): the
contract then allows anything there. Listing properties without forbidding others does
*not* declare the others: personal data in them is what the check is for.

Documents are read with :mod:`dijk.openapi.document` when it is installed (bundling
``$ref``s to other files); otherwise as one YAML or JSON file with local ``$ref``s only.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import yaml

from dijk.detect.pii_paths import format_key

__all__ = ["Contract", "DeclaredFields", "load_contract"]

_METHODS: Final = frozenset({"get", "put", "post", "delete", "options", "head", "patch", "trace"})
_PARAM: Final = re.compile(r"^\{[^/{}]+\}$")
_MAX_DEPTH: Final = 64


@dataclass(slots=True)
class DeclaredFields:
    """Declared field paths and the paths under which anything is allowed."""

    paths: set[str] = field(default_factory=set)
    open_paths: set[str] = field(default_factory=set)

    def declares(self, path: str) -> bool:
        if path in self.paths or path in self.open_paths:
            return True
        for prefix in self.open_paths:
            if path.startswith(prefix) and path[len(prefix) : len(prefix) + 1] in (".", "["):
                return True
        return False


@dataclass(slots=True)
class Contract:
    """One OpenAPI document: its paths, and response fields per operation (cached)."""

    location: str
    root: dict[str, Any]
    _cache: dict[tuple[str, str], DeclaredFields | None] = field(default_factory=dict)

    def operation_path(self, method: str, endpoint: str) -> str | None:
        """The document's path template for ``endpoint`` if it has that operation."""
        paths = self.root.get("paths")
        if not isinstance(paths, dict):
            return None
        wanted = endpoint.split("/")
        for template, item in paths.items():
            if not isinstance(item, dict) or method.lower() not in item:
                continue
            if template == endpoint or _same_shape(str(template).split("/"), wanted):
                return str(template)
        return None

    def response_fields(self, method: str, endpoint: str) -> DeclaredFields | None:
        """Fields the operation's JSON responses declare; None if there is no operation."""
        key = (method.upper(), endpoint)
        if key not in self._cache:
            self._cache[key] = self._fields(method, endpoint)
        return self._cache[key]

    def _fields(self, method: str, endpoint: str) -> DeclaredFields | None:
        template = self.operation_path(method, endpoint)
        if template is None:
            return None
        operation = self.root["paths"][template][method.lower()]
        declared = DeclaredFields()
        responses = operation.get("responses") if isinstance(operation, dict) else None
        for response in (responses or {}).values():
            for schema in self._response_schemas(self._resolve(response)):
                self._walk(schema, "$", declared, 0, frozenset())
        return declared

    def _response_schemas(self, response: Any) -> Iterator[Any]:
        if not isinstance(response, dict):
            return
        if "schema" in response:  # Swagger 2.0
            yield response["schema"]
        content = response.get("content")
        if isinstance(content, dict):
            for media, body in content.items():
                media_type = str(media).split(";", 1)[0].strip().lower()
                if media_type.endswith("json") and isinstance(body, dict) and "schema" in body:
                    yield body["schema"]

    def _resolve(self, node: Any, seen: frozenset[str] = frozenset()) -> Any:
        while isinstance(node, dict) and isinstance(node.get("$ref"), str):
            ref = node["$ref"]
            if ref in seen or not ref.startswith("#"):
                return {}
            seen = seen | {ref}
            node = _pointer(self.root, ref[1:])
        return node

    def _walk(
        self, node: Any, path: str, out: DeclaredFields, depth: int, refs: frozenset[str]
    ) -> None:
        if depth > _MAX_DEPTH:
            out.open_paths.add(path)
            return
        if isinstance(node, dict) and isinstance(node.get("$ref"), str):
            ref = node["$ref"]
            if ref in refs:  # recursive schema: what is under it is declared already
                out.paths.add(path)
                return
            refs = refs | {ref}
        schema = self._resolve(node)
        if schema is True or schema == {}:
            out.open_paths.add(path)
            return
        if not isinstance(schema, dict):
            out.paths.add(path)
            return
        out.paths.add(path)
        for keyword in ("allOf", "anyOf", "oneOf"):
            for part in schema.get(keyword) or ():
                self._walk(part, path, out, depth + 1, refs)
        properties = schema.get("properties")
        if isinstance(properties, dict):
            for name, sub in properties.items():
                self._walk(sub, path + format_key(str(name)), out, depth + 1, refs)
        additional = schema.get("additionalProperties")
        explicit = additional is True or (isinstance(additional, dict) and bool(additional))
        if explicit or (_free_form_object(schema) and not isinstance(properties, dict)):
            out.open_paths.add(path)
        items = schema.get("items")
        if isinstance(items, dict | bool):
            self._walk(items, path + "[*]", out, depth + 1, refs)
        for item in schema.get("prefixItems") or ():
            self._walk(item, path + "[*]", out, depth + 1, refs)


def _free_form_object(schema: dict[str, Any]) -> bool:
    """An object schema that names no members and does not forbid any."""
    if schema.get("additionalProperties") is False:
        return False
    if any(key in schema for key in ("allOf", "anyOf", "oneOf", "items", "prefixItems")):
        return False
    kind = schema.get("type")
    kinds = set(kind) if isinstance(kind, list) else {kind}
    return "object" in kinds or kind is None


def _same_shape(template: list[str], endpoint: list[str]) -> bool:
    if len(template) != len(endpoint):
        return False
    for expected, actual in zip(template, endpoint, strict=True):
        if expected == actual:
            continue
        if _PARAM.match(expected) and (actual and (_PARAM.match(actual) or "{" not in actual)):
            continue
        return False
    return True


def _pointer(root: Any, pointer: str) -> Any:
    node = root
    for raw in pointer.split("/")[1:]:
        token = raw.replace("~1", "/").replace("~0", "~")
        if isinstance(node, dict) and token in node:
            node = node[token]
        elif isinstance(node, list) and token.isdigit() and int(token) < len(node):
            node = node[int(token)]
        else:
            return {}
    return node


def load_contract(location: str) -> Contract:
    """Read an OpenAPI document (path or ``package:PKG/FILE``); ValueError if unusable."""
    try:
        from dijk.openapi.document import read_document, resolve_location
    except ImportError:  # pragma: no cover - before the OpenAPI package lands
        return _load_plain(location)
    try:
        path = resolve_location(location, ".")
        document = read_document(path)
    except ValueError as exc:
        raise ValueError(str(exc)) from None
    except Exception as exc:  # SpecError and friends carry a message for users
        raise ValueError(f"{location}: {exc}") from None
    return Contract(path, document.root)


def _load_plain(location: str) -> Contract:
    try:
        text = Path(location).read_text(encoding="utf-8")
        root = yaml.safe_load(text)
    except (OSError, yaml.YAMLError) as exc:
        raise ValueError(f"cannot read OpenAPI document {location}: {exc}") from None
    if not isinstance(root, dict) or not isinstance(root.get("paths"), dict):
        raise ValueError(f"{location} is not an OpenAPI document (no paths)")
    return Contract(location, root)
