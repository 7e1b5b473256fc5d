"""The configuration reference, generated from the models' field descriptions."""

from __future__ import annotations

import types
import typing
from typing import Any

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from dijk.config.models import DijkConfig


def _type_name(annotation: Any) -> str:
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Literal:
        return " \\| ".join(repr(arg) for arg in args)
    if origin in (typing.Union, types.UnionType):
        return " \\| ".join(_type_name(arg) for arg in args if arg is not type(None)) + (
            " \\| null" if type(None) in args else ""
        )
    if origin is typing.Annotated:
        return _type_name(args[0])
    if origin is list:
        return f"list[{_type_name(args[0])}]"
    if origin is dict:
        return f"map[{_type_name(args[1])}]"
    if isinstance(annotation, type):
        return annotation.__name__
    return str(annotation)


def _models(annotation: Any) -> list[type[BaseModel]]:
    found: list[type[BaseModel]] = []
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    for arg in typing.get_args(annotation):
        found.extend(_models(arg))
    return found


def render_reference() -> str:
    lines = ["| key | type | default | description |", "|---|---|---|---|"]
    seen: set[type[BaseModel]] = set()

    def walk(model: type[BaseModel], prefix: str) -> None:
        if model in seen and prefix:
            pass
        seen.add(model)
        for name, info in model.model_fields.items():
            key = f"{prefix}{name}"
            if info.default is not PydanticUndefined:
                default = "" if info.default is None else f"`{info.default!r}`"
            elif info.default_factory is not None:
                default = "(see below)" if _models(info.annotation) else "`[]`"
            else:
                default = "**required**"
            description = (info.description or "").replace("|", "\\|")
            lines.append(f"| `{key}` | {_type_name(info.annotation)} | {default} | {description} |")
            for sub in _models(info.annotation):
                origin = typing.get_origin(info.annotation)
                suffix = "[]." if origin is list else ".<name>." if origin is dict else "."
                walk(sub, key + suffix)

    walk(DijkConfig, "")
    return "\n".join(lines)
