"""Load a YAML file into a pydantic model, reporting every problem as ``FILE:LINE: path: message``.

This is the engine behind ``dijk config validate FILE`` and behind loading and reloading the
gateway configuration. It is generic over any :class:`pydantic.BaseModel` subclass; the
models themselves (with ``extra="forbid"``) live in :mod:`dijk.config.models`.

How it works, and why:

1. The file is read with a size cap and decoded as strict UTF-8, so a wrong path, a
   directory, a binary file or ``/dev/zero`` gives one clear message instead of a traceback
   or a hang.
2. The YAML text is parsed by libyaml (``yaml.CSafeLoader``; the pure-Python ``SafeLoader``
   if the C extension is missing) into a node tree. The composer is PyYAML's own, with a
   count of nodes and of nesting depth, so a huge document is refused *while* it is being
   read rather than after it has filled memory.
3. The node tree is turned into plain Python data (dicts, lists, scalars) by our own walk,
   not by ``construct_document``, because the walk is where we learn things PyYAML throws
   away: the line of every key and value (a :class:`LineMap`), duplicate keys (which
   PyYAML silently accepts, last one wins), and the *expanded* size of the document once
   aliases are followed, so a "billion laughs" alias bomb stops at :data:`MAX_NODES`.
4. The data is validated by the model; each pydantic error becomes a :class:`ConfigIssue`
   whose line comes from the :class:`LineMap`.

Path style: dotted field names with list indices in brackets, e.g.
``routes[0].match.path_prefix``. A mapping key that is not a plain word (letters, digits,
``_`` and ``-``) is written as a quoted index, e.g. ``upstreams["eu.bank"].url``.

Mapping keys are always strings: the key's text as written. That keeps YAML 1.1 surprises
out of key names (``on:``, ``no:`` or ``1:`` stay ``"on"``, ``"no"``, ``"1"``); pydantic
still converts ``"1"`` for a ``dict[int, ...]`` field. Values follow normal YAML (safe
loader) typing.

Environment-variable references are not expanded here: fields named ``*_env`` hold a
variable *name* and the models resolve it.
"""

from __future__ import annotations

import difflib
import json
import os
import re
import stat
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, RootModel, ValidationError
from pydantic_core import ErrorDetails
from yaml.composer import Composer, ComposerError
from yaml.events import AliasEvent
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

try:
    from yaml import CSafeLoader as _BaseLoader

    _LIBYAML = True
except ImportError:  # pragma: no cover - only without libyaml
    from yaml import SafeLoader as _BaseLoader  # type: ignore[assignment]

    _LIBYAML = False

__all__ = [
    "MAX_DEPTH",
    "MAX_FILE_BYTES",
    "MAX_NODES",
    "ConfigError",
    "ConfigIssue",
    "LineMap",
    "Path",
    "format_path",
    "issue_at",
    "load_config_file",
    "load_yaml_document",
    "validate_document",
]

M = TypeVar("M", bound=BaseModel)

#: A location in the loaded data: mapping keys (always ``str``) and list indices.
Path = tuple[str | int, ...]

#: Largest configuration file accepted. Real configurations are a few KiB.
MAX_FILE_BYTES = 5 * 1024 * 1024
#: Most YAML nodes (keys, values, items) in a document, counting every use of an alias.
MAX_NODES = 100_000
#: Deepest nesting of mappings and lists accepted (real configurations nest < 10 deep).
MAX_DEPTH = 100

_MAP_TAG = "tag:yaml.org,2002:map"
_SEQ_TAG = "tag:yaml.org,2002:seq"
_NULL_TAG = "tag:yaml.org,2002:null"
_MERGE_TAG = "tag:yaml.org,2002:merge"
_YAML_TAG_PREFIX = "tag:yaml.org,2002:"

_PLAIN_KEY = re.compile(r"[A-Za-z0-9_-]+")
# A field holds a secret if its name ends like one of these (``client_secret``,
# ``password``, ``admin_token``, ``api_keys``). Over-matching only hides an input value.
_SECRET_NAME = re.compile(r"(secret|password|passwd|token|key)s?$", re.IGNORECASE)
_HIDDEN_VALUE_MESSAGE = "invalid value (not shown: this field may hold a secret)"


