"""E-mail addresses, IBANs and IPv6 addresses in text.

Candidate extraction follows the rules in `pii_text`: each `@` or `:` looks a bounded
distance around itself, and the IBAN pattern is a fixed-width prefix and a run.
"""

from __future__ import annotations

import functools
import ipaddress
import re

from stdnum import iban as stdnum_iban

from dijk.detect.pii_digits import ValidationBudget, glued_after
from dijk.detect.pii_model import VALIDATION_CACHE_SIZE, Category

__all__ = ["IBAN_LENGTHS", "IBAN_MIN_LENGTH", "PATTERNS", "scan_emails", "scan_ibans", "scan_ipv6"]

_IBAN_START = re.compile(r"[A-Za-z]{2}[0-9]{2}[A-Za-z0-9]*+")
_IPV6_RUN = re.compile(r"[0-9A-Fa-f:.]+")
_EMAIL_DOMAIN_RUN = re.compile(r"[\w.\-]{1,256}")
_EMAIL_LOCAL_RUN = re.compile(r"[\w.%+\-']{1,65}")

PATTERNS: tuple[re.Pattern[str], ...] = (
    _IBAN_START,
    _IPV6_RUN,
    _EMAIL_DOMAIN_RUN,
    _EMAIL_LOCAL_RUN,
)

Finding = tuple[Category, int, int]

# --- e-mail -----------------------------------------------------------------------------


def scan_emails(text: str) -> list[Finding]:
    """Each `@` looks at most 64 characters back and 255 forward: O(n) overall.

    An `@` is examined only if it could be an address: a local-part character before
    it, a letter or digit after it, and a dot before the next `@` (within the longest
    domain): three tests in C, so text full of `@` costs little.
    """
    found: list[Finding] = []
    previous = -1
    length = len(text)
    position = text.find("@")
    while position != -1:
        following = text.find("@", position + 1)
        domain_limit = min(length if following == -1 else following, position + 258)
        if (
            0 < position < length - 1
            and (text[position - 1].isalnum() or text[position - 1] in _LOCAL_PUNCTUATION)
            and text[position + 1].isalnum()
            and text.find(".", position + 2, domain_limit) != -1
        ):
            span = _email_at(text, position, previous)
            if span is not None:
                found.append((Category.EMAIL, span[0], span[1]))
        previous = position
        position = following
    return found


# characters of `_EMAIL_LOCAL_RUN` besides letters and digits (`\w` is those and `_`)
_LOCAL_PUNCTUATION = frozenset("_.%+-'")


def _email_at(text: str, at: int, previous_at: int) -> tuple[int, int] | None:
    """The address around the `@` at `at`; `previous_at` is the `@` before it, or -1."""
    window_start = max(0, at - 65, previous_at)
    reversed_window = text[window_start:at][::-1]
    local_match = _EMAIL_LOCAL_RUN.match(reversed_window)
    if local_match is None:
        return None
    local_length = local_match.end()
    if local_length > 64:
        return None
    run_start = at - local_length
    if run_start > 0 and text[run_start - 1] == "@":
        return None
    start = run_start
    while start < at and text[start] in ".'-+%":
        start += 1
    local = text[start:at]
    if not local or local.endswith(".") or ".." in local:
        return None
    domain_match = _EMAIL_DOMAIN_RUN.match(text, at + 1)
    if domain_match is None or domain_match.end() - at - 1 > 253:
        return None
    end = domain_match.end()
    while end > at + 1 and text[end - 1] in ".-":
        end -= 1
    if end < len(text) and text[end] == "@":
        return None
    if not _valid_domain(text[at + 1 : end]):
        return None
    return start, end


def _valid_domain(domain: str) -> bool:
    """At least two labels of 1-63 characters, none starting or ending with `-` or holding
    `_`, and an alphabetic (or `xn--`) top-level domain. String tests in C, no loop."""
    if not 3 <= len(domain) <= 253 or "_" in domain:
        return False
    labels = domain.split(".")
    if len(labels) < 2 or "" in labels or max(map(len, labels)) > 63:
        return False
    if domain[0] == "-" or domain[-1] == "-" or ".-" in domain or "-." in domain:
        return False
    top = labels[-1]
    return (len(top) >= 2 and top.isalpha()) or top.lower().startswith("xn--")


# --- IBAN -------------------------------------------------------------------------------

# Length of the IBAN per country, from the SWIFT IBAN registry as python-stdnum 2.2 ships
# it (`stdnum/iban.dat`; `test_pii.py` checks this table against that file). Knowing
# the length up front means one validation per candidate, whatever follows it.
IBAN_LENGTHS: dict[str, int] = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22,
    "BH": 22, "BI": 27, "BR": 29, "BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24,
    "DE": 22, "DJ": 27, "DK": 18, "DO": 28, "EE": 20, "EG": 29, "ES": 24, "FI": 18,
    "FK": 18, "FO": 18, "FR": 27, "GB": 22, "GE": 22, "GI": 23, "GL": 18, "GR": 27,
    "GT": 28, "HN": 28, "HR": 21, "HU": 28, "IE": 22, "IL": 23, "IQ": 23, "IS": 26,
    "IT": 27, "JO": 30, "KW": 30, "KZ": 20, "LB": 28, "LC": 32, "LI": 21, "LT": 20,
    "LU": 20, "LV": 21, "LY": 25, "MC": 27, "MD": 24, "ME": 22, "MK": 19, "MN": 20,
    "MR": 27, "MT": 31, "MU": 30, "NI": 28, "NL": 18, "NO": 15, "OM": 23, "PK": 24,
    "PL": 28, "PS": 29, "PT": 25, "QA": 29, "RO": 24, "RS": 22, "RU": 33, "SA": 24,
    "SC": 31, "SD": 18, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "ST": 25, "SV": 28,
    "SO": 23, "TL": 23, "TN": 24, "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20,
    "YE": 30,
}  # fmt: skip
IBAN_MIN_LENGTH = min(IBAN_LENGTHS.values())


