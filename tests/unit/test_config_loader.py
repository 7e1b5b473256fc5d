"""Tests for the generic YAML → pydantic loader behind ``dijk config validate``.

The models here are small stand-ins written for these tests, so the loader is tested on
its own, independent of the real configuration models.
"""

from __future__ import annotations

import os
import pickle
import time
from enum import StrEnum
from pathlib import Path
from typing import Literal

import pytest
from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from dijk.config.loader import (
    MAX_DEPTH,
    MAX_FILE_BYTES,
    ConfigError,
    ConfigIssue,
    LineMap,
    format_path,
    issue_at,
    load_config_file,
    load_yaml_document,
    validate_document,
)

# --------------------------------------------------------------------------- test models


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Mode(StrEnum):
    ENFORCE = "enforce"
    MONITOR = "monitor"
    OFF = "off"


class Match(Strict):
    path_prefix: str
    methods: list[Literal["GET", "POST", "PUT", "DELETE"]] = ["GET"]

    @field_validator("path_prefix")
    @classmethod
    def _starts_with_slash(cls, value: str) -> str:
        if not value.startswith("/"):
            raise ValueError("must start with '/'")
        return value


class RateLimit(Strict):
    key: Literal["consumer", "ip"]
    limit: int
    per_s: float


class Route(Strict):
    name: str
    match: Match
    upstream: str
    rate_limit: list[RateLimit] = []
    mode: Mode = Mode.ENFORCE
    public: bool = False
    timeout_s: float | Literal["none"] = 30.0


class Upstream(Strict):
    url: str
    connect_timeout_s: float = 2.0
    read_timeout_s: float = 30.0


class Introspection(Strict):
    url: str
    client_secret: str | None = None
    client_secret_env: str | None = None

    @field_validator("client_secret")
    @classmethod
    def _long_enough(cls, value: str) -> str:
        if len(value) < 16:
            # A careless validator that echoes its input: the loader must hide it.
            raise ValueError(f"{value!r} is shorter than 16 characters")
        return value


class Config(Strict):
    version: Literal[1]
    upstreams: dict[str, Upstream] = {}
    routes: list[Route] = []
    introspection: Introspection | None = None
    limits: dict[str, int] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _routes_name_known_upstreams(self) -> Config:
        if self.introspection and self.introspection.client_secret == "hunter2hunter2hunter2":
            # A careless model validator echoing a secret from the root.
            raise ValueError(f"{self.introspection.client_secret} is a well-known password")
        for route in self.routes:
            if route.upstream not in self.upstreams:
                raise ValueError(f"route {route.name!r} uses unknown upstream {route.upstream!r}")
        return self


class WithContext(Strict):
    port: int

    @field_validator("port")
    @classmethod
    def _not_reserved(cls, value: int, info: ValidationInfo) -> int:
        reserved = (info.context or {}).get("reserved_ports", ())
        if value in reserved:
            raise ValueError(f"port {value} is reserved")
        return value


GOOD = """\
version: 1
upstreams:
  bank: {url: "http://127.0.0.1:8081", connect_timeout_s: 2}
routes:
  - name: accounts
    match:
      path_prefix: /api/v1/accounts
      methods: [GET, POST]
    upstream: bank
    rate_limit:
      - {key: consumer, limit: 100, per_s: 60}
      - {key: ip, limit: 1000, per_s: 60}
    mode: monitor
    public: false
"""


def write(tmp_path: Path, text: str, name: str = "dijk.yaml") -> str:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def load_text(text: str, model: type[BaseModel] = Config, file: str = "c.yaml") -> BaseModel:
    data, lines = load_yaml_document(text, file)
    return validate_document(data, lines, model, file)


def errors_of(text: str, model: type[BaseModel] = Config, file: str = "c.yaml") -> list[str]:
    """The formatted lines ``dijk config validate`` would print for ``text``."""
    with pytest.raises(ConfigError) as caught:
        load_text(text, model, file)
    return [issue.format() for issue in caught.value.issues]


