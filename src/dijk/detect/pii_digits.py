"""Numbers in text: phone numbers, BSNs, payment cards, IPv4 addresses, dates of birth
and Dutch postcodes.

All of them start from the runs of ASCII digits in the text (`[0-9]+`: a `findall` and a
`split`, done once per text, give the runs and the gaps between them). Each scanner
first picks, in one list comprehension over the runs (or their lengths and gaps), the
runs where its category could start: the run's length, its neighbours' lengths and the
gaps decide, and the issuer prefix for cards. Only those get the Python checks. From a
start it looks at most a constant number of runs ahead (a card has at most 19 digits, a
phone number 17), and after a finding it continues behind it. Multi-group phone numbers
are only started at the first group of a sequence, or right after a finding, so a text
of ten thousand digit groups costs ten thousand cheap tests, not ten thousand
validations: O(n), and the constant is that of a comprehension step where nothing can
start (crafted text costs well under a microsecond per character; `bench/pii.py`).
"""

from __future__ import annotations

import datetime
import functools
import re
from bisect import bisect_left, bisect_right
from dataclasses import dataclass
from itertools import accumulate

import phonenumbers
from phonenumbers import NumberParseException, PhoneMetadata

from dijk.detect.pii_model import VALIDATION_CACHE_SIZE, Category, CategoryFlags

__all__ = [
    "CHARS_PER_VALIDATION",
    "PATTERNS",
    "PhoneRules",
    "ValidationBudget",
    "glued_after",
    "glued_before",
    "in_grouped_iban",
    "phone_rules_for_region",
    "scan_digit_categories",
]

Finding = tuple[Category, int, int]

_DIGIT_RUN = re.compile(r"[0-9]+")
# Where an IBAN written in groups starts (`NL91`): fixed width, nothing to backtrack into.
_IBAN_HEAD = re.compile(r"[A-Z]{2}[0-9]{2,2}")

PATTERNS: tuple[re.Pattern[str], ...] = (_DIGIT_RUN, _IBAN_HEAD)
"""The regular expressions of this module (see `pii_text.PATTERNS`)."""


@dataclass(frozen=True, slots=True)
class PhoneRules:
    """The phone metadata of the default region, compiled once per detector."""

    region: str
    national_prefix: str
    international_prefix: str
    national_lengths: frozenset[int]
    national_pattern: re.Pattern[str] | None
    # first digits a number can start with in free text: trunk or international prefix
    leading: frozenset[str] = frozenset()


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
    national_prefix = metadata.national_prefix or ""
    # only a plain digit prefix ("00", "011") can be recognised in text
    international_prefix = international if international.isdigit() else ""
    return PhoneRules(
        region=region.upper(),
        national_prefix=national_prefix,
        international_prefix=international_prefix,
        national_lengths=frozenset(lengths or ()),
        national_pattern=re.compile(pattern) if pattern else None,
        leading=frozenset({national_prefix[:1], international_prefix[:1]} - {""}),
    )