# --------------------------------------------------------------------------- issues


@dataclass(frozen=True, slots=True)
class ConfigIssue:
    """One problem in a configuration file, printable as ``FILE:LINE: path: message``."""

    file: str
    line: int | None
    path: str
    message: str

    def format(self) -> str:
        """Render as ``FILE:LINE: path: message`` (``FILE: path: message`` without a line)."""
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        return f"{where}: {self.path or '(root)'}: {self.message}"


class ConfigError(Exception):
    """A configuration could not be loaded; ``issues`` lists every problem found.

    ``str(error)`` is the formatted issues, one per line, ready to print.
    """

    def __init__(self, issues: Sequence[ConfigIssue]) -> None:
        self.issues: list[ConfigIssue] = list(issues)
        super().__init__("\n".join(issue.format() for issue in self.issues))

    def __reduce__(self) -> tuple[type[ConfigError], tuple[list[ConfigIssue]]]:
        return (type(self), (self.issues,))


def _single(file: str, line: int | None, message: str, path: str = "") -> ConfigError:
    return ConfigError([ConfigIssue(file, line, path, message)])


def _sorted_unique(issues: Sequence[ConfigIssue]) -> list[ConfigIssue]:
    """Issues by line (whole-file issues first), duplicates dropped, order otherwise kept."""
    unique = list(dict.fromkeys(issues))
    return sorted(unique, key=lambda issue: 0 if issue.line is None else issue.line)


def _printable(text: str) -> str:
    """Escape control characters so a hostile key or message cannot rewrite the terminal."""
    if text.isprintable():
        return text
    return "".join(char if char.isprintable() else repr(char)[1:-1] for char in text)


def format_path(path: Sequence[str | int]) -> str:
    """Render a data path as ``routes[0].match.path_prefix`` (empty path: ``""``)."""
    parts: list[str] = []
    for element in path:
        if isinstance(element, int) and not isinstance(element, bool):
            parts.append(f"[{element}]")
        elif isinstance(element, str) and _PLAIN_KEY.fullmatch(element):
            parts.append(f".{element}" if parts else element)
        else:
            parts.append(f"[{json.dumps(str(element), ensure_ascii=False)}]")
    return _printable("".join(parts))


# --------------------------------------------------------------------------- line map


@dataclass(slots=True)
class LineMap:
    """1-based source lines of a loaded YAML document, by data path.

    ``values`` holds where each value is written; ``keys`` where each mapping key is
    written. For a value that is a block mapping or list, or an empty value, the value line
    is its key's line: that is where a reader looks for ``match:`` when told about
    ``routes[0].match``. An alias reports the line where the alias is used.
    """

    values: dict[Path, int] = field(default_factory=dict)
    keys: dict[Path, int] = field(default_factory=dict)

    def value_line(self, path: Sequence[str | int]) -> int | None:
        """The line of the value at ``path``, or of its nearest ancestor that has one."""
        path = tuple(path)
        for end in range(len(path), -1, -1):
            line = self.values.get(path[:end])
            if line is not None:
                return line
        return None

    def key_line(self, path: Sequence[str | int]) -> int | None:
        """The line of the mapping key at ``path``, falling back to :meth:`value_line`."""
        line = self.keys.get(tuple(path))
        return line if line is not None else self.value_line(path)


def issue_at(file: str, lines: LineMap, path: Sequence[str | int], message: str) -> ConfigIssue:
    """An issue for ``path`` located with ``lines``, for checks done after validation.

    Cross-reference checks at compile time (a route naming an unknown upstream, say) use
    this to report in the same ``FILE:LINE: path: message`` form as validation errors.
    """
    return ConfigIssue(file, lines.value_line(path), format_path(path), _printable(message))


# --------------------------------------------------------------------------- reading


