"""The endpoint a request is filed under in the data map: method plus path *template*.

Paths carry identifiers (``/accounts/42``, sometimes an e-mail address), so the data map
never stores a raw path. In order of preference:

1. a template another stage worked out (``ctx.annotations["path_template"]``, or the
   OpenAPI stage's operation, ``ctx.annotations["openapi_operation"]``);
2. the route's own exact path or ``path_template`` (``/api/v1/accounts/{id}``);
3. for a prefix route: the prefix, then each further segment kept only if it looks like a
   static resource name (lower-case ASCII letters, ``-`` and ``_``, at most 32, or a
   version such as ``v1``), every other segment written ``{id}``. A name that is all
   lower-case letters would be kept (``/users/jansen``); routes whose paths hold names
   should declare a ``path_template``.
"""

from __future__ import annotations

import re
from typing import Final

__all__ = ["endpoint_template"]

_STATIC: Final = re.compile(r"[a-z][a-z_-]{0,31}|v[0-9]{1,2}")  # names, and versions (v1)
_MAX_SEGMENTS: Final = 32
_MAX_HINT: Final = 512


def endpoint_template(kind: str, template: str, path: str, hint: object = None) -> str:
    """The path template for the data map (see the module docstring)."""
    if isinstance(hint, str) and hint.startswith("/") and len(hint) <= _MAX_HINT:
        return hint
    if kind in ("exact", "template"):
        return template
    prefix = "" if template == "/" else template
    rest = path[len(prefix) :] if path.startswith(prefix) else path
    segments = rest.split("/")
    if len(segments) > _MAX_SEGMENTS:
        segments = [*segments[: _MAX_SEGMENTS - 1], "{rest}"]
    kept = [
        segment if not segment or segment == "{rest}" or _STATIC.fullmatch(segment) else "{id}"
        for segment in segments
    ]
    result = prefix + "/".join(kept)
    return result if result.startswith("/") else "/" + result
