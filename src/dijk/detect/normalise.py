"""Normalisation of values before matching, with the name of each transform kept.

Attackers hide payloads behind encodings the backend will undo: double URL encoding,
overlong UTF-8, HTML entities, backslash escapes, SQL comments in place of spaces,
full-width Unicode letters, base64 and JWT segments. :func:`variants` returns the value
plus each decoded form that differs from it, labelled with the chain of transforms that
produced it, so that a finding can say *which* transform revealed the attack.

Every function here is linear in the length of its input and uses no regular
expressions: it runs on attacker-controlled text.
"""

from __future__ import annotations

import binascii
import json
import unicodedata
from html.entities import html5 as _HTML5_ENTITIES

MAX_URL_ROUNDS = 3
MAX_VARIANTS = 10
_MAX_ENTITY_NAME = 32
_MIN_BASE64 = 12
_MAX_BASE64 = 1 << 20

_HEX = frozenset("0123456789abcdefABCDEF")
_BASE64_STD = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=")
_BASE64_URL = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_=")
# Characters other than a plain space that some parser somewhere treats as a separator.
_ODD_SPACES = (
    "\t\n\r\x0b\x0c\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008"
    "\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
)
_ODD_SPACE_TABLE = {ord(char): " " for char in _ODD_SPACES}
_ODD_SPACE_SET = frozenset(_ODD_SPACES)
_SIMPLE_ESCAPES = {"n": "\n", "r": "\r", "t": "\t", "0": "\x00", "'": "'", '"': '"'}


def strip_nul(text: str) -> str:
    """Remove NUL bytes, which C-based backends treat as the end of a string."""
    return text.replace("\x00", "") if "\x00" in text else text


def _hex_value(text: str) -> int | None:
    if text and all(char in _HEX for char in text):
        return int(text, 16)
    return None


def percent_decode_once(text: str) -> str:
    """Decode ``%XX`` and IIS-style ``%uXXXX`` escapes once; ``+`` becomes a space.

    Decoded bytes are read as UTF-8, accepting the overlong forms (``%c0%ae`` for ``.``)
    that strict decoders refuse but some servers accept.
    """
    if "%" not in text:
        return text.replace("+", " ")
    parts = text.replace("+", " ").split("%")
    out = bytearray(parts[0].encode("utf-8", "surrogatepass"))
    for part in parts[1:]:
        byte = _hex_value(part[:2]) if len(part) >= 2 else None
        if byte is not None:
            out.append(byte)
            out += part[2:].encode("utf-8", "surrogatepass")
            continue
        if part[:1] in ("u", "U") and len(part) >= 5:
            code_point = _hex_value(part[1:5])
            if code_point is not None:
                out += chr(code_point).encode("utf-8", "surrogatepass")
                out += part[5:].encode("utf-8", "surrogatepass")
                continue
        out.append(0x25)
        out += part.encode("utf-8", "surrogatepass")
    return decode_utf8_lenient(bytes(out))


def _overlong_at(data: bytes, index: int) -> tuple[str, int] | None:
    """An overlong encoding of an ASCII character at ``index``: (character, length)."""
    lead = data[index]
    if lead in (0xC0, 0xC1) and index + 1 < len(data):
        # IIS also ignored the continuation marker bits: %c1%1c was '\\'.
        code_point = ((lead & 0x1F) << 6) | (data[index + 1] & 0x3F)
        return (chr(code_point), 2) if code_point < 0x80 else None
    if lead == 0xE0:
        extra = 2
    elif 0xF0 <= lead <= 0xF7:
        extra = 3
    elif 0xF8 <= lead <= 0xFB:
        extra = 4
    elif 0xFC <= lead <= 0xFD:
        extra = 5
    else:
        return None
    if index + extra >= len(data):
        return None
    code_point = lead & (0x3F >> extra)
    for offset in range(1, extra + 1):
        byte = data[index + offset]
        if not 0x80 <= byte <= 0xBF:
            return None
        code_point = (code_point << 6) | (byte & 0x3F)
    return (chr(code_point), extra + 1) if code_point < 0x80 else None


