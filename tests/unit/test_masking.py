"""Masking personal data in JSON documents and text: mask, hash (pseudonyms), drop."""

from __future__ import annotations

import copy
import json
import re
import string
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dijk.detect.masking import Masker, Strategy, mask_value, normalise, pseudonymise
from dijk.detect.pii import Category, PiiDetector, PiiMatch

DETECTOR = PiiDetector()
KEY = b"0123456789abcdef0123456789abcdef"

RAW = {
    "email": "jan.jansen@example.nl",
    "phone": "+31 6 12345678",
    "iban": "NL91 ABNA 0417 1643 00",
    "bsn": "111222333",
    "card": "4111 1111 1111 1111",
    "date_of_birth": "1985-03-14",
    "postcode": "1012 LG",
    "password": "correct horse battery",
    "ip": "203.0.113.7",
}


def polder_bank_accounts() -> dict[str, Any]:
    return {
        "count": 2,
        "accounts": [
            {
                "id": 1,
                "name": "Jan Jansen",
                "email": RAW["email"],
                "phone": RAW["phone"],
                "iban": RAW["iban"],
                "bsn": int(RAW["bsn"]),
                "card": RAW["card"],
                "date_of_birth": RAW["date_of_birth"],
                "address": {"postcode": RAW["postcode"], "city": "Amsterdam"},
                "active": True,
                "balance": 1234.5,
                "notes": None,
            },
            {
                "id": 2,
                "name": "Piet Visser",
                "email": "piet@polderbank.nl",
                "phone": "020-1234567",
                "iban": "NL02ABNA0123456789",
                "bsn": "123456782",
                "last_login_ip": RAW["ip"],
                "note": "Bel 06-12345678 of mail piet@polderbank.nl",
            },
        ],
        "auth": {"password": RAW["password"]},
    }


def masked(document: Any, masker: Masker) -> Any:
    return masker.mask_json(document, DETECTOR.scan_json(document))


def shape(value: Any) -> Any:
    """The structure of a document: keys and list lengths, leaves replaced by None."""
    if isinstance(value, dict):
        return {key: shape(child) for key, child in value.items()}
    if isinstance(value, list):
        return [shape(child) for child in value]
    return None


# --- mask --------------------------------------------------------------------------------


def test_mask_leaves_no_raw_personal_data_in_the_serialised_response() -> None:
    document = polder_bank_accounts()
    body = json.dumps(masked(document, Masker()))
    for value in (*RAW.values(), "piet@polderbank.nl", "020-1234567", "NL02ABNA0123456789"):
        assert value not in body
    assert "123456782" not in body
    assert "06-12345678" not in body


def test_mask_keeps_the_structure_and_the_other_values() -> None:
    document = polder_bank_accounts()
    result = masked(document, Masker())
    assert shape(result) == shape(document)
    first = result["accounts"][0]
    assert first["name"] == "Jan Jansen"
    assert first["id"] == 1
    assert first["active"] is True
    assert first["notes"] is None
    assert first["balance"] == 1234.5
    assert first["address"]["city"] == "Amsterdam"


def test_mask_renders_each_category_as_documented() -> None:
    result = masked(polder_bank_accounts(), Masker())
    first, second = result["accounts"]
    assert first["email"] == "j***@example.nl"
    assert first["phone"] == "+** * ******78"
    assert first["iban"] == "**** **** **** **43 00"
    assert second["iban"] == "**************6789"
    assert first["bsn"] == "*********"
    assert first["card"] == "**** **** **** 1111"
    assert first["date_of_birth"] == "****-**-**"
    assert first["address"]["postcode"] == "1012 **"
    assert second["last_login_ip"] == "***.*.***.*"
    assert second["note"] == "Bel **-******78 of mail p***@polderbank.nl"
    assert result["auth"]["password"] == "********"


def test_mask_does_not_change_the_input_document() -> None:
    document = polder_bank_accounts()
    before = copy.deepcopy(document)
    masked(document, Masker())
    masked(document, Masker(strategy=Strategy.DROP))
    assert document == before


