"""The files of a document, as data and as positions, and ``$ref`` resolution across them.

A document read from a local file never makes lint fetch anything from the network, and
one read over HTTP(S) only its own origin, unless ``remote_refs`` says otherwise: a
document under review (a pull request in CI) must not be able to make the runner request
internal addresses such as cloud metadata services.

Lint reports every finding at FILE:LINE:COLUMN of the file it is written in, so unlike the
gateway's loader (which bundles everything into one document) the files stay separate:
``Sources`` keeps one :class:`Source` per file, local or fetched over HTTP(S), and
resolves a ``$ref`` to the file, JSON pointer and value it names, or says why it cannot.

Positions are worked out only for files that have findings: the text is composed again
into a YAML node tree (JSON is YAML), and each pointer is walked down it through a per-node
key index, so a document with thousands of findings costs one compose and one dictionary
look-up per pointer step.
"""

from __future__ import annotations

import bisect
import os
import re
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import unquote, urljoin, urlsplit

import orjson
import yaml

from dijk.openapi.document import MAX_FILE_BYTES, SpecLoader, mapping_key, parse_text
from dijk.openapi.errors import unescape_token

__all__ = ["LoadError", "Ref", "Source", "Sources", "Tokens", "is_url"]

Tokens = tuple[str, ...]
#: Most files one document may pull in through ``$ref``.
MAX_FILES: Final = 256
#: Most values (mapping entries, list items) counted while normalising one YAML file,
#: aliases expanded: an alias bomb stops here instead of filling memory.
MAX_NODES: Final = 5_000_000
FETCH_TIMEOUT_S: Final = 15.0


class LoadError(Exception):
    """A file of the document could not be read or parsed (one line, no traceback)."""


def is_url(text: str) -> bool:
    return text.startswith(("http://", "https://"))


@dataclass(slots=True)
class Source:
    """One file: its name as reported, its text and data, and (lazily) its positions."""

    name: str
    text: str
    data: Any
    is_json: bool = False
    _index: dict[int, dict[str, Any]] = field(default_factory=dict)
    _root: Any = None
    _composed: bool = False
    _json: _JsonPositions | None = None

    def position(self, tokens: Tokens) -> tuple[int, int]:
        """1-based line and column of the value at ``tokens`` (nearest existing ancestor).

        For a mapping entry the position is that of its key, which is where an editor
        should put the cursor.
        """
        if self.is_json:
            if self._json is None:
                self._json = _JsonPositions(self.text)
            return self._json.position(tokens)
        node = self._node_root()
        if node is None:
            return 1, 1
        line, column = node.start_mark.line + 1, node.start_mark.column + 1
        for token in tokens:
            if isinstance(node, yaml.MappingNode):
                keys = self._index.get(id(node))
                if keys is None:
                    keys = {}
                    for key_node, value_node in node.value:
                        if isinstance(key_node, yaml.ScalarNode):
                            keys.setdefault(key_node.value, (key_node, value_node))
                    self._index[id(node)] = keys
                found = keys.get(token)
                if found is None:
                    break
                line, column = found[0].start_mark.line + 1, found[0].start_mark.column + 1
                node = found[1]
            elif isinstance(node, yaml.SequenceNode) and token.isdigit():
                position = int(token)
                if position >= len(node.value):
                    break
                node = node.value[position]
                line, column = node.start_mark.line + 1, node.start_mark.column + 1
            else:
                break
        return line, column

    def _node_root(self) -> Any:
        if not self._composed:
            self._composed = True
            try:
                self._root = yaml.compose(self.text, Loader=SpecLoader)
            except yaml.YAMLError:
                self._root = None
        return self._root

    def release(self) -> None:
        """Drop the position index (big documents): positions are asked for in one batch."""
        self._root = None
        self._index.clear()
        self._composed = False
        self._json = None


#: JSON strings and brackets: everything that can hold a comma, colon or nested value.
_JSON_TOKEN: Final = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]')
_JSON_SPACE: Final = re.compile(r"[ \t\r\n]*")
_JSON_SCALAR_END: Final = re.compile(r"[,\]}]")


