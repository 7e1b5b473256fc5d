"""Numbers in text: phone numbers, BSNs, payment cards, IPv4 addresses, dates of birth
and Dutch postcodes.

All of them start from the runs of ASCII digits in the text (one `finditer` over
`[0-9]+`, done once by `pii_text.scan_text`) and the gaps between them. Each scanner
walks the runs left to right with a cheap test on the run's length and neighbours
first; from a run it looks at most a constant number of runs ahead (a card has at most
19 digits, a phone number 17), and after a finding it continues behind it. Multi-group
phone numbers are only started at the first group of a sequence, or right after a
finding, so a text of ten thousand digit groups costs ten thousand cheap tests, not ten
thousand validations: O(n) with a small constant.
"""

from __future__ import annotations

import datetime
import functools
import re
from dataclasses import dataclass

import phonenumbers
from phonenumbers import NumberParseException, PhoneMetadata

from dijk.detect.pii_model import VALIDATION_CACHE_SIZE, Category, CategoryFlags

__all__ = [
    "PhoneRules",
    "ValidationBudget",
    "glued_after",
    "glued_before",
    "in_grouped_iban",
    "phone_rules_for_region",
    "scan_digit_categories",
]

Finding = tuple[Category, int, int]


@dataclass(frozen=True, slots=True)
class PhoneRules:
    """The phone metadata of the default region, compiled once per detector."""

    region: str
    national_prefix: str
    international_prefix: str
    national_lengths: frozenset[int]
    national_pattern: re.Pattern[str] | None


def phone_rules_for_region(region: str) -> PhoneRules:
    """Compile the phone metadata of `region` (ISO 3166 code, e.g. "NL").

    Raises ValueError for a region phonenumbers does not know: a configuration error,
    to surface when the configuration loads.
    """
    metadata = PhoneMetadata.metadata_for_region(region.upper())
    if metadata is None:
        raise ValueError(f"unknown phone region {region!r}")
    general = metadata.general_desc
    pattern = general.national_number_pattern if general is not None else None
    lengths = general.possible_length if general is not None else ()
    international = metadata.international_prefix or ""
    return PhoneRules(
        region=region.upper(),
        national_prefix=metadata.national_prefix or "",
        # only a plain digit prefix ("00", "011") can be recognised in text
        international_prefix=international if international.isdigit() else "",
        national_lengths=frozenset(lengths or ()),
        national_pattern=re.compile(pattern) if pattern else None,
    )


class ValidationBudget:
    """How many expensive validations (phonenumbers, python-stdnum) a scan may still make.

    Those cost tens of microseconds per candidate; the cheap checks before them (phone
    lengths, country code and the region's number pattern; the IBAN length and mod-97
    checksum) cost about one. Text crafted to hold thousands of candidates that pass the
    cheap checks first exhausts the budget, after which such candidates are accepted on
    the cheap checks alone. That keeps the cost per character bounded and errs on the
    side of masking too much, never of leaking.

    Created per scan by the caller (one for a whole JSON document), never shared.
    """

    __slots__ = ("remaining",)

    def __init__(self, remaining: int) -> None:
        self.remaining = remaining

    def add_chars(self, chars: int) -> None:
        """Grant one validation per 32 characters scanned.

        A realistic document holds far fewer phone numbers and IBANs than that (a compact
        customer record with both is over 100 characters); only crafted input runs out.
        """
        self.remaining += chars // 32

    def spend(self) -> bool:
        """Take one validation; False when none is left (then trust the cheap checks)."""
        if self.remaining <= 0:
            return False
        self.remaining -= 1
        return True

    @classmethod
    def initial(cls) -> ValidationBudget:
        """A fresh budget: 256 validations before any characters are counted."""
        return cls(256)


# --- boundaries -----------------------------------------------------------------------


