"""Deterministic fake customers for the Polder Bank demo.

The demo exists so that every gateway capability has real-looking personal data to act
on: the privacy stage must find the IBANs, BSNs and phone numbers, so every one of them is
*valid* (correct checksums), not merely shaped like one. All randomness comes from a
seeded ``random.Random``, so a given seed always yields the same customers — tests,
screenshots and the documentation can rely on "customer 1" being the same person.
"""

from __future__ import annotations

import datetime
import random
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass

__all__ = [
    "DEFAULT_COUNT",
    "DEFAULT_SEED",
    "Customer",
    "CustomerFactory",
    "bsn_is_valid",
    "generate_customers",
    "iban_check_digits",
]

DEFAULT_SEED = 7
DEFAULT_COUNT = 50

FIRST_NAMES = (
    "Sanne",
    "Daan",
    "Emma",
    "Lucas",
    "Julia",
    "Sem",
    "Tess",
    "Bram",
    "Fleur",
    "Lars",
    "Lotte",
    "Thijs",
    "Noor",
    "Jesse",
    "Femke",
    "Ruben",
    "Anouk",
    "Milan",
    "Iris",
    "Joris",
    "Maaike",
    "Pieter",
    "Lieke",
    "Wouter",
    "Eva",
    "Sven",
    "Roos",
    "Koen",
    "Marloes",
    "Stijn",
)

LAST_NAMES = (
    "de Vries",
    "Jansen",
    "de Jong",
    "van den Berg",
    "Bakker",
    "Visser",
    "Smit",
    "Meijer",
    "de Boer",
    "Mulder",
    "de Groot",
    "Bos",
    "Vos",
    "Peters",
    "Hendriks",
    "van Dijk",
    "Dekker",
    "Brouwer",
    "van der Meer",
    "Willems",
    "Kok",
    "Verhoeven",
    "van Leeuwen",
    "Jacobs",
    "Schouten",
)

# Real Dutch bank identifiers (the 4-letter code inside an NL IBAN).
BANK_CODES = ("ABNA", "INGB", "RABO", "TRIO", "SNSB", "ASNB", "BUNQ", "KNAB")

EMAIL_DOMAINS = ("example.nl", "example.com")

# Dutch postcodes never use these letter pairs (historical connotations).
_FORBIDDEN_POSTCODE_LETTERS = frozenset({"SA", "SD", "SS"})
_POSTCODE_LETTERS = "ABCDEFGHJKLMNPRSTVWXZ"

_BIRTH_FIRST = datetime.date(1940, 1, 1)
_BIRTH_LAST = datetime.date(2006, 12, 31)

_BSN_WEIGHTS = (9, 8, 7, 6, 5, 4, 3, 2, -1)


@dataclass(frozen=True, slots=True)
class Customer:
    """One Polder Bank customer, full of (fake but checksum-valid) personal data."""

    id: int
    name: str
    email: str
    phone: str | None
    iban: str
    bsn: str
    balance: str
    date_of_birth: str
    postcode: str

    def to_public_dict(self) -> dict[str, str | int | None]:
        """Return the JSON form the upstream API sends (every field; it is a naive API)."""
        return {
            "id": self.id,
            "name": self.name,
            "email": self.email,
            "phone": self.phone,
            "iban": self.iban,
            "bsn": self.bsn,
            "balance": self.balance,
            "date_of_birth": self.date_of_birth,
            "postcode": self.postcode,
        }


def iban_check_digits(country: str, bban: str) -> str:
    """Return the two ISO 13616 check digits for ``country`` + ``bban`` (mod 97-10)."""
    rearranged = f"{bban}{country}00".upper()
    numeric = "".join(str(int(char, 36)) for char in rearranged)
    return f"{98 - int(numeric) % 97:02d}"


def bsn_is_valid(bsn: str) -> bool:
    """Return whether ``bsn`` is nine digits passing the Dutch 11-proof."""
    if len(bsn) != 9 or not bsn.isascii() or not bsn.isdigit():
        return False
    total = sum(int(digit) * weight for digit, weight in zip(bsn, _BSN_WEIGHTS, strict=True))
    return total % 11 == 0


