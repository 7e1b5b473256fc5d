"""XML bodies: XXE is refused by the parser itself, values become leaves.

The body is parsed with defusedxml, which refuses DOCTYPEs, entity declarations and
external references instead of processing them. A DOCTYPE is a finding on its own: an
API has no use for one, and every XXE and entity-expansion attack needs one. The one
exception is the DOCTYPE that standard formats carry by convention (an Apple property
list, SVG 1.1, XHTML 1.0): exactly their public and system identifiers, no internal
subset; such a document is parsed with its DOCTYPE allowed and entities still refused.
"""

from __future__ import annotations

from xml.etree.ElementTree import Element, ParseError

import defusedxml
import defusedxml.ElementTree as SafeElementTree

from dijk.detect.leaves import Collector
from dijk.detect.normalise import decode_utf8_lenient

MAX_XML_DEPTH = 256

# (public identifier, system identifier) of the DOCTYPEs standard formats carry.
STANDARD_DOCTYPES = frozenset(
    {
        (b"-//Apple//DTD PLIST 1.0//EN", b"http://www.apple.com/DTDs/PropertyList-1.0.dtd"),
        (
            b"-//Apple Computer//DTD PLIST 1.0//EN",
            b"http://www.apple.com/DTDs/PropertyList-1.0.dtd",
        ),
        (b"-//W3C//DTD SVG 1.1//EN", b"http://www.w3.org/Graphics/SVG/1.1/DTD/svg11.dtd"),
        (
            b"-//W3C//DTD XHTML 1.0 Strict//EN",
            b"http://www.w3.org/TR/xhtml1/DTD/xhtml1-strict.dtd",
        ),
        (
            b"-//W3C//DTD XHTML 1.0 Transitional//EN",
            b"http://www.w3.org/TR/xhtml1/DTD/xhtml1-transitional.dtd",
        ),
    }
)
_DOCTYPE = b"<!DOCTYPE"


def standard_doctype(body: bytes) -> bool:
    """Whether the document's only DOCTYPE is one of :data:`STANDARD_DOCTYPES`, written
    ``<!DOCTYPE name PUBLIC "public-id" "system-id">`` with no internal subset."""
    start = body.find(_DOCTYPE, 0, 4096)
    if start < 0 or body.find(_DOCTYPE, start + 1) >= 0 or b"<!ENTITY" in body:
        return False
    end = body.find(b">", start, start + 512)
    if end < 0:
        return False
    declaration = body[start + len(_DOCTYPE) : end]
    if b"[" in declaration:
        return False
    words = declaration.split(b'"')
    # name PUBLIC "public" "system": [' name PUBLIC ', public, ' ', system, '']
    if len(words) != 5 or words[2].strip() or words[4].strip():
        return False
    head = words[0].split()
    if len(head) != 2 or head[1] != b"PUBLIC":
        return False
    return (words[1], words[3]) in STANDARD_DOCTYPES


def _local_name(tag: str) -> str:
    return tag.rsplit("}", 1)[-1] if tag.startswith("{") else tag


# Encodings a gateway-side filter may not decode but some XML parsers do.
_EVASIVE_ENCODINGS = ("utf-7", "utf7", "utf-32", "ucs-4", "ebcdic", "cp037", "ibm037", "cp500")


def _declared_encoding(body: bytes) -> str:
    head = body[:200].decode("latin-1").lower()
    if not head.lstrip().startswith("<?xml"):
        return ""
    marker = head.find("encoding")
    if marker < 0:
        return ""
    rest = head[marker + 8 :].lstrip(" =\t")
    quote = rest[:1]
    return rest[1:].split(quote, 1)[0].strip() if quote in ("'", '"') else ""


