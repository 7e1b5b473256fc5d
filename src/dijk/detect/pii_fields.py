"""Field names as context: what a JSON key says about the value under it.

Some personal data cannot be told apart from other numbers by its form alone: a bare
9-digit number passes the BSN 11-proof one time in eleven, and a date is only a date of
birth because of what it describes. For those, the name of the field is the evidence.

A key is split into lower-case words (`dateOfBirth`, `date_of_birth` and
`date-of-birth` all give `date of birth`); the rules below look at the words and at the
words joined (`dateofbirth`). Only the first `MAX_KEY_CHARS` characters of a key are
looked at, so an attacker-sized key costs no more than a normal one.
"""

from __future__ import annotations

from dijk.detect.pii_model import Category

__all__ = ["MAX_KEY_CHARS", "field_categories", "key_words"]

MAX_KEY_CHARS = 64

_PHONE_WORDS = frozenset(
    {
        "phone",
        "phonenumber",
        "telephone",
        "tel",
        "telnr",
        "telefoon",
        "telefoonnummer",
        "mobile",
        "mobiel",
        "mobielnummer",
        "gsm",
        "cell",
        "cellphone",
        "fax",
        "msisdn",
    }
)
_BSN_WORDS = frozenset({"bsn", "burgerservicenummer", "sofi", "sofinummer", "sofinr"})
_BSN_JOINED = ("burgerservicenummer", "citizenservicenumber", "sofinummer")
_BIRTH_WORDS = frozenset({"birth", "birthdate", "birthday", "dob", "born", "bday"})
_BIRTH_JOINED = ("dateofbirth", "birthdate", "geboortedatum", "geboortedag", "gebdatum")
_POSTCODE_WORDS = frozenset({"postcode", "postalcode", "zip", "zipcode", "postcodes"})
_POSTCODE_JOINED = ("postcode", "postalcode", "zipcode")
_SECRET_WORDS = frozenset(
    {
        "password",
        "passwd",
        "pwd",
        "passphrase",
        "wachtwoord",
        "secret",
        "pin",
        "apikey",
        "authorization",
        "credential",
        "credentials",
        "privatekey",
        "clientsecret",
    }
)
_SECRET_JOINED = ("password", "apikey", "privatekey", "clientsecret", "secretkey", "accesskey")
# "token" names a credential, except where it is a pagination cursor: masking a
# `nextPageToken` would break clients, and it identifies nobody.
_NOT_SECRET_WORDS = frozenset({"page", "next", "cursor", "continuation", "pagination", "sync"})


def key_words(key: str) -> tuple[str, ...]:
    """Split a field name into lower-case words: camelCase, snake_case, kebab-case."""
    words: list[str] = []
    current: list[str] = []
    previous = ""
    for char in key[:MAX_KEY_CHARS]:
        if not char.isalnum():
            if current:
                words.append("".join(current))
                current = []
        elif char.isupper() and current and (previous.islower() or previous.isdigit()):
            words.append("".join(current))
            current = [char.lower()]
        else:
            current.append(char.lower())
        previous = char
    if current:
        words.append("".join(current))
    return tuple(words)


def field_categories(key: str) -> frozenset[Category]:
    """The categories whose detection the field name `key` gives context for.

    Context relaxes a rule, it never replaces validation: a value in a `bsn` field must
    still pass the 11-proof, a value in a `birth_date` field must still be a real date.
    The one exception is SECRET: the value of a `password`, `api_key`, `client_secret`,
    `access_token` (...) field is a credential whatever it looks like.
    """
    words = key_words(key)
    if not words:
        return frozenset()
    joined = "".join(words)
    # plurals name lists of the same thing: "bsns", "phones", "emails"
    word_set = frozenset(words) | {word[:-1] for word in words if len(word) > 3 and word[-1] == "s"}
    found: set[Category] = set()
    if word_set & _PHONE_WORDS or "phone" in joined or "telefoon" in joined:
        found.add(Category.PHONE)
    if word_set & _BSN_WORDS or any(name in joined for name in _BSN_JOINED):
        found.add(Category.BSN)
    if word_set & _BIRTH_WORDS or any(name in joined for name in _BIRTH_JOINED):
        found.add(Category.DATE_OF_BIRTH)
    if word_set & _POSTCODE_WORDS or any(name in joined for name in _POSTCODE_JOINED):
        found.add(Category.POSTCODE)
    if _is_secret_name(words, word_set, joined):
        found.add(Category.SECRET)
    return frozenset(found)


def _is_secret_name(words: tuple[str, ...], word_set: frozenset[str], joined: str) -> bool:
    if word_set & _NOT_SECRET_WORDS:
        return False
    if word_set & _SECRET_WORDS or any(name in joined for name in _SECRET_JOINED):
        return True
    # access_token, refresh_token, id_token, api_token, bearer token, `token` itself
    return "token" in word_set or joined.endswith("token")
