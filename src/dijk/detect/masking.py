"""Masking personal data in parsed JSON documents and in text; keyed pseudonyms.

    detector = PiiDetector()
    masker = Masker(strategy=Strategy.MASK, fields={"$.accounts[*].bsn": Strategy.DROP})
    masked = masker.mask_json(document, detector.scan_json(document))

The result is a new JSON value (the input is not changed); the caller serialises it,
so Content-Length is computed from the masked body. Objects and lists on the way to a
finding are copied; the parts of the document without findings may be shared with the
input rather than copied, so treat the result as read-only. Nothing here does I/O.

Strategies, for each finding (a `PiiMatch`) or each value a field rule selects:

- `mask` replaces the personal data in place and keeps the rest of the string:
  e-mail `j***@example.nl` (first character and domain kept); phone all digits but the
  last 2 (`+** * ****** 78`); IBAN every character but the last 4, separators kept
  (`NL91 ABNA 0417 1643 00` -> `**** **** **** **43 00`, compact `**************4300`);
  card all digits but the last 4; BSN, date of birth and IP every digit/letter
  (separators kept); postcode the letters (`1012 **`: the 4-digit area is coarse);
  a secret becomes `********` whatever its length. A value selected by a field rule
  is rendered as the category found in it or, failing that, the category its field name
  implies (`email`, `iban`, `phone`, `bsn`, ...); with neither, every letter and digit
  is masked.
- `hash` replaces the personal data with a keyed pseudonym `pii:<category>:<16 hex>`,
  HMAC-SHA256 over the normalised value (see `pseudonymise`): the same person gets the
  same pseudonym in every response and log, without the value being recoverable
  without the key.
- `drop` removes the object member that holds personal data (in its value or its key);
  an element of a list is replaced by `null`, so the positions of the other elements
  stay; a document that is itself a string with personal data becomes `null`.

Masked numbers become strings (`"bsn": 123456782` -> `"bsn": "*********"`).
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import phonenumbers

from dijk.detect.pii_fields import field_categories, key_words
from dijk.detect.pii_model import Category, PiiMatch
from dijk.detect.pii_paths import PathNode

__all__ = [
    "MIN_KEY_BYTES",
    "FieldRule",
    "Masker",
    "Strategy",
    "mask_value",
    "normalise",
    "pseudonymise",
]

MIN_KEY_BYTES = 16
SECRET_MASK = "********"  # noqa: S105 - what a secret is replaced with
_PSEUDONYM_HEX_CHARS = 16
# Renderings of short values remembered per masker (the same customers come back in
# every response; a pseudonym costs an HMAC and, for a phone number, a parse). Exact,
# bounded, process memory only, like the detector's memo.
_RENDER_MEMO_CHARS = 256
_RENDER_MEMO_SIZE = 16_384


class Strategy(StrEnum):
    """What to do with personal data in a response or a record."""

    MASK = "mask"
    HASH = "hash"
    DROP = "drop"


# --- pseudonyms --------------------------------------------------------------------------


def pseudonymise(value: str, key: bytes, category: Category | None, *, region: str = "NL") -> str:
    """`pii:<category>:<16 hex>`: HMAC-SHA256 of the normalised value under `key`.

    The category is part of the MAC input, so the same digits as a phone number and as
    a BSN give unrelated pseudonyms. 64 bits are plenty to count distinct data subjects
    and to join records, and short enough for logs. `key` must be at least 16 bytes.
    """
    if len(key) < MIN_KEY_BYTES:
        raise ValueError(f"pseudonym key must be at least {MIN_KEY_BYTES} bytes")
    label = category.value if category is not None else "field"
    message = f"{label}\x00{normalise(value, category, region=region)}".encode()
    digest = hmac.new(key, message, hashlib.sha256).hexdigest()
    return f"pii:{label}:{digest[:_PSEUDONYM_HEX_CHARS]}"


def normalise(value: str, category: Category | None, *, region: str = "NL") -> str:
    """The form a value is pseudonymised in, so different spellings of it agree.

    `J.Jansen@Example.NL` and `j.jansen@example.nl`, `06-12345678` and `+31612345678`,
    `NL91 ABNA 0417 1643 00` and `NL91ABNA0417164300` give the same pseudonym.
    """
    text = value.strip()
    if category is Category.EMAIL:
        return text.lower()
    if category is Category.PHONE:
        return _normalise_phone(text, region)
    if category in (Category.IBAN, Category.POSTCODE):
        return "".join(char for char in text if char.isalnum()).upper()
    if category is Category.BSN:
        return "".join(char for char in text if char.isdigit()).zfill(9)
    if category is Category.CARD:
        return "".join(char for char in text if char.isdigit())
    if category is Category.IP:
        try:
            return ipaddress.ip_address(text.strip("[]")).compressed
        except ValueError:
            return text.lower()
    if category is Category.DATE_OF_BIRTH:
        return _normalise_date(text)
    return text


def _normalise_phone(text: str, region: str) -> str:
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        number = None
    if number is not None and phonenumbers.is_possible_number(number):
        return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    digits = "".join(char for char in text if char.isdigit())
    return ("+" + digits) if text.startswith("+") else digits


def _normalise_date(text: str) -> str:
    parts: list[str] = []
    current: list[str] = []
    for char in text[:10] if text[:4].isdigit() else text:
        if char.isdigit():
            current.append(char)
        elif current:
            parts.append("".join(current))
            current = []
    if current:
        parts.append("".join(current))
    if len(parts) == 3:
        if len(parts[0]) == 4:
            year, month, day = parts
        else:
            day, month, year = parts
        return f"{int(year):04d}-{int(month):02d}-{int(day):02d}"
    return text.lower()


# --- the `mask` rendering ----------------------------------------------------------------


def mask_value(value: str, category: Category | None) -> str:
    """The `mask` rendering of one piece of personal data (see the module docstring)."""
    if category is Category.EMAIL:
        local, at, domain = value.rpartition("@")
        if at and local:
            return local[0] + "***@" + domain
        return _mask_all(value)
    if category is Category.PHONE:
        return _keep_last(value, 2, str.isdigit)
    if category is Category.IBAN:
        return _keep_last(value, 4, str.isalnum)
    if category is Category.CARD:
        return _keep_last(value, 4, str.isdigit)
    if category is Category.POSTCODE:
        return "".join("*" if char.isalpha() else char for char in value)
    if category is Category.SECRET:
        return SECRET_MASK
    return _mask_all(value)


def _mask_all(value: str) -> str:
    return "".join("*" if char.isalnum() else char for char in value)


def _keep_last(value: str, keep: int, counts: Callable[[str], bool]) -> str:
    """Mask every counted character except the last `keep` of them."""
    result = list(value)
    seen = 0
    for index in range(len(result) - 1, -1, -1):
        if counts(result[index]):
            seen += 1
            if seen > keep:
                result[index] = "*"
    return "".join(result)


# --- field rules -------------------------------------------------------------------------

_ANY_KEY = object()
_ANY_INDEX = object()
_Segment = str | int | object


@dataclass(frozen=True, slots=True)
class FieldRule:
    """A field spec entry: which values, and the strategy for them.

    `pattern` is either a bare field name (`iban`: every member named so, anywhere) or
    a path from the root: `$.accounts[*].iban`, `$.owner["e-mail"]`, `$.items[0].*`
    (`.name`, `["name"]`, `[n]`, `[*]` for any element, `.*` for any member). A rule
    selects the whole value at that place: for an object or list, every value in it.
    """

    pattern: str
    strategy: Strategy

    def segments(self) -> tuple[_Segment, ...] | None:
        """The parsed path, or None for a bare field name. ValueError if malformed."""
        if not self.pattern.startswith("$"):
            if not self.pattern:
                raise ValueError("empty field pattern")
            return None
        return _parse_path(self.pattern)


def _parse_path(pattern: str) -> tuple[_Segment, ...]:
    segments: list[_Segment] = []
    position = 1
    if len(pattern) == 1:
        raise ValueError("field pattern '$' would select the whole document")
    while position < len(pattern):
        char = pattern[position]
        if char == ".":
            end = position + 1
            while end < len(pattern) and pattern[end] not in ".[":
                end += 1
            name = pattern[position + 1 : end]
            if not name or any(char in "]\"'" for char in name):
                raise ValueError(f"bad member name {name!r} in field pattern {pattern!r}")
            segments.append(_ANY_KEY if name == "*" else name)
            position = end
        elif char == "[":
            end = pattern.find("]", position)
            if pattern.startswith('["', position):
                segment, position = _parse_quoted_key(pattern, position)
                segments.append(segment)
                continue
            if end == -1:
                raise ValueError(f"unclosed [ in field pattern {pattern!r}")
            inner = pattern[position + 1 : end]
            if inner == "*":
                segments.append(_ANY_INDEX)
            elif inner.isdigit():
                segments.append(int(inner))
            else:
                raise ValueError(f"bad index {inner!r} in field pattern {pattern!r}")
            position = end + 1
        else:
            raise ValueError(f"unexpected {char!r} in field pattern {pattern!r}")
    return tuple(segments)


def _parse_quoted_key(pattern: str, position: int) -> tuple[str, int]:
    decoder = json.JSONDecoder()
    try:
        key, end = decoder.raw_decode(pattern, position + 1)
    except json.JSONDecodeError as error:
        raise ValueError(f"bad quoted key in field pattern {pattern!r}") from error
    if not isinstance(key, str) or not pattern.startswith("]", end):
        raise ValueError(f"bad quoted key in field pattern {pattern!r}")
    return key, end + 1


# --- the masker --------------------------------------------------------------------------

_FIELD_NAME_CATEGORIES: dict[str, Category] = {
    "email": Category.EMAIL,
    "mail": Category.EMAIL,
    "iban": Category.IBAN,
    "card": Category.CARD,
    "pan": Category.CARD,
    "ip": Category.IP,
}

# Scan frames: (value, node, rule-states, governing rule index or -1, place result)
_Place = Callable[[Any], None]
_States = tuple[tuple[int, int], ...]


class Masker:
    """Applies a masking policy; compiled once from configuration, then pure.

    `strategy` applies to findings; `fields` maps field patterns (see `FieldRule`) to
    a strategy for every value they select, found or not. `categories` limits which
    findings are acted on (default: all). `key` is the pseudonym key, required when any
    strategy is `hash`. `region` is the phone region used to normalise phone numbers
    before pseudonymising. Raises ValueError for a bad pattern or a missing key.
    """

    __slots__ = (
        "_all_categories",
        "_bare",
        "_categories",
        "_key",
        "_paths",
        "_region",
        "_rendered",
        "_rules",
        "_strategy",
    )

    def __init__(
        self,
        *,
        strategy: Strategy | str = Strategy.MASK,
        fields: Mapping[str, Strategy | str] | None = None,
        categories: Iterable[Category | str] | None = None,
        key: bytes | None = None,
        region: str = "NL",
    ) -> None:
        self._strategy = Strategy(strategy)
        self._rules = tuple(
            FieldRule(pattern, Strategy(rule)) for pattern, rule in (fields or {}).items()
        )
        self._paths: dict[int, tuple[_Segment, ...]] = {
            index: segments
            for index, rule in enumerate(self._rules)
            if (segments := rule.segments()) is not None
        }
        bare: dict[str, int] = {}
        for index, rule in enumerate(self._rules):
            if not rule.pattern.startswith("$"):
                bare.setdefault(rule.pattern, index)
        self._bare = bare
        self._categories = (
            frozenset(Category)
            if categories is None
            else frozenset(Category(category) for category in categories)
        )
        uses_hash = self._strategy is Strategy.HASH or any(
            rule.strategy is Strategy.HASH for rule in self._rules
        )
        if uses_hash and (key is None or len(key) < MIN_KEY_BYTES):
            raise ValueError(f"strategy hash needs a key of at least {MIN_KEY_BYTES} bytes")
        self._key = key
        self._region = region
        self._all_categories = self._categories == frozenset(Category)
        self._rendered: dict[tuple[str, Category | None, Strategy], str] = {}

    # -- text ---------------------------------------------------------------------------

    def mask_text(self, text: str, matches: Iterable[PiiMatch]) -> str:
        """`text` with each finding replaced (`drop`: removed)."""
        spans = [match for match in matches if match.category in self._categories]
        return self._replace_spans(text, spans, self._strategy)

    # -- JSON ---------------------------------------------------------------------------

    def mask_json(self, document: Any, matches: Iterable[PiiMatch], path: str = "$") -> Any:
        """A new JSON value with findings and field-rule values masked.

        `matches` come from `PiiDetector.scan_json(document, path)` for this very
        document. A match that does not fit its value (an offset past its end) masks
        the whole value: when in doubt, hide.
        """
        if self._all_categories:
            relevant = matches if isinstance(matches, list) else list(matches)
        else:
            relevant = [match for match in matches if match.category in self._categories]
        if not self._rules and relevant:
            tree = _FindingTree.of(relevant, path)
            if tree is not None:
                return self._mask_tree(document, tree)
        return self._mask_walk(document, relevant, path)

    def _mask_tree(self, document: Any, tree: _FindingTree) -> Any:
        """Only the containers on the way to a finding are copied (without field rules).

        The same result as `_mask_walk`, which visits every value and looks its path up.
        """
        holder: list[Any] = [None]
        stack: list[tuple[Any, PathNode, list[Any] | dict[str, Any], Any]] = [
            (document, tree.root, holder, 0)
        ]
        below, values, keys = tree.below, tree.values, tree.keys
        drop = self._strategy is Strategy.DROP
        while stack:
            value, node, container, slot = stack.pop()
            if not isinstance(value, dict | list | tuple):
                found = values.get(node)
                if found:
                    self._mask_value_in(container, slot, value, found, drop)
                continue
            children = below.get(node)
            if children is None:
                continue  # (the document differs from the scan: nothing found in here)
            if isinstance(value, dict):
                copy = self._copy_object(value, children, keys)
                members = copy.members
                container[slot] = members
                renamed = copy.renamed
                for segment, child_node in children.items():
                    if not isinstance(segment, str) or segment not in value:
                        continue
                    new_key = renamed.get(segment, segment) if renamed else segment
                    if new_key is None:
                        continue
                    child = value[segment]
                    if isinstance(child, dict | list | tuple):
                        if child_node in below:
                            stack.append((child, child_node, members, new_key))
                        continue
                    found = values.get(child_node)
                    if found:
                        self._mask_value_in(members, new_key, child, found, drop)
            elif isinstance(value, list | tuple):
                items = list(value)
                container[slot] = items
                for segment, child_node in children.items():
                    if not isinstance(segment, int) or segment >= len(items):
                        continue
                    child = items[segment]
                    if isinstance(child, dict | list | tuple):
                        if child_node in below:
                            stack.append((child, child_node, items, segment))
                        continue
                    found = values.get(child_node)
                    if found:
                        self._mask_value_in(items, segment, child, found, drop)
        return holder[0]

    def _mask_value_in(
        self,
        container: list[Any] | dict[str, Any],
        slot: Any,
        value: Any,
        matches: list[PiiMatch],
        drop: bool,
    ) -> None:
        """Mask a scalar with findings in its place (`drop`: remove it)."""
        if drop:
            _drop(container, slot)
            return
        text = value if isinstance(value, str) else _scalar_text(value)
        if text is None:
            return
        if len(matches) == 1:  # the usual case, `_replace_spans` and `_render` inlined
            only = matches[0]
            start, end = only.start, only.end
            if 0 <= start < end <= len(text) and end - start <= _RENDER_MEMO_CHARS:
                piece = text[start:end]
                rendered = self._rendered.get((piece, only.category, self._strategy))
                if rendered is not None:
                    container[slot] = text[:start] + rendered + text[end:]
                    return
        container[slot] = self._replace_spans(text, matches, self._strategy)

    def _copy_object(
        self,
        value: dict[Any, Any],
        children: dict[str | int, PathNode],
        keys: dict[PathNode, list[PiiMatch]],
    ) -> _ObjectCopy:
        """A copy of an object, its keys that are personal data masked (or dropped)."""
        if not keys or not any(node in keys for node in children.values()):
            return _ObjectCopy(dict(value), None)
        members: dict[str, Any] = {}
        renamed: dict[str, str | None] = {}
        for key, child in value.items():
            node = children.get(key)
            key_matches = keys.get(node) if node is not None else None
            new_key = key
            if key_matches:
                if self._strategy is Strategy.DROP:
                    renamed[key] = None
                    continue
                new_key = self._replace_spans(key, key_matches, self._strategy)
            new_key = _unique_key(members, new_key)
            members[new_key] = child
            if new_key != key:
                renamed[key] = new_key
        return _ObjectCopy(members, renamed)

    def _mask_walk(self, document: Any, matches: Iterable[PiiMatch], path: str) -> Any:
        """Every value visited, its path looked up (field rules need the whole walk)."""
        by_path: dict[str, list[PiiMatch]] = {}
        by_key_path: dict[str, list[PiiMatch]] = {}
        for match in matches:
            target = by_key_path if match.in_key else by_path
            target.setdefault(match.path, []).append(match)
        result: list[Any] = [None]  # a dropped root stays None
        initial_states = tuple((index, 0) for index in self._paths)
        stack: list[tuple[Any, PathNode, _States, int, _Place]] = [
            (document, PathNode.root(path), initial_states, -1, _setter(result, 0))
        ]
        while stack:
            value, node, states, rule, place = stack.pop()
            self._visit(value, node, states, rule, place, by_path, by_key_path, stack)
        return result[0]

    def _visit(
        self,
        value: Any,
        node: PathNode,
        states: _States,
        rule: int,
        place: _Place,
        by_path: dict[str, list[PiiMatch]],
        by_key_path: dict[str, list[PiiMatch]],
        stack: list[tuple[Any, PathNode, _States, int, _Place]],
    ) -> None:
        if rule >= 0 and self._rules[rule].strategy is Strategy.DROP:
            place(_DROPPED)  # a list element (dropped members never get here)
        elif isinstance(value, dict):
            copy: dict[str, Any] = {}
            place(copy)
            frames = self._member_frames(value, node, states, rule, copy, by_path, by_key_path)
            stack.extend(reversed(frames))
        elif isinstance(value, list | tuple):
            items: list[Any] = []
            place(items)
            frames_list: list[tuple[Any, PathNode, _States, int, _Place]] = []
            for index, child in enumerate(value):
                items.append(None)
                child_node = node.element(index)
                child_states, child_rule = self._advance(states, rule, index, None)
                frames_list.append(
                    (child, child_node, child_states, child_rule, _setter(items, index))
                )
            stack.extend(reversed(frames_list))
        else:
            place(self._leaf(value, node, rule, by_path))

    def _member_frames(
        self,
        value: dict[Any, Any],
        node: PathNode,
        states: _States,
        rule: int,
        copy: dict[str, Any],
        by_path: dict[str, list[PiiMatch]],
        by_key_path: dict[str, list[PiiMatch]],
    ) -> list[tuple[Any, PathNode, _States, int, _Place]]:
        frames: list[tuple[Any, PathNode, _States, int, _Place]] = []
        for raw_key, child in value.items():
            key = raw_key if isinstance(raw_key, str) else str(raw_key)
            child_node = node.member(key)
            new_key = key
            key_matches = by_key_path.get(child_node.path) if by_key_path else None
            if key_matches:
                if self._strategy is Strategy.DROP:
                    continue
                new_key = self._replace_spans(key, key_matches, self._strategy)
            child_states, child_rule = self._advance(states, rule, None, key)
            if child_rule != rule and self._rules[child_rule].strategy is Strategy.DROP:
                continue
            new_key = _unique_key(copy, new_key)
            copy[new_key] = None
            frames.append((child, child_node, child_states, child_rule, _setter(copy, new_key)))
        return frames

    def _advance(
        self, states: _States, rule: int, index: int | None, key: str | None
    ) -> tuple[_States, int]:
        """Rule states of a child: path rules move one segment; a bare name matches."""
        if rule >= 0:
            return (), rule  # the whole subtree already belongs to a rule
        matched = -1
        next_states: list[tuple[int, int]] = []
        for rule_index, position in states:
            segments = self._paths[rule_index]
            segment = segments[position]
            if key is not None:
                fits = segment is _ANY_KEY or segment == key
            else:
                fits = segment is _ANY_INDEX or (isinstance(segment, int) and segment == index)
            if not fits:
                continue
            if position + 1 == len(segments):
                if matched < 0 or rule_index < matched:
                    matched = rule_index
            else:
                next_states.append((rule_index, position + 1))
        if key is not None and key in self._bare:
            bare = self._bare[key]
            if matched < 0 or bare < matched:
                matched = bare
        if matched >= 0:
            return (), matched
        return tuple(next_states), -1

    def _leaf(
        self, value: Any, node: PathNode, rule: int, by_path: dict[str, list[PiiMatch]]
    ) -> Any:
        matches = by_path.get(node.path) if by_path else None
        if rule >= 0:
            return self._apply_rule(value, node, self._rules[rule].strategy, matches)
        if not matches:
            return value
        if self._strategy is Strategy.DROP:
            return _DROPPED
        text = value if isinstance(value, str) else _scalar_text(value)
        if text is None:
            return value
        return self._replace_spans(text, matches, self._strategy)

    def _apply_rule(
        self, value: Any, node: PathNode, strategy: Strategy, matches: list[PiiMatch] | None
    ) -> Any:
        """A leaf selected by a MASK or HASH field rule."""
        text = value if isinstance(value, str) else _scalar_text(value)
        if text is None:
            return value
        category = matches[0].category if matches else _category_for_node(node)
        if strategy is Strategy.HASH:
            return self._pseudonym(text, category)
        return mask_value(text, category)

    def _replace_spans(self, text: str, matches: Iterable[PiiMatch], strategy: Strategy) -> str:
        if isinstance(matches, list) and len(matches) == 1:
            only = matches[0]
            if 0 <= only.start < only.end <= len(text):
                rendered = self._render(text[only.start : only.end], only.category, strategy)
                return text[: only.start] + rendered + text[only.end :]
        ordered = sorted(matches, key=lambda match: (match.start, -match.end))
        if any(not 0 <= match.start < match.end <= len(text) for match in ordered):
            category = ordered[0].category if ordered else None
            return self._render(text, category, strategy)
        pieces: list[str] = []
        position = 0
        for match in ordered:
            if match.start < position:
                if match.end > position:  # overlapping: extend the hidden part
                    pieces.append(
                        self._render(text[position : match.end], match.category, strategy)
                    )
                    position = match.end
                continue
            pieces.append(text[position : match.start])
            pieces.append(self._render(text[match.start : match.end], match.category, strategy))
            position = match.end
        pieces.append(text[position:])
        return "".join(pieces)

    def _render(self, text: str, category: Category | None, strategy: Strategy) -> str:
        if strategy is Strategy.DROP:
            return ""
        if len(text) > _RENDER_MEMO_CHARS:
            return self._render_new(text, category, strategy)
        memo_key = (text, category, strategy)
        rendered = self._rendered.get(memo_key)
        if rendered is None:
            rendered = self._render_new(text, category, strategy)
            if len(self._rendered) >= _RENDER_MEMO_SIZE:
                self._rendered.clear()
            self._rendered[memo_key] = rendered
        return rendered

    def _render_new(self, text: str, category: Category | None, strategy: Strategy) -> str:
        if strategy is Strategy.HASH:
            return self._pseudonym(text, category)
        return mask_value(text, category)

    def _pseudonym(self, text: str, category: Category | None) -> str:
        if self._key is None:  # pragma: no cover - the constructor ensures a key
            raise ValueError("no pseudonym key")
        return pseudonymise(text, self._key, category, region=self._region)


class _Dropped:
    __slots__ = ()


_DROPPED = _Dropped()


def _drop(container: list[Any] | dict[str, Any], slot: Any) -> None:
    """Remove a member, or null an element (the other elements keep their positions)."""
    if isinstance(container, dict):
        del container[slot]
    else:
        container[slot] = None


class _ObjectCopy:
    """A copied object and, if some of its keys were masked, old key -> new key (None:
    the member was dropped)."""

    __slots__ = ("members", "renamed")

    def __init__(self, members: dict[str, Any], renamed: dict[str, str | None] | None) -> None:
        self.members = members
        self.renamed = renamed


class _FindingTree:
    """The findings of one `scan_json` arranged by the detector's nodes (`PiiMatch.location`).

    `below` maps each container node on the way to a finding to its children on the way;
    `values` and `keys` hold the findings in a value and in a member's key.
    """

    __slots__ = ("below", "keys", "root", "values")

    def __init__(self, root: PathNode) -> None:
        self.root = root
        self.below: dict[PathNode, dict[str | int, PathNode]] = {}
        self.values: dict[PathNode, list[PiiMatch]] = {}
        self.keys: dict[PathNode, list[PiiMatch]] = {}

    @classmethod
    def of(cls, matches: list[PiiMatch], path: str) -> _FindingTree | None:
        """The tree, or None when a match has no location, or the locations do not come
        from one scan rooted at `path` (then the masker reads paths instead)."""
        first = matches[0].location
        if first is None:
            return None
        root = first
        while root.parent is not None:
            root = root.parent
        if root.segment != path:
            return None
        tree = cls(root)
        below, values, keys = tree.below, tree.values, tree.keys
        for match in matches:
            node = match.location
            if node is None:
                return None
            target = keys if match.in_key else values
            bucket = target.get(node)
            if bucket is not None:
                bucket.append(match)
                continue
            target[node] = [match]
            child = node
            parent = child.parent
            while parent is not None:
                children = below.get(parent)
                if children is None:
                    below[parent] = {child.segment: child}
                    child, parent = parent, parent.parent
                    continue
                linked = children.setdefault(child.segment, child)
                if linked is not child:
                    return None  # two nodes for one place: not from one scan
                break
            else:
                if child is not root:
                    return None
        return tree


def _setter(container: dict[str, Any] | list[Any], slot: str | int) -> _Place:
    """Puts a child's result in its slot; `_DROPPED` removes a member, nulls an element."""

    def place(value: Any) -> None:
        if value is not _DROPPED:
            container[slot] = value  # type: ignore[index]
        elif isinstance(container, dict):
            del container[slot]  # type: ignore[arg-type]
        else:
            container[slot] = None  # type: ignore[index]

    return place


