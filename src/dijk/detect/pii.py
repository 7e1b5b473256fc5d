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
The JSON walk does per value only what it must: one look-up of what the key says, one
look-up in the memo; path text and nodes are built for values with findings only.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from dijk.detect.pii_digits import CHARS_PER_VALIDATION
from dijk.detect.pii_fields import field_categories
from dijk.detect.pii_model import Category, CategoryFlags, PiiMatch, new_match
from dijk.detect.pii_paths import PathNode
from dijk.detect.pii_text import (
    Finding,
    TextSettings,
    ValidationBudget,
    scan_text,
    settings_for_region,
)

__all__ = ["DEFAULT_MAX_TEXT_CHARS", "Category", "PiiDetector", "PiiMatch", "field_categories"]

DEFAULT_MAX_TEXT_CHARS = 1_048_576
# JSON integers longer than this are no identifier anyone uses (and `str()` of a huge
# int is itself slow): they are not scanned.
_MAX_INT_DIGITS = 24
_INT_BOUND = 10**_MAX_INT_DIGITS
_NO_CONTEXT = CategoryFlags()
_KEY_INFO_SIZE = 4096
# Nodes of places seen, kept across documents (see `PiiDetector._roots`)
_NODE_LIMIT = 32_768
_ROOT_LIMIT = 64
_MEMO_CHARS = 128
_MEMO_SIZE = 16_384


class _Context:
    """What a field name says (its categories) and the memo of values scanned under it."""

    __slots__ = ("flags", "table")

    def __init__(self, flags: CategoryFlags, table: dict[str, list[Finding]]) -> None:
        self.flags = flags
        self.table = table


class _ValueMemo:
    """Short values -> their findings, one table per context, `_MEMO_SIZE` entries in all.

    Per context so that the hot path looks a value up by its text alone (a `CategoryFlags`
    hashes in Python). Cleared whole when full: simple, and the next documents refill it.
    """

    __slots__ = ("_size", "_tables")

    def __init__(self) -> None:
        self._tables: dict[CategoryFlags, dict[str, list[Finding]]] = {}
        self._size = 0

    def table(self, context: CategoryFlags) -> dict[str, list[Finding]]:
        return self._tables.setdefault(context, {})

    def add(self, table: dict[str, list[Finding]], text: str, found: list[Finding]) -> None:
        if self._size >= _MEMO_SIZE:
            self.clear()
        table[text] = found
        self._size += 1

    def clear(self) -> None:
        for table in self._tables.values():  # cleared in place: contexts hold them
            table.clear()
        self._size = 0

    def __len__(self) -> int:
        return self._size

    def __contains__(self, key: object) -> bool:
        if not isinstance(key, tuple) or len(key) != 2:
            return False
        text, context = key
        table = self._tables.get(context)
        return table is not None and text in table


# What a key says: (context for its value, whether the key itself could be data)
_KeyInfo = tuple[_Context, bool]
# A container being walked: its items, its node, the context of its elements (lists) or
# None (objects), and the nodes of members whose key is personal data (objects)
_Frame = tuple[Iterator[Any], PathNode, _Context | None, dict[str, PathNode] | None]


