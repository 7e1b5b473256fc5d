"""Finding personal data in one string: linear-time candidate extraction, then validation.

Every scanner here works in two steps:

1. **Candidates**, found in time linear in the length of the text. The only regular
   expressions are character-class runs (`[0-9]+`, `[A-Za-z0-9_-]{0,256}`), fixed-width
   prefixes followed by such a run (`[A-Za-z]{2}[0-9]{2}[A-Za-z0-9]*+`, the IBAN start
   `[A-Z]{2}[0-9]{2,2}`) and one alternation of plain literals (the credential
   prefixes). With nothing after a run that could fail, Python's backtracking engine
   never backtracks on them: a `finditer` (or `findall`, `split`) over the text is O(n).
   Everything else is `str.find`, string methods, list comprehensions over the digit
   runs, and loops whose work per candidate is bounded by a constant (an e-mail local
   part is at most 64 characters, a phone number at most 17 digits, ...); scanners that
   restart from a position always move forward. `test_pii_safety.py` checks the pattern
   shapes and measures the time on adversarial inputs; `test_pii_equivalence.py` checks
   the quick candidate tests against the plain rules they stand for.
2. **Validation** of each candidate: checksums (IBAN mod-97 then python-stdnum, BSN
   11-proof, card Luhn with issuer prefixes and lengths), phonenumbers' metadata,
   calendar dates, `ipaddress`, decoding a JWT header. Validation is what keeps false
   positives low; context (the field name, or a keyword just before the number) is only
   asked for where validation cannot be enough (BSN, date of birth).

The scanners live in `pii_identifiers` (e-mail, IBAN, IPv6), `pii_digits` (phone, BSN,
card, IPv4, date of birth, postcode) and `pii_secrets`; this module runs the enabled
ones and settles overlaps. The expensive validations (phonenumbers, python-stdnum) are
budgeted per scan: see `ValidationBudget`.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Iterable
from dataclasses import dataclass
from itertools import pairwise

from dijk.detect import pii_digits, pii_identifiers, pii_secrets
from dijk.detect.pii_digits import (
    PhoneRules,
    ValidationBudget,
    phone_rules_for_region,
    scan_digit_categories,
)
from dijk.detect.pii_model import CATEGORY_PRIORITY, Category, CategoryFlags

__all__ = [
    "PATTERNS",
    "Finding",
    "TextSettings",
    "ValidationBudget",
    "scan_text",
    "settings_for_region",
]

Finding = tuple[Category, int, int]

PATTERNS: tuple[re.Pattern[str], ...] = (
    *pii_digits.PATTERNS,
    *pii_identifiers.PATTERNS,
    *pii_secrets.PATTERNS,
)
"""Every regular expression the scanners use; `test_pii.py` checks their shapes."""

_RANK = {category: rank for rank, category in enumerate(CATEGORY_PRIORITY)}


@dataclass(frozen=True, slots=True)
class TextSettings:
    """What the scanners need from configuration, computed once per detector."""

    categories: frozenset[Category]
    enabled: CategoryFlags
    phone: PhoneRules
    digits: bool  # whether any digit-based category is enabled


def settings_for_region(region: str, categories: Iterable[Category]) -> TextSettings:
    """Settings for phone region `region` (e.g. "NL"); ValueError if it is unknown."""
    chosen = frozenset(categories)
    enabled = CategoryFlags.of(chosen)
    digits = enabled.phone or enabled.bsn or enabled.card or enabled.ip
    return TextSettings(
        categories=chosen,
        enabled=enabled,
        phone=phone_rules_for_region(region),
        digits=digits or enabled.date_of_birth or enabled.postcode,
    )


def scan_text(
    text: str, context: CategoryFlags, settings: TextSettings, budget: ValidationBudget
) -> list[Finding]:
    """All findings in `text`, overlaps resolved by `CATEGORY_PRIORITY`, by start offset.

    `context` holds the categories the field name speaks for (see `pii_fields`).
    """
    enabled = settings.enabled
    found: list[Finding] = []
    if enabled.secret:
        if context.secret:
            found.extend(_whole_value(text))
        found.extend(pii_secrets.scan_secrets(text))
    if enabled.email and "@" in text:
        found.extend(pii_identifiers.scan_emails(text))
    if enabled.iban and len(text) >= pii_identifiers.IBAN_MIN_LENGTH:
        found.extend(pii_identifiers.scan_ibans(text, budget))
    if enabled.ip and text.count(":") >= 2:
        found.extend(pii_identifiers.scan_ipv6(text))
    if settings.digits:
        found.extend(scan_digit_categories(text, context, enabled, settings.phone, budget, found))
    return _resolve_overlaps(found)


def _resolve_overlaps(found: list[Finding]) -> list[Finding]:
    """Keep the higher-priority (then longer, then earlier) of overlapping findings.

    Category by category in priority order: a finding is kept unless it overlaps one
    kept before. The kept ones of the higher categories form one sorted list, merged
    once per category, so thousands of findings cost O(n log n), not a list insertion
    each (which is O(n^2) on a long text full of findings).
    """
    if len(found) <= 1:
        return found
    by_rank: dict[int, list[Finding]] = {}
    for finding in found:
        by_rank.setdefault(_RANK[finding[0]], []).append(finding)
    if len(by_rank) == 1:
        (only,) = by_rank.values()
        ordered = sorted(only, key=_by_start)
        if _disjoint(ordered):
            return ordered
    starts: list[int] = []
    ends: list[int] = []
    kept: list[Finding] = []
    for rank in sorted(by_rank):
        survivors = [
            finding
            for finding in sorted(by_rank[rank], key=_by_start)
            if not _overlaps(starts, ends, finding[1], finding[2])
        ]
        if not _disjoint(survivors):
            # overlapping findings of one category: the longer, then the earlier wins
            survivors = _keep_first(sorted(survivors, key=_by_length_then_start))
        kept.extend(survivors)
        merged = sorted([*zip(starts, ends, strict=True), *((s, e) for _, s, e in survivors)])
        starts = [start for start, _ in merged]
        ends = [end for _, end in merged]
    kept.sort(key=_by_start)
    return kept


def _by_start(finding: Finding) -> int:
    return finding[1]


def _by_length_then_start(finding: Finding) -> tuple[int, int]:
    return (finding[1] - finding[2], finding[1])


def _overlaps(starts: list[int], ends: list[int], start: int, end: int) -> bool:
    """Whether [start, end) overlaps one of the disjoint intervals sorted in `starts`."""
    index = bisect.bisect_right(starts, start)
    if index > 0 and ends[index - 1] > start:
        return True
    return index < len(starts) and starts[index] < end


def _disjoint(ordered: list[Finding]) -> bool:
    """Whether findings sorted by start are non-empty and pairwise disjoint."""
    return all(start < end for _, start, end in ordered) and all(
        previous[2] <= current[1] for previous, current in pairwise(ordered)
    )


def _keep_first(ordered: list[Finding]) -> list[Finding]:
    """Each finding unless it overlaps one before it in `ordered` (the insertion way:
    only for findings of one category that overlap each other, which is rare)."""
    starts: list[int] = []
    ends: list[int] = []
    kept: list[Finding] = []
    for finding in ordered:
        _, start, end = finding
        if _overlaps(starts, ends, start, end):
            continue
        index = bisect.bisect_right(starts, start)
        starts.insert(index, start)
        ends.insert(index, end)
        kept.append(finding)
    return kept


def _whole_value(text: str) -> list[Finding]:
    """The whole value (less surrounding white space): a credential field's content."""
    stripped = text.strip()
    if not stripped:
        return []
    start = len(text) - len(text.lstrip())
    return [(Category.SECRET, start, start + len(stripped))]