def outcome(text: str) -> BaseModel | list[ConfigIssue]:
    """The model, or the issues: anything else escaping (a traceback) fails the test."""
    try:
        return load_text(text)
    except ConfigError as error:
        return error.issues


# --------------------------------------------------------------------------- success


def test_good_file_returns_the_model(tmp_path: Path) -> None:
    config = load_config_file(write(tmp_path, GOOD), Config)

    assert isinstance(config, Config)
    assert config.upstreams["bank"].url == "http://127.0.0.1:8081"
    route = config.routes[0]
    assert route.match.methods == ["GET", "POST"]
    assert route.rate_limit[1] == RateLimit(key="ip", limit=1000, per_s=60.0)
    assert route.mode is Mode.MONITOR


def test_path_like_and_str_paths_are_both_accepted(tmp_path: Path) -> None:
    file = write(tmp_path, GOOD)
    assert load_config_file(Path(file), Config) == load_config_file(file, Config)


def test_context_reaches_the_validators() -> None:
    data, lines = load_yaml_document("port: 8080\n", "c.yaml")
    assert validate_document(data, lines, WithContext, "c.yaml").port == 8080
    with pytest.raises(ConfigError) as caught:
        validate_document(data, lines, WithContext, "c.yaml", context={"reserved_ports": {8080}})
    assert str(caught.value) == "c.yaml:1: port: Value error, port 8080 is reserved"


def test_line_map_records_key_and_value_lines() -> None:
    data, lines = load_yaml_document(GOOD, "c.yaml")

    assert data["routes"][0]["match"]["methods"] == ["GET", "POST"]
    assert lines.value_line(()) == 1
    assert lines.key_line(("routes", 0, "match")) == 6
    assert lines.value_line(("routes", 0, "match")) == 6  # block mapping: its key's line
    assert lines.value_line(("routes", 0, "match", "path_prefix")) == 7
    assert lines.value_line(("routes", 0, "rate_limit", 1, "limit")) == 12
    # Not in the map: the nearest ancestor answers.
    assert lines.value_line(("routes", 0, "match", "nope", 3)) == 6


def test_anchors_aliases_and_merge_keys_are_supported() -> None:
    text = """\
version: 1
defaults: &timeouts {connect_timeout_s: 1, read_timeout_s: 5}
upstreams:
  bank: {<<: *timeouts, url: "http://bank", read_timeout_s: 9}
"""
    data, _ = load_yaml_document(text, "c.yaml")
    assert data["upstreams"]["bank"] == {
        "url": "http://bank",
        "connect_timeout_s": 1,
        "read_timeout_s": 9,  # the explicit key wins over the merged one, silently
    }


def test_mapping_keys_stay_strings_as_written() -> None:
    data, _ = load_yaml_document("on: yes\nno: 1\n1: x\n", "c.yaml")
    assert data == {"on": True, "no": 1, "1": "x"}


def test_env_references_are_not_expanded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DIJK_TEST_SECRET", "expanded")
    data, _ = load_yaml_document("a: ${DIJK_TEST_SECRET}\nb_env: DIJK_TEST_SECRET\n", "c.yaml")
    assert data == {"a": "${DIJK_TEST_SECRET}", "b_env": "DIJK_TEST_SECRET"}


def test_utf8_byte_order_mark_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "bom.yaml"
    path.write_bytes(b"\xef\xbb\xbfport: 1\n")
    assert load_config_file(path, WithContext).port == 1


# --------------------------------------------------------------------------- formatting


def test_issue_format_with_and_without_line_and_path() -> None:
    assert ConfigIssue("c.yaml", 3, "a.b", "bad").format() == "c.yaml:3: a.b: bad"
    assert ConfigIssue("c.yaml", None, "a", "bad").format() == "c.yaml: a: bad"
    assert ConfigIssue("c.yaml", 1, "", "bad").format() == "c.yaml:1: (root): bad"


