"""Where credentials travel in a request, and ``hide_credentials``: they stop at the gateway.

A route with ``hide_credentials: true`` forwards none of the credentials of the methods it
accepts. Each method stage removes its own credential location from the request it hands
on — ``authn_api_key`` the key header and, if configured, the key query parameter;
``authn_jwt`` and ``authn_introspection`` the ``Authorization`` header — as soon as the
caller is identified: when its own credential identified the caller, and also when an
earlier method already had (the credential was sent along but never checked). So an
unchecked second credential never reaches the upstream either, where it could be logged or,
worse, trusted. ``authn_mtls`` has nothing to remove: the certificate ends at the TLS
listener. A request that no method identified is refused by ``authn_required`` and goes
nowhere.

The removal happens in the authentication stages (priorities 6040-6010), after the caller
is identified and before any later stage or the upstream sees the request; ``ctx.identity``
(consumer, method, hashed credential id) is untouched, so authorization, rate limits and
the audit log still know who called.

Query strings are edited, never re-encoded: the parameters that stay keep their bytes and
their order (repeated names, percent-encoding, ``+``, empty values, separators).
"""

from __future__ import annotations

from urllib.parse import unquote_to_bytes

from dijk.pipeline.context import RequestContext

AUTHORIZATION = "authorization"


def hides_credentials(ctx: RequestContext) -> bool:
    """True when the request's route says ``hide_credentials: true``."""
    route = ctx.route
    return route is not None and route.config.hide_credentials


def spellings_of(key: str, name: str) -> bool:
    """Whether the field name ``key`` is ``name`` (both lower-case) or ``name`` with some
    ``-`` written as ``_``: CGI/WSGI upstreams (PHP, Django, Rails behind Rack...) read
    ``X_API_Key`` and ``X-API-Key`` as one field."""
    return key == name or ("_" in key and key.replace("_", "-") == name)


def variant_present(ctx: RequestContext, name: str) -> bool:
    """Whether the request carries ``name`` (lower-case, with ``-``) spelt with ``_``."""
    return "-" in name and any(
        "_" in key and key != name and spellings_of(key, name) for key, _ in ctx.headers
    )


def drop_header(ctx: RequestContext, name: str) -> None:
    """Remove every field called ``name`` (lower-case), in any spelling that an upstream
    may read as ``name`` (:func:`spellings_of`), from the request sent upstream.

    The list is rebuilt, not edited in place: ``ctx.headers`` starts out as the server's
    own list, which must keep what the client sent.
    """
    headers = ctx.headers
    for key, _ in headers:
        if spellings_of(key, name):
            ctx.headers = [field for field in headers if not spellings_of(field[0], name)]
            return


def query_values(query: str, name: str) -> list[str]:
    """The values of the parameter ``name`` in a raw query string.

    Names and values are form-decoded (``%XX``, and ``+`` is a space) to the bytes they
    stand for, as ``str`` decoded as latin-1 — like header values, byte for byte. A name
    matches after decoding (``api%5Fkey`` is ``api_key``), exactly and case-sensitively; a
    parameter without ``=`` has the empty value.
    """
    if not query or (name not in query and "%" not in query):
        return []
    wanted = name.encode("ascii")
    values: list[str] = []
    for piece in query.split("&"):
        key, _, value = piece.partition("=")
        if _decoded(key) == wanted:
            values.append(_decoded(value).decode("latin-1"))
    return values


# PHP stores a parameter under its name with leading spaces dropped and ' ', '.' and an
# unmatched '[' turned into '_', and 'name[...]' as an array under 'name'; Rails and others
# read 'name[]' alike. So 'api.key', 'api+key' and 'api_key[]' all reach such an upstream as
# 'api_key'.
_FORM_NAME = bytes.maketrans(b" .[", b"___")


def _form_name(raw: bytes) -> bytes:
    name = raw.lstrip(b" ")
    bracket = name.find(b"[")
    if bracket > 0 and b"]" in name[bracket:]:
        name = name[:bracket]
    return name.translate(_FORM_NAME)


def param_variant_present(query: str, name: str) -> bool:
    """Whether ``query`` has a parameter that is not ``name`` but that a form parser
    upstream (PHP, Rails) stores as ``name``: ``api.key``, ``api+key``, ``api_key[]``..."""
    if not query:
        return False
    wanted = name.encode("ascii")
    canonical = _form_name(wanted)
    for piece in query.split("&"):
        key = _decoded(piece.partition("=")[0])
        if key != wanted and _form_name(key) == canonical:
            return True
    return False


def without_param(query: str, name: str) -> str:
    """``query`` without any occurrence of the parameter ``name`` (matched as in
    :func:`query_values`) nor of a spelling a form parser stores as ``name``
    (:func:`param_variant_present`); every other piece is kept as sent, in order."""
    if not query:
        return query
    canonical = _form_name(name.encode("ascii"))
    pieces = query.split("&")
    kept = [piece for piece in pieces if _form_name(_decoded(piece.partition("=")[0])) != canonical]
    if len(kept) == len(pieces):
        return query
    return "&".join(kept)


def _decoded(text: str) -> bytes:
    raw = text.encode("latin-1", "replace")
    if b"%" not in raw and b"+" not in raw:
        return raw
    return unquote_to_bytes(raw.replace(b"+", b" "))