def glued_before(text: str, start: int) -> bool:
    """True when `start` continues a word or an identifier (`ORD-`, `v`, `nr.`)."""
    if start <= 0:
        return False
    char = text[start - 1]
    if char.isalnum() or char == "_":
        return True
    return char in "-/.#" and start >= 2 and text[start - 2].isalnum()


def glued_after(text: str, end: int) -> bool:
    """True when the text after `end` continues the word, identifier or decimal number."""
    if end >= len(text):
        return False
    char = text[end]
    if char.isalnum() or char == "_":
        return True
    following = text[end + 1] if end + 1 < len(text) else ""
    if char in "-/#":
        return following.isalnum()
    if char == ".":
        return following.isdigit()
    return False


def in_grouped_iban(text: str, start: int) -> bool:
    """Whether `start` is inside an IBAN written in groups (`NL91 ABNA 0417 1643 00`).

    Such digits are not a phone or card number even when the IBAN itself is invalid
    (then it is a mistyped IBAN). Looks back at most 8 groups of 4: constant work.
    """
    position = start
    for _ in range(8):
        if position < 5 or text[position - 1] != " ":
            return False
        group = text[position - 5 : position - 1]
        if not (group.isascii() and group.isalnum() and group.upper() == group):
            return False
        position -= 5
        if group[:2].isalpha() and group[2:].isdigit():
            return position == 0 or not text[position - 1].isalnum()
    return False


def _keyword_before(lowered: str, start: int, keywords: tuple[str, ...], window: int) -> bool:
    """Whether one of `keywords` occurs in the `window` characters before `start`."""
    preceding = lowered[max(0, start - window) : start]
    return any(keyword in preceding for keyword in keywords)


# --- the runs of a text ---------------------------------------------------------------


class _Runs:
    """The digit runs of one text, with their lengths and the gaps between them."""

    __slots__ = ("_lowered", "count", "ends", "gaps", "lengths", "starts", "text")

    def __init__(self, text: str, spans: list[tuple[int, int]]) -> None:
        self.text = text
        self.starts = [start for start, _ in spans]
        self.ends = [end for _, end in spans]
        self.lengths = [end - start for start, end in spans]
        self.count = len(spans)
        # gaps[i] lies between run i and run i + 1; the last one is empty
        self.gaps = [
            text[self.ends[index] : self.starts[index + 1]] for index in range(self.count - 1)
        ]
        self.gaps.append("")
        self._lowered: str | None = None

    @property
    def lowered(self) -> str:
        """The text in lower case, for keyword look-ups (made once, when first needed)."""
        if self._lowered is None:
            self._lowered = self.text.lower()
        return self._lowered

    def continues(self, index: int, finding_ends: set[int]) -> bool:
        """Whether run `index` continues the digit sequence before it (caller checked
        the gap): false for the first run, after a finding of any category, and after a
        run that ends a word or a grouped IBAN (`ABNA0417164300 06-12345678`,
        `NL91 ABNA 0417 1643 00 06-12345678`: the phone number starts fresh).
        """
        if index == 0 or self.ends[index - 1] in finding_ends:
            return False
        previous_start = self.starts[index - 1]
        if previous_start == 0:
            return True
        return not (
            self.text[previous_start - 1].isalpha() or in_grouped_iban(self.text, previous_start)
        )

    def digits(self, first: int, last: int) -> str:
        text = self.text
        return "".join(
            text[self.starts[index] : self.ends[index]] for index in range(first, last + 1)
        )


