"""Credentials in text: JWTs, PEM private keys, bearer tokens, cloud and API key formats.

Candidate extraction follows the rules in `pii_text`: `str.find` for fixed prefixes and
character-class runs after them, each region of the text examined once.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass

from dijk.detect.pii_model import Category

__all__ = ["ANY_PREFIX", "PATTERNS", "PREFIXES", "scan_secrets"]

_TOKEN_RUN = re.compile(r"[A-Za-z0-9_\-]+")
_BEARER_RUN = re.compile(r"[A-Za-z0-9._~+/=\-]+")
_PEM_LABEL_RUN = re.compile(r"[A-Z0-9 ]{1,40}")
_UPPER_ALNUM_RUN = re.compile(r"[A-Z0-9]{0,65}")
_ALNUM_TOKEN_RUN = re.compile(r"[A-Za-z0-9]{0,256}")
_SLACK_RUN = re.compile(r"[A-Za-z0-9\-]{0,256}")
_WEBHOOK_RUN = re.compile(r"[A-Za-z0-9/]{0,256}")
_URLSAFE_RUN = re.compile(r"[A-Za-z0-9_\-]{0,256}")

PATTERNS: tuple[re.Pattern[str], ...] = (
    _TOKEN_RUN,
    _BEARER_RUN,
    _PEM_LABEL_RUN,
    _UPPER_ALNUM_RUN,
    _ALNUM_TOKEN_RUN,
    _SLACK_RUN,
    _WEBHOOK_RUN,
    _URLSAFE_RUN,
)

Finding = tuple[Category, int, int]


@dataclass(frozen=True, slots=True)
class _TokenRule:
    prefix: str
    run: re.Pattern[str]
    min_length: int  # of the part after the prefix
    max_length: int
    needs_boundary: bool = True


_TOKEN_RULES: tuple[_TokenRule, ...] = (
    # AWS access key ids: a 4-letter kind, then 16 upper-case letters and digits
    *(
        _TokenRule(prefix, _UPPER_ALNUM_RUN, 16, 16)
        for prefix in ("AKIA", "ASIA", "ABIA", "ACCA", "AGPA", "AIDA", "AIPA", "ANPA", "ANVA")
    ),
    *(_TokenRule(prefix, _UPPER_ALNUM_RUN, 16, 16) for prefix in ("AROA", "APKA", "ASCA")),
    # GitHub: classic tokens and fine-grained personal access tokens
    *(
        _TokenRule(prefix, _ALNUM_TOKEN_RUN, 36, 251)
        for prefix in ("ghp_", "gho_", "ghu_", "ghs_", "ghr_")
    ),
    _TokenRule("github_pat_", _URLSAFE_RUN, 60, 245),
    # Slack bot/user/app tokens and incoming webhooks
    *(
        _TokenRule(prefix, _SLACK_RUN, 10, 250)
        for prefix in ("xoxb-", "xoxp-", "xoxa-", "xoxr-", "xoxs-", "xoxe-", "xapp-")
    ),
    _TokenRule("https://hooks.slack.com/services/", _WEBHOOK_RUN, 20, 200, False),
    # Stripe-style secret and restricted keys (the generic `sk_live_`)
    *(
        _TokenRule(prefix, _ALNUM_TOKEN_RUN, 16, 247)
        for prefix in ("sk_live_", "rk_live_", "sk_test_", "rk_test_")
    ),
    _TokenRule("AIza", _URLSAFE_RUN, 35, 35),  # Google API key
    _TokenRule("glpat-", _URLSAFE_RUN, 20, 250),  # GitLab personal access token
    _TokenRule("npm_", _ALNUM_TOKEN_RUN, 36, 36),  # npm access token
    _TokenRule("pypi-AgEIcHlwaS5vcmc", _URLSAFE_RUN, 40, 236),  # PyPI API token
    _TokenRule("sk-ant-", _URLSAFE_RUN, 32, 249),  # Anthropic
    _TokenRule("sk-proj-", _URLSAFE_RUN, 32, 248),  # OpenAI project key
)
_TOKEN_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")

PREFIXES: tuple[str, ...] = (
    *(rule.prefix for rule in _TOKEN_RULES),
    "eyJ",
    "-----BEGIN ",
    "Bearer ",
    "bearer ",
)
# One pass in C over the text tells whether any scanner below has work: most strings
# hold no credential. An alternation of plain literals has nothing to backtrack into:
# at each position each literal is compared once (bounded by its length).
ANY_PREFIX = re.compile("|".join(re.escape(prefix) for prefix in PREFIXES))


def scan_secrets(text: str) -> list[Finding]:
    """Every credential in `text` (see the module docstring for the formats)."""
    if ANY_PREFIX.search(text) is None:
        return []
    found: list[Finding] = []
    for rule in _TOKEN_RULES:
        found.extend(_scan_token_rule(text, rule))
    if "eyJ" in text:
        found.extend(_scan_jwts(text))
    if "-----BEGIN " in text:
        found.extend(_scan_pem_private_keys(text))
    if "earer " in text:
        found.extend(_scan_bearer(text))
    return found


def _scan_token_rule(text: str, rule: _TokenRule) -> list[Finding]:
    found: list[Finding] = []
    position = text.find(rule.prefix)
    while position != -1:
        if not (rule.needs_boundary and position > 0 and text[position - 1] in _TOKEN_CHARS):
            body_start = position + len(rule.prefix)
            body = rule.run.match(text, body_start, body_start + rule.max_length + 1)
            body_length = body.end() - body_start if body is not None else 0
            after = body_start + body_length
            if rule.min_length <= body_length <= rule.max_length and not (
                after < len(text) and text[after] in _TOKEN_CHARS
            ):
                found.append((Category.SECRET, position, after))
        position = text.find(rule.prefix, position + 1)
    return found


_JWT_MAX_HEADER = 4096


def _scan_jwts(text: str) -> list[Finding]:
    """`header.payload.signature`, base64url; the header must decode to `{"alg": ...}`.

    A JWT starts where the character before is not part of one, so two candidates never
    share characters and each is read once.
    """
    found: list[Finding] = []
    position = text.find("eyJ")
    while position != -1:
        previous = text[position - 1] if position > 0 else ""
        end = None
        if previous not in _TOKEN_CHARS and previous != ".":
            end = _jwt_end(text, position)
            if end is not None:
                found.append((Category.SECRET, position, end))
        position = text.find("eyJ", end if end is not None else position + 1)
    return found


def _jwt_end(text: str, start: int) -> int | None:
    parts: list[tuple[int, int]] = []
    position = start
    for index in range(3):
        match = _TOKEN_RUN.match(text, position)
        part_end = match.end() if match is not None else position
        parts.append((position, part_end))
        position = part_end
        if index < 2:
            if position >= len(text) or text[position] != ".":
                return None
            position += 1
    header_start, header_end = parts[0]
    payload_start, payload_end = parts[1]
    if header_end - header_start > _JWT_MAX_HEADER or payload_end == payload_start:
        return None
    if position < len(text) and text[position] == ".":
        return None  # four or more parts: not a JWS in compact form
    header = _decode_json_object(text[header_start:header_end])
    if header is None or "alg" not in header:
        return None
    if not text.startswith("eyJ", payload_start) and not text.startswith("ew", payload_start):
        return None
    return position


def _decode_json_object(segment: str) -> dict[str, object] | None:
    try:
        raw = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
        value = json.loads(raw)
    except (binascii.Error, ValueError, RecursionError):
        return None
    return value if isinstance(value, dict) else None


def _scan_pem_private_keys(text: str) -> list[Finding]:
    """`-----BEGIN ... PRIVATE KEY-----` through its END line (or the end of the text).

    The END marker for a label is searched once and remembered while it lies ahead, so
    many BEGIN lines without an END cost O(n), not O(n^2).
    """
    found: list[Finding] = []
    next_end: dict[str, int] = {}
    position = text.find("-----BEGIN ")
    while position != -1:
        label_start = position + len("-----BEGIN ")
        label_match = _PEM_LABEL_RUN.match(text, label_start)
        end = position + 1
        if label_match is not None and text.startswith("-----", label_match.end()):
            label = label_match.group()
            if "PRIVATE KEY" in label:
                end = _pem_end(text, label, label_match.end() + 5, next_end)
                found.append((Category.SECRET, position, end))
        position = text.find("-----BEGIN ", end)
    return found


def _pem_end(text: str, label: str, body_start: int, next_end: dict[str, int]) -> int:
    marker = f"-----END {label}-----"
    cached = next_end.get(label)
    if cached is None or (cached != -1 and cached < body_start):
        cached = text.find(marker, body_start)
        next_end[label] = cached
    return len(text) if cached == -1 else cached + len(marker)


def _scan_bearer(text: str) -> list[Finding]:
    """An opaque token after `Bearer ` (an Authorization header copied into a body)."""
    found: list[Finding] = []
    for prefix in ("Bearer ", "bearer "):
        position = text.find(prefix)
        while position != -1:
            token_start = position + len(prefix)
            match = _BEARER_RUN.match(text, token_start)
            if match is not None and match.end() - token_start >= 16:
                found.append((Category.SECRET, token_start, match.end()))
            position = text.find(prefix, position + 1)
    return found
