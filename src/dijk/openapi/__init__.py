"""Positive security from the API's own OpenAPI document.

``document`` reads and checks the document, ``schema`` rewrites its schemas into JSON
Schema 2020-12, ``compiler`` builds the per-operation validators and the path trie,
``request`` checks one request or response, ``strip`` removes undeclared response data.
:func:`load_spec` ties them together, with a small cache so that a reload with an
unchanged document does not compile it again.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import TypeVar

from dijk.openapi.compiler import CompiledSpec, ResponseMode, compile_document
from dijk.openapi.document import check_document, read_document, resolve_location
from dijk.openapi.errors import SpecError, SpecIssue

__all__ = [
    "CompiledSpec",
    "SpecError",
    "SpecIssue",
    "load_spec",
    "resolve_location",
]

_CACHE_SIZE = 8
_compiled: OrderedDict[tuple[object, ...], CompiledSpec] = OrderedDict()
_checked: OrderedDict[str, None] = OrderedDict()


def load_spec(
    path: str,
    *,
    close_objects: bool = True,
    response_mode: ResponseMode = "off",
    base_path: str | None = None,
) -> CompiledSpec:
    """Read, check and compile the document at ``path``; raise :class:`SpecError`.

    Compiled documents are kept (the last few, keyed by the content of every file read
    and the options), so a reload that leaves the document alone costs one read.
    """
    document = read_document(path)
    key = (document.digest, path, close_objects, response_mode, base_path)
    cached = _compiled.get(key)
    if cached is not None:
        _compiled.move_to_end(key)
        return cached
    if document.digest not in _checked:
        check_document(document)
        _remember(_checked, document.digest, None)
    spec = compile_document(
        document, close_objects=close_objects, response_mode=response_mode, base_path=base_path
    )
    _remember(_compiled, key, spec)
    return spec


K = TypeVar("K")
V = TypeVar("V")


def _remember(cache: OrderedDict[K, V], key: K, value: V) -> None:
    cache[key] = value
    cache.move_to_end(key)
    while len(cache) > _CACHE_SIZE:
        cache.popitem(last=False)