def scan_digit_categories(
    text: str,
    spans: list[tuple[int, int]],
    context: CategoryFlags,
    enabled: CategoryFlags,
    phone_rules: PhoneRules,
    budget: ValidationBudget,
    earlier: list[Finding],
) -> list[Finding]:
    """Findings of the enabled digit-based categories; `spans` are the `[0-9]+` runs.

    `earlier` are the findings of the other scanners (e-mail, IBAN, ...): a phone number
    may start right after one. Each scanner is skipped when the digits cannot hold its
    category at all (too few digits, no run of the right length): most leaves are short.
    """
    runs = _Runs(text, spans)
    lengths = runs.lengths
    total = sum(lengths)
    longest = max(lengths)
    found: list[Finding] = []
    if enabled.card and total >= 12 and (longest >= 12 or 4 in lengths):
        found.extend(_scan_cards(runs))
    if enabled.bsn and total >= 8 and longest >= 3:
        found.extend(_scan_bsns(runs, context.bsn))
    if enabled.date_of_birth and total >= 4 and (runs.count >= 2 or longest == 8):
        found.extend(_scan_birth_dates(runs, context.date_of_birth))
    if enabled.ip and runs.count >= 4:
        found.extend(_scan_ipv4(runs))
    if enabled.postcode and 4 in lengths:
        found.extend(_scan_postcodes(runs, context.postcode))
    if enabled.phone and total >= _MIN_PHONE_DIGITS:
        ends = {end for _, _, end in earlier} | {end for _, _, end in found}
        found.extend(_scan_phones(runs, context.phone, phone_rules, budget, ends))
    return found


# --- payment cards --------------------------------------------------------------------

# (lowest prefix, highest prefix, prefix digits, allowed lengths)
_CARD_RANGES: tuple[tuple[int, int, int, frozenset[int]], ...] = (
    (4, 4, 1, frozenset({13, 16, 19})),  # Visa
    (51, 55, 2, frozenset({16})),  # Mastercard
    (2221, 2720, 4, frozenset({16})),  # Mastercard 2-series
    (34, 34, 2, frozenset({15})),  # American Express
    (37, 37, 2, frozenset({15})),
    (6011, 6011, 4, frozenset(range(16, 20))),  # Discover
    (644, 649, 3, frozenset(range(16, 20))),
    (65, 65, 2, frozenset(range(16, 20))),
    (62, 62, 2, frozenset(range(16, 20))),  # UnionPay
    (3528, 3589, 4, frozenset(range(16, 20))),  # JCB
    (300, 305, 3, frozenset(range(14, 20))),  # Diners Club
    (3095, 3095, 4, frozenset(range(14, 20))),
    (36, 36, 2, frozenset(range(14, 20))),
    (38, 39, 2, frozenset(range(16, 20))),
    (2200, 2204, 4, frozenset(range(16, 20))),  # Mir
    (5018, 5018, 4, frozenset(range(12, 20))),  # Maestro
    (5020, 5020, 4, frozenset(range(12, 20))),
    (5038, 5038, 4, frozenset(range(12, 20))),
    (5893, 5893, 4, frozenset(range(12, 20))),
    (6304, 6304, 4, frozenset(range(12, 20))),
    (6759, 6759, 4, frozenset(range(12, 20))),
    (6761, 6763, 4, frozenset(range(12, 20))),
)
_PREFIX_SCALE = {1: 1000, 2: 100, 3: 10, 4: 1}


def _known_card_prefix(number: str) -> bool:
    length = len(number)
    first_four = int(number[:4])
    for low, high, width, lengths in _CARD_RANGES:
        if length in lengths and low <= first_four // _PREFIX_SCALE[width] <= high:
            return True
    return False


def _luhn_valid(number: str) -> bool:
    total = 0
    for index, char in enumerate(reversed(number)):
        digit = ord(char) - 48
        if index % 2 == 1:
            digit = digit * 2 - 9 if digit > 4 else digit * 2
        total += digit
    return total % 10 == 0


def _valid_card(number: str) -> bool:
    return (
        12 <= len(number) <= 19
        and _known_card_prefix(number)
        and number.count(number[0]) != len(number)
        and _luhn_valid(number)
    )


