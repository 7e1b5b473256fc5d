"""False alarms real clients caused, and the attack shapes next to them that must still be
refused."""

from __future__ import annotations

import json
from urllib.parse import urlencode

import pytest

from dijk.detect.engine import Detector, phone_like
from dijk.detect.findings import RequestParts, Verdict

DETECTOR = Detector(paranoia=1)


def with_header(name: str, value: str) -> Verdict:
    return DETECTOR.inspect(RequestParts.from_target("GET", "/api/v1/accounts", [(name, value)]))


def search(value: str) -> Verdict:
    return DETECTOR.inspect(
        RequestParts.from_target("GET", "/api/v1/search?" + urlencode({"q": value}))
    )


def json_body(body: object) -> Verdict:
    return DETECTOR.inspect(
        RequestParts.from_target(
            "POST",
            "/api/v1/accounts",
            [("Content-Type", "application/json")],
            json.dumps(body).encode(),
        )
    )


# -- Referer and Origin name the client's own page ----------------------------------------


@pytest.mark.parametrize("header", ["Referer", "Origin"])
@pytest.mark.parametrize(
    "page",
    [
        "http://localhost:3000/",
        "http://localhost:3000",
        "http://10.1.2.3/app",
        "https://192.168.1.20:8443/admin/#/accounts",
        "http://127.0.0.1:5173/login?next=/dashboard",
        "http://intranet.corp/tools/",
        "http://[::1]:8080/",
    ],
)
def test_a_browser_page_on_a_local_or_private_host_is_not_ssrf(header: str, page: str) -> None:
    verdict = with_header(header, page)
    assert not verdict.findings, verdict.findings


@pytest.mark.parametrize(
    ("header", "value"),
    [
        # no browser page is on these: still findings wherever they appear
        ("Referer", "gopher://127.0.0.1:6379/_SLAVEOF"),
        ("Referer", "http://169.254.169.254/latest/meta-data/"),
        ("Origin", "http://0x7f000001/"),
        # a URL the server may well fetch: the usual SSRF check
        ("X-Callback-Url", "http://localhost:3000/"),
        ("X-Forwarded-Host", "http://10.1.2.3/app"),
    ],
)
def test_other_internal_urls_in_headers_are_still_ssrf(header: str, value: str) -> None:
    verdict = with_header(header, value)
    assert verdict.blocked
    assert "ssrf" in verdict.categories


def test_an_internal_url_in_a_body_field_is_still_ssrf() -> None:
    verdict = json_body({"webhook": "http://localhost:3000/"})
    assert verdict.blocked
    assert "ssrf" in verdict.categories


# -- phone numbers are not arithmetic SQL ----------------------------------------------


@pytest.mark.parametrize(
    "phone", ["+2253)-7) ", "12)-34)", "+31 (0)6-1234 5678", "(020) 555-0100", "06-12.34.56/78"]
)
def test_phone_numbers_pass(phone: str) -> None:
    assert phone_like(phone)
    assert not json_body({"phone": phone}).blocked
    assert not search(phone).blocked


@pytest.mark.parametrize(
    "payload", [" ( ( 1 ) )  --", "1) or (1=1", "12)-34) union select 1--", "1)) AND 2>1--"]
)
def test_numeric_breakouts_with_sql_are_still_refused(payload: str) -> None:
    assert not phone_like(payload)
    verdict = search(payload)
    assert verdict.blocked
    assert "sqli" in verdict.categories