def decode_utf8_lenient(data: bytes) -> str:
    """Decode UTF-8, turning overlong sequences (2 to 6 bytes) into the ASCII they spell.

    Strict decoders refuse ``%c0%ae`` or ``%f0%80%80%ae``; old servers turned them into
    ``.``, which is why traversal payloads use them.
    """
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    pieces: list[str] = []
    start = 0
    index = 0
    length = len(data)
    while index < length:
        if data[index] >= 0xC0:
            overlong = _overlong_at(data, index)
            if overlong is not None:
                pieces.append(data[start:index].decode("utf-8", "replace"))
                pieces.append(overlong[0])
                index += overlong[1]
                start = index
                continue
        index += 1
    pieces.append(data[start:].decode("utf-8", "replace"))
    return "".join(pieces)


def parse_urlencoded(data: bytes) -> list[tuple[str, str]]:
    """``name=value&...`` pairs (query strings, form bodies), each decoded once.

    Unlike ``urllib.parse.parse_qsl``, which turns bytes that are not UTF-8 into U+FFFD,
    this keeps what old servers would have read: ``%c0%ae`` becomes ``.``.
    """
    text = decode_utf8_lenient(data)
    pairs: list[tuple[str, str]] = []
    for chunk in text.split("&"):
        if not chunk:
            continue
        name, _, value = chunk.partition("=")
        pairs.append((percent_decode_once(name), percent_decode_once(value)))
    return pairs


def url_decode(text: str) -> str:
    """Percent-decode repeatedly (at most ``MAX_URL_ROUNDS`` times) until nothing changes."""
    current = text
    for _ in range(MAX_URL_ROUNDS):
        if "%" not in current:
            break
        decoded = percent_decode_once(current)
        if decoded == current:
            break
        current = decoded
    return current


def _naive_digit(char: str) -> int | None:
    """A digit as IIS 4/5 computed it: any letter counts from ``a`` = 10 (``p`` = 25)."""
    if "0" <= char <= "9":
        return ord(char) - 48
    lower = char.lower()
    if "a" <= lower <= "z":
        return ord(lower) - 87
    return None


def _has_naive_escape(text: str) -> bool:
    """True when ``%`` is followed by two letters/digits that are not both hex digits."""
    index = text.find("%")
    while 0 <= index < len(text) - 2:
        first, second = text[index + 1], text[index + 2]
        if (
            first.isascii()
            and second.isascii()
            and first.isalnum()
            and second.isalnum()
            and not (first in _HEX and second in _HEX)
        ):
            return True
        index = text.find("%", index + 1)
    return False


def iis_decode(text: str) -> str:
    """Percent-decode the way IIS 4/5 did: ``%XY`` with *any* letters as digits.

    IIS computed a hex digit as ``letter - 'a' + 10`` without checking the range, so
    ``%c1%pc`` became the bytes C1 9C, an overlong ``\\``, and ``%bg%qf`` became C0 AF,
    an overlong ``/``. Traversal lists still carry these spellings; a modern backend
    would not decode them, but a value containing them is an evasion attempt. The
    result is read with :func:`decode_utf8_lenient` (overlong forms become ASCII).
    """
    if "%" not in text:
        return text
    out = bytearray()
    index = 0
    length = len(text)
    while index < length:
        char = text[index]
        if char == "%" and index + 2 < length:
            high = _naive_digit(text[index + 1])
            low = _naive_digit(text[index + 2])
            if high is not None and low is not None:
                out.append((high * 16 + low) & 0xFF)
                index += 3
                continue
        out += char.encode("utf-8", "surrogatepass")
        index += 1
    return decode_utf8_lenient(bytes(out))


_HEX_LITERAL_BYTES = {"0x2e": ".", "0x2f": "/", "0x5c": "\\"}


def hex_literal_decode(text: str) -> str:
    """Spell out ``0x2e``/``0x2f``/``0x5c`` (dot, slash, backslash) when a value uses
    them at least twice: traversal generators write ``0x2e0x2e0x5c`` for ``..\\``."""
    lower = text.lower()
    if lower.count("0x") < 2:
        return text
    total = sum(lower.count(token) for token in _HEX_LITERAL_BYTES)
    if total < 2:
        return text
    pieces: list[str] = []
    index = 0
    length = len(text)
    while index < length:
        token = lower[index : index + 4]
        replacement = _HEX_LITERAL_BYTES.get(token)
        if replacement is not None:
            pieces.append(replacement)
            index += 4
        else:
            pieces.append(text[index])
            index += 1
    return "".join(pieces)


_SHELL_QUOTES = frozenset("'\"")


