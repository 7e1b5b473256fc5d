"""Plausible values from JSON schemas: what a well-behaved client would send.

The scanner first proves an operation works with ordinary input (a baseline), then
changes one thing at a time. So generated values aim to *conform*: examples and defaults
first, then the format, then a few candidates tried against ``pattern``.
"""

from __future__ import annotations

import re
from typing import Any

__all__ = ["distinct_value", "example_body", "example_value", "string_properties"]

_CANDIDATES = (
    "dijkscan",
    "DijkScan",
    "dijk-scan",
    "1000.00",
    "12/28",
    "1234",
    "1234 AB",
    "0612345678",
    "+31612345678",
    "NL91ABNA0417164300",
    "AB",
    "a",
    "1",
)
_FORMATS = {
    "email": "dijk.scan@example.com",
    "uri": "https://example.com/",
    "url": "https://example.com/",
    "iri": "https://example.com/",
    "uri-reference": "https://example.com/",
    "hostname": "example.com",
    "ipv4": "192.0.2.1",
    "ipv6": "2001:db8::1",
    "date": "2000-01-01",
    "date-time": "2000-01-01T00:00:00Z",
    "time": "00:00:00Z",
    "uuid": "00000000-0000-4000-8000-000000000000",
    "password": "Dijk-scan-1",
}
MAX_DEPTH = 6


def _type(schema: dict[str, Any]) -> str | None:
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), None)
    if kind is None:
        if "properties" in schema:
            return "object"
        if "items" in schema:
            return "array"
    return kind if isinstance(kind, str) else None


def _fits(text: str, schema: dict[str, Any]) -> bool:
    pattern = schema.get("pattern")
    if isinstance(pattern, str):
        try:
            if re.search(pattern, text) is None:
                return False
        except re.error:
            return False
    return len(text) >= int(schema.get("minLength", 0) or 0) and len(text) <= int(
        schema.get("maxLength", 10_000) or 10_000
    )


def example_value(schema: dict[str, Any], depth: int = 0) -> Any:
    """One conforming value (best effort) for ``schema``."""
    for key in ("const", "example", "default"):
        if key in schema:
            return schema[key]
    examples = schema.get("examples")
    if isinstance(examples, list) and examples:
        return examples[0]
    enum = schema.get("enum")
    if isinstance(enum, list) and enum:
        return enum[0]
    for key in ("oneOf", "anyOf"):
        options = schema.get(key)
        if isinstance(options, list) and options and isinstance(options[0], dict):
            return example_value(options[0], depth + 1)
    kind = _type(schema)
    if kind == "integer":
        low = schema.get("minimum", 1)
        return max(int(low), 1) if isinstance(low, int | float) else 1
    if kind == "number":
        low = schema.get("minimum", 1)
        return float(max(low, 1)) if isinstance(low, int | float) else 1.0
    if kind == "boolean":
        return True
    if kind == "array":
        items = schema.get("items")
        if depth >= MAX_DEPTH or not isinstance(items, dict):
            return []
        return [example_value(items, depth + 1)]
    if kind == "object":
        return example_body(schema, depth + 1) if depth < MAX_DEPTH else {}
    return _string(schema)


def _string(schema: dict[str, Any]) -> str:
    fmt = schema.get("format")
    if isinstance(fmt, str) and fmt in _FORMATS and _fits(_FORMATS[fmt], schema):
        return _FORMATS[fmt]
    for candidate in _CANDIDATES:
        if _fits(candidate, schema):
            return candidate
    minimum = int(schema.get("minLength", 1) or 1)
    return ("dijkscan" * (minimum // 8 + 1))[: max(minimum, 8)]


def example_body(schema: dict[str, Any], depth: int = 0) -> dict[str, Any]:
    """Required writable properties; if none are required, the first writable one."""
    properties = schema.get("properties")
    if not isinstance(properties, dict):
        return {}
    required = [name for name in schema.get("required", []) if name in properties]
    writable = [
        name
        for name, sub in properties.items()
        if not (isinstance(sub, dict) and sub.get("readOnly"))
    ]
    names = [name for name in required if name in writable] or writable[:1]
    return {name: example_value(properties[name], depth + 1) for name in names}


def distinct_value(schema: dict[str, Any], current: Any, token: str) -> Any:
    """A value for ``schema`` that differs from ``current`` and is easy to spot again."""
    enum = schema.get("enum")
    if isinstance(enum, list) and enum:
        others = [value for value in enum if value != current]
        privileged = [
            value
            for value in others
            if str(value).lower() in ("admin", "administrator", "root", "staff")
        ]
        return (privileged or others or enum)[-1]
    kind = _type(schema)
    if kind == "integer":
        return 987_654
    if kind == "number":
        return 987_654.0
    if kind == "boolean":
        return not current if isinstance(current, bool) else True
    if kind in ("object", "array"):
        return {"dijk": token} if kind == "object" else [token]
    for candidate in (f"dijk-{token}", "987654.00", token):
        if _fits(candidate, schema) and candidate != current:
            return candidate
    return f"dijk-{token}"


def string_properties(schema: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    properties = schema.get("properties")
    if not isinstance(properties, dict):
        return []
    return [
        (name, sub)
        for name, sub in properties.items()
        if isinstance(sub, dict)
        and _type(sub) == "string"
        and not sub.get("readOnly")
        and not sub.get("enum")
    ]