def test_masked_document_serialises_to_valid_json_of_its_own_length() -> None:
    body = json.dumps(masked(polder_bank_accounts(), Masker())).encode()
    assert json.loads(body)["count"] == 2
    assert len(body) == len(json.dumps(json.loads(body)).encode())


@pytest.mark.parametrize(
    ("value", "category", "expected"),
    [
        ("a@b.nl", Category.EMAIL, "a***@b.nl"),
        ("not-an-address", Category.EMAIL, "***-**-*******"),
        ("NL91ABNA0417164300", Category.IBAN, "**************4300"),
        ("06-12345678", Category.PHONE, "**-******78"),
        ("5500-0000-0000-0004", Category.CARD, "****-****-****-0004"),
        ("1234.56.782", Category.BSN, "****.**.***"),
        ("2001:db8::1", Category.IP, "****:***::*"),
        (
            "-----BEGIN PRIVATE KEY-----\nabc\n-----END PRIVATE KEY-----",
            Category.SECRET,
            "********",
        ),
        ("Jan Jansen", None, "*** ******"),
    ],
)
def test_mask_value(value: str, category: Category | None, expected: str) -> None:
    assert mask_value(value, category) == expected


# --- hash --------------------------------------------------------------------------------


def test_hash_replaces_personal_data_with_keyed_pseudonyms() -> None:
    result = masked(polder_bank_accounts(), Masker(strategy=Strategy.HASH, key=KEY))
    first = result["accounts"][0]
    assert re.fullmatch(r"pii:email:[0-9a-f]{16}", first["email"])
    assert re.fullmatch(r"pii:iban:[0-9a-f]{16}", first["iban"])
    assert re.fullmatch(r"pii:bsn:[0-9a-f]{16}", first["bsn"])
    assert re.fullmatch(r"pii:secret:[0-9a-f]{16}", result["auth"]["password"])
    body = json.dumps(result)
    assert not any(value in body for value in RAW.values())


def test_same_person_gets_the_same_pseudonym_in_any_spelling() -> None:
    assert pseudonymise("J.Jansen@Example.NL", KEY, Category.EMAIL) == pseudonymise(
        "j.jansen@example.nl", KEY, Category.EMAIL
    )
    assert pseudonymise("06-12345678", KEY, Category.PHONE) == pseudonymise(
        "+31612345678", KEY, Category.PHONE
    )
    assert pseudonymise("NL91 ABNA 0417 1643 00", KEY, Category.IBAN) == pseudonymise(
        "NL91ABNA0417164300", KEY, Category.IBAN
    )
    assert pseudonymise("1234.56.782", KEY, Category.BSN) == pseudonymise(
        "123456782", KEY, Category.BSN
    )
    assert pseudonymise("14-03-1985", KEY, Category.DATE_OF_BIRTH) == pseudonymise(
        "1985-03-14", KEY, Category.DATE_OF_BIRTH
    )
    assert pseudonymise("2001:DB8:0::1", KEY, Category.IP) == pseudonymise(
        "2001:db8::1", KEY, Category.IP
    )


def test_pseudonyms_depend_on_key_and_category() -> None:
    value = "123456782"
    assert pseudonymise(value, KEY, Category.BSN) != pseudonymise(value, KEY[::-1], Category.BSN)
    assert (
        pseudonymise(value, KEY, Category.BSN)[-16:]
        != pseudonymise(value, KEY, Category.PHONE)[-16:]
    )
    assert pseudonymise(value, KEY, None).startswith("pii:field:")


def test_pseudonym_key_must_be_long_enough() -> None:
    with pytest.raises(ValueError, match="16 bytes"):
        pseudonymise("x", b"short", Category.EMAIL)
    with pytest.raises(ValueError, match="key"):
        Masker(strategy=Strategy.HASH)
    with pytest.raises(ValueError, match="key"):
        Masker(fields={"bsn": Strategy.HASH}, key=b"short")


def test_normalise_leaves_unparseable_values_recognisable() -> None:
    assert normalise(" Secret ", Category.SECRET) == "Secret"
    assert normalise("not a phone", Category.PHONE) == ""
    assert normalise("+31 not", Category.PHONE) == "+31"
    assert normalise("999.1.1.1", Category.IP) == "999.1.1.1"