def test_config_error_string_is_the_formatted_lines() -> None:
    issues = [ConfigIssue("c.yaml", 1, "a", "x"), ConfigIssue("c.yaml", 2, "b", "y")]
    error = ConfigError(issues)
    assert str(error) == "c.yaml:1: a: x\nc.yaml:2: b: y"
    assert error.issues == issues
    assert pickle.loads(pickle.dumps(error)).issues == issues


def test_path_style_is_dotted_with_bracketed_indices() -> None:
    assert format_path(()) == ""
    assert format_path(("routes", 0, "match", "path_prefix")) == "routes[0].match.path_prefix"
    assert format_path(("upstreams", "eu-bank_2", "url")) == "upstreams.eu-bank_2.url"
    assert format_path(("upstreams", "eu.bank", "url")) == 'upstreams["eu.bank"].url'
    assert format_path(("a", "line\nbreak")) == 'a["line\\nbreak"]'


def test_issue_at_locates_later_checks() -> None:
    _, lines = load_yaml_document(GOOD, "c.yaml")
    issue = issue_at("c.yaml", lines, ("routes", 0, "upstream"), "unknown upstream 'bank'")
    assert issue.format() == "c.yaml:9: routes[0].upstream: unknown upstream 'bank'"


# --------------------------------------------------------------------------- validation errors


def test_wrong_type_and_unknown_key_are_both_reported_sorted_by_line(tmp_path: Path) -> None:
    # routes come before upstreams in the file, but after them in the model: the report
    # follows the file.
    text = """\
version: 1
routes:
  - name: accounts
    match: {path_prefix: /a}
    upstream: bank
    rate_limit:
      - {key: consumer, limit: lots, per_s: 60}
upstreams:
  bank:
    url: http://127.0.0.1:8081
    conect_timeout_s: 3
"""
    file = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_config_file(file, Config)

    assert str(caught.value).splitlines() == [
        f"{file}:7: routes[0].rate_limit[0].limit: "
        "Input should be a valid integer, unable to parse string as an integer",
        f"{file}:11: upstreams.bank.conect_timeout_s: "
        "unknown key 'conect_timeout_s' (did you mean 'connect_timeout_s'?)",
    ]


def test_nested_list_indices_point_at_the_right_item() -> None:
    text = """\
version: 1
upstreams: {bank: {url: "http://bank"}}
routes:
  - name: one
    match: {path_prefix: /one}
    upstream: bank
  - name: two
    match: {path_prefix: /two}
    upstream: bank
    rate_limit:
      - {key: ip, limit: 1, per_s: 1}
      - {key: ip, limit: 1, per_s: 1}
      - key: ip
        limit: 1
        per_s: soon
"""
    assert errors_of(text) == [
        "c.yaml:15: routes[1].rate_limit[2].per_s: Input should be a valid number, "
        "unable to parse string as a number"
    ]


def test_unknown_key_points_at_the_key_and_suggests_a_close_one() -> None:
    text = """\
version: 1
upstreams: {bank: {url: "http://bank"}}
routes:
  - name: one
    match: {path_prefix: /one}
    upstreem:
      bank
"""
    assert errors_of(text) == [
        "c.yaml:4: routes[0].upstream: required field missing",
        "c.yaml:6: routes[0].upstreem: unknown key 'upstreem' (did you mean 'upstream'?)",
    ]


def test_unknown_key_without_a_close_match_has_no_suggestion() -> None:
    assert errors_of("version: 1\nzzz: 1\n") == ["c.yaml:2: zzz: unknown key 'zzz'"]


def test_unknown_key_in_an_optional_nested_model_gets_a_suggestion() -> None:
    text = "version: 1\nintrospection:\n  url: http://idp\n  client_secret_evn: X\n"
    assert errors_of(text) == [
        "c.yaml:4: introspection.client_secret_evn: "
        "unknown key 'client_secret_evn' (did you mean 'client_secret_env'?)"
    ]