def _shell_token(token: str) -> str:
    """One whitespace-free token as a POSIX shell would read it after quote removal."""
    quotes = sum(1 for char in token if char in _SHELL_QUOTES)
    if quotes < 2 and "\\" not in token and "$" not in token:
        return token
    out: list[str] = []
    index = 0
    length = len(token)
    while index < length:
        char = token[index]
        if char in _SHELL_QUOTES and quotes >= 2:
            index += 1
            continue
        if char == "\\" and index + 1 < length and token[index + 1].isalnum():
            index += 1
            continue
        if char == "$" and index + 1 < length:
            following = token[index + 1]
            if following in "@*" or following.isdigit():
                index += 2
                continue
            if following == "{":
                end = token.find("}", index + 2, index + 40)
                if end != -1:
                    name = token[index + 2 : end]
                    out.append(" " if name.upper() == "IFS" else "")
                    index = end + 1
                    continue
            if following.isalpha() or following == "_":
                # An unset variable expands to nothing: c$u\at is cat.
                end = index + 1
                while end < length and (token[end].isalnum() or token[end] == "_"):
                    end += 1
                name = token[index + 1 : end]
                if name.upper() == "IFS":
                    out.append(" ")
                elif index > 0 and token[index - 1].isalpha():
                    pass
                else:
                    out.append(token[index:end])
                index = end
                continue
        out.append(char)
        index += 1
    return "".join(out)


def shell_unquote(text: str) -> str:
    """Undo the quoting tricks that split command names: ``wh'o'ami``, ``c\\at``,
    ``c$@at``, ``/bin/ca\"t\"``, ``cat${IFS}/etc/passwd``. Tokens with fewer than two quotes
    and no backslash or ``$`` are kept as they are (``don't`` stays)."""
    if "'" not in text and '"' not in text and "\\" not in text and "$" not in text:
        return text
    return " ".join(_shell_token(token) for token in text.split(" "))


def _decode_numeric_entity(text: str, start: int) -> tuple[str, int] | None:
    """Decode ``&#NNN;`` / ``&#xHH;`` at ``start`` (pointing at ``#``); return (char, end)."""
    index = start + 1
    base = 10
    if index < len(text) and text[index] in "xX":
        base = 16
        index += 1
    digits_start = index
    allowed = _HEX if base == 16 else frozenset("0123456789")
    while index < len(text) and text[index] in allowed and index - digits_start < 40:
        index += 1
    digits = text[digits_start:index].lstrip("0") or "0"
    if index == digits_start or len(digits) > 7:
        return None
    code_point = int(digits, base)
    if index < len(text) and text[index] == ";":
        index += 1
    if code_point > 0x10FFFF or 0xD800 <= code_point <= 0xDFFF:
        return ("\ufffd", index)
    return (chr(code_point), index)


def html_decode(text: str) -> str:
    """Decode HTML character references, also without the closing ``;`` as browsers do."""
    if "&" not in text:
        return text
    pieces: list[str] = []
    position = 0
    while True:
        amp = text.find("&", position)
        if amp < 0:
            pieces.append(text[position:])
            break
        pieces.append(text[position:amp])
        if amp + 1 < len(text) and text[amp + 1] == "#":
            decoded = _decode_numeric_entity(text, amp + 1)
            if decoded is not None:
                pieces.append(decoded[0])
                position = decoded[1]
                continue
        else:
            end = amp + 1
            while end < len(text) and end - amp <= _MAX_ENTITY_NAME and text[end].isalnum():
                end += 1
            name = text[amp + 1 : end]
            if end < len(text) and text[end] == ";" and name + ";" in _HTML5_ENTITIES:
                pieces.append(_HTML5_ENTITIES[name + ";"])
                position = end + 1
                continue
            # Longest legacy entity without ';' (e.g. "&lt" or "&ampx"), as HTML5 allows.
            matched = False
            for cut in range(min(len(name), 6), 1, -1):
                candidate = name[:cut]
                if candidate in _HTML5_ENTITIES:
                    pieces.append(_HTML5_ENTITIES[candidate])
                    position = amp + 1 + cut
                    matched = True
                    break
            if matched:
                continue
        pieces.append("&")
        position = amp + 1
    return "".join(pieces)