# --- drop --------------------------------------------------------------------------------


def test_drop_removes_members_and_nulls_list_elements() -> None:
    document = {
        "name": "Jan",
        "email": "jan@example.nl",
        "emails": ["a@example.nl", "no address here"],
        "nested": {"iban": "NL91ABNA0417164300", "currency": "EUR"},
    }
    result = masked(document, Masker(strategy=Strategy.DROP))
    assert result == {
        "name": "Jan",
        "emails": [None, "no address here"],
        "nested": {"currency": "EUR"},
    }


def test_drop_of_a_root_string_gives_null() -> None:
    assert masked("jan@example.nl", Masker(strategy=Strategy.DROP)) is None


def test_masked_text_without_findings_is_returned_unchanged() -> None:
    assert masked("nothing to see", Masker()) == "nothing to see"


# --- keys --------------------------------------------------------------------------------


def test_personal_data_in_keys_is_masked_and_colliding_keys_are_kept_apart() -> None:
    document = {"jan@example.nl": {"balance": 1}, "joe@example.nl": {"balance": 2}}
    result = masked(document, Masker())
    assert result == {"j***@example.nl": {"balance": 1}, "j***@example.nl~2": {"balance": 2}}


def test_drop_removes_members_whose_key_is_personal_data() -> None:
    document = {"by_email": {"jan@example.nl": 1}, "total": 1}
    assert masked(document, Masker(strategy=Strategy.DROP)) == {"by_email": {}, "total": 1}


# --- field rules -------------------------------------------------------------------------


def test_field_rule_masks_a_field_whatever_its_content() -> None:
    document = {"accounts": [{"name": "Jan Jansen", "iban": "not validated"}]}
    masker = Masker(fields={"$.accounts[*].name": Strategy.MASK, "iban": "mask"})
    assert masked(document, masker) == {
        # rendered as the category the field name implies: an IBAN keeps its last 4
        "accounts": [{"name": "*** ******", "iban": "*** *****ated"}]
    }


def test_field_rule_uses_the_category_the_field_name_implies() -> None:
    document = {"customer": {"email": "bad-address", "bsn": 12345678, "mobiel": "0612"}}
    masker = Masker(fields={"$.customer.*": Strategy.MASK})
    assert masked(document, masker) == {
        "customer": {"email": "***-*******", "bsn": "********", "mobiel": "**12"}
    }


def test_field_rule_on_a_container_masks_every_value_in_it() -> None:
    document = {"owner": {"name": "Jan", "tags": ["vip", 3], "flag": False}, "id": 7}
    masker = Masker(fields={"owner": Strategy.MASK})
    assert masked(document, masker) == {
        "owner": {"name": "***", "tags": ["***", "*"], "flag": False},
        "id": 7,
    }


def test_field_rule_drop_removes_the_member_or_nulls_the_element() -> None:
    document = {"accounts": [{"id": 1, "bsn": "x"}, {"id": 2}], "audit": {"by": "jan"}}
    masker = Masker(fields={"$.accounts[*].bsn": "drop", "$.accounts[1]": "drop", "audit": "drop"})
    assert masked(document, masker) == {"accounts": [{"id": 1}, None]}


def test_field_rule_hash_pseudonymises_the_value() -> None:
    document = {"customer_id": "C-1234"}
    result = masked(document, Masker(fields={"customer_id": Strategy.HASH}, key=KEY))
    assert re.fullmatch(r"pii:field:[0-9a-f]{16}", result["customer_id"])


def test_field_rule_with_quoted_key_and_index() -> None:
    document = {"e-mail": ["first", "second"]}
    masker = Masker(fields={'$["e-mail"][1]': Strategy.MASK})
    assert masked(document, masker) == {"e-mail": ["first", "******"]}


def test_earlier_field_rule_wins() -> None:
    document = {"a": {"b": "secret"}}
    masker = Masker(fields={"$.a.b": Strategy.DROP, "b": Strategy.MASK}, key=KEY)
    assert masked(document, masker) == {"a": {}}


