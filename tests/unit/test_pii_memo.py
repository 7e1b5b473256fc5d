"""The detector's memo of short values: exact, bounded, never built on a spent budget."""

from __future__ import annotations

from dijk.detect import pii as pii_module
from dijk.detect.pii import PiiDetector
from dijk.detect.pii_digits import ValidationBudget
from dijk.detect.pii_model import CategoryFlags

DOCUMENT = {
    "customers": [
        {"email": "jan@example.nl", "phone": "06 12345678", "iban": "NL91ABNA0417164300"},
        {"note": "bel 020-5551234 of mail piet@example.com", "order": "ORD-2024-000123"},
    ]
}


def test_remembered_answers_equal_fresh_scans() -> None:
    detector = PiiDetector()
    first = detector.scan_json(DOCUMENT)
    again = detector.scan_json(DOCUMENT)
    detector.forget()
    fresh = detector.scan_json(DOCUMENT)
    assert first == again == fresh
    assert {match.category.value for match in first} == {"email", "phone", "iban"}


def test_a_result_resting_on_a_spent_budget_is_not_remembered() -> None:
    detector = PiiDetector()
    spent = ValidationBudget(0)
    detector._scan("06 12345678", CategoryFlags(), spent)
    assert ("06 12345678", CategoryFlags()) not in detector._memo
    detector._scan("06 12345678", CategoryFlags(), ValidationBudget.initial())
    assert ("06 12345678", CategoryFlags()) in detector._memo


def test_the_memo_is_bounded() -> None:
    detector = PiiDetector()
    limit = pii_module._MEMO_SIZE
    for index in range(limit + 10):
        detector.scan_text(f"value {index}")
    assert len(detector._memo) <= limit
