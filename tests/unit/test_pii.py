"""The PII detector, category by category, and its walk over JSON documents."""

from __future__ import annotations

import json

import pytest

from dijk.detect.pii import Category, PiiDetector, PiiMatch
from dijk.detect.pii_model import CategoryFlags
from dijk.detect.pii_text import ValidationBudget, scan_text, settings_for_region

DETECTOR = PiiDetector()


def found(text: str, field: str | None = None) -> list[tuple[str, str]]:
    """(category, matched text) for each finding in `text` (optionally a field value)."""
    matches = DETECTOR.scan_text(text) if field is None else DETECTOR.scan_json({field: text})
    return [(match.category.value, text[match.start : match.end]) for match in matches]


# --- e-mail ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "email",
    [
        "jan@example.nl",
        "j.de-vries+bank@mail.example.co.uk",
        "Sanne_1990@polderbank.nl",
        "jörg@müller.de",
    ],
)
def test_email_addresses_are_found_with_their_exact_span(email: str) -> None:
    assert found(f"Mail naar {email}, graag.") == [("email", email)]


@pytest.mark.parametrize(
    "text",
    ["@jan thanks", "user@localhost", "git@github:repo", "a@b@c.nl", "x@-bad.nl", "x..y@a.nl"],
)
def test_strings_that_only_look_like_email_are_not_reported(text: str) -> None:
    assert [category for category, _ in found(text)] == []


def test_sentence_full_stop_is_not_part_of_the_address() -> None:
    assert found("Reply to anna@example.nl.") == [("email", "anna@example.nl")]


# --- phone -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "phone",
    [
        "06-12345678",
        "06 1234 5678",
        "+31 6 12345678",
        "+31612345678",
        "0031 6 12345678",
        "(020) 123 4567",
        "+31 (0)20 123 4567",
        "020-1234567",
        "+44 20 7946 0958",
        "+49 30 12345678",
    ],
)
def test_phone_numbers_in_common_formats_are_found(phone: str) -> None:
    assert found(f"Bel {phone} na vijven") == [("phone", phone)]


@pytest.mark.parametrize(
    "text",
    [
        "Factuur INV-0612345678",
        "Ordernummer 2024123456",
        "Betaald op 06-05-2024",
        "05-03-2024 14:37",
        "timestamp 1700000000",
        "kaart 3530 0906 8161 6225",
        "Rekening NL12 ABNA 0417 1643 00",
        "0812345678",  # right shape, but 081 is not in use
    ],
)
def test_phone_like_numbers_are_not_phone_numbers(text: str) -> None:
    assert [item for item in found(text) if item[0] == "phone"] == []


def test_bare_national_number_counts_only_in_a_phone_field() -> None:
    assert found("612345678") == []
    assert found("612345678", field="mobileNumber") == [("phone", "612345678")]


def test_two_numbers_in_a_row_are_two_findings() -> None:
    assert found("06 12345678 06 87654321") == [
        ("phone", "06 12345678"),
        ("phone", "06 87654321"),
    ]


def test_phone_region_is_configurable() -> None:
    us = PiiDetector(region="US")
    assert us.region == "US"
    for phone in ("1 (202) 555-0143", "(202) 555-0143", "202-555-0143"):
        text = f"call {phone} now"
        expected = [] if phone == "202-555-0143" else [phone]
        assert [text[m.start : m.end] for m in us.scan_text(text)] == expected
        assert DETECTOR.scan_text(text) == []
    assert [m.category for m in us.scan_json({"phone": "202-555-0143"})] == [Category.PHONE]


def test_unknown_region_is_a_configuration_error() -> None:
    with pytest.raises(ValueError, match="region"):
        PiiDetector(region="XX")


def test_exhausted_budget_accepts_phones_on_structure_alone() -> None:
    settings = settings_for_region("NL", [Category.PHONE])
    text = "bel 0812345678"
    with_budget = scan_text(text, CategoryFlags(), settings, ValidationBudget(10))
    without_budget = scan_text(text, CategoryFlags(), settings, ValidationBudget(0))
    assert with_budget == []
    assert without_budget == [(Category.PHONE, 4, 14)]


# --- IBAN --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "iban",
    [
        "NL91ABNA0417164300",
        "NL91 ABNA 0417 1643 00",
        "DE89370400440532013000",
        "GB29 NWBK 6016 1331 9268 19",
        "BE71 0961 2345 6769",
        "nl91abna0417164300",
    ],
)
def test_checksum_valid_ibans_are_found(iban: str) -> None:
    assert found(f"IBAN: {iban} t.n.v. Polder Bank") == [("iban", iban)]


