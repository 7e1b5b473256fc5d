"""Paths to values inside a JSON document: `$.accounts[3].email`.

The detector and the masker build paths the same way, from the same nodes, so a path
in a `PiiMatch` finds its value again. Path strings are built only when asked for (a
match was found), from the node up to the root, and then remembered on the node.

Syntax: `$` is the root; a key that is an identifier (`[A-Za-z_][A-Za-z0-9_]*`) reads
`.key`, any other key `["key"]` (JSON string escaping); a list index reads `[3]`. In the
template, every index reads `[*]` and a key that is itself personal data reads
`[<category>]`, so templates are safe to store and group by.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from dijk.detect.pii_model import Category, PiiMatch

__all__ = ["PathNode", "format_key", "found", "resolve_node", "resolve_path"]


def format_key(key: str) -> str:
    """The path segment for object key `key`."""
    identifier = key.replace("_", "a")
    if identifier.isascii() and identifier.isalnum() and not key[0].isdigit():
        return "." + key
    return "[" + json.dumps(key, ensure_ascii=False) + "]"


class PathNode:
    """One step of the walk: the root, an object member, or a list element."""

    __slots__ = ("_path", "_template", "children", "findings", "key_label", "parent", "segment")

    def __init__(
        self,
        parent: PathNode | None,
        segment: str | int,
        key_label: str = "",
    ) -> None:
        self.parent = parent
        # the root holds its path text; a member its key; an element its index
        self.segment = segment
        # for a member whose key is personal data: the category, shown in templates
        self.key_label = key_label
        self._path: str | None = segment if parent is None and isinstance(segment, str) else None
        self._template: str | None = self._path
        # for the detector, which keeps the nodes of the places it has seen (see
        # `PiiDetector`): the children by key or index, and the value's last findings
        self.children: dict[str | int, PathNode] | None = None
        self.findings: tuple[list[tuple[Category, int, int]], list[PiiMatch]] | None = None

    @classmethod
    def root(cls, path: str = "$") -> PathNode:
        return cls(None, path)

    def member(self, key: str, key_label: str = "") -> PathNode:
        return PathNode(self, key, key_label)

    def element(self, index: int) -> PathNode:
        return PathNode(self, index)

    @property
    def path(self) -> str:
        if self._path is None:
            self._path = self._build(template=False)
        return self._path

    @property
    def template(self) -> str:
        if self._template is None:
            self._template = self._build(template=True)
        return self._template

    def _build(self, *, template: bool) -> str:
        """Iterative, so a deep document cannot hit the recursion limit."""
        parent = self.parent
        if parent is not None:  # usually the parent's is known: one concatenation
            known = parent._template if template else parent._path
            if known is not None:
                return known + self._segment_text(template=template)
        segments: list[str] = []
        node: PathNode | None = self
        prefix = ""
        while node is not None:
            cached = node._template if template else node._path
            if cached is not None:
                prefix = cached
                break
            segments.append(node._segment_text(template=template))
            node = node.parent
        segments.append(prefix)
        return "".join(reversed(segments))

    def _segment_text(self, *, template: bool) -> str:
        if isinstance(self.segment, int):
            return "[*]" if template else f"[{self.segment}]"
        if template and self.key_label:
            return f"[<{self.key_label}>]"
        return format_key(self.segment)


_MISSING = object()


def resolve_path(document: object, path: str, root: str = "$") -> tuple[object, str | int | None]:
    """The value at `path` in `document` and the last segment (a key or an index).

    `path` is a `PiiMatch.path` built by `PathNode` from `root`. Returns `(_MISSING,
    None)`, tested with :func:`found`, when the document has no such place. Linear in the
    length of the path; nothing is compiled.
    """
    if not path.startswith(root):
        return _MISSING, None
    position = len(root)
    current: object = document
    last: str | int | None = None
    decoder = json.JSONDecoder()
    while position < len(path):
        char = path[position]
        if char == ".":
            end = position + 1
            while end < len(path) and path[end] not in ".[":
                end += 1
            key: str | int = path[position + 1 : end]
            position = end
        elif path.startswith('["', position):
            try:
                key, end = decoder.raw_decode(path, position + 1)
            except json.JSONDecodeError:
                return _MISSING, None
            if not isinstance(key, str) or not path.startswith("]", end):
                return _MISSING, None
            position = end + 1
        elif char == "[":
            end = path.find("]", position)
            if end < 0 or not path[position + 1 : end].isdigit():
                return _MISSING, None
            key = int(path[position + 1 : end])
            position = end + 1
        else:
            return _MISSING, None
        if isinstance(key, int):
            if not isinstance(current, list | tuple) or key >= len(current):
                return _MISSING, None
            current = current[key]
        else:
            if not isinstance(current, dict) or key not in current:
                return _MISSING, None
            current = current[key]
        last = key
    return current, last


def found(value: object) -> bool:
    """Whether :func:`resolve_path` found its place."""
    return value is not _MISSING


def resolve_node(
    document: object, node: PathNode, containers: dict[PathNode, object] | None = None
) -> tuple[object, str | int | None]:
    """Like :func:`resolve_path`, from a `PiiMatch.location` instead of its path text.

    Nothing is parsed: the node's segments are followed from the root. `containers`, when
    given, remembers the containers found on the way (the detector gives the findings in
    one object the same parent node), so siblings cost one look-up each.
    """
    parent = node.parent
    if parent is None:
        return document, None
    container: object = _MISSING
    if containers is not None:
        container = containers.get(parent, _MISSING)
    if container is _MISSING:
        chain: list[str | int] = []
        current: PathNode | None = parent
        while current is not None and current.parent is not None:
            chain.append(current.segment)
            current = current.parent
        container = document
        for segment in reversed(chain):
            container = _child(container, segment)
            if container is _MISSING:
                break
        if containers is not None:
            containers[parent] = container
    value = _child(container, node.segment)
    if value is _MISSING:
        return _MISSING, None
    return value, node.segment


def _child(container: object, segment: str | int) -> object:
    if isinstance(segment, int):
        if isinstance(container, list | tuple) and 0 <= segment < len(container):
            return container[segment]
        return _MISSING
    if isinstance(container, dict):
        return container.get(segment, _MISSING)
    return _MISSING
