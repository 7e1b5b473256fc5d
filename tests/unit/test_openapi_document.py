"""Loading OpenAPI documents: formats, $ref bundling, safety limits, clear problems."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from dijk.config.loader import ConfigError
from dijk.config.models import DijkConfig
from dijk.openapi import SpecError, load_spec, resolve_location
from dijk.openapi.document import MAX_NODES, read_document
from dijk.stages.openapi import load_route_specs

MINIMAL_30 = """\
openapi: 3.0.3
info: {title: t, version: "1"}
paths:
  /items/{id}:
    get:
      parameters:
        - {name: id, in: path, required: true, schema: {type: integer}}
      responses:
        "200": {description: ok}
"""


def write(directory: Path, name: str, text: str) -> str:
    path = directory / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return str(path)


def test_yaml_and_json_documents_of_each_version_load(tmp_path: Path) -> None:
    swagger = {
        "swagger": "2.0",
        "info": {"title": "t", "version": "1"},
        "paths": {"/a": {"get": {"responses": {"200": {"description": "ok"}}}}},
    }
    openapi31 = {
        "openapi": "3.1.0",
        "info": {"title": "t", "version": "1"},
        "paths": {"/a": {"get": {"responses": {"200": {"description": "ok"}}}}},
    }
    assert load_spec(write(tmp_path, "a.yaml", MINIMAL_30)).version == "3.0"
    assert load_spec(write(tmp_path, "b.json", json.dumps(swagger))).version == "2.0"
    assert load_spec(write(tmp_path, "c.json", json.dumps(openapi31))).version == "3.1"


def test_yaml_dates_and_numeric_keys_stay_json_shaped(tmp_path: Path) -> None:
    text = MINIMAL_30.replace(
        '"200": {description: ok}', "200: {description: ok}\n      x-since: 2024-01-01"
    )
    document = read_document(write(tmp_path, "a.yaml", text))
    operation = document.root["paths"]["/items/{id}"]["get"]
    assert "200" in operation["responses"]
    assert operation["x-since"] == "2024-01-01"


def test_relative_file_refs_are_bundled(tmp_path: Path) -> None:
    write(
        tmp_path,
        "schemas/item.yaml",
        "Item:\n  type: object\n  properties:\n    tag: {$ref: '#/Tag'}\nTag: {type: string}\n",
    )
    text = MINIMAL_30.replace(
        '"200": {description: ok}',
        '"200":\n          description: ok\n          content:\n            application/json:\n'
        '              schema: {$ref: "schemas/item.yaml#/Item"}',
    )
    document = read_document(write(tmp_path, "api.yaml", text))
    bundled = document.root["x-dijk-bundle"]["1"]
    assert bundled["Item"]["properties"]["tag"] == {"$ref": "#/x-dijk-bundle/1/Tag"}
    load_spec(document.path, response_mode="monitor")


def test_remote_refs_are_refused_with_the_place_they_are_written(tmp_path: Path) -> None:
    text = MINIMAL_30.replace("{type: integer}", "{$ref: 'https://example.org/id.yaml'}")
    with pytest.raises(SpecError) as caught:
        read_document(write(tmp_path, "api.yaml", text))
    issue = caught.value.issues[0]
    assert issue.line == 7
    assert issue.pointer == "/paths/~1items~1{id}/get/parameters/0/schema"
    assert "only references inside the document or to relative files" in issue.message


def test_a_missing_referenced_file_names_the_referring_file_and_line(tmp_path: Path) -> None:
    text = MINIMAL_30.replace("{type: integer}", "{$ref: './nowhere.yaml#/Id'}")
    with pytest.raises(SpecError) as caught:
        read_document(write(tmp_path, "api.yaml", text))
    issue = caught.value.issues[0]
    assert issue.file.endswith("api.yaml")
    assert issue.line == 7
    assert "file not found" in issue.message


def test_a_ref_to_nothing_is_reported_where_it_is_written(tmp_path: Path) -> None:
    text = MINIMAL_30.replace("{type: integer}", "{$ref: '#/components/schemas/Nope'}")
    with pytest.raises(SpecError) as caught:
        read_document(write(tmp_path, "api.yaml", text))
    assert (
        caught.value.issues[0]
        .format()
        .endswith(
            "api.yaml:7: /paths/~1items~1{id}/get/parameters/0/schema: "
            "$ref '#/components/schemas/Nope' points at nothing"
        )
    )


def test_an_alias_bomb_stops_at_the_node_limit(tmp_path: Path) -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 9)]
    with pytest.raises(SpecError) as caught:
        read_document(write(tmp_path, "bomb.yaml", "\n".join(lines) + "\n"))
    assert f"more than {MAX_NODES} values" in caught.value.issues[0].message


def test_a_document_that_is_not_openapi_is_refused_clearly(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="not an OpenAPI document"):
        read_document(write(tmp_path, "x.yaml", "hello: world\n"))
    with pytest.raises(SpecError, match="invalid YAML"):
        read_document(write(tmp_path, "y.yaml", "a: [\n"))


def test_spec_validator_problems_have_file_line_and_pointer(tmp_path: Path) -> None:
    text = MINIMAL_30.replace("{type: integer}", "{type: integer, default: x}")
    with pytest.raises(SpecError) as caught:
        load_spec(write(tmp_path, "api.yaml", text))
    issue = caught.value.issues[0]
    assert issue.line == 7
    assert issue.pointer == "/paths/~1items~1{id}/get/parameters/0/schema/default"
    assert "default value does not match the schema" in issue.message


def test_an_ecma_pattern_python_cannot_compile_is_not_a_problem(tmp_path: Path) -> None:
    text = MINIMAL_30.replace("{type: integer}", "{type: string, pattern: '^\\p{L}+$'}")
    spec = load_spec(write(tmp_path, "api.yaml", text))
    assert spec.operation_count == 1


def test_package_locations_resolve_to_the_shipped_file() -> None:
    path = resolve_location("package:dijk.demo/openapi.yaml", "/somewhere/else")
    assert Path(path).is_file()
    assert resolve_location("api.yaml", "/etc/dijk") == "/etc/dijk/api.yaml"
    with pytest.raises(ValueError, match="no installed Python package"):
        resolve_location("package:no_such_package_here/x.yaml", "/")


def config_with(spec: str) -> DijkConfig:
    return DijkConfig.model_validate(
        {
            "version": 1,
            "upstreams": {"a": {"url": "http://127.0.0.1:9"}},
            "routes": [
                {
                    "name": "r",
                    "match": {"path_prefix": "/"},
                    "upstream": "a",
                    "openapi": {"spec": spec},
                }
            ],
        }
    )


def test_spec_paths_are_relative_to_the_configuration_file(tmp_path: Path) -> None:
    write(tmp_path, "contracts/api.yaml", MINIMAL_30)
    source = write(tmp_path, "gw.yaml", "# the configuration\n")
    specs = load_route_specs(config_with("contracts/api.yaml"), source)
    assert specs["r"].file == os.path.join(str(tmp_path), "contracts", "api.yaml")


def test_route_problems_come_with_the_document_problems(tmp_path: Path) -> None:
    write(
        tmp_path, "api.yaml", MINIMAL_30.replace("{type: integer}", "{type: integer, default: x}")
    )
    source = write(tmp_path, "gw.yaml", "# the configuration\n")
    with pytest.raises(ConfigError) as caught:
        load_route_specs(config_with("api.yaml"), source)
    lines = str(caught.value).splitlines()
    assert "routes[0].openapi.spec: the OpenAPI document" in lines[0]
    assert "api.yaml:7: /paths/~1items~1{id}/get/parameters/0/schema/default:" in lines[1]
    with pytest.raises(ConfigError, match="no such file"):
        load_route_specs(config_with("missing.yaml"), source)


def test_config_validate_prints_the_document_problems(tmp_path: Path) -> None:
    write(tmp_path, "api.yaml", MINIMAL_30.replace("{type: integer}", "{$ref: '#/nope'}"))
    config = (
        "version: 1\nupstreams: {a: {url: 'http://127.0.0.1:9'}}\nroutes:\n"
        "  - name: r\n    match: {path_prefix: /}\n    upstream: a\n"
        "    openapi: {spec: ./api.yaml, mode: enforce}\n"
    )
    source = write(tmp_path, "gw.yaml", config)
    result = subprocess.run(
        [sys.executable, "-m", "dijk", "config", "validate", source],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert f"{source}:7: routes[0].openapi.spec: the OpenAPI document" in result.stderr
    assert "api.yaml:7: /paths/~1items~1{id}/get/parameters/0/schema: $ref" in result.stderr
