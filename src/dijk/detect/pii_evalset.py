"""A labelled evaluation set for the PII detector, generated deterministically in code.

Each `Sample` is a string (free text, or the value of a JSON field named `field`) and the
exact personal data in it. The positives are built from the rules of each format (IBAN
check digits by mod-97, BSN by the 11-proof, card numbers by Luhn on real issuer
prefixes, real Dutch phone ranges), not by asking the detector's own validators. The
negatives are look-alikes that a pattern-only detector would report: IBANs with a wrong
check digit, 9-digit numbers failing the 11-proof, 11-proof-valid numbers used as order
numbers, Luhn-invalid and unknown-issuer card numbers, invoice numbers starting with
`06`, timestamps, version strings, UUIDs, hashes, public keys, pagination tokens.

Used by `tests/unit/test_pii.py` (precision and recall floors) and `bench/pii.py`.
The same seed always gives the same set.
"""

from __future__ import annotations

import base64
import json
import random
import string
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from dijk.detect.pii import PiiDetector
from dijk.detect.pii_model import Category

__all__ = [
    "Sample",
    "Score",
    "evaluate",
    "generate_samples",
    "luhn_complete",
    "make_bsn",
    "make_iban",
]

DEFAULT_SEED = 9


@dataclass(frozen=True, slots=True)
class Sample:
    """A string and the personal data in it, as (category, exact substring) pairs."""

    text: str
    field: str | None
    expected: tuple[tuple[Category, str], ...]
    note: str


@dataclass(slots=True)
class Score:
    """True/false positives and false negatives of one category over the set."""

    true_positives: int = 0
    false_positives: int = 0
    false_negatives: int = 0
    false_positive_notes: Counter[str] = field(default_factory=Counter)
    false_negative_notes: Counter[str] = field(default_factory=Counter)

    @property
    def precision(self) -> float:
        found = self.true_positives + self.false_positives
        return self.true_positives / found if found else 1.0

    @property
    def recall(self) -> float:
        present = self.true_positives + self.false_negatives
        return self.true_positives / present if present else 1.0


def evaluate(detector: PiiDetector, samples: Iterable[Sample]) -> dict[Category, Score]:
    """Score `detector` on `samples`: a finding counts only with the exact span."""
    scores = {category: Score() for category in Category}
    for sample in samples:
        if sample.field is None:
            matches = detector.scan_text(sample.text)
        else:
            matches = detector.scan_json({sample.field: sample.text})
        found = Counter((match.category, sample.text[match.start : match.end]) for match in matches)
        expected = Counter(sample.expected)
        for (category, _), count in (found & expected).items():
            scores[category].true_positives += count
        for (category, _), count in (found - expected).items():
            scores[category].false_positives += count
            scores[category].false_positive_notes[sample.note] += count
        for (category, _), count in (expected - found).items():
            scores[category].false_negatives += count
            scores[category].false_negative_notes[sample.note] += count
    return scores


# --- valid values, built from the format rules ------------------------------------------

_NL_BANKS = ("ABNA", "INGB", "RABO", "TRIO", "SNSB", "ASNB", "KNAB", "BUNQ", "RBRB", "FVLB")
_FIRST_NAMES = (
    "jan", "piet", "klaas", "anna", "sanne", "daan", "emma", "lucas", "sophie", "noah",
    "fleur", "bram", "lotte", "thijs", "femke", "joris", "mila", "ruben", "eva", "sem",
)  # fmt: skip
_LAST_NAMES = (
    "jansen", "de-vries", "van-dijk", "bakker", "visser", "smit", "meijer", "de-boer",
    "mulder", "de-groot", "bos", "vos", "peters", "hendriks", "van-leeuwen", "dekker",
)  # fmt: skip
_DOMAINS = (
    "example.nl", "polderbank.nl", "gmail.com", "outlook.com", "ziggo.nl", "kpnmail.nl",
    "uva.nl", "mail.example.co.uk", "xs4all.nl", "student.tudelft.nl",
)  # fmt: skip
_BE_BANKS = ("001", "320", "363", "068", "735", "310", "091", "050")
_AREA_CODES = ("20", "10", "30", "70", "40", "50", "24", "26", "13", "15", "23", "35", "38", "43")
_MONTH_NAMES = (
    "januari", "februari", "maart", "april", "mei", "juni", "juli", "augustus",
    "september", "oktober", "november", "december",
)  # fmt: skip
_ENGLISH_MONTHS = (
    "January", "February", "March", "April", "May", "June", "July", "August",
    "September", "October", "November", "December",
)  # fmt: skip


