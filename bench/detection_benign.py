"""A benign corpus that is not easy: text people wrote, in the fields APIs store it in.

The benign sets of the detection benchmark (gotestwaf's false-positive list, OpenAPI
example values and descriptions) are short and tame. What a support desk, a wiki, a
code-snippet store or a CMS receives all day is longer and harder: manual pages full of
shell commands and options, changelogs quoting SQL, READMEs with code blocks, Dutch
translations with quotes and apostrophes. This module builds such requests, at bench
time, from text that is already on the machine (nothing is downloaded, nothing is
committed):

* manual pages (``/usr/share/man``, English and Dutch; the troff markup is stripped);
* the documentation Debian packages ship (``/usr/share/doc``: READMEs, NEWS, upstream
  changelogs, plain text and Markdown);
* the long descriptions of installed Python packages (``*.dist-info/METADATA``);
* Dutch and English user-interface messages (``/usr/share/locale/nl`` catalogues).

Paragraphs of that text go into the free-text fields of realistic JSON requests (a
support ticket, a wiki page, a comment, a code snippet, a CMS page), beside generated
Dutch names, addresses and IBANs. Everything is deterministic for a given machine
(fixed seed, sorted file lists). Each request also says which kind of text its fields
hold (``prose``, ``markdown``, ``code``, ``html``), so that the benchmark can measure it
once as undeclared free text and once with the kinds declared.

    .venv/bin/python bench/detection_benign.py --count 20   # print a few requests
"""

from __future__ import annotations

import argparse
import gettext
import gzip
import json
import random
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from dijk.demo.data import BANK_CODES, FIRST_NAMES, LAST_NAMES, iban_check_digits  # noqa: E402

SEED = 20261207
MAN_ROOT = Path("/usr/share/man")
DOC_ROOT = Path("/usr/share/doc")
LOCALE_ROOT = Path("/usr/share/locale/nl/LC_MESSAGES")
_MAN_SECTIONS = ("man1", "man5", "man7", "man8")
_MAN_NL_SECTIONS = ("nl/man1", "nl/man5", "nl/man8")
_DOC_NAMES = re.compile(r"(?i)^(readme|news|changelog(?!\.debian)|changes|faq|usage|howto)")
_DOC_SUFFIXES = (".md", ".txt", ".rst")
MIN_CHARS = 40
MAX_CHARS = 1800


@dataclass(frozen=True, slots=True)
class Passage:
    source: str  # man | man-nl | doc | pypi | messages-nl
    origin: str  # file it came from (for reading a false alarm back)
    text: str


@dataclass(frozen=True, slots=True)
class BenignRequest:
    source: str  # the passage's source
    shape: str  # ticket | wiki | comment | snippet | cms
    path: str
    body: dict[str, object]
    kinds: dict[str, str]  # JSON path -> content kind its owner would declare
    origin: str

    @property
    def text(self) -> str:
        """The request body as sent (what the split and the sample key on)."""
        return json.dumps(self.body, ensure_ascii=False, sort_keys=True)


# -- reading text that is on this machine -----------------------------------------------

_TROFF_ESCAPES = re.compile(r"\\f(?:\[[^\]]*\]|\(..|.)|\\s[-+]?\d|\\\*(?:\[[^\]]*\]|\(..|.)")
_TROFF_CHARS = {
    r"\-": "-",
    r"\(aq": "'",
    r"\(dq": '"',
    r"\(em": "--",
    r"\(en": "-",
    r"\(bu": "*",
    r"\(co": "(c)",
    r"\e": "\\",
    r"\&": "",
    r"\|": "",
    r"\ ": " ",
    r"\~": " ",
    r"\^": "",
    r"\c": "",
    r"\(lq": '"',
    r"\(rq": '"',
    r"\(oq": "'",
    r"\(cq": "'",
}


_BREAKS = frozenset(("PP", "P", "LP", "SH", "SS", "TP", "IP", "sp", "br", "RS", "RE", "EX"))


def troff_text(source: str) -> list[str]:
    """Paragraphs of a manual page's troff source, markup removed (what ``man`` shows,
    without its layout)."""
    paragraphs: list[str] = []
    current: list[str] = []
    for line in source.splitlines():
        if line.startswith((".", "'")):
            macro = line[1:].split(" ", 1)
            name = macro[0]
            if name in _BREAKS and current:
                paragraphs.append(" ".join(current))
                current = []
            if name in ("B", "I", "BI", "BR", "IR", "RB", "RI", "IB", "SM") and len(macro) > 1:
                current.append(macro[1].replace('"', ""))
            elif name in ("IP", "TP", "SH", "SS") and len(macro) > 1:
                current.append(macro[1].strip('"'))
            continue
        if line.startswith('.\\"') or line.startswith('\\"'):
            continue
        current.append(line)
    if current:
        paragraphs.append(" ".join(current))
    cleaned = []
    for paragraph in paragraphs:
        for escape, replacement in _TROFF_CHARS.items():
            paragraph = paragraph.replace(escape, replacement)
        paragraph = _TROFF_ESCAPES.sub("", paragraph)
        paragraph = re.sub(r"\s+", " ", paragraph).strip()
        if paragraph:
            cleaned.append(paragraph)
    return cleaned