@pytest.mark.parametrize(
    "text",
    [
        "NL92ABNA0417164300",  # wrong check digits
        "NL91 ABNA 0417 1643 01",  # typo in the account number
        "NL91ABNA04171643",  # too short for NL
        "XX91ABNA0417164300",  # no such country
        "ANL91ABNA0417164300",  # inside a longer word
    ],
)
def test_ibans_with_wrong_checksum_or_shape_are_not_reported(text: str) -> None:
    assert [item for item in found(text) if item[0] == "iban"] == []


def test_grouped_iban_followed_by_another_word_keeps_its_exact_span() -> None:
    assert found("NL91 ABNA 0417 1643 00 EUR") == [("iban", "NL91 ABNA 0417 1643 00")]


def test_iban_length_table_matches_python_stdnum_registry() -> None:
    from importlib import resources

    from dijk.detect.pii_identifiers import IBAN_LENGTHS

    registry = resources.files("stdnum").joinpath("iban.dat").read_text()
    lengths: dict[str, int] = {}
    for line in registry.splitlines():
        if line[:2].isalpha() and 'bban="' in line:
            structure = line.split('bban="')[1].split('"')[0]  # e.g. 4!a10!n
            sizes = [int(part.lstrip("nac")) for part in structure.split("!")[:-1]]
            lengths[line[:2]] = 4 + sum(sizes)
    assert lengths == IBAN_LENGTHS


# --- BSN ---------------------------------------------------------------------------------


def test_bsn_in_a_bsn_field_is_found() -> None:
    assert found("111222333", field="bsn") == [("bsn", "111222333")]
    assert found("111222333", field="burgerServiceNummer") == [("bsn", "111222333")]


def test_bsn_after_a_keyword_in_text_is_found() -> None:
    assert found("BSN: 111222333") == [("bsn", "111222333")]
    assert found("mijn burgerservicenummer is 111 222 333.") == [("bsn", "111 222 333")]


def test_dotted_bsn_needs_no_context() -> None:
    assert found("nummer 1112.22.333 ontvangen") == [("bsn", "1112.22.333")]


def test_eight_digit_bsn_is_read_with_a_leading_zero_in_context() -> None:
    # 012345672 passes the 11-proof
    assert found("12345672", field="bsn") == [("bsn", "12345672")]


def test_nine_digits_without_context_are_not_a_bsn() -> None:
    assert found("Ordernummer 111222333") == []
    assert found("111222333", field="order_id") == []


def test_nine_digits_failing_the_eleven_proof_are_not_a_bsn_even_in_a_bsn_field() -> None:
    assert found("111222334", field="bsn") == []
    assert found("BSN 123456789") == []


def test_bsn_sent_as_a_json_number_is_found() -> None:
    matches = DETECTOR.scan_json({"bsn": 111222333})
    assert [(m.category, m.path, m.start, m.end) for m in matches] == [
        (Category.BSN, "$.bsn", 0, 9)
    ]


# --- cards -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "card",
    [
        "4111111111111111",
        "4111 1111 1111 1111",
        "5500-0000-0000-0004",
        "2223000048400011",
        "3782 822463 10005",
        "6011111111111117",
        "3530111333300000",
    ],
)
def test_payment_cards_are_found(card: str) -> None:
    assert found(f"Betaald met {card}.") == [("card", card)]


@pytest.mark.parametrize(
    "text",
    [
        "4111 1111 1111 1112",  # Luhn fails
        "1234567812345670",  # Luhn passes, no issuer starts with 1
        "ORD-4111111111111111",  # glued to an identifier
        "4111111111111111111111",  # too long
    ],
)
def test_card_lookalikes_are_not_reported(text: str) -> None:
    assert [item for item in found(text) if item[0] == "card"] == []


# --- IP ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "address", ["192.168.1.20", "8.8.8.8", "2001:db8::1", "2a02:a45e:1:2:3:4:5:6", "::ffff:1.2.3.4"]
)
def test_ip_addresses_are_found(address: str) -> None:
    assert found(f"client {address} connected") == [("ip", address)]


def test_a_colon_next_to_an_ipv6_address_is_not_part_of_it() -> None:
    assert found("ip:2001:db8::1") == [("ip", "2001:db8::1")]
    assert found("from 2001:db8:85a3::8a2e:370:7334: denied") == [
        ("ip", "2001:db8:85a3::8a2e:370:7334")
    ]