def _escape_at(text: str, index: int) -> tuple[str, int] | None:
    """Decode the escape whose backslash is at ``index``: (text, end) or None."""
    kind = text[index + 1 : index + 2]
    if kind in ("x", "X"):
        value = _hex_value(text[index + 2 : index + 4])
        if value is not None and index + 4 <= len(text):
            return (chr(value), index + 4)
    elif kind == "u" and text[index + 2 : index + 3] == "{":
        close = text.find("}", index + 3, index + 12)
        value = _hex_value(text[index + 3 : close]) if close > index + 3 else None
        if value is not None and value <= 0x10FFFF and not 0xD800 <= value <= 0xDFFF:
            return (chr(value), close + 1)
    elif kind == "u":
        value = _hex_value(text[index + 2 : index + 6])
        if value is not None and index + 6 <= len(text):
            return ("\ufffd" if 0xD800 <= value <= 0xDFFF else chr(value), index + 6)
    elif kind in _SIMPLE_ESCAPES:
        return (_SIMPLE_ESCAPES[kind], index + 2)
    elif kind == "\\":
        return ("\\", index + 2)
    return None


def backslash_decode(text: str) -> str:
    """Decode ``\\xHH``, ``\\uHHHH``, ``\\u{H..}``, ``\\n``-style and ``\\\\`` escapes."""
    if "\\" not in text:
        return text
    pieces: list[str] = []
    position = 0
    while True:
        slash = text.find("\\", position)
        if slash < 0:
            pieces.append(text[position:])
            break
        pieces.append(text[position:slash])
        decoded = _escape_at(text, slash)
        if decoded is None:
            pieces.append("\\")
            position = slash + 1
        else:
            pieces.append(decoded[0])
            position = decoded[1]
    return "".join(pieces)


# Quotes that "best fit" conversions (Windows code pages, some database collations) turn
# into ASCII quotes: a filter that only looks for an ASCII quote misses them.
_QUOTE_FOLD = str.maketrans(
    {
        "\u2018": "'",
        "\u2019": "'",
        "\u201a": "'",
        "\u201b": "'",
        "\u2032": "'",
        "\u00b4": "'",
        "\u02bc": "'",
        "\u201c": '"',
        "\u201d": '"',
        "\u201e": '"',
        "\u201f": '"',
        "\u2033": '"',
    }
)


def unicode_fold(text: str) -> str:
    """NFKC and case folding: full-width and look-alike letters become their ASCII forms,
    typographic quotes become ASCII quotes."""
    if text.isascii():
        return text
    return unicodedata.normalize("NFKC", text).translate(_QUOTE_FOLD).casefold()


# SQL words that sqlmap's space2plus (and any double-decoding backend) joins with '+'.
PLUS_JOINED_WORDS = (
    "and", "or", "xor", "not", "like", "rlike", "select", "union", "from", "where",
    "waitfor", "delay", "declare", "exec", "execute", "sleep", "case", "when", "then",
    "else", "end", "having", "order", "group", "insert", "update", "delete", "drop", "set",
)  # fmt: skip
_PLUS_JOINED = tuple(f"+{word}+" for word in PLUS_JOINED_WORDS)


def plus_spaces(text: str) -> str:
    """``'+AND+1+LIKE+1`` read as a form decoder reads it: '+' as a space, but only when
    the value joins SQL words with '+' (a backend that decodes the query string twice
    sees the spaces; ``C++`` and base64 are left alone)."""
    if "+" not in text:
        return text
    lowered = text.lower()
    if any(joined in lowered for joined in _PLUS_JOINED):
        return text.replace("+", " ")
    return text


def _line_comments(text: str, marker: str) -> str:
    """``--x\n`` (or ``#x\n``) -> one space: a line comment that ends before the value
    does is whitespace to the database (sqlmap's space2dash, space2mysqldash)."""
    pieces: list[str] = []
    position = 0
    while True:
        start = text.find(marker, position)
        if start < 0:
            break
        newline = text.find("\n", start + len(marker))
        if newline < 0:
            break
        pieces.append(text[position:start])
        pieces.append(" ")
        position = newline + 1
    if not pieces:
        return text
    pieces.append(text[position:])
    return "".join(pieces)


