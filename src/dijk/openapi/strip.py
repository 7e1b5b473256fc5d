"""Remove from a response what its schema does not declare (excessive data exposure).

``response: strip`` rewrites a JSON response body so that only declared properties leave
the gateway: a property the schema does not name is dropped, and so is a ``writeOnly``
one (a password hash an upstream echoes by mistake). Objects that declare no properties
(free-form) and those that allow more (``additionalProperties: true`` or a schema,
``patternProperties``) keep their other properties - the document allows them.

Composition: ``allOf`` members add their properties together; ``oneOf``/``anyOf`` with a
``discriminator`` use the branch its value names; without one, the properties of every
branch are kept (the branch cannot be known without validating, and keeping a property
some branch declares never exposes what the document does not describe).

Strippers are built once per response schema at load, recursive schemas included.
"""

from __future__ import annotations

from typing import Any

from dijk.openapi.schema import resolve_pointer

__all__ = ["Stripper", "StripperBuilder"]

MAX_DEPTH = 256


class Stripper:
    __slots__ = (
        "additional",
        "declares",
        "discriminator",
        "items",
        "keep_other",
        "properties",
        "write_only",
    )

    def __init__(self) -> None:
        self.properties: dict[str, Stripper] = {}
        self.write_only: set[str] = set()
        self.additional: Stripper | None = None
        self.keep_other = False
        self.declares = False
        self.items: Stripper | None = None
        self.discriminator: tuple[str, dict[str, Stripper]] | None = None

    def strip(self, value: Any, removed: list[str], depth: int = 0, where: str = "") -> Any:
        """``value`` without undeclared and write-only properties; names go to ``removed``."""
        if depth > MAX_DEPTH:
            return value
        if isinstance(value, dict):
            shape = self
            if self.discriminator is not None:
                prop, branches = self.discriminator
                branch = branches.get(str(value.get(prop)))
                if branch is not None:
                    shape = branch
            if not shape.declares:
                if not shape.write_only:
                    return value
                return _without(value, shape.write_only, removed, where)
            out: dict[str, Any] = {}
            for key, item in value.items():
                if key in shape.write_only:
                    removed.append(f"{where}/{key}")
                    continue
                child = shape.properties.get(key)
                if child is None:
                    child = shape.additional
                if child is not None:
                    out[key] = child.strip(item, removed, depth + 1, f"{where}/{key}")
                elif shape.keep_other:
                    out[key] = item
                else:
                    removed.append(f"{where}/{key}")
            return out
        if isinstance(value, list) and self.items is not None:
            items = self.items
            return [
                items.strip(item, removed, depth + 1, f"{where}/{index}")
                for index, item in enumerate(value)
            ]
        return value


def _free_form(schema: Any) -> bool:
    """An alternative that allows any object (``{type: object}``): nothing to strip."""
    return (
        isinstance(schema, dict)
        and schema.get("type") == "object"
        and not schema.get("properties")
        and schema.get("additionalProperties") is not False
        and not any(key in schema for key in ("$ref", "allOf", "anyOf", "oneOf"))
    )


def _without(value: dict[str, Any], names: set[str], removed: list[str], where: str) -> Any:
    out = {}
    for key, item in value.items():
        if key in names:
            removed.append(f"{where}/{key}")
        else:
            out[key] = item
    return out


