"""The shape of JSON documents, learnt from samples and merged: never their values.

A *shape* is a plain dictionary (so it is stored as JSON as it is), one per place in the
document:

``n``  how many values were seen here            ``t``  counts per JSON type
``f``  counts per string format (email, uuid...) ``e``  enum candidates (see below), or
``p``  properties: name → shape                         ``false`` once abandoned
``i``  the shape of array items                  ``x``  properties were left out (budget)

Shapes add up (:func:`merge`), so samples from many requests and many gateways combine in
any order. :func:`to_schema` writes JSON Schema 2020-12 (OpenAPI 3.1): types, nullable as
``[T, "null"]``, formats every sample had, required properties (present in every object),
array item schemas, and ``enum`` only where few values recur.

**No value is kept**, with one exception: enum candidates, and only strings that look like
codes (lower- or upper-case identifiers such as ``active`` or ``EUR``, at most 24
characters, never mixed case, never digits-only), never under a field whose name suggests
personal or secret data, abandoned at the ninth distinct value, and written only when at
least 20 samples held 2 to 6 values, each seen 3 times or more. Every other example is a
redacted shape (``<email>``, ``<string>``, ``0``).

Bounded: a shape has at most ``budget`` places (objects' properties past it are counted
in ``x``), nesting deeper than ``max_depth`` is not followed, and arrays are sampled (their
first ``max_items`` elements).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Final

__all__ = ["ShapeBudget", "learn", "merge", "redacted_example", "shape_size", "to_schema"]

Shape = dict[str, Any]

_MAX_ENUM_CANDIDATES: Final = 8
_ENUM_MIN_SAMPLES: Final = 20
_ENUM_MIN_EACH: Final = 3
_ENUM_MAX_VALUES: Final = 6
_ENUM_VALUE: Final = re.compile(r"[a-z][a-z0-9_-]{0,23}|[A-Z][A-Z0-9_]{0,23}")
_SENSITIVE_NAME: Final = re.compile(
    r"(?i)^q$|term|keyword|filter|lookup|"
    r"pass|secret|token|key|user|login|name|mail|phone|iban|bsn|ssn|card|address|"
    r"street|city|birth|dob|account|owner|holder|note|comment|description|text|message|"
    r"title|query|search|code|otp|pin"
)
_FORMATS: Final = (
    ("date-time", re.compile(r"[0-9]{4}-[01][0-9]-[0-3][0-9][Tt ][0-2][0-9]:[0-5][0-9].*")),
    ("date", re.compile(r"[0-9]{4}-[01][0-9]-[0-3][0-9]")),
    (
        "uuid",
        re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"),
    ),
    ("email", re.compile(r"[^@\s]{1,64}@[A-Za-z0-9.-]{1,253}\.[A-Za-z]{2,24}")),
    ("uri", re.compile(r"(?i)https?://[^\s]{1,2000}")),
    ("ipv4", re.compile(r"(?:[0-9]{1,3}\.){3}[0-9]{1,3}")),
)
_EXAMPLES: Final = {
    "date-time": "<date-time>",
    "date": "<date>",
    "uuid": "<uuid>",
    "email": "<email>",
    "uri": "<uri>",
    "ipv4": "<ipv4>",
}


class ShapeBudget:
    """Limits of one learning pass: places in a shape, depth, array elements looked at."""

    __slots__ = ("max_depth", "max_items", "places")

    def __init__(self, places: int, *, max_depth: int = 12, max_items: int = 16) -> None:
        self.places = places
        self.max_depth = max_depth
        self.max_items = max_items


def shape_size(shape: Shape) -> int:
    """Places in a shape (what the budget counts)."""
    total = 1
    properties = shape.get("p")
    if properties:
        total += sum(shape_size(child) for child in properties.values())
    items = shape.get("i")
    if items is not None:
        total += shape_size(items)
    return total


def _type_of(value: Any) -> str:
    if value is None:
        return "null"
    if value is True or value is False:
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "integer" if value.is_integer() and abs(value) < 2**53 else "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return "string"


def _format_of(text: str) -> str:
    if not text or len(text) > 2048:
        return ""
    first = text[0]
    for name, pattern in _FORMATS:
        if name in ("date-time", "date", "ipv4") and not first.isdigit():
            continue
        if pattern.fullmatch(text):
            return name
    return ""


def learn(
    shape: Shape | None, value: Any, budget: ShapeBudget, name: str = "", depth: int = 0
) -> Shape:
    """Add one value to ``shape`` (a new one if None); spends ``budget.places``."""
    if shape is None:
        shape = {"n": 0, "t": {}}
        budget.places -= 1
    shape["n"] += 1
    kind = _type_of(value)
    types: dict[str, int] = shape["t"]
    types[kind] = types.get(kind, 0) + 1
    if kind == "string":
        _learn_string(shape, value, name)
    elif kind == "object" and depth < budget.max_depth:
        properties: dict[str, Shape] = shape.setdefault("p", {})
        for key, child in value.items():
            key = str(key)[:128]
            existing = properties.get(key)
            if existing is None and budget.places <= 0:
                shape["x"] = shape.get("x", 0) + 1
                continue
            properties[key] = learn(existing, child, budget, key, depth + 1)
    elif kind == "array" and depth < budget.max_depth and value:
        items = shape.get("i")
        if items is None and budget.places <= 0:
            shape["x"] = shape.get("x", 0) + 1
            return shape
        for element in value[: budget.max_items]:
            items = learn(items, element, budget, name, depth + 1)
        shape["i"] = items
    return shape


def _learn_string(shape: Shape, text: str, name: str) -> None:
    found = _format_of(text)
    formats: dict[str, int] = shape.setdefault("f", {})
    formats[found] = formats.get(found, 0) + 1
    enum = shape.get("e")
    if enum is False:
        return
    if enum is None:
        if name and _SENSITIVE_NAME.search(name):
            shape["e"] = False
            return
        enum = shape["e"] = {}
    if found or not _ENUM_VALUE.fullmatch(text):
        shape["e"] = False
        return
    if text in enum:
        enum[text] += 1
    elif len(enum) >= _MAX_ENUM_CANDIDATES:
        shape["e"] = False
    else:
        enum[text] = 1


def _add_counts(into: dict[str, int], other: Mapping[str, int]) -> None:
    for key, count in other.items():
        into[key] = into.get(key, 0) + count


def merge(into: Shape | None, other: Shape | None, places: int = 1 << 30) -> Shape | None:
    """``into`` plus ``other`` (``into`` is changed and returned; ``other`` is not)."""
    if other is None:
        return into
    if into is None:
        return _copy(other)
    into["n"] = into.get("n", 0) + other.get("n", 0)
    _add_counts(into.setdefault("t", {}), other.get("t", {}))
    if "f" in other:
        _add_counts(into.setdefault("f", {}), other["f"])
    if "e" in other:
        mine, theirs = into.get("e"), other["e"]
        if mine is False or theirs is False:
            into["e"] = False
        elif mine is None:
            into["e"] = dict(theirs)
        else:
            _add_counts(mine, theirs)
            if len(mine) > _MAX_ENUM_CANDIDATES:
                into["e"] = False
    if other.get("x"):
        into["x"] = into.get("x", 0) + other["x"]
    if "p" in other:
        properties = into.setdefault("p", {})
        room = places - shape_size(into)
        for key, child in other["p"].items():
            existing = properties.get(key)
            if existing is None:
                size = shape_size(child)
                if size > room:
                    into["x"] = into.get("x", 0) + 1
                    continue
                room -= size
            properties[key] = merge(existing, child)
    if "i" in other:
        into["i"] = merge(into.get("i"), other["i"])
    return into


def _copy(shape: Shape) -> Shape:
    copied: Shape = {key: value for key, value in shape.items() if key not in ("p", "i")}
    copied["t"] = dict(shape.get("t", {}))
    if "f" in shape:
        copied["f"] = dict(shape["f"])
    if isinstance(shape.get("e"), dict):
        copied["e"] = dict(shape["e"])
    if "p" in shape:
        copied["p"] = {key: _copy(child) for key, child in shape["p"].items()}
    if "i" in shape:
        copied["i"] = _copy(shape["i"])
    return copied


def _types(shape: Shape) -> list[str]:
    counts: dict[str, int] = shape.get("t", {})
    kinds = [kind for kind, count in counts.items() if count and kind != "null"]
    if "integer" in kinds and "number" in kinds:
        kinds.remove("integer")
    order = ("object", "array", "string", "number", "integer", "boolean")
    return sorted(kinds, key=order.index)


def to_schema(shape: Shape, *, enums: bool = True) -> dict[str, Any]:
    """JSON Schema 2020-12 for a learnt shape (see the module docstring)."""
    kinds = _types(shape)
    nullable = bool(shape.get("t", {}).get("null"))
    schema: dict[str, Any] = {}
    if not kinds:
        return {"type": "null"} if nullable else {}
    types: list[str] = [*kinds, "null"] if nullable else kinds
    schema["type"] = types[0] if len(types) == 1 else types
    if "string" in kinds:
        _string_schema(shape, schema, enums, nullable)
    if "object" in kinds:
        properties = shape.get("p", {})
        objects = shape["t"].get("object", 0)
        if properties:
            schema["properties"] = {
                key: to_schema(child, enums=enums) for key, child in sorted(properties.items())
            }
            required = sorted(
                key
                for key, child in properties.items()
                if child.get("n", 0) >= objects and not _only_null(child)
            )
            if required:
                schema["required"] = required
    if "array" in kinds and shape.get("i") is not None:
        schema["items"] = to_schema(shape["i"], enums=enums)
    return schema


def _only_null(shape: Shape) -> bool:
    return not _types(shape)


def _string_schema(shape: Shape, schema: dict[str, Any], enums: bool, nullable: bool) -> None:
    strings = shape["t"].get("string", 0)
    formats: dict[str, int] = shape.get("f", {})
    common = [name for name, count in formats.items() if name and count == strings]
    if common:
        schema["format"] = common[0]
    enum = shape.get("e")
    if not enums or not isinstance(enum, dict) or len(_types(shape)) != 1:
        return
    total = sum(enum.values())
    if (
        total >= _ENUM_MIN_SAMPLES
        and total == strings
        and 2 <= len(enum) <= _ENUM_MAX_VALUES
        and min(enum.values()) >= _ENUM_MIN_EACH
    ):
        values: list[Any] = sorted(enum)
        schema["enum"] = [*values, None] if nullable else values


def redacted_example(schema: Mapping[str, Any], depth: int = 0) -> Any:
    """An example of a schema's shape with no value from traffic in it."""
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((item for item in kind if item != "null"), "null")
    if schema.get("enum"):
        return schema["enum"][0]
    if kind == "object" and depth < 8:
        return {
            key: redacted_example(child, depth + 1)
            for key, child in schema.get("properties", {}).items()
        }
    if kind == "array" and depth < 8:
        items = schema.get("items")
        return [redacted_example(items, depth + 1)] if isinstance(items, Mapping) else []
    if kind == "string":
        return _EXAMPLES.get(str(schema.get("format", "")), "<string>")
    if kind == "integer":
        return 0
    if kind == "number":
        return 0.0
    if kind == "boolean":
        return True
    return None
