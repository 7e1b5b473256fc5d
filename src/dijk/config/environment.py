"""``DIJK_*`` environment variables that override configuration keys.

``DIJK_LIMITS__MAX_BODY_BYTES=1048576`` sets ``limits.max_body_bytes``: the part after
``DIJK_`` is the key's path with ``__`` between levels, any case. Map keys are matched
case-insensitively against the file's (``DIJK_UPSTREAMS__BANK__URL``; a new one is taken in
lower case) and list items by index (``DIJK_ROUTES__0__UPSTREAM``). A value is the text as
given — the models convert ``"1048576"``, ``"true"``, ``"2.5"`` as they would from YAML —
except ``null`` (no value) and values starting with ``[`` or ``{``, read as YAML flow
collections (``DIJK_TRUSTED_PROXIES=[10.0.0.0/8]``).

A variable whose first part names no top-level key and that has no ``__`` is not an
override (``DIJK_ADMIN_TOKEN`` is the admin token, named by ``admin.token_env``); one with
``__`` under an unknown key is an error naming the variable and the closest key, as is an
index past the end of a list or a key under a plain value. Overrides apply after the file
is read, before validation, so every model check and cross-check applies to them too.
"""

from __future__ import annotations

import difflib
import re
import types
import typing
from collections.abc import Mapping
from typing import Any

import yaml
from pydantic import BaseModel

PREFIX = "DIJK_"
ENVIRONMENT = "environment"  # the "file" of issues about variables
_MISSING_ENV = re.compile(r"^environment variable \S+ is not set$")


def is_missing_variable(message: str) -> bool:
    """Whether a configuration issue only says a secret's variable is unset
    (``dijk config validate --no-env`` ignores those)."""
    return bool(_MISSING_ENV.match(message))


def apply_overrides(
    data: dict[str, Any], model: type[BaseModel], environ: Mapping[str, str]
) -> tuple[list[str], list[tuple[str, str]]]:
    """Set the overridden keys in ``data`` (in place); the variables applied, and
    ``(variable, message)`` for each one refused."""
    applied: list[str] = []
    problems: list[tuple[str, str]] = []
    for variable in sorted(environ):
        if not variable.startswith(PREFIX) or len(variable) == len(PREFIX):
            continue
        parts = variable[len(PREFIX) :].split("__")
        if parts[0].lower() not in model.model_fields and len(parts) == 1:
            continue  # not an override: a secret or setting of its own (DIJK_ADMIN_TOKEN)
        problem = _apply(data, model, parts, environ[variable])
        if problem is None:
            applied.append(variable)
        else:
            problems.append((variable, problem))
    return applied, problems


def _apply(data: dict[str, Any], model: type[BaseModel], parts: list[str], raw: str) -> str | None:
    node: Any = data
    kind: Any = model
    where = ""
    for position, part in enumerate(parts):
        last = position == len(parts) - 1
        if not part:
            return "empty key (two '__' in a row, or a trailing '__')"
        if isinstance(kind, type) and issubclass(kind, BaseModel):
            key = part.lower()
            if key not in kind.model_fields:
                close = difflib.get_close_matches(key, list(kind.model_fields), 1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                return f"unknown key {key!r}{' in ' + where if where else ''}{hint}"
            child = _unwrap(kind.model_fields[key].annotation)
        elif isinstance(kind, tuple) and kind[0] == "dict":
            existing = [k for k in node if isinstance(k, str) and k.lower() == part.lower()]
            key = existing[0] if existing else part.lower()
            child = kind[1]
        elif isinstance(kind, tuple) and kind[0] == "list":
            if not part.isdigit() or int(part) >= len(node):
                return f"{where} has no item {part} (it has {len(node)})"
            index = int(part)
            if last:
                node[index] = _value(raw)
                return None
            if not isinstance(node[index], dict | list):
                return f"{where}[{index}] is not a mapping"
            node, kind, where = node[index], kind[1], f"{where}[{index}]"
            continue
        else:
            return f"{where} is a plain value: it has no key {part.lower()!r}"
        if last:
            node[key] = _value(raw)
            return None
        if not isinstance(node.get(key), dict | list):
            node[key] = [] if isinstance(child, tuple) and child[0] == "list" else {}
        node, kind, where = node[key], child, f"{where}.{key}" if where else key
    return None


def _unwrap(annotation: Any) -> Any:
    """A model class, ``("dict", inner)``, ``("list", inner)`` or None for a plain value."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _unwrap(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        for argument in typing.get_args(annotation):
            found = _unwrap(argument)
            if found is not None:
                return found
        return None
    if origin is dict:
        return ("dict", _unwrap(typing.get_args(annotation)[1]))
    if origin is list:
        return ("list", _unwrap(typing.get_args(annotation)[0]))
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return None


def _value(raw: str) -> Any:
    text = raw.strip()
    if text in ("null", "~"):
        return None
    if text.startswith(("[", "{")):
        try:
            return yaml.safe_load(text)
        except yaml.YAMLError:
            return raw  # the model says what is wrong with it
    return raw