class StripperBuilder:
    def __init__(self, root: dict[str, Any], dialect: str) -> None:
        self.root = root
        self.dialect = dialect
        self._by_ref: dict[str, Stripper] = {}

    def build(self, schema: Any) -> Stripper:
        return self._build(schema, 0)

    def _build(self, schema: Any, depth: int) -> Stripper:
        if isinstance(schema, dict) and isinstance(schema.get("$ref"), str):
            ref = schema["$ref"]
            known = self._by_ref.get(ref)
            if known is not None and (self.dialect != "3.1" or len(schema) == 1):
                return known
            if self.dialect != "3.1" or len(schema) == 1:
                stripper = Stripper()
                self._by_ref[ref] = stripper
                self._fill(stripper, self._target(ref), depth)
                return stripper
        stripper = Stripper()
        self._fill(stripper, schema, depth)
        return stripper

    def _target(self, ref: str) -> Any:
        try:
            return resolve_pointer(self.root, ref)
        except KeyError:
            return {}

    def _fill(self, stripper: Stripper, schema: Any, depth: int) -> None:
        if schema is True or not isinstance(schema, dict) or depth > 64:
            stripper.keep_other = True
            return
        ref = schema.get("$ref")
        if isinstance(ref, str):
            if self.dialect != "3.1":
                self._merge(stripper, self._build({"$ref": ref}, depth + 1))
                return
            self._merge(stripper, self._build({"$ref": ref}, depth + 1))
        properties = schema.get("properties")
        if isinstance(properties, dict):
            stripper.declares = True
            for name, sub in properties.items():
                if self._write_only(sub):
                    stripper.write_only.add(name)
                else:
                    stripper.properties[name] = self._build(sub, depth + 1)
        additional = schema.get("additionalProperties")
        if additional is True or (isinstance(additional, dict) and not additional):
            stripper.keep_other = True
        elif isinstance(additional, dict):
            stripper.additional = self._build(additional, depth + 1)
        if isinstance(schema.get("patternProperties"), dict):
            stripper.keep_other = True
        items = schema.get("items")
        if isinstance(items, dict):
            stripper.items = self._build(items, depth + 1)
        for keyword in ("allOf", "anyOf", "oneOf"):
            members = schema.get(keyword)
            if isinstance(members, list):
                for member in members:
                    self._merge(stripper, self._build(member, depth + 1))
                    if keyword != "allOf" and _free_form(member):
                        stripper.keep_other = True
        discriminator = schema.get("discriminator")
        if isinstance(discriminator, dict) and isinstance(discriminator.get("propertyName"), str):
            branches = self._branches(schema, discriminator, depth)
            if branches:
                stripper.discriminator = (discriminator["propertyName"], branches)

    def _branches(
        self, schema: dict[str, Any], discriminator: dict[str, Any], depth: int
    ) -> dict[str, Stripper]:
        refs: dict[str, str] = {}
        mapping = discriminator.get("mapping")
        if isinstance(mapping, dict):
            for value, target in mapping.items():
                if isinstance(target, str):
                    refs[str(value)] = target if "#" in target else self._named(target)
        for keyword in ("oneOf", "anyOf"):
            members = schema.get(keyword)
            for member in members if isinstance(members, list) else []:
                if isinstance(member, dict) and isinstance(member.get("$ref"), str):
                    ref = member["$ref"]
                    if ref not in refs.values():
                        refs.setdefault(ref.rsplit("/", 1)[-1], ref)
        return {
            value: self._build({"$ref": ref}, depth + 1)
            for value, ref in refs.items()
            if ref.startswith("#") and self._resolves(ref)
        }

    def _resolves(self, ref: str) -> bool:
        try:
            resolve_pointer(self.root, ref)
        except (KeyError, ValueError):
            return False
        return True

    def _named(self, name: str) -> str:
        return ("#/definitions/" if self.dialect == "2.0" else "#/components/schemas/") + name

    def _merge(self, into: Stripper, other: Stripper) -> None:
        if other is into:
            return
        into.declares = into.declares or other.declares
        into.keep_other = into.keep_other or other.keep_other
        for name, child in other.properties.items():
            into.properties.setdefault(name, child)
        into.write_only.update(other.write_only)
        into.additional = into.additional or other.additional
        into.items = into.items or other.items
        into.discriminator = into.discriminator or other.discriminator

    def _write_only(self, schema: Any, depth: int = 0) -> bool:
        if not isinstance(schema, dict) or depth > 16:
            return False
        if schema.get("writeOnly") is True:
            return True
        ref = schema.get("$ref")
        if isinstance(ref, str):
            return self._write_only(self._target(ref), depth + 1)
        return False