def _read_text(file: str) -> str:
    """Read ``file`` as UTF-8 text, turning every failure into a :class:`ConfigError`."""
    try:
        info = os.stat(file)
        if stat.S_ISDIR(info.st_mode):
            raise _single(file, None, "is a directory, not a configuration file")
        if stat.S_ISREG(info.st_mode) and info.st_size > MAX_FILE_BYTES:
            raise _single(file, None, _too_large_file_message(info.st_size))
        # Non-regular files (a pipe from `<(...)`, a device) are read with the same cap.
        with open(file, "rb") as stream:
            raw = stream.read(MAX_FILE_BYTES + 1)
    except FileNotFoundError:
        raise _single(file, None, "file not found") from None
    except PermissionError:
        raise _single(file, None, "permission denied: cannot read the file") from None
    except IsADirectoryError:
        raise _single(file, None, "is a directory, not a configuration file") from None
    except OSError as exc:
        raise _single(file, None, f"cannot read the file: {exc.strerror or exc}") from None
    if len(raw) > MAX_FILE_BYTES:
        raise _single(file, None, _too_large_file_message(None))
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        byte = raw[exc.start]
        message = f"file is not valid UTF-8 text (byte 0x{byte:02x}); save it as UTF-8"
        raise _single(file, line, message) from None


def _too_large_file_message(size: int | None) -> str:
    limit = f"the limit is {MAX_FILE_BYTES} bytes"
    return f"file too large ({size} bytes); {limit}" if size else f"file too large; {limit}"


# --------------------------------------------------------------------------- composing


class _LimitExceeded(Exception):
    """The document is too big or too deep; carries the message and the line it hit."""

    def __init__(self, message: str, line: int | None, path: Path = ()) -> None:
        super().__init__(message)
        self.message = message
        self.line = line
        self.path = path


class _AliasNode(Node):
    """An alias (``*name``) in the node tree: its target, plus where the alias is written.

    PyYAML's composer returns the anchored node itself, losing the alias's position; we
    keep it so errors about the value point at the line that uses it.
    """

    def __init__(self, target: Node, anchor: str, start_mark: Any) -> None:
        super().__init__(target.tag, target.value, start_mark, start_mark)
        self.target = target
        self.anchor = anchor


def _line_of(mark: Any) -> int | None:
    return None if mark is None else int(mark.line) + 1


class _Loader(Composer, _BaseLoader):
    """libyaml's parser and PyYAML's safe constructor, joined by a composer that counts.

    The composer is PyYAML's own (it comes first in the MRO, ahead of libyaml's), extended
    with a node budget and a depth limit, and keeping where each alias is written.
    """

    def __init__(self, text: str) -> None:
        _BaseLoader.__init__(self, text)
        Composer.__init__(self)
        self._composed_nodes = 0
        self._composing_depth = 0

    def get_single_node(self) -> Node | None:
        return Composer.get_single_node(self)

    def compose_node(self, parent: Node | None, index: int) -> Node | None:
        event = self.peek_event()
        line = _line_of(event.start_mark if event is not None else None)
        self._composed_nodes += 1
        if self._composed_nodes > MAX_NODES:
            raise _LimitExceeded(_too_many_nodes_message(), line)
        if self.check_event(AliasEvent):
            alias = self.get_event()
            assert isinstance(alias, AliasEvent)
            anchor = alias.anchor
            mark: Any = alias.start_mark
            if anchor not in self.anchors:
                raise ComposerError(None, None, f"found undefined alias {anchor!r}", mark)
            return _AliasNode(self.anchors[anchor], str(anchor), mark)
        self._composing_depth += 1
        try:
            if self._composing_depth > MAX_DEPTH:
                raise _LimitExceeded(_too_deep_message(), line)
            return super().compose_node(parent, index)
        finally:
            self._composing_depth -= 1


def _too_many_nodes_message() -> str:
    return f"document too large: more than {MAX_NODES} values (each use of an alias counts)"


def _too_deep_message() -> str:
    return f"document nested too deeply (more than {MAX_DEPTH} levels)"