def _ascii_slug(text: str) -> str:
    """Lower-case ASCII letters only: "van den Berg" -> "vandenberg"."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(char for char in decomposed.lower() if char.isascii() and char.isalpha())


class CustomerFactory:
    """Makes customers from one seeded random stream, never repeating an e-mail, IBAN or BSN.

    The upstream keeps its factory after the initial customers so that accounts created
    through the API continue the same deterministic, collision-free sequence.
    """

    def __init__(self, seed: int = DEFAULT_SEED) -> None:
        self._random = random.Random(seed)
        self._emails: set[str] = set()
        self._ibans: set[str] = set()
        self._bsns: set[str] = set()

    def create(
        self,
        customer_id: int,
        *,
        name: str | None = None,
        email: str | None = None,
        phone: str | None = None,
        generate_phone: bool = True,
    ) -> Customer:
        """Return a new customer; given fields are kept, the others are generated.

        ``generate_phone=False`` leaves a missing phone as ``None`` (an account opened
        through the API without a phone number has none).
        """
        if name is None:
            name = f"{self._random.choice(FIRST_NAMES)} {self._random.choice(LAST_NAMES)}"
        if email is None:
            email = self._email_for(name)
        if phone is None and generate_phone:
            phone = self._phone()
        return Customer(
            id=customer_id,
            name=name,
            email=email,
            phone=phone,
            iban=self._unique(self._iban, self._ibans),
            bsn=self._unique(self._bsn, self._bsns),
            balance=self._balance(),
            date_of_birth=self._date_of_birth(),
            postcode=self._postcode(),
        )

    def _unique(self, make: Callable[[], str], seen: set[str]) -> str:
        while True:
            value = make()
            if value not in seen:
                seen.add(value)
                return value

    def _email_for(self, name: str) -> str:
        first, _, last = name.partition(" ")
        local = f"{_ascii_slug(first)}.{_ascii_slug(last)}".strip(".") or "klant"
        domain = self._random.choice(EMAIL_DOMAINS)
        email = f"{local}@{domain}"
        suffix = 2
        while email in self._emails:
            email = f"{local}{suffix}@{domain}"
            suffix += 1
        self._emails.add(email)
        return email

    def _phone(self) -> str:
        # 06-1 .. 06-5 are mobile ranges in the Dutch numbering plan (066 is pagers).
        second = self._random.randint(1, 5)
        rest = self._random.randrange(10**7)
        return f"+316{second}{rest:07d}"

    def _iban(self) -> str:
        bank = self._random.choice(BANK_CODES)
        account = f"{self._random.randrange(10**10):010d}"
        bban = f"{bank}{account}"
        return f"NL{iban_check_digits('NL', bban)}{bban}"

    def _bsn(self) -> str:
        while True:
            digits = [self._random.randint(1, 9)] + [self._random.randint(0, 9) for _ in range(7)]
            # sum(d_i * w_i, i < 8) - d_9 must be 0 mod 11, so d_9 = sum mod 11 (if < 10).
            last = sum(d * w for d, w in zip(digits, _BSN_WEIGHTS[:8], strict=True)) % 11
            if last < 10:
                return "".join(map(str, [*digits, last]))

    def _balance(self) -> str:
        cents = self._random.randrange(250_000_00)
        return f"{cents // 100}.{cents % 100:02d}"

    def _date_of_birth(self) -> str:
        span = (_BIRTH_LAST - _BIRTH_FIRST).days
        return (_BIRTH_FIRST + datetime.timedelta(days=self._random.randint(0, span))).isoformat()

    def _postcode(self) -> str:
        number = self._random.randint(1000, 9999)
        while True:
            letters = "".join(self._random.choice(_POSTCODE_LETTERS) for _ in range(2))
            if letters not in _FORBIDDEN_POSTCODE_LETTERS:
                return f"{number} {letters}"


def generate_customers(count: int = DEFAULT_COUNT, seed: int = DEFAULT_SEED) -> list[Customer]:
    """Return ``count`` customers with ids 1..count; the same seed gives the same list."""
    if count < 0:
        raise ValueError(f"count must be >= 0, got {count}")
    factory = CustomerFactory(seed)
    return [factory.create(customer_id) for customer_id in range(1, count + 1)]