@pytest.mark.parametrize(
    "text",
    [
        "dijk 2.14.4",
        "v1.2.3.4",
        "version 4.2.1.0",
        "10.0.0.256",
        "OID 1.3.6.1.4.1.2021",
        "om 10:30:00 uur",
        "mac 00:1a:2b:3c:4d:5e",
        "127.0.0.1",
        "::1",
        "std::vector",
        "550e8400-e29b-41d4-a716-446655440000",
    ],
)
def test_ip_lookalikes_are_not_reported(text: str) -> None:
    assert found(text) == []


# --- dates of birth ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("date_of_birth", "1985-03-14"),
        ("birthDate", "14-03-1985"),
        ("geboortedatum", "14/03/1985"),
        ("dob", "14.3.1985"),
        ("birthday", "14 maart 1985"),
        ("dateOfBirth", "19850314"),
    ],
)
def test_dates_in_birth_date_fields_are_dates_of_birth(field: str, value: str) -> None:
    assert found(value, field=field) == [("date_of_birth", value)]


def test_iso_timestamp_in_a_birth_field_reports_the_date_part() -> None:
    assert found("1985-03-14T00:00:00Z", field="birth_date") == [("date_of_birth", "1985-03-14")]


def test_birth_keyword_in_text_makes_a_date_a_date_of_birth() -> None:
    assert found("Jan, geboren op 14-03-1985 in Delft") == [("date_of_birth", "14-03-1985")]
    assert found("born 14 March 1985") == [("date_of_birth", "14 March 1985")]


def test_other_dates_are_not_dates_of_birth() -> None:
    assert found("2024-01-15T10:30:00Z", field="created_at") == []
    assert found("Factuurdatum 14-03-1985") == []
    assert found("1985-02-30", field="date_of_birth") == []


# --- postcodes ---------------------------------------------------------------------------


def test_dutch_postcodes_are_found() -> None:
    assert found("Damrak 1, 1012 LG Amsterdam") == [("postcode", "1012 LG")]
    assert found("3511LX") == [("postcode", "3511LX")]
    assert found("1012lg", field="postcode") == [("postcode", "1012lg")]


@pytest.mark.parametrize(
    "text", ["Upload van 2048 MB", "12345 AB", "0123 AB", "1234 SS", "1234 ABC"]
)
def test_postcode_lookalikes_are_not_reported(text: str) -> None:
    assert found(text) == []


# --- secrets -----------------------------------------------------------------------------

JWT = (
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9."
    "eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ."
    "SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"
)


@pytest.mark.parametrize(
    "secret",
    [
        JWT,
        "AKIAIOSFODNN7EXAMPLE",
        "ghp_" + "a1B2" * 9,
        "github_pat_" + "A" * 22 + "_" + "b" * 59,
        "xoxb-123456789012-1234567890123-abcdefghijklmnopqrstuvwx",
        "sk_live_" + "4eC39HqLyjWDarjtT1zdp7dc",
        "AIza" + "SyA-1234567890abcdefghijklmnopqrstu",
        "glpat-" + "x" * 20,
        "https://hooks.slack.com/services/T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXXX",
    ],
)
def test_credential_formats_are_secrets(secret: str) -> None:
    assert found(f"token={secret} end") == [("secret", secret)]


def test_pem_private_key_block_is_one_secret() -> None:
    block = "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA\nabc=\n-----END RSA PRIVATE KEY-----"
    assert found(f"key:\n{block}\nrest") == [("secret", block)]


def test_pem_block_without_end_line_is_secret_to_the_end_of_the_text() -> None:
    text = "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC"
    assert found(text) == [("secret", text)]


def test_public_keys_and_certificates_are_not_secrets() -> None:
    assert found("-----BEGIN PUBLIC KEY-----\nMIIBIjANBg\n-----END PUBLIC KEY-----") == []
    assert found("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----") == []


def test_bearer_token_after_authorization_is_a_secret() -> None:
    assert found("Authorization: Bearer 0123456789abcdefXYZ") == [("secret", "0123456789abcdefXYZ")]


@pytest.mark.parametrize(
    "text",
    [
        "eyJub3QganNvbn0.abc.def",  # header is not JSON with "alg"
        "AKIA1234",  # too short
        "set sk_live_ in the env",
        "ghp_short",
        "sha256:" + "ab" * 32,
    ],
)
def test_secret_lookalikes_are_not_reported(text: str) -> None:
    assert found(text) == []


@pytest.mark.parametrize("field", ["password", "client_secret", "apiKey", "access_token", "pin"])
def test_whole_value_of_a_credential_field_is_a_secret(field: str) -> None:
    assert found("  hunter2 ", field=field) == [("secret", "hunter2")]


def test_pagination_tokens_are_not_secrets() -> None:
    assert found("eyJwYWdlIjoyfQ", field="nextPageToken") == []


