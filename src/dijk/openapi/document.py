"""Read an OpenAPI document, bundle the files its ``$ref``s name, and check it.

Swagger 2.0, OpenAPI 3.0 and 3.1 (3.2 is read as 3.1), in YAML or JSON.

- **Where**: a path relative to the configuration file's directory, an absolute path, or
  ``package:PACKAGE/RESOURCE`` for a file shipped inside an installed Python package
  (the demo uses ``package:dijk.demo/openapi.yaml``, so its configuration works from any
  directory and when printed by ``dijk demo --print-config``).
- **Bundling**: a ``$ref`` to another file (``./schemas.yaml#/Account``) is loaded and
  placed under ``x-dijk-bundle`` in the root document, and the reference rewritten to a
  local one, so everything after this module sees one self-contained document. Remote
  references (``https://...``) are refused: the gateway never fetches a contract from the
  network while it loads.
- **Safety**: files are size-capped; YAML is read with the safe loader, without implicit
  timestamps (``2024-01-01`` stays a string, as JSON Schema expects), mapping keys become
  strings (``200:`` is the response ``"200"``), and aliases are counted as expanded so an
  alias bomb stops at :data:`MAX_NODES`.
- **Checking**: the bundled document is validated with openapi-spec-validator. Its
  problems are reported with the file, line and JSON pointer they concern; a ``pattern``
  that Python's ``re`` cannot compile but the ECMA-262 engine we validate with can
  (``\\p{L}``) is not a problem.

Line numbers are only worked out for problems (the file is parsed a second time, into a
node tree, then): loading a valid document stays a fast orjson or libyaml parse.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from importlib import resources
from typing import Any, Literal
from urllib.parse import unquote

import orjson
import yaml

from dijk.openapi.errors import MAX_REPORTED, SpecError, SpecIssue, pointer

try:
    from yaml import CSafeLoader as _SafeLoader
except ImportError:  # pragma: no cover - only without libyaml
    from yaml import SafeLoader as _SafeLoader  # type: ignore[assignment]

__all__ = [
    "BUNDLE_KEY",
    "MAX_FILE_BYTES",
    "PACKAGE_SCHEME",
    "Document",
    "SpecLoader",
    "Version",
    "check_document",
    "mapping_key",
    "parse_text",
    "read_document",
    "resolve_location",
]

Version = Literal["2.0", "3.0", "3.1"]

PACKAGE_SCHEME = "package:"
BUNDLE_KEY = "x-dijk-bundle"
#: Largest single file read (the biggest public API documents are a few MB).
MAX_FILE_BYTES = 32 * 1024 * 1024
#: Most files one document may pull in through ``$ref``.
MAX_FILES = 256
#: Most values (mapping entries, list items) once YAML aliases are expanded.
MAX_NODES = 5_000_000

_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")
_TIMESTAMP_TAG = "tag:yaml.org,2002:timestamp"


class _SpecLoader(_SafeLoader):
    """The safe loader without implicit timestamps: dates stay strings, as in JSON."""


_SpecLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != _TIMESTAMP_TAG]
    for first, resolvers in _SafeLoader.yaml_implicit_resolvers.items()
}


#: The YAML loader documents are read with (``dijk lint`` composes node trees with it).
SpecLoader = _SpecLoader


@dataclass(slots=True)
class SourceFile:
    path: str
    text: str


@dataclass(slots=True)
class Document:
    """A bundled document: ``root`` references nothing outside itself."""

    root: dict[str, Any]
    version: Version
    files: list[SourceFile]
    digest: str

    @property
    def path(self) -> str:
        return self.files[0].path

    def issue(self, parts: tuple[str | int, ...] | list[str | int], message: str) -> SpecIssue:
        """An issue at ``parts`` of the bundled root, reported in the file it came from."""
        index = 0
        local = list(parts)
        if len(local) >= 2 and local[0] == BUNDLE_KEY:
            index = int(local[1])
            local = local[2:]
        source = self.files[index]
        return SpecIssue(source.path, _line_of(source.text, local), pointer(local), message)


class _Failure(Exception):
    def __init__(self, parts: list[str | int], message: str) -> None:
        super().__init__(message)
        self.parts = parts
        self.message = message


def resolve_location(spec: str, base_dir: str) -> str:
    """The file a route's ``openapi.spec`` names (see the module docstring)."""
    if spec.startswith(PACKAGE_SCHEME):
        package, _, name = spec[len(PACKAGE_SCHEME) :].partition("/")
        if not package or not name:
            raise ValueError(f"{spec!r}: write package:PACKAGE/FILE, e.g. package:dijk.demo/x.yaml")
        try:
            root = resources.files(package)
        except (ModuleNotFoundError, TypeError):
            raise ValueError(f"{spec!r}: no installed Python package {package!r}") from None
        target = root.joinpath(*name.split("/"))
        if not isinstance(target, os.PathLike):  # pragma: no cover - zipped packages
            raise ValueError(f"{spec!r}: the package is not installed as files on disk")
        return str(os.fspath(target))
    path = os.path.expanduser(spec)
    if not os.path.isabs(path):
        path = os.path.join(base_dir, path)
    return os.path.normpath(path)


