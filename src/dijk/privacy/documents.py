"""The privacy reports as documents a person can hand on: HTML and PDF.

The Art. 30 register and the breach report are rendered from the same dictionaries as
their JSON forms (``Register.as_dict``, ``BreachReport.as_dict``), with Jinja2 templates
(autoescaped: endpoint paths, consumer names and field paths come from traffic) and a
bar chart drawn as SVG, so the HTML needs no script and the PDF (WeasyPrint) looks the
same. The standalone HTML carries its own stylesheet; the dashboard shows the same body
inside its pages (``body_html``), under its Content-Security-Policy.
"""

from __future__ import annotations

from datetime import UTC, datetime
from functools import cache
from typing import Any, Final

import jinja2
import markupsafe

__all__ = ["REPORT_KINDS", "body_html", "document_html", "document_pdf"]

REPORT_KINDS: Final = ("register", "breach")
_BAR_WIDTH: Final = 320


@cache
def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("dijk.privacy", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def _bars(items: dict[str, tuple[int, int]]) -> list[dict[str, Any]]:
    """Rows of a two-part bar chart (total, of which masked) with widths in pixels."""
    top = max((total for total, _ in items.values()), default=0) or 1
    return [
        {
            "label": label,
            "total": total,
            "masked": masked,
            "width": max(1, round(_BAR_WIDTH * total / top)) if total else 0,
            "masked_width": round(_BAR_WIDTH * masked / top),
        }
        for label, (total, masked) in items.items()
    ]


def _chart(kind: str, data: dict[str, Any]) -> list[dict[str, Any]]:
    if kind == "breach":
        categories = data["totals"]["categories"]
        return _bars({name: (v["values"], v["masked"]) for name, v in categories.items()})
    counts: dict[str, list[int]] = {}
    for item in data["processing"]:
        for use in item["fields"]:
            entry = counts.setdefault(use["category"], [0, 0])
            entry[0] += int(use.get("occurrences") or 0)
            entry[1] += int(use.get("masked") or 0)
    return _bars({name: (total, masked) for name, (total, masked) in sorted(counts.items())})


def _context(
    kind: str, data: dict[str, Any], organisation: str, generated: datetime | None
) -> dict[str, Any]:
    if kind not in REPORT_KINDS:
        raise ValueError(f"unknown report {kind!r}; use one of {', '.join(REPORT_KINDS)}")
    moment = (generated or datetime.now(UTC)).astimezone(UTC)
    return {
        "kind": kind,
        "data": data,
        "organisation": organisation.strip() or "(organisation not set)",
        "generated": moment.strftime("%Y-%m-%d %H:%M:%S UTC"),
        "chart": _chart(kind, data),
        "bar_width": _BAR_WIDTH,
    }


def body_html(
    kind: str, data: dict[str, Any], organisation: str, generated: datetime | None = None
) -> str:
    """The report's body (no ``<html>``, no style): for embedding in a page."""
    template = _environment().get_template(f"{kind}_body.html")
    return template.render(_context(kind, data, organisation, generated))


def document_html(
    kind: str, data: dict[str, Any], organisation: str, generated: datetime | None = None
) -> str:
    """A complete HTML document with its own stylesheet, fit to save or mail."""
    context = _context(kind, data, organisation, generated)
    # Markup: the body is the output of an autoescaping template, safe to insert as is.
    body = _environment().get_template(f"{kind}_body.html").render(context)
    context["body"] = markupsafe.Markup(body)  # noqa: S704
    return _environment().get_template("document.html").render(context)


def document_pdf(
    kind: str, data: dict[str, Any], organisation: str, generated: datetime | None = None
) -> bytes:
    """The report as PDF (WeasyPrint; needs the Pango libraries of the system)."""
    try:
        import weasyprint  # type: ignore[import-untyped]
    except OSError as exc:  # the Python package is there, the system libraries are not
        raise RuntimeError(
            f"PDF output needs the Pango libraries (Debian: libpango-1.0-0 libpangoft2-1.0-0):"
            f" {exc}"
        ) from None
    html = document_html(kind, data, organisation, generated)
    # No base URL and a fetcher that refuses everything: a report never loads anything.
    document = weasyprint.HTML(string=html, url_fetcher=_no_fetch)
    pdf: bytes = document.write_pdf()
    return pdf


def _no_fetch(url: str, *args: Any, **kwargs: Any) -> dict[str, Any]:
    raise ValueError(f"reports load no resources ({url[:60]!r})")