# --- overlaps ----------------------------------------------------------------------------


def test_overlapping_findings_keep_the_stronger_category() -> None:
    # the digits of the IBAN are not also reported as a phone number
    assert found("NL91 ABNA 0417 1643 00") == [("iban", "NL91 ABNA 0417 1643 00")]
    # an e-mail address inside a password field is part of the secret
    assert found("jan@example.nl", field="password") == [("secret", "jan@example.nl")]


# --- configuration -----------------------------------------------------------------------


def test_only_enabled_categories_are_reported() -> None:
    detector = PiiDetector(categories=["email"])
    text = "jan@example.nl 06-12345678 NL91ABNA0417164300"
    assert [m.category for m in detector.scan_text(text)] == [Category.EMAIL]
    assert detector.categories == frozenset({Category.EMAIL})


def test_unknown_category_is_a_configuration_error() -> None:
    with pytest.raises(ValueError, match="name"):
        PiiDetector(categories=["name"])


def test_text_past_the_limit_is_not_scanned() -> None:
    detector = PiiDetector(max_text_chars=20)
    assert [m.category for m in detector.scan_text("jan@example.nl       piet@example.nl")] == [
        Category.EMAIL
    ]


def test_field_name_gives_context_to_free_text() -> None:
    assert DETECTOR.scan_text("111222333", field="bsn") == [
        PiiMatch(Category.BSN, "$", 0, 9, False, "$")
    ]


# --- JSON documents ----------------------------------------------------------------------


def test_json_matches_carry_paths_and_templates_in_document_order() -> None:
    document = {
        "accounts": [
            {"name": "Jan", "email": "jan@example.nl", "iban": "NL91ABNA0417164300"},
            {"name": "Piet", "contact": {"phones": ["06-12345678", "+31 20 123 4567"]}},
        ],
        "weird key": "anna@example.nl",
    }
    matches = DETECTOR.scan_json(document)
    assert [(m.category.value, m.path, m.path_template) for m in matches] == [
        ("email", "$.accounts[0].email", "$.accounts[*].email"),
        ("iban", "$.accounts[0].iban", "$.accounts[*].iban"),
        ("phone", "$.accounts[1].contact.phones[0]", "$.accounts[*].contact.phones[*]"),
        ("phone", "$.accounts[1].contact.phones[1]", "$.accounts[*].contact.phones[*]"),
        ("email", '$["weird key"]', '$["weird key"]'),
    ]


def test_list_elements_inherit_the_context_of_their_field() -> None:
    matches = DETECTOR.scan_json({"bsns": ["111222333", "123456782"]})
    assert [m.category for m in matches] == [Category.BSN, Category.BSN]


def test_personal_data_in_object_keys_is_reported_and_kept_out_of_templates() -> None:
    matches = DETECTOR.scan_json({"by_email": {"jan@example.nl": {"phone": "0612345678"}}})
    assert [(m.category.value, m.path, m.in_key, m.path_template) for m in matches] == [
        ("email", '$.by_email["jan@example.nl"]', True, "$.by_email[<email>]"),
        ("phone", '$.by_email["jan@example.nl"].phone', False, "$.by_email[<email>].phone"),
    ]
    assert "jan@example.nl" not in json.dumps([m.path_template for m in matches])


def test_match_offsets_point_at_the_value() -> None:
    document = {"note": "Mail jan@example.nl of bel 06-12345678"}
    note = document["note"]
    assert [note[m.start : m.end] for m in DETECTOR.scan_json(document)] == [
        "jan@example.nl",
        "06-12345678",
    ]


def test_deeply_nested_document_is_walked_without_recursion() -> None:
    document: object = "jan@example.nl"
    for _ in range(20_000):
        document = [document]
    matches = DETECTOR.scan_json(document)
    assert len(matches) == 1
    assert matches[0].path_template == "$" + "[*]" * 20_000


def test_non_string_leaves_are_skipped_safely() -> None:
    document: dict[str, object] = {"a": None, "b": True, "c": 1.5, "d": 10**400, "e": [], "f": {}}
    assert DETECTOR.scan_json(document) == []


def test_custom_root_path_prefixes_every_path() -> None:
    matches = DETECTOR.scan_json({"email": "jan@example.nl"}, path="$.body")
    assert matches[0].path == "$.body.email"


def test_matches_never_hold_the_personal_data() -> None:
    matches = DETECTOR.scan_json({"email": "jan@example.nl", "bsn": "111222333"})
    assert "jan@example.nl" not in repr(matches)
    assert "111222333" not in repr(matches)