def read_document(path: str) -> Document:
    """Read ``path`` and every file it references; raise :class:`SpecError` on problems."""
    return _Bundler(path).run()


class _Bundler:
    def __init__(self, path: str) -> None:
        self.files: list[SourceFile] = []
        self.by_path: dict[str, int] = {}
        self.data: dict[int, Any] = {}
        self.nodes = 0
        self.hash = hashlib.sha256()
        self.main = path
        self.refs: list[tuple[int, tuple[str | int, ...], str, str]] = []

    def run(self) -> Document:
        try:
            index = self._load(self.main, None)
        except _FileFailure as failure:
            raise self._error(failure.index, failure) from None
        except _Failure as failure:
            raise self._error(None, failure) from None
        root = self.data[index]
        if not isinstance(root, dict):
            raise SpecError(
                [SpecIssue(self.main, None, "", "not an OpenAPI document (no mapping)")]
            )
        version = _version(root)
        if version is None:
            raise SpecError(
                [
                    SpecIssue(
                        self.main,
                        1,
                        "",
                        "not an OpenAPI document: it needs 'openapi: 3.0.x', 'openapi: 3.1.x' "
                        "or 'swagger: \"2.0\"'",
                    )
                ]
            )
        if BUNDLE_KEY in root:
            raise SpecError([SpecIssue(self.main, None, "/" + BUNDLE_KEY, "reserved key")])
        if len(self.files) > 1:
            root = dict(root)
            root[BUNDLE_KEY] = {str(i): self.data[i] for i in range(1, len(self.files))}
        document = Document(root, version, self.files, self.hash.hexdigest())
        self._check_refs(document)
        return document

    def _check_refs(self, document: Document) -> None:
        """Every ``$ref`` must point at something: said here, with the place it is written."""
        from dijk.openapi.schema import resolve_pointer

        issues: list[SpecIssue] = []
        for index, parts, written, rewritten in self.refs:
            try:
                resolve_pointer(document.root, rewritten)
            except (KeyError, ValueError):
                if len(issues) < MAX_REPORTED:
                    source = self.files[index]
                    issues.append(
                        SpecIssue(
                            source.path,
                            None,
                            pointer(parts),
                            f"$ref {_short(written)!r} points at nothing",
                        )
                    )
        if issues:
            texts = {index: self.files[index].text for index, *_ in self.refs}
            located = [
                SpecIssue(
                    issue.file,
                    _line_of(texts[self.by_path[os.path.realpath(issue.file)]], _tokens(issue)),
                    issue.pointer,
                    issue.message,
                )
                for issue in issues
            ]
            raise SpecError(located)

    def _error(self, index: int | None, failure: _Failure) -> SpecError:
        if index is None or index >= len(self.files):
            return SpecError([SpecIssue(self.main, None, "", failure.message)])
        source = self.files[index]
        line = _line_of(source.text, failure.parts)
        return SpecError([SpecIssue(source.path, line, pointer(failure.parts), failure.message)])

    def _load(self, path: str, referrer: tuple[int, list[str | int]] | None) -> int:
        real = os.path.realpath(path)
        known = self.by_path.get(real)
        if known is not None:
            return known
        if len(self.files) >= MAX_FILES:
            raise _Failure([], f"more than {MAX_FILES} files are referenced")
        text = _read(path, referrer)
        index = len(self.files)
        self.files.append(SourceFile(path, text))
        self.by_path[real] = index
        self.hash.update(path.encode("utf-8", "surrogateescape") + b"\0" + text.encode() + b"\0")
        try:
            raw = _parse(text)
        except _Failure as failure:
            raise _FileFailure(index, failure) from None
        try:
            self.data[index] = self._prepare(raw, index, [], {}, set())
        except RecursionError:
            raise _FileFailure(index, _Failure([], "the document is nested too deeply")) from None
        except _FileFailure:
            raise
        except _Failure as failure:
            raise _FileFailure(index, failure) from None
        return index

    def _prepare(
        self,
        value: Any,
        index: int,
        parts: list[str | int],
        memo: dict[int, tuple[Any, int]],
        active: set[int],
    ) -> Any:
        """A copy with string keys and bundled refs; counts values as if aliases expanded."""
        if isinstance(value, dict | list):
            key = id(value)
            done = memo.get(key)
            if done is not None:
                self._count(done[1], parts)
                return done[0]
            if key in active:
                raise _Failure(list(parts), "a YAML alias refers to itself (recursive document)")
            active.add(key)
            before = self.nodes
            result: Any
            if isinstance(value, dict):
                result = {}
                for raw_key, item in value.items():
                    name = mapping_key(raw_key)
                    parts.append(name)
                    if name == "$ref" and isinstance(item, str):
                        rewritten = self._ref(item, index, parts)
                        result[name] = rewritten
                        self.refs.append((index, tuple(parts[:-1]), item, rewritten))
                        self._count(1, parts)
                    else:
                        result[name] = self._prepare(item, index, parts, memo, active)
                    parts.pop()
            else:
                result = []
                for position, item in enumerate(value):
                    parts.append(position)
                    result.append(self._prepare(item, index, parts, memo, active))
                    parts.pop()
            active.discard(key)
            self._count(1, parts)
            memo[key] = (result, self.nodes - before)
            return result
        self._count(1, parts)
        if value is None or isinstance(value, str | int | float | bool):
            return value
        raise _Failure(list(parts), f"unsupported YAML value of type {type(value).__name__}")

    def _count(self, amount: int, parts: list[str | int]) -> None:
        self.nodes += amount
        if self.nodes > MAX_NODES:
            raise _Failure(
                list(parts), f"document too large: more than {MAX_NODES} values (aliases counted)"
            )

    def _ref(self, ref: str, index: int, at: list[str | int]) -> str:
        parts = at[:-1]  # problems point at the object holding the $ref
        target, _, fragment = ref.partition("#")
        if fragment and not fragment.startswith("/"):
            raise _Failure(
                list(parts), f"$ref {_short(ref)!r}: only JSON pointer fragments (#/...) work"
            )
        if not target:
            if index == 0:
                return ref
            return f"#/{BUNDLE_KEY}/{index}{fragment}"
        if _SCHEME.match(target):
            raise _Failure(
                list(parts),
                f"$ref {_short(ref)!r}: only references inside the document or to relative "
                "files are followed (download remote documents and refer to the copy)",
            )
        base = os.path.dirname(self.files[index].path)
        path = os.path.normpath(os.path.join(base, unquote(target)))
        other = self._load(path, (index, list(parts)))
        if other == 0:
            return "#" + fragment
        return f"#/{BUNDLE_KEY}/{other}{fragment}"


