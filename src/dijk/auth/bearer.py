"""Bearer tokens in ``Authorization`` (RFC 6750 §2.1) and the ``WWW-Authenticate`` challenges."""

from __future__ import annotations

import re

from dijk.auth import AuthFailure

REALM = "dijk"
_OWS = " \t"
# RFC 6750 b64token: the only characters a Bearer token may contain.
_B64TOKEN = re.compile(r"[A-Za-z0-9\-._~+/]+=*")
# A compact JWS: three base64url segments (the signature may be empty only for alg none,
# which is refused later with a clearer reason).
_COMPACT_JWS = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*")


def bearer_token(headers: list[tuple[str, str]]) -> str | AuthFailure | None:
    """The Bearer token, ``None`` when no Bearer credential was sent, or why it is malformed.

    An ``Authorization`` header with another scheme (Basic, ...) is not ours: ``None``.
    Several ``Authorization`` headers are refused, so that no two components in the chain
    can disagree about which one counts.
    """
    values = [value for name, value in headers if name == "authorization"]
    if not values:
        return None
    if len(values) > 1:
        return AuthFailure(
            "auth.invalid_request", "Send exactly one Authorization header.", "invalid_request"
        )
    # Only SP and HTAB are whitespace here (RFC 9110 OWS, RFC 7235 1*SP): a no-break space
    # or NEL around a token is part of it, and makes it malformed.
    scheme, _, token = values[0].strip(_OWS).partition(" ")
    if scheme.lower() != "bearer":
        return None
    token = token.strip(_OWS)
    if not token or not _B64TOKEN.fullmatch(token):
        return AuthFailure(
            "auth.invalid_request", "The bearer token is malformed.", "invalid_request"
        )
    return token


def looks_like_jws(token: str) -> bool:
    """Shape only: three dot-separated base64url segments (a JWT), not an opaque token."""
    return _COMPACT_JWS.fullmatch(token) is not None


def bearer_challenge(
    error: str | None = None, description: str | None = None, scope: str | None = None
) -> tuple[str, str]:
    """A ``WWW-Authenticate: Bearer`` header; ``description`` must be fixed text."""
    parts = [f'realm="{REALM}"']
    if error:
        parts.append(f'error="{error}"')
    if description:
        parts.append(f'error_description="{description}"')
    if scope:
        parts.append(f'scope="{scope}"')
    return ("WWW-Authenticate", "Bearer " + ", ".join(parts))


def failure_headers(failure: AuthFailure) -> tuple[tuple[str, str], ...]:
    """The Bearer challenge for a refused bearer token (RFC 6750 §3)."""
    if failure.error is None:
        return (bearer_challenge(),)
    return (bearer_challenge(failure.error, failure.detail.rstrip(".")),)
