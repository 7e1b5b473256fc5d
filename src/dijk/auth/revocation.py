"""Revoked credentials behind ``storage.url``: checked per request, changed without restart.

A revocation is one key in the shared store, so every gateway instance on the same Redis
sees it at once (``memory://`` is one process). Keys never contain a credential:

- ``dijk:revoked:cred:<credential_id>``: an API key (``key:<16 hex of its SHA-256>``), a
  bearer token (``tok:<16 hex of its SHA-256>``) or a client certificate (``cert:...``);
- ``dijk:revoked:jti:<32 hex of SHA-256(jti)>``: one JWT by its ``jti`` claim.

``memory://`` stores are shared per URL for the life of the process, so a configuration
reload keeps the revocations made through the admin API (a new store would forget them).
"""

from __future__ import annotations

import hashlib
import re

import orjson
import structlog

from dijk.pipeline.stage import DependencyUnavailable
from dijk.storage import MemoryStorage, Storage, StorageUnavailable, open_storage, storage_scheme

log = structlog.get_logger("dijk.auth.revocation")

PREFIX = "dijk:revoked:"
_MEMORY: dict[str, MemoryStorage] = {}
_REVOKED = b"1"


def credential_for_key_digest(sha256_hex: str) -> str:
    """The credential id of an API key, from the hex SHA-256 digest of the key."""
    return "key:" + sha256_hex.lower()[:16]


def credential_for_token(token: str) -> str:
    """The credential id of a bearer token (JWT or opaque)."""
    return "tok:" + hashlib.sha256(token.encode("latin-1")).hexdigest()[:16]


def credential_for_token_digest(sha256_hex: str) -> str:
    return "tok:" + sha256_hex.lower()[:16]


def _jti_key(jti: str) -> str:
    return PREFIX + "jti:" + hashlib.sha256(jti.encode()).hexdigest()[:32]


class RevocationList:
    """Revoke and look up credentials; shared by every route of one configuration.

    Stages ``attach`` when built and ``detach`` when closed; a Redis connection pool is
    closed when the last stage of the configuration that opened it lets go.
    """

    def __init__(self, storage: Storage, owned: bool) -> None:
        self.storage = storage
        self._owned = owned
        self._users = 0

    @classmethod
    def from_url(cls, url: str, timeout_s: float = 0.25) -> RevocationList:
        if storage_scheme(url) == "memory":
            return cls(_MEMORY.setdefault(url, MemoryStorage(url)), owned=False)
        return cls(open_storage(url, timeout_s=timeout_s), owned=True)

    @property
    def backend(self) -> str:
        return storage_scheme(self.storage.url)

    def attach(self) -> None:
        self._users += 1

    async def detach(self) -> None:
        self._users -= 1
        if self._users <= 0 and self._owned:
            self._owned = False
            await self.storage.close()

    # ---- writes (admin API) ---------------------------------------------------------------
    async def revoke_credential(self, credential_id: str, ttl_s: float | None = None) -> None:
        await self.storage.set(PREFIX + "cred:" + credential_id, _REVOKED, ttl_s)

    async def revoke_jti(self, jti: str, ttl_s: float | None) -> None:
        await self.storage.set(_jti_key(jti), _REVOKED, ttl_s)

    # ---- reads (per request) --------------------------------------------------------------
    async def credential_revoked(self, credential_id: str) -> bool:
        """True if revoked; the store being down is a dependency fault (503, fail closed)."""
        try:
            return await self.storage.exists(PREFIX + "cred:" + credential_id)
        except StorageUnavailable:
            raise _unavailable() from None

    async def jti_revoked(self, jti: str) -> bool:
        try:
            return await self.storage.exists(_jti_key(jti))
        except StorageUnavailable:
            raise _unavailable() from None


def _unavailable() -> DependencyUnavailable:
    return DependencyUnavailable(
        "auth.revocation_unavailable",
        "The revocation list cannot be checked right now; try again shortly.",
    )


# ---- admin API requests -----------------------------------------------------------------------

_HEX64 = re.compile(r"[0-9a-fA-F]{64}")
_CREDENTIAL_ID = re.compile(r"(key|tok|cert):[0-9a-f]{16}")
MAX_TTL_S = 86_400 * 365


async def revoke_from_request(
    revocations: RevocationList, kind: str, body: bytes, default_jti_ttl_s: float
) -> tuple[int, dict[str, object]]:
    """Handle ``POST /admin/api/v1/{keys,tokens}/revoke``; (status, JSON answer).

    ``keys``: ``{"sha256": "<hex digest of the key>"}`` or ``{"credential_id": "key:..."}``
    (also ``cert:...`` for a client certificate). ``tokens``: ``{"jti": "..."}``,
    ``{"token_sha256": "<hex digest of the token>"}`` or ``{"credential_id": "tok:..."}``.
    Optional ``ttl_s``: forget the revocation after this long (default: keys forever,
    ``jti`` for the longest lifetime a token may have). The answer never holds a secret.
    """
    try:
        request = orjson.loads(body or b"{}")
    except orjson.JSONDecodeError:
        return 400, _problem("The body must be a JSON object.")
    if not isinstance(request, dict):
        return 400, _problem("The body must be a JSON object.")
    ttl = request.get("ttl_s")
    if ttl is not None and (
        isinstance(ttl, bool) or not isinstance(ttl, int | float) or not 0 < ttl <= MAX_TTL_S
    ):
        return 400, _problem(f"ttl_s must be a number of seconds in (0, {MAX_TTL_S}].")
    credential: str | None = None
    jti: str | None = None
    if kind == "keys":
        digest, given = request.get("sha256"), request.get("credential_id")
        if isinstance(digest, str) and _HEX64.fullmatch(digest):
            credential = credential_for_key_digest(digest)
        elif isinstance(given, str) and _CREDENTIAL_ID.fullmatch(given) and given[:3] != "tok":
            credential = given
        else:
            return 400, _problem("Give 'sha256' (64 hex) or 'credential_id' ('key:...').")
    else:
        digest, given, jti_value = (
            request.get("token_sha256"),
            request.get("credential_id"),
            request.get("jti"),
        )
        if isinstance(jti_value, str) and 0 < len(jti_value) <= 256:
            jti = jti_value
        elif isinstance(digest, str) and _HEX64.fullmatch(digest):
            credential = credential_for_token_digest(digest)
        elif isinstance(given, str) and _CREDENTIAL_ID.fullmatch(given) and given[:3] == "tok":
            credential = given
        else:
            return 400, _problem("Give 'jti', 'token_sha256' (64 hex) or 'credential_id'.")
    try:
        if jti is not None:
            await revocations.revoke_jti(jti, float(ttl) if ttl else default_jti_ttl_s)
        else:
            assert credential is not None
            await revocations.revoke_credential(credential, float(ttl) if ttl else None)
    except StorageUnavailable:
        return 503, _problem(
            "The revocation store is unavailable; nothing was revoked.",
            "auth.revocation_unavailable",
        )
    log.info("credential_revoked", credential_id=credential, jti=jti is not None, ttl_s=ttl)
    answer: dict[str, object] = {"revoked": True, "storage": revocations.backend}
    if credential is not None:
        answer["credential_id"] = credential
    else:
        answer["jti_sha256"] = hashlib.sha256(str(jti).encode()).hexdigest()
    return 200, answer


def _problem(detail: str, reason: str = "admin.invalid_request") -> dict[str, object]:
    return {"reason": reason, "detail": detail}