CHARS_PER_VALIDATION = 32
"""`ValidationBudget` grants one validation per this many characters scanned."""


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
        self.remaining += chars // CHARS_PER_VALIDATION

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
    """The digit runs of one text, with their lengths and the gaps between them.

    Built in C: `findall` gives the runs, `split` what lies around them, `accumulate`
    the offsets. `gaps[i]` lies between run i and run i + 1 (the last one is empty);
    `after[i]` is everything from the end of run i to the next run or the end of the text.
    """

    __slots__ = (
        "_chains",
        "_heads",
        "_lowered",
        "after",
        "count",
        "ends",
        "gaps",
        "lengths",
        "starts",
        "text",
        "texts",
    )

    def __init__(self, text: str, texts: list[str], around: list[str]) -> None:
        self.text = text
        self.texts = texts
        count = len(texts)
        self.count = count
        self.after = around[1:]
        if count == 1:  # most values: one number
            length = len(texts[0])
            start = len(around[0])
            self.lengths = [length]
            self.starts = [start]
            self.ends = [start + length]
            self.gaps = [""]
        else:
            self.lengths = lengths = list(map(len, texts))
            sizes = [0] * (2 * count + 1)
            sizes[0::2] = map(len, around)
            sizes[1::2] = lengths
            bounds = list(accumulate(sizes))
            self.starts = bounds[0 : 2 * count : 2]
            self.ends = bounds[1 : 2 * count : 2]
            self.gaps = around[1:count]
            self.gaps.append("")
        self._lowered: str | None = None
        self._heads: list[int] | None = None
        self._chains: dict[int, tuple[int, bool]] = {}

    @classmethod
    def of(cls, text: str) -> _Runs | None:
        """The runs of `text`, or None when it has no digit."""
        texts = _DIGIT_RUN.findall(text)
        if not texts:
            return None
        return cls(text, texts, _DIGIT_RUN.split(text))

    @property
    def lowered(self) -> str:
        """The text in lower case, for keyword look-ups (made once, when first needed)."""
        if self._lowered is None:
            self._lowered = self.text.lower()
        return self._lowered

    @property
    def iban_heads(self) -> list[int]:
        """Where the text has an IBAN start (`NL91`), made once when first needed."""
        if self._heads is None:
            self._heads = [match.start() for match in _IBAN_HEAD.finditer(self.text)]
        return self._heads

    def in_iban_groups(self, start: int) -> bool:
        """`in_grouped_iban(text, start)`, from the IBAN starts found once per text.

        The nearest IBAN start a whole number of groups back (at most 8) is the one
        `in_grouped_iban` would stop at; how many intact groups follow that start is
        worked out once per start. Without such a start nearby (most texts) it is a
        bisection.
        """
        text = self.text
        if start < 5 or text[start - 1] != " ":
            return False
        heads = self._heads
        if heads is None:
            heads = self.iban_heads
        index = bisect_right(heads, start - 5)
        while True:
            if index == 0:
                return False
            head = heads[index - 1]
            if head < start - 40:
                return False
            if (start - head) % 5 == 0:
                break
            index -= 1
        chain = self._chains.get(head)
        if chain is None:
            chain = self._iban_chain(head)
        return chain[1] and (start - head) // 5 <= chain[0]

    def _iban_chain(self, head: int) -> tuple[int, bool]:
        """How many groups (`A-Z0-9` x4 and a space, at most 8) follow from the IBAN
        start at `head`, and whether nothing is glued before it (kept per start)."""
        text = self.text
        groups = 0
        while groups < 8:
            position = head + 5 * groups
            group = text[position : position + 4]
            if not (
                text[position + 4 : position + 5] == " "
                and group.isascii()
                and group.isalnum()
                and group.upper() == group
            ):
                break
            groups += 1
        chain = self._chains[head] = (groups, head == 0 or not text[head - 1].isalnum())
        return chain

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
        return not (self.text[previous_start - 1].isalpha() or self.in_iban_groups(previous_start))

    def digits(self, first: int, last: int) -> str:
        return "".join(self.texts[first : last + 1])


def _next_start(candidates: list[int], after: int) -> int:
    """The position in `candidates` (sorted run indexes) of the first one >= `after`."""
    return bisect_left(candidates, after)


def scan_digit_categories(
    text: str,
    context: CategoryFlags,
    enabled: CategoryFlags,
    phone_rules: PhoneRules,
    budget: ValidationBudget,
    earlier: list[Finding],
) -> list[Finding]:
    """Findings of the enabled digit-based categories in `text`.

    `earlier` are the findings of the other scanners (e-mail, IBAN, ...): a phone number
    may start right after one. Each scanner is skipped when the digits cannot hold its
    category at all (too few digits, no run of the right length): most leaves are short.
    """
    runs = _Runs.of(text)
    if runs is None:
        return []
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
    if enabled.ip and runs.count >= 4 and text.count(".") >= 3:
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


def _card_lengths_by_prefix() -> dict[str, frozenset[int]]:
    """First four digits -> the lengths some issuer with that prefix uses (only prefixes
    of some issuer are present): one look-up instead of a walk through `_CARD_RANGES`."""
    lengths: dict[int, set[int]] = {}
    for low, high, width, allowed in _CARD_RANGES:
        scale = _PREFIX_SCALE[width]
        for prefix in range(low * scale, (high + 1) * scale):
            lengths.setdefault(prefix, set()).update(allowed)
    return {f"{prefix:04d}": frozenset(allowed) for prefix, allowed in lengths.items()}


