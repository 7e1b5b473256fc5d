"""Property tests: no input makes the detector raise, and cost grows linearly."""

from __future__ import annotations

import json
import time

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dijk.detect.engine import Detector
from dijk.detect.findings import RequestParts
from dijk.detect.normalise import hex_literal_decode, iis_decode, shell_unquote, variants

DETECTOR = Detector(paranoia=4)
FUZZ = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Text biased towards the characters the decoders and rules care about.
ALPHABET = st.sampled_from(
    list("%&#;\\/<>'\"`=(){}[]$*|.:+-_ \t\n\x00aAeuxX0123456789\u00e9\uff1c\u2028")
)
TRICKY = st.text(ALPHABET, max_size=200) | st.text(max_size=200)
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | TRICKY,
    lambda children: st.lists(children, max_size=5) | st.dictionaries(TRICKY, children, max_size=5),
    max_leaves=30,
)


@FUZZ
@given(TRICKY)
def test_variants_never_raise_and_start_with_the_value(text: str) -> None:
    result = variants(text)
    assert result[0][1] == text.replace("\x00", "")
    assert len(result) <= 10


@FUZZ
@given(TRICKY)
def test_the_lenient_decoders_never_raise_or_grow(text: str) -> None:
    # Each decoder only removes or replaces characters; none may blow a value up.
    for decode in (iis_decode, hex_literal_decode, shell_unquote):
        assert len(decode(text)) <= len(text) * 2 + 2


@FUZZ
@given(TRICKY, TRICKY, TRICKY)
def test_query_path_and_headers_never_raise(path: str, value: str, header: str) -> None:
    request = RequestParts(
        path="/" + path,
        query=(("q", value), (value, path)),
        headers=(("x-note", header), ("cookie", value)),
    )
    verdict = DETECTOR.inspect(request)
    assert verdict.score >= 0
    assert all(len(finding.snippet) <= 64 for finding in verdict.findings)


@FUZZ
@given(JSON_VALUES)
def test_json_bodies_never_raise(value: object) -> None:
    body = json.dumps(value).encode()
    DETECTOR.inspect(RequestParts(method="POST", content_type="application/json", body=body))
    DETECTOR.inspect(
        RequestParts(method="POST", path="/graphql", content_type="application/json", body=body)
    )


@FUZZ
@given(
    st.binary(max_size=400),
    st.sampled_from(
        [
            "application/xml",
            "multipart/form-data; boundary=x",
            "application/x-www-form-urlencoded",
            "application/graphql",
            "",
            "application/json",
            "text/plain",
        ]
    ),
)
def test_any_body_bytes_never_raise(body: bytes, content_type: str) -> None:
    DETECTOR.inspect(RequestParts(method="POST", content_type=content_type, body=body))


def _cost(text: str) -> float:
    request = RequestParts(query=(("q", text),), headers=(("user-agent", text),))
    best = float("inf")
    for _ in range(5):
        start = time.perf_counter()
        DETECTOR.inspect(request)
        best = min(best, time.perf_counter() - start)
    return best


def test_cost_grows_linearly_on_adversarial_repetitions() -> None:
    # Repetitions that make backtracking matchers go quadratic or worse.
    for unit in [
        "'",
        "<a ",
        "%25",
        "&#",
        "${lower:",
        "/*",
        "../",
        "\\u00",
        "%c1%pc",
        "0x2e",
        "c'a'",
        "$a${",
        "%%32",
    ]:
        small = _cost(unit * 1_000)
        large = _cost(unit * 16_000)
        # 16x the input: linear cost is ~16x, quadratic would be ~256x. The bound of 64x
        # leaves room for noise on a shared machine without letting quadratic growth pass.
        assert large < max(small, 1e-4) * 64, (unit, small, large)


def test_deep_json_is_reported_not_crashing() -> None:
    body = ("[" * 5000 + "]" * 5000).encode()
    verdict = DETECTOR.inspect(
        RequestParts(method="POST", content_type="application/json", body=body)
    )
    assert "limits" in verdict.categories
