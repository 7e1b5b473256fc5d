"""Global network rules through a real ``dijk serve``: a refused network learns nothing.

Before, the global ``network`` rules ran in each route's pipeline only, so a caller from a
denied network got 403 on paths that exist and 404 (or 405) on paths that do not: a map of
the API. Now a request that matches no route is held to the global rules first.
"""

from __future__ import annotations

import http.client
import json
from collections.abc import Callable

from tests.support.gateway import GatewayProcess, base_config
from tests.support.upstream import RecordingUpstream


def status_and_reason(gateway: GatewayProcess, method: str, path: str) -> tuple[int, str]:
    connection = http.client.HTTPConnection("127.0.0.1", gateway.port, timeout=10)
    connection.request(method, path)
    response = connection.getresponse()
    body = response.read()
    connection.close()
    reason = ""
    if response.getheader("content-type") == "application/problem+json":
        reason = json.loads(body)["reason"]
    return response.status, reason


def routes() -> list[dict[str, object]]:
    return [
        {
            "name": "accounts",
            "match": {"path_prefix": "/accounts", "methods": ["GET"]},
            "upstream": "echo",
        }
    ]


def test_a_denied_network_gets_403_for_paths_that_do_not_exist_too(
    start_gateway: Callable[..., GatewayProcess], upstream: RecordingUpstream
) -> None:
    # The tests call from 127.0.0.1: deny loopback globally.
    config = base_config(upstream.port, routes=routes(), network={"ip_deny": ["127.0.0.0/8"]})
    gateway = start_gateway(config)
    assert status_and_reason(gateway, "GET", "/accounts/1") == (403, "net.denied")
    assert status_and_reason(gateway, "GET", "/no-such-path") == (403, "net.denied")
    assert status_and_reason(gateway, "POST", "/accounts/1") == (403, "net.denied")


def test_an_allow_list_that_omits_the_caller_hides_the_route_map_as_well(
    start_gateway: Callable[..., GatewayProcess], upstream: RecordingUpstream
) -> None:
    config = base_config(upstream.port, routes=routes(), network={"ip_allow": ["10.0.0.0/8"]})
    gateway = start_gateway(config)
    assert status_and_reason(gateway, "GET", "/no-such-path") == (403, "net.denied")


def test_an_allowed_network_still_gets_404_and_405(
    start_gateway: Callable[..., GatewayProcess], upstream: RecordingUpstream
) -> None:
    config = base_config(upstream.port, routes=routes(), network={"ip_allow": ["127.0.0.0/8"]})
    gateway = start_gateway(config)
    assert status_and_reason(gateway, "GET", "/accounts/1")[0] == 200
    assert status_and_reason(gateway, "GET", "/no-such-path") == (404, "route.not_found")
    assert status_and_reason(gateway, "POST", "/accounts/1") == (405, "route.method_not_allowed")
