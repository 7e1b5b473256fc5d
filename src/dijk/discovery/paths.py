"""Path templates learnt from raw paths: which segments are identifiers.

A segment is judged first by its **shape**:

- *identifier* shapes are always a parameter: integers of three or more digits, decimal
  numbers, UUIDs,
  hexadecimal hashes (16+ digits), e-mail addresses, timestamps, long random tokens (20+
  letters and digits mixed), letters and digits interleaved (``a1b2c3``, ``2d0xy2ovc``:
  two or more runs of digits), and any of these with a file extension or a custom
  method (``42.json`` becomes ``{id}.json``, ``a1b2c3:cancel`` ``{id}:cancel``);
- *static* shapes are names: letters, camel case, up to two ``-`` joins or three ``_``
  joins (``me``, ``reset-password``, ``phone-number-orders``, ``accountHolders``,
  ``account_holder_name``),
  versions (``v1``, ``v2beta``), and names with a short number (``oauth2``, ``ipv6``);
  they stay literal;
- *short numbers* (one or two digits) and *dates* are identifiers at the end of a path,
  but in the middle of one they may be a version (``/api/2/users``,
  ``/2021-01-01/domain``): they stay literal until a second value turns up at that place,
  then every such value there is a parameter;
- anything else (slugs such as ``my-first-post``, codes such as ``AB12CD``, lower-case
  letters that read like no word: ``kiqsnfukezjz``) is *ambiguous*, and **cardinality**
  decides: once more than ``ambiguous_limit`` distinct ambiguous values were seen at one
  place, or as soon as that place holds a parameter, it is a parameter for all of them.

So ``/users/17`` and ``/users/18`` are ``/users/{id}``, while ``/users/me`` stays, even
beside thousands of numeric ids - once it has been called twice: a name seen only once at a
place where identifiers were seen three times or more is read as one of them
(:meth:`PathTree.resolve`), since one sighting cannot tell ``me`` from an id that looks
like a word. The tree that remembers places is bounded
(``max_nodes``): past it, an unknown segment at a place that already has a parameter goes
there, and otherwise is written as a parameter rather than grow the tree.

Templates use ``{}`` for a parameter internally (:data:`PARAM`); names are given when a
document is written (:func:`parameter_names`). Everything here is pure.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Final

__all__ = [
    "PARAM",
    "PathTree",
    "SegmentKind",
    "classify",
    "fold_templates",
    "parameter_names",
    "split_path",
    "template_segments",
]

PARAM: Final = "{}"
MAX_SEGMENTS: Final = 24
_MAX_SEGMENT_CHARS: Final = 200


class SegmentKind:
    """Shape classes of a path segment (strings, so that they serialise as they are)."""

    INTEGER: Final = "integer"
    NUMBER: Final = "number"
    UUID: Final = "uuid"
    HEX: Final = "hex"
    EMAIL: Final = "email"
    DATE: Final = "date"
    DATE_TIME: Final = "date-time"
    TOKEN: Final = "token"  # noqa: S105 - a shape name, not a credential
    SHORT_NUMBER: Final = "short"
    STATIC: Final = "static"
    AMBIGUOUS: Final = "ambiguous"


IDENTIFIERS: Final = frozenset(
    {
        SegmentKind.INTEGER,
        SegmentKind.NUMBER,
        SegmentKind.UUID,
        SegmentKind.HEX,
        SegmentKind.EMAIL,
        SegmentKind.DATE_TIME,
        SegmentKind.TOKEN,
    }
)
# Short numbers and dates in the middle of a path may be versions (/api/2/, /2021-01-01/).
VERSION_LIKE: Final = frozenset({SegmentKind.SHORT_NUMBER, SegmentKind.DATE})

_INTEGER: Final = re.compile(r"-?[0-9]{3,}")
_SHORT: Final = re.compile(r"[0-9]{1,2}")
_UUID: Final = re.compile(
    r"[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}"
)
_HEX: Final = re.compile(r"(?=[0-9a-f]*[0-9])(?=[0-9a-f]*[a-f])[0-9a-f]{16,}|[0-9A-F]{16,}")
_EMAIL: Final = re.compile(r"[^@/\s]{1,64}(?:@|%40)[A-Za-z0-9.-]{1,253}\.[A-Za-z]{2,24}")
_DATE: Final = re.compile(r"(?:19|20)[0-9]{2}-[01][0-9]-[0-3][0-9]")
_DATE_TIME: Final = re.compile(
    r"(?:19|20)[0-9]{2}-[01][0-9]-[0-3][0-9][T ][0-2][0-9](?::|%3A)[0-5][0-9].*"
)
_NAME_WITH_EXTENSION: Final = re.compile(
    r"(.+?)(?:\.(?:json|jsonp|xml|yaml|yml|csv|txt|html?|pdf|png|jpe?g|gif|svg|zip|js|css|wsdl)"
    r"|:[A-Za-z][A-Za-z0-9]{0,40})"
)
# Requests a parameter place must have had before a name seen once beside it is read as
# one more value (two ids and one ``me`` keep ``me``).
_LONE_NAME_AFTER: Final = 3
_DECIMAL: Final = re.compile(r"-?[0-9]{1,15}\.[0-9]{1,15}")
_LOWER_WORD: Final = re.compile(r"[a-z]{8,48}[0-9]{0,2}")
_VOWELS: Final = frozenset("aeiouy")
# Letters and digits mixed in two or more runs of digits (a1b2c3, 2d0xy2ovc): generated.
_INTERLEAVED: Final = re.compile(r"(?=[A-Za-z0-9]{6,}$)[A-Za-z]*[0-9]+[A-Za-z]+[0-9]+[A-Za-z0-9]*")
_TOKEN: Final = re.compile(r"(?=[A-Za-z0-9_-]*[0-9])(?=[A-Za-z0-9_-]*[A-Za-z])[A-Za-z0-9_-]{20,}")
_STATIC: Final = re.compile(
    r"[A-Za-z][a-z]*(?:[A-Z][a-z]*)*(?:[-.][A-Za-z][a-z]*(?:[A-Z][a-z]*)*)?"
    r"|[a-z]{2,}(?:-[a-z]{2,}){2}"
    r"|[A-Za-z][a-z]*(?:_[A-Za-z][a-z]*){1,3}"
    r"|v[0-9]{1,2}(?:\.[0-9]{1,2})?(?:alpha|beta)?[0-9]?"
    r"|[A-Za-z]{2,}[0-9]{1,2}|[0-9]\.[0-9]"
)
# A file extension (42.json) or a custom method (Google's {name}:cancel) after an id.
_EXTENSION: Final = re.compile(r"(.+?)(\.[A-Za-z][A-Za-z0-9]{0,5}|:[A-Za-z][A-Za-z0-9]{0,40})")


def classify(segment: str) -> str:
    """The shape class of one (non-empty) segment."""
    if _SHORT.fullmatch(segment):
        return SegmentKind.SHORT_NUMBER
    if _INTEGER.fullmatch(segment):
        return SegmentKind.INTEGER
    if len(segment) > _MAX_SEGMENT_CHARS:
        return SegmentKind.TOKEN
    if _UUID.fullmatch(segment):
        return SegmentKind.UUID
    if _DATE.fullmatch(segment):
        return SegmentKind.DATE
    if _DATE_TIME.fullmatch(segment):
        return SegmentKind.DATE_TIME
    if ("@" in segment or "%40" in segment) and _EMAIL.fullmatch(segment):
        return SegmentKind.EMAIL
    if _HEX.fullmatch(segment):
        return SegmentKind.HEX
    if _DECIMAL.fullmatch(segment):
        return SegmentKind.NUMBER
    named = _NAME_WITH_EXTENSION.fullmatch(segment)
    if named is not None and classify(named.group(1)) == SegmentKind.STATIC:
        return SegmentKind.STATIC  # add-domain.json, openapi.yaml, projects:list
    if _STATIC.fullmatch(segment) and len(segment) <= 48:
        if _LOWER_WORD.fullmatch(segment) and _random_looking(segment):
            return SegmentKind.AMBIGUOUS
        return SegmentKind.STATIC
    if _INTERLEAVED.match(segment) or _TOKEN.fullmatch(segment):
        return SegmentKind.TOKEN
    return SegmentKind.AMBIGUOUS


def _random_looking(segment: str) -> bool:
    """Lower-case letters that read like no word: few vowels, or five consonants in a row."""
    letters = segment.rstrip("0123456789")
    vowels = sum(1 for char in letters if char in _VOWELS)
    if vowels < 0.2 * len(letters):
        return True
    run = longest = 0
    for char in letters:
        run = 0 if char in _VOWELS else run + 1
        longest = max(longest, run)
    return longest >= 5


def _split_extension(segment: str) -> tuple[str, str]:
    """``42.json`` → (``42``, ``.json``) when the stem is an identifier; else (segment, "")."""
    if ("." not in segment and ":" not in segment) or "@" in segment:
        return segment, ""
    found = _EXTENSION.fullmatch(segment)
    if found is None:
        return segment, ""
    stem = found.group(1)
    kind = classify(stem)
    if kind in IDENTIFIERS or kind in VERSION_LIKE:
        return stem, found.group(2)
    return segment, ""


def split_path(path: str) -> list[str]:
    """Segments of a path without its query; at most :data:`MAX_SEGMENTS` (the rest folded)."""
    cut = path.find("?")
    if cut >= 0:
        path = path[:cut]
    segments = path.split("/")[1:] if path.startswith("/") else path.split("/")
    if len(segments) > MAX_SEGMENTS:
        segments = [*segments[: MAX_SEGMENTS - 1], PARAM]
    return segments


def template_segments(template: str) -> list[str]:
    return template.split("/")[1:] if template.startswith("/") else template.split("/")


@dataclass(slots=True)
class _Node:
    children: dict[str, _Node] = field(default_factory=dict)
    param: _Node | None = None
    # What made this place a parameter for numbers / for ambiguous segments.
    numbers_merged: bool = False
    ambiguous_merged: bool = False
    short_children: int = 0
    ambiguous_children: int = 0
    count: int = 0  # requests that went through this place

    def size(self) -> int:
        total = 1 + sum(child.size() for child in self.children.values())
        return total + (self.param.size() if self.param is not None else 0)


def _merge_into(target: _Node, source: _Node) -> int:
    """Fold ``source``'s subtree into ``target``; the number of nodes that went away."""
    removed = 1
    target.count += source.count
    for name, child in source.children.items():
        existing = target.children.get(name)
        if existing is None:
            target.children[name] = child
        else:
            removed += _merge_into(existing, child)
    if source.param is not None:
        if target.param is None:
            target.param = source.param
        else:
            removed += _merge_into(target.param, source.param)
    target.numbers_merged |= source.numbers_merged
    target.ambiguous_merged |= source.ambiguous_merged
    return removed