_CARD_LENGTHS = _card_lengths_by_prefix()
# Luhn doubles every second digit from the right: 0-4 -> 0-8, 5-9 -> 1,3,5,7,9 (2d - 9)
_LUHN_DOUBLED = bytes.maketrans(b"0123456789", b"0246813579")


def _scan_cards(runs: _Runs) -> list[Finding]:
    """One run of 12-19 digits, or groups (first of 4, then 3-6) one space or dash apart.

    A card may start at any group (`kaart 1234 4111 1111 1111 1111`): trying one costs a
    few groups and a Luhn sum, and Luhn with an issuer prefix keeps that precise. Only
    runs whose first four digits are some issuer's prefix, not glued to what is before
    them, are tried, and only the lengths that issuer uses (`_CARD_LENGTHS`). Longest
    first; a number of one digit repeated is no card; after a card, the scan continues
    behind it.
    """
    found: list[Finding] = []
    prefixes = _CARD_LENGTHS
    text, lengths, texts = runs.text, runs.lengths, runs.texts
    candidates = [
        index
        for index, (length, digits) in enumerate(zip(lengths, texts, strict=True))
        if (length == 4 or 12 <= length <= 19) and digits[:4] in prefixes
    ]
    if not candidates:
        return found
    starts = runs.starts
    candidates = [index for index in candidates if not glued_before(text, starts[index])]
    gaps, ends = runs.gaps, runs.ends
    # the group after run i, when it may follow in a card: 3-6 digits one space or dash
    # after it (else 0)
    groups = [
        following if gap in (" ", "-") and 3 <= following <= 6 else 0
        for gap, following in zip(gaps, [*lengths[1:], 0], strict=True)
    ]
    # All digits of the text, as is and doubled as Luhn doubles them: the Luhn sum of
    # runs first..last is two slices and two sums (in C), without building the number.
    plain = "".join(texts).encode("ascii")
    doubled = plain.translate(_LUHN_DOUBLED)
    offsets = list(accumulate(lengths, initial=0))
    position = 0
    while position < len(candidates):
        first = candidates[position]
        position += 1
        allowed = prefixes[texts[first][:4]]
        lasts: list[int] = []  # where a card of an allowed length could end
        if lengths[first] != 4:
            if lengths[first] in allowed:
                lasts.append(first)
        else:
            # groups one separator apart (the first gap decides which), <= 19 digits
            separator = gaps[first]
            total = 4
            last = first
            group = groups[first]
            while group and total + group <= 19:
                total += group
                last += 1
                if total >= 12 and total in allowed:
                    lasts.append(last)
                if gaps[last] != separator:
                    break
                group = groups[last]
        for last in reversed(lasts):
            # from the right: the last digit counts as is, the one before it doubled, ...
            begin, end = offsets[first], offsets[last + 1]
            total = (
                sum(plain[begin + (end - 1 - begin) % 2 : end : 2])
                + sum(doubled[begin + (end - begin) % 2 : end : 2])
                - 48 * (end - begin)
            )
            if (
                total % 10
                or plain.count(plain[begin], begin, end) == end - begin
                or glued_after(text, ends[last])
            ):
                continue
            # the same start for every length: inside a grouped IBAN, none is a card
            if not runs.in_iban_groups(starts[first]):
                found.append((Category.CARD, starts[first], ends[last]))
                position = _next_start(candidates, last + 1)
            break
    return found


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
# every keyword above contains one of these: most texts have none, and four `in` tests
# settle that
_BSN_KEYWORD_STEMS = ("bsn", "burgerservice", "sofi", "citizen service")


