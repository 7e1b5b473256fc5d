"""The decision section: safe defaults, refused contradictions, and the shipped examples."""

from __future__ import annotations

import re

import pytest
import yaml
from pydantic import ValidationError

from dijk.config.models import DEFAULT_STRIP_REQUEST_HEADERS, DecisionConfig
from tests.conftest import REPO


def test_no_decision_listener_and_only_loopback_may_ask_by_default() -> None:
    config = DecisionConfig()
    assert (config.listen, config.grpc, config.inline) == (None, None, True)
    assert config.proxies == ["127.0.0.1/32", "::1/128"]
    assert config.auth_request.method_header == "x-original-method"
    assert config.auth_request.uri_header == "x-original-uri"
    assert config.forward_auth.client_ip_header == "x-forwarded-for"


def test_decision_only_without_a_decision_listener_is_refused() -> None:
    with pytest.raises(ValidationError, match="inline: false needs a decision listener"):
        DecisionConfig(inline=False)


def test_an_endpoint_under_the_ext_authz_prefix_is_refused() -> None:
    with pytest.raises(ValidationError, match=r"lies under ext_authz\.path_prefix"):
        DecisionConfig.model_validate(
            {
                "listen": {"port": 8181},
                "forward_auth": {
                    "path": "/ext-authz/traefik",
                    "method_header": "X-Forwarded-Method",
                    "uri_header": "X-Forwarded-Uri",
                    "client_ip_header": "X-Forwarded-For",
                },
            }
        )


def test_the_shipped_decision_section_validates() -> None:
    document = yaml.safe_load((REPO / "deploy" / "dijk-decision.yaml").read_text())
    config = DecisionConfig.model_validate(document["decision"])
    assert config.listen is not None
    assert config.grpc is not None
    assert config.inline is False


@pytest.mark.parametrize(
    "path", ["deploy/envoy/envoy-ext-authz.yaml", "deploy/traefik/dijk-forward-auth.yaml"]
)
def test_the_proxy_examples_are_yaml_that_point_at_the_decision_ports(path: str) -> None:
    text = (REPO / path).read_text()
    yaml.safe_load(text)
    assert "8181" in text or "8182" in text


def _go_canonical(name: str) -> str:
    """The form Go's net/http (Traefik) keys a header by: X-Http-Method-Override."""
    return "-".join(part[:1].upper() + part[1:].lower() for part in name.split("-"))


def test_the_traefik_example_removes_every_header_dijk_inline_strips_in_both_spellings() -> None:
    """forwardAuth deletes what authResponseHeaders(Regex) names from the request before
    copying Dijk's values: the only way Traefik drops a client's X-HTTP-Method-Override."""
    document = yaml.safe_load((REPO / "deploy/traefik/dijk-forward-auth.yaml").read_text())
    forward = document["http"]["middlewares"]["dijk"]["forwardAuth"]
    listed = {name.lower() for name in forward["authResponseHeaders"]}
    pattern = re.compile(forward["authResponseHeadersRegex"])
    for name in [*DEFAULT_STRIP_REQUEST_HEADERS, "x-dijk-consumer", "x-dijk-scopes"]:
        for spelling in (name, name.replace("-", "_")):
            assert spelling in listed or pattern.match(_go_canonical(spelling)), spelling
    for kept in ("Accept", "Content-Type", "X-Api-Key", "X-Client-Cert", "Authorization"):
        assert not pattern.match(kept), kept


def test_the_nginx_example_clears_every_header_dijk_inline_strips() -> None:
    """nginx passes client headers to the API as they are; a header set to "" is not sent.
    (Names with '_' never pass nginx: underscores_in_headers is off by default.)"""
    text = (REPO / "deploy/nginx/dijk-auth-request.conf").read_text()
    proxied = text.split("location / {", 1)[1].split("}", 1)[0]
    cleared = {
        line.split()[1].lower()
        for line in proxied.splitlines()
        if line.strip().startswith("proxy_set_header") and line.strip().endswith('"";')
    }
    assert set(DEFAULT_STRIP_REQUEST_HEADERS) <= cleared
    assert "proxy_set_header X-Forwarded-For $remote_addr;" in proxied