@pytest.mark.parametrize("pattern", ["$", "$.", "$[x]", "$[1", '$["a"', "$.a]", ""])
def test_malformed_field_patterns_are_configuration_errors(pattern: str) -> None:
    with pytest.raises(ValueError, match="pattern"):
        Masker(fields={pattern: Strategy.MASK})


def test_unknown_strategy_is_a_configuration_error() -> None:
    with pytest.raises(ValueError, match="blur"):
        Masker(strategy="blur")


# --- matches and categories --------------------------------------------------------------


def test_only_chosen_categories_are_masked() -> None:
    document = {"email": "jan@example.nl", "iban": "NL91ABNA0417164300"}
    result = masked(document, Masker(categories=[Category.EMAIL]))
    assert result == {"email": "j***@example.nl", "iban": "NL91ABNA0417164300"}


def test_match_that_does_not_fit_its_value_hides_the_whole_value() -> None:
    document = {"email": "jan@example.nl"}
    stale = [PiiMatch(Category.EMAIL, "$.email", 0, 99, False, "$.email")]
    assert Masker().mask_json(document, stale) == {"email": "j***@example.nl"}


def test_overlapping_matches_hide_their_union() -> None:
    text = "abcdefghij"
    matches = [
        PiiMatch(Category.BSN, "$", 0, 6, False, "$"),
        PiiMatch(Category.BSN, "$", 4, 8, False, "$"),
    ]
    assert Masker().mask_text(text, matches) == "********ij"


def test_mask_text_for_log_lines() -> None:
    line = "login jan@example.nl from 203.0.113.7 with Bearer abcdefghijklmnopqrstuvwxyz"
    masker = Masker(strategy=Strategy.HASH, key=KEY)
    result = masker.mask_text(line, DETECTOR.scan_text(line))
    assert "jan@example.nl" not in result
    assert "203.0.113.7" not in result
    assert "abcdefghijklmnopqrstuvwxyz" not in result
    assert result.startswith("login pii:email:")
    assert (
        Masker(strategy=Strategy.DROP).mask_text(
            "mail a@b.nl now", DETECTOR.scan_text("mail a@b.nl now")
        )
        == "mail  now"
    )


def test_custom_root_path_matches_the_scan() -> None:
    document = {"email": "jan@example.nl"}
    matches = DETECTOR.scan_json(document, path="$.body")
    assert Masker().mask_json(document, matches, path="$.body") == {"email": "j***@example.nl"}


def test_deep_documents_are_masked_without_recursion() -> None:
    document: Any = {"email": "jan@example.nl"}
    for _ in range(20_000):
        document = [document]
    result = masked(document, Masker())
    for _ in range(20_000):
        result = result[0]
    assert result == {"email": "j***@example.nl"}


# --- property: no raw value survives -------------------------------------------------------

PII_VALUES = [
    "jan@example.nl",
    "s.de-vries+bank@polderbank.nl",
    "06-12345678",
    "+31 20 123 4567",
    "NL91ABNA0417164300",
    "NL91 ABNA 0417 1643 00",
    "DE89370400440532013000",
    "4111 1111 1111 1111",
    "5500000000000004",
    "1112.22.333",
    "203.0.113.7",
    "2001:db8:85a3::8a2e:370:7334",
    "AKIAIOSFODNN7EXAMPLE",
    "sk_live_4eC39HqLyjWDarjtT1zdp7dc",
]
words = st.text(alphabet=string.ascii_letters, min_size=1, max_size=8)
leaf_texts = st.one_of(
    st.sampled_from(PII_VALUES),
    st.lists(st.one_of(words, st.sampled_from(PII_VALUES)), min_size=1, max_size=6).map(" ".join),
)
documents = st.recursive(
    leaf_texts | st.integers() | st.booleans() | st.none(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(words, children, max_size=4),
    max_leaves=20,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(documents, st.sampled_from(list(Strategy)))
def test_no_raw_personal_data_survives_any_strategy(document: Any, strategy: Strategy) -> None:
    result = masked(document, Masker(strategy=strategy, key=KEY))
    body = json.dumps(result)
    for value in PII_VALUES:
        assert value not in body
    if strategy is not Strategy.DROP:
        assert shape(result) == shape(document)