def _iban_check_digits(country: str, bban: str) -> str:
    rearranged = bban + country + "00"
    number = int("".join(str(int(char, 36)) for char in rearranged))
    return f"{98 - number % 97:02d}"


def make_iban(rng: random.Random) -> str:
    """A valid IBAN (compact): Dutch mostly, some German, Belgian and British."""
    kind = rng.random()
    if kind < 0.6:
        country, bban = "NL", rng.choice(_NL_BANKS) + _digits(rng, 10)
    elif kind < 0.75:
        country, bban = "DE", _digits(rng, 18)
    elif kind < 0.9:
        first = rng.choice(_BE_BANKS) + _digits(rng, 7)
        check = int(first) % 97 or 97
        country, bban = "BE", f"{first}{check:02d}"
    else:
        country, bban = "GB", "NWBK" + _digits(rng, 14)
    return country + _iban_check_digits(country, bban) + bban


def _wrong_check_iban(rng: random.Random) -> str:
    """A valid IBAN with other check digits (98 and 01 are the same mod 97: avoided)."""
    valid = make_iban(rng)
    check = int(valid[2:4])
    wrong = rng.choice([digits for digits in range(2, 98) if digits != check])
    return valid[:2] + f"{wrong:02d}" + valid[4:]


def _group4(value: str) -> str:
    return " ".join(value[index : index + 4] for index in range(0, len(value), 4))


def make_bsn(rng: random.Random) -> str:
    """A 9-digit number passing the 11-proof."""
    while True:
        head = str(rng.randint(1, 9)) + _digits(rng, 7)
        total = sum((9 - index) * int(char) for index, char in enumerate(head))
        check = total % 11
        if check < 10:
            return head + str(check)


def _failing_bsn(rng: random.Random) -> str:
    while True:
        candidate = str(rng.randint(1, 9)) + _digits(rng, 8)
        weights = sum((9 - index) * int(char) for index, char in enumerate(candidate[:8]))
        if (weights - int(candidate[8])) % 11 != 0:
            return candidate


def luhn_complete(prefix: str, length: int, rng: random.Random) -> str:
    """`prefix` + random digits + the Luhn check digit, `length` digits in all."""
    body = prefix + _digits(rng, length - len(prefix) - 1)
    total = 0
    for index, char in enumerate(reversed(body)):
        digit = int(char)
        if index % 2 == 0:
            digit = digit * 2 - 9 if digit > 4 else digit * 2
        total += digit
    return body + str((10 - total % 10) % 10)


def _make_card(rng: random.Random) -> str:
    kind = rng.random()
    if kind < 0.45:
        return luhn_complete("4", 16, rng)
    if kind < 0.7:
        return luhn_complete(str(rng.randint(51, 55)), 16, rng)
    if kind < 0.8:
        return luhn_complete(str(rng.randint(2221, 2720)), 16, rng)
    if kind < 0.92:
        return luhn_complete(rng.choice(("34", "37")), 15, rng)
    return luhn_complete(str(rng.choice((6011, 3530, 3589))), 16, rng)


