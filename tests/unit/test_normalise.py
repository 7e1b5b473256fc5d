"""Request-path normalisation: table of known cases and hypothesis properties."""

from __future__ import annotations

import contextlib
import pickle
import posixpath
import re
import string
from urllib.parse import unquote

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from dijk.routing.normalise import (
    MAX_PATH_LENGTH,
    REASON_ENCODED_SLASH,
    REASON_INVALID_PATH,
    REASON_PATH_TOO_LONG,
    REASON_PATH_TRAVERSAL,
    PathError,
    normalise_path,
)

ALL_REASONS = {
    REASON_INVALID_PATH,
    REASON_PATH_TOO_LONG,
    REASON_ENCODED_SLASH,
    REASON_PATH_TRAVERSAL,
}

ACCEPTED = [
    # (raw, expected)
    ("/", "/"),
    ("/api/v1/accounts", "/api/v1/accounts"),
    ("/api/v1/accounts/", "/api/v1/accounts/"),
    ("/public/../admin", "/admin"),
    ("/public/%2e%2e/admin", "/admin"),
    ("/public/%2E%2E/admin", "/admin"),
    ("/public/.%2e/admin", "/admin"),
    ("/a/./b", "/a/b"),
    ("/a/.", "/a/"),
    ("/a/..", "/"),
    ("/a/../", "/"),
    ("/.", "/"),
    ("/./", "/"),
    ("/a/b/../c", "/a/c"),
    ("/a/b/../../c", "/c"),
    ("/a//b", "/a/b"),
    ("//a///b", "/a/b"),
    ("//", "/"),
    ("/a//", "/a/"),
    ("/a//../b", "/b"),
    ("/%7e", "/~"),
    ("/%7Euser/%41%62%63", "/~user/Abc"),
    ("/%2d%5f%2E%30", "/-_.0"),
    ("/a%20b", "/a%20b"),
    ("/a%2ab", "/a%2Ab"),
    ("/caf%c3%a9", "/caf%C3%A9"),
    ("/%c2%a0%ff%80", "/%C2%A0%FF%80"),
    ("/%25", "/%25"),
    # Double encoding is decoded once only: `%25` stays, the literal `2e` after it too.
    ("/%252e%252e/admin", "/%252e%252e/admin"),
    ("/%252E%252E/admin", "/%252E%252E/admin"),
    ("/files/report.v2.pdf", "/files/report.v2.pdf"),
    ("/.well-known/jwks.json", "/.well-known/jwks.json"),
    ("/a/.../b", "/a/.../b"),
    ("/a/..b/c", "/a/..b/c"),
    ("/a;b=c/d", "/a;b=c/d"),
    ("/search?", "/search?"),
    ("/v1/items:batchGet", "/v1/items:batchGet"),
]

REJECTED = [
    # (raw, reason)
    ("", REASON_INVALID_PATH),
    ("api/v1", REASON_INVALID_PATH),
    ("*", REASON_INVALID_PATH),
    ("http://example.com/", REASON_INVALID_PATH),
    ("/..", REASON_PATH_TRAVERSAL),
    ("/../x", REASON_PATH_TRAVERSAL),
    ("/%2e%2e/x", REASON_PATH_TRAVERSAL),
    ("/a/b/../../../c", REASON_PATH_TRAVERSAL),
    ("/a/../../", REASON_PATH_TRAVERSAL),
    ("//../x", REASON_PATH_TRAVERSAL),
    ("/public/..;/admin", REASON_PATH_TRAVERSAL),
    ("/public/..;jsessionid=1/admin", REASON_PATH_TRAVERSAL),
    ("/public/.;/admin", REASON_PATH_TRAVERSAL),
    ("/public/..%3b/admin", REASON_PATH_TRAVERSAL),
    ("/public/%2e%2e;/admin", REASON_PATH_TRAVERSAL),
    ("/a%2fb", REASON_ENCODED_SLASH),
    ("/a%2Fb", REASON_ENCODED_SLASH),
    ("/a%5cb", REASON_ENCODED_SLASH),
    ("/..%2f..%2fetc/passwd", REASON_ENCODED_SLASH),
    ("/a\\b", REASON_INVALID_PATH),
    ("/..\\admin", REASON_INVALID_PATH),
    ("/a#b", REASON_INVALID_PATH),
    ("/a#", REASON_INVALID_PATH),
    ("/a%00", REASON_INVALID_PATH),
    ("/a%00.json", REASON_INVALID_PATH),
    ("/a%0a", REASON_INVALID_PATH),
    ("/a%0D%0ASet-Cookie:x", REASON_INVALID_PATH),
    ("/a%1f", REASON_INVALID_PATH),
    ("/a%7f", REASON_INVALID_PATH),
    ("/%c0%ae%c0%ae/etc/passwd", REASON_INVALID_PATH),
    ("/a%C1%9C", REASON_INVALID_PATH),
    ("/a%", REASON_INVALID_PATH),
    ("/a%4", REASON_INVALID_PATH),
    ("/a%G1", REASON_INVALID_PATH),
    ("/a%1G", REASON_INVALID_PATH),
    ("/a%+1", REASON_INVALID_PATH),
    ("/a% 1", REASON_INVALID_PATH),
    ("/a%%41", REASON_INVALID_PATH),
    ("/a b", REASON_INVALID_PATH),
    ("/a\tb", REASON_INVALID_PATH),
    ("/a\x00b", REASON_INVALID_PATH),
    ("/a\x7fb", REASON_INVALID_PATH),
    ("/café", REASON_INVALID_PATH),
    ("/\u2215etc", REASON_INVALID_PATH),
    ("/\udcff", REASON_INVALID_PATH),
]


