"""Validation errors as short, safe sentences: where, which field, which rule.

A denial's detail goes back to the client, which may be the attacker, so nothing here
repeats the offending *value*: the message is built from the schema (the limit, the type,
the allowed values - the document's words, not the caller's) and from the location. The
location's property names do come from the request; each one is cut to
:data:`MAX_TOKEN` characters and anything but printable ASCII is escaped.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from itertools import islice
from typing import Any

from dijk.openapi.errors import escape_token
from dijk.openapi.schema import MARKER

__all__ = ["Problem", "describe", "safe_name", "safe_pointer"]

MAX_TOKEN = 64
MAX_POINTER = 200
MAX_LISTED = 3
MAX_ERRORS = 20

UNDECLARED = "undeclared"
READ_ONLY = "read_only"
WRITE_ONLY = "write_only"
INVALID = "invalid"


@dataclass(frozen=True, slots=True)
class Problem:
    """One broken rule: ``category`` is invalid, undeclared, read_only or write_only."""

    category: str
    pointer: str
    message: str
    rule: str

    def text(self, where: str) -> str:
        place = f"{where} {self.pointer}" if self.pointer else where
        return f"{place}: {self.message} ({self.rule})"


def safe_name(text: str) -> str:
    """A request-supplied name, cut and escaped so it can be shown without risk."""
    cut = text[:MAX_TOKEN]
    out = []
    for char in cut:
        code = ord(char)
        if 0x20 <= code < 0x7F and char not in "\"'\\<>&`":
            out.append(char)
        else:
            out.append(f"\\u{code:04x}" if code <= 0xFFFF else "\\u????")
    if len(text) > MAX_TOKEN:
        out.append("...")
    return "".join(out)


def safe_pointer(parts: Iterable[str | int]) -> str:
    text = "".join("/" + escape_token(safe_name(str(part))) for part in parts)
    return text if len(text) <= MAX_POINTER else text[: MAX_POINTER - 3] + "..."


def describe(errors: Iterable[Any], prefix: tuple[str | int, ...] = ()) -> list[Problem]:
    """Turn jsonschema-rs errors into problems, most useful first, at most a few."""
    collected = list(islice(errors, MAX_ERRORS))
    # An 'unevaluated property' that another error is about is a side effect of that error
    # (a failed branch evaluates nothing), not an undeclared property.
    touched = {
        (tuple(error.instance_path[:-1]), error.instance_path[-1])
        for error in collected
        if error.instance_path and error.kind.name not in ("unevaluatedProperties",)
    }
    problems: list[Problem] = []
    for error in collected:
        problems.extend(_problems(error, prefix, touched))
    if any(problem.category != UNDECLARED for problem in problems):
        # A failed allOf/oneOf member evaluates none of its properties, so every property it
        # declares turns up as "unevaluated": not undeclared, just collateral. Report the
        # real errors; a truly undeclared property is reported once they are fixed.
        problems = [
            problem
            for problem in problems
            if not (problem.category == UNDECLARED and problem.rule == "unevaluatedProperties")
        ]
    problems.sort(key=lambda problem: problem.category == UNDECLARED)
    unique: list[Problem] = []
    for problem in problems:
        if problem not in unique:
            unique.append(problem)
    return unique


def _problems(
    error: Any, prefix: tuple[str | int, ...], touched: set[tuple[tuple[Any, ...], Any]]
) -> list[Problem]:
    kind = error.kind
    name = kind.name
    path = tuple(error.instance_path)
    info = kind.as_dict()
    where = safe_pointer((*prefix, *path))
    if name in ("additionalProperties", "unevaluatedProperties"):
        names = info.get("unexpected") or []
        return [
            Problem(UNDECLARED, safe_pointer((*prefix, *path, extra)), "is not declared", name)
            for extra in names
            if name == "additionalProperties" or (path, extra) not in touched
        ]
    if name == "required":
        missing = str(info.get("property", ""))
        return [Problem(INVALID, safe_pointer((*prefix, *path, missing)), "is required", name)]
    if name == "not":
        schema = info.get("schema")
        marker = schema.get(MARKER) if isinstance(schema, dict) else None
        if marker == "readOnly":
            return [Problem(READ_ONLY, where, "is read-only and must not be sent", "readOnly")]
        if marker == "writeOnly":
            return [
                Problem(WRITE_ONLY, where, "is write-only and must not be returned", "writeOnly")
            ]
    return [Problem(INVALID, where, _sentence(name, info), name)]


def _sentence(name: str, info: dict[str, Any]) -> str:
    limit = info.get("limit")
    match name:
        case "type":
            types = info.get("types") or []
            return "must be of type " + " or ".join(str(kind) for kind in types)
        case "enum":
            return "must be one of " + _listed(info.get("options"))
        case "constant":
            return "must be " + _short(repr(info.get("expected_value")))
        case "minimum":
            return f"must be >= {limit}"
        case "maximum":
            return f"must be <= {limit}"
        case "exclusiveMinimum":
            return f"must be > {limit}"
        case "exclusiveMaximum":
            return f"must be < {limit}"
        case "multipleOf":
            return f"must be a multiple of {info.get('multiple_of')}"
        case "minLength":
            return f"must be at least {limit} characters long"
        case "maxLength":
            return f"must be at most {limit} characters long"
        case "minItems":
            return f"must have at least {limit} items"
        case "maxItems":
            return f"must have at most {limit} items"
        case "minProperties":
            return f"must have at least {limit} properties"
        case "maxProperties":
            return f"must have at most {limit} properties"
        case "uniqueItems":
            return "must not repeat items"
        case "pattern":
            return "must match the pattern " + _short(str(info.get("pattern")), 80)
        case "format":
            return f"must be a valid {info.get('format')}"
        case "falseSchema":
            return "is not allowed"
        case "oneOf" | "anyOf":
            return "does not match any of the allowed forms"
        case "oneOfMultipleValid":
            return "matches more than one of the allowed forms"
        case "contains":
            return "has no item of the required form"
        case "propertyNames":
            return "has a property name of the wrong form"
        case "not":
            return "is of a form that is not allowed"
        case "backtrackLimitExceeded" | "regexEngineFailure":
            return "could not be checked against its pattern"
    return f"breaks the rule {name!r}"


def _listed(options: Any) -> str:
    if not isinstance(options, list):
        return "the allowed values"
    shown = ", ".join(_short(repr(option), 40) for option in options[: MAX_LISTED * 2])
    return shown + (", ..." if len(options) > MAX_LISTED * 2 else "")


def _short(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."