def _yaml_error_issue(exc: yaml.YAMLError, text: str, file: str) -> ConfigIssue:
    """One clear issue for a YAML syntax/reader error, with its line."""
    if isinstance(exc, yaml.MarkedYAMLError):
        mark = exc.problem_mark if exc.problem_mark is not None else exc.context_mark
        line = _line_of(mark)
        problem = exc.problem or "syntax error"
        if isinstance(exc, yaml.scanner.ScannerError) and _has_tab(text, line, problem):
            return ConfigIssue(file, line, "", "invalid YAML: tab character; indent with spaces")
        message = f"{exc.context}, {problem}" if exc.context else problem
        return ConfigIssue(file, line, "", f"invalid YAML: {_printable(message)}")
    if isinstance(exc, yaml.reader.ReaderError):
        line = _reader_error_line(exc, text)
        reason = _printable(str(exc.reason))
        return ConfigIssue(file, line, "", f"invalid YAML: unacceptable character ({reason})")
    return ConfigIssue(file, None, "", f"invalid YAML: {_printable(str(exc))}")  # pragma: no cover


def _has_tab(text: str, line: int | None, problem: str) -> bool:
    if "tab" in problem:
        return True
    if line is None:
        return False
    lines = text.splitlines()
    return 0 < line <= len(lines) and "\t" in lines[line - 1]


def _reader_error_line(exc: yaml.reader.ReaderError, text: str) -> int | None:
    position = exc.position
    if not isinstance(position, int):
        return None  # pragma: no cover
    if not _LIBYAML:  # pragma: no cover - the pure-Python reader counts characters
        return text.count("\n", 0, position) + 1
    # libyaml reads the text as UTF-8 and reports a byte offset.
    return text.encode("utf-8", "surrogatepass").count(b"\n", 0, position) + 1


# --------------------------------------------------------------------------- building


class _Builder:
    """Turns the node tree into plain data, recording lines and YAML-level issues."""

    def __init__(self, loader: _Loader, file: str) -> None:
        self.loader = loader
        self.file = file
        self.lines = LineMap()
        self.issues: list[ConfigIssue] = []
        self._nodes = 0
        self._building: set[int] = set()  # ids of collection nodes being built (recursion)

    def build(self, root: Node) -> Any:
        return self._value(root, (), _node_line(root))

    def _tick(self, line: int | None, path: Path) -> None:
        self._nodes += 1
        if self._nodes > MAX_NODES:
            raise _LimitExceeded(_too_many_nodes_message(), line, path)
        if len(path) > MAX_DEPTH:
            raise _LimitExceeded(_too_deep_message(), line, path)

    def _issue(self, line: int | None, path: Path, message: str) -> None:
        self.issues.append(ConfigIssue(self.file, line, format_path(path), message))

    def _target(self, node: Node, line: int | None, path: Path) -> Node:
        if isinstance(node, _AliasNode):
            if id(node.target) in self._building:
                raise _LimitExceeded(f"recursive alias '*{_printable(node.anchor)}'", line, path)
            return node.target
        return node

    def _value(self, node: Node, path: Path, line: int | None) -> Any:
        self._tick(line, path)
        if line is not None:
            self.lines.values[path] = line
        node = self._target(node, line, path)
        if isinstance(node, MappingNode):
            if node.tag != _MAP_TAG:
                self._issue(_node_line(node), path, _unsupported_tag(node.tag))
            return self._mapping(node, path)
        if isinstance(node, SequenceNode):
            if node.tag != _SEQ_TAG:
                self._issue(_node_line(node), path, _unsupported_tag(node.tag))
            return self._sequence(node, path)
        return self._scalar(node, path, line)

    def _scalar(self, node: Node, path: Path, line: int | None) -> Any:
        if node.tag not in type(self.loader).yaml_constructors:
            self._issue(line, path, _unsupported_tag(node.tag))
            return None
        try:
            return self.loader.construct_object(node, deep=True)
        except Exception:  # a bad explicit tag such as `!!int abc` or `!!binary ***`
            self._issue(line, path, f"invalid {_short_tag(node.tag)} value")
            return None

    def _sequence(self, node: SequenceNode, path: Path) -> list[Any]:
        self._building.add(id(node))
        try:
            return [
                self._value(item, (*path, index), _node_line(item))
                for index, item in enumerate(node.value)
            ]
        finally:
            self._building.discard(id(node))

    def _mapping(self, node: MappingNode, path: Path) -> dict[str, Any]:
        self._building.add(id(node))
        try:
            result: dict[str, Any] = {}
            explicit, merged = self._entries(node, path, set())
            for key_node, value_node in explicit:
                self._entry(result, key_node, value_node, path, explicit=True)
            for key_node, value_node in merged:
                self._entry(result, key_node, value_node, path, explicit=False)
            return result
        finally:
            self._building.discard(id(node))

    def _entry(
        self,
        result: dict[str, Any],
        key_node: Node,
        value_node: Node,
        path: Path,
        *,
        explicit: bool,
    ) -> None:
        key_line = _node_line(key_node)
        key = self._key(key_node, path, key_line)
        if key is None:
            return
        if key in result:
            # A merged (`<<`) key loses to an explicit one silently: that is what merging is
            # for. Two explicit keys are a mistake that PyYAML would hide (last one wins).
            if explicit:
                self._issue(key_line, (*path, key), f"duplicate key {_quote(key)}")
            return
        child = (*path, key)
        if key_line is not None:
            self.lines.keys[child] = key_line
        result[key] = self._value(value_node, child, _value_line(value_node, key_line))

    def _key(self, key_node: Node, path: Path, line: int | None) -> str | None:
        self._tick(line, path)
        target = self._target(key_node, line, path)
        if not isinstance(target, ScalarNode):
            self._issue(line, path, "mapping keys must be plain values, not a mapping or a list")
            return None
        return str(target.value)

    def _entries(
        self, node: MappingNode, path: Path, merging: set[int]
    ) -> tuple[list[tuple[Node, Node]], list[tuple[Node, Node]]]:
        """The mapping's own entries, and entries merged in with ``<<`` (in priority order)."""
        explicit: list[tuple[Node, Node]] = []
        merged: list[tuple[Node, Node]] = []
        for key_node, value_node in node.value:
            if not (isinstance(key_node, ScalarNode) and key_node.tag == _MERGE_TAG):
                explicit.append((key_node, value_node))
                continue
            line = _node_line(value_node)
            source = self._target(value_node, line, path)
            sources = source.value if isinstance(source, SequenceNode) else [source]
            for item in sources:
                item_line = _node_line(item)
                mapping = self._target(item, item_line, path)
                if not isinstance(mapping, MappingNode):
                    self._issue(item_line, path, "'<<' must merge a mapping or a list of mappings")
                    continue
                if id(mapping) in merging or id(mapping) in self._building:
                    raise _LimitExceeded("recursive merge ('<<')", item_line, path)
                inner_explicit, inner_merged = self._entries(mapping, path, merging | {id(node)})
                merged.extend(inner_explicit)
                merged.extend(inner_merged)
        return explicit, merged


