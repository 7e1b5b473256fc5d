"""Bare Python proxies that bench/proxy.py measures beside nginx and Dijk.

Each module forwards every request to the upstream named by the environment variable
``DIJK_BENCH_UPSTREAM`` (``http://127.0.0.1:PORT``) over keep-alive connections. They are
reference points (how fast can a Python proxy on this stack be?), not gateway code.
"""

import os
from typing import Any
from urllib.parse import quote, urlsplit

UPSTREAM_ENV = "DIJK_BENCH_UPSTREAM"


def upstream_address() -> tuple[str, int]:
    """Host and port of the upstream, from ``DIJK_BENCH_UPSTREAM``."""
    url = urlsplit(os.environ[UPSTREAM_ENV])
    if url.scheme != "http" or url.hostname is None or url.port is None:
        raise SystemExit(
            f"{UPSTREAM_ENV} must look like http://127.0.0.1:8081, not {url.geturl()!r}"
        )
    return url.hostname, url.port


# Hop-by-hop headers (RFC 9110 section 7.6.1) are never forwarded. Like nginx, the variants
# do not also drop the headers that a ``Connection`` header names. ``host`` is dropped on
# the way up (the upstream URL decides it, as nginx's proxy_pass does by default) and
# ``content-length`` on the way down (the server in front recomputes it).
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-connection",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)
NOT_FORWARDED_UP = HOP_BY_HOP | {"host", "content-length"}
NOT_FORWARDED_DOWN = HOP_BY_HOP | {"content-length"}


# RFC 3986 ``pchar`` characters besides unreserved ones; everything else is percent-encoded.
_PATH_SAFE = "/!$&'()*+,;=:@"


def rsgi_target(scope: Any) -> str:
    """Request target for the upstream from an RSGI scope.

    RSGI hands over the path percent-decoded and has no raw path, so it is quoted again
    (``%2F`` comes back as ``/``: fine for the benchmark, not for a gateway). The query
    string arrives raw and is passed on as it is.
    """
    path = quote(scope.path, safe=_PATH_SAFE)
    return f"{path}?{scope.query_string}" if scope.query_string else path
