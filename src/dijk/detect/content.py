"""What kind of text a value is, and what that leaves to inspect.

A support ticket's markdown description that shows a failing query in a fenced block is
not SQL injection against the API that stores it: the block is text about code, stored
and rendered as text. Such a value gets the checks that make sense for its kind:

* ``prose`` (also the default for any value without a kind): every check;
* ``markdown``: every check on the prose, with fenced code blocks (```` ``` ```` or
  ``~~~``) and inline code spans (`` `…` ``) blanked out; the code itself only for what
  is dangerous wherever text goes (a Log4j lookup is expanded when the value is logged)
  and for the limits of inspection;
* ``code``: the value is source code (a snippet, a CI file, a stack trace): only those
  same checks;
* ``html``: markup from an editor: what a renderer or a template could execute (XSS,
  template injection, XXE, SSRF, Log4Shell...) but not SQL, shell, NoSQL, LDAP or path
  syntax that markup legitimately shows.

The kind never comes from the client: it is declared by the API's owner, in the OpenAPI
document (``x-dijk-content``, ``contentMediaType``, ``format``) or in the route's
``waf.content`` settings. Everything here is pure and linear in the value's length.
"""

from __future__ import annotations

from typing import Final

PROSE: Final = "prose"
MARKDOWN: Final = "markdown"
CODE: Final = "code"
HTML: Final = "html"
KINDS = (PROSE, MARKDOWN, CODE, HTML)

#: Categories inspected in code (a markdown block, or a value declared as code).
CODE_CATEGORIES = frozenset({"log4shell", "limits", "crlf"})
#: Categories markup shows legitimately (a CMS page quoting SQL or a shell command).
HTML_IGNORED = frozenset({"sqli", "cmdi", "nosql", "ldap", "path_traversal", "code_injection"})

_MEDIA_KINDS = {
    "text/markdown": MARKDOWN,
    "text/x-markdown": MARKDOWN,
    "text/html": HTML,
    "application/xhtml+xml": HTML,
    "text/plain": PROSE,
}
_CODE_MEDIA_PREFIXES = ("text/x-", "application/x-sh", "application/javascript")
_CODE_MEDIA = frozenset(
    {"text/javascript", "application/sql", "application/x-yaml", "text/yaml", "text/css"}
)
_FORMAT_KINDS = {"markdown": MARKDOWN, "html": HTML, "code": CODE, "prose": PROSE}


def kind_of_schema(
    extension: object, content_media_type: object, string_format: object
) -> str | None:
    """The content kind a string schema declares, most explicit hint first:
    ``x-dijk-content``, then ``contentMediaType``, then ``format``; None when none."""
    if isinstance(extension, str) and extension.lower() in KINDS:
        return extension.lower()
    if isinstance(content_media_type, str):
        media = content_media_type.split(";", 1)[0].strip().lower()
        if media in _MEDIA_KINDS:
            return _MEDIA_KINDS[media]
        if media in _CODE_MEDIA or media.startswith(_CODE_MEDIA_PREFIXES):
            return CODE
    if isinstance(string_format, str):
        return _FORMAT_KINDS.get(string_format.lower())
    return None


def split_markdown(text: str) -> tuple[str, str]:
    """(prose, code) of a markdown text: the prose keeps every character outside fenced
    blocks and inline code spans (code replaced by a space, so words on either side stay
    apart); the code parts are joined by newlines. An unclosed fence runs to the end, as
    renderers show it."""
    if "`" not in text and "~~~" not in text:
        return text, ""
    prose: list[str] = []
    code: list[str] = []
    fence = ""
    for line in text.split("\n"):
        stripped = line.lstrip(" ")
        if fence:
            if stripped.startswith(fence) and not stripped[len(fence) :].strip(fence[0] + " "):
                fence = ""
            else:
                code.append(line)
            prose.append("")
            continue
        if stripped.startswith(("```", "~~~")) and len(line) - len(stripped) < 4:
            marker = stripped[0]
            fence = marker * (len(stripped) - len(stripped.lstrip(marker)))
            prose.append("")
            continue
        prose.append(_split_spans(line, code) if "`" in line else line)
    return "\n".join(prose), "\n".join(code)


def _split_spans(line: str, code: list[str]) -> str:
    """Inline code spans of one line (a run of N backticks up to the next run of N)."""
    out: list[str] = []
    position = 0
    length = len(line)
    while position < length:
        start = line.find("`", position)
        if start < 0:
            out.append(line[position:])
            break
        run_end = start
        while run_end < length and line[run_end] == "`":
            run_end += 1
        ticks = line[start:run_end]
        close = line.find(ticks, run_end)
        while close >= 0 and close + len(ticks) < length and line[close + len(ticks)] == "`":
            close = line.find(ticks, close + len(ticks) + 1)
        if close < 0:
            out.append(line[position:])
            break
        out.append(line[position:start])
        out.append(" ")
        code.append(line[run_end:close])
        position = close + len(ticks)
    return "".join(out)