class _JsonPositions:
    """Offsets of JSON values from one regular-expression pass over the text.

    Composing a big JSON document into YAML nodes costs about a second per 2.5 MB; this
    finds only strings and brackets (about a tenth of that), pairs the brackets, and
    indexes an object's keys or an array's elements the first time a pointer passes
    through it. The text is known to be valid JSON (orjson parsed it).
    """

    def __init__(self, text: str) -> None:
        self.text = text
        starts: list[int] = []
        ends: list[int] = []
        for match in _JSON_TOKEN.finditer(text):
            starts.append(match.start())
            ends.append(match.end())
        self.starts = starts
        self.ends = ends
        close = [-1] * len(starts)
        stack: list[int] = []
        for position, start in enumerate(starts):
            char = text[start]
            if char in "{[":
                stack.append(position)
            elif char in "}]" and stack:
                close[stack.pop()] = position
        self.close = close
        self.children: dict[int, dict[str, tuple[int, int]]] = {}
        self.lines: list[int] | None = None

    def _skip(self, offset: int) -> int:
        match = _JSON_SPACE.match(self.text, offset)
        return match.end() if match else offset

    def _after(self, token: int) -> tuple[int, int]:
        """(offset just after the value starting at ``token``, next token index)."""
        if self.text[self.starts[token]] in "{[":
            end = self.close[token]
            return self.ends[end], end + 1
        return self.ends[token], token + 1

    def _index(self, token: int) -> dict[str, tuple[int, int]]:
        """Key (or element number) -> (offset of key/element, token of value or -1)."""
        known = self.children.get(token)
        if known is not None:
            return known
        text, starts = self.text, self.starts
        found: dict[str, tuple[int, int]] = {}
        end = self.close[token]
        if end < 0:
            self.children[token] = found
            return found
        is_object = text[starts[token]] == "{"
        cursor = token + 1
        offset = self._skip(starts[token] + 1)
        number = 0
        while offset < len(text) and text[offset] not in "}]":
            if is_object:
                if cursor >= end or starts[cursor] != offset:
                    break
                raw = text[offset + 1 : self.ends[cursor] - 1]
                name = raw if "\\" not in raw else orjson.loads(text[offset : self.ends[cursor]])
                key_offset = offset
                offset = self._skip(self._skip(self.ends[cursor]) + 1)  # past ':'
                cursor += 1
            else:
                name = str(number)
                key_offset = offset
            if cursor < end and starts[cursor] == offset:
                found[name] = (key_offset, cursor)
                offset, cursor = self._after(cursor)
            else:
                found[name] = (key_offset, -1)
                scalar_end = _JSON_SCALAR_END.search(text, offset)
                offset = scalar_end.start() if scalar_end else len(text)
            offset = self._skip(offset)
            if offset < len(text) and text[offset] == ",":
                offset = self._skip(offset + 1)
            number += 1
        self.children[token] = found
        return found

    def position(self, tokens: Tokens) -> tuple[int, int]:
        if not self.starts:
            return 1, 1
        offset = self.starts[0]
        token = 0
        for part in tokens:
            if token < 0 or self.text[self.starts[token]] not in "{[":
                break
            entry = self._index(token).get(part)
            if entry is None:
                break
            offset, token = entry
        return self._line_column(offset)

    def _line_column(self, offset: int) -> tuple[int, int]:
        if self.lines is None:
            self.lines = [match.end() for match in re.finditer("\n", self.text)]
        line = bisect.bisect_right(self.lines, offset)
        start = self.lines[line - 1] if line else 0
        return line + 1, offset - start + 1


@dataclass(frozen=True, slots=True)
class Ref:
    """Where a ``$ref`` leads: the file index, the pointer tokens and the value."""

    file: int
    tokens: Tokens
    value: Any


class Sources:
    """The files of one document, loaded on demand as ``$ref`` s name them."""

    def __init__(self, main: str, *, remote_refs: bool = False) -> None:
        self.files: list[Source] = []
        self._by_location: dict[str, int] = {}
        self._locations: list[str] = []
        self._failed: dict[str, str] = {}
        self._remote_refs = remote_refs
        self._origin = _origin(main) if is_url(main) else None
        self.load(main)

    @property
    def root(self) -> Any:
        return self.files[0].data

    def load(self, location: str) -> int:
        """Index of the file at ``location`` (a path or an http(s) URL); LoadError if not."""
        key = location if is_url(location) else os.path.realpath(location)
        known = self._by_location.get(key)
        if known is not None:
            return known
        if key in self._failed:
            raise LoadError(self._failed[key])
        if len(self.files) >= MAX_FILES:
            raise LoadError(f"more than {MAX_FILES} files are referenced")
        try:
            text = _fetch(location) if is_url(location) else _read(location)
            data, is_json = _parse(text)
        except (LoadError, ValueError) as exc:
            message = str(exc)
            if not message.startswith(location):
                message = f"{location}: {message}"
            self._failed[key] = message
            raise LoadError(message) from None
        self.files.append(Source(location, text, data, is_json=is_json))
        self._locations.append(location)
        self._by_location[key] = len(self.files) - 1
        return len(self.files) - 1

    def resolve(self, file: int, ref: str) -> Ref:
        """The target of ``ref`` written in file ``file``; LoadError/KeyError say why not."""
        target, _, fragment = ref.partition("#")
        index = file
        if target:
            base = self._locations[file]
            if is_url(target) or is_url(base):
                location = urljoin(base, target)
                if not self._remote_refs and _origin(location) != self._origin:
                    raise LoadError(
                        f"$ref to {location}: a reference is followed over the network only "
                        "to the origin the document was read from (--remote-refs allows any)"
                    )
            elif urlsplit(target).scheme:
                raise LoadError(f"unsupported reference scheme in {ref!r}")
            else:
                location = os.path.normpath(os.path.join(os.path.dirname(base), unquote(target)))
            index = self.load(location)
        tokens = _split(fragment)
        value = self.files[index].data
        for token in tokens:
            if isinstance(value, dict) and token in value:
                value = value[token]
            elif isinstance(value, list) and token.isdigit() and int(token) < len(value):
                value = value[int(token)]
            else:
                raise KeyError(token)
        return Ref(index, tokens, value)