class PiiDetector:
    """Finds personal data; compiled once from configuration, then pure and reentrant.

    `region` is the default phone region (ISO 3166 alpha-2). `categories` limits what is
    looked for (default: all). A string longer than `max_text_chars` is scanned in its
    first `max_text_chars` characters only.

    Raises ValueError for an unknown region or category: configuration errors.
    """

    __slots__ = (
        "_contexts",
        "_key_info",
        "_max_text_chars",
        "_memo",
        "_no_context",
        "_node_count",
        "_plain_keys",
        "_roots",
        "_settings",
    )

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
        # Short values -> their findings. APIs return the same values again and again
        # (a page of customers); scanning one costs tens of microseconds of Python, a
        # look-up well under one. The result depends only on the text, the context and the
        # settings, so the memo is exact; it is bounded and lives in process memory only
        # (it holds values, like the request being served does, and is never written out).
        self._memo = _ValueMemo()
        self._contexts: dict[CategoryFlags, _Context] = {}
        self._no_context = self._context(_NO_CONTEXT)
        # Field names -> what they say (see `_KeyInfo`). The same few keys come back in
        # every document; the answer depends on the key alone, so it is kept (bounded).
        self._key_info: dict[str, _KeyInfo] = {}
        # The keys among those that cannot be data: an object whose keys are all here
        # (one C-level `issuperset`) needs no look at its keys.
        self._plain_keys: set[str] = set()
        # The nodes of the places seen (`$[3].email`), kept across documents like the
        # memo: a value found again at the same place gets the same matches (the same
        # immutable `PiiMatch` objects), with their paths built once. At most
        # `_NODE_LIMIT` nodes are kept; past that, nodes are made per document.
        self._roots: dict[str, PathNode] = {}
        self._node_count = 0

    def forget(self) -> None:
        """Drop what was remembered (values seen, field names, library validations), e.g.
        to measure the cost of a document never seen before."""
        from dijk.detect.pii_digits import phone_is_valid
        from dijk.detect.pii_identifiers import iban_checksum_valid, iban_is_valid

        self._memo.clear()
        self._key_info.clear()
        self._plain_keys.clear()
        self._roots.clear()
        self._node_count = 0
        phone_is_valid.cache_clear()
        iban_is_valid.cache_clear()
        iban_checksum_valid.cache_clear()

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
            new_match(category, path, start, end, False, path, None)
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
        if len(self._key_info) > _KEY_INFO_SIZE:
            self._key_info.clear()
            self._plain_keys.clear()
        root = self._root(path)
        exact = True
        if isinstance(value, dict | list | tuple):
            exact = self._walk(value, root, budget, matches)
        else:
            text = _leaf_text(value)
            if text is not None:
                _add(matches, self._lookup(text, self._no_context, budget), root)
        if not exact:
            # A key that is not a string (`{1: ...}`, not from a JSON parser) shares its
            # path with `"1"`: the node would not say which, so the masker reads paths.
            matches = [
                new_match(m.category, m.path, m.start, m.end, m.in_key, m.path_template, None)
                for m in matches
            ]
        return matches

    def _walk(
        self,
        document: dict[Any, Any] | list[Any] | tuple[Any, ...],
        root: PathNode,
        budget: ValidationBudget,
        matches: list[PiiMatch],
    ) -> bool:
        """Depth first, in document order, with a stack of iterators (no recursion).

        This loop runs once per value of every response, so it does little: what the key
        says is one look-up, a value seen before is another. Returns False when an object
        key was not a string (see `scan_json`).
        """
        key_info = self._key_info
        frames: list[_Frame] = []
        exact = self._enter(document, root, self._no_context, budget, matches, frames)
        while frames:
            items, node, element_context, labelled = frames[-1]
            if element_context is None:  # the members of an object
                for key, child in items:
                    info = key_info.get(key)
                    if info is None:
                        info = self._key_text_info(key)
                    if isinstance(child, str):
                        text = child
                    elif isinstance(child, dict | list | tuple):
                        key_text = key if isinstance(key, str) else str(key)
                        child_node = (labelled.get(key_text) if labelled else None) or self._node(
                            node, key_text
                        )
                        all_str = self._enter(child, child_node, info[0], budget, matches, frames)
                        exact = exact and all_str
                        break
                    else:
                        scalar = _scalar_text(child)
                        if scalar is None:
                            continue
                        text = scalar
                    found = self._value(text, info[0], budget)
                    if found:
                        key_text = key if isinstance(key, str) else str(key)
                        leaf = labelled.get(key_text) if labelled else None
                        _add(matches, found, leaf or self._node(node, key_text))
                else:
                    frames.pop()
            else:  # the elements of a list
                for index, child in items:
                    if isinstance(child, str):
                        text = child
                    elif isinstance(child, dict | list | tuple):
                        child_node = self._node(node, index)
                        all_str = self._enter(
                            child, child_node, element_context, budget, matches, frames
                        )
                        exact = exact and all_str
                        break
                    else:
                        scalar = _scalar_text(child)
                        if scalar is None:
                            continue
                        text = scalar
                    found = self._value(text, element_context, budget)
                    if found:
                        _add(matches, found, self._node(node, index))
                else:
                    frames.pop()
        return exact

    def _enter(
        self,
        container: dict[Any, Any] | list[Any] | tuple[Any, ...],
        node: PathNode,
        context: _Context,
        budget: ValidationBudget,
        matches: list[PiiMatch],
        frames: list[_Frame],
    ) -> bool:
        """Start walking a container: its frame on the stack (an object's keys scanned
        first). `context` is what the key holding it says, which a list passes on."""
        if isinstance(container, dict):
            labelled, all_str = self._enter_object(container, node, budget, matches)
            frames.append((iter(container.items()), node, None, labelled))
            return all_str
        frames.append((iter(enumerate(container)), node, context, None))
        return True

    def _root(self, path: str) -> PathNode:
        if self._node_count >= _NODE_LIMIT or len(self._roots) > _ROOT_LIMIT:
            self._roots.clear()  # start afresh; matches already made keep their nodes
            self._node_count = 0
        root = self._roots.get(path)
        if root is None:
            root = self._roots[path] = PathNode.root(path)
        return root

    def _node(self, parent: PathNode, segment: str | int) -> PathNode:
        """The node of member `segment` (a key) or element `segment` (an index) of
        `parent`: the one kept from an earlier document, or a new one (kept while there
        is room)."""
        children = parent.children
        if children is not None:
            node = children.get(segment)
            if node is not None:
                return node
        node = PathNode(parent, segment)
        if self._node_count < _NODE_LIMIT:
            if children is None:
                children = parent.children = {}
            children[segment] = node
            self._node_count += 1
        return node

    def _value(self, text: str, context: _Context, budget: ValidationBudget) -> list[Finding]:
        """`_lookup` for the walk (the same steps; a call less per value)."""
        if len(text) > self._max_text_chars:
            text = text[: self._max_text_chars]
        budget.remaining += len(text) // CHARS_PER_VALIDATION  # `add_chars`, inlined
        if len(text) <= _MEMO_CHARS:
            found = context.table.get(text)
            if found is not None:
                return found
        return self._scan_new(text, context, budget)

    def _key_text_info(self, key: Any) -> _KeyInfo:
        key_text = key if isinstance(key, str) else str(key)
        return self._key_info.get(key_text) or self._describe_key(key_text)

    def _enter_object(
        self,
        document: dict[Any, Any],
        node: PathNode,
        budget: ValidationBudget,
        matches: list[PiiMatch],
    ) -> tuple[dict[str, PathNode] | None, bool]:
        """Scan the keys of an object that could be data; their findings come first.

        Returns the nodes of members whose key holds personal data (their templates
        read `[<category>]`), and whether every key was a string.
        """
        if self._plain_keys.issuperset(document):
            return None, True
        labelled: dict[str, PathNode] = {}
        all_str = True
        key_info = self._key_info
        for key in document:
            if not isinstance(key, str):
                all_str = False
                key = str(key)
            info = key_info.get(key) or self._describe_key(key)
            if not info[1]:
                continue
            found = self._lookup(key, self._no_context, budget)
            if not found:
                continue
            member = node.member(key, found[0][0].value)
            labelled[key] = member
            path, template = member.path, member.template
            matches.extend(
                new_match(category, path, start, end, True, template, member)
                for category, start, end in found
            )
        return labelled, all_str

    def _describe_key(self, key: str) -> _KeyInfo:
        info = (self._context(CategoryFlags.of(field_categories(key))), _worth_scanning_key(key))
        self._key_info[key] = info
        if not info[1]:
            self._plain_keys.add(key)
        return info

    def _context(self, flags: CategoryFlags) -> _Context:
        context = self._contexts.get(flags)
        if context is None:
            context = _Context(flags, self._memo.table(flags))
            self._contexts[flags] = context
        return context

    def _scan(self, text: str, context: CategoryFlags, budget: ValidationBudget) -> list[Finding]:
        """Findings in one string under `context` (memo first), budget counted."""
        return self._lookup(text, self._context(context), budget)

    def _lookup(self, text: str, context: _Context, budget: ValidationBudget) -> list[Finding]:
        if len(text) > self._max_text_chars:
            text = text[: self._max_text_chars]
        budget.add_chars(len(text))
        found = context.table.get(text) if len(text) <= _MEMO_CHARS else None
        if found is None:
            found = self._scan_new(text, context, budget)
        return found

    def _scan_new(self, text: str, context: _Context, budget: ValidationBudget) -> list[Finding]:
        """A value not in the memo (its characters already added to the budget)."""
        found = scan_text(text, context.flags, self._settings, budget)
        # Remembered only when every validation actually ran: with the budget spent, a
        # candidate may have been accepted on the cheap checks alone (see ValidationBudget).
        if len(text) <= _MEMO_CHARS and budget.remaining > 0:
            self._memo.add(context.table, text, found)
        return found


def _leaf_text(value: Any) -> str | None:
    """The text scanned for a JSON scalar: strings, and integers of sane length."""
    if isinstance(value, str):
        return value
    return _scalar_text(value)


def _scalar_text(value: Any) -> str | None:
    """The text of an integer of sane length; None for anything else that is no string."""
    if isinstance(value, int) and not isinstance(value, bool) and -_INT_BOUND < value < _INT_BOUND:
        return str(value)
    return None


def _add(matches: list[PiiMatch], found: list[Finding], node: PathNode) -> None:
    """The matches of `found` at `node`: made once per node and findings (the memo gives
    the same findings list for the same value, so a value seen again at the same place
    costs a look-up)."""
    last = node.findings
    if last is not None and last[0] is found:
        matches.extend(last[1])
        return
    path, template = node.path, node.template
    made = [
        new_match(category, path, start, end, False, template, node)
        for category, start, end in found
    ]
    node.findings = (found, made)
    matches.extend(made)


def _worth_scanning_key(key: str) -> bool:
    """Keys are field names almost always; only one with a digit or `@` can be data."""
    return "@" in key or any(char.isdigit() for char in key[:256])