def _read(path: Path) -> str:
    try:
        data = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    except (OSError, EOFError, gzip.BadGzipFile):
        return ""
    if b"\x00" in data[:4096]:
        return ""
    return data.decode("utf-8", "replace")


def plain_paragraphs(text: str) -> list[str]:
    """Paragraphs (blank-line separated) of a plain-text or Markdown document; fenced
    code stays inside its paragraph."""
    return [part.strip("\n") for part in re.split(r"\n\s*\n", text) if part.strip()]


def man_passages(
    rng: random.Random, pages: int, sections: tuple[str, ...] = _MAN_SECTIONS
) -> Iterator[Passage]:
    files: list[Path] = []
    for section in sections:
        directory = MAN_ROOT / section
        if directory.is_dir():
            files.extend(sorted(directory.iterdir()))
    rng.shuffle(files)
    for path in files[:pages]:
        source = "man-nl" if "/nl/" in str(path) else "man"
        for paragraph in troff_text(_read(path)):
            yield Passage(source, str(path), paragraph)


def doc_passages(rng: random.Random, files_wanted: int) -> Iterator[Passage]:
    files = [
        path
        for path in sorted(DOC_ROOT.rglob("*"))
        if path.is_file()
        and (_DOC_NAMES.match(path.name) or path.name.removesuffix(".gz").endswith(_DOC_SUFFIXES))
        and path.stat().st_size < 2_000_000
    ]
    rng.shuffle(files)
    for path in files[:files_wanted]:
        for paragraph in plain_paragraphs(_read(path))[:60]:
            yield Passage("doc", str(path), paragraph)


def pypi_passages() -> Iterator[Passage]:
    roots = {
        Path(entry) for entry in sys.path if entry.endswith(("site-packages", "dist-packages"))
    }
    roots.add(Path("/usr/lib/python3/dist-packages"))
    metadata = sorted(
        path for root in roots if root.is_dir() for path in root.glob("*.dist-info/METADATA")
    )
    for path in metadata:
        text = _read(path)
        _, _, description = text.partition("\n\n")
        for paragraph in plain_paragraphs(description)[:40]:
            yield Passage("pypi", str(path), paragraph)


def message_passages() -> Iterator[Passage]:
    if not LOCALE_ROOT.is_dir():
        return
    for path in sorted(LOCALE_ROOT.glob("*.mo")):
        try:
            with path.open("rb") as handle:
                catalog = gettext.GNUTranslations(handle)
        except (OSError, UnicodeDecodeError, ValueError):  # unreadable catalogue: skipped
            continue
        for original, translated in sorted(catalog._catalog.items(), key=str):  # type: ignore[attr-defined]
            if isinstance(original, tuple):
                continue
            for text in (original, translated):
                if isinstance(text, str) and len(text) >= MIN_CHARS and "\x00" not in text:
                    yield Passage("messages-nl", str(path), text.strip())


def passages(rng: random.Random, scale: int = 1) -> list[Passage]:
    """Every passage of readable length from the sources, in a fixed order."""
    found = [
        *man_passages(rng, 250 * scale),
        *man_passages(rng, 100 * scale, _MAN_NL_SECTIONS),
        *doc_passages(rng, 150 * scale),
        *pypi_passages(),
        *message_passages(),
    ]
    return [passage for passage in found if MIN_CHARS <= len(passage.text) <= MAX_CHARS]


# -- generated people, addresses, IBANs ---------------------------------------------------

# The demo bank's names, plus the apostrophes real Dutch and Irish names carry.
_FIRST = FIRST_NAMES
_LAST = (*LAST_NAMES, "El Amrani", "Yilmaz", "O'Neill", "van 't Hof", "d'Ancona")
_STREETS = ("Kerkstraat", "Dorpsstraat", "Stationsweg", "Molenweg", "Prinsengracht",
            "Oudegracht", "Julianalaan", "Beatrixstraat", "Hoofdweg", "Schoolstraat")  # fmt: skip
_CITIES = ("Amsterdam", "Utrecht", "Rotterdam", "Den Haag", "Groningen", "Zwolle",
           "'s-Hertogenbosch", "Eindhoven", "Leeuwarden", "Maastricht")  # fmt: skip


