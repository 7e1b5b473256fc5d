"""Values shared by the PII detector and the masker: categories and matches.

Kept apart from `pii.py` so that the scanners (`pii_text.py`), the field-name rules
(`pii_fields.py`) and the masker can import them without an import cycle.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from dijk.detect.pii_paths import PathNode

__all__ = [
    "CATEGORY_PRIORITY",
    "VALIDATION_CACHE_SIZE",
    "Category",
    "CategoryFlags",
    "PiiMatch",
    "new_match",
]

# Library validations (phone numbers, IBAN formats) remembered per process: an API sends
# the same customers' values again and again, and one validation costs ~0.1 ms.
VALIDATION_CACHE_SIZE = 8192


class Category(StrEnum):
    """A category of personal data (or of a credential) that Dijk recognises.

    The values are stable: they appear in audit records, metrics labels, pseudonyms
    (`pii:<category>:<hex>`) and configuration.
    """

    EMAIL = "email"
    PHONE = "phone"
    IBAN = "iban"
    BSN = "bsn"
    CARD = "card"
    IP = "ip"
    DATE_OF_BIRTH = "date_of_birth"
    POSTCODE = "postcode"
    SECRET = "secret"  # noqa: S105 - a category name, not a password


# When two findings overlap, the one earlier in this tuple wins. Secrets first (a JWT
# or a key block may contain anything), then the formats with a checksum or a strong
# structure, then the weaker ones.
CATEGORY_PRIORITY: tuple[Category, ...] = (
    Category.SECRET,
    Category.EMAIL,
    Category.IBAN,
    Category.CARD,
    Category.BSN,
    Category.PHONE,
    Category.DATE_OF_BIRTH,
    Category.IP,
    Category.POSTCODE,
)


@dataclass(frozen=True, slots=True)
class PiiMatch:
    """One finding: a category at `start:end` of the string found at `path`.

    A match never holds the personal data itself, only where it is, so that a match
    can be logged or counted without leaking it. Offsets are in characters of the
    string value (for a JSON integer: of `str(value)`).

    `path` addresses the value in the document (`$.accounts[3].email`); it is what the
    masker uses to find it again. Because an object key may itself be personal data
    (`{"jan@example.nl": {...}}`), `path` can contain such a key raw: for logs, the
    audit store and the data map use `path_template`, where list indices read `[*]`
    and keys that are personal data read `[<category>]`.

    `in_key` is true when the finding is in the object key named by the last segment
    of `path`, not in the value.

    `location` is the detector's own node for that place (set by `PiiDetector.scan_json`,
    None otherwise): the masker and the privacy stage follow it instead of parsing `path`
    again. It is not compared, hashed or shown.
    """

    category: Category
    path: str
    start: int
    end: int
    in_key: bool = False
    path_template: str = ""
    location: PathNode | None = field(default=None, compare=False, repr=False)


# Building a frozen dataclass goes through `object.__setattr__` once per field, which
# costs more than finding the match did when the value was seen before. The detector
# builds its matches with the slots' own setters instead: the same object, made faster.
_SLOT_SETTERS = tuple(
    getattr(PiiMatch, name).__set__
    for name in ("category", "path", "start", "end", "in_key", "path_template", "location")
)


def new_match(
    category: Category,
    path: str,
    start: int,
    end: int,
    in_key: bool,
    path_template: str,
    location: PathNode | None,
) -> PiiMatch:
    """`PiiMatch(category, path, start, end, in_key, path_template, location)`, faster."""
    match = object.__new__(PiiMatch)
    set_category, set_path, set_start, set_end, set_in_key, set_template, set_location = (
        _SLOT_SETTERS
    )
    set_category(match, category)
    set_path(match, path)
    set_start(match, start)
    set_end(match, end)
    set_in_key(match, in_key)
    set_template(match, path_template)
    set_location(match, location)
    return match


@dataclass(frozen=True, slots=True)
class CategoryFlags:
    """A set of categories as plain booleans, for the per-string hot path.

    Testing membership of an enum member in a set calls Python-level `Enum.__hash__`;
    the scanners ask these questions for every JSON leaf, so they read attributes.
    """

    email: bool = False
    phone: bool = False
    iban: bool = False
    bsn: bool = False
    card: bool = False
    ip: bool = False
    date_of_birth: bool = False
    postcode: bool = False
    secret: bool = False

    @classmethod
    def of(cls, categories: Iterable[Category]) -> CategoryFlags:
        return cls(**{category.value: True for category in categories})

    @property
    def any(self) -> bool:
        return self != _NONE


_NONE = CategoryFlags()