def test_missing_field_points_at_the_parent_mapping() -> None:
    text = """\
version: 1
upstreams: {bank: {url: "http://bank"}}
routes:
  - name: one
    upstream: bank
    match:
      methods: [GET]
"""
    assert errors_of(text) == ["c.yaml:6: routes[0].match.path_prefix: required field missing"]


def test_missing_field_in_a_dict_of_models() -> None:
    text = "version: 1\nupstreams:\n  bank:\n    read_timeout_s: 3\n"
    assert errors_of(text) == ["c.yaml:3: upstreams.bank.url: required field missing"]


def test_missing_top_level_field_points_at_the_document_start() -> None:
    assert errors_of("# my config\nupstreams: {}\n") == [
        "c.yaml:2: version: required field missing"
    ]


def test_literal_enum_bool_and_dict_value_errors() -> None:
    text = """\
version: 2
upstreams: {bank: {url: "http://bank"}}
limits: {max_body_bytes: big}
routes:
  - name: one
    match: {path_prefix: /one, methods: [GET, FETCH]}
    upstream: bank
    mode: blok
    public: perhaps
"""
    assert errors_of(text) == [
        "c.yaml:1: version: Input should be 1",
        "c.yaml:3: limits.max_body_bytes: "
        "Input should be a valid integer, unable to parse string as an integer",
        "c.yaml:6: routes[0].match.methods[1]: Input should be 'GET', 'POST', 'PUT' or 'DELETE'",
        "c.yaml:8: routes[0].mode: Input should be 'enforce', 'monitor' or 'off'",
        "c.yaml:9: routes[0].public: Input should be a valid boolean, unable to interpret input",
    ]


def test_union_member_names_do_not_leak_into_the_path() -> None:
    text = """\
version: 1
upstreams: {bank: {url: "http://bank"}}
routes:
  - {name: one, match: {path_prefix: /one}, upstream: bank, timeout_s: never}
"""
    lines = errors_of(text)
    assert lines
    assert all(line.startswith("c.yaml:4: routes[0].timeout_s: ") for line in lines)


def test_field_validator_error_is_reported_at_the_value() -> None:
    text = """\
version: 1
upstreams: {bank: {url: "http://bank"}}
routes:
  - name: one
    match:
      path_prefix: one
    upstream: bank
"""
    assert errors_of(text) == [
        "c.yaml:6: routes[0].match.path_prefix: Value error, must start with '/'"
    ]


def test_model_validator_error_is_reported_at_the_root() -> None:
    text = """\
# header comment
version: 1
upstreams: {bank: {url: "http://bank"}}
routes:
  - {name: one, match: {path_prefix: /one}, upstream: vault}
"""
    assert errors_of(text) == [
        "c.yaml:2: (root): Value error, route 'one' uses unknown upstream 'vault'"
    ]


def test_secret_values_never_appear_in_messages() -> None:
    text = "version: 1\nintrospection:\n  url: http://idp\n  client_secret: hunter2\n"
    lines = errors_of(text)
    assert lines == [
        "c.yaml:4: introspection.client_secret: "
        "invalid value (not shown: this field may hold a secret)"
    ]
    assert "hunter2" not in "\n".join(lines)


def test_secret_values_are_scrubbed_from_messages_about_other_paths() -> None:
    text = "version: 1\nintrospection:\n  url: http://idp\n  client_secret: hunter2hunter2hunter2\n"
    assert errors_of(text) == ["c.yaml:1: (root): Value error, *** is a well-known password"]


def test_non_secret_validator_messages_are_kept() -> None:
    text = "version: 1\nintrospection: {url: http://idp, client_secret: [1]}\n"
    assert errors_of(text) == [
        "c.yaml:2: introspection.client_secret: Input should be a valid string"
    ]


def test_alias_errors_point_at_where_the_alias_is_used() -> None:
    text = """\
version: 1
names: &word hello
upstreams:
  bank:
    url: http://bank
    connect_timeout_s: *word
"""
    assert errors_of(text) == [
        "c.yaml:2: names: unknown key 'names'",
        "c.yaml:6: upstreams.bank.connect_timeout_s: "
        "Input should be a valid number, unable to parse string as a number",
    ]


