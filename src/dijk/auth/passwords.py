"""Password hashes of the dashboard's configured users: scrypt (``hashlib``, RFC 7914).

The stored form is ``scrypt$<log2 n>$<r>$<p>$<salt>$<hash>`` (salt and hash in unpadded
URL-safe base64), so the cost can be raised later without breaking older hashes. Plain
passwords are never accepted in the configuration: :func:`check_hash` refuses anything
that is not such a string with a cost at least :data:`MIN_LOG_N`. Checking a password
takes tens of milliseconds on purpose (run it off the event loop), and an unknown user
is checked against a dummy hash so the answer takes as long either way.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from functools import cache
from typing import Final

__all__ = ["MIN_LOG_N", "check_hash", "hash_password", "verify_password"]

LOG_N: Final = 15  # n = 32768, r = 8: 32 MiB and ~50-100 ms per check
MIN_LOG_N: Final = 14
R: Final = 8
P: Final = 1
_SALT_BYTES: Final = 16
_HASH_BYTES: Final = 32
_FORMAT: Final = re.compile(
    r"scrypt\$(?P<log_n>[0-9]{1,2})\$(?P<r>[0-9]{1,2})\$(?P<p>[0-9]{1,2})"
    r"\$(?P<salt>[A-Za-z0-9_-]{16,88})\$(?P<hash>[A-Za-z0-9_-]{43,88})"
)
MAX_PASSWORD_BYTES: Final = 1024


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _derive(password: str, salt: bytes, log_n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(
        password.encode("utf-8", "surrogatepass"),
        salt=salt,
        n=1 << log_n,
        r=r,
        p=p,
        maxmem=256 * 1024 * 1024,
        dklen=_HASH_BYTES,
    )


def hash_password(password: str) -> str:
    """The stored form of ``password`` with a fresh random salt."""
    if not password:
        raise ValueError("the password is empty")
    if len(password.encode("utf-8", "surrogatepass")) > MAX_PASSWORD_BYTES:
        raise ValueError(f"the password is longer than {MAX_PASSWORD_BYTES} bytes")
    salt = secrets.token_bytes(_SALT_BYTES)
    derived = _derive(password, salt, LOG_N, R, P)
    return f"scrypt${LOG_N}${R}${P}${_b64(salt)}${_b64(derived)}"


def check_hash(encoded: str) -> str:
    """``encoded`` if it is a usable scrypt hash; ValueError that says why otherwise."""
    found = _FORMAT.fullmatch(encoded)
    if found is None:
        raise ValueError(
            "not a password hash (expected scrypt$15$8$1$<salt>$<hash>, as printed by"
            " `dijk admin hash-password`); plain passwords are not accepted"
        )
    log_n, r, p = int(found["log_n"]), int(found["r"]), int(found["p"])
    if not MIN_LOG_N <= log_n <= 20 or not 1 <= r <= 32 or not 1 <= p <= 4:
        raise ValueError(f"scrypt cost out of range (log2 n {MIN_LOG_N}..20, r 1..32, p 1..4)")
    if len(_unb64(found["hash"])) < _HASH_BYTES:
        raise ValueError(f"the hash is shorter than {_HASH_BYTES} bytes")
    return encoded


@cache
def _dummy() -> str:
    return hash_password(secrets.token_urlsafe(16))


def verify_password(password: str, encoded: str | None) -> bool:
    """Whether ``password`` matches ``encoded`` (None: an unknown user - always False,
    after the same work as a real check)."""
    target = _dummy() if encoded is None else encoded
    found = _FORMAT.fullmatch(target)
    too_long = len(password.encode("utf-8", "surrogatepass")) > MAX_PASSWORD_BYTES
    if found is None:
        return False
    derived = _derive(
        "" if too_long else password,
        _unb64(found["salt"]),
        int(found["log_n"]),
        int(found["r"]),
        int(found["p"]),
    )
    matches = hmac.compare_digest(derived, _unb64(found["hash"]))
    return matches and encoded is not None and not too_long and bool(password)