def _format_card(number: str, rng: random.Random) -> str:
    style = rng.random()
    if style < 0.4:
        return number
    separator = " " if style < 0.8 else "-"
    if len(number) == 15:
        return separator.join((number[:4], number[4:10], number[10:]))
    return separator.join(number[index : index + 4] for index in range(0, len(number), 4))


def _make_phone(rng: random.Random) -> str:
    """A valid phone number in one of the ways people write them."""
    kind = rng.random()
    if kind < 0.55:
        rest = str(rng.randint(1, 5)) + _digits(rng, 7)
        return rng.choice(
            (
                f"06-{rest}",
                f"06 {rest[:4]} {rest[4:]}",
                f"06{rest}",
                f"+31 6 {rest}",
                f"+316{rest}",
                f"+31 (0)6 {rest[:4]} {rest[4:]}",
                f"0031 6 {rest}",
                f"06 {rest[:2]} {rest[2:4]} {rest[4:6]} {rest[6:]}",
            )
        )
    if kind < 0.85:
        area = rng.choice(_AREA_CODES)
        rest = str(rng.randint(2, 9)) + _digits(rng, 6)
        return rng.choice(
            (
                f"0{area}-{rest}",
                f"(0{area}) {rest[:3]} {rest[3:]}",
                f"+31 {area} {rest[:3]} {rest[3:]}",
                f"0{area} {rest}",
            )
        )
    return rng.choice(
        (
            f"+44 20 7946 0{_digits(rng, 3)}",
            f"+49 30 {rng.randint(2, 9)}{_digits(rng, 7)}",
            f"+1 202 555 01{_digits(rng, 2)}",
            f"+33 6 {rng.randint(10, 59)} {_digits(rng, 2)} {_digits(rng, 2)} {_digits(rng, 2)}",
        )
    )


def _make_email(rng: random.Random) -> str:
    first, last = rng.choice(_FIRST_NAMES), rng.choice(_LAST_NAMES)
    local = rng.choice((f"{first}.{last}", f"{first[0]}.{last}", f"{first}{rng.randint(1, 99)}"))
    if rng.random() < 0.15:
        local += "+" + rng.choice(("nieuwsbrief", "bank", "test"))
    if rng.random() < 0.1:
        local = local.capitalize()
    return f"{local}@{rng.choice(_DOMAINS)}"


def _make_ipv4(rng: random.Random) -> str:
    first = rng.choice((rng.randint(1, 126), rng.randint(128, 223)))
    return f"{first}.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}"


def _make_ipv6(rng: random.Random) -> str:
    groups = [f"{rng.randint(0, 0xFFFF):x}" for _ in range(8)]
    if rng.random() < 0.5:
        return "2001:db8:" + ":".join(groups[2:4]) + "::" + groups[7]
    return "2a02:" + ":".join(groups[1:])


def _make_date(rng: random.Random) -> tuple[str, str]:
    """(written date, style) for a plausible birth date."""
    year, month, day = rng.randint(1930, 2010), rng.randint(1, 12), rng.randint(1, 28)
    style = rng.choice(("iso", "dutch", "slash", "dots", "words", "english"))
    text = {
        "iso": f"{year}-{month:02d}-{day:02d}",
        "dutch": f"{day:02d}-{month:02d}-{year}",
        "slash": f"{day:02d}/{month:02d}/{year}",
        "dots": f"{day}.{month}.{year}",
        "words": f"{day} {_MONTH_NAMES[month - 1]} {year}",
        "english": f"{day} {_ENGLISH_MONTHS[month - 1]} {year}",
    }[style]
    return text, style