class PathTree:
    """Places seen in paths, and which of them are parameters (see the module docstring).

    ``template(path)`` learns from the path and answers its template; ``resolve(template)``
    answers what a template learnt earlier is now (a place may have become a parameter
    since). Not thread-safe; one per learner.
    """

    __slots__ = ("_full", "_root", "ambiguous_limit", "max_nodes", "nodes")

    def __init__(self, *, max_nodes: int = 20_000, ambiguous_limit: int = 4) -> None:
        self._root = _Node()
        # Where paths go once the tree is full: a parameter of itself, never growing.
        self._full = _Node()
        self._full.param = self._full
        self.max_nodes = max_nodes
        self.ambiguous_limit = ambiguous_limit
        self.nodes = 1

    def template(self, path: str) -> str:
        return self.learn(split_path(path))

    def learn(self, segments: Sequence[str]) -> str:
        node = self._root
        out: list[str] = []
        last = len(segments) - 1
        for index, raw in enumerate(segments):
            if raw == PARAM:
                node = self._param(node)
                out.append(PARAM)
                continue
            segment, extension = _split_extension(raw) if "." in raw or ":" in raw else (raw, "")
            node, written = self._step(node, segment, index == last)
            node.count += 1
            out.append(written + extension if written == PARAM else raw)
        return "/" + "/".join(out)

    def _param(self, node: _Node) -> _Node:
        if node.param is None:
            if self.nodes >= self.max_nodes:
                return self._full
            node.param = _Node()
            self.nodes += 1
        return node.param

    def _step(self, node: _Node, segment: str, last: bool) -> tuple[_Node, str]:
        child = node.children.get(segment)
        if child is not None:
            return child, segment
        kind = classify(segment) if segment else SegmentKind.STATIC
        if kind in IDENTIFIERS:
            return self._param(node), PARAM
        if kind in VERSION_LIKE:
            if node.numbers_merged or last:
                return self._param(node), PARAM
            if node.short_children >= 1:
                self._merge(node, kind)
                return self._param(node), PARAM
            node.short_children += 1
        elif kind == SegmentKind.AMBIGUOUS:
            if node.ambiguous_merged or node.param is not None:
                return self._param(node), PARAM  # beside a parameter: one more value
            if node.ambiguous_children >= self.ambiguous_limit:
                self._merge(node, SegmentKind.AMBIGUOUS)
                return self._param(node), PARAM
            node.ambiguous_children += 1
        if self.nodes >= self.max_nodes:
            return self._param(node), PARAM  # full: a parameter rather than a new place
        child = _Node()
        node.children[segment] = child
        self.nodes += 1
        return child, segment

    def _merge(self, node: _Node, kind: str) -> None:
        """Make a place a parameter: its ``kind`` literals fold into the parameter."""
        if kind in VERSION_LIKE:
            node.numbers_merged = True
        else:
            node.ambiguous_merged = True
        target = self._param(node)
        for name in [name for name in node.children if _folds(name, node)]:
            child = node.children.pop(name)
            if target is self._full:  # no room for a parameter: forget the place
                self.nodes -= child.size()
            else:
                self.nodes -= _merge_into(target, child)
        node.short_children = sum(1 for name in node.children if classify(name) in VERSION_LIKE)
        node.ambiguous_children = sum(
            1 for name in node.children if classify(name) == SegmentKind.AMBIGUOUS
        )

    def resolve(self, template: str) -> str:
        """The template as the tree sees it now (literals of merged places become ``{}``)."""
        node: _Node | None = self._root
        out: list[str] = []
        for segment in template_segments(template):
            if node is None:
                out.append(segment)
                continue
            if segment.startswith(PARAM):
                node = node.param
                out.append(segment)
                continue
            if node.param is not None and _folds(segment, node):
                stem, extension = _split_extension(segment)
                node = node.param
                out.append(PARAM + extension if stem != segment else PARAM)
                continue
            child = node.children.get(segment)
            if child is not None and self._lone_name(node, child, segment):
                node = node.param
                out.append(PARAM)
                continue
            if child is not None:
                node = child
                out.append(segment)
                continue
            node = None
            out.append(segment)
        return "/" + "/".join(out)

    def _lone_name(self, node: _Node, child: _Node, segment: str) -> bool:
        """A name seen once where identifiers are common is read as one of them.

        ``/users/me`` called once beside ``/users/{}`` called three times or more: until
        ``me`` is seen again, nothing tells it from an identifier that looks like a word.
        """
        param = node.param
        return (
            param is not None
            and param is not self._full
            and child.count == 1
            and param.count >= _LONE_NAME_AFTER
            and classify(segment) == SegmentKind.STATIC
        )


