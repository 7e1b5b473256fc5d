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


# -- sqlmap payloads that used to pass ------------------------------------------------

SQLMAP_MISSES = [
    # MySQL error-based, in every quoting variant
    "Bakker AND GTID_SUBSET(CONCAT(0x7171787671,(SELECT (ELT(5021=5021,1))),0x71707a7871),5021)",
    'Bakker" AND GTID_SUBSET(CONCAT(0x7171787671,(SELECT (ELT(5021=5021,1))),0x71707a7871),5021)'
    "-- abcd",
    "Bakker AND GTID_SUBTRACT(CONCAT(0x71,(SELECT user())),1)",
    # boolean pairs ended by a control character
    "Bakker AND 1354=1354\x16",
    "Bakker AND 1354=1355\x16",
    "ORDER BY 1\x16",
    # time-based after a URL or two words
    "https://example.com/page AND 4812=DBMS_PIPE.RECEIVE_MESSAGE(CHR(65)||CHR(66)||CHR(67),5)",
    "Jan Bakker AND 4812=DBMS_PIPE.RECEIVE_MESSAGE(CHR(65)||CHR(66)||CHR(67),5)",
    "https://example.com/page AND 1234=LIKE(CHAR(65,66,67,68,69,70,71),"
    "UPPER(HEX(RANDOMBLOB(500000000/2))))",
    "Jan Bakker AND 1234=LIKE(CHAR(65,66,67,68,69,70,71),UPPER(HEX(RANDOMBLOB(500000000/2))))",
]


@pytest.mark.parametrize("payload", SQLMAP_MISSES)
def test_sqlmap_payloads_are_refused_in_query_and_json(payload: str) -> None:
    for verdict in (search(payload), json_body({"name": payload})):
        assert verdict.blocked, verdict.findings
        assert "sqli" in verdict.categories


@pytest.mark.parametrize(
    "text",
    [
        "GTID_SUBSET and GTID_SUBTRACT compare replication sets",
        "We use dbms_pipe for messaging between sessions",
        "randomblob gives random bytes in SQLite",
        "Bakker and 1354 others\x16",
        "Order 1354 = paid\x1f",
        "Room 12\x07",
    ],
)
def test_look_alikes_of_the_sqlmap_payloads_pass(text: str) -> None:
    assert not search(text).blocked
    assert not json_body({"note": text}).blocked