# -- undeclared free text -----------------------------------------------------------------
#
# Most APIs declare nothing, and their free-text fields (a ticket's description, a wiki
# page, a comment) carry manuals, changelogs and READMEs that show shell syntax the way
# documentation does: ``$(ARCH)``, ``|python|`` substitutions, ``.../dists/stable``,
# ``print(`...`)``. A value that reads as prose gets the rules that such text trips only
# at notice severity: on their own they no longer block, together with a real signal
# they still do, and every other rule keeps its full score. A value shaped to break out
# of its context (starting with a quote, separator or closing bracket; a quote followed
# by SQL; a closing tag; CR LF before a header line) keeps every rule at full severity.

#: Rules that documentation and prose trip; demoted to notice in prose without breakout.
PROSE_DEMOTED_RULES = frozenset(
    {
        "cmdi-command-substitution",
        "cmdi-chained-command",
        "cmdi-chained-word-command",
        "path-traversal-dotdot",
        "xss-alert-call",
        "ssti-expression",
        "crlf-header-injection",
        "sqli-boolean-subquery",
    }
)
#: Field names that say "free text" (the last key of the path, lower-case).
TEXT_FIELD_NAMES = frozenset(
    {
        "description",
        "comment",
        "comments",
        "body",
        "content",
        "message",
        "notes",
        "note",
        "text",
        "summary",
    }
)
_PROSE_MIN_CHARS = 200
_PROSE_MIN_CHARS_NAMED = 80
_PROSE_MIN_WORDS = 12
_PROSE_WORDY = 0.80
_PROSE_WORDY_NAMED = 0.75
_BREAKOUT_START = frozenset("'\"`;|&)]}<>$")
_SQL_CONTINUATIONS = ("or", "and", "union", "select", "having", "order", "group", "--", "#", "/*")


def text_field_name(field: str) -> bool:
    """True when the field's own name (``$.ticket.description``, ``notes[2]``) says it
    holds free text."""
    name = field.rsplit(".", 1)[-1].split("[", 1)[0].lower()
    return name in TEXT_FIELD_NAMES


def looks_like_prose(value: str, named: bool) -> bool:
    """Long, mostly letters and spaces, many words: a paragraph, not a payload. A field
    named as free text needs less of it."""
    length = len(value)
    if length < (_PROSE_MIN_CHARS_NAMED if named else _PROSE_MIN_CHARS):
        return False
    wordy = sum(1 for char in value if char.isalpha() or char == " ")
    if wordy < length * (_PROSE_WORDY_NAMED if named else _PROSE_WORDY):
        return False
    words = sum(1 for word in value.split() if len(word) > 1 and word[:1].isalpha())
    return words >= _PROSE_MIN_WORDS


def breaks_out(value: str) -> bool:
    """True when the value is shaped to escape the context it is placed in: it starts
    with a quote, separator or closing bracket, a quote is followed by an SQL
    continuation, a closing tag appears, or CR LF comes before a header line. Linear in
    the value's length."""
    stripped = value.lstrip()
    if stripped[:1] in _BREAKOUT_START:
        return True
    lowered = value.lower()
    if "</" in lowered:
        position = lowered.find("</")
        while position >= 0:
            if lowered[position + 2 : position + 3].isalpha():
                return True
            position = lowered.find("</", position + 2)
    if "\r\n" in value and _injects_header(value):
        return True
    for quote in ("'", '"'):
        position = lowered.find(quote)
        while position >= 0:
            rest = lowered[position + 1 : position + 40].lstrip(" )")
            for word in _SQL_CONTINUATIONS:
                if rest.startswith(word) and not rest[len(word) : len(word) + 1].isalpha():
                    return True
            if rest[:1] == ";":
                return True
            position = lowered.find(quote, position + 1)
    return False


def _injects_header(value: str) -> bool:
    """A CR LF followed by a header line (``Name: value``): text pasted with Windows line
    ends has CR LF too, but not before something shaped as an HTTP header."""
    position = value.find("\r\n")
    while position >= 0:
        line = value[position + 2 : position + 80]
        name, colon, _ = line.partition(":")
        if colon and name and all(char.isalnum() or char == "-" for char in name):
            return True
        position = value.find("\r\n", position + 2)
    return False


def prose_without_breakout(field: str, value: str) -> bool:
    """The value reads as prose (:func:`looks_like_prose`, helped by the field's name) and
    is not shaped to break out of its context (:func:`breaks_out`)."""
    return looks_like_prose(value, text_field_name(field)) and not breaks_out(value)