# --------------------------------------------------------------------------- document shape


def test_list_root_is_not_a_mapping() -> None:
    assert errors_of("- a\n- b\n") == [
        "c.yaml:1: (root): expected a mapping of settings (key: value lines), found a list"
    ]


def test_scalar_root_is_not_a_mapping() -> None:
    assert errors_of("\n\njust text\n") == [
        "c.yaml:3: (root): expected a mapping of settings (key: value lines), "
        "found a single value (str)"
    ]


@pytest.mark.parametrize("text", ["", "\n\n", "# only a comment\n"])
def test_empty_file_is_one_clear_error(tmp_path: Path, text: str) -> None:
    file = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_config_file(file, Config)
    assert str(caught.value) == (
        f"{file}: (root): the file is empty; expected a mapping of settings (key: value lines)"
    )


def test_explicit_empty_document_is_empty() -> None:
    assert errors_of("---\n") == [
        "c.yaml:2: (root): the file is empty; expected a mapping of settings (key: value lines)"
    ]


# --------------------------------------------------------------------------- YAML problems


def test_duplicate_keys_are_reported_at_the_second_occurrence() -> None:
    text = """\
version: 1
upstreams:
  bank: {url: "http://a"}
  bank: {url: "http://b"}
routes: []
version: 1
"""
    assert errors_of(text) == [
        "c.yaml:4: upstreams.bank: duplicate key 'bank'",
        "c.yaml:6: version: duplicate key 'version'",
    ]


def test_duplicate_key_in_a_list_item() -> None:
    text = "routes:\n  - name: a\n    name: b\n"
    assert errors_of(text) == ["c.yaml:3: routes[0].name: duplicate key 'name'"]


def test_syntax_error_has_its_line() -> None:
    text = "version: 1\nupstreams:\n  bank: {url: http://x\nroutes: []\n"
    [line] = errors_of(text)
    assert line.startswith("c.yaml:4: (root): invalid YAML: ")


def test_tab_indentation_is_explained() -> None:
    text = "version: 1\nupstreams:\n\tbank: {}\n"
    assert errors_of(text) == ["c.yaml:3: (root): invalid YAML: tab character; indent with spaces"]


def test_several_documents_are_refused() -> None:
    [line] = errors_of("version: 1\n---\nversion: 1\n")
    assert line == (
        "c.yaml:2: (root): invalid YAML: expected a single document in the stream, "
        "but found another document"
    )


def test_undefined_alias_is_reported() -> None:
    assert errors_of("version: 1\nroutes: *missing\n") == [
        "c.yaml:2: (root): invalid YAML: found undefined alias 'missing'"
    ]


def test_control_characters_are_reported_with_their_line() -> None:
    [line] = errors_of("version: 1\nname: é\x07\n")
    assert line.startswith("c.yaml:2: (root): invalid YAML: unacceptable character")


def test_unsafe_and_unknown_tags_are_refused() -> None:
    text = "a: !!python/object/apply:os.system [echo hi]\nb: !custom x\nc: !!int nope\n"
    assert errors_of(text) == [
        "c.yaml:1: a: unsupported YAML tag '!!python/object/apply:os.system'",
        "c.yaml:2: b: unsupported YAML tag '!custom'",
        "c.yaml:3: c: invalid !!int value",
    ]


def test_complex_keys_are_refused() -> None:
    assert errors_of("? [a, b]\n: 1\n") == [
        "c.yaml:1: (root): mapping keys must be plain values, not a mapping or a list"
    ]


def test_alias_bomb_is_capped_fast() -> None:
    text = 'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n'
    previous = "a"
    for name in "bcdefghi":  # 9**9 ≈ 387 million strings if expanded
        text += f"{name}: &{name} [" + ", ".join([f"*{previous}"] * 9) + "]\n"
        previous = name

    started = time.perf_counter()
    [line] = errors_of(text)
    elapsed = time.perf_counter() - started

    assert "document too large" in line
    assert elapsed < 5


