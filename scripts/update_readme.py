"""Regenerate the README's configuration reference from the typed models.

Run `python scripts/update_readme.py`; `tests/unit/test_readme.py` fails when the README is
out of date, so a new config field cannot land undocumented.
"""

from __future__ import annotations

import sys
from pathlib import Path

from dijk.config.reference import render_reference

README = Path(__file__).resolve().parents[1] / "README.md"
START = "<!-- config-reference:start -->"
END = "<!-- config-reference:end -->"


def updated(text: str) -> str:
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{START}\n{render_reference()}\n{END}{tail}"


def main() -> int:
    text = README.read_text(encoding="utf-8")
    new = updated(text)
    if new != text:
        README.write_text(new, encoding="utf-8")
        print("README.md: configuration reference updated")
    return 0


if __name__ == "__main__":
    sys.exit(main())