def _scan_cards(runs: _Runs) -> list[Finding]:
    """One run of 12-19 digits, or groups (first of 4, then 3-6) one space or dash apart.

    A card may start at any group (`kaart 1234 4111 1111 1111 1111`): trying one costs a
    few groups and a Luhn sum, and Luhn with an issuer prefix keeps that precise.
    """
    found: list[Finding] = []
    lengths = runs.lengths
    index = 0
    while index < runs.count:
        length = lengths[index]
        last = _card_at(runs, index) if length == 4 or 12 <= length <= 19 else None
        if last is None:
            index += 1
            continue
        found.append((Category.CARD, runs.starts[index], runs.ends[last]))
        index = last + 1
    return found


def _card_at(runs: _Runs, first: int) -> int | None:
    text = runs.text
    start = runs.starts[first]
    if glued_before(text, start):
        return None
    candidates: list[int] = []
    if runs.lengths[first] != 4:
        candidates.append(first)
    else:
        separator = ""
        total = 4
        last = first
        while last + 1 < runs.count and total < 19:
            gap = runs.gaps[last]
            if gap not in (" ", "-") or (separator and gap != separator):
                break
            separator = gap
            group = runs.lengths[last + 1]
            if not 3 <= group <= 6 or total + group > 19:
                break
            total += group
            last += 1
            if total >= 12:
                candidates.append(last)
    for candidate in reversed(candidates):
        if glued_after(text, runs.ends[candidate]):
            continue
        if _valid_card(runs.digits(first, candidate)) and not in_grouped_iban(text, start):
            return candidate
    return None


# --- BSN ------------------------------------------------------------------------------

_BSN_KEYWORDS = (
    "bsn",
    "burgerservicenummer",
    "burgerservice nummer",
    "sofinummer",
    "sofi-nummer",
    "sofi nummer",
    "citizen service number",
)
_KEYWORD_WINDOW = 48


def _bsn_checksum_valid(number: str) -> bool:
    """The 11-proof: sum(d_i * w_i) with weights 9..2 and -1 is divisible by 11."""
    if len(number) != 9 or number == "000000000":
        return False
    total = sum((9 - index) * (ord(char) - 48) for index, char in enumerate(number[:8]))
    total -= ord(number[8]) - 48
    return total % 11 == 0


def _scan_bsns(runs: _Runs, in_field: bool) -> list[Finding]:
    """BSN rule, to keep false positives low (a random 9-digit number passes one in 11).

    A BSN is reported when the digits pass the 11-proof, are not part of a longer word
    or identifier, and one of these holds:

    - the official dotted form `dddd.dd.ddd`;
    - the field name says BSN (`bsn`, `burgerservicenummer`, `sofinummer`, ...): then
      also 9 bare digits, 8 digits (an old BSN, read with a leading zero) and the
      spaced forms `ddd ddd ddd` / `dddd dd ddd`;
    - a BSN keyword occurs in the 48 characters before: `BSN`, `burgerservicenummer`,
      `sofinummer`, `citizen service number` (same forms as above).
    """
    found: list[Finding] = []
    lengths = runs.lengths
    keyword_anywhere = in_field or any(keyword in runs.lowered for keyword in _BSN_KEYWORDS)
    index = 0
    while index < runs.count:
        length = lengths[index]
        if length == 4 or (keyword_anywhere and length in (3, 8, 9)):
            last = _bsn_at(runs, index, in_field)
            if last is not None:
                found.append((Category.BSN, runs.starts[index], runs.ends[last]))
                index = last + 1
                continue
        index += 1
    return found


def _bsn_at(runs: _Runs, first: int, in_field: bool) -> int | None:
    text = runs.text
    start = runs.starts[first]
    shapes = _bsn_shapes(runs, first)
    if not shapes or glued_before(text, start):
        return None
    has_context: bool | None = None
    for last, dotted in shapes:
        if not dotted:
            if has_context is None:
                has_context = in_field or _keyword_before(
                    runs.lowered, start, _BSN_KEYWORDS, _KEYWORD_WINDOW
                )
            if not has_context:
                continue
        number = runs.digits(first, last)
        if len(number) == 8:
            number = "0" + number
        if glued_after(text, runs.ends[last]) or not _bsn_checksum_valid(number):
            continue
        if not in_grouped_iban(text, start):
            return last
    return None


