"""The files of a document, as data and as positions, and ``$ref`` resolution across them.

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

import os
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import unquote, urljoin, urlsplit

import orjson
import yaml

from dijk.openapi.document import MAX_FILE_BYTES, SpecLoader, parse_text
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
    """One file: its name as reported, its text and data, and (lazily) its node tree."""

    name: str
    text: str
    data: Any
    _index: dict[int, dict[str, Any]] = field(default_factory=dict)
    _root: Any = None
    _composed: bool = False

    def position(self, tokens: Tokens) -> tuple[int, int]:
        """1-based line and column of the value at ``tokens`` (nearest existing ancestor).

        For a mapping entry the position is that of its key, which is where an editor
        should put the cursor.
        """
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
        """Drop the node tree (big documents): positions are asked for in one batch."""
        self._root = None
        self._index.clear()
        self._composed = False


@dataclass(frozen=True, slots=True)
class Ref:
    """Where a ``$ref`` leads: the file index, the pointer tokens and the value."""

    file: int
    tokens: Tokens
    value: Any


class Sources:
    """The files of one document, loaded on demand as ``$ref`` s name them."""

    def __init__(self, main: str) -> None:
        self.files: list[Source] = []
        self._by_location: dict[str, int] = {}
        self._locations: list[str] = []
        self._failed: dict[str, str] = {}
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
            data = _parse(text)
        except (LoadError, ValueError) as exc:
            message = str(exc)
            if not message.startswith(location):
                message = f"{location}: {message}"
            self._failed[key] = message
            raise LoadError(message) from None
        self.files.append(Source(location, text, data))
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


def _parse(text: str) -> Any:
    """JSON through orjson as it is (string keys, no aliases); YAML normalised."""
    if text.lstrip().startswith("{"):
        try:
            return orjson.loads(text)
        except orjson.JSONDecodeError:
            pass
    return _normalise(parse_text(text))


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
            result = {_key(name): walk(item) for name, item in value.items()}
        else:
            result = [walk(item) for item in value]
        active.discard(key)
        memo[key] = result
        return result

    try:
        return walk(data)
    except RecursionError:
        raise LoadError("the document is nested too deeply") from None


def _key(raw: Any) -> str:
    if isinstance(raw, bool):
        return "true" if raw else "false"
    if raw is None:
        return "null"
    return str(raw)