def _node_line(node: Node) -> int | None:
    return _line_of(node.start_mark)


def _value_line(value_node: Node, key_line: int | None) -> int | None:
    """Where to report a mapping value: see :class:`LineMap` for the rules."""
    if isinstance(value_node, _AliasNode):
        return _node_line(value_node)
    if isinstance(value_node, MappingNode | SequenceNode) and not value_node.flow_style:
        return key_line
    if isinstance(value_node, ScalarNode) and value_node.value == "" and value_node.style is None:
        return key_line
    line = _node_line(value_node)
    return line if line is not None else key_line


def _short_tag(tag: str) -> str:
    return "!!" + tag.removeprefix(_YAML_TAG_PREFIX) if tag.startswith(_YAML_TAG_PREFIX) else tag


def _unsupported_tag(tag: str) -> str:
    return f"unsupported YAML tag {_quote(_short_tag(tag))}"


def _quote(text: str) -> str:
    return f"'{_printable(text)}'"


# --------------------------------------------------------------------------- public API


def load_yaml_document(text: str, file: str) -> tuple[Any, LineMap]:
    """Parse one YAML document into plain data and the lines of its keys and values.

    ``file`` is only used in messages. An empty document gives ``(None, LineMap())``.
    Raises :class:`ConfigError` for invalid YAML, several documents, duplicate keys,
    unsupported tags, and documents too large or too deep.
    """
    if len(text) > MAX_FILE_BYTES:
        raise _single(file, None, _too_large_file_message(len(text)))
    loader = _Loader(text)
    try:
        root = loader.get_single_node()
        if root is None:
            return None, LineMap()
        builder = _Builder(loader, file)
        data = builder.build(root)
    except _LimitExceeded as exc:
        raise _single(file, exc.line, exc.message, format_path(exc.path)) from None
    except yaml.YAMLError as exc:
        raise ConfigError([_yaml_error_issue(exc, text, file)]) from None
    except RecursionError:  # pragma: no cover - the depth limits stop well before this
        raise _single(file, None, _too_deep_message()) from None
    finally:
        loader.dispose()
    if builder.issues:
        raise ConfigError(_sorted_unique(builder.issues))
    return data, builder.lines