class _FileFailure(_Failure):
    def __init__(self, index: int, failure: _Failure) -> None:
        super().__init__(failure.parts, failure.message)
        self.index = index


def _tokens(issue: SpecIssue) -> list[str | int]:
    from dijk.openapi.errors import split_pointer

    return list(split_pointer(issue.pointer))


def _read(path: str, referrer: tuple[int, list[str | int]] | None) -> str:
    where = "" if referrer is None else " (referenced here)"
    try:
        with open(path, "rb") as stream:
            raw = stream.read(MAX_FILE_BYTES + 1)
    except FileNotFoundError:
        raise _ref_failure(referrer, f"file not found: {path}{where}") from None
    except IsADirectoryError:
        raise _ref_failure(referrer, f"is a directory: {path}") from None
    except PermissionError:
        raise _ref_failure(referrer, f"permission denied: {path}") from None
    except OSError as exc:
        raise _ref_failure(referrer, f"cannot read {path}: {exc.strerror or exc}") from None
    if len(raw) > MAX_FILE_BYTES:
        raise _ref_failure(referrer, f"{path}: file larger than {MAX_FILE_BYTES} bytes")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise _ref_failure(referrer, f"{path}: not UTF-8 text (line {line})") from None


def _ref_failure(referrer: tuple[int, list[str | int]] | None, message: str) -> _Failure:
    if referrer is None:
        return _Failure([], message)
    return _FileFailure(referrer[0], _Failure(referrer[1], message))