def _has_keyword(runs: _Runs, stems: tuple[str, ...], keywords: tuple[str, ...]) -> bool:
    """Whether one of `keywords` occurs in the text (each contains one of `stems`)."""
    lowered = runs.lowered
    for stem in stems:
        if stem in lowered:
            return any(keyword in lowered for keyword in keywords)
    return False


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
    # every shape of `_bsn_shapes` (4-2-3, 3-3-3, 8 or 9 digits) has a run of 3, 8 or 9
    if not (3 in lengths or 9 in lengths or 8 in lengths):
        return found
    keyword_anywhere = in_field or _has_keyword(runs, _BSN_KEYWORD_STEMS, _BSN_KEYWORDS)
    if not keyword_anywhere and not (4 in lengths and 2 in lengths and 3 in lengths):
        return found  # without context only the dotted 4-2-3 form counts
    # (padded with 0: a missing neighbour; zip stops at the last run)
    triples = zip(lengths, [*lengths[1:], 0], [*lengths[2:], 0, 0], strict=False)
    if keyword_anywhere:
        candidates = [
            index
            for index, (first, second, third) in enumerate(triples)
            if (second == 2 and first == 4 and third == 3)
            or first in (8, 9)
            or (first == 3 and second == 3 and third == 3)
        ]
    else:
        candidates = [
            index
            for index, (first, second, third) in enumerate(triples)
            if second == 2 and first == 4 and third == 3
        ]
    position = 0
    while position < len(candidates):
        index = candidates[position]
        last = _bsn_at(runs, index, in_field)
        if last is None:
            position += 1
            continue
        found.append((Category.BSN, runs.starts[index], runs.ends[last]))
        position = _next_start(candidates, last + 1)
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
        if not runs.in_iban_groups(start):
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
_BIRTH_KEYWORD_STEMS = ("geb", "born", "birth", "dob", "d.o.b", "verjaardag")
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
    # every form of `_date_at` has a 4-digit year, or is yyyymmdd in a birth-date field
    if not (4 in runs.lengths or (in_field and 8 in runs.lengths)):
        return []
    if not in_field and not _has_keyword(runs, _BIRTH_KEYWORD_STEMS, _BIRTH_KEYWORDS):
        return []
    found: list[Finding] = []
    lengths, gaps = runs.lengths, runs.gaps
    # where one of the forms of `_date_at` starts: d-m-yyyy / yyyy-m-d (run lengths and
    # one repeated separator), `d month yyyy`, and yyyymmdd in a birth-date field
    shapes = zip(
        lengths, [*lengths[1:], 0], [*lengths[2:], 0, 0], gaps, [*gaps[1:], ""], strict=False
    )
    candidates = [
        index
        for index, (first, second, third, gap, next_gap) in enumerate(shapes)
        if (
            gap in _DATE_SEPARATORS
            and next_gap == gap
            and 1 <= second <= 2
            and ((first == 4 and 1 <= third <= 2) or (first <= 2 and third == 4))
        )
        or (first <= 2 and second == 4 and 4 <= len(gap) <= 12)
        or (in_field and first == 8)
    ]
    position = 0
    while position < len(candidates):
        index = candidates[position]
        last = _date_at(runs, index, in_field)
        if last is None:
            position += 1
            continue
        start = runs.starts[index]
        if in_field or _keyword_before(runs.lowered, start, _BIRTH_KEYWORDS, _KEYWORD_WINDOW):
            found.append((Category.DATE_OF_BIRTH, start, runs.ends[last]))
        position = _next_start(candidates, last + 1)
    return found