def iban(rng: random.Random) -> str:
    """A Dutch IBAN with a valid check number (ISO 13616 mod 97)."""
    bban = f"{rng.choice(BANK_CODES)}{rng.randrange(10**10):010d}"
    return f"NL{iban_check_digits('NL', bban)}{bban}"


def person(rng: random.Random) -> dict[str, object]:
    first, last = rng.choice(_FIRST), rng.choice(_LAST)
    return {
        "name": f"{first} {last}",
        "email": f"{first.lower()}.{last.lower().replace(' ', '').replace(chr(39), '')}@example.nl",
        "address": {
            "street": f"{rng.choice(_STREETS)} {rng.randrange(1, 240)}",
            "postcode": f"{rng.randrange(1000, 9999)} {rng.choice('ABCDEFGHJKLMNPRSTVWXZ')}"
            f"{rng.choice('ABCDEFGHJKLMNPRSTVWXZ')}",
            "city": rng.choice(_CITIES),
        },
        "iban": iban(rng),
    }


# -- the requests ------------------------------------------------------------------------


def _title(text: str) -> str:
    words = re.sub(r"\s+", " ", text).split(" ")
    return " ".join(words[:9])[:80]


def _html(text: str) -> str:
    escaped = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    paragraphs = plain_paragraphs(escaped) or [escaped]
    return "".join(f"<p>{part}</p>" for part in paragraphs)


def build(passage: Passage, rng: random.Random, extra: Passage | None) -> BenignRequest:
    """One request with ``passage`` (and maybe a second one) in its free-text fields."""
    shape = rng.choice(("ticket", "wiki", "comment", "snippet", "cms"))
    text = passage.text if extra is None else passage.text + "\n\n" + extra.text
    who = person(rng)
    if shape == "ticket":
        body: dict[str, object] = {
            "subject": _title(passage.text),
            "description": text,
            "priority": rng.choice(("low", "normal", "high")),
            "customer": who,
        }
        kinds = {"$.subject": "prose", "$.description": "markdown"}
        path = "/api/v1/tickets"
    elif shape == "wiki":
        body = {
            "title": _title(passage.text),
            "body": text,
            "summary": passage.text[:200],
            "author": who["name"],
            "tags": ["docs", passage.source],
        }
        kinds = {"$.title": "prose", "$.body": "markdown", "$.summary": "prose"}
        path = "/api/v1/wiki/pages"
    elif shape == "comment":
        body = {
            "thread_id": rng.randrange(1, 10**6),
            "comment": {"author": who, "text": passage.text},
            "notes": extra.text if extra is not None else "",
        }
        kinds = {"$.comment.text": "prose", "$.notes": "prose"}
        path = "/api/v1/comments"
    elif shape == "snippet":
        body = {
            "title": _title(passage.text),
            "language": rng.choice(("shell", "text", "sql", "python", "yaml")),
            "content": text,
            "owner": {"name": who["name"], "iban": who["iban"]},
        }
        kinds = {"$.title": "prose", "$.content": "code"}
        path = "/api/v1/snippets"
    else:
        body = {
            "page": {"slug": f"page-{rng.randrange(10**5)}", "title": _title(passage.text)},
            "content": _html(text),
            "message": passage.text[:300],
            "contact": who,
        }
        kinds = {"$.page.title": "prose", "$.content": "html", "$.message": "prose"}
        path = "/api/v1/cms/pages"
    return BenignRequest(passage.source, shape, path, body, kinds, passage.origin)


def hard_benign(count: int, seed: int = SEED) -> list[BenignRequest]:
    """``count`` requests (fewer when the machine has less text), deterministic per
    machine: the same files give the same requests. Sources take turns, so that the
    thousands of short translated messages do not crowd out manual pages and READMEs."""
    rng = random.Random(seed)
    by_source: dict[str, list[Passage]] = {}
    for passage in passages(rng, scale=max(1, count // 2000)):
        by_source.setdefault(passage.source, []).append(passage)
    queues = []
    for source in sorted(by_source):
        group = by_source[source]
        rng.shuffle(group)
        queues.append(group)
    found: list[Passage] = []
    while len(found) < count and any(queues):
        for queue in queues:
            if queue and len(found) < count:
                found.append(queue.pop())
    requests = []
    for index, passage in enumerate(found):
        extra = found[(index * 7 + 3) % len(found)] if rng.random() < 0.3 else None
        requests.append(build(passage, rng, extra))
    return requests


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=10)
    args = parser.parse_args(argv)
    requests = hard_benign(args.count)
    by_source: dict[str, int] = {}
    for request in requests:
        by_source[request.source] = by_source.get(request.source, 0) + 1
        print(request.path, request.text[:300])
    print(json.dumps(by_source, sort_keys=True), file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
