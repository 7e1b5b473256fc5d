"""Fields whose schema leaves no room for a payload: the OpenAPI-aware WAF's input.

When a request conforms to its operation, some of its values are known to be harmless
whatever the attack detector thinks of them: an integer, a boolean, one of the document's
own enum values, a ``uuid`` or a ``date``. :class:`ConstraintFinder` works out, once per
document when it is compiled, which fields those are, as ``(location, field)`` pairs
spelled exactly as the detector spells its findings (:mod:`dijk.detect.leaves`):

- ``("json", "$.amount")``, ``("json", "$.items[*].id")``: JSON body values, with the
  detector's paths (:func:`~dijk.detect.leaves.json_key_path`; array indices as ``[*]``,
  which is how :func:`~dijk.detect.engine.wildcard_indices` matches them);
- ``("form", "amount")``: ``application/x-www-form-urlencoded`` fields;
- ``("query", "limit")`` and ``("header", "x-page")``: parameters by name (header names
  lower-case).

The OpenAPI stage publishes them (``ctx.annotations["openapi.constrained_fields"]``) only
for the parts of a request that validated; the WAF stage then drops its findings on them.

What counts as constrained, read from the *rewritten* 2020-12 schemas (what the validators
really enforce, after the dialect fixes and ``$ref`` handling of :mod:`dijk.openapi.schema`):

- ``type`` restricted to ``integer``, ``number``, ``boolean`` and ``null``;
- ``enum`` / ``const`` whose values are all scalars, strings among them *plain* (at most 64
  letters, digits, space, ``_``, ``-``, ``.``): a value that passed is one the API's owner
  wrote, not one the client chose;
- ``format`` ``uuid``, ``date`` or ``date-time`` (jsonschema-rs checks formats here:
  ``validate_formats=True``). Not ``email``: RFC 5322 local parts accept ``admin'--`` and
  quoted strings (``"<script>"@example.org``), so a valid address can carry a payload;
- a ``pattern`` of one anchored ASCII class (``^[A-Za-z0-9_-]+$``, ``{m,n}`` counts too).

Composition: ``allOf`` (and a ``$ref`` beside other keywords) adds up, since every member
must hold; ``anyOf``/``oneOf`` constrain a field only when every branch does (a branch
that cannot be an object or array has no fields to leave open); ``not``, ``if``/``then``
(the discriminator rewrite), ``patternProperties`` and ``additionalProperties`` constrain
nothing here. Recursive schemas stop at the first repeat; sets are bounded.

Property and parameter names holding ``[`` or ``]`` are never constrained: the detector
matches ``[n]`` as ``[*]``, and such a name could then stand for other fields.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any

from dijk.detect.content import kind_of_schema
from dijk.detect.leaves import json_key_path
from dijk.openapi.params import Parameter, Shape

__all__ = [
    "ANNOTATION",
    "CONTENT_ANNOTATION",
    "NOTHING",
    "SAFE_FORMATS",
    "ConstraintFinder",
    "Field",
    "plain_form_names",
    "plain_query_names",
]

#: The annotation the OpenAPI stage fills and the WAF stage reads.
ANNOTATION = "openapi.constrained_fields"
#: Body fields whose schema declares a kind of text (prose, markdown, code, html), for a
#: body that conformed: ``{("json", "$.description"): "markdown"}``.
CONTENT_ANNOTATION = "openapi.content_kinds"

Field = tuple[str, str]
NOTHING: frozenset[Field] = frozenset()

SAFE_FORMATS = frozenset({"uuid", "date", "date-time"})
_SCALAR_TYPES = frozenset({"integer", "number", "boolean", "null"})
_PLAIN = re.compile(r"[A-Za-z0-9_. -]{0,64}")
_PLAIN_PATTERN = re.compile(
    r"\^\[(?:A-Z|a-z|0-9|_|\\-)+-?\](?:[+*]|\{[0-9]{1,4}(?:,[0-9]{0,4})?\})\$"
)
_DEFS = "#/$defs/"
_ANY_PATH: frozenset[str] = frozenset()
#: Most fields kept per schema (a document's own nesting can multiply them).
MAX_FIELDS = 1024
MAX_DEPTH = 32


def _plain_value(value: Any) -> bool:
    if value is None or isinstance(value, bool | int | float):
        return True
    return isinstance(value, str) and _PLAIN.fullmatch(value) is not None


def _safe_name(name: str) -> bool:
    return "[" not in name and "]" not in name


class ConstraintFinder:
    """Constrained field paths of the schemas in one rewritten ``$defs`` map.

    A *suffix* is a path relative to the value a schema describes: ``""`` for the value
    itself, ``.amount``, ``["x-id"]``, ``[*].id``. Results per ``$defs`` entry are kept, so
    each shared schema is analysed once per document.
    """

    def __init__(self, defs: dict[str, Any]) -> None:
        self._defs = defs
        self._memo: dict[str, frozenset[str]] = {}
        self._active: set[str] = set()
        self._containers: dict[str, bool] = {}
        self._checking: set[str] = set()

    # ---- per operation -----------------------------------------------------------------
    def body(self, entry: str, shape: Shape) -> tuple[frozenset[Field], frozenset[Field]]:
        """The constrained fields of a request body entry: (JSON fields, form fields)."""
        suffixes = self.suffixes({"$ref": _DEFS + entry})
        if not suffixes:
            return NOTHING, NOTHING
        json_fields = frozenset(("json", "$" + suffix) for suffix in suffixes)
        form_fields: set[Field] = set()
        for suffix in suffixes:
            name = _top_level_name(suffix)
            if name is not None:
                form_fields.add(("form", name))
                continue
            if suffix.endswith("[*]"):
                name = _top_level_name(suffix[:-3])
                # A form field is read as a list only when its shape says array.
                if name is not None and shape.properties.get(name, Shape()).is_array:
                    form_fields.add(("form", name))
        return json_fields, frozenset(form_fields)

    def parameters(
        self, location: str, parameters: Iterable[Parameter], entry: str | None
    ) -> frozenset[Field]:
        """Query or header parameters whose every valid value is harmless.

        Scalars and arrays of scalars only: objects (``deepObject``, exploded ``form``
        objects whose properties are query names, keyed ``simple`` values) and JSON
        ``content`` parameters are read in ways the detector's one value per name does
        not mirror.
        """
        if entry is None:
            return NOTHING
        schema = self._defs.get(entry)
        properties = schema.get("properties") if isinstance(schema, dict) else None
        if not isinstance(properties, dict):
            return NOTHING
        found: set[Field] = set()
        for parameter in parameters:
            shape = parameter.shape
            if (
                parameter.json_content
                or parameter.style == "deepObject"
                or shape.is_object
                or not _safe_name(parameter.key)
            ):
                continue
            suffixes = self.suffixes(properties.get(parameter.key))
            if "" in suffixes or (shape.is_array and "[*]" in suffixes):
                found.add((location, parameter.key))
        return frozenset(found)

    def content_kinds(self, entry: str) -> dict[str, str]:
        """Relative paths of a body entry whose schema declares a kind of text
        (``x-dijk-content``, ``contentMediaType``, ``format``; see
        :mod:`dijk.detect.content`), with that kind."""
        return self._kinds({"$ref": _DEFS + entry}, 0, set())

    def _kinds(self, schema: Any, depth: int, active: set[str]) -> dict[str, str]:
        if not isinstance(schema, dict) or depth > MAX_DEPTH:
            return {}
        found: dict[str, str] = {}
        own = kind_of_schema(
            schema.get("x-dijk-content"), schema.get("contentMediaType"), schema.get("format")
        )
        if own is not None:
            found[""] = own
        ref = schema.get("$ref")
        if isinstance(ref, str) and ref.startswith(_DEFS) and ref not in active:
            active.add(ref)
            for suffix, kind in self._kinds(
                self._defs.get(ref[len(_DEFS) :]), depth + 1, active
            ).items():
                found.setdefault(suffix, kind)
            active.discard(ref)
        nested = _nested(schema)
        for keyword in ("allOf", "anyOf", "oneOf"):
            members = schema.get(keyword)
            if isinstance(members, list):
                nested.extend(("", member) for member in members)
        for head, sub in nested:
            for suffix, kind in self._kinds(sub, depth + 1, active).items():
                found.setdefault(head + suffix, kind)
        if len(found) > MAX_FIELDS:
            found = dict(sorted(found.items())[:MAX_FIELDS])
        return found

    # ---- analysis ----------------------------------------------------------------------
    def suffixes(self, schema: Any, depth: int = 0) -> frozenset[str]:
        """Relative paths that every instance valid against ``schema`` keeps harmless."""
        if not isinstance(schema, dict) or depth > MAX_DEPTH:
            return _ANY_PATH
        found: set[str] = set()
        if _safe_value(schema):
            found.add("")
        ref = schema.get("$ref")
        if isinstance(ref, str):
            found.update(self._ref(ref, depth))
        for head, sub in _nested(schema):
            found.update(head + suffix for suffix in self.suffixes(sub, depth + 1))
        members = schema.get("allOf")
        if isinstance(members, list):
            for member in members:
                found.update(self.suffixes(member, depth + 1))
        for keyword in ("anyOf", "oneOf"):
            members = schema.get(keyword)
            if isinstance(members, list) and members:
                found.update(self._every_branch(members, depth + 1))
        if len(found) > MAX_FIELDS:
            found = set(sorted(found, key=lambda path: (len(path), path))[:MAX_FIELDS])
        return frozenset(found)

    def _every_branch(self, members: list[Any], depth: int) -> set[str]:
        itself = True
        children: set[str] | None = None
        for member in members:
            suffixes = self.suffixes(member, depth)
            itself = itself and "" in suffixes
            if not self._may_contain(member, depth):
                continue  # no object or array: no field of it is left open
            below = {suffix for suffix in suffixes if suffix}
            children = below if children is None else children & below
        result = children or set()
        if itself:
            result.add("")
        return result

    def _ref(self, ref: str, depth: int) -> frozenset[str]:
        if not ref.startswith(_DEFS):
            return _ANY_PATH
        name = ref[len(_DEFS) :]
        known = self._memo.get(name)
        if known is not None:
            return known
        if name in self._active:
            return _ANY_PATH  # recursion: stop here (what is found stays true)
        self._active.add(name)
        try:
            found = self.suffixes(self._defs.get(name), depth + 1)
        finally:
            self._active.discard(name)
        self._memo[name] = found
        return found

    def _may_contain(self, schema: Any, depth: int) -> bool:
        """Whether a valid instance can be an object or an array (False only when sure)."""
        if schema is False:
            return False
        if not isinstance(schema, dict) or depth > MAX_DEPTH:
            return True
        kinds = schema.get("type")
        if isinstance(kinds, str):
            kinds = [kinds]
        if isinstance(kinds, list) and not any(kind in ("object", "array") for kind in kinds):
            return False
        enum = schema.get("enum")
        if isinstance(enum, list) and not any(isinstance(item, dict | list) for item in enum):
            return False
        if "const" in schema and not isinstance(schema["const"], dict | list):
            return False
        ref = schema.get("$ref")
        if isinstance(ref, str) and ref.startswith(_DEFS):
            name = ref[len(_DEFS) :]
            known = self._containers.get(name)
            if known is None and name not in self._checking:
                self._checking.add(name)
                try:
                    known = self._may_contain(self._defs.get(name), depth + 1)
                finally:
                    self._checking.discard(name)
                self._containers[name] = known
            if known is False:
                return False
        members = schema.get("allOf")
        if isinstance(members, list) and any(
            not self._may_contain(member, depth + 1) for member in members
        ):
            return False
        for keyword in ("anyOf", "oneOf"):
            members = schema.get(keyword)
            if (
                isinstance(members, list)
                and members
                and not any(self._may_contain(member, depth + 1) for member in members)
            ):
                return False
        return True


def _nested(schema: dict[str, Any]) -> list[tuple[str, Any]]:
    """(path prefix, schema) of the properties (by safe name) and of the items of every
    array element (``[*]``; not when ``prefixItems`` gives each position its own)."""
    nested: list[tuple[str, Any]] = []
    properties = schema.get("properties")
    if isinstance(properties, dict):
        for name, sub in properties.items():
            if isinstance(name, str) and _safe_name(name):
                nested.append((json_key_path("", name), sub))
    items = schema.get("items")
    if isinstance(items, dict) and "prefixItems" not in schema:
        nested.append(("[*]", items))
    return nested


def _safe_value(schema: dict[str, Any]) -> bool:
    """Whether this schema's own keywords keep the value itself harmless."""
    kinds = schema.get("type")
    if isinstance(kinds, str):
        kinds = [kinds]
    if isinstance(kinds, list) and kinds and all(kind in _SCALAR_TYPES for kind in kinds):
        return True
    if "const" in schema and _plain_value(schema["const"]):
        return True
    enum = schema.get("enum")
    if isinstance(enum, list) and enum and all(_plain_value(item) for item in enum):
        return True
    form = schema.get("format")
    if isinstance(form, str) and form in SAFE_FORMATS:
        return True
    pattern = schema.get("pattern")
    return isinstance(pattern, str) and _PLAIN_PATTERN.fullmatch(pattern) is not None


def _top_level_name(suffix: str) -> str | None:
    """The property name of a one-step suffix (``.name`` or ``["na-me"]``), else None."""
    if suffix.startswith("."):
        name = suffix[1:]
        return name if name.isidentifier() else None
    if suffix.startswith('["') and suffix.endswith('"]'):
        try:
            name = json.loads(suffix[1:-1])
        except ValueError:
            return None
        if isinstance(name, str) and json_key_path("", name) == suffix:
            return name
    return None


def plain_query_names(query: str) -> bool:
    """Whether the detector reads the query's parameter names as the validator did.

    The detector decodes ``%uXXXX`` and over-long UTF-8 (``%c1%ac`` is ``l``) where
    ``parse_qsl`` does not, so ``%c1%acimit`` would be ``limit`` to one and not the other.
    Names without ``%`` in an ASCII query read the same in both.
    """
    if not query.isascii():
        return False
    if "%" not in query:
        return True
    return all("%" not in chunk.partition("=")[0] for chunk in query.split("&"))


def plain_form_names(body: bytes) -> bool:
    """The same for a form body, which the validator decodes strictly (bad UTF-8 is
    refused there): only ``%uXXXX`` escapes read differently."""
    return b"%u" not in body and b"%U" not in body
