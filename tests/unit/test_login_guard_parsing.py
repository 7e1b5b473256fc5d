"""Where the login guard finds the username, and how it is normalised."""

from __future__ import annotations

import pytest

from dijk.stages.login_guard import normalise_username
from dijk.stages.login_guard import username_from_body as _username


@pytest.mark.parametrize(
    ("body", "content_type", "expected"),
    [
        (b'{"username": "Anne", "password": "x"}', "application/json", "anne"),
        (b'{"username": " ANNE\\u00a0", "password": "x"}', "application/json", "anne"),
        (b"username=Anne&password=x", "application/x-www-form-urlencoded", "anne"),
        (b'{"username": 42}', "application/json", None),
        (b'{"user": "anne"}', "application/json", None),
        (b"[1, 2]", "application/json", None),
        (b"not json", "application/json", None),
        (b'{"username": "   "}', "application/json", None),
        (b"\xff\xfe", "application/x-www-form-urlencoded", None),
    ],
)
def test_username_is_read_from_json_or_form_bodies(
    body: bytes, content_type: str, expected: str | None
) -> None:
    assert _username(body, content_type, "username") == expected


def test_lookalike_spellings_count_as_one_account() -> None:
    assert normalise_username("\uff21\uff2e\uff2e\uff25") == normalise_username("anne")  # fullwidth
    assert normalise_username("Straße") == normalise_username("STRASSE")


def test_very_long_usernames_are_cut_before_hashing() -> None:
    assert (
        len(
            _username(b'{"username": "' + b"a" * 10_000 + b'"}', "application/json", "username")
            or ""
        )
        == 256
    )
