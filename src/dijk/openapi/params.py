"""Parameters as they travel (path, query, header, cookie), turned into typed values.

A parameter arrives as text; its schema says what it is. :class:`Shape` is the part of the
schema that matters for reading the text (the types, the item shape of an array, the
property shapes of an object), worked out at load. Reading follows the OpenAPI
serialisation rules for the common ``style``/``explode`` pairs:

- path: ``simple`` (``1,2``), ``label`` (``.1.2``), ``matrix`` (``;id=1,2``);
- query: ``form`` (``id=1&id=2`` exploded, ``id=1,2`` not), ``spaceDelimited``,
  ``pipeDelimited``, ``deepObject`` (``filter[color]=red``); an exploded ``form`` object
  takes its properties from the query's own names;
- header: ``simple``; cookie: ``form``.

Text that does not read as the declared type is passed on as text, so the schema check
then names the parameter and says ``must be of type integer``. A scalar query parameter
given twice is refused (which value the upstream takes differs between frameworks:
parameter pollution).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import unquote

import orjson

__all__ = ["Parameter", "Shape", "coerce", "read_cookies", "read_location_value"]

Location = Literal["path", "query", "header", "cookie"]

_INTEGER = re.compile(r"-?[0-9]{1,300}")
_NUMBER = re.compile(r"-?[0-9]{1,300}(\.[0-9]{1,300})?([eE][-+]?[0-9]{1,5})?")
_SPLIT = {"spaceDelimited": " ", "pipeDelimited": "|", "tabDelimited": "\t"}


@dataclass(frozen=True, slots=True)
class Shape:
    types: frozenset[str] = frozenset()
    items: Shape | None = None
    properties: dict[str, Shape] = field(default_factory=dict)

    @property
    def is_array(self) -> bool:
        return "array" in self.types

    @property
    def is_object(self) -> bool:
        return "object" in self.types and "array" not in self.types


ANY = Shape()


@dataclass(frozen=True, slots=True)
class Parameter:
    name: str
    location: Location
    required: bool
    style: str
    explode: bool
    shape: Shape
    json_content: bool = False

    @property
    def key(self) -> str:
        """The name in the location's object: header names are case-insensitive."""
        return self.name.lower() if self.location == "header" else self.name


class ParameterError(Exception):
    """A parameter that cannot be read at all (given twice, bad JSON)."""

    def __init__(self, parameter: str, message: str, location: Location = "query") -> None:
        super().__init__(message)
        self.parameter = parameter
        self.message = message
        self.location: Location = location


def coerce(text: str, shape: Shape) -> Any:
    """``text`` as the type its shape declares, or ``text`` itself if it is not one."""
    types = shape.types
    if not types or "string" in types:
        return text
    if "integer" in types and _INTEGER.fullmatch(text):
        return int(text)
    if "number" in types and _NUMBER.fullmatch(text):
        number = float(text)
        if math.isfinite(number):
            return int(text) if _INTEGER.fullmatch(text) else number
    if "boolean" in types and text in ("true", "false"):
        return text == "true"
    if "null" in types and text in ("", "null"):
        return None
    return text


def _items(parts: list[str], shape: Shape) -> list[Any]:
    item = shape.items or ANY
    return [coerce(part, item) for part in parts]


def _pairs(parts: list[str], shape: Shape) -> dict[str, Any] | str:
    if len(parts) % 2:
        return ",".join(parts)
    return {
        parts[i]: coerce(parts[i + 1], shape.properties.get(parts[i], ANY))
        for i in range(0, len(parts), 2)
    }


def _assignments(parts: list[str], shape: Shape) -> dict[str, Any] | str:
    result: dict[str, Any] = {}
    for part in parts:
        key, equals, value = part.partition("=")
        if not equals:
            return ",".join(parts)
        result[key] = coerce(value, shape.properties.get(key, ANY))
    return result


def read_location_value(parameter: Parameter, raw: str) -> Any:
    """One serialised value (path segment, header, cookie, non-exploded query)."""
    shape = parameter.shape
    if parameter.json_content:
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise ParameterError(parameter.name, "is not valid JSON", parameter.location) from None
    style = parameter.style
    text = raw
    separator = ","
    if style == "label":
        if not text.startswith("."):
            return text
        text = text[1:]
        if parameter.explode:
            separator = "."
    elif style == "matrix":
        prefix = ";" + parameter.name + "="
        if parameter.explode and shape.is_array:
            values = [part.partition("=")[2] for part in text.split(";")[1:]]
            return _items(values, shape)
        if not text.startswith(prefix):
            return text if not text.startswith(";" + parameter.name) else ""
        text = text[len(prefix) :]
    elif style in _SPLIT:
        separator = _SPLIT[style]
    if shape.is_array:
        return _items(text.split(separator) if text else [], shape)
    if shape.is_object:
        parts = text.split(separator) if text else []
        if parameter.explode and style in ("simple", "label"):
            return _assignments(parts, shape)
        return _pairs(parts, shape)
    return coerce(text, shape)


def read_query(
    parameters: list[Parameter], pairs: list[tuple[str, str]]
) -> tuple[dict[str, Any], set[str]]:
    """The declared query parameters as typed values, and the names they consumed."""
    by_name: dict[str, list[str]] = {}
    for name, value in pairs:
        by_name.setdefault(name, []).append(value)
    values: dict[str, Any] = {}
    used: set[str] = set()
    for parameter in parameters:
        name = parameter.name
        shape = parameter.shape
        if parameter.style == "deepObject":
            found: dict[str, Any] = {}
            opening = name + "["
            for key, occurrences in by_name.items():
                if key.startswith(opening) and key.endswith("]"):
                    inner = key[len(opening) : -1]
                    found[inner] = coerce(occurrences[-1], shape.properties.get(inner, ANY))
                    used.add(key)
                    if len(occurrences) > 1:
                        raise ParameterError(f"{name}[{inner}]", "is given more than once")
            if found:
                values[name] = found
            continue
        if shape.is_object and parameter.explode and parameter.style == "form":
            found = {}
            for prop, prop_shape in shape.properties.items():
                values_of = by_name.get(prop)
                if values_of:
                    found[prop] = coerce(values_of[-1], prop_shape)
                    used.add(prop)
            if found:
                values[name] = found
            continue
        given = by_name.get(name)
        if given is None:
            continue
        used.add(name)
        if shape.is_array and parameter.explode and parameter.style == "form":
            values[name] = _items(given, shape)
            continue
        if len(given) > 1:
            raise ParameterError(name, "is given more than once")
        values[name] = read_location_value(parameter, given[0])
    return values, used


def read_cookies(header_values: list[str]) -> dict[str, str]:
    cookies: dict[str, str] = {}
    for header in header_values:
        for piece in header.split(";"):
            name, equals, value = piece.strip().partition("=")
            if equals and name:
                cookies.setdefault(name, unquote(value))
    return cookies
