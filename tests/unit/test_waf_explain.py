"""``dijk waf explain``: a request file in, every rule, transform and score out."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from dijk.cli.main import app
from dijk.cli.waf import RequestFileError, parse_request

RUNNER = CliRunner()
ATTACK = (
    b"GET /api/v1/search?q=1%27%20UNION%20SELECT%20password%20FROM%20users-- HTTP/1.1\r\n"
    b"Host: localhost\r\nUser-Agent: curl/8\r\n\r\n"
)


def run(tmp_path: Path, request: bytes, *options: str) -> tuple[int, str]:
    path = tmp_path / "request.http"
    path.write_bytes(request)
    result = RUNNER.invoke(app, ["waf", "explain", str(path), *options])
    return result.exit_code, result.output


def test_an_attack_is_explained_rule_by_rule_and_refused(tmp_path: Path) -> None:
    code, output = run(tmp_path, ATTACK)
    assert code == 1
    assert "sqli-libinjection" in output
    assert "sqli-union-select" in output
    # a paranoia-2 rule is shown, marked as not counted at paranoia 1
    assert "sqli-quote-keyword (*)" in output
    assert "score: sqli-libinjection 5 + sqli-union-select 5 = 10 (threshold 5)" in output
    assert output.rstrip().endswith("verdict: refused, 403 waf.sqli")


def test_the_json_report_gives_transforms_scores_and_reason(tmp_path: Path) -> None:
    request = b"GET /x?q=%253Cscript%253Ealert(1)%253C%252Fscript%253E HTTP/1.1\nHost: a\n\n"
    code, output = run(tmp_path, request, "--json")
    assert code == 1
    explained = json.loads(output)
    assert explained["reason"] == "waf.xss"
    transforms = {finding["transform"] for finding in explained["findings"]}
    assert "url" in transforms
    assert explained["score"] == sum(explained["scores"].values())


def test_a_clean_request_passes_with_exit_code_0(tmp_path: Path) -> None:
    code, output = run(tmp_path, b"GET /api/v1/search?q=drop-leaf+table HTTP/1.1\nHost: a\n\n")
    assert code == 0
    assert "no rule fired" in output
    assert output.rstrip().endswith("verdict: passed")


def test_paranoia_and_threshold_change_the_verdict(tmp_path: Path) -> None:
    request = b"GET /x?q=x%20group_concat(name) HTTP/1.1\nHost: a\n\n"
    code, output = run(tmp_path, request)
    assert code == 0
    assert "sqli-function-call (*)" in output
    code, output = run(tmp_path, request, "--paranoia", "2")
    assert code == 1
    assert "score: sqli-function-call 5 = 5 (threshold 5)" in output
    code, _ = run(tmp_path, request, "--paranoia", "2", "--threshold", "6")
    assert code == 0


def test_a_route_of_a_configuration_supplies_the_settings(tmp_path: Path) -> None:
    config = {
        "version": 1,
        "upstreams": {"app": {"url": "http://127.0.0.1:9"}},
        "routes": [
            {
                "name": "wiki",
                "match": {"path_prefix": "/wiki"},
                "upstream": "app",
                "waf": {"content": {"$.body": "markdown"}},
            }
        ],
    }
    (tmp_path / "dijk.yaml").write_text(yaml.safe_dump(config))
    body = json.dumps({"body": "```sql\nSELECT a FROM b UNION SELECT c FROM d;\n```"}).encode()
    request = (
        b"POST /wiki/pages HTTP/1.1\r\nHost: a\r\nContent-Type: application/json\r\n"
        + f"Content-Length: {len(body)}\r\n\r\n".encode()
        + body
    )
    code, _ = run(tmp_path, request)
    assert code == 1  # without the route's settings the code block is inspected fully
    config_path = str(tmp_path / "dijk.yaml")
    code, output = run(tmp_path, request, "-c", config_path, "--route", "wiki")
    assert code == 0, output
    code, output = run(tmp_path, request, "-c", config_path, "--route", "nope")
    assert code == 2
    assert "wiki" in output


@pytest.mark.parametrize(
    ("raw", "target"),
    [
        (b"GET http://example.com/a?b=1 HTTP/1.1\r\nHost: example.com\r\n\r\n", ("/a", "b=1")),
        (b"\n\nPOST /a HTTP/1.1\nHost: x\n\n", ("/a", "")),
    ],
)
def test_request_files_are_read_as_sent(raw: bytes, target: tuple[str, str]) -> None:
    request = parse_request(raw)
    assert (request.path, request.raw_query) == target


def test_a_chunked_body_is_undone() -> None:
    raw = (
        b"POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\n\r\n"
    )
    assert parse_request(raw).body == b"hello world"


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"not a request\n\n",
        b"GET / HTTP/1.1\nno colon here\n\n",
        b"POST / HTTP/1.1\nTransfer-Encoding: chunked\n\nzz\n",
    ],
)
def test_what_is_not_a_request_is_a_clear_error(raw: bytes, tmp_path: Path) -> None:
    with pytest.raises(RequestFileError):
        parse_request(raw)
    code, output = run(tmp_path, raw)
    assert code == 2
    assert output.startswith("error:")
