"""Inputs the fuzz harnesses found, kept as named regression tests."""

from __future__ import annotations

from dijk.detect.engine import Detector
from dijk.detect.findings import RequestParts
from fuzz.targets import detector_body

DETECTOR = Detector(paranoia=1)


def test_xml_declaring_an_encoding_python_does_not_know_is_flagged_not_a_crash() -> None:
    # Found by the detector_body harness: expat raised LookupError ("unknown encoding:
    # UTF-4") out of the detector, which the WAF stage would have answered with a 500.
    body = (
        b'<?xml version="1.0" encoding="UTF-4"?><catalo><g>atgftp%3A%2F%2F1.1.1.1</tag></catalog>'
    )
    verdict = DETECTOR.inspect(
        RequestParts(method="POST", path="/x", content_type="application/xml", body=body)
    )
    assert "xxe-unusual-encoding" in {finding.rule_id for finding in verdict.findings}
    detector_body(b"\x06" + body)  # the harness input itself, as text/plain
    detector_body(b"\x01" + body)  # and labelled as XML