def _folds(segment: str, node: _Node) -> bool:
    """Whether a literal at a merged place belongs to its parameter."""
    stem, _ = _split_extension(segment)
    kind = classify(stem) if stem else SegmentKind.STATIC
    if kind in IDENTIFIERS:
        return True
    if kind in VERSION_LIKE:
        return node.numbers_merged
    if kind == SegmentKind.AMBIGUOUS:
        return node.ambiguous_merged or node.param is not None
    return False


def fold_templates(templates: Iterable[str], *, ambiguous_limit: int = 4) -> dict[str, str]:
    """Each template mapped to its canonical form over the whole set.

    Inventories merged from several gateways (or kept before and after a place became a
    parameter) can hold ``/posts/{}`` beside ``/posts/my-first-post``; the literal folds
    into the parameter when its shape says it may (a number, an ambiguous segment), never
    when it is a name (``/users/me`` stays).
    """
    tree = PathTree(max_nodes=1 << 30, ambiguous_limit=ambiguous_limit)
    ordered = sorted(set(templates), key=lambda text: text.count(PARAM), reverse=True)
    for template in ordered:
        tree.learn(template_segments(template))
    # Where a parameter exists, numbers and ambiguous literals beside it belong to it.
    _mark_param_places(tree._root)
    return {template: tree.resolve(template) for template in ordered}


