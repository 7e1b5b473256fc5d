"""Payload classes that bench/sqlmap.py saw reach the demo upstream through the gateway,
each with the shape sqlmap's tamper scripts give it; every one must now be refused."""

from __future__ import annotations

import json
from urllib.parse import urlencode

import pytest

from dijk.detect.engine import Detector
from dijk.detect.findings import RequestParts
from dijk.detect.normalise import plus_spaces, sql_compact

DETECTOR = Detector(paranoia=1)


def query(value: str) -> bool:
    request = RequestParts.from_target("GET", "/api/v1/search?" + urlencode({"q": value}))
    return DETECTOR.inspect(request).blocked


def json_field(value: str) -> bool:
    body = json.dumps({"subject": value, "description": "printer"}).encode()
    request = RequestParts.from_target(
        "POST", "/api/v1/tickets", [("Content-Type", "application/json")], body
    )
    return DETECTOR.inspect(request).blocked


# space2plus (with equaltolike): SQL words joined by '+', which a backend that decodes
# the query string once more reads as spaces.
PLUS_JOINED = [
    "x+WAITFOR+DELAY+'0:0:1'",
    "x'+WAITFOR+DELAY+'0:0:1'+AND+'ab'+LIKE+'ab",
    "x'+AND+7+LIKE+7+AND+'ab'+LIKE+'ab",
    "x)+AND+7+LIKE+BIN_SHL(CAST('a'||(SELECT+CASE+7+WHEN+7+THEN+1+ELSE+0+END+FROM+RDB$DATABASE)"
    "||'b'+AS+BIGINT),1)--+abc",
    "x';DECLARE+@v+NVARCHAR(4000);SET+@v+LIKE+(SELECT+'a');EXEC+@v--",
    "x;DECLARE+@v+CHAR(9);SET+@v+LIKE+0x303a303a31;WAITFOR+DELAY+@v--",
    "x)+AND+7+LIKE+7\x16",
    # column-count probing after a quote or bracket, and after a negative number
    'x")+ORDER+BY+1--+abcd',
    'x"))+ORDER+BY+9350--+abcd',
    "-7057+ORDER+BY+1--+abcd",
    "x'+GROUP+BY+3#",
    # equaltolike without a quote: a numeric comparison through LIKE, then a terminator
    "x+AND+5622+LIKE+8056",
    "x+AND+6525+LIKE+6525#+abcd",
    "x+HAVING+2697+LIKE+2697",
    "x+AND+6798+LIKE+6798\x16",
]
# space2dash / space2mysqldash: line comments ending at a newline as whitespace, with
# apostrophenullencode's NUL before the quote.
LINE_COMMENTS = [
    "x--\nWAITFOR--\nDELAY--\n\x00'0:0:1\x00'",
    "x--abc\nWAITFOR--def\nDELAY--\n'0:0:1'",
    "x'#abc\nUNION#def\nSELECT#\npassword#\nFROM#\nusers--",
]


@pytest.mark.parametrize("value", PLUS_JOINED)
def test_sql_joined_with_plus_signs_is_refused_in_the_query(value: str) -> None:
    assert query(value)


@pytest.mark.parametrize("value", PLUS_JOINED)
def test_sql_joined_with_plus_signs_is_refused_in_json(value: str) -> None:
    assert json_field(value)


@pytest.mark.parametrize("value", LINE_COMMENTS)
def test_line_comments_as_whitespace_are_refused(value: str) -> None:
    assert query(value)
    assert json_field(value)


def test_url_encoded_line_comments_in_json_are_refused() -> None:
    assert json_field("x--%0AWAITFOR--%0ADELAY--%0A%00%270:0:1%00%27")


@pytest.mark.parametrize(
    "value",
    ["x AND 5622 LIKE 8056", "x OR 7 RLIKE 7--", "1 HAVING 3 LIKE 3#"],
)
def test_numeric_comparison_through_like_is_refused(value: str) -> None:
    assert query(value)


@pytest.mark.parametrize(
    "value",
    ["I like 5 of them", "kids and 5 like 6 year olds play here too", "4 like 4 ever"],
)
def test_like_in_sentences_passes(value: str) -> None:
    assert not query(value)


@pytest.mark.parametrize(
    "value",
    ["C++ and Java", "a+b=c", "Tom+Jerry", "+31 6 12345678", "dGVzdCtzdHJpbmc+Zm9v", "1+1 and 2"],
)
def test_plus_signs_without_joined_sql_words_stay_as_they_are(value: str) -> None:
    assert plus_spaces(value) == value
    assert not query(value)


def test_plus_spaces_needs_sql_words_on_both_sides() -> None:
    assert plus_spaces("x+AND+1") == "x AND 1"
    assert plus_spaces("sand+orange") == "sand+orange"


def test_line_comment_without_newline_is_left_alone() -> None:
    # the classic terminator: the rest of the query is commented out, nothing to join
    assert sql_compact("x' OR 1=1--") == "x' OR 1=1--"
    assert sql_compact("a--b\nc") == "a c"
    assert sql_compact("a#b\nc") == "a c"


@pytest.mark.parametrize(
    "value",
    [
        "Step 1 -- open the app\nStep 2 -- log in",
        "Issue #12\nfixed in release 3",
        "Bestelling #4411\nis verzonden -- dank u",
    ],
)
def test_prose_with_dashes_hashes_and_newlines_passes(value: str) -> None:
    assert not query(value)
    assert not json_field(value)
