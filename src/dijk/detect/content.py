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
