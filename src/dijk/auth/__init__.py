"""Identity machinery behind the ``authn_*`` stages: JWT/JWKS, introspection, revocation, mTLS.

This package holds what the authentication stages need but what is not itself a stage:
verifying a JWS against a key set compiled at load, an RFC 7662 introspection client with
its caches, the revocation list behind ``storage.url`` and the client-certificate binding.
It imports ``config/``, ``storage/`` and ``pipeline/`` (for ``DependencyUnavailable``),
never ``proxy/`` or ``stages/``. Nothing here logs or returns a credential: failures carry
a reason code and a fixed, credential-free detail.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class AuthFailure:
    """Why a presented credential was refused (a value, never an exception).

    ``error`` is the RFC 6750 error code for a ``Bearer`` challenge (``invalid_token``,
    ``invalid_request``) or ``None`` where no Bearer challenge applies. ``detail`` is shown
    to the client: it is fixed text and never contains any part of the credential.
    """

    reason: str
    detail: str
    error: str | None = "invalid_token"
    status: int = 401


__all__ = ["AuthFailure"]