def _bsn_shapes(runs: _Runs, first: int) -> list[tuple[int, bool]]:
    """(index of last run, is the dotted form) for each BSN-shaped sequence at `first`."""
    lengths = runs.lengths
    shapes: list[tuple[int, bool]] = []
    if first + 2 < runs.count:
        shape = (lengths[first], lengths[first + 1], lengths[first + 2])
        gap = runs.gaps[first]
        if gap == runs.gaps[first + 1]:
            if shape == (4, 2, 3) and gap == ".":
                shapes.append((first + 2, True))
            if shape in ((3, 3, 3), (4, 2, 3)) and gap in (" ", "-"):
                shapes.append((first + 2, False))
    if lengths[first] in (8, 9):
        shapes.append((first, False))
    return shapes


# --- dates of birth -------------------------------------------------------------------

_BIRTH_KEYWORDS = (
    "geboren",
    "geboortedatum",
    "geb.",
    "born",
    "birth",
    "dob",
    "d.o.b",
    "verjaardag",
)
_MONTHS = {
    name: number
    for number, names in enumerate(
        (
            ("january", "jan", "januari"),
            ("february", "feb", "februari"),
            ("march", "mar", "maart", "mrt"),
            ("april", "apr"),
            ("may", "mei"),
            ("june", "jun", "juni"),
            ("july", "jul", "juli"),
            ("august", "aug", "augustus"),
            ("september", "sep", "sept"),
            ("october", "oct", "oktober", "okt"),
            ("november", "nov"),
            ("december", "dec"),
        ),
        start=1,
    )
    for name in names
}
_MIN_BIRTH_YEAR = 1880
_MAX_BIRTH_YEAR = 2100  # no clock here: "not in the future" is the caller's business


def _scan_birth_dates(runs: _Runs, in_field: bool) -> list[Finding]:
    """A real calendar date, with the field name or a keyword saying it is a birth date.

    Forms: `yyyy-mm-dd` (also with a time after `T`), `dd-mm-yyyy`, `dd/mm/yyyy`,
    `dd.mm.yyyy`, `d month yyyy` (English and Dutch month names), and in a birth-date
    field also `yyyymmdd`. Years 1880-2100. In free text a keyword (`geboren`, `born`,
    `date of birth`, `DOB`, `geb.`, ...) must occur in the 48 characters before.
    """
    if not in_field and not any(keyword in runs.lowered for keyword in _BIRTH_KEYWORDS):
        return []
    found: list[Finding] = []
    lengths = runs.lengths
    index = 0
    while index < runs.count:
        length = lengths[index]
        last = None
        if length <= 2 or length == 4 or (in_field and length == 8):
            last = _date_at(runs, index, in_field)
        if last is None:
            index += 1
            continue
        start = runs.starts[index]
        if in_field or _keyword_before(runs.lowered, start, _BIRTH_KEYWORDS, _KEYWORD_WINDOW):
            found.append((Category.DATE_OF_BIRTH, start, runs.ends[last]))
        index = last + 1
    return found


def _date_at(runs: _Runs, first: int, in_field: bool) -> int | None:
    text, lengths, gaps = runs.text, runs.lengths, runs.gaps
    start, end = runs.starts[first], runs.ends[first]
    if glued_before(text, start):
        return None
    length = lengths[first]
    if first + 2 < runs.count and gaps[first] in ("-", "/", ".") and gaps[first + 1] == gaps[first]:
        parts = (
            text[start:end],
            runs.digits(first + 1, first + 1),
            runs.digits(first + 2, first + 2),
        )
        if _date_end_ok(text, runs.ends[first + 2]) and _numeric_date_valid(parts):
            return first + 2
    if first + 1 < runs.count and length <= 2 and lengths[first + 1] == 4:
        gap = gaps[first]
        month = _MONTHS.get(gap.strip(" .,").lower()) if 4 <= len(gap) <= 12 else None
        if (
            month is not None
            and gap.startswith(" ")
            and gap.endswith(" ")
            and _date_end_ok(text, runs.ends[first + 1])
            and _real_date(int(runs.digits(first + 1, first + 1)), month, int(text[start:end]))
        ):
            return first + 1
    if in_field and length == 8 and not glued_after(text, end):
        year = int(text[start : start + 4])
        if _real_date(year, int(text[start + 4 : start + 6]), int(text[start + 6 : end])):
            return first
    return None


