"""Personal data in JSON documents and free text (GDPR/AVG): find it, say where it is.

    detector = PiiDetector(region="NL")                       # once, when config loads
    detector.scan_json({"accounts": [{"email": "jan@example.nl"}]})
    # [PiiMatch(category=<Category.EMAIL: 'email'>, path='$.accounts[0].email',
    #           start=0, end=14, in_key=False, path_template='$.accounts[*].email')]

Detection is validation-based: candidates are extracted in linear time (see
`pii_text`), then validated by checksum or metadata, so look-alikes (IBANs with a wrong
check digit, order numbers, timestamps, version strings, UUIDs) are not reported.

Categories and their rules:

- EMAIL: `local@domain`, local part at most 64 characters, a domain of at least two
  labels with an alphabetic top-level domain.
- PHONE: phonenumbers `is_valid_number` in the configured default region (NL). In free
  text the number must start with `+`, the international prefix, the trunk prefix
  (`0`) or an area code in parentheses; in a phone field (`phone`, `telefoon`,
  `mobile`, ...) any valid form.
- IBAN: mod-97 checksum, then python-stdnum (country, length, BBAN format). Compact or
  in groups of four.
- BSN: 11-proof plus context, see `pii_digits._scan_bsns` (field name, keyword, or the
  dotted form `dddd.dd.ddd`).
- CARD: Luhn, a known issuer prefix and a length that issuer uses (Visa, Mastercard,
  Amex, Discover, UnionPay, JCB, Diners, Mir, Maestro).
- IP: IPv4 and IPv6 addresses, except loopback and unspecified.
- DATE_OF_BIRTH: a real date with a birth-date field name or keyword before it.
- POSTCODE: Dutch postcodes `1234 AB`.
- SECRET: JWTs, PEM private keys, bearer tokens, AWS access key ids, GitHub, GitLab,
  Slack, Stripe (`sk_live_`), Google, npm, PyPI, OpenAI and Anthropic key formats, and
  the whole value of a credential field (`password`, `api_key`, `access_token`, ...).

Not handled: personal names and street addresses (no validation possible, left to the
OpenAPI contract and field specs), digits other than ASCII `0-9`, and characters past
`max_text_chars` in a single string (by default 1 MiB, the gateway's default body
limit, so nothing a default gateway accepts goes unscanned).

Cost: linear in the size of the input (see `pii_text`); the checks that call
phonenumbers and python-stdnum are budgeted per document (see `ValidationBudget`). Short
values already seen are answered from a bounded in-memory memo (`_MEMO_SIZE` entries).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from dijk.detect.pii_fields import field_categories
from dijk.detect.pii_model import Category, CategoryFlags, PiiMatch
from dijk.detect.pii_paths import PathNode
from dijk.detect.pii_text import TextSettings, ValidationBudget, scan_text, settings_for_region

__all__ = ["DEFAULT_MAX_TEXT_CHARS", "Category", "PiiDetector", "PiiMatch", "field_categories"]

DEFAULT_MAX_TEXT_CHARS = 1_048_576
# JSON integers longer than this are no identifier anyone uses (and `str()` of a huge
# int is itself slow): they are not scanned.
_MAX_INT_DIGITS = 24
_NO_CONTEXT = CategoryFlags()
_KEY_INFO_SIZE = 4096
_MEMO_CHARS = 128
_MEMO_SIZE = 16_384


class PiiDetector:
    """Finds personal data; compiled once from configuration, then pure and reentrant.

    `region` is the default phone region (ISO 3166 alpha-2). `categories` limits what is
    looked for (default: all). A string longer than `max_text_chars` is scanned in its
    first `max_text_chars` characters only.

    Raises ValueError for an unknown region or category: configuration errors.
    """

    __slots__ = ("_key_info", "_max_text_chars", "_memo", "_settings")

    def __init__(
        self,
        *,
        region: str = "NL",
        categories: Iterable[Category | str] | None = None,
        max_text_chars: int = DEFAULT_MAX_TEXT_CHARS,
    ) -> None:
        enabled = (
            frozenset(Category)
            if categories is None
            else frozenset(Category(category) for category in categories)
        )
        if max_text_chars < 1:
            raise ValueError("max_text_chars must be positive")
        self._settings: TextSettings = settings_for_region(region, enabled)
        self._max_text_chars = max_text_chars
        # Field names -> (context flags, could hold data). The same few keys come back in
        # every document; the answer depends on the key alone, so it is kept (bounded).
        self._key_info: dict[str, tuple[CategoryFlags, bool]] = {}
        # Short values -> their findings. APIs return the same values again and again
        # (a page of customers); scanning one costs tens of microseconds of Python, a
        # look-up well under one. The result depends only on the text, the context and the
        # settings, so the memo is exact; it is bounded and lives in process memory only
        # (it holds values, like the request being served does, and is never written out).
        self._memo: dict[tuple[str, CategoryFlags], list[tuple[Category, int, int]]] = {}

    def forget(self) -> None:
        """Drop what was remembered (values seen, field names, library validations), e.g.
        to measure the cost of a document never seen before."""
        from dijk.detect.pii_digits import phone_is_valid
        from dijk.detect.pii_identifiers import iban_is_valid

        self._memo.clear()
        self._key_info.clear()
        phone_is_valid.cache_clear()
        iban_is_valid.cache_clear()

    @property
    def region(self) -> str:
        return self._settings.phone.region

    @property
    def categories(self) -> frozenset[Category]:
        return self._settings.categories

    def scan_text(self, text: str, path: str = "$", *, field: str | None = None) -> list[PiiMatch]:
        """Findings in free text, in order of position.

        `field` is an optional name for the text (a form field, a header) that gives
        context the way a JSON key does.
        """
        context = CategoryFlags.of(field_categories(field)) if field else _NO_CONTEXT
        budget = ValidationBudget.initial()
        return [
            PiiMatch(category, path, start, end, False, path)
            for category, start, end in self._scan(text, context, budget)
        ]

    def scan_json(self, value: Any, path: str = "$") -> list[PiiMatch]:
        """Findings in a parsed JSON document, in document order.

        Walks objects and lists with an explicit stack (any depth). Strings are scanned;
        integers are scanned as their decimal text (a BSN or phone number sent as a
        number); object keys that contain a digit or `@` are scanned too. The key of a
        member is context for its value and, through lists, for their elements
        (`"phones": ["06 12345678"]`).
        """
        matches: list[PiiMatch] = []
        budget = ValidationBudget.initial()
        # what a key says (context, and whether it could be data): once per distinct key,
        # remembered across documents (see `_key_info`)
        key_info = self._key_info
        if len(key_info) > _KEY_INFO_SIZE:
            key_info.clear()
        stack: list[tuple[Any, PathNode, CategoryFlags]] = [
            (value, PathNode.root(path), _NO_CONTEXT)
        ]
        while stack:
            item, node, context = stack.pop()
            if isinstance(item, str):
                self._scan_leaf(item, node, context, budget, matches)
            elif isinstance(item, dict):
                children: list[tuple[Any, PathNode, CategoryFlags]] = []
                for key, child in item.items():
                    key_text = key if isinstance(key, str) else str(key)
                    info = key_info.get(key_text)
                    if info is None:
                        info = (
                            CategoryFlags.of(field_categories(key_text)),
                            _worth_scanning_key(key_text),
                        )
                        key_info[key_text] = info
                    child_node = self._member(node, key_text, info[1], budget, matches)
                    children.append((child, child_node, info[0]))
                stack.extend(reversed(children))
            elif isinstance(item, list | tuple):
                stack.extend(
                    (child, node.element(index), context)
                    for index, child in reversed(list(enumerate(item)))
                )
            elif (
                isinstance(item, int)
                and not isinstance(item, bool)
                and -(10**_MAX_INT_DIGITS) < item < 10**_MAX_INT_DIGITS
            ):
                self._scan_leaf(str(item), node, context, budget, matches)
        return matches

    def _member(
        self,
        parent: PathNode,
        key: str,
        worth_scanning: bool,
        budget: ValidationBudget,
        matches: list[PiiMatch],
    ) -> PathNode:
        """The node for member `key`; a key holding personal data is reported itself."""
        if not worth_scanning:
            return parent.member(key)
        found = self._scan(key, _NO_CONTEXT, budget)
        if not found:
            return parent.member(key)
        node = parent.member(key, found[0][0].value)
        matches.extend(
            PiiMatch(category, node.path, start, end, True, node.template)
            for category, start, end in found
        )
        return node

    def _scan_leaf(
        self,
        text: str,
        node: PathNode,
        context: CategoryFlags,
        budget: ValidationBudget,
        matches: list[PiiMatch],
    ) -> None:
        found = self._scan(text, context, budget)
        if found:
            path, template = node.path, node.template
            matches.extend(
                PiiMatch(category, path, start, end, False, template)
                for category, start, end in found
            )

    def _scan(
        self, text: str, context: CategoryFlags, budget: ValidationBudget
    ) -> list[tuple[Category, int, int]]:
        if len(text) > self._max_text_chars:
            text = text[: self._max_text_chars]
        budget.add_chars(len(text))
        if len(text) > _MEMO_CHARS:
            return scan_text(text, context, self._settings, budget)
        key = (text, context)
        found = self._memo.get(key)
        if found is not None:
            return found
        found = scan_text(text, context, self._settings, budget)
        # Remembered only when every validation actually ran: with the budget spent, a
        # candidate may have been accepted on the cheap checks alone (see ValidationBudget).
        if budget.remaining > 0:
            if len(self._memo) >= _MEMO_SIZE:
                self._memo.clear()
            self._memo[key] = found
        return found


def _worth_scanning_key(key: str) -> bool:
    """Keys are field names almost always; only one with a digit or `@` can be data."""
    return "@" in key or any(char.isdigit() for char in key[:256])