def test_huge_flat_document_is_capped_while_reading() -> None:
    text = "[" + "1, " * 1_000_000 + "1]"
    started = time.perf_counter()
    [line] = errors_of(text)
    assert line.startswith("c.yaml:1: (root): document too large")
    assert time.perf_counter() - started < 10


@pytest.mark.parametrize(
    "text",
    ["a: &r [*r]\n", "a: &r {<<: *r}\n", "a: &r {b: {c: *r}}\n"],
    ids=["list", "merge", "nested"],
)
def test_recursive_aliases_are_refused(text: str) -> None:
    [line] = errors_of(text)
    assert line.startswith("c.yaml:1: a")
    assert "recursive" in line


def test_deep_nesting_is_refused() -> None:
    depth = MAX_DEPTH + 10
    [line] = errors_of("a: " + "[" * depth + "]" * depth + "\n")
    assert line.startswith("c.yaml:1: (root): document nested too deeply")


def test_nesting_grown_through_aliases_is_refused() -> None:
    half = MAX_DEPTH // 2 + 5
    nested = "[" * half + "]" * half
    text = f"a: &a {nested}\nb: &b {'[' * half}*a{']' * half}\n"
    [line] = errors_of(text)
    assert "nested too deeply" in line


# --------------------------------------------------------------------------- file problems


def test_missing_file(tmp_path: Path) -> None:
    file = str(tmp_path / "nope.yaml")
    with pytest.raises(ConfigError) as caught:
        load_config_file(file, Config)
    assert str(caught.value) == f"{file}: (root): file not found"


def test_directory_instead_of_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config_file(tmp_path, Config)
    assert str(caught.value) == f"{tmp_path}: (root): is a directory, not a configuration file"


@pytest.mark.skipif(os.geteuid() == 0, reason="root can read any file")
def test_unreadable_file(tmp_path: Path) -> None:
    file = write(tmp_path, GOOD)
    os.chmod(file, 0)
    with pytest.raises(ConfigError) as caught:
        load_config_file(file, Config)
    assert str(caught.value) == f"{file}: (root): permission denied: cannot read the file"


def test_file_over_the_size_cap(tmp_path: Path) -> None:
    path = tmp_path / "big.yaml"
    path.write_bytes(b"# " + b"x" * MAX_FILE_BYTES + b"\n")
    with pytest.raises(ConfigError) as caught:
        load_config_file(path, Config)
    [issue] = caught.value.issues
    assert issue.line is None
    assert issue.message.startswith("file too large")
    assert str(MAX_FILE_BYTES) in issue.message


def test_text_over_the_size_cap() -> None:
    with pytest.raises(ConfigError, match="file too large"):
        load_yaml_document(" " * (MAX_FILE_BYTES + 1), "c.yaml")


def test_endless_device_is_capped() -> None:
    if not os.path.exists("/dev/zero"):
        pytest.skip("no /dev/zero")
    with pytest.raises(ConfigError) as caught:
        load_config_file("/dev/zero", Config)
    assert str(caught.value) == (
        f"/dev/zero: (root): file too large; the limit is {MAX_FILE_BYTES} bytes"
    )


def test_non_utf8_file_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes("version: 1\nname: café\n".encode("latin-1"))
    with pytest.raises(ConfigError) as caught:
        load_config_file(path, Config)
    assert str(caught.value) == (
        f"{path}:2: (root): file is not valid UTF-8 text (byte 0xe9); save it as UTF-8"
    )


@pytest.mark.parametrize(
    "text",
    [
        "{",
        "]",
        "a: b: c",
        "&a",
        "*a",
        "!!binary x: 1",
        "a: !!binary '***'",
        "a: !!timestamp nope",
        "? ? ?",
        "<<: 1",
        "<<: [1, 2]",
        "a: {<<: [*x]}",
        "%YAML 9.9\n---\na: 1",
        "%TAG ! tag:evil,2000:\n---\na: !x 1",
        "version: 1\nupstreams: {x: {url: 1}}\n",
    ],
)
def test_malformed_input_gives_located_issues_not_a_traceback(text: str) -> None:
    result = outcome(text)
    assert isinstance(result, list)
    assert result
    assert all(issue.file == "c.yaml" and issue.message for issue in result)