def validate_document(
    data: Any,
    lines: LineMap,
    model: type[M],
    file: str,
    context: dict[str, Any] | None = None,
) -> M:
    """Validate loaded data against ``model``; every error becomes one located issue.

    ``context`` is passed to pydantic validators (``ValidationInfo.context``). Issues are
    sorted by line. The pydantic error is not chained: its text includes input values,
    which may be secrets.
    """
    if not isinstance(data, dict) and not issubclass(model, RootModel):
        raise _single(file, lines.value_line(()), _not_a_mapping_message(data))
    try:
        return model.model_validate(data, context=context)
    except ValidationError as exc:
        secrets = _secret_values(data)
        issues = [
            _issue_from_error(error, data, lines, model, file, secrets) for error in exc.errors()
        ]
    raise ConfigError(_sorted_unique(issues))


def load_config_file(
    path: str | os.PathLike[str],
    model: type[M],
    context: dict[str, Any] | None = None,
) -> M:
    """Read, parse and validate a configuration file; raise :class:`ConfigError` if bad.

    Messages name the file as given (``os.fspath(path)``), so they match what the user
    typed on the command line.
    """
    file = os.fspath(path)
    text = _read_text(file)
    data, lines = load_yaml_document(text, file)
    return validate_document(data, lines, model, file, context)


def _not_a_mapping_message(data: Any) -> str:
    if data is None:
        return "the file is empty; expected a mapping of settings (key: value lines)"
    kind = "a list" if isinstance(data, list) else f"a single value ({type(data).__name__})"
    return f"expected a mapping of settings (key: value lines), found {kind}"


# --------------------------------------------------------------------------- pydantic errors


def _issue_from_error(
    error: ErrorDetails,
    data: Any,
    lines: LineMap,
    model: type[BaseModel],
    file: str,
    secrets: set[str],
) -> ConfigIssue:
    error_type = error["type"]
    path, names_key = _data_path(error["loc"], data, keep_absent_last=error_type == "missing")
    if error_type == "extra_forbidden" and path and isinstance(path[-1], str):
        line = lines.key_line(path)
        message = _unknown_key_message(path[-1], _known_keys(model, path[:-1]))
    elif error_type == "missing":
        line = lines.value_line(path)
        message = "required field missing"
    else:
        line = lines.key_line(path) if names_key else lines.value_line(path)
        message = _scrub(_safe_message(error, path), secrets)
    return ConfigIssue(file, line, format_path(path), _printable(message))


def _data_path(
    loc: tuple[int | str, ...], data: Any, *, keep_absent_last: bool
) -> tuple[Path, bool]:
    """Map a pydantic ``loc`` onto the data: ``(path, whether it points at a mapping key)``.

    pydantic adds steps that are not in the data: the member of a union (``'float'``,
    ``'RouteModel'``), a discriminator tag, ``'[key]'`` for a bad dict key. They are dropped.
    For a missing field, the last step is kept although it is absent: it is the field.
    """
    path: list[str | int] = []
    current: Any = data
    present = True
    names_key = False
    for position, step in enumerate(loc):
        last = position == len(loc) - 1
        if present and _contains(current, step):
            current = current[step]
        elif last and step == "[key]":
            names_key = True
            continue
        elif last and keep_absent_last:
            present = False
        else:
            continue
        path.append(step)
    return tuple(path), names_key


def _contains(container: Any, step: str | int) -> bool:
    if isinstance(container, dict):
        return isinstance(step, str) and step in container
    if isinstance(container, list):
        return isinstance(step, int) and 0 <= step < len(container)
    return False


