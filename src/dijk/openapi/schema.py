"""OpenAPI schema objects to JSON Schema 2020-12, compiled once with jsonschema-rs.

Every schema of a document, whatever its dialect, is rewritten into one JSON Schema
2020-12 document of ``$defs``; each parameter location and each request or response body
is one entry, and jsonschema-rs compiles each entry once, at load (:meth:`SchemaSet.compile`).

What the rewrite does, and why:

- **Dialects.** OpenAPI 3.1 schemas are JSON Schema 2020-12 already. OpenAPI 3.0 and
  Swagger 2.0 schemas are not: ``nullable: true`` (``x-nullable`` in 2.0) adds ``"null"``
  to ``type`` (and to ``enum``); boolean ``exclusiveMinimum``/``exclusiveMaximum`` become
  the numeric form; keywords beside a ``$ref`` are ignored, as 3.0 says; 2.0's
  ``type: file`` is a string.
- **Directions.** A schema is compiled once per direction, because ``readOnly`` and
  ``writeOnly`` mean different things in each: in a *request* a ``readOnly`` property
  must not be sent (it is dropped from ``required`` and refused when present); in a
  *response* the same holds for ``writeOnly``. The refusing subschema carries a marker
  (:data:`READ_ONLY`, :data:`WRITE_ONLY`) so errors can say why.
- **Mass assignment.** With ``additional_properties: deny`` every object that declares
  its properties is closed where it is *used* (a body, a property value, an array item):
  ``unevaluatedProperties: false`` is added there, not inside ``allOf``/``oneOf`` branches,
  so composition (``allOf: [Base, {properties: ...}]``) keeps working. Objects that
  declare no properties (free-form), or that say ``additionalProperties: true`` or give a
  schema for them, stay open: that is what the document allows.
- **Discriminator.** ``oneOf``/``anyOf`` with a ``discriminator`` whose branches are all
  ``$ref``s becomes an ``if``/``then`` per discriminator value (explicit ``mapping`` and
  implicit schema names), so the branch is chosen by the value, as the document intends,
  rather than by trying every branch (open branches would all match and ``oneOf`` fail).
- **Formats.** ``int32``/``int64`` become bounds; ``byte`` is checked as base64; other
  formats are checked by jsonschema-rs where it knows them and ignored where it does not.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Literal
from urllib.parse import unquote

import jsonschema_rs

from dijk.openapi.errors import escape_token, split_pointer

__all__ = [
    "READ_ONLY",
    "WRITE_ONLY",
    "Direction",
    "SchemaSet",
    "resolve_pointer",
]

Direction = Literal["request", "response"]
Dialect = Literal["2.0", "3.0", "3.1"]

MARKER = "x-dijk-refuse"
READ_ONLY: dict[str, Any] = {"not": {MARKER: "readOnly"}}
WRITE_ONLY: dict[str, Any] = {"not": {MARKER: "writeOnly"}}

_INT_BOUNDS = {"int32": (-(2**31), 2**31 - 1), "int64": (-(2**63), 2**63 - 1)}

# Keywords whose value is one subschema, in a value position (the instance is a value of
# the object or array) or a composition position (the same instance, seen again).
_VALUE_ONE = ("items", "additionalProperties", "contains", "unevaluatedItems", "propertyNames")
_VALUE_MAP = ("properties", "patternProperties")
_COMPOSE_ONE = ("not", "if", "then", "else")
_COMPOSE_LIST = ("allOf", "anyOf", "oneOf")
_VALUE_LIST = ("prefixItems",)
_KEEP = frozenset(
    {
        "type",
        "enum",
        "const",
        "multipleOf",
        "maximum",
        "minimum",
        "exclusiveMaximum",
        "exclusiveMinimum",
        "maxLength",
        "minLength",
        "pattern",
        "maxItems",
        "minItems",
        "uniqueItems",
        "maxContains",
        "minContains",
        "maxProperties",
        "minProperties",
        "required",
        "dependentRequired",
        "format",
        "unevaluatedProperties",
        # Annotations only (no validator asserts them): the kind of text a string holds,
        # read by dijk.openapi.constrained for the attack detector.
        "contentMediaType",
        "x-dijk-content",
    }
)


def resolve_pointer(root: Any, ref: str) -> Any:
    """The value a local ``$ref`` (``#/a/b``) points at; ``KeyError`` if there is none."""
    if not ref.startswith("#"):
        raise KeyError(ref)
    node = root
    for token in _tokens(ref):
        if isinstance(node, dict):
            node = node[token]
        elif isinstance(node, list) and token.isdigit() and int(token) < len(node):
            node = node[int(token)]
        else:
            raise KeyError(ref)
    return node


@lru_cache(maxsize=65536)
def _tokens(ref: str) -> tuple[str, ...]:
    fragment = unquote(ref[1:]) if "%" in ref else ref[1:]
    return tuple(split_pointer(fragment))


def _check_byte(value: str) -> bool:
    try:
        base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return False
    return True


FORMATS: dict[str, Callable[[str], bool]] = {"byte": _check_byte}


class SchemaError(Exception):
    """A schema that cannot be compiled; ``ref`` is where, ``message`` why."""

    def __init__(self, ref: str, message: str) -> None:
        super().__init__(message)
        self.ref = ref
        self.message = message


@dataclass(slots=True)
class SchemaSet:
    """All schemas of one document, rewritten per direction into one 2020-12 document."""

    root: dict[str, Any]
    dialect: Dialect
    close_objects: bool
    defs: dict[str, Any] = field(default_factory=dict)
    _names: dict[tuple[str, Direction], str] = field(default_factory=dict)
    _pending: list[tuple[str, Direction, str]] = field(default_factory=list)
    _shapes: dict[str, tuple[bool, bool]] = field(default_factory=dict)
    _entries: int = 0
    origins: dict[str, str] = field(default_factory=dict)

    # ---- building ----------------------------------------------------------------------
    def entry(self, schema: Any, direction: Direction, origin: str = "") -> str:
        """Add a use-site schema (a body); returns its ``$defs`` name."""
        self._entries += 1
        name = f"e{self._entries}"
        self.origins[name] = origin
        self.defs[name] = self.value(schema, direction)
        self._drain()
        return name

    def entry_raw(self, schema: dict[str, Any], origin: str = "") -> str:
        """Add an already-2020-12 schema (parameter objects built by the compiler)."""
        self._entries += 1
        name = f"e{self._entries}"
        self.origins[name] = origin
        self.defs[name] = schema
        self._drain()
        return name

    def value(self, schema: Any, direction: Direction) -> Any:
        """Rewrite a schema in a value position: closed if it declares its properties."""
        out = self.rewrite(schema, direction)
        if (
            self.close_objects
            and isinstance(out, dict)
            and "additionalProperties" not in out
            and "unevaluatedProperties" not in out
            and self.closable(schema)
        ):
            out = dict(out)
            out["unevaluatedProperties"] = False
        return out

    def rewrite(self, schema: Any, direction: Direction) -> Any:
        """Rewrite one schema object (not closed at its own level)."""
        if isinstance(schema, bool):
            return schema
        if not isinstance(schema, dict):
            return {}
        ref = schema.get("$ref")
        if isinstance(ref, str):
            target = {"$ref": "#/$defs/" + self._ref_name(ref, direction)}
            if self.dialect != "3.1":
                if _nullable(schema):
                    return {"anyOf": [{"type": "null"}, target]}
                return target
            rest = {key: value for key, value in schema.items() if key != "$ref"}
            if not rest:
                return target
            out = self._rewrite_object(rest, direction)
            out["$ref"] = target["$ref"]
            return out
        return self._rewrite_object(schema, direction)

    def _rewrite_object(self, schema: dict[str, Any], direction: Direction) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in schema.items():
            if key in _KEEP:
                out[key] = value
            elif key in _VALUE_ONE or key == "unevaluatedProperties":
                if isinstance(value, dict | bool):
                    out[key] = self.value(value, direction)
                elif key == "items" and isinstance(value, list):
                    out["prefixItems"] = [self.value(item, direction) for item in value]
            elif key in _VALUE_MAP:
                if isinstance(value, dict):
                    out[key] = self._properties(key, value, direction)
            elif key in _VALUE_LIST:
                if isinstance(value, list):
                    out[key] = [self.value(item, direction) for item in value]
            elif key in _COMPOSE_LIST:
                if isinstance(value, list):
                    out[key] = [self.rewrite(item, direction) for item in value]
            elif key in _COMPOSE_ONE:
                out[key] = self.rewrite(value, direction)
            elif key == "dependentSchemas" and isinstance(value, dict):
                out[key] = {name: self.rewrite(item, direction) for name, item in value.items()}
        self._dialect_fixes(schema, out)
        if direction == "request" or direction == "response":
            self._drop_required(schema, out, direction)
        discriminated = self._discriminator(schema, out, direction)
        if discriminated is not None:
            out = discriminated
        if self.dialect != "3.1" and _nullable(schema):
            out = _add_null(out)
        return out

    def _properties(
        self, keyword: str, properties: dict[str, Any], direction: Direction
    ) -> dict[str, Any]:
        refused = "readOnly" if direction == "request" else "writeOnly"
        marker = READ_ONLY if direction == "request" else WRITE_ONLY
        out: dict[str, Any] = {}
        for name, sub in properties.items():
            if keyword == "properties" and self.flag(sub, refused):
                out[name] = marker
            else:
                out[name] = self.value(sub, direction)
        return out

    def _drop_required(self, schema: dict[str, Any], out: dict[str, Any], direction: str) -> None:
        required = schema.get("required")
        properties = schema.get("properties")
        if not isinstance(required, list) or not isinstance(properties, dict):
            return
        refused = "readOnly" if direction == "request" else "writeOnly"
        kept = [
            name
            for name in required
            if not (
                isinstance(name, str)
                and name in properties
                and self.flag(properties[name], refused)
            )
        ]
        if len(kept) != len(required):
            if kept:
                out["required"] = kept
            else:
                out.pop("required", None)

    def _dialect_fixes(self, schema: dict[str, Any], out: dict[str, Any]) -> None:
        kind = out.get("type")
        if self.dialect != "3.1":
            if kind == "file":
                out["type"] = "string"
            for keyword, bound in (
                ("exclusiveMinimum", "minimum"),
                ("exclusiveMaximum", "maximum"),
            ):
                flag = out.get(keyword)
                if isinstance(flag, bool):
                    del out[keyword]
                    if flag and bound in out:
                        out[keyword] = out.pop(bound)
        bounds = _INT_BOUNDS.get(str(out.get("format")))
        if bounds is not None and (
            kind == "integer" or (isinstance(kind, list) and "integer" in kind)
        ):
            out.setdefault("minimum", bounds[0])
            out.setdefault("maximum", bounds[1])
        if "pattern" in out and not isinstance(out["pattern"], str):
            del out["pattern"]

    def _discriminator(
        self, schema: dict[str, Any], out: dict[str, Any], direction: Direction
    ) -> dict[str, Any] | None:
        discriminator = schema.get("discriminator")
        if not isinstance(discriminator, dict):
            return None
        prop = discriminator.get("propertyName")
        keyword = "oneOf" if "oneOf" in schema else "anyOf" if "anyOf" in schema else None
        if not isinstance(prop, str) or keyword is None:
            return None
        branches = schema[keyword]
        if not isinstance(branches, list) or not branches:
            return None
        refs: list[str] = []
        for branch in branches:
            if not (isinstance(branch, dict) and isinstance(branch.get("$ref"), str)):
                return None  # inline branches: keep oneOf/anyOf as written
            refs.append(branch["$ref"])
        values: dict[str, str] = {}
        mapping = discriminator.get("mapping")
        if isinstance(mapping, dict):
            for value, target in mapping.items():
                if isinstance(target, str):
                    values[str(value)] = target if "#" in target else _schema_ref(target, self)
        for ref in [*values.values(), *refs]:
            if not _resolves(self.root, ref):
                return None  # a mapping to a file never bundled: keep oneOf/anyOf as written
        mapped = set(values.values())
        for ref in refs:
            if ref not in mapped:
                values.setdefault(ref.rsplit("/", 1)[-1], ref)
        rules: list[Any] = [{"properties": {prop: {"enum": sorted(values)}}, "required": [prop]}]
        for value, ref in values.items():
            rules.append(
                {
                    "if": {"properties": {prop: {"const": value}}, "required": [prop]},
                    "then": {"$ref": "#/$defs/" + self._ref_name(ref, direction)},
                }
            )
        result = {key: item for key, item in out.items() if key != keyword}
        result["allOf"] = [*result.get("allOf", []), *rules]
        return result

    # ---- analysis ---------------------------------------------------------------------
    def flag(self, schema: Any, keyword: str, depth: int = 0) -> bool:
        """Whether ``readOnly``/``writeOnly`` is set on a property schema (through refs)."""
        if not isinstance(schema, dict) or depth > 16:
            return False
        if schema.get(keyword) is True:
            return True
        ref = schema.get("$ref")
        if isinstance(ref, str):
            try:
                return self.flag(resolve_pointer(self.root, ref), keyword, depth + 1)
            except KeyError:
                return False
        members = schema.get("allOf")
        if isinstance(members, list):
            return any(self.flag(member, keyword, depth + 1) for member in members)
        return False

    def closable(self, schema: Any) -> bool:
        """Declares its properties and leaves no other property open (see the module doc)."""
        declares, open_ = self._shape(schema, set())
        return declares and not open_

    def _shape(self, schema: Any, seen: set[str]) -> tuple[bool, bool]:
        if schema is True:
            return False, True
        if not isinstance(schema, dict):
            return False, False
        ref = schema.get("$ref")
        declares = False
        open_ = False
        if isinstance(ref, str):
            if ref in seen:
                return False, False
            target = self._shapes.get(ref) or self._shape_ref(ref, seen)
            if self.dialect != "3.1":
                return target
            declares, open_ = target
        kind = schema.get("type")
        if isinstance(kind, str) and kind != "object":
            return False, False
        if "properties" in schema or "patternProperties" in schema:
            declares = True
        for keyword in ("additionalProperties", "unevaluatedProperties"):
            if keyword in schema and schema[keyword] is not False:
                open_ = True
        for keyword in _COMPOSE_LIST:
            members = schema.get(keyword)
            if isinstance(members, list):
                for member in members:
                    member_declares, member_open = self._shape(member, seen)
                    declares = declares or member_declares
                    open_ = open_ or member_open
        return declares, open_

    def _shape_ref(self, ref: str, seen: set[str]) -> tuple[bool, bool]:
        try:
            target = resolve_pointer(self.root, ref)
        except KeyError:
            return False, False
        seen.add(ref)
        try:
            shape = self._shape(target, seen)
        finally:
            seen.discard(ref)
        self._shapes[ref] = shape
        return shape

    # ---- references -------------------------------------------------------------------
    def _ref_name(self, ref: str, direction: Direction) -> str:
        key = (ref, direction)
        name = self._names.get(key)
        if name is None:
            name = f"{'q' if direction == 'request' else 's'}{len(self._names) + 1}"
            self._names[key] = name
            self.origins[name] = ref[1:]
            self._pending.append((ref, direction, name))
        return name

    def _drain(self) -> None:
        while self._pending:
            ref, direction, name = self._pending.pop()
            try:
                target = resolve_pointer(self.root, ref)
            except KeyError:
                raise SchemaError(ref, f"$ref {ref!r} points at nothing in the document") from None
            self.defs[name] = self.rewrite(target, direction)

    # ---- compiling --------------------------------------------------------------------
    def document(self) -> dict[str, Any]:
        return {"$schema": "https://json-schema.org/draft/2020-12/schema", "$defs": self.defs}

    def compile(self) -> Compiled:
        """One validator for every entry; :class:`SchemaError` names the schema at fault."""
        entries = [name for name in self.defs if name.startswith("e")]
        try:
            return Compiled(self.document(), entries)
        except jsonschema_rs.ValidationError as exc:
            path = list(exc.instance_path)
            where = ""
            if len(path) >= 2 and path[0] == "$defs":
                where = self.origins.get(str(path[1]), "")
                where += "".join("/" + escape_token(part) for part in path[2:])
            message = " ".join(str(exc.message).split())[:300]
            raise SchemaError("#" + where, f"invalid schema: {message}") from None


@dataclass(frozen=True, slots=True)
class EntryError:
    """A validation error with the path inside the entry's instance."""

    kind: Any
    instance_path: list[str | int]


class EntryValidator:
    """Validates against one entry of a :class:`Compiled` document."""

    __slots__ = ("_name", "_validator")

    def __init__(self, validator: Any, name: str) -> None:
        self._validator = validator
        self._name = name

    def is_valid(self, value: Any) -> bool:
        return bool(self._validator.is_valid({self._name: value}))

    def iter_errors(self, value: Any) -> Iterator[EntryError]:
        for error in self._validator.iter_errors({self._name: value}):
            yield EntryError(error.kind, list(error.instance_path)[1:])


class Compiled:
    """All entries of a :class:`SchemaSet` behind one jsonschema-rs validator.

    Compiling one validator per entry would compile the schemas they share again for each
    (on large, interlinked documents such as Stripe's: half a minute). One validator over a
    root whose ``properties`` name every entry compiles each schema once; an entry is
    checked by validating ``{name: value}``, which applies that entry's schema only.
    """

    def __init__(self, document: dict[str, Any], entries: list[str]) -> None:
        root = dict(document)
        root["properties"] = {name: {"$ref": f"#/$defs/{name}"} for name in entries}
        self._validator = jsonschema_rs.Draft202012Validator(
            root,
            validate_formats=True,
            ignore_unknown_formats=True,
            formats=FORMATS,
        )

    def validator(self, name: str) -> EntryValidator:
        return EntryValidator(self._validator, name)


def _resolves(root: Any, ref: str) -> bool:
    try:
        resolve_pointer(root, ref)
    except (KeyError, ValueError):
        return False
    return True


def _nullable(schema: dict[str, Any]) -> bool:
    return schema.get("nullable") is True or schema.get("x-nullable") is True


def _add_null(out: dict[str, Any]) -> dict[str, Any]:
    kind = out.get("type")
    if kind is None:
        if not out:
            return out
        return {"anyOf": [{"type": "null"}, out]}
    result = dict(out)
    if isinstance(kind, list):
        if "null" not in kind:
            result["type"] = [*kind, "null"]
    elif kind != "null":
        result["type"] = [kind, "null"]
    enum = result.get("enum")
    if isinstance(enum, list) and None not in enum:
        result["enum"] = [*enum, None]
    return result


def _schema_ref(name: str, schemas: SchemaSet) -> str:
    """A mapping value that is a bare schema name (``Cat``) as a ``$ref``."""
    if schemas.dialect == "2.0":
        return "#/definitions/" + name
    return "#/components/schemas/" + name