def scan_ibans(text: str, budget: ValidationBudget) -> list[Finding]:
    """Compact (`NL91ABNA0417164300`) or in groups of four (`NL91 ABNA 0417 1643 00`)."""
    found: list[Finding] = []
    for match in _IBAN_START.finditer(text):
        start, end = match.span()
        if start > 0 and (text[start - 1].isalnum() or text[start - 1] == "_"):
            continue  # inside a longer word
        length = IBAN_LENGTHS.get(text[start : start + 2].upper())
        if length is None:
            continue
        if end - start == length:
            if not glued_after(text, end) and _valid_iban(text[start:end], budget):
                found.append((Category.IBAN, start, end))
        elif end - start == 4:
            grouped_end = _grouped_iban_end(text, end, length)
            if grouped_end is not None and _valid_iban(
                text[start:grouped_end].replace(" ", ""), budget
            ):
                found.append((Category.IBAN, start, grouped_end))
    return found


def _grouped_iban_end(text: str, end: int, length: int) -> int | None:
    """Where `length` characters end in groups of four, one space apart (the last group
    may be shorter), not followed by a letter or digit; None if they do not.

    The layout is fixed by `length`, so it is checked on one slice with string methods:
    a space before each group, `A-Z0-9` in the groups.
    """
    groups, rest = divmod(length - 4, 4)
    spaces = groups + (1 if rest else 0)
    size = 4 * groups + rest + spaces
    chunk = text[end : end + size]
    if len(chunk) != size or chunk[::5] != " " * spaces:
        return None
    characters = chunk.replace(" ", "")
    if not (
        len(characters) == length - 4
        and characters.isascii()
        and characters.isalnum()
        and characters.upper() == characters
    ):
        return None
    after = end + size
    if after < len(text) and text[after].isalnum():
        return None
    return after


def _valid_iban(candidate: str, budget: ValidationBudget) -> bool:
    """Mod-97 first (cheap), then python-stdnum for country, length and BBAN format.

    python-stdnum is asked while the budget lasts (see `ValidationBudget`).
    """
    compact = candidate.upper()
    if not iban_checksum_valid(compact):
        return False
    return not budget.spend() or iban_is_valid(compact)


@functools.lru_cache(maxsize=VALIDATION_CACHE_SIZE)
def iban_checksum_valid(compact: str) -> bool:
    """Mod-97 of the rearranged IBAN, letters counting as 10-35 (remembered: the same
    IBANs come back in every response)."""
    rearranged = compact[4:] + compact[:4]
    if not (rearranged.isascii() and rearranged.isalnum()):
        return False
    return int("".join(map(_IBAN_DIGITS.__getitem__, rearranged))) % 97 == 1


# A-Z count as 10-35, digits as themselves
_IBAN_DIGITS = {
    **{chr(ord("A") + index): str(10 + index) for index in range(26)},
    **{str(digit): str(digit) for digit in range(10)},
}


@functools.lru_cache(maxsize=VALIDATION_CACHE_SIZE)
def iban_is_valid(compact: str) -> bool:
    """python-stdnum's verdict (country, length, BBAN format), remembered like
    `pii_digits.phone_is_valid`: exact, bounded, in process memory only."""
    return bool(stdnum_iban.is_valid(compact))


# --- IPv6 -------------------------------------------------------------------------------

_IPV6_MAX_LENGTH = 45


def scan_ipv6(text: str) -> list[Finding]:
    """Each run of hex digits, colons and dots is examined once."""
    found: list[Finding] = []
    position = text.find(":")
    while position != -1:
        start = position
        lower_bound = max(0, position - _IPV6_MAX_LENGTH - 1)
        while start > lower_bound and text[start - 1] in _HEX_COLON_DOT:
            start -= 1
        too_long = start > 0 and text[start - 1] in _HEX_COLON_DOT
        match = _IPV6_RUN.match(text, start)
        end = match.end() if match is not None else position + 1
        span = None if too_long else _ipv6_span(text, start, end)
        if span is not None:
            found.append((Category.IP, span[0], span[1]))
        position = text.find(":", max(end, position + 1))
    return found


_HEX_COLON_DOT = frozenset("0123456789abcdefABCDEF:.")


def _ipv6_span(text: str, start: int, end: int) -> tuple[int, int] | None:
    while end > start and text[end - 1] == ".":
        end -= 1
    # a single colon before or after belongs to the text ("ip:2001:db8::1", "...:7334: ")
    if text.startswith(":", start) and not text.startswith("::", start):
        start += 1
    if end - start >= 2 and text[end - 1] == ":" and text[end - 2] != ":":
        end -= 1
    candidate = text[start:end]
    if len(candidate) > _IPV6_MAX_LENGTH or candidate.count(":") < 2:
        return None
    if start > 0 and (text[start - 1].isalnum() or text[start - 1] == "_"):
        return None
    if end < len(text) and (text[end].isalnum() or text[end] == "_"):
        return None
    groups = [group for group in candidate.split(":") if group]
    if len(groups) + ("." in candidate) < 3:
        return None  # "a::b", "fe80::1", "12:30:00" and the like
    try:
        address = ipaddress.IPv6Address(candidate)
    except ValueError:
        return None
    if address.is_loopback or address.is_unspecified:
        return None
    return start, end
