"""Problems found while loading or compiling an OpenAPI document.

Each problem names the file, the line where it is known, the JSON pointer inside that file
and a message, so ``dijk config validate`` can print ``FILE:LINE: /json/pointer: message``
in the same shape as configuration errors.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

#: Most problems reported for one document; the rest are counted, not listed.
MAX_REPORTED = 20


@dataclass(frozen=True, slots=True)
class SpecIssue:
    file: str
    line: int | None
    pointer: str
    message: str

    def format(self) -> str:
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        return f"{where}: {self.pointer or '/'}: {self.message}"


class SpecError(Exception):
    """The document could not be loaded or compiled; ``issues`` says where and why."""

    def __init__(self, issues: Sequence[SpecIssue]) -> None:
        self.issues = list(issues)
        super().__init__("\n".join(issue.format() for issue in self.issues))


def escape_token(token: str | int) -> str:
    """One JSON pointer reference token (RFC 6901)."""
    return str(token).replace("~", "~0").replace("/", "~1")


def unescape_token(token: str) -> str:
    return token.replace("~1", "/").replace("~0", "~")


def pointer(parts: Sequence[str | int]) -> str:
    return "".join("/" + escape_token(part) for part in parts)


def split_pointer(text: str) -> list[str]:
    """Reference tokens of a JSON pointer ('' is the whole document)."""
    if not text:
        return []
    if not text.startswith("/"):
        raise ValueError(f"not a JSON pointer: {text!r}")
    return [unescape_token(token) for token in text[1:].split("/")]