_DATE_SEPARATORS = ("-", "/", ".")


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
    text, gaps = runs.text, runs.gaps
    # four runs, three dots between, and no dot or word character before the first
    quads = zip(runs.lengths, runs.starts, gaps, gaps[1:], gaps[2:], strict=False)
    candidates = [
        index
        for index, (length, start, first, second, third) in enumerate(quads)
        if first == "."
        and second == "."
        and third == "."
        and length <= 3
        and not (start and (text[start - 1].isalnum() or text[start - 1] in "_."))
    ]
    for index in candidates:
        if _ipv4_at(runs, index) and not _keyword_before(
            runs.lowered, runs.starts[index], _VERSION_KEYWORDS, 16
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
    for part in runs.texts[first : first + 4]:
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
    # four digits, then two letters (or a space and two letters)
    candidates = [
        index
        for index, (length, after) in enumerate(zip(runs.lengths, runs.after, strict=True))
        if length == 4 and (after[:2].isalpha() or (after[:1] == " " and after[1:3].isalpha()))
    ]
    for index in candidates:
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


# every gap `_is_phone_gap` accepts (258 strings), to test all gaps of a text in C
_PHONE_GAPS = frozenset(
    a + b + c
    for a in _PHONE_GAP_CHARS
    for b in ("", *_PHONE_GAP_CHARS)
    for c in ("", *_PHONE_GAP_CHARS)
    if b or not c
)


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
    text, starts, ends = runs.text, runs.starts, runs.ends
    # first digits a number can start with in free text: trunk or international prefix
    leading = settings.leading
    phone_gaps = list(map(_PHONE_GAPS.__contains__, runs.gaps))
    candidates = _phone_starts(runs, phone_gaps, in_field, leading, finding_ends)
    position = 0
    after_finding = -1  # the run behind a finding: it starts afresh (see `continues`)
    while True:
        if after_finding >= 0:
            index, after_finding = after_finding, -1
            start = starts[index]
            if (phone_gaps[index - 1] and runs.continues(index, finding_ends)) or not (
                in_field or text[start] in leading or text[start - 1] in "+("
            ):
                continue
        elif position < len(candidates):
            index = candidates[position]
            position += 1
        else:
            break
        result = _phone_at(runs, phone_gaps, index, in_field, settings, budget)
        if result is None:
            continue
        start, last = result
        found.append((Category.PHONE, start, ends[last]))
        finding_ends.add(ends[last])
        if last + 1 < runs.count:
            after_finding = last + 1
        position = _next_start(candidates, last + 2)
    return found


def _phone_starts(
    runs: _Runs,
    phone_gaps: list[bool],
    in_field: bool,
    leading: frozenset[str],
    finding_ends: set[int],
) -> list[int]:
    """The runs where `_scan_phones` tries a number, given the findings so far (a phone
    finding adds the run behind it, which the scan visits itself).

    A run is tried where a number may begin (in a phone field anywhere; else at the
    trunk or international prefix, or after `+` or `(`) and where it does not continue
    the digit sequence before it (see `_Runs.continues`).
    """
    text, starts, ends = runs.text, runs.starts, runs.ends
    # (for run 0, `phone_gaps[-1]` is the empty last gap: never joined)
    if " " in text and runs.iban_heads:  # (IBAN groups are one space apart)
        # (and not a group of an IBAN, which `_phone_at` refuses: `NL91 ABNA 0417 ...`)
        return [
            index
            for index, start in enumerate(starts)
            if (in_field or text[start] in leading or (start and text[start - 1] in "+("))
            and not runs.in_iban_groups(start)
            and (
                not phone_gaps[index - 1]
                or ends[index - 1] in finding_ends
                or (
                    starts[index - 1] > 0
                    and (
                        text[starts[index - 1] - 1].isalpha()
                        or runs.in_iban_groups(starts[index - 1])
                    )
                )
            )
        ]
    # (no IBAN start in the text: no run is inside a grouped IBAN)
    return [
        index
        for index, start in enumerate(starts)
        if (in_field or text[start] in leading or (start and text[start - 1] in "+("))
        and (
            not phone_gaps[index - 1]
            or ends[index - 1] in finding_ends
            or (starts[index - 1] > 0 and text[starts[index - 1] - 1].isalpha())
        )
    ]


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
    if glued_before(text, lead):
        return None
    head = runs.texts[first]
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
    if _starts_with_date(runs, first) or runs.in_iban_groups(lead):
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


_NOT_DIGITS = str.maketrans("", "", "+" + "".join(_PHONE_GAP_CHARS))


def _plausible_phone(candidate: str, plus: bool, settings: PhoneRules) -> bool:
    """Cheap structural check before phonenumbers: lengths, country code, number pattern."""
    digits = candidate.translate(_NOT_DIGITS)  # the rest is `+`, `(` and phone gaps
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