def _date_end_ok(text: str, end: int) -> bool:
    """A date may be followed by an ISO time (`T10:30`), otherwise not glued."""
    if end < len(text) and text[end] == "T":
        return end + 1 < len(text) and text[end + 1].isdigit()
    return not glued_after(text, end)


def _numeric_date_valid(parts: tuple[str, str, str]) -> bool:
    lengths = [len(part) for part in parts]
    if lengths[0] == 4 and 1 <= lengths[1] <= 2 and 1 <= lengths[2] <= 2:
        return _real_date(int(parts[0]), int(parts[1]), int(parts[2]))
    if 1 <= lengths[0] <= 2 and 1 <= lengths[1] <= 2 and lengths[2] == 4:
        year = int(parts[2])
        day_first = _real_date(year, int(parts[1]), int(parts[0]))
        return day_first or _real_date(year, int(parts[0]), int(parts[1]))
    return False


def _real_date(year: int, month: int, day: int) -> bool:
    if not _MIN_BIRTH_YEAR <= year <= _MAX_BIRTH_YEAR:
        return False
    try:
        datetime.date(year, month, day)
    except ValueError:
        return False
    return True


# --- IPv4 -----------------------------------------------------------------------------

_VERSION_KEYWORDS = ("version", "versie", "release", "build")


def _scan_ipv4(runs: _Runs) -> list[Finding]:
    """Four decimal octets (0-255, no leading zeros), not part of a longer dotted run.

    Loopback (127/8), `0.0.0.0` and `255.255.255.255` identify nobody and are skipped,
    and so is a dotted quad right after "version", "release" or "build".
    """
    found: list[Finding] = []
    lengths, gaps = runs.lengths, runs.gaps
    for index in range(runs.count - 3):
        if (
            lengths[index] <= 3
            and gaps[index] == "."
            and gaps[index + 1] == "."
            and gaps[index + 2] == "."
            and _ipv4_at(runs, index)
            and not _keyword_before(runs.lowered, runs.starts[index], _VERSION_KEYWORDS, 16)
        ):
            found.append((Category.IP, runs.starts[index], runs.ends[index + 3]))
    return found


def _ipv4_at(runs: _Runs, first: int) -> bool:
    text = runs.text
    start, end = runs.starts[first], runs.ends[first + 3]
    if start > 0:
        before = text[start - 1]
        if before.isalnum() or before == "_" or before == ".":
            return False
    if end < len(text):
        after = text[end]
        if after.isalnum() or after == "_":
            return False
        if after == "." and end + 1 < len(text) and text[end + 1].isalnum():
            return False
    octets: list[int] = []
    for index in range(first, first + 4):
        part = runs.digits(index, index)
        if len(part) > 3 or (len(part) > 1 and part[0] == "0"):
            return False
        octets.append(int(part))
    if any(octet > 255 for octet in octets):
        return False
    return not (octets[0] == 127 or octets in ([0, 0, 0, 0], [255, 255, 255, 255]))


# --- Dutch postcodes --------------------------------------------------------------------

# In free text, "2048 MB" is a size, not a postcode. In a postcode field these pass.
_UNIT_SUFFIXES = frozenset({"KB", "MB", "GB", "TB", "PB", "KM", "CM", "MM", "KG", "KW", "MW"})
_UNUSED_POSTCODE_LETTERS = frozenset({"SA", "SD", "SS"})