def sql_compact(text: str) -> str:
    """Replace SQL comments and whitespace alternatives by one space.

    ``/*...*/`` becomes a space; the MySQL executable comment ``/*!50000 select*/`` keeps
    its content, since MySQL runs it. Line comments (``--``, ``#``) that end at a newline
    inside the value are a space too.
    """
    if "\n" in text:
        if "--" in text:
            text = _line_comments(text, "--")
        if "#" in text:
            text = _line_comments(text, "#")
    if "/*" in text:
        pieces: list[str] = []
        position = 0
        while True:
            open_at = text.find("/*", position)
            if open_at < 0:
                pieces.append(text[position:])
                break
            pieces.append(text[position:open_at])
            close_at = text.find("*/", open_at + 2)
            body_end = len(text) if close_at < 0 else close_at
            if text.startswith("/*!", open_at):
                body_start = open_at + 3
                while body_start < body_end and text[body_start].isdigit():
                    body_start += 1
                pieces.append(" " + text[body_start:body_end] + " ")
            else:
                pieces.append(" ")
            if close_at < 0:
                break
            position = close_at + 2
        text = "".join(pieces)
    if not _ODD_SPACE_SET.isdisjoint(text):
        text = text.translate(_ODD_SPACE_TABLE)
    return text


def _is_readable(text: str) -> bool:
    """True when decoded bytes look like text a person or parser would read."""
    if not text:
        return False
    printable = sum(1 for char in text if char.isprintable() or char in "\t\r\n")
    return printable * 10 >= len(text) * 9


def base64_text(text: str) -> str | None:
    """Decode a value that is entirely base64 (standard or URL-safe) into readable text."""
    stripped = text.strip()
    if not _MIN_BASE64 <= len(stripped) <= _MAX_BASE64:
        return None
    alphabet = _BASE64_STD if _BASE64_STD.issuperset(stripped) else None
    if alphabet is None and _BASE64_URL.issuperset(stripped):
        stripped = stripped.replace("-", "+").replace("_", "/")
        alphabet = _BASE64_URL
    if alphabet is None:
        return None
    body = stripped.rstrip("=")
    if "=" in body or len(body) % 4 == 1:
        return None
    # Purely numeric runs are numbers. (Purely alphabetic runs can be base64 of text:
    # "YWxlcnQuYXBwbHkobnVsbCwgWzFdKQ" is; words decode to bytes that are not UTF-8.)
    if body.isdigit():
        return None
    try:
        decoded = binascii.a2b_base64(body + "=" * (-len(body) % 4), strict_mode=True)
        result = decoded.decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    return result if _is_readable(result) else None


def _json_strings(value: object, out: list[str], budget: int) -> None:
    if len(out) >= budget:
        return
    if isinstance(value, str):
        out.append(value)
    elif isinstance(value, dict):
        for key, item in value.items():
            out.append(str(key))
            _json_strings(item, out, budget)
    elif isinstance(value, list):
        for item in value:
            _json_strings(item, out, budget)


def jwt_texts(text: str) -> list[str] | None:
    """Strings inside a JWT's header and claims (the signature is not text)."""
    token = text.strip()
    if token[:7].lower() == "bearer ":
        token = token[7:].strip()
    if not token.startswith("eyJ") or token.count(".") != 2:
        return None
    strings: list[str] = []
    for segment in token.split(".")[:2]:
        decoded = base64_text(segment) if len(segment) >= _MIN_BASE64 else None
        if decoded is None:
            return None
        try:
            parsed = json.loads(decoded)
        except ValueError:
            strings.append(decoded)
            continue
        _json_strings(parsed, strings, 64)
    return strings


def log4j_resolve(text: str) -> str | None:
    """Evaluate Log4j lookups that only rewrite text, innermost first.

    ``${lower:J}``, ``${upper:n}``, ``${::-d}``, ``${env:X:-i}`` and their nesting are
    what attackers use to spell ``${jndi:`` without writing it; resolving them (in one
    linear pass with a stack) shows what Log4j would finally see.
    """
    if "${" not in text:
        return None
    stack: list[list[str]] = [[]]
    index = 0
    length = len(text)
    changed = False
    while index < length:
        if text.startswith("${", index) and len(stack) < 64:
            stack.append([])
            index += 2
            continue
        char = text[index]
        if char == "}" and len(stack) > 1:
            inner = "".join(stack.pop())
            resolved = _resolve_lookup(inner)
            if resolved is None:
                stack[-1].append("${" + inner + "}")
            else:
                stack[-1].append(resolved)
                changed = True
            index += 1
            continue
        stack[-1].append(char)
        index += 1
    while len(stack) > 1:
        inner = "".join(stack.pop())
        stack[-1].append("${" + inner)
    result = "".join(stack[0])
    return result if changed else None