def test_empty_line_map_has_no_lines() -> None:
    assert LineMap().value_line(("a", 0)) is None
    assert LineMap().key_line(("a",)) is None


# --------------------------------------------------------------------------- strip_response_headers


def test_strip_response_headers_defaults_to_the_version_leaking_headers() -> None:
    from dijk.config import load_config_text

    config = load_config_text(
        "version: 1\nupstreams: {bank: {url: 'http://bank'}}\n"
        "routes: [{name: a, match: {path_prefix: /}, upstream: bank}]\n",
        "c.yaml",
    )
    assert config.strip_response_headers == [
        "server",
        "x-powered-by",
        "x-aspnet-version",
        "x-aspnetmvc-version",
    ]
    assert config.routes[0].strip_response_headers is None  # inherits the top-level list


def test_strip_response_headers_are_lower_cased_and_deduplicated() -> None:
    from dijk.config import load_config_text

    config = load_config_text(
        "version: 1\nupstreams: {bank: {url: 'http://bank'}}\n"
        "strip_response_headers: [Server, X-Powered-By, SERVER, x-custom_v1]\n"
        "routes: [{name: a, match: {path_prefix: /}, upstream: bank,"
        " strip_response_headers: []}]\n",
        "c.yaml",
    )
    assert config.strip_response_headers == ["server", "x-powered-by", "x-custom_v1"]
    assert config.routes[0].strip_response_headers == []


def test_invalid_strip_response_header_names_are_located_errors() -> None:
    from dijk.config import load_config_text

    text = """\
version: 1
upstreams: {bank: {url: "http://bank"}}
strip_response_headers:
  - server
  - "X-Powered-By:"
routes:
  - name: a
    match: {path_prefix: /}
    upstream: bank
    strip_response_headers: [x-ok, "bad name", ""]
"""
    with pytest.raises(ConfigError) as caught:
        load_config_text(text, "c.yaml")
    lines = [issue.format() for issue in caught.value.issues]
    assert len(lines) == 3, lines
    assert lines[0].startswith(
        "c.yaml:5: strip_response_headers[1]: Value error, not a valid header name: 'X-Powered-By:'"
    )
    assert lines[1].startswith(
        "c.yaml:10: routes[0].strip_response_headers[1]: Value error, "
        "not a valid header name: 'bad name'"
    )
    assert lines[2].startswith(
        "c.yaml:10: routes[0].strip_response_headers[2]: Value error, not a valid header name: ''"
    )


def test_a_token_subject_linked_to_two_consumers_is_located_at_the_second(
    tmp_path: Path,
) -> None:
    from dijk.config import load_config_text

    jwks = tmp_path / "jwks.json"
    jwks.write_text('{"keys": []}')
    text = f"""\
version: 1
upstreams: {{bank: {{url: "http://bank"}}}}
auth:
  jwt: {{jwks_file: {jwks}, issuer: https://idp, audience: api, algorithms: [RS256]}}
consumers:
  - name: partner
    jwt_subjects:
      - svc-partner
  - name: other
    jwt_subjects:
      - svc-other
      - svc-partner
    introspection_subjects: [client-1]
routes:
  - {{name: a, match: {{path_prefix: /}}, upstream: bank, auth: [jwt]}}
"""
    with pytest.raises(ConfigError) as caught:
        load_config_text(text, "c.yaml")
    lines = [issue.format() for issue in caught.value.issues]
    assert lines == [
        "c.yaml:12: consumers[1].jwt_subjects[1]: subject 'svc-partner' already names "
        "consumer 'partner' (a token subject is one consumer)",
        "c.yaml:13: consumers[1].introspection_subjects: lists token subjects but "
        "auth.introspection is not configured",
    ], lines
