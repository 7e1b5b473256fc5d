"""Field names as context for the PII detector, and JSON path formatting."""

from __future__ import annotations

import pytest

from dijk.detect.pii import Category, field_categories
from dijk.detect.pii_fields import key_words
from dijk.detect.pii_paths import PathNode, format_key


@pytest.mark.parametrize(
    ("key", "words"),
    [
        ("dateOfBirth", ("date", "of", "birth")),
        ("date_of_birth", ("date", "of", "birth")),
        ("Date-Of-Birth", ("date", "of", "birth")),
        ("customerBSN", ("customer", "bsn")),
        ("phone2", ("phone2",)),
        ("", ()),
        ("x" * 500, ("x" * 64,)),
    ],
)
def test_key_words_split_common_naming_styles(key: str, words: tuple[str, ...]) -> None:
    assert key_words(key) == words


@pytest.mark.parametrize(
    ("key", "category"),
    [
        ("phone", Category.PHONE),
        ("mobileNumber", Category.PHONE),
        ("telefoonnummer", Category.PHONE),
        ("phones", Category.PHONE),
        ("bsn", Category.BSN),
        ("customer_bsn", Category.BSN),
        ("burgerservicenummer", Category.BSN),
        ("citizenServiceNumber", Category.BSN),
        ("bsns", Category.BSN),
        ("date_of_birth", Category.DATE_OF_BIRTH),
        ("birthDate", Category.DATE_OF_BIRTH),
        ("geboortedatum", Category.DATE_OF_BIRTH),
        ("dob", Category.DATE_OF_BIRTH),
        ("postcode", Category.POSTCODE),
        ("zipCode", Category.POSTCODE),
        ("password", Category.SECRET),
        ("newPassword", Category.SECRET),
        ("client_secret", Category.SECRET),
        ("apiKey", Category.SECRET),
        ("access_token", Category.SECRET),
        ("Authorization", Category.SECRET),
        ("wachtwoord", Category.SECRET),
    ],
)
def test_field_names_give_context(key: str, category: Category) -> None:
    assert category in field_categories(key)


@pytest.mark.parametrize(
    "key",
    [
        "name",
        "id",
        "order_id",
        "hotel",
        "adobe",
        "nextPageToken",
        "page_token",
        "spin",
        "created_at",
    ],
)
def test_ordinary_field_names_give_no_context(key: str) -> None:
    assert field_categories(key) == frozenset()


@pytest.mark.parametrize(
    ("key", "segment"),
    [
        ("email", ".email"),
        ("_private", "._private"),
        ("e-mail", '["e-mail"]'),
        ("2fa", '["2fa"]'),
        ("", '[""]'),
        ('quo"te', '["quo\\"te"]'),
        ("naïve", '["naïve"]'),
    ],
)
def test_path_segments_quote_keys_that_are_not_identifiers(key: str, segment: str) -> None:
    assert format_key(key) == segment


def test_path_templates_generalise_indices_and_hide_personal_keys() -> None:
    node = PathNode.root().member("accounts").element(3).member("jan@x.nl", "email").member("a")
    assert node.path == '$.accounts[3]["jan@x.nl"].a'
    assert node.template == "$.accounts[*][<email>].a"