def _resolve_lookup(inner: str) -> str | None:
    default_at = inner.find(":-")
    if default_at >= 0:
        return inner[default_at + 2 :]
    prefix, colon, rest = inner.partition(":")
    if not colon:
        return None
    prefix = prefix.strip().lower()
    if prefix == "lower":
        return rest.lower()
    if prefix == "upper":
        return rest.upper()
    if prefix in ("date", "base64") and rest:
        return rest.strip("'\"")
    return None


def variants(text: str) -> list[tuple[str, str]]:
    """The value and its decoded forms as (transform, text), first the value itself.

    Transforms are chained (``url+html``): each step works on the previous result and
    adds a variant only when it changes something. base64, JWT and Log4j lookups branch
    off the value and its URL-decoded form.
    """
    base = strip_nul(text)
    out: list[tuple[str, str]] = [("nul" if base is not text and base != text else "none", base)]
    seen = {base}

    def add(label: str, value: str) -> None:
        clean = strip_nul(value)
        if clean not in seen and len(out) < MAX_VARIANTS:
            seen.add(clean)
            out.append((label, clean))

    chain_labels: list[str] = []
    current = base
    for label, step in (
        ("url", url_decode),
        ("plus", plus_spaces),
        ("escape", backslash_decode),
        ("html", html_decode),
        ("unicode", unicode_fold),
        ("sqlcomment", sql_compact),
    ):
        result = step(current)
        if result != current:
            chain_labels.append(label)
            current = strip_nul(result)
            add("+".join(chain_labels), current)
        if label == "html" and chain_labels and chain_labels[-1] == "html" and "%" in current:
            # Entities that hid percent escapes (&#37;3C) need one more URL round.
            again = url_decode(current)
            if again != current:
                chain_labels.append("url")
                current = strip_nul(again)
                add("+".join(chain_labels), current)

    # Historical and generator-made spellings of '.', '/' and '\\' (IIS digits, 0x2e).
    if "%" in base and _has_naive_escape(base):
        lenient = url_decode(iis_decode(base))
        add("iis", lenient)
        spelled = hex_literal_decode(lenient)
        if spelled != lenient:
            add("iis+hexlit", spelled)
    elif "0x" in base or "0X" in base:
        spelled = hex_literal_decode(base)
        if spelled != base:
            add("hexlit", spelled)
            if "%" in spelled:
                add("hexlit+url", url_decode(spelled))

    # Control characters a client appends or slips between words (sqlmap ends boolean
    # pairs with one: "AND 1354=1354\x16") are whitespace to most SQL lexers.
    spaced = controls_to_space(current)
    if spaced is not current:
        add("control", spaced)

    # The shell reads the value as sent: "c\a\t" is cat to it, whatever C escapes say.
    for source in (current, base) if current is not base else (base,):
        unquoted = shell_unquote(source)
        if unquoted != source:
            add("shell", unquoted)

    decoded_sources = [base] if len(out) == 1 else [base, out[1][1]]
    for source in decoded_sources:
        decoded = base64_text(source)
        if decoded is not None:
            add("base64", decoded)
            for label, value in variants_simple(decoded):
                add("base64+" + label, value)
        parts = jwt_texts(source) if source.startswith(("eyJ", "Bearer ", "bearer ")) else None
        if parts:
            for part in parts:
                add("jwt", part)
    for _label, value in list(out):
        if "${" in value:
            resolved = log4j_resolve(value)
            if resolved is not None:
                add("log4j", resolved)
    return out


_CONTROLS = dict.fromkeys([*range(0x01, 0x09), *range(0x0E, 0x20), 0x7F], " ")


def controls_to_space(text: str) -> str:
    """C0 control characters (but tab, newline, carriage return, vertical tab and form
    feed, which the other transforms and rules know) and DEL as spaces; the same object
    when there are none."""
    if text.isprintable() or not any(ord(char) in _CONTROLS for char in text):
        return text
    return text.translate(_CONTROLS)


def variants_simple(text: str) -> list[tuple[str, str]]:
    """The URL/HTML decoded forms of an already-decoded value (one level, no base64)."""
    out: list[tuple[str, str]] = []
    url = url_decode(text)
    if url != text:
        out.append(("url", url))
    html = html_decode(url)
    if html != url:
        out.append(("html", html))
    compact = sql_compact(html)
    if compact != html:
        out.append(("sqlcomment", compact))
    return out
