"""Property and parameter names that mean something to security, as pure predicates.

Names are compared in a folded form: lower case, without ``_``, ``-``, ``.`` or spaces,
so ``is_admin``, ``isAdmin`` and ``IS-ADMIN`` are one name.
"""

from __future__ import annotations

import re
from typing import Final

__all__ = [
    "fold",
    "is_credential",
    "is_object_id",
    "is_privileged",
    "is_rate_limit_header",
    "is_sensitive_in_response",
    "is_sensitive_in_url",
    "is_url_like",
    "is_verbose_error_field",
]

_FOLD: Final = re.compile(r"[^a-z0-9]")


def fold(name: str) -> str:
    return _FOLD.sub("", name.lower())


_CREDENTIALS: Final = frozenset(
    {
        "token", "accesstoken", "apikey", "key", "apitoken", "authtoken", "auth",
        "authorization", "password", "passwd", "pwd", "secret", "clientsecret", "sessionid",
        "session", "sid", "jwt", "bearer", "idtoken", "refreshtoken", "privatetoken",
        "accesskey", "secretkey", "subscriptionkey", "code",
    }
)  # fmt: skip
_CREDENTIAL_ENDINGS: Final = ("token", "apikey", "secret", "password", "accesskey", "sessionid")
#: Tokens that page or sync through results, not credentials.
_NOT_CREDENTIAL: Final = ("page", "continuation", "sync", "next", "cursor", "resume", "csrf")


def is_credential(name: str) -> bool:
    """A query parameter named like a credential (``pageToken`` and the like excluded)."""
    folded = fold(name)
    if any(part in folded for part in _NOT_CREDENTIAL):
        return False
    if folded == "code":  # OAuth authorization codes are meant for the redirect URL
        return False
    return folded in _CREDENTIALS or folded.endswith(_CREDENTIAL_ENDINGS)


_SENSITIVE_URL: Final = frozenset(
    {
        "bsn", "burgerservicenummer", "ssn", "socialsecuritynumber", "cardnumber",
        "creditcard", "creditcardnumber", "pan", "cvv", "cvc", "iban", "email",
        "emailaddress", "dateofbirth", "dob", "birthdate", "password", "pin", "passport",
        "passportnumber", "phonenumber", "phone", "mobile",
    }
)  # fmt: skip


def is_sensitive_in_url(name: str) -> bool:
    return fold(name) in _SENSITIVE_URL


_SENSITIVE_RESPONSE: Final = frozenset(
    {
        "password", "passwd", "pwd", "passwordhash", "hashedpassword", "cardpin", "pinblock",
        "cvv", "cvc", "cvv2", "cvc2", "securitycode", "cardnumber", "creditcardnumber",
        "pan", "primaryaccountnumber", "bsn", "burgerservicenummer", "ssn",
        "socialsecuritynumber", "secret", "clientsecret", "privatekey", "secretkey",
    }
)  # fmt: skip


def is_sensitive_in_response(name: str) -> bool:
    return fold(name) in _SENSITIVE_RESPONSE


_PRIVILEGED: Final = frozenset(
    {
        "id", "uuid", "role", "roles", "isadmin", "admin", "isstaff", "issuperuser",
        "superuser", "permissions", "privileges", "scopes", "ownerid", "owner", "balance",
        "credit", "credits", "isverified", "verified", "emailverified", "tenantid",
        "accesslevel", "usertype", "accounttype",
    }
)  # fmt: skip


def is_privileged(name: str) -> bool:
    return fold(name) in _PRIVILEGED


_VERBOSE: Final = frozenset(
    {
        "stack", "stacktrace", "trace", "traceback", "exception", "exceptiontype",
        "exceptionclass", "exceptionmessage", "innerexception", "debug", "debuginfo",
        "debugmessage", "sql", "sqlstate", "sqlquery", "developermessage", "internalerror",
        "internalmessage", "errorstack",
    }
)  # fmt: skip


def is_verbose_error_field(name: str) -> bool:
    return fold(name) in _VERBOSE


_OBJECT_ID_CASED: Final = re.compile(r"(?:^(?:id|uuid|guid)$)|(?:[_.-](?:id|uuid|guid)$)", re.I)
_OBJECT_ID_CAMEL: Final = re.compile(r"[a-z0-9](?:Id|ID|Uuid|UUID|Guid|GUID)$")


def is_object_id(name: str) -> bool:
    """``id``, ``user_id``, ``accountId``, ``orderUUID`` (not ``paid`` or ``valid``)."""
    return bool(_OBJECT_ID_CASED.search(name) or _OBJECT_ID_CAMEL.search(name))


def is_rate_limit_header(name: str) -> bool:
    folded = fold(name)
    return folded.startswith(("ratelimit", "xratelimit")) or folded == "retryafter"


_URL_ENDINGS: Final = ("url", "uri", "callback", "webhook", "redirect")


def is_url_like(name: str) -> bool:
    """``callback_url``, ``redirectUri``, ``webhook``, ``imageURL`` (not ``curl`` alone)."""
    folded = fold(name)
    if folded in ("curl", "purl"):
        return False
    return folded.endswith(_URL_ENDINGS)
