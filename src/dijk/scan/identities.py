"""Who the scanner speaks as, and the forged tokens it tries.

``--auth NAME=HEADER:VALUE`` names an identity and the header that carries its credential.
A value that is a JWT (``Bearer a.b.c``, or a bare ``a.b.c``) also gets the token tests:
``alg: none``, a signature made with another key, and — when the HMAC key is one of the
guessable words every JWT cracker tries — an expired token signed with that key.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "Identity",
    "JwtParts",
    "LoginRecipe",
    "parse_identity",
    "parse_login",
    "token_from",
    "weak_secret",
]

#: The short list every JWT cracker starts with; a key in it is no key at all.
WEAK_SECRETS = (
    "secret",
    "changeme",
    "password",
    "123456",
    "your-256-bit-secret",
    "your-secret-key",
    "secretkey",
    "secret-key",
    "jwt-secret",
    "jwtsecret",
    "supersecret",
    "s3cr3t",
    "key",
    "test",
    "dev",
    "admin",
    "default",
    "token",
    "qwerty",
    "letmein",
    "shhhhh",
    "mysecret",
    "my-secret",
    "change-me",
    "CHANGEME",
    "Secret",
    "",
)
_HMAC = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}


class IdentityError(ValueError):
    """A malformed ``--auth`` value; the message says what is wrong."""


@dataclass(frozen=True, slots=True)
class JwtParts:
    header: dict[str, Any]
    claims: dict[str, Any]
    signing_input: bytes
    signature: bytes


@dataclass(slots=True)
class Identity:
    name: str
    header: str
    value: str
    admin: bool = False
    jwt: JwtParts | None = field(default=None)
    prefix: str = ""

    @property
    def headers(self) -> dict[str, str]:
        return {self.header: self.value}

    def with_token(self, token: str) -> dict[str, str]:
        """The identity's header carrying ``token`` instead of its own."""
        return {self.header: f"{self.prefix}{token}"}

    def secrets(self) -> list[str]:
        """Strings that must never appear in a report."""
        out = [self.value]
        token = self.value[len(self.prefix) :]
        if token and token != self.value:
            out.append(token)
        return out


def parse_identity(text: str) -> Identity:
    name, sep, rest = text.partition("=")
    header, colon, value = rest.partition(":")
    name, header, value = name.strip(), header.strip(), value.strip()
    if not sep or not colon or not name or not header or not value:
        raise IdentityError(
            f"--auth {_shown(text)}: expected NAME=HEADER:VALUE, e.g. "
            "alice=Authorization:Bearer eyJ..."
        )
    _check_name("--auth", name)
    if not all(c.isalnum() or c == "-" for c in header):
        raise IdentityError(f"--auth {name}: {header!r} is not a header name")
    prefix = ""
    token = value
    if value.lower().startswith("bearer "):
        prefix = value[:7]
        token = value[7:].strip()
    return Identity(name, header, value, jwt=_decode(token), prefix=prefix)


@dataclass(frozen=True, slots=True)
class LoginRecipe:
    """``--login NAME=PATH:JSON``: POST the JSON to PATH, take the token from the answer."""

    name: str
    path: str
    body: dict[str, Any]

    def secrets(self) -> list[str]:
        return [str(value) for value in self.body.values() if isinstance(value, str | int)]


TOKEN_FIELDS = ("access_token", "token", "id_token", "jwt", "accessToken", "idToken")


def parse_login(text: str) -> LoginRecipe:
    name, sep, rest = text.partition("=")
    name = name.strip()
    cut = rest.find(":{")
    if not sep or not name or cut <= 0 or not rest.startswith("/"):
        raise IdentityError(
            f"--login {_shown(text)}: expected NAME=PATH:JSON, "
            'e.g. alice=/api/v1/login:{"username":"alice","password":"..."}'
        )
    _check_name("--login", name)
    try:
        body = json.loads(rest[cut + 1 :])
    except ValueError:
        raise IdentityError(f"--login {name}: the body after the path is not valid JSON") from None
    if not isinstance(body, dict):
        raise IdentityError(f"--login {name}: the body must be a JSON object")
    return LoginRecipe(name, rest[:cut], body)


def token_from(answer: Any) -> str | None:
    """The bearer token in a login answer: a known field, at the top or one level down."""
    if not isinstance(answer, dict):
        return None
    for node in (answer, *(v for v in answer.values() if isinstance(v, dict))):
        for field_name in TOKEN_FIELDS:
            value = node.get(field_name)
            if isinstance(value, str) and value:
                return value
    return None


def _check_name(option: str, name: str) -> None:
    if not all(c.isalnum() or c in "-_." for c in name):
        raise IdentityError(
            f"{option}: identity name {name!r} may hold letters, digits, '-', '_' and '.' only"
        )


def _shown(text: str) -> str:
    name = text.partition("=")[0]
    return f"{name}=..." if name else "(empty)"


def _b64decode(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _decode(token: str) -> JwtParts | None:
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        header = json.loads(_b64decode(parts[0]))
        claims = json.loads(_b64decode(parts[1]))
        signature = _b64decode(parts[2])
    except (ValueError, binascii.Error):
        return None
    if not isinstance(header, dict) or not isinstance(claims, dict) or "alg" not in header:
        return None
    return JwtParts(header, claims, f"{parts[0]}.{parts[1]}".encode(), signature)


def _segment(value: dict[str, Any]) -> str:
    return _b64encode(json.dumps(value, separators=(",", ":")).encode())


def unsigned_token(parts: JwtParts) -> str:
    """The same claims with ``alg: none`` and no signature."""
    header = {**parts.header, "alg": "none"}
    return f"{_segment(header)}.{_segment(parts.claims)}."


def signed_token(
    parts: JwtParts, key: bytes, claims: dict[str, Any] | None = None, alg: str = "HS256"
) -> str:
    header = {**parts.header, "alg": alg}
    if alg != parts.header.get("alg"):
        header.pop("kid", None)  # the original key id names a key of another type
    body = f"{_segment(header)}.{_segment(claims if claims is not None else parts.claims)}"
    digest = hmac.new(key, body.encode(), _HMAC.get(alg, hashlib.sha256)).digest()
    return f"{body}.{_b64encode(digest)}"


def resigned_token(parts: JwtParts) -> str:
    """The same claims signed (HS256) with a random key the server cannot know."""
    return signed_token(parts, secrets.token_bytes(32))


def expired_claims(parts: JwtParts, now: float | None = None) -> dict[str, Any]:
    moment = int(time.time() if now is None else now)
    return {**parts.claims, "iat": moment - 7200, "nbf": moment - 7200, "exp": moment - 3600}


def signs(parts: JwtParts, key: str) -> bool:
    """Whether ``key`` made the HS* signature of ``parts``."""
    digest = _HMAC.get(str(parts.header.get("alg")))
    if digest is None:
        return False
    mac = hmac.new(key.encode(), parts.signing_input, digest).digest()
    return hmac.compare_digest(mac, parts.signature)


def weak_secret(parts: JwtParts) -> str | None:
    """The key, when an HS* token was signed with a word from :data:`WEAK_SECRETS`."""
    return next((word for word in WEAK_SECRETS if signs(parts, word)), None)


def describe(token: str) -> dict[str, Any]:
    """What a report may show of a forged token: its header and claim names, no values."""
    parts = _decode(token)
    if parts is None:
        return {"token": "(not a JWT)"}
    return {"jwt_header": parts.header, "jwt_claims": sorted(parts.claims)}