def _is_secret_name(step: str | int) -> bool:
    return isinstance(step, str) and _SECRET_NAME.search(step) is not None


def _secret_values(data: Any) -> set[str]:
    """The text of every scalar under a secret-looking key, to scrub from any message.

    A model validator reporting at a parent (``(root): secret 'hunter22' too short``) would
    otherwise slip past the per-field check. Values shorter than 4 characters are skipped:
    replacing them would mangle ordinary words, and they protect nothing.
    """
    found: set[str] = set()
    stack: list[tuple[Any, bool]] = [(data, False)]
    while stack:
        value, secret = stack.pop()
        if isinstance(value, dict):
            stack.extend((item, secret or _is_secret_name(key)) for key, item in value.items())
        elif isinstance(value, list):
            stack.extend((item, secret) for item in value)
        elif secret and isinstance(value, str | int | float) and len(str(value)) >= 4:
            found.add(str(value))
    return found


def _scrub(message: str, secrets: set[str]) -> str:
    for secret in sorted(secrets, key=len, reverse=True):
        if secret in message:
            message = message.replace(secret, "***")
    return message


def _safe_message(error: ErrorDetails, path: Path) -> str:
    """pydantic's message, unless it would show the input of a secret-looking field."""
    message = error["msg"]
    if any(_is_secret_name(step) for step in path):
        value = error.get("input")
        if isinstance(value, bytes):
            value = value.decode("utf-8", "replace")
        if isinstance(value, str | int | float) and str(value) and str(value) in message:
            return _HIDDEN_VALUE_MESSAGE
    return message


def _unknown_key_message(key: str, known: set[str]) -> str:
    message = f"unknown key {_quote(key)}"
    close = difflib.get_close_matches(key, sorted(known), n=1, cutoff=0.6)
    if close:
        message += f" (did you mean {_quote(close[0])}?)"
    return message


def _known_keys(model: type[BaseModel], path: Path) -> set[str]:
    """Field names (and aliases) accepted by the model(s) found at ``path``."""
    candidates: list[Any] = [model]
    for step in path:
        candidates = [child for tp in candidates for child in _children(tp, step)]
    keys: set[str] = set()
    for tp in candidates:
        for member in _members(tp):
            if isinstance(member, type) and issubclass(member, BaseModel):
                for name, info in member.model_fields.items():
                    keys.add(name)
                    if isinstance(info.alias, str):
                        keys.add(info.alias)
                    if isinstance(info.validation_alias, str):
                        keys.add(info.validation_alias)
    return keys


def _members(tp: Any) -> list[Any]:
    """A type with ``Annotated`` and unions (``X | None``) unwrapped into its members."""
    origin = typing.get_origin(tp)
    if origin is typing.Annotated:
        return _members(typing.get_args(tp)[0])
    if origin is typing.Union or origin is types.UnionType:
        return [member for arg in typing.get_args(tp) for member in _members(arg)]
    return [tp]


def _children(tp: Any, step: str | int) -> list[Any]:
    """The possible types one step below ``tp``: a model field, a list item, a dict value."""
    children: list[Any] = []
    for member in _members(tp):
        origin = typing.get_origin(member)
        args = typing.get_args(member)
        if isinstance(member, type) and issubclass(member, BaseModel):
            for name, info in member.model_fields.items():
                if step in (name, info.alias, info.validation_alias):
                    children.append(info.annotation)
        elif isinstance(step, str) and _is_mapping_type(origin) and len(args) == 2:
            children.append(args[1])
        elif isinstance(step, int) and _is_sequence_type(origin) and args:
            if origin is tuple and args[-1] is not Ellipsis:
                children.extend(args[step : step + 1])
            else:
                children.append(args[0])
    return children


def _is_mapping_type(origin: Any) -> bool:
    return isinstance(origin, type) and issubclass(origin, Mapping)


def _is_sequence_type(origin: Any) -> bool:
    return isinstance(origin, type) and (
        issubclass(origin, Sequence | set | frozenset) and not issubclass(origin, str | bytes)
    )
