"""A round-trip XML engine for libvirt-style documents (pure Python, no kernel access).

:class:`Tree` parses untrusted text with defusedxml (a DTD, an entity declaration or an external
reference is refused; nesting deeper than :data:`MAX_DEPTH` too) and keeps what ElementTree
forgets: line numbers for error messages, comments and processing instructions (also before and
after the root element), namespace prefixes as declared, the XML declaration. :meth:`Tree.to_string`
writes the document back as it was read, with attribute values in single quotes as libvirt writes
them; :func:`serialize` writes a freshly built element the same way.

The helpers below check elements and read attributes; every problem is an
:class:`~pyvfmac.errors.XmlError` whose message names the source, the line, the element with its
attributes (:func:`describe`) and the bad value. :func:`insert_child` / :func:`remove_child`
edit a tree keeping its indentation.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable
from typing import Any

import defusedxml  # type: ignore[import-untyped,unused-ignore]
import defusedxml.ElementTree as _DET  # type: ignore[import-untyped,unused-ignore]

from .errors import InputError, XmlError
from .types import PciAddress, validate_netdev_name

MAX_DEPTH = 256
"""Element nesting refused beyond this depth (libvirt documents stay below 10)."""

MAX_SIZE = 16 << 20
"""Documents longer than this (characters or bytes) are refused: memory stays bounded."""

PCI_COORDS = ("domain", "bus", "slot", "function")
"""The attributes of an ``<address>`` that carry a PCI address."""


# --------------------------------------------------------------------------------------------
# Parsing: a tree that remembers what ElementTree forgets
# --------------------------------------------------------------------------------------------

# compiled by re on first use, not at import
_DECL_RE = r"\A\ufeff?(<\?xml\s[^>]*\?>)"
_DECL_ENC_RE = r"""encoding\s*=\s*(['"])([^'"]*)\1"""


class _Builder:
    """Parser target: an ElementTree with line numbers, namespace declarations (prefixes kept),
    comments and processing instructions (also before and after the root element)."""

    def __init__(self) -> None:
        self.root: ET.Element | None = None
        self.prolog: list[ET.Element] = []
        self.epilog: list[ET.Element] = []
        self.nsdecls: dict[ET.Element, list[tuple[str, str]]] = {}
        self.lines: dict[ET.Element, int] = {}
        self.line_of: Callable[[], int] = lambda: 0
        self._stack: list[ET.Element] = []
        self._pending_ns: list[tuple[str, str]] = []
        self._data: list[str] = []
        self._last: ET.Element | None = None
        self._tail = False

    def _flush(self) -> None:
        if not self._data:
            return
        text = "".join(self._data)
        self._data = []
        if not self._stack or self._last is None:
            return  # whitespace around the root element: the writer puts its own newlines
        if self._tail:
            self._last.tail = (self._last.tail or "") + text
        else:
            self._last.text = (self._last.text or "") + text

    def start(self, tag: str, attrs: dict[str, str]) -> ET.Element:
        self._flush()
        if len(self._stack) >= MAX_DEPTH:
            line = self.line_of()
            raise XmlError(f"elements nested deeper than {MAX_DEPTH} levels at line {line}")
        if self._stack:
            elem = ET.SubElement(self._stack[-1], tag, attrs)
        else:
            elem = ET.Element(tag, attrs)
            self.root = elem
        self.lines[elem] = self.line_of()
        if self._pending_ns:
            self.nsdecls[elem] = self._pending_ns
            self._pending_ns = []
        self._stack.append(elem)
        self._last, self._tail = elem, False
        return elem

    def end(self, tag: str) -> ET.Element:
        self._flush()
        self._last, self._tail = self._stack.pop(), True
        return self._last

    def data(self, text: str) -> None:
        self._data.append(text)

    def start_ns(self, prefix: str, uri: str) -> None:
        self._pending_ns.append((prefix, uri))

    def comment(self, text: str) -> None:
        self._single(ET.Comment(text))

    def pi(self, target: str, text: str | None) -> None:
        self._single(ET.ProcessingInstruction(target, text))

    def _single(self, node: Any) -> None:
        self._flush()
        if not self._stack:
            (self.prolog if self.root is None else self.epilog).append(node)
            return
        self._stack[-1].append(node)
        self._last, self._tail = node, True

    def close(self) -> ET.Element | None:
        return self.root


class Tree:
    """A parsed document and what it needs to be written back as it was."""

    def __init__(self, data: str | bytes, source: str) -> None:
        self.source = source
        if not isinstance(data, (str, bytes)):
            raise XmlError(f"{source}: expected XML text (str or bytes), got {type(data).__name__}")
        if len(data) > MAX_SIZE:
            raise XmlError(f"{source}: larger than {MAX_SIZE >> 20} MiB: not a document pyvfmac "
                           "reads")
        builder = _Builder()
        parser = _DET.DefusedXMLParser(
            target=builder, forbid_dtd=True, forbid_entities=True, forbid_external=True
        )
        expat = parser.parser
        builder.line_of = lambda: int(expat.CurrentLineNumber)
        try:
            parser.feed(data)
            parser.close()
        except defusedxml.DTDForbidden as exc:
            raise XmlError(
                f"{source}: refused: a document type declaration (<!DOCTYPE {exc.name}>) is not "
                "accepted (no DTDs, no entities)"
            ) from None
        except defusedxml.EntitiesForbidden as exc:
            raise XmlError(
                f"{source}: refused: entity declaration {exc.name!r} (entities are not accepted)"
            ) from None
        except defusedxml.ExternalReferenceForbidden as exc:
            raise XmlError(
                f"{source}: refused: external reference {exc.sysid!r} (not accepted)"
            ) from None
        except ET.ParseError as exc:
            raise XmlError(f"{source}: malformed XML: {exc}") from None
        except XmlError as exc:
            raise XmlError(f"{source}: {exc}") from None
        except (ValueError, LookupError) as exc:  # e.g. an unknown encoding name
            raise XmlError(f"{source}: malformed XML: {exc}") from None
        if builder.root is None:
            raise XmlError(f"{source}: malformed XML: no root element")
        self.root: ET.Element = builder.root
        self.prolog, self.epilog = builder.prolog, builder.epilog
        self.nsdecls, self.lines = builder.nsdecls, builder.lines
        self.decl = _declaration(data)

    # -- messages ------------------------------------------------------------------------

    def at(self, elem: ET.Element) -> str:
        line = self.lines.get(elem)
        return f"{self.source}:{line}" if line else self.source

    def error(self, elem: ET.Element, problem: str, context: str = "") -> XmlError:
        ctx = f" ({context})" if context else ""
        return XmlError(f"{self.at(elem)}: {describe(elem)}{ctx}: {problem}")

    def parent_map(self) -> dict[ET.Element, ET.Element]:
        return {child: parent for parent in self.root.iter() for child in parent}

    # -- output --------------------------------------------------------------------------

    def to_string(self) -> str:
        out: list[str] = []
        if self.decl:
            out.append(self.decl + "\n")
        for node in self.prolog:
            _write(out, node, {}, self.nsdecls)
            out.append("\n")
        _write(out, self.root, {"xml": _XML_NS}, self.nsdecls)
        for node in self.epilog:
            out.append("\n")
            _write(out, node, {}, self.nsdecls)
        out.append("\n")
        return "".join(out)


def _declaration(data: str | bytes) -> str | None:
    if isinstance(data, bytes):
        m = re.match(rb"\A(?:\xef\xbb\xbf)?(<\?xml\s[^>]*\?>)", data)
        decl = m.group(1).decode("latin-1") if m else None
    else:
        ms = re.match(_DECL_RE, data)
        decl = ms.group(1) if ms else None
    if decl is None:
        return None
    enc = re.search(_DECL_ENC_RE, decl)
    if enc and enc.group(2).lower().replace("_", "-") not in ("utf-8", "utf8"):
        # The text pyvfmac writes is UTF-8: say so instead of the input's encoding.
        decl = decl[: enc.start(2)] + "UTF-8" + decl[enc.end(2) :]
    return decl


def describe(elem: ET.Element, limit: int = 60) -> str:
    """``<tag id='5000'>``: the element's start tag as a user would recognise it."""
    attrs = "".join(f" {_local(k)}='{short(v, limit)}'" for k, v in elem.attrib.items())
    return f"<{_local(elem.tag)}{attrs}>"


def short(text: str, limit: int = 60) -> str:
    clean = "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in text)
    return clean if len(clean) <= limit else clean[: limit - 3] + "..."


def _local(tag: object) -> str:
    text = str(tag)
    return text.rsplit("}", 1)[-1] if text.startswith("{") else text


# --------------------------------------------------------------------------------------------
# Serialization (ElementTree's own writer renames namespace prefixes to ns0:, ns1:, ...)
# --------------------------------------------------------------------------------------------

_XML_NS = "http://www.w3.org/XML/1998/namespace"
_ESCAPES = {"&": "&amp;", "<": "&lt;", ">": "&gt;", "'": "&apos;"}
# libvirt escapes quotes in text too (virBufferEscapeString): write its documents unchanged.
# A CR is kept as a character reference: written raw, a parser reads it back as a LF.
_TEXT_ESCAPES = str.maketrans({**_ESCAPES, '"': "&quot;", "\r": "&#13;"})
# Values are in single quotes; other whitespace than a space is kept as a character reference.
_ATTR_ESCAPES = str.maketrans({**_ESCAPES, "\n": "&#10;", "\r": "&#13;", "\t": "&#9;"})


def _esc_text(text: str) -> str:
    return text.translate(_TEXT_ESCAPES)


def _esc_attr(text: str) -> str:
    return text.translate(_ATTR_ESCAPES)


def _qname(
    name: str, scope: dict[str, str], new: list[tuple[str, str]], *, attribute: bool
) -> str:
    if not name.startswith("{"):
        if not attribute and scope.get("", "") != "":
            new.append(("", ""))  # undo an inherited default namespace
            scope[""] = ""
        return name
    uri, local = name[1:].split("}", 1)
    for prefix, bound in reversed(list(scope.items())):
        if bound == uri and (prefix or not attribute):
            return f"{prefix}:{local}" if prefix else local
    n = 0
    while f"ns{n}" in scope:
        n += 1
    scope[f"ns{n}"] = uri
    new.append((f"ns{n}", uri))
    return f"ns{n}:{local}"


def _write(
    out: list[str],
    elem: ET.Element,
    parent_scope: dict[str, str],
    nsdecls: dict[ET.Element, list[tuple[str, str]]],
) -> None:
    tag: object = elem.tag
    if tag is ET.Comment:
        out.append(f"<!--{elem.text or ''}-->")
    elif tag is ET.ProcessingInstruction:
        out.append(f"<?{elem.text or ''}?>")
    else:
        scope = dict(parent_scope)
        declared = list(nsdecls.get(elem, ()))
        for prefix, uri in declared:
            scope[prefix] = uri
        new: list[tuple[str, str]] = []
        name = _qname(str(tag), scope, new, attribute=False)
        attrs = [(_qname(k, scope, new, attribute=True), v) for k, v in elem.attrib.items()]
        out.append(f"<{name}")
        for key, value in attrs:
            out.append(f" {key}='{_esc_attr(value)}'")
        for prefix, uri in declared + new:  # after the attributes, where libvirt puts them
            xmlns = f"xmlns:{prefix}" if prefix else "xmlns"
            out.append(f" {xmlns}='{_esc_attr(uri)}'")
        if elem.text or len(elem):
            out.append(">")
            if elem.text:
                out.append(_esc_text(elem.text))
            for child in elem:
                _write(out, child, scope, nsdecls)
            out.append(f"</{name}>")
        else:
            out.append("/>")
    if elem.tail:
        out.append(_esc_text(elem.tail))


def serialize(root: ET.Element) -> str:
    """A freshly built element as text: indented by two spaces, attribute values in single
    quotes (libvirt's format), a newline at the end."""
    ET.indent(root, space="  ")
    out: list[str] = []
    _write(out, root, {}, {})
    return "".join(out) + "\n"


# --------------------------------------------------------------------------------------------
# Element helpers
# --------------------------------------------------------------------------------------------


def children(elem: ET.Element, tag: str) -> list[ET.Element]:
    return [child for child in elem if child.tag == tag]


def one_child(
    tree: Tree, parent: ET.Element, tag: str, ctx: str, *, required: bool
) -> ET.Element | None:
    found = children(parent, tag)
    if len(found) > 1:
        raise tree.error(found[1], f"only one <{tag}> allowed in {describe(parent)}", ctx)
    if not found and required:
        raise tree.error(parent, f"<{tag}> is missing", ctx)
    return found[0] if found else None


def check_attrs(tree: Tree, elem: ET.Element, allowed: Iterable[str], ctx: str) -> None:
    allowed = set(allowed)
    for key in elem.attrib:
        if key not in allowed:
            ok = ", ".join(sorted(allowed)) or "none"
            raise tree.error(elem, f"unknown attribute {_local(key)!r} (allowed: {ok})", ctx)


def check_children(tree: Tree, elem: ET.Element, allowed: Iterable[str], ctx: str) -> None:
    allowed = set(allowed)
    for child in elem:
        if not isinstance(child.tag, str):
            continue  # comment / processing instruction
        if child.tag not in allowed:
            ok = ", ".join(f"<{a}>" for a in sorted(allowed)) or "none"
            raise tree.error(child, f"unexpected element in {describe(elem)} (allowed: {ok})", ctx)


def yes_no(tree: Tree, elem: ET.Element, attr: str, ctx: str, default: bool = False) -> bool:
    raw = elem.get(attr)
    if raw is None:
        return default
    if raw in ("yes", "no"):
        return raw == "yes"
    raise tree.error(elem, f"{attr}={raw!r}: expected 'yes' or 'no'", ctx)


def int_attr(
    tree: Tree, elem: ET.Element, attr: str, low: int, high: int, ctx: str, why: str = ""
) -> int:
    raw = elem.get(attr)
    if raw is None:
        raise tree.error(elem, f"attribute {attr!r} is missing", ctx)
    text = raw.strip()
    try:
        value = int(text, 16) if text.lower().startswith("0x") else int(text, 10)
    except ValueError:
        raise tree.error(elem, f"{attr}={raw!r} is not a number", ctx) from None
    if not low <= value <= high:
        raise tree.error(elem, f"{attr}={raw!r} not in {low}..{high}{why}", ctx)
    return value


def pci_attr(tree: Tree, elem: ET.Element, ctx: str) -> PciAddress:
    try:
        return PciAddress.from_attrs(dict(elem.attrib), where="PCI address")
    except InputError as exc:
        message = str(exc).replace("PCI address: PCI address ", "PCI address ", 1)
        raise tree.error(elem, message, ctx) from None


def netdev_attr(tree: Tree, elem: ET.Element, attr: str, ctx: str) -> str:
    try:
        return validate_netdev_name(elem.get(attr, ""), what=f"{attr}")
    except InputError as exc:
        raise tree.error(elem, str(exc), ctx) from None


def has_pci_coords(elem: ET.Element) -> bool:
    return any(key in elem.attrib for key in PCI_COORDS)


def pci_address_elem(tree: Tree, elem: ET.Element, ctx: str) -> PciAddress:
    """An ``<address type='pci' domain=.. bus=.. slot=.. function=..>`` (``type`` optional)
    that carries nothing else."""
    check_attrs(tree, elem, (*PCI_COORDS, "type"), ctx)
    if elem.get("type", "pci") != "pci":
        raise tree.error(elem, f"type={elem.get('type')!r}: only 'pci' is supported", ctx)
    return pci_attr(tree, elem, ctx)


# --------------------------------------------------------------------------------------------
# Editing: children inserted and removed with the indentation of their siblings
# --------------------------------------------------------------------------------------------


def _indent_before(elem: ET.Element, parents: dict[ET.Element, ET.Element]) -> str | None:
    """The whitespace line-indent in front of ``elem`` (None when it is not on its own line)."""
    parent = parents.get(elem)
    if parent is None:
        return None
    kids = list(parent)
    pos = kids.index(elem)
    before = parent.text if pos == 0 else kids[pos - 1].tail
    if before is None or before.strip() or "\n" not in before:
        return None
    return before[before.rindex("\n") + 1 :]


def insert_child(tree: Tree, parent: ET.Element, child: ET.Element) -> None:
    """Append ``child`` to ``parent``, indented like its siblings (or one step deeper than the
    parent, two spaces, when it has none)."""
    kids = list(parent)
    if kids:
        last = kids[-1]
        lead = parent.text if len(kids) == 1 else kids[-2].tail
        if lead is not None and not lead.strip():
            child.tail, last.tail = last.tail, lead
        parent.append(child)
        return
    indent = _indent_before(parent, tree.parent_map())
    if indent is not None and not (parent.text or "").strip():
        parent.text = "\n" + indent + "  "
        child.tail = "\n" + indent
    parent.append(child)


def remove_child(parent: ET.Element, child: ET.Element) -> None:
    kids = list(parent)
    pos = kids.index(child)
    if pos == len(kids) - 1:
        if pos > 0:
            kids[pos - 1].tail = child.tail
        elif parent.text is not None and not parent.text.strip():
            parent.text = None
    parent.remove(child)