def _scan_postcodes(runs: _Runs, in_field: bool) -> list[Finding]:
    """`1234 AB` / `1234AB`: 1000-9999, then two letters (never SA, SD, SS).

    Letters must be upper case in free text; any case in a postcode field.
    """
    found: list[Finding] = []
    text = runs.text
    for index in range(runs.count):
        if runs.lengths[index] != 4:
            continue
        start, end = runs.starts[index], runs.ends[index]
        if text[start] == "0" or glued_before(text, start):
            continue
        letters_start = end + 1 if end < len(text) and text[end] == " " else end
        letters = text[letters_start : letters_start + 2]
        if len(letters) != 2 or not (letters.isascii() and letters.isalpha()):
            continue
        if not in_field and not letters.isupper():
            continue
        letters_upper = letters.upper()
        if letters_upper in _UNUSED_POSTCODE_LETTERS:
            continue
        if not in_field and letters_start > end and letters_upper in _UNIT_SUFFIXES:
            continue
        postcode_end = letters_start + 2
        if postcode_end < len(text) and (text[postcode_end].isalnum() or text[postcode_end] == "_"):
            continue
        found.append((Category.POSTCODE, start, postcode_end))
    return found


# --- phone numbers --------------------------------------------------------------------

_PHONE_GAP_CHARS = frozenset(" -./()")
_MAX_PHONE_DIGITS = 17  # 15 (E.164) behind a two-digit international prefix
_MIN_PHONE_DIGITS = 7
_PHONE_TRIES_PER_START = 3


def _is_phone_gap(gap: str) -> bool:
    return 0 < len(gap) <= 3 and set(gap) <= _PHONE_GAP_CHARS


def _scan_phones(
    runs: _Runs,
    in_field: bool,
    settings: PhoneRules,
    budget: ValidationBudget,
    finding_ends: set[int],
) -> list[Finding]:
    """Phone rule: digit groups joined by ` -./()`, validated by phonenumbers.

    In free text a number must be written with `+`, the international prefix (`00` for
    NL), the national trunk prefix (`0` for NL) or an area code in parentheses
    (`(202) 555-0143`): a bare `612345678` is taken only in a phone field. Dates
    (`06-05-2024`), times, IP addresses, numbers glued to identifiers
    (`INV-0612345678`) and the tail of a longer digit sequence (`3530 0906 8161 6225`:
    a number starts at the first group, or right after another finding, as in
    `06 12345678 06 87654321`) are not phone numbers.
    """
    found: list[Finding] = []
    text, starts = runs.text, runs.starts
    # first digits a number can start with in free text: trunk or international prefix
    leading = {settings.national_prefix[:1], settings.international_prefix[:1]} - {""}
    phone_gaps = [_is_phone_gap(gap) for gap in runs.gaps]
    index = 0
    while index < runs.count:
        start = starts[index]
        if (phone_gaps[index - 1] and runs.continues(index, finding_ends)) or not (
            in_field or text[start] in leading or (start > 0 and text[start - 1] in "+(")
        ):
            index += 1
            continue
        result = _phone_at(runs, phone_gaps, index, in_field, settings, budget)
        if result is None:
            index += 1
            continue
        start, last = result
        found.append((Category.PHONE, start, runs.ends[last]))
        finding_ends.add(runs.ends[last])
        index = last + 1
    return found