def _make_postcode(rng: random.Random) -> str:
    while True:
        letters = rng.choice(string.ascii_uppercase) + rng.choice(string.ascii_uppercase)
        if letters not in ("SA", "SD", "SS"):
            break
    separator = rng.choice((" ", ""))
    return f"{rng.randint(1000, 9999)}{separator}{letters}"


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _make_jwt(rng: random.Random) -> str:
    header = {"alg": rng.choice(("HS256", "RS256", "ES256")), "typ": "JWT"}
    payload = {"sub": str(rng.randint(1, 10**6)), "iat": 1_700_000_000 + rng.randint(0, 10**6)}
    signature = bytes(rng.randrange(256) for _ in range(32))
    return ".".join(
        (
            _b64url(json.dumps(header).encode()),
            _b64url(json.dumps(payload).encode()),
            _b64url(signature),
        )
    )


def _make_pem(rng: random.Random) -> str:
    label = rng.choice(("RSA PRIVATE KEY", "PRIVATE KEY", "EC PRIVATE KEY", "OPENSSH PRIVATE KEY"))
    body = base64.b64encode(bytes(rng.randrange(256) for _ in range(144))).decode()
    lines = "\n".join(body[index : index + 64] for index in range(0, len(body), 64))
    return f"-----BEGIN {label}-----\n{lines}\n-----END {label}-----"


def _make_token(rng: random.Random) -> str:
    alnum = string.ascii_letters + string.digits
    upper = string.ascii_uppercase + "234567"
    kind = rng.randrange(6)
    if kind == 0:
        return "AKIA" + "".join(rng.choice(upper) for _ in range(16))
    if kind == 1:
        return rng.choice(("ghp_", "gho_", "ghs_")) + "".join(rng.choice(alnum) for _ in range(36))
    if kind == 2:
        return f"xoxb-{_digits(rng, 12)}-{_digits(rng, 13)}-" + "".join(
            rng.choice(alnum) for _ in range(24)
        )
    if kind == 3:
        return "sk_live_" + "".join(rng.choice(alnum) for _ in range(24))
    if kind == 4:
        return "AIza" + "".join(rng.choice(alnum + "_-") for _ in range(35))
    return "glpat-" + "".join(rng.choice(alnum) for _ in range(20))


def _make_password(rng: random.Random) -> str:
    return "".join(rng.choice(string.ascii_letters + string.digits + "!#%&*") for _ in range(12))


def _digits(rng: random.Random, count: int) -> str:
    return "".join(rng.choice(string.digits) for _ in range(count))


# --- samples -----------------------------------------------------------------------------

_Maker = Callable[[random.Random], list[Sample]]


def _positive(
    text: str, field_name: str | None, category: Category, value: str, note: str
) -> Sample:
    return Sample(text, field_name, ((category, value),), note)


def _negative(text: str, field_name: str | None, note: str) -> Sample:
    return Sample(text, field_name, (), note)


def _email_samples(rng: random.Random) -> list[Sample]:
    email = _make_email(rng)
    template = rng.choice(
        (
            "Neem contact op via {} of bel ons.",
            "Please reply to {}.",
            "Afzender: {}",
            "cc: {}, bcc: nobody",
        )
    )
    samples = [
        _positive(email, "email", Category.EMAIL, email, "email field"),
        _positive(template.format(email), None, Category.EMAIL, email, "email in text"),
    ]
    samples.append(_negative(f"@{rng.choice(_FIRST_NAMES)} thanks!", None, "social handle"))
    samples.append(_negative(f"user@localhost{rng.randint(1, 9)}", None, "host without tld"))
    samples.append(_negative(f"git@{rng.randint(1, 9)}:repo", None, "git remote"))
    return samples


def _phone_samples(rng: random.Random) -> list[Sample]:
    phone = _make_phone(rng)
    template = rng.choice(("Bel mij op {} na 17:00.", "Phone: {}", "Tel. {} (werk)"))
    samples = [
        _positive(phone, "phone", Category.PHONE, phone, "phone field"),
        _positive(template.format(phone), None, Category.PHONE, phone, "phone in text"),
    ]
    mobile = "6" + str(rng.randint(1, 5)) + _digits(rng, 7)
    samples.append(_positive(mobile, "mobiel", Category.PHONE, mobile, "bare number in field"))
    invoice = "06" + _digits(rng, 8)
    samples.append(_negative(f"Factuur INV-{invoice}", None, "invoice number with 06"))
    samples.append(_negative(f"Ordernummer {rng.randint(2, 9)}{_digits(rng, 9)}", None, "order no"))
    samples.append(
        _negative(f"Betaald op 0{rng.randint(1, 9)}-0{rng.randint(1, 9)}-2024", None, "date")
    )
    samples.append(_negative(f"timestamp {1_700_000_000 + rng.randint(0, 10**7)}", None, "epoch"))
    return samples