def add_xml(collector: Collector, body: bytes, location: str = "xml") -> None:
    """Parse an XML body safely; record XXE findings and every text and attribute value."""
    encoding = _declared_encoding(body)
    if encoding.startswith(_EVASIVE_ENCODINGS):
        collector.hit("xxe-unusual-encoding", location, "/", encoding)
        try:
            decoded = body.decode("utf-7") if encoding.startswith("utf") else ""
        except UnicodeDecodeError:
            decoded = ""
        collector.add(location, "(document)", decoded or decode_utf8_lenient(body))
        return
    try:
        root = SafeElementTree.fromstring(
            body,
            forbid_dtd=not standard_doctype(body),
            forbid_entities=True,
            forbid_external=True,
        )
    except LookupError:
        # An encoding this parser does not know (``UTF-4``, a typo or a bet that some
        # parser behind us knows it): unreadable here, so flagged and scanned as raw text.
        collector.hit("xxe-unusual-encoding", location, "/", encoding)
        collector.add(location, "(document)", decode_utf8_lenient(body))
        return
    except defusedxml.DefusedXmlException as error:
        rule = "xxe-doctype" if isinstance(error, defusedxml.DTDForbidden) else "xxe-entity"
        collector.hit(rule, location, "/", type(error).__name__)
        # Keep inspecting the raw text so that the declarations' content is reported too.
        collector.add(location, "(document)", decode_utf8_lenient(body))
        return
    except (ParseError, ValueError, UnicodeError):
        collector.hit("xxe-malformed", location, "/", "")
        collector.add(location, "(document)", decode_utf8_lenient(body))
        return
    _walk(collector, root, location)


_XINCLUDE_NAMESPACES = ("http://www.w3.org/2001/XInclude", "http://www.w3.org/2003/XInclude")
_SCHEMA_NAMESPACE = "http://www.w3.org/2001/XMLSchema"
_SCHEMA_INSTANCE = "{http://www.w3.org/2001/XMLSchema-instance}"
_SCHEMA_REFERENCES = ("include", "import", "redefine", "override")


def _namespace(tag: str) -> str:
    return tag[1:].split("}", 1)[0] if tag.startswith("{") else ""


def _check_element(collector: Collector, element: Element, path: str, location: str) -> None:
    """Structure that makes an XML processor fetch other documents: XInclude, schema
    includes and imports, and schema locations pointing elsewhere."""
    name = _local_name(element.tag)
    namespace = _namespace(element.tag)
    if name == "include" and namespace in _XINCLUDE_NAMESPACES:
        collector.hit("xxe-xinclude", location, path, "xi:include")
    elif name in _SCHEMA_REFERENCES and namespace == _SCHEMA_NAMESPACE:
        collector.hit("xxe-xinclude", location, path, f"xs:{name}")
    for attribute, value in element.attrib.items():
        if attribute.startswith(_SCHEMA_INSTANCE) and "://" in value:
            collector.hit("xxe-schema-location", location, path, value[:40])


def _walk(collector: Collector, root: Element, location: str) -> None:
    stack: list[tuple[Element, str, int]] = [(root, "/" + _local_name(root.tag), 0)]
    while stack:
        element, path, depth = stack.pop()
        name = _local_name(element.tag)
        if not name.replace("_", "").replace("-", "").replace(".", "").isalnum():
            collector.add(location + "_name", path, name)
        if element.tag.startswith("{") or element.attrib:
            _check_element(collector, element, path, location)
        for attribute, value in element.attrib.items():
            attribute_path = f"{path}/@{_local_name(attribute)}"
            collector.add(location, attribute_path, value)
        if element.text and element.text.strip():
            collector.add(location, path, element.text)
        if element.tail and element.tail.strip():
            collector.add(location, path + "/following-text()", element.tail)
        if depth >= MAX_XML_DEPTH:
            collector.hit("limits-too-deep", location, path, "")
            continue
        children = list(element)
        for index in range(len(children) - 1, -1, -1):
            child = children[index]
            stack.append((child, f"{path}/{_local_name(child.tag)}", depth + 1))