def _phone_at(
    runs: _Runs,
    phone_gaps: list[bool],
    first: int,
    in_field: bool,
    settings: PhoneRules,
    budget: ValidationBudget,
) -> tuple[int, int] | None:
    text = runs.text
    run_start = runs.starts[first]
    lead = run_start
    parenthesised = lead > 0 and text[lead - 1] == "("
    if parenthesised:
        lead -= 1
    plus = lead > 0 and text[lead - 1] == "+"
    if plus:
        lead -= 1
    head = text[run_start : runs.ends[first]]
    if plus:
        limit = 15
    elif settings.international_prefix and head.startswith(settings.international_prefix):
        limit = _MAX_PHONE_DIGITS
    elif settings.national_prefix and head.startswith(settings.national_prefix):
        limit = len(settings.national_prefix) + max(settings.national_lengths, default=12)
    elif in_field or parenthesised:
        limit = max(settings.national_lengths, default=15)
    else:
        return None
    if glued_before(text, lead) or _starts_with_date(runs, first) or in_grouped_iban(text, lead):
        return None
    ends: list[int] = []
    digits = runs.lengths[first]
    last = first
    if digits >= _MIN_PHONE_DIGITS:
        ends.append(first)
    while last + 1 < runs.count and phone_gaps[last]:
        digits += runs.lengths[last + 1]
        if digits > limit:
            break
        last += 1
        if digits >= _MIN_PHONE_DIGITS:
            ends.append(last)
    tries = 0
    for candidate_last in reversed(ends):
        if tries >= _PHONE_TRIES_PER_START:
            break
        end = runs.ends[candidate_last]
        if glued_after(text, end) or _followed_by_time(text, end):
            continue
        if candidate_last - first == 3 and all(
            runs.gaps[i] == "." for i in range(first, first + 3)
        ):
            continue  # an IPv4 address
        candidate = text[lead:end]
        if not _plausible_phone(candidate, plus, settings):
            continue
        tries += 1
        if _valid_phone(candidate, settings, budget):
            return lead, candidate_last
    return None


def _starts_with_date(runs: _Runs, first: int) -> bool:
    """`06-05-2024`, `2024/05/06 ...`: three groups, one separator, a 4-digit year."""
    if first + 2 >= runs.count:
        return False
    separator = runs.gaps[first]
    if separator not in ("-", "/", ".") or runs.gaps[first + 1] != separator:
        return False
    lengths = runs.lengths[first : first + 3]
    return (lengths[0] == 4 and max(lengths[1:]) <= 2) or (
        lengths[2] == 4 and max(lengths[:2]) <= 2
    )


def _followed_by_time(text: str, end: int) -> bool:
    """`... 14:30`: the last group is the hour of a time, not part of a number."""
    return end + 1 < len(text) and text[end] == ":" and text[end + 1].isdigit()


def _plausible_phone(candidate: str, plus: bool, settings: PhoneRules) -> bool:
    """Cheap structural check before phonenumbers: lengths, country code, number pattern."""
    digits = "".join(char for char in candidate if char.isdigit())
    prefix = settings.international_prefix
    if plus or (prefix and digits.startswith(prefix)):
        subscriber = digits if plus else digits[len(prefix) :]
        if not 7 <= len(subscriber) <= 15:
            return False
        return any(
            int(subscriber[:width]) in phonenumbers.COUNTRY_CODE_TO_REGION_CODE
            for width in (1, 2, 3)
        )
    national = digits
    if settings.national_prefix and digits.startswith(settings.national_prefix):
        national = digits[len(settings.national_prefix) :]
    if settings.national_lengths and len(national) not in settings.national_lengths:
        return False
    pattern = settings.national_pattern
    return pattern is None or pattern.fullmatch(national) is not None


def _valid_phone(candidate: str, settings: PhoneRules, budget: ValidationBudget) -> bool:
    """phonenumbers' own validation, while the budget lasts (see `ValidationBudget`)."""
    if not budget.spend():
        return True
    return phone_is_valid(candidate, settings.region)


@functools.lru_cache(maxsize=VALIDATION_CACHE_SIZE)
def phone_is_valid(candidate: str, region: str) -> bool:
    """phonenumbers' verdict, remembered: parsing costs ~0.1 ms and APIs send the same
    numbers again and again. The answer depends on the arguments only (phonenumbers'
    metadata is fixed for the process), so the memo is exact; it is bounded, and lives in
    process memory only."""
    try:
        number = phonenumbers.parse(candidate, region)
    except NumberParseException:
        return False
    return bool(phonenumbers.is_valid_number(number))
