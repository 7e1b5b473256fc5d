"""The decision section: safe defaults, refused contradictions, and the shipped examples."""

from __future__ import annotations

import pytest
import yaml
from pydantic import ValidationError

from dijk.config.models import DecisionConfig
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
