"""The demo's fake customers: deterministic, and every identifier checksum-valid."""

from __future__ import annotations

import datetime
import re

import phonenumbers
import pytest
from stdnum import iban as stdnum_iban
from stdnum.nl import bsn as stdnum_bsn

from dijk.demo.data import (
    BANK_CODES,
    Customer,
    CustomerFactory,
    bsn_is_valid,
    generate_customers,
    iban_check_digits,
)

CUSTOMERS = generate_customers()


def test_default_is_fifty_customers_with_ids_from_one() -> None:
    assert [customer.id for customer in CUSTOMERS] == list(range(1, 51))


def test_same_seed_gives_the_same_customers() -> None:
    assert generate_customers(count=20, seed=123) == generate_customers(count=20, seed=123)
    assert generate_customers() == CUSTOMERS


def test_default_seed_is_seven() -> None:
    assert generate_customers(50, 7) == CUSTOMERS


def test_different_seeds_give_different_customers() -> None:
    other = generate_customers(seed=8)
    assert [c.iban for c in other] != [c.iban for c in CUSTOMERS]
    assert [c.bsn for c in other] != [c.bsn for c in CUSTOMERS]
    assert [c.name for c in other] != [c.name for c in CUSTOMERS]


def test_smaller_count_is_a_prefix_of_the_same_seed() -> None:
    assert generate_customers(count=10) == CUSTOMERS[:10]


def test_zero_customers_and_negative_count() -> None:
    assert generate_customers(count=0) == []
    with pytest.raises(ValueError, match="count"):
        generate_customers(count=-1)


@pytest.mark.parametrize("customer", CUSTOMERS, ids=lambda c: f"customer-{c.id}")
def test_every_iban_is_a_valid_dutch_iban(customer: Customer) -> None:
    assert stdnum_iban.is_valid(customer.iban)
    assert re.fullmatch(r"NL[0-9]{2}[A-Z]{4}[0-9]{10}", customer.iban)
    assert customer.iban[4:8] in BANK_CODES


@pytest.mark.parametrize("customer", CUSTOMERS, ids=lambda c: f"customer-{c.id}")
def test_every_bsn_passes_the_eleven_proof(customer: Customer) -> None:
    assert stdnum_bsn.is_valid(customer.bsn)
    assert re.fullmatch(r"[0-9]{9}", customer.bsn)


@pytest.mark.parametrize("customer", CUSTOMERS, ids=lambda c: f"customer-{c.id}")
def test_every_phone_is_a_valid_dutch_mobile_number(customer: Customer) -> None:
    assert customer.phone is not None
    number = phonenumbers.parse(customer.phone, "NL")
    assert phonenumbers.is_valid_number(number)
    assert phonenumbers.region_code_for_number(number) == "NL"
    assert phonenumbers.number_type(number) == phonenumbers.PhoneNumberType.MOBILE


@pytest.mark.parametrize("customer", CUSTOMERS, ids=lambda c: f"customer-{c.id}")
def test_other_fields_have_their_documented_shape(customer: Customer) -> None:
    first, _, last = customer.name.partition(" ")
    assert first
    assert last
    local, _, domain = customer.email.partition("@")
    assert domain in {"example.nl", "example.com"}
    assert re.fullmatch(r"[a-z]+\.[a-z]+[0-9]*", local)
    assert local.startswith(first.lower() + ".")
    assert re.fullmatch(r"[0-9]+\.[0-9]{2}", customer.balance)
    birth = datetime.date.fromisoformat(customer.date_of_birth)
    assert datetime.date(1900, 1, 1) < birth < datetime.date.today()
    assert re.fullmatch(r"[1-9][0-9]{3} [A-Z]{2}", customer.postcode)
    assert customer.postcode[-2:] not in {"SA", "SD", "SS"}


def test_identifiers_and_emails_are_unique() -> None:
    many = generate_customers(count=500, seed=1)
    for field in ("email", "iban", "bsn"):
        values = [getattr(customer, field) for customer in many]
        assert len(set(values)) == len(values), field


def test_public_dict_is_the_json_form_with_every_field() -> None:
    customer = CUSTOMERS[0]
    public = customer.to_public_dict()
    assert public == {
        "id": 1,
        "name": customer.name,
        "email": customer.email,
        "phone": customer.phone,
        "iban": customer.iban,
        "bsn": customer.bsn,
        "balance": customer.balance,
        "date_of_birth": customer.date_of_birth,
        "postcode": customer.postcode,
    }


def test_factory_keeps_given_fields_and_can_leave_phone_empty() -> None:
    factory = CustomerFactory(seed=3)
    customer = factory.create(
        99, name="Test Persoon", email="test@example.nl", phone=None, generate_phone=False
    )
    assert (customer.id, customer.name, customer.email, customer.phone) == (
        99,
        "Test Persoon",
        "test@example.nl",
        None,
    )
    assert stdnum_iban.is_valid(customer.iban)
    assert stdnum_bsn.is_valid(customer.bsn)


@pytest.mark.parametrize(
    ("iban", "valid"),
    [
        ("NL91ABNA0417164300", True),  # the well-known example IBAN
        ("NL20INGB0001234567", True),
        ("NL92ABNA0417164300", False),
    ],
)
def test_iban_check_digits_match_iso_13616(iban: str, valid: bool) -> None:
    assert (iban_check_digits("NL", iban[4:]) == iban[2:4]) is valid


@pytest.mark.parametrize(
    ("bsn", "valid"),
    [
        ("111222333", True),
        ("123456782", True),
        ("123456789", False),
        ("12345678", False),
        ("12345678a", False),
        ("".join(chr(0xFF10 + int(d)) for d in "123456782"), False),  # full-width digits
    ],
)
def test_bsn_eleven_proof_agrees_with_stdnum(bsn: str, valid: bool) -> None:
    assert bsn_is_valid(bsn) is valid
    if bsn.isascii():
        assert stdnum_bsn.is_valid(bsn) is valid
