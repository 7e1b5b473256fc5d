"""Dashboard sessions: made by a login with the admin token, kept in memory.

A session id is 256 random bits in an ``HttpOnly``, ``SameSite=Strict`` cookie (``Secure``
when the request came over TLS); only its SHA-256 is kept, so the table does not hold a
usable cookie. Each session has its own CSRF token, compared in constant time. A session
ends after ``IDLE_S`` without use, ``LIFETIME_S`` after login, at logout, and as soon as
the admin token changes (the session remembers a digest of the token it was made with).
The table is bounded: the oldest session goes first.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Final

__all__ = ["ADMIN", "COOKIE", "LOGIN_COOKIE", "LoginThrottle", "Session", "SessionStore"]

COOKIE: Final = "dijk_ui_session"
LOGIN_COOKIE: Final = "dijk_ui_login"
IDLE_S: Final = 30 * 60
LIFETIME_S: Final = 8 * 3600
MAX_SESSIONS: Final = 1000
ADMIN: Final = frozenset({"admin"})


def digest(value: str) -> bytes:
    return hashlib.sha256(value.encode("utf-8", "surrogatepass")).digest()


@dataclass(slots=True)
class Session:
    csrf: str
    token_digest: bytes
    created: float
    last_seen: float
    label: str = field(default="")
    # A configured user's name and roles ("" and ADMIN for the admin token), and a digest
    # of the password hash they signed in with: a changed hash or roles end the session.
    user: str = ""
    roles: frozenset[str] = ADMIN
    secret: bytes = b""

    def csrf_matches(self, presented: str) -> bool:
        return hmac.compare_digest(presented.encode("utf-8", "replace"), self.csrf.encode())


class SessionStore:
    def __init__(self) -> None:
        self._sessions: OrderedDict[bytes, Session] = OrderedDict()
        self._now = time.monotonic

    def create(
        self, token: str, user: str = "", roles: frozenset[str] = ADMIN, secret: str = ""
    ) -> tuple[str, Session]:
        """A new session for a login with the admin token (``user`` empty) or as a
        configured user (``secret``: the password hash), made while ``token`` is the
        admin token; the cookie value and the session."""
        session_id = secrets.token_urlsafe(32)
        now = self._now()
        session = Session(
            secrets.token_urlsafe(32),
            digest(token),
            now,
            now,
            user=user,
            roles=roles,
            secret=digest(secret) if secret else b"",
        )
        self._sessions[digest(session_id)] = session
        while len(self._sessions) > MAX_SESSIONS:
            self._sessions.popitem(last=False)
        return session_id, session

    def get(self, session_id: str, token: str) -> Session | None:
        """The live session for a cookie value, or None (unknown, expired, token changed)."""
        if not session_id or len(session_id) > 100 or not token:
            return None
        key = digest(session_id)
        session = self._sessions.get(key)
        if session is None:
            return None
        now = self._now()
        expired = now - session.last_seen > IDLE_S or now - session.created > LIFETIME_S
        if expired or not hmac.compare_digest(session.token_digest, digest(token)):
            del self._sessions[key]
            return None
        session.last_seen = now
        self._sessions.move_to_end(key)
        return session

    def end(self, session_id: str) -> None:
        self._sessions.pop(digest(session_id), None)

    def __len__(self) -> int:
        return len(self._sessions)


class LoginThrottle:
    """At most ``limit`` failed logins per key per ``window_s``; then 429. The keys are
    the client address and, for a named user, ``user:<name>`` (so a guesser spread over
    many addresses is still held to ``limit`` tries of one user's password)."""

    def __init__(self, limit: int = 10, window_s: float = 60.0) -> None:
        self._limit = limit
        self._window = window_s
        self._failures: OrderedDict[str, list[float]] = OrderedDict()

    def blocked(self, client: str) -> bool:
        now = time.monotonic()
        recent = [t for t in self._failures.get(client, []) if now - t < self._window]
        if recent:
            self._failures[client] = recent
        else:
            self._failures.pop(client, None)
        return len(recent) >= self._limit

    def failed(self, client: str) -> None:
        self._failures.setdefault(client, []).append(time.monotonic())
        self._failures.move_to_end(client)
        while len(self._failures) > 10_000:
            self._failures.popitem(last=False)