def _scalar_text(value: Any) -> str | None:
    """The text of a JSON number, to be masked; None for true, false and null."""
    if isinstance(value, bool) or value is None:
        return None
    return str(value)


def _unique_key(target: dict[str, Any], key: str) -> str:
    """Masked keys can collide (`j***@x.nl` twice): suffix `~2`, `~3`, ... to keep both."""
    if key not in target:
        return key
    counter = 2
    while f"{key}~{counter}" in target:
        counter += 1
    return f"{key}~{counter}"


def _category_for_node(node: PathNode) -> Category | None:
    """The category a field name implies, to render a rule-selected value."""
    current: PathNode | None = node
    while current is not None and isinstance(current.segment, int):
        current = current.parent
    if current is None or current.parent is None or not isinstance(current.segment, str):
        return None
    key = current.segment
    words = key_words(key)
    for word in words:
        if word in _FIELD_NAME_CATEGORIES:
            return _FIELD_NAME_CATEGORIES[word]
    joined = "".join(words)
    if "email" in joined:
        return Category.EMAIL
    if "iban" in joined:
        return Category.IBAN
    implied = field_categories(key)
    for category in (
        Category.SECRET,
        Category.BSN,
        Category.PHONE,
        Category.DATE_OF_BIRTH,
        Category.POSTCODE,
    ):
        if category in implied:
            return category
    return None