def _mark_param_places(node: _Node) -> None:
    if node.param is not None:
        node.numbers_merged = True
        node.ambiguous_merged = True
    for child in node.children.values():
        _mark_param_places(child)
    if node.param is not None:
        _mark_param_places(node.param)


_NAME_CHARS: Final = re.compile(r"[^A-Za-z0-9]+")


def parameter_names(template: str) -> tuple[str, list[str]]:
    """Give each ``{}`` a name: the first ``id``, later ones after the literal before them.

    ``/users/{}/posts/{}`` → ``/users/{id}/posts/{postId}``; names are unique in a path.
    """
    segments = template_segments(template)
    names: list[str] = []
    out: list[str] = []
    previous = ""
    for segment in segments:
        if segment.startswith(PARAM):
            name = "id" if not names else _name_after(previous)
            base, counter = name, 2
            while name in names:
                name = f"{base}{counter}"
                counter += 1
            names.append(name)
            out.append("{" + name + "}" + segment[len(PARAM) :])
        else:
            out.append(segment)
            if segment:
                previous = segment
    return "/" + "/".join(out), names


def _name_after(literal: str) -> str:
    words = [word for word in _NAME_CHARS.split(literal) if word]
    if not words or not words[0][0].isalpha():
        return "id"
    stem = words[-1]
    if stem.endswith("ies") and len(stem) > 4:
        stem = stem[:-3] + "y"
    elif stem.endswith("s") and not stem.endswith("ss") and len(stem) > 3:
        stem = stem[:-1]
    head = words[0].lower() if len(words) > 1 else stem[0].lower() + stem[1:]
    parts = [head, *(word.capitalize() for word in words[1:-1])]
    if len(words) > 1:
        parts.append(stem.capitalize())
    return "".join(parts) + "Id"