def _iban_samples(rng: random.Random) -> list[Sample]:
    iban = make_iban(rng)
    written = _group4(iban) if rng.random() < 0.5 else iban
    template = rng.choice(
        ("Graag overmaken naar {} t.n.v. Polder Bank.", "IBAN: {}", "Rekening {}.")
    )
    samples = [
        _positive(written, "iban", Category.IBAN, written, "iban field"),
        _positive(template.format(written), None, Category.IBAN, written, "iban in text"),
    ]
    wrong = _wrong_check_iban(rng)
    samples.append(_negative(wrong, "iban", "iban with wrong check digits"))
    samples.append(
        _negative(f"Rekening {_group4(_wrong_check_iban(rng))}", None, "wrong iban text")
    )
    valid = make_iban(rng)
    typo_at = rng.randrange(4, len(valid))
    typo_digit = str((int(valid[typo_at], 36) + rng.randint(1, 8)) % 10)
    typo = valid[:typo_at] + typo_digit + valid[typo_at + 1 :]
    if typo != valid:
        samples.append(_negative(typo, "iban", "iban with a typo"))
    return samples


def _bsn_samples(rng: random.Random) -> list[Sample]:
    bsn = make_bsn(rng)
    dotted = f"{bsn[:4]}.{bsn[4:6]}.{bsn[6:]}"
    samples = [
        _positive(bsn, "bsn", Category.BSN, bsn, "bsn field"),
        _positive(f"BSN: {bsn}", None, Category.BSN, bsn, "bsn keyword"),
        _positive(f"Mijn burgerservicenummer is {bsn}.", None, Category.BSN, bsn, "keyword nl"),
        _positive(f"Nummer {dotted} ontvangen", None, Category.BSN, dotted, "dotted bsn"),
        _positive(bsn, "burgerservicenummer", Category.BSN, bsn, "long field name"),
    ]
    samples.append(_negative(_failing_bsn(rng), "bsn", "fails 11-proof in bsn field"))
    samples.append(_negative(f"BSN {_failing_bsn(rng)}", None, "fails 11-proof after keyword"))
    samples.append(_negative(f"Ordernummer {make_bsn(rng)}", None, "11-proof valid order number"))
    samples.append(_negative(make_bsn(rng), "order_id", "11-proof valid id field"))
    samples.append(_negative(f"Klantnummer {make_bsn(rng)} verwerkt", None, "customer number"))
    return samples


def _card_samples(rng: random.Random) -> list[Sample]:
    card = _format_card(_make_card(rng), rng)
    template = rng.choice(("Betaald met kaart {}.", "card: {}", "PAN {} exp 12/27"))
    samples = [
        _positive(card, "card_number", Category.CARD, card, "card field"),
        _positive(template.format(card), None, Category.CARD, card, "card in text"),
    ]
    valid = _make_card(rng)
    broken = valid[:-1] + str((int(valid[-1]) + rng.randint(1, 9)) % 10)
    samples.append(_negative(f"kaart {_format_card(broken, rng)}", None, "luhn invalid card"))
    unknown = luhn_complete(str(rng.choice((1, 7, 8, 9))), 16, rng)
    samples.append(_negative(f"Referentie {unknown}", None, "luhn valid, unknown issuer"))
    samples.append(
        _negative(f"Order {rng.randint(1, 9)}{_digits(rng, 15)}", None, "16-digit order")
    )
    samples.append(_negative(f"ORD-{luhn_complete('4', 16, rng)}", None, "card glued to id"))
    samples.append(
        _negative(f"{1_700_000_000_000 + rng.randint(0, 10**9)}", "created_ms", "ms epoch")
    )
    return samples