def _parse(text: str) -> Any:
    stripped = text.lstrip()
    if stripped.startswith(("{", "[")):
        try:
            return orjson.loads(text)
        except orjson.JSONDecodeError:
            pass  # maybe YAML flow style; the YAML parser gives the better message
    try:
        return yaml.load(text, Loader=_SpecLoader)  # noqa: S506 - a safe loader subclass
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = f" (line {mark.line + 1})" if mark is not None else ""
        raise _Failure([], f"invalid YAML or JSON{line}: {exc.problem or exc}") from None
    except yaml.YAMLError as exc:
        raise _Failure([], f"invalid YAML or JSON: {exc}") from None


def parse_text(text: str) -> Any:
    """YAML or JSON text as data, read as documents are; ``ValueError`` says what is wrong."""
    try:
        return _parse(text)
    except _Failure as failure:
        raise ValueError(failure.message) from None


def mapping_key(raw: Any) -> str:
    """A YAML mapping key as the string JSON would have (``200`` -> ``"200"``)."""
    if isinstance(raw, bool):
        return "true" if raw else "false"
    if raw is None:
        return "null"
    return str(raw)


def _short(text: str, limit: int = 120) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _version(root: dict[str, Any]) -> Version | None:
    openapi = root.get("openapi")
    if isinstance(openapi, str):
        if openapi.startswith("3.0"):
            return "3.0"
        if openapi.startswith(("3.1", "3.2")):
            return "3.1"
        return None
    swagger = root.get("swagger")
    if str(swagger) == "2.0":
        return "2.0"
    return None


# --------------------------------------------------------------------------- line numbers


_composed: dict[int, tuple[str, Any]] = {}


def _compose(text: str) -> Any:
    """The node tree of ``text`` (with line marks); the last few are kept, for many issues."""
    known = _composed.get(id(text))
    if known is not None and known[0] is text:
        return known[1]
    try:
        node = yaml.compose(text, Loader=_SpecLoader)
    except yaml.YAMLError:
        node = None
    if len(_composed) >= 4:
        _composed.clear()
    _composed[id(text)] = (text, node)
    return node


def _line_of(text: str, parts: list[str | int] | tuple[str | int, ...]) -> int | None:
    """The 1-based line of the value at ``parts`` (nearest existing ancestor); slow path."""
    node: Any = _compose(text)
    if node is None:
        return None
    line = None if node is None else node.start_mark.line + 1
    for part in parts:
        if isinstance(node, yaml.MappingNode):
            found = None
            for key_node, value_node in node.value:
                if isinstance(key_node, yaml.ScalarNode) and key_node.value == str(part):
                    found = (key_node, value_node)
                    break
            if found is None:
                return line
            line = found[0].start_mark.line + 1
            node = found[1]
        elif isinstance(node, yaml.SequenceNode) and str(part).isdigit():
            position = int(part)
            if position >= len(node.value):
                return line
            node = node.value[position]
            line = node.start_mark.line + 1
        else:
            return line
    return line


# --------------------------------------------------------------------------- checking


@dataclass(slots=True)
class _Collected:
    issues: list[SpecIssue] = field(default_factory=list)
    more: int = 0


#: Problems counted after the reported ones before the check stops looking.
MAX_COUNTED = 200