@pytest.mark.parametrize(("raw", "expected"), ACCEPTED)
def test_accepted_path_is_normalised(raw: str, expected: str) -> None:
    assert normalise_path(raw) == expected
    assert normalise_path(raw.encode("ascii")) == expected
    assert normalise_path(expected) == expected


@pytest.mark.parametrize(("raw", "reason"), REJECTED)
def test_rejected_path_raises_path_error_with_reason(raw: str, reason: str) -> None:
    with pytest.raises(PathError) as caught:
        normalise_path(raw)
    assert caught.value.reason == reason


@pytest.mark.parametrize(("raw", "reason"), REJECTED)
def test_rejected_path_as_bytes_raises_the_same_reason(raw: str, reason: str) -> None:
    encoded = raw.encode("utf-8", "surrogateescape")
    with pytest.raises(PathError) as caught:
        normalise_path(encoded)
    assert caught.value.reason == reason


@pytest.mark.parametrize("byte", [*range(0x21), *range(0x7F, 0x100)])
def test_every_byte_outside_visible_ascii_is_rejected(byte: int) -> None:
    with pytest.raises(PathError) as caught:
        normalise_path(b"/a" + bytes([byte]) + b"b")
    assert caught.value.reason == REASON_INVALID_PATH


@pytest.mark.parametrize("value", [*range(0x20), 0x7F])
def test_every_encoded_control_character_is_rejected(value: int) -> None:
    for escape in (f"%{value:02x}", f"%{value:02X}"):
        with pytest.raises(PathError) as caught:
            normalise_path(f"/a{escape}b")
        assert caught.value.reason == REASON_INVALID_PATH


def test_error_message_never_echoes_the_path() -> None:
    secret = "/<script>alert(1)</script>/%zz"
    with pytest.raises(PathError) as caught:
        normalise_path(secret)
    assert "script" not in str(caught.value)
    assert "%zz" not in str(caught.value)


def test_path_error_is_a_value_error_that_survives_pickling() -> None:
    error = PathError(REASON_PATH_TRAVERSAL, "path climbs above the root")
    assert isinstance(error, ValueError)
    copy = pickle.loads(pickle.dumps(error))
    assert copy.reason == error.reason
    assert str(copy) == str(error)


def test_path_at_length_limit_is_accepted_and_longer_is_rejected() -> None:
    at_limit = "/" + "a" * (MAX_PATH_LENGTH - 1)
    assert normalise_path(at_limit) == at_limit
    with pytest.raises(PathError) as caught:
        normalise_path(at_limit + "a")
    assert caught.value.reason == REASON_PATH_TOO_LONG
    with pytest.raises(PathError):
        normalise_path(at_limit.encode() + b"a")


def test_encoded_slash_is_kept_encoded_when_allowed() -> None:
    assert normalise_path("/repos/group%2fproject", allow_encoded_slash=True) == (
        "/repos/group%2Fproject"
    )
    assert normalise_path("/a%5cb", allow_encoded_slash=True) == "/a%5Cb"
    assert normalise_path("/a/%2F/../b", allow_encoded_slash=True) == "/a/b"


@pytest.mark.parametrize(
    "raw", ["/a/..%2f..%2fetc", "/a/%2f../b", "/a%5c..%5cb", "/a/..%2F", "/a%2F.%2Fb"]
)
def test_dot_segment_between_allowed_encoded_slashes_is_rejected(raw: str) -> None:
    with pytest.raises(PathError) as caught:
        normalise_path(raw, allow_encoded_slash=True)
    assert caught.value.reason == REASON_PATH_TRAVERSAL


def test_duplicate_slashes_are_kept_when_merging_is_off() -> None:
    assert normalise_path("//a///b//", merge_slashes=False) == "//a///b//"
    assert normalise_path("/a//../b", merge_slashes=False) == "/a/b"
    assert normalise_path("/a/.//b", merge_slashes=False) == "/a//b"
    assert normalise_path("//..", merge_slashes=False) == "/"