def _ip_samples(rng: random.Random) -> list[Sample]:
    ipv4, ipv6 = _make_ipv4(rng), _make_ipv6(rng)
    samples = [
        _positive(ipv4, "client_ip", Category.IP, ipv4, "ipv4 field"),
        _positive(f"Login vanaf {ipv4} om 10:31", None, Category.IP, ipv4, "ipv4 in text"),
        _positive(f"remote_addr={ipv6}", None, Category.IP, ipv6, "ipv6 in text"),
        _positive(ipv6, "ip", Category.IP, ipv6, "ipv6 field"),
    ]
    major, minor, patch = rng.randint(0, 9), rng.randint(0, 30), rng.randint(0, 30)
    samples.append(_negative(f"dijk {major}.{minor}.{patch}", None, "version string"))
    samples.append(_negative(f"v{major}.{minor}.{patch}.{rng.randint(1, 99)}", None, "v-version"))
    samples.append(
        _negative(f"version {major}.{minor}.{patch}.{rng.randint(1, 99)}", None, "version")
    )
    samples.append(
        _negative(f"10.0.{rng.randint(0, 255)}.{rng.randint(256, 999)}", None, "bad octet")
    )
    samples.append(_negative(f"OID 1.3.6.1.4.1.{rng.randint(1, 60000)}", None, "snmp oid"))
    samples.append(
        _negative(f"om {rng.randint(10, 23)}:{rng.randint(10, 59)}:00 uur", None, "time")
    )
    mac = ":".join(f"{rng.randrange(256):02x}" for _ in range(6))
    samples.append(_negative(f"mac {mac}", None, "mac address"))
    return samples


def _birth_samples(rng: random.Random) -> list[Sample]:
    date, style = _make_date(rng)
    field_name = rng.choice(("date_of_birth", "birthDate", "geboortedatum", "dob", "birthday"))
    template = rng.choice(("geboren op {}", "born {} in Utrecht", "Geb. {}", "DOB: {}"))
    samples = [
        _positive(date, field_name, Category.DATE_OF_BIRTH, date, f"birth field ({style})"),
        _positive(template.format(date), None, Category.DATE_OF_BIRTH, date, "birth in text"),
    ]
    if style == "iso":
        stamp = date + "T00:00:00Z"
        samples.append(_positive(stamp, "birth_date", Category.DATE_OF_BIRTH, date, "iso time"))
    created = f"2024-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}T10:30:00Z"
    samples.append(_negative(created, "created_at", "timestamp field"))
    samples.append(_negative(f"Factuurdatum {date}", None, "date without birth context"))
    samples.append(
        _negative(f"{rng.randint(1950, 2000)}-02-30", "date_of_birth", "impossible date")
    )
    samples.append(_negative(f"31-04-{rng.randint(1950, 2000)}", "dob", "impossible date"))
    return samples


def _postcode_samples(rng: random.Random) -> list[Sample]:
    postcode = _make_postcode(rng)
    samples = [
        _positive(postcode, "postcode", Category.POSTCODE, postcode, "postcode field"),
        _positive(
            f"Damrak {rng.randint(1, 200)}, {postcode} Amsterdam",
            None,
            Category.POSTCODE,
            postcode,
            "postcode in address",
        ),
    ]
    lower = f"{rng.randint(1000, 9999)}{rng.choice('abcdefghjkmnprtvwxz')}{rng.choice('bcex')}"
    samples.append(_positive(lower, "zipCode", Category.POSTCODE, lower, "lower case in field"))
    samples.append(_negative(f"Upload van {rng.choice((1024, 2048, 4096))} MB", None, "size"))
    samples.append(_negative(f"{rng.randint(10000, 99999)} AB", None, "five digits"))
    samples.append(_negative(f"0{_digits(rng, 3)} AB", None, "leading zero"))
    samples.append(_negative(f"{rng.randint(1000, 9999)} SS", None, "unused letters"))
    samples.append(_negative(f"Model {rng.randint(1000, 9999)} ABC", None, "model number"))
    return samples


