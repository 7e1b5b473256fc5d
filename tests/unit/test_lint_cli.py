"""``dijk lint`` as a CI user runs it: findings at FILE:LINE, exit codes, formats, settings."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from typer.testing import CliRunner

from dijk.cli.main import app
from dijk.lint import lint_document, lint_documents
from dijk.lint.checks import Checker
from dijk.lint.source import LoadError, Sources
from dijk.reporting import Severity
from tests.conftest import CORPORA
from tests.support.sarif import assert_valid_sarif

RUNNER = CliRunner()

# Line numbers matter: the tests below point at them.
LEAKY = """\
openapi: 3.0.3
info: {title: leaky, version: "1"}
servers:
  - url: http://api.example.com
security:
  - bearer: []
paths:
  /reports:
    get:
      parameters:
        - name: token
          in: query
          schema: {type: string, maxLength: 40}
        - name: q
          in: query
          schema:
            type: string
      responses:
        "200": {description: ok}
components:
  securitySchemes:
    bearer: {type: http, scheme: bearer}
"""


def lint(*args: str) -> tuple[int, str, str]:
    result = RUNNER.invoke(app, ["lint", *args])
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture
def leaky(tmp_path: Path) -> Path:
    path = tmp_path / "leaky.yaml"
    path.write_text(LEAKY)
    return path


def test_token_in_query_http_server_and_unbounded_string_are_reported_at_file_line(
    leaky: Path,
) -> None:
    code, out, _ = lint(str(leaky), "--fail-on", "medium")
    assert code == 1
    assert f"{leaky}:4:5" in out
    assert "server-not-https" in out
    assert f"{leaky}:11:11" in out
    assert "credential-in-query" in out
    assert f"{leaky}:16:11" in out
    assert "string-unbounded" in out


def test_fail_on_threshold_sets_the_exit_code(leaky: Path) -> None:
    assert lint(str(leaky))[0] == 1  # default: high (token in query, http server)
    assert lint(str(leaky), "--fail-on", "none")[0] == 0
    assert lint(str(leaky), "--fail-on", "critical")[0] == 2


def test_sarif_output_is_schema_valid_and_points_at_the_lines(leaky: Path, tmp_path: Path) -> None:
    out = tmp_path / "lint.sarif"
    code, _, _ = lint(str(leaky), "--format", "sarif", "--output", str(out), "--fail-on", "none")
    assert code == 0
    log = json.loads(out.read_text())
    assert_valid_sarif(log)
    results = {r["ruleId"]: r for r in log["runs"][0]["results"]}
    region = results["credential-in-query"]["locations"][0]["physicalLocation"]["region"]
    assert region == {"startLine": 11, "startColumn": 11}
    assert results["server-not-https"]["properties"]["owasp"] == "API8:2023"
    rules = log["runs"][0]["tool"]["driver"]["rules"]
    assert all(rule["fullDescription"]["text"] for rule in rules)


def test_json_and_junit_outputs(leaky: Path) -> None:
    code, out, _ = lint(str(leaky), "--format", "json", "--fail-on", "none")
    data = json.loads(out)
    assert code == 0
    assert {f["rule_id"] for f in data["findings"]} >= {
        "credential-in-query",
        "server-not-https",
        "string-unbounded",
    }
    assert 0 <= data["score"] < 100
    _, xml, _ = lint(str(leaky), "--format", "junit", "--fail-on", "none")
    root = ET.fromstring(xml)
    assert int(root.get("failures", "0")) >= 3


def test_clean_document_exits_zero_even_at_the_lowest_threshold() -> None:
    from importlib import resources

    hardened = resources.files("dijk.lint").joinpath("examples/hardened.openapi.yaml")
    code, out, _ = lint(str(hardened), "--fail-on", "info")
    assert code == 0
    assert "0 finding(s)" in out


def test_unreadable_document_exits_2_with_one_line_and_no_traceback(tmp_path: Path) -> None:
    missing = tmp_path / "missing.yaml"
    broken = tmp_path / "broken.yaml"
    broken.write_text("openapi: 3.0.3\npaths: {/a: [\n")
    not_openapi = tmp_path / "config.yaml"
    not_openapi.write_text("version: 1\nroutes: []\n")
    for path, message in (
        (missing, "file not found"),
        (broken, "invalid YAML"),
        (not_openapi, "not an OpenAPI document"),
    ):
        result = subprocess.run(
            [sys.executable, "-m", "dijk", "lint", str(path)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 2, result.stderr
        assert message in result.stderr
        assert "Traceback" not in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1


def test_no_document_is_a_usage_error() -> None:
    assert lint()[0] == 2


def test_inline_suppression_silences_listed_rules_below_it(tmp_path: Path) -> None:
    text = LEAKY.replace(
        "    get:\n", "    get:\n      x-dijk-lint-ignore: [credential-in-query]\n"
    ).replace("servers:\n", "x-dijk-lint-ignore: [server-not-https]\nservers:\n")
    path = tmp_path / "quiet.yaml"
    path.write_text(text)
    rules = {f.rule_id for f in lint_document(str(path)).findings}
    assert "credential-in-query" not in rules
    assert "server-not-https" not in rules
    assert "string-unbounded" in rules


def test_config_file_changes_severity_and_turns_rules_off(leaky: Path, tmp_path: Path) -> None:
    config = tmp_path / "lint.yaml"
    config.write_text(
        "fail_on: medium\nrules:\n  credential-in-query: low\n  server-not-https: off\n"
        "  string-unbounded: info\n"
    )
    code, out, _ = lint(str(leaky), "--config", str(config), "--format", "json")
    data = json.loads(out)
    by_rule = {f["rule_id"]: f for f in data["findings"]}
    assert "server-not-https" not in by_rule
    assert by_rule["credential-in-query"]["severity"] == "low"
    assert by_rule["string-unbounded"]["severity"] == "info"
    assert code == 0  # nothing left at medium or above
    assert lint(str(leaky), "--config", str(config), "--fail-on", "low")[0] == 1


def test_config_with_unknown_rule_is_refused(leaky: Path, tmp_path: Path) -> None:
    config = tmp_path / "lint.yaml"
    config.write_text("rules:\n  string-unbounded-typo: off\n")
    code, _, err = lint(str(leaky), "--config", str(config))
    assert code == 2
    assert "string-unbounded-typo" in err


def test_findings_in_referenced_files_point_at_those_files(tmp_path: Path) -> None:
    (tmp_path / "schemas").mkdir()
    (tmp_path / "schemas" / "note.yaml").write_text(
        "Note:\n  type: object\n  additionalProperties: false\n  properties:\n"
        "    text:\n      type: string\n"
    )
    main = tmp_path / "api.yaml"
    main.write_text(
        "openapi: 3.1.0\ninfo: {title: t, version: '1'}\npaths:\n  /notes:\n    post:\n"
        "      security: []\n      requestBody:\n        content:\n          application/json:\n"
        "            schema: {$ref: 'schemas/note.yaml#/Note'}\n"
        "      responses:\n        '204': {$ref: 'schemas/missing.yaml#/R'}\n"
    )
    findings = lint_document(str(main)).findings
    unbounded = next(f for f in findings if f.rule_id == "string-unbounded")
    assert unbounded.location.file is not None
    assert unbounded.location.file.endswith(os.path.join("schemas", "note.yaml"))
    assert (unbounded.location.line, unbounded.location.column) == (5, 5)
    assert unbounded.location.pointer == "/Note/properties/text"
    broken = next(f for f in findings if f.rule_id == "ref-unresolvable")
    assert broken.location.file == str(main)
    assert "file not found" in broken.message


def test_minified_json_is_placed_by_column(tmp_path: Path) -> None:
    path = tmp_path / "api.json"
    path.write_text(
        json.dumps(
            {
                "openapi": "3.0.0",
                "info": {"title": "t", "version": "1"},
                "servers": [{"url": "http://api.example.com"}],
                "paths": {},
            },
            separators=(",", ":"),
        )
    )
    (finding,) = lint_document(str(path)).findings
    assert finding.location.line == 1
    text = path.read_text()
    assert text[finding.location.column - 1 :].startswith('"url"')


def test_swagger_2_documents_are_checked(tmp_path: Path) -> None:
    path = tmp_path / "v2.yaml"
    path.write_text(
        "swagger: '2.0'\ninfo: {title: t, version: '1'}\nhost: api.example.com\n"
        "schemes: [http, https]\nsecurityDefinitions:\n  basic: {type: basic}\n"
        "  oauth: {type: oauth2, flow: implicit, authorizationUrl: 'https://x/a', scopes: {}}\n"
        "paths:\n  /users/{userId}:\n    put:\n      parameters:\n"
        "        - {name: userId, in: path, required: true, type: integer}\n"
        "        - name: body\n          in: body\n"
        "          schema: {type: object, properties: {name: {type: string}}}\n"
        "      responses:\n        '200': {description: ok}\n"
    )
    rules = {f.rule_id for f in lint_document(str(path)).findings}
    assert rules >= {
        "server-not-https",
        "weak-http-auth",
        "oauth-implicit-flow",
        "write-without-security",
        "object-id-without-authorization",
        "numeric-object-id",
        "object-open",
        "string-unbounded",
        "response-without-schema",
    }


def test_recursive_yaml_alias_is_refused_not_looped(tmp_path: Path) -> None:
    path = tmp_path / "loop.yaml"
    path.write_text("openapi: 3.0.3\ninfo: &a {title: t, version: '1', self: *a}\npaths: {}\n")
    result = lint_document(str(path))
    assert result.error is not None


def test_reference_loop_is_unresolvable(tmp_path: Path) -> None:
    path = tmp_path / "loop.yaml"
    path.write_text(
        "openapi: 3.0.3\ninfo: {title: t, version: '1'}\npaths: {}\ncomponents:\n"
        "  schemas:\n    A: {$ref: '#/components/schemas/B'}\n"
        "    B: {$ref: '#/components/schemas/A'}\n"
    )
    findings = lint_document(str(path)).findings
    assert {f.rule_id for f in findings} == {"ref-unresolvable"}
    assert all("loop" in f.message for f in findings)


class _CountingHandler(SimpleHTTPRequestHandler):
    requests: list[str] = []

    def do_GET(self) -> None:
        type(self).requests.append(self.path)
        super().do_GET()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def served(tmp_path: Path) -> Iterator[str]:
    (tmp_path / "api.yaml").write_text(
        LEAKY.replace("schema:\n            type: string\n", "schema: {$ref: 'parts.yaml#/Q'}\n")
    )
    (tmp_path / "parts.yaml").write_text("Q:\n  type: string\n")
    _CountingHandler.requests = []
    handler = partial(_CountingHandler, directory=str(tmp_path))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_documents_are_read_from_urls_with_relative_refs(served: str) -> None:
    result = lint_document(f"{served}/api.yaml")
    assert result.error is None
    located = {(f.rule_id, f.location.file) for f in result.findings}
    assert ("string-unbounded", f"{served}/parts.yaml") in located
    assert ("credential-in-query", f"{served}/api.yaml") in located
    missing = lint_document(f"{served}/nothing.yaml")
    assert missing.error is not None
    assert "HTTP 404" in missing.error


def test_a_handful_of_real_corpus_documents_lint_without_errors() -> None:
    specs = sorted((CORPORA / "openapi" / "specs").glob("*.json"))
    if not specs:
        pytest.skip(f"OpenAPI corpus not found at {CORPORA / 'openapi'}")
    sample = specs[:: max(1, len(specs) // 8)][:8]
    for spec in sample:
        result = lint_document(str(spec))
        assert result.error is None, result.error
        for finding in result.findings:
            assert finding.location.line is not None
            assert finding.location.line >= 1
            assert finding.location.pointer is not None


def test_json_positions_match_the_yaml_node_tree(tmp_path: Path) -> None:
    document = {
        "openapi": "3.0.3",
        "info": {"title": 't\u00e9st "quoted" \\ slash', "version": "1"},
        "servers": [{"url": "https://ok.example"}, {"url": "http://plain.example"}],
        "paths": {
            "/a/{id}": {
                "post": {
                    "parameters": [
                        {
                            "name": "id",
                            "in": "path",
                            "required": True,
                            "schema": {"type": "integer"},
                        },
                        {"name": "api_key", "in": "query", "schema": {"enum": [1, 2.5, None]}},
                    ],
                    "requestBody": {
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "required": ["x"],
                                    "properties": {"x": {"type": "string"}, "n": {"type": "array"}},
                                }
                            }
                        }
                    },
                    "responses": {"200": {"description": "ok"}},
                }
            }
        },
    }
    for indent in (None, 2):
        path = tmp_path / f"doc-{indent}.json"
        path.write_text(json.dumps(document, indent=indent, ensure_ascii=False))
        sources = Sources(str(path))
        raws = Checker(sources).run()
        source = sources.files[0]
        assert source.is_json
        fast = [source.position(raw.tokens) for raw in raws]
        source.release()
        source.is_json = False
        composed = [source.position(raw.tokens) for raw in raws]
        assert len(raws) > 5
        assert fast == composed


def test_local_document_never_makes_lint_fetch_a_remote_ref(tmp_path: Path, served: str) -> None:
    path = tmp_path / "local.yaml"
    path.write_text(
        LEAKY.replace(
            "schema:\n            type: string\n", f"schema: {{$ref: '{served}/parts.yaml#/Q'}}\n"
        )
    )
    result = lint_document(str(path))
    broken = next(f for f in result.findings if f.rule_id == "ref-unresolvable")
    assert "--remote-refs" in broken.message
    assert _CountingHandler.requests == []
    allowed = lint_document(str(path), remote_refs=True)
    assert "ref-unresolvable" not in {f.rule_id for f in allowed.findings}
    assert _CountingHandler.requests == ["/parts.yaml"]


def test_fetched_document_refs_stay_on_its_origin(served: str) -> None:
    other = served.replace("127.0.0.1", "localhost")
    sources = Sources(f"{served}/api.yaml")
    with pytest.raises(LoadError, match="origin"):
        sources.resolve(0, f"{other}/parts.yaml#/Q")
    assert _CountingHandler.requests == ["/api.yaml"]


def test_demo_document_has_no_high_findings() -> None:
    from importlib import resources

    demo = resources.files("dijk.demo").joinpath("openapi.yaml")
    result = lint_document(str(demo))
    assert result.error is None
    assert [f for f in result.findings if f.severity == Severity.high] == []


def test_progress_callback_runs_once_per_document(leaky: Path, tmp_path: Path) -> None:
    seen: list[str] = []
    gone = str(tmp_path / "gone.yaml")
    report = lint_documents([str(leaky), gone], on_done=lambda r: seen.append(r.target))
    assert seen == [str(leaky), gone]
    assert len(report.errors) == 1