def _origin(url: str) -> tuple[str, str, int | None] | None:
    """Scheme, host and port: where a document fetched over HTTP may send its references."""
    try:
        parts = urlsplit(url)
        return parts.scheme.lower(), (parts.hostname or "").lower(), parts.port
    except ValueError:
        return None


def _split(fragment: str) -> Tokens:
    if not fragment:
        return ()
    if "%" in fragment:
        fragment = unquote(fragment)
    if not fragment.startswith("/"):
        raise KeyError(fragment)
    return tuple(unescape_token(token) for token in fragment[1:].split("/"))


def _read(path: str) -> str:
    try:
        with open(path, "rb") as stream:
            raw = stream.read(MAX_FILE_BYTES + 1)
    except FileNotFoundError:
        raise LoadError(f"{path}: file not found") from None
    except IsADirectoryError:
        raise LoadError(f"{path}: is a directory") from None
    except PermissionError:
        raise LoadError(f"{path}: permission denied") from None
    except OSError as exc:
        raise LoadError(f"{path}: cannot read: {exc.strerror or exc}") from None
    return _decode(path, raw)


def _fetch(url: str) -> str:
    request = urllib.request.Request(  # noqa: S310 - the scheme is checked: http(s) only
        url, headers={"Accept": "application/json, application/yaml, text/yaml, */*"}
    )
    try:
        with urllib.request.urlopen(request, timeout=FETCH_TIMEOUT_S) as response:  # noqa: S310
            raw = response.read(MAX_FILE_BYTES + 1)
    except urllib.error.HTTPError as exc:
        raise LoadError(f"{url}: HTTP {exc.code} {exc.reason}") from None
    except urllib.error.URLError as exc:
        raise LoadError(f"{url}: cannot fetch: {exc.reason}") from None
    except (OSError, ValueError) as exc:
        raise LoadError(f"{url}: cannot fetch: {exc}") from None
    return _decode(url, raw)


def _decode(name: str, raw: bytes) -> str:
    if len(raw) > MAX_FILE_BYTES:
        raise LoadError(f"{name}: larger than {MAX_FILE_BYTES} bytes")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise LoadError(f"{name}: not UTF-8 text (line {line})") from None


def _parse(text: str) -> tuple[Any, bool]:
    """Data, and whether it was JSON (orjson: string keys, no aliases); YAML normalised."""
    if text.lstrip().startswith("{"):
        try:
            return orjson.loads(text), True
        except orjson.JSONDecodeError:
            pass
    return _normalise(parse_text(text)), False


def _normalise(data: Any) -> Any:
    """String keys everywhere (``200:`` is the response ``"200"``); aliases counted.

    An alias is copied once and shared; an alias inside itself (a recursive document) is
    refused, so that every later walk ends.
    """
    counter = [0]
    memo: dict[int, Any] = {}
    active: set[int] = set()

    def walk(value: Any) -> Any:
        if not isinstance(value, dict | list):
            if value is None or isinstance(value, str | int | float | bool):
                return value
            return str(value)
        key = id(value)
        done = memo.get(key)
        counter[0] += 1
        if counter[0] > MAX_NODES:
            raise LoadError(f"document too large: more than {MAX_NODES} values (aliases counted)")
        if done is not None:
            return done
        if key in active:
            raise LoadError("a YAML alias refers to itself (recursive document)")
        active.add(key)
        result: Any
        if isinstance(value, dict):
            result = {mapping_key(name): walk(item) for name, item in value.items()}
        else:
            result = [walk(item) for item in value]
        active.discard(key)
        memo[key] = result
        return result

    try:
        return walk(data)
    except RecursionError:
        raise LoadError("the document is nested too deeply") from None