def _secret_samples(rng: random.Random) -> list[Sample]:
    jwt, pem, token = _make_jwt(rng), _make_pem(rng), _make_token(rng)
    password = _make_password(rng)
    samples = [
        _positive(f"Authorization: Bearer {jwt}", None, Category.SECRET, jwt, "jwt bearer"),
        _positive(jwt, "id_token", Category.SECRET, jwt, "jwt field"),
        _positive(pem, "key", Category.SECRET, pem, "pem private key"),
        _positive(f"config: key={token} end", None, Category.SECRET, token, "api key in text"),
        _positive(password, "password", Category.SECRET, password, "password field"),
        _positive(password, "client_secret", Category.SECRET, password, "client secret field"),
    ]
    public = pem.replace("PRIVATE KEY", "PUBLIC KEY")
    samples.append(_negative(public, "key", "public key"))
    hex_digest = "".join(rng.choice("0123456789abcdef") for _ in range(64))
    samples.append(_negative(f"sha256:{hex_digest}", None, "hash"))
    samples.append(
        _negative(
            _b64url(b'{"page":' + str(rng.randint(1, 99)).encode()), "nextPageToken", "cursor"
        )
    )
    short = "AKIA" + "".join(rng.choice(string.ascii_uppercase) for _ in range(10))
    samples.append(_negative(f"code {short}", None, "short AKIA"))
    samples.append(
        _negative("eyJ" + _b64url(b"not json at all")[3:] + ".abc.def", None, "eyJ non-jwt")
    )
    samples.append(_negative("set sk_live_ in the env", None, "prefix mention"))
    return samples


def _general_lookalikes(rng: random.Random) -> list[Sample]:
    uuid = "-".join(
        "".join(rng.choice("0123456789abcdef") for _ in range(count)) for count in (8, 4, 4, 4, 12)
    )
    sha = "".join(rng.choice("0123456789abcdef") for _ in range(40))
    return [
        _negative(f"request {uuid} done", None, "uuid"),
        _negative(uuid, "id", "uuid field"),
        _negative(f"commit {sha}", None, "git sha"),
        _negative(f"ORD-2024-{_digits(rng, 6)}", "order_id", "order id"),
        _negative(f"Bedrag EUR {rng.randint(100, 99999)},{_digits(rng, 2)}", None, "amount"),
        _negative(
            f"{rng.randint(1, 28):02d}-{rng.randint(1, 12):02d}-2024 14:{rng.randint(0, 59):02d}",
            None,
            "datetime",
        ),
        _negative(f"Polder Bank klantnummer {_digits(rng, 7)}", None, "customer number"),
    ]


_MAKERS: tuple[_Maker, ...] = (
    _email_samples,
    _phone_samples,
    _iban_samples,
    _bsn_samples,
    _card_samples,
    _ip_samples,
    _birth_samples,
    _postcode_samples,
    _secret_samples,
    _general_lookalikes,
)


def generate_samples(seed: int = DEFAULT_SEED, rounds: int = 60) -> list[Sample]:
    """The evaluation set: `rounds` rounds of every generator, deterministic for `seed`.

    With the default 60 rounds: about 120-360 positives per category and about 2,000
    look-alikes.
    """
    rng = random.Random(seed)
    samples: list[Sample] = []
    for _ in range(rounds):
        for maker in _MAKERS:
            samples.extend(maker(rng))
    return samples
