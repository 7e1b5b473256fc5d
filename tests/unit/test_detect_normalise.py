"""Normalisation transforms: each decodes what attackers hide, and nothing more."""

from __future__ import annotations

import base64

from dijk.detect.normalise import (
    backslash_decode,
    base64_text,
    decode_utf8_lenient,
    html_decode,
    jwt_texts,
    log4j_resolve,
    percent_decode_once,
    sql_compact,
    unicode_fold,
    url_decode,
    variants,
)


def test_url_decoding_is_repeated_but_bounded() -> None:
    assert url_decode("%253Cscript%253E") == "<script>"
    assert url_decode("%25252525252541") != "A"  # more rounds than allowed stay encoded


def test_iis_percent_u_and_plus() -> None:
    assert percent_decode_once("%u003Cb%u003E+x") == "<b> x"


def test_overlong_utf8_becomes_ascii() -> None:
    assert decode_utf8_lenient(b"\xc0\xae\xc0\xae\xc0\xaf") == "../"
    assert decode_utf8_lenient(b"\xe0\x80\xae") == "."
    assert decode_utf8_lenient(b"\xf0\x80\x80\xae") == "."
    assert decode_utf8_lenient("é".encode()) == "é"


def test_invalid_percent_sequences_are_kept() -> None:
    assert percent_decode_once("100%") == "100%"
    assert percent_decode_once("%zz%4") == "%zz%4"


def test_html_entities_with_and_without_semicolons() -> None:
    assert html_decode("&lt;script&gt;") == "<script>"
    assert html_decode("&#x3c;&#60&#0000000040") == "<<("
    assert html_decode("Rock &amp; Roll &unknown; &") == "Rock & Roll &unknown; &"
    assert html_decode("&#99999999999;") == "&#99999999999;"


def test_backslash_escapes() -> None:
    assert backslash_decode("\\x3cscript\\u003e\\u{3c}") == "<script><"
    assert backslash_decode("\\nid") == "\nid"
    assert backslash_decode("C:\\\\temp\\q") == "C:\\temp\\q"


def test_unicode_fold_maps_full_width_and_case() -> None:
    assert unicode_fold("\uff1c\uff33\uff23\uff32\uff29\uff30\uff34\uff1e") == "<script>"
    assert unicode_fold("plain ASCII") == "plain ASCII"


def test_sql_comments_and_odd_whitespace() -> None:
    assert sql_compact("union/**/select") == "union select"
    assert sql_compact("/*!50000union*/") == " union "
    assert sql_compact("a\tb\u00a0c") == "a b c"
    assert sql_compact("unterminated /* comment") == "unterminated  "


def test_base64_only_when_it_decodes_to_readable_text() -> None:
    encoded = base64.b64encode(b"' OR 1=1 --").decode()
    assert base64_text(encoded) == "' OR 1=1 --"
    assert base64_text("SGVsbG8gV29ybGQ") == "Hello World"
    assert base64_text("abcdefghijklmnop") is None  # a word, not base64
    assert base64_text(base64.b64encode(bytes(range(200, 250))).decode()) is None


def test_jwt_header_and_claims_are_decoded() -> None:
    header = base64.urlsafe_b64encode(b'{"alg":"HS256","kid":"x"}').decode().rstrip("=")
    claims = base64.urlsafe_b64encode(b'{"sub":"<svg onload=alert(1)>"}').decode().rstrip("=")
    texts = jwt_texts(f"Bearer {header}.{claims}.signature")
    assert texts is not None
    assert "<svg onload=alert(1)>" in texts
    assert jwt_texts("not.a.jwt") is None


def test_log4j_lookups_are_resolved_innermost_first() -> None:
    assert log4j_resolve("${${lower:J}${upper:n}di:x}") == "${jNdi:x}"
    assert log4j_resolve("${${::-j}${env:X:-n}di:ldap://a}") == "${jndi:ldap://a}"
    assert log4j_resolve("no lookups") is None
    assert log4j_resolve("${unclosed") is None


def test_variants_label_their_transform_chain() -> None:
    labels = dict(variants("%26lt%3Bscript%26gt%3B"))
    assert labels["url"] == "&lt;script&gt;"
    assert labels["url+html"] == "<script>"
    assert variants("plain")[0] == ("none", "plain")
    assert variants("a\x00b")[0] == ("nul", "ab")