def check_document(document: Document) -> None:
    """Validate with openapi-spec-validator; raise :class:`SpecError` listing the problems."""
    collected = _Collected()
    for parts, message in _problems(document):
        if len(collected.issues) >= MAX_REPORTED:
            collected.more += 1
            if collected.more >= MAX_COUNTED:
                break
            continue
        collected.issues.append(document.issue(parts, message))
    if collected.more:
        more = f"{collected.more}+" if collected.more >= MAX_COUNTED else str(collected.more)
        collected.issues.append(
            SpecIssue(document.path, None, "", f"... and {more} more problem(s)")
        )
    if collected.issues:
        raise SpecError(collected.issues)


def _problems(document: Document) -> Iterator[tuple[list[str | int], str]]:
    from jsonschema.exceptions import ValidationError  # type: ignore[import-untyped]

    validator_class = _validator_class(document.version)
    validator = validator_class(document.root)
    meta = False
    for error in validator.schema_validator.iter_errors(document.root):
        if _false_alarm(error):
            continue
        meta = True
        yield list(error.absolute_path), _message(error)
    if meta:
        return  # the deeper walk assumes a well-formed document
    try:
        for error in validator.root_validator(validator.schema_path):
            if _false_alarm(error):
                continue
            where: tuple[str | int, ...] = getattr(error, "dijk_where", ())
            keyword: str = getattr(error, "dijk_keyword", "")
            parts = [*where, *error.absolute_path] if isinstance(error, ValidationError) else []
            message = _message(error)
            if keyword.endswith("ValueValidator"):
                parts = [*where, "default"]
                message = f"default value does not match the schema: {message}"
            yield parts, message
    except RecursionError:
        yield [], "the document is nested too deeply to check"
    except Exception as exc:  # the library walking a document it did not expect
        yield [], f"the document could not be checked: {type(exc).__name__}: {_short(str(exc))}"


def _message(error: Exception) -> str:
    text = getattr(error, "message", None) or str(error)
    return _short(" ".join(str(text).split()), 300)


def _false_alarm(error: Exception) -> bool:
    """A ``pattern`` Python's ``re`` rejects but ECMA-262 (what we validate with) accepts."""
    if getattr(error, "validator", None) != "format" or getattr(error, "validator_value", None) != (
        "regex"
    ):
        return False
    instance = getattr(error, "instance", None)
    if not isinstance(instance, str):
        return False
    import jsonschema_rs

    try:
        jsonschema_rs.validator_for({"pattern": instance})
    except Exception:
        return False
    return True


_CLASSES: dict[str, Any] = {}


def _validator_class(version: Version) -> Any:
    """The library's validator for ``version``, with errors that remember where they were.

    openapi-spec-validator reports problems found by its keyword walk (a ``default`` that
    breaks its schema, an undeclared path parameter) without their place in the document.
    Each keyword validator is given a subclass that stamps the path it was called with on
    the errors passing through it, innermost first.
    """
    cached = _CLASSES.get(version)
    if cached is not None:
        return cached
    from jsonschema_path import SchemaPath
    from openapi_spec_validator import (
        OpenAPIV2SpecValidator,
        OpenAPIV30SpecValidator,
        OpenAPIV31SpecValidator,
    )

    base = {
        "2.0": OpenAPIV2SpecValidator,
        "3.0": OpenAPIV30SpecValidator,
        "3.1": OpenAPIV31SpecValidator,
    }[version]

    def located(keyword_class: Any) -> Any:
        def call(self: Any, *args: Any, **kwargs: Any) -> Iterator[Any]:
            where = next((arg for arg in args if isinstance(arg, SchemaPath)), None)
            for error in keyword_class.__call__(self, *args, **kwargs):
                if where is not None and getattr(error, "dijk_where", None) is None:
                    try:
                        error.dijk_where = tuple(where.parts)
                        error.dijk_keyword = keyword_class.__name__
                    except AttributeError:  # pragma: no cover - a frozen error type
                        pass
                yield error

        return type(keyword_class.__name__, (keyword_class,), {"__call__": call})

    subclass = type(
        f"Located{base.__name__}",
        (base,),
        {
            "keyword_validators": {
                name: located(keyword_class)
                for name, keyword_class in base.keyword_validators.items()
            }
        },
    )
    _CLASSES[version] = subclass
    return subclass