def test_path_without_special_characters_is_returned_unchanged() -> None:
    path = "/api/v1/accounts/NL91ABNA0417164300/transactions"
    assert normalise_path(path) is path


# --- properties --------------------------------------------------------------------

_SEGMENT_PIECES = [
    "a",
    "B",
    "~",
    ".",
    "..",
    "...",
    "",
    "%2e",
    "%2E",
    "%2e%2E",
    "%7e",
    "%41",
    "%20",
    "%2a",
    "%25",
    "%252e",
    "%2f",
    "%5C",
    "%3b",
    ";",
    "..;",
    "%c3%a9",
    "%c0%ae",
    "%",
    "%4",
    "%G1",
    "%00",
    "\\",
    "#",
    "é",
    " ",
]

paths = st.lists(
    st.lists(st.sampled_from(_SEGMENT_PIECES), max_size=3).map("".join), max_size=8
).map(lambda segments: "/" + "/".join(segments))

anything = st.one_of(
    paths,
    st.text(max_size=64),
    st.binary(max_size=64),
    st.text(alphabet=string.printable, max_size=64).map(lambda text: "/" + text),
)

_ESCAPE = re.compile(r"%(..)")
_VISIBLE_ASCII = re.compile(r"[\x21-\x7e]*")


def _check_canonical(result: str, *, merge_slashes: bool) -> None:
    assert result.startswith("/")
    assert _VISIBLE_ASCII.fullmatch(result)
    assert "#" not in result
    assert "\\" not in result
    segments = result.split("/")[1:]
    assert "." not in segments
    assert ".." not in segments
    if merge_slashes:
        assert "//" not in result
    for escape in _ESCAPE.finditer(result):
        hex_pair = escape.group(1)
        assert hex_pair == hex_pair.upper()
        value = int(hex_pair, 16)
        assert chr(value) not in string.ascii_letters + string.digits + "-._~"
        assert 0x20 <= value != 0x7F
        assert value not in (0xC0, 0xC1)
    assert result.count("%") == len(_ESCAPE.findall(result))


@given(anything, st.booleans(), st.booleans())
@example("/%2e%2e", True, False)
@example("/a/..;/b", True, True)
@example("//%2e%2e", False, False)
def test_normalise_is_idempotent_and_canonical(
    raw: str | bytes, merge_slashes: bool, allow_encoded_slash: bool
) -> None:
    options = {"merge_slashes": merge_slashes, "allow_encoded_slash": allow_encoded_slash}
    reason: str | None = None
    try:
        result = normalise_path(raw, **options)
    except PathError as error:
        reason = error.reason
    if reason is not None:
        assert reason in ALL_REASONS
        return
    _check_canonical(result, merge_slashes=merge_slashes)
    assert normalise_path(result, **options) == result
    assert normalise_path(result.encode("ascii"), **options) == result


@given(st.binary(max_size=MAX_PATH_LENGTH + 8), st.booleans(), st.booleans())
def test_arbitrary_bytes_raise_nothing_but_path_error(
    raw: bytes, merge_slashes: bool, allow_encoded_slash: bool
) -> None:
    with contextlib.suppress(PathError):
        normalise_path(raw, merge_slashes=merge_slashes, allow_encoded_slash=allow_encoded_slash)


_PLAIN_PIECES = ["a", "b", "~", ".", "..", "", "%2e", "%2E", "%2e%2e", "%2E.", "%61", "x.y"]

plain_paths = st.lists(
    st.lists(st.sampled_from(_PLAIN_PIECES), max_size=2).map("".join), max_size=8
).map(lambda segments: "/" + "/".join(segments))


def _reference(raw: str) -> str | None:
    """An independent model: unquote, then POSIX normpath; None means traversal."""
    decoded = unquote(raw)
    segments = decoded.split("/")[1:]
    depth = 0
    for segment in segments:
        if segment == "..":
            depth -= 1
            if depth < 0:
                return None
        elif segment not in {"", "."}:
            depth += 1
    expected = posixpath.normpath(decoded)
    if expected.startswith("//"):
        expected = expected[1:]
    if segments[-1] in {"", ".", ".."} and expected != "/":
        expected += "/"
    return expected


@given(plain_paths)
def test_normalise_agrees_with_a_posix_reference_model(raw: str) -> None:
    expected = _reference(raw)
    if expected is None:
        with pytest.raises(PathError) as caught:
            normalise_path(raw)
        assert caught.value.reason == REASON_PATH_TRAVERSAL
    else:
        assert normalise_path(raw) == expected


@given(st.text(alphabet=string.ascii_letters + string.digits + "-_~/", max_size=40))
def test_paths_without_dots_escapes_or_double_slashes_are_unchanged(tail: str) -> None:
    path = "/" + tail
    if "//" in path:
        return
    assert normalise_path(path) == path
