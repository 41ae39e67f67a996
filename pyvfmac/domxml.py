"""Device and network definitions in libvirt-style XML (pure Python, no kernel access).

Device documents (:class:`DeviceDocument`)
-----------------------------------------
The input is one ``<hostdev>``, one ``<interface>`` or a whole ``<domain>``. Accepted device forms:

* the proposal's ``<hostdev mode='subsystem' type='pci' managed='yes'><source><address domain=..
  bus=.. slot=.. function=../></source><mac address=../></hostdev>`` (``domain`` optional,
  ``mode`` optional and then ``subsystem``; ``<mac>`` directly in the device or inside
  ``<source>``),
* libvirt's ``<interface type='hostdev' managed='yes'><source><address type='pci' .../></source>
  <mac address=../></interface>``,
* step 2, a VF named by its netdev: ``<address netdev='eth22'/>`` or ``<network dev='eth22'/>``
  in ``<source>``; the filled form carries both (``<address domain=.. bus=.. slot=.. function=..
  netdev='eth22'/>``, or ``<network dev=..>`` next to an ``<address>`` with the PCI coordinates),
* step 3, a reference to one of pyvfmac's networks: ``<address network='passthrough-net'/>`` or
  ``<network name='passthrough-net'/>`` in a hostdev's ``<source>`` (both take an optional
  ``portgroup`` attribute), and libvirt's ``<interface type='network'><source
  network='passthrough-net' portgroup='pg1'/><mac address=../></interface>``.

Every device may carry one ``<vlan>`` (one tag) and one ``<virtualport>`` (802.1Qbh or 802.1Qbg).
In a whole domain, only the ``<hostdev>`` elements that have a ``<mac>`` and the ``<interface>``
elements of type ``hostdev`` or ``network`` directly inside ``<devices>`` are ours; everything else
is written back as it was read (comments, processing instructions, namespace prefixes and
whitespace included; attribute values are written with single quotes, as libvirt does).

The live form of a network reference
------------------------------------
When a VF of a network is given to a device, :meth:`DeviceDocument.set_address` writes its PCI
coordinates while the network reference stays, so that detach finds the allocation (network +
MAC) from the live XML as well as from the persistent one:

* ``<address network='pn'/>`` becomes ``<address domain=.. bus=.. slot=.. function..
  network='pn'/>`` (the same rule as step 2's ``netdev``),
* ``<network name='pn'/>`` gets a sibling ``<address domain=.. bus=.. slot=.. function=../>``,
* ``<interface type='network'><source network='pn'/>`` gets ``<address type='pci' ...>`` as a
  child of ``<source>``.

:meth:`DeviceDocument.clear_address` undoes exactly that (back to the persistent form).

Untrusted input is parsed with defusedxml: a DTD, an entity declaration or an external reference
is refused. Every validation problem is an :class:`~pyvfmac.errors.XmlError` (an ``InputError``)
whose message names the source, the line, the element with its attributes, and the bad value.
"""

from __future__ import annotations

import os
import re
import stat
import tempfile
import uuid as _uuid
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import defusedxml  # type: ignore[import-untyped,unused-ignore]
import defusedxml.ElementTree as _DET  # type: ignore[import-untyped,unused-ignore]

from .errors import InputError, KernelError, PoolError, XmlError
from .mac import parse_mac
from .types import PciAddress, validate_netdev_name

__all__ = [
    "DeviceDocument",
    "DeviceSpec",
    "NetworkSpec",
    "PoolEntry",
    "PortGroup",
    "VirtualPort",
    "Vlan",
    "effective_managed",
    "merge_settings",
    "network_to_xml",
    "parse_network",
    "validate_network_name",
    "write_atomic",
]

MAX_DEPTH = 256
"""Element nesting refused beyond this depth (libvirt documents stay below 10)."""

NETWORK_NAME_MAX = 64
PORT_PROFILE_MAX = 39  # IFLA_PORT_PROFILE: 40 bytes with the terminating NUL
VIRTUALPORT_TYPES = ("802.1Qbh", "802.1Qbg")
FORWARD_MODES = ("hostdev", "hardware", "device")

_COORDS = ("domain", "bus", "slot", "function")


# --------------------------------------------------------------------------------------------
# Value types
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Vlan:
    """One 802.1Q VLAN tag (a VF takes exactly one; 0 means untagged)."""

    vid: int

    def __post_init__(self) -> None:
        if isinstance(self.vid, bool) or not isinstance(self.vid, int) or not 0 <= self.vid <= 4095:
            raise XmlError(f"VLAN id {self.vid!r}: not in 0..4095")


@dataclass(frozen=True, slots=True)
class VirtualPort:
    """A ``<virtualport>``: 802.1Qbh (``profileid``, optional ``instanceid``) or 802.1Qbg
    (``managerid``, ``typeid``, ``typeidversion``, optional ``instanceid``, a UUID)."""

    type: str
    profileid: str | None = None
    managerid: int | None = None
    typeid: int | None = None
    typeidversion: int | None = None
    instanceid: str | None = None


@dataclass(frozen=True, slots=True)
class DeviceSpec:
    """One device of a :class:`DeviceDocument`.

    ``index`` counts only pyvfmac's devices (0..), in document order. ``managed`` is the device's
    own ``managed`` attribute (default False, like libvirt); for a network reference see
    :func:`effective_managed`. ``address`` and ``netdev`` may both be set (step 2's filled form),
    as may ``network`` and ``address`` (the live form of a network reference).
    """

    index: int
    form: Literal["hostdev", "interface"]
    managed: bool
    mac: str
    address: PciAddress | None
    netdev: str | None
    network: str | None
    portgroup: str | None
    vlan: Vlan | None
    virtualport: VirtualPort | None

    @property
    def key(self) -> str:
        """Stable identity for the state store.

        * a network reference: ``network:<name>/<mac>`` -- an allocation is identified by
          (network, MAC), so the persistent form (no address) and the live form (address filled
          in) of one device have the same key;
        * otherwise the VF itself: ``pci:<canonical address>`` when the address is known, else
          ``netdev:<name>`` (step 2 before the first attach: resolve the name to its address and
          key the saved original by the ``pci:`` form).
        """
        if self.network is not None:
            return f"network:{self.network}/{self.mac}"
        if self.address is not None:
            return f"pci:{self.address}"
        return f"netdev:{self.netdev}"


@dataclass(frozen=True, slots=True)
class PoolEntry:
    """One pool entry of a network: ``<interface dev=..>``, ``<pf dev=..>`` (all VFs of that PF)
    or ``<address type='pci' ..>``."""

    kind: Literal["interface", "pf", "address"]
    dev: str | None
    address: PciAddress | None


@dataclass(frozen=True, slots=True)
class PortGroup:
    name: str
    default: bool
    vlan: Vlan | None
    virtualport: VirtualPort | None


@dataclass(frozen=True, slots=True)
class NetworkSpec:
    """A network whose forward mode is ``hostdev`` (a pool of VFs)."""

    name: str
    uuid: str | None
    managed: bool
    pool: tuple[PoolEntry, ...]
    vlan: Vlan | None
    virtualport: VirtualPort | None
    portgroups: tuple[PortGroup, ...] = field(default=())

    def portgroup(self, name: str | None) -> PortGroup | None:
        """The named portgroup, the default one for ``None`` (or None when there is none);
        :class:`~pyvfmac.errors.PoolError` for an unknown name."""
        if name is None:
            return next((pg for pg in self.portgroups if pg.default), None)
        for pg in self.portgroups:
            if pg.name == name:
                return pg
        known = ", ".join(repr(pg.name) for pg in self.portgroups) or "none"
        raise PoolError(f"network {self.name!r} has no portgroup {name!r} (portgroups: {known})")

    def settings_for(self, portgroup: str | None) -> tuple[Vlan | None, VirtualPort | None]:
        """The network's vlan/virtualport, each overridden by the named portgroup's (the default
        portgroup's when ``portgroup`` is None) when that portgroup has one."""
        pg = self.portgroup(portgroup)
        vlan, vport = self.vlan, self.virtualport
        if pg is not None:
            vlan = pg.vlan if pg.vlan is not None else vlan
            vport = pg.virtualport if pg.virtualport is not None else vport
        return vlan, vport


def merge_settings(
    device: DeviceSpec, network: NetworkSpec
) -> tuple[Vlan | None, VirtualPort | None]:
    """The vlan and virtualport to give the VF allocated to ``device`` from ``network``.

    libvirt's rule, element by element: the device's own ``<vlan>`` / ``<virtualport>`` wins over
    the portgroup's (the device's ``portgroup``, else the network's default portgroup), which wins
    over the network's. Elements are taken whole, never merged attribute by attribute.
    :class:`~pyvfmac.errors.PoolError` when the device refers to another network or to a
    portgroup the network does not have.
    """
    if device.network != network.name:
        raise PoolError(
            f"device {device.index} (MAC {device.mac}) refers to network {device.network!r}, "
            f"not {network.name!r}"
        )
    vlan, vport = network.settings_for(device.portgroup)
    return (
        device.vlan if device.vlan is not None else vlan,
        device.virtualport if device.virtualport is not None else vport,
    )


def effective_managed(device: DeviceSpec, network: NetworkSpec | None = None) -> bool:
    """Whether pyvfmac binds the VF to vfio-pci: the device's ``managed='yes'``, or, for a network
    reference, the network's ``<forward managed='yes'>`` (``<interface type='network'>`` has no
    ``managed`` attribute of its own in libvirt)."""
    return device.managed or (network is not None and network.managed)


def validate_network_name(name: str, *, what: str = "network name") -> str:
    """1 to 64 characters, no ``/``, no control characters. Returns it; raises XmlError."""
    if not isinstance(name, str):
        raise XmlError(f"{what} {name!r}: not a string")
    if not name:
        raise XmlError(f"{what} {name!r}: empty")
    if len(name) > NETWORK_NAME_MAX:
        raise XmlError(f"{what} {_short(name)!r}: longer than {NETWORK_NAME_MAX} characters")
    if "/" in name:
        raise XmlError(f"{what} {name!r}: contains '/'")
    if any(not ch.isprintable() for ch in name):
        raise XmlError(f"{what} {name!r}: contains a control character")
    return name


# --------------------------------------------------------------------------------------------
# Parsing: a tree that remembers what ElementTree forgets
# --------------------------------------------------------------------------------------------

_DECL_RE = re.compile(r"\A\ufeff?(<\?xml\s[^>]*\?>)")
_DECL_ENC_RE = re.compile(r"""encoding\s*=\s*(['"])([^'"]*)\1""")


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


class _Tree:
    """A parsed document and what it needs to be written back as it was."""

    def __init__(self, data: str | bytes, source: str) -> None:
        self.source = source
        if not isinstance(data, (str, bytes)):
            raise XmlError(f"{source}: expected XML text (str or bytes), got {type(data).__name__}")
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
        return XmlError(f"{self.at(elem)}: {_describe(elem)}{ctx}: {problem}")

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
        ms = _DECL_RE.match(data)
        decl = ms.group(1) if ms else None
    if decl is None:
        return None
    enc = _DECL_ENC_RE.search(decl)
    if enc and enc.group(2).lower().replace("_", "-") not in ("utf-8", "utf8"):
        # The text pyvfmac writes is UTF-8: say so instead of the input's encoding.
        decl = decl[: enc.start(2)] + "UTF-8" + decl[enc.end(2) :]
    return decl


def _describe(elem: ET.Element, limit: int = 60) -> str:
    """``<tag id='5000'>``: the element's start tag as a user would recognise it."""
    attrs = "".join(f" {_local(k)}='{_short(v, limit)}'" for k, v in elem.attrib.items())
    return f"<{_local(elem.tag)}{attrs}>"


def _short(text: str, limit: int = 60) -> str:
    clean = "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in text)
    return clean if len(clean) <= limit else clean[: limit - 3] + "..."


def _local(tag: object) -> str:
    text = str(tag)
    return text.rsplit("}", 1)[-1] if text.startswith("{") else text


# --------------------------------------------------------------------------------------------
# Serialization (ElementTree's own writer renames namespace prefixes to ns0:, ns1:, ...)
# --------------------------------------------------------------------------------------------

_XML_NS = "http://www.w3.org/XML/1998/namespace"


def _esc_text(text: str) -> str:
    # libvirt escapes quotes in text too (virBufferEscapeString): write its documents unchanged.
    return (
        text.replace("&", "&amp;")
        .replace("<", "&lt;")
        .replace(">", "&gt;")
        .replace("'", "&apos;")
        .replace('"', "&quot;")
    )


def _esc_attr(text: str) -> str:
    return (
        text.replace("&", "&amp;")
        .replace("<", "&lt;")
        .replace(">", "&gt;")
        .replace("'", "&apos;")
        .replace("\n", "&#10;")
        .replace("\r", "&#13;")
        .replace("\t", "&#9;")
    )


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


# --------------------------------------------------------------------------------------------
# Element helpers
# --------------------------------------------------------------------------------------------


def _children(elem: ET.Element, tag: str) -> list[ET.Element]:
    return [child for child in elem if child.tag == tag]


def _one(
    tree: _Tree, parent: ET.Element, tag: str, ctx: str, *, required: bool
) -> ET.Element | None:
    found = _children(parent, tag)
    if len(found) > 1:
        raise tree.error(found[1], f"only one <{tag}> allowed in {_describe(parent)}", ctx)
    if not found and required:
        raise tree.error(parent, f"<{tag}> is missing", ctx)
    return found[0] if found else None


def _check_attrs(tree: _Tree, elem: ET.Element, allowed: Iterable[str], ctx: str) -> None:
    allowed = set(allowed)
    for key in elem.attrib:
        if key not in allowed:
            ok = ", ".join(sorted(allowed)) or "none"
            raise tree.error(elem, f"unknown attribute {_local(key)!r} (allowed: {ok})", ctx)


def _check_children(tree: _Tree, elem: ET.Element, allowed: Iterable[str], ctx: str) -> None:
    allowed = set(allowed)
    for child in elem:
        if not isinstance(child.tag, str):
            continue  # comment / processing instruction
        if child.tag not in allowed:
            ok = ", ".join(f"<{a}>" for a in sorted(allowed)) or "none"
            raise tree.error(child, f"unexpected element in {_describe(elem)} (allowed: {ok})", ctx)


def _yes_no(tree: _Tree, elem: ET.Element, attr: str, ctx: str, default: bool = False) -> bool:
    raw = elem.get(attr)
    if raw is None:
        return default
    if raw in ("yes", "no"):
        return raw == "yes"
    raise tree.error(elem, f"{attr}={raw!r}: expected 'yes' or 'no'", ctx)


def _int_attr(
    tree: _Tree, elem: ET.Element, attr: str, low: int, high: int, ctx: str, why: str = ""
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


def _pci(tree: _Tree, elem: ET.Element, ctx: str) -> PciAddress:
    try:
        return PciAddress.from_attrs(dict(elem.attrib), where="PCI address")
    except InputError as exc:
        message = str(exc).replace("PCI address: PCI address ", "PCI address ", 1)
        raise tree.error(elem, message, ctx) from None


def _netdev(tree: _Tree, elem: ET.Element, attr: str, ctx: str) -> str:
    try:
        return validate_netdev_name(elem.get(attr, ""), what=f"{attr}")
    except InputError as exc:
        raise tree.error(elem, str(exc), ctx) from None


def _netname(tree: _Tree, elem: ET.Element, value: str, what: str, ctx: str) -> str:
    try:
        return validate_network_name(value, what=what)
    except InputError as exc:
        raise tree.error(elem, str(exc), ctx) from None


def _has_coords(elem: ET.Element) -> bool:
    return any(key in elem.attrib for key in _COORDS)


def _parse_vlan(tree: _Tree, elem: ET.Element, ctx: str) -> Vlan:
    _check_attrs(tree, elem, ("trunk",), ctx)
    if _yes_no(tree, elem, "trunk", ctx):
        raise tree.error(elem, "trunk='yes': a VF takes one VLAN tag, not a trunk", ctx)
    _check_children(tree, elem, ("tag",), ctx)
    tags = _children(elem, "tag")
    if len(tags) != 1:
        raise tree.error(elem, f"a VF takes exactly one <tag>; found {len(tags)}", ctx)
    tag = tags[0]
    _check_attrs(tree, tag, ("id", "nativeMode"), ctx)
    if "nativeMode" in tag.attrib:
        raise tree.error(tag, "nativeMode is for trunks; a VF takes one tag", ctx)
    return Vlan(_int_attr(tree, tag, "id", 0, 4095, ctx))


def _parse_virtualport(tree: _Tree, elem: ET.Element, ctx: str) -> VirtualPort:
    _check_attrs(tree, elem, ("type",), ctx)
    vtype = elem.get("type")
    if vtype is None:
        raise tree.error(elem, "attribute 'type' is missing (802.1Qbh or 802.1Qbg)", ctx)
    if vtype in ("openvswitch", "midonet"):
        raise tree.error(elem, f"type={vtype!r} is for a software switch port, not for a VF", ctx)
    if vtype not in VIRTUALPORT_TYPES:
        raise tree.error(elem, f"type={vtype!r}: expected '802.1Qbh' or '802.1Qbg'", ctx)
    _check_children(tree, elem, ("parameters",), ctx)
    params = _one(tree, elem, "parameters", ctx, required=True)
    assert params is not None
    instanceid = None
    if "instanceid" in params.attrib:
        raw = params.attrib["instanceid"]
        try:
            instanceid = str(_uuid.UUID(raw))
        except ValueError:
            raise tree.error(params, f"instanceid={raw!r} is not a UUID", ctx) from None
    if vtype == "802.1Qbh":
        _check_attrs(tree, params, ("profileid", "instanceid"), ctx)
        profile = params.get("profileid")
        if profile is None:
            raise tree.error(params, "802.1Qbh needs attribute 'profileid'", ctx)
        if not profile or len(profile.encode()) > PORT_PROFILE_MAX:
            raise tree.error(
                params, f"profileid={profile!r}: must be 1 to {PORT_PROFILE_MAX} bytes", ctx
            )
        if any(not ch.isprintable() for ch in profile):
            raise tree.error(params, f"profileid={profile!r}: contains a control character", ctx)
        return VirtualPort(vtype, profileid=profile, instanceid=instanceid)
    _check_attrs(tree, params, ("managerid", "typeid", "typeidversion", "instanceid"), ctx)
    return VirtualPort(
        vtype,
        managerid=_int_attr(tree, params, "managerid", 1, 255, ctx, " (0 is reserved)"),
        typeid=_int_attr(tree, params, "typeid", 0, 0xFFFFFF, ctx),
        typeidversion=_int_attr(tree, params, "typeidversion", 0, 255, ctx),
        instanceid=instanceid,
    )


def _virtualport_elem(vp: VirtualPort) -> ET.Element:
    elem = ET.Element("virtualport", {"type": vp.type})
    params: dict[str, str] = {}
    for key in ("managerid", "typeid", "typeidversion", "profileid", "instanceid"):
        value = getattr(vp, key)
        if value is not None:
            params[key] = str(value)
    ET.SubElement(elem, "parameters", params)
    return elem


def _vlan_elem(vlan: Vlan) -> ET.Element:
    elem = ET.Element("vlan")
    ET.SubElement(elem, "tag", {"id": str(vlan.vid)})
    return elem


# --------------------------------------------------------------------------------------------
# Device documents
# --------------------------------------------------------------------------------------------

_ROOTS = ("hostdev", "interface", "domain")


def _macs(elem: ET.Element) -> list[ET.Element]:
    found = _children(elem, "mac")
    for source in _children(elem, "source"):
        found += _children(source, "mac")
    return found


class DeviceDocument:
    """A parsed ``<hostdev>``, ``<interface>`` or ``<domain>``; see the module documentation.

    ``kind`` is the root element's name. ``devices`` are pyvfmac's devices, in document order.
    :meth:`set_address` / :meth:`clear_address` edit the tree in place; :meth:`to_string` writes
    the document back with everything that is not pyvfmac's unchanged.
    """

    def __init__(self, tree: _Tree, kind: str, elems: list[ET.Element], specs: list[DeviceSpec]):
        self._tree = tree
        self.kind = kind
        self._elems = elems
        self._specs = specs

    @property
    def devices(self) -> tuple[DeviceSpec, ...]:
        return tuple(self._specs)

    @property
    def source(self) -> str:
        return self._tree.source

    @classmethod
    def parse(cls, data: str | bytes, *, source: str = "<input>") -> DeviceDocument:
        tree = _Tree(data, source)
        root = tree.root
        if root.tag not in _ROOTS:
            raise tree.error(
                root, "the root element must be <hostdev>, <interface> or <domain>"
            )
        elems: list[ET.Element] = []
        if root.tag == "domain":
            for devices in _children(root, "devices"):
                for child in devices:
                    if child.tag == "hostdev" and _macs(child):
                        elems.append(child)
                    elif child.tag == "interface" and child.get("type") in ("hostdev", "network"):
                        elems.append(child)
        else:
            if root.tag == "interface" and root.get("type") not in ("hostdev", "network"):
                itype = root.get("type")
                shown = "attribute 'type' is missing" if itype is None else f"type={itype!r}"
                raise tree.error(root, f"interface {shown}: expected 'hostdev' or 'network'")
            elems.append(root)
        specs = [_parse_device(tree, elem, i) for i, elem in enumerate(elems)]
        doc = cls(tree, str(root.tag), elems, specs)
        doc._check_unique()
        return doc

    def _check_unique(self) -> None:
        seen: dict[tuple[str, object], int] = {}
        for spec, elem in zip(self._specs, self._elems):
            for what, value in (
                ("MAC", spec.mac),
                ("PCI address", spec.address),
                ("netdev", spec.netdev),
            ):
                if value is None:
                    continue
                first = seen.setdefault((what, value), spec.index)
                if first != spec.index:
                    raise self._tree.error(
                        elem, f"{what} {value} is already used by device {first}",
                        f"device {spec.index}",
                    )

    def _device(self, index: int) -> tuple[DeviceSpec, ET.Element, ET.Element]:
        if not isinstance(index, int) or not 0 <= index < len(self._specs):
            count = len(self._specs)
            raise XmlError(f"{self.source}: no device {index!r} (the document has {count})")
        elem = self._elems[index]
        source = _children(elem, "source")[0]
        return self._specs[index], elem, source

    @staticmethod
    def _coord_carrier(source: ET.Element) -> ET.Element | None:
        """The ``<address>`` in ``<source>`` that carries the PCI coordinates, if it exists."""
        found = _children(source, "address")
        return found[0] if found else None

    def set_address(self, index: int, address: PciAddress) -> None:
        """Write ``address`` into device ``index`` (keeping ``netdev=`` / the network reference;
        see the module documentation for the live form of a network reference).

        A device whose definition already names a different VF (address or step 2's filled form)
        is refused with both values; a network reference takes any address (the allocation)."""
        if not isinstance(address, PciAddress):
            raise XmlError(f"set_address: expected a PciAddress, got {address!r}")
        spec, elem, source = self._device(index)
        if spec.network is None and spec.address is not None and spec.address != address:
            raise self._tree.error(
                elem,
                f"the definition says PCI address {spec.address}, the VF found is {address}",
                f"device {index}",
            )
        for other in self._specs:
            if other.index != index and other.address == address:
                raise self._tree.error(
                    elem, f"PCI address {address} is already used by device {other.index}",
                    f"device {index}",
                )
        carrier = self._coord_carrier(source)
        if carrier is None:
            carrier = ET.Element("address", {"type": "pci"} if elem.tag == "interface" else {})
            _insert_child(self._tree, source, carrier)
        attrs = dict(carrier.attrib)
        ordered: dict[str, str] = {}
        if "type" in attrs:
            ordered["type"] = attrs.pop("type")
        ordered.update(address.xml_attrs())
        ordered.update((k, v) for k, v in attrs.items() if k not in _COORDS)
        carrier.attrib.clear()
        carrier.attrib.update(ordered)
        self._specs[index] = replace(spec, address=address)

    def clear_address(self, index: int) -> None:
        """Back to the persistent form of a network reference: the PCI coordinates leave the
        device (and so does an ``<address>`` that carried nothing else). Only for network
        references; other devices keep their address in the persistent definition."""
        spec, elem, source = self._device(index)
        if spec.network is None:
            raise self._tree.error(
                elem, "clear_address applies to a network reference only", f"device {index}"
            )
        carrier = self._coord_carrier(source)
        if carrier is not None:
            for key in _COORDS:
                carrier.attrib.pop(key, None)
            if set(carrier.attrib) <= {"type"} and not len(carrier):
                _remove_child(source, carrier)
        self._specs[index] = replace(spec, address=None)

    def to_string(self) -> str:
        return self._tree.to_string()


def _parse_device(tree: _Tree, elem: ET.Element, index: int) -> DeviceSpec:
    ctx = f"device {index} <{elem.tag}>"
    form: Literal["hostdev", "interface"]
    if elem.tag == "hostdev":
        form = "hostdev"
        mode = elem.get("mode", "subsystem")
        if mode != "subsystem":
            raise tree.error(elem, f"mode={mode!r}: only 'subsystem' is supported", ctx)
        htype = elem.get("type")
        if htype is None:
            raise tree.error(elem, "attribute 'type' is missing (expected type='pci')", ctx)
        if htype != "pci":
            raise tree.error(elem, f"type={htype!r}: only 'pci' is supported", ctx)
    else:
        form = "interface"
    managed = _yes_no(tree, elem, "managed", ctx)
    source = _one(tree, elem, "source", ctx, required=True)
    assert source is not None
    if form == "interface" and elem.get("type") == "network":
        address, netdev, network, portgroup = _network_source(tree, source, ctx)
    else:
        address, netdev, network, portgroup = _hostdev_source(tree, source, ctx)

    macs = _macs(elem)
    if not macs:
        raise tree.error(elem, "fixed MAC required: add <mac address='...'/>", ctx)
    if len(macs) > 1:
        raise tree.error(macs[1], f"only one <mac> allowed in {_describe(elem)}", ctx)
    raw_mac = macs[0].get("address")
    if raw_mac is None:
        raise tree.error(macs[0], "attribute 'address' is missing", ctx)
    try:
        mac = parse_mac(raw_mac)
    except InputError as exc:
        raise tree.error(macs[0], str(exc), ctx) from None

    vlan_elem = _one(tree, elem, "vlan", ctx, required=False)
    vport_elem = _one(tree, elem, "virtualport", ctx, required=False)
    return DeviceSpec(
        index=index,
        form=form,
        managed=managed,
        mac=mac,
        address=address,
        netdev=netdev,
        network=network,
        portgroup=portgroup,
        vlan=_parse_vlan(tree, vlan_elem, ctx) if vlan_elem is not None else None,
        virtualport=_parse_virtualport(tree, vport_elem, ctx) if vport_elem is not None else None,
    )


_Source = tuple[PciAddress | None, str | None, str | None, str | None]


def _hostdev_source(tree: _Tree, source: ET.Element, ctx: str) -> _Source:
    """``<source>`` of a hostdev or an interface type='hostdev'."""
    addr = _one(tree, source, "address", ctx, required=False)
    net = _one(tree, source, "network", ctx, required=False)
    if addr is None and net is None:
        raise tree.error(source, "needs an <address> (PCI address, netdev= or network=) "
                         "or a <network dev=.. | name=..>", ctx)
    address = netdev = network = portgroup = None
    if addr is not None:
        _check_attrs(tree, addr, (*_COORDS, "type", "netdev", "network", "portgroup"), ctx)
        atype = addr.get("type", "pci")
        if atype != "pci":
            raise tree.error(addr, f"type={atype!r}: only 'pci' is supported", ctx)
        if _has_coords(addr):
            address = _pci(tree, addr, ctx)
        if "netdev" in addr.attrib and "network" in addr.attrib:
            raise tree.error(addr, "give either netdev= or network=, not both", ctx)
        if "netdev" in addr.attrib:
            netdev = _netdev(tree, addr, "netdev", ctx)
        if "network" in addr.attrib:
            network = _netname(tree, addr, addr.attrib["network"], "network", ctx)
        if "portgroup" in addr.attrib:
            portgroup = _portgroup_ref(tree, addr, ctx)
        if address is None and netdev is None and network is None:
            if net is None:
                raise tree.error(addr, "needs domain/bus/slot/function, netdev= or network=", ctx)
            raise tree.error(addr, "an <address> next to <network> must carry the PCI "
                             "address (domain/bus/slot/function)", ctx)
    if net is not None:
        _check_attrs(tree, net, ("dev", "name", "portgroup"), ctx)
        if ("dev" in net.attrib) == ("name" in net.attrib):
            raise tree.error(net, "give exactly one of dev= (a netdev) or name= (a network)", ctx)
        if netdev is not None or network is not None:
            named = f"netdev {netdev!r}" if netdev is not None else f"network {network!r}"
            raise tree.error(net, f"the <address> already names {named}", ctx)
        if "dev" in net.attrib:
            netdev = _netdev(tree, net, "dev", ctx)
        else:
            network = _netname(tree, net, net.attrib["name"], "network name", ctx)
        if "portgroup" in net.attrib:
            if portgroup is not None:
                raise tree.error(net, "portgroup given twice", ctx)
            portgroup = _portgroup_ref(tree, net, ctx)
    if portgroup is not None and network is None:
        raise tree.error(source, f"portgroup {portgroup!r} without a network reference", ctx)
    return address, netdev, network, portgroup


def _network_source(tree: _Tree, source: ET.Element, ctx: str) -> _Source:
    """``<source network=.. portgroup=..>`` of an interface type='network' (and, live, the
    ``<address type='pci' ..>`` pyvfmac put inside it)."""
    if "network" not in source.attrib:
        raise tree.error(source, "attribute 'network' is missing", ctx)
    network = _netname(tree, source, source.attrib["network"], "network", ctx)
    portgroup = _portgroup_ref(tree, source, ctx) if "portgroup" in source.attrib else None
    address = None
    addr = _one(tree, source, "address", ctx, required=False)
    if addr is not None:
        _check_attrs(tree, addr, (*_COORDS, "type"), ctx)
        if addr.get("type", "pci") != "pci":
            raise tree.error(addr, f"type={addr.get('type')!r}: only 'pci' is supported", ctx)
        address = _pci(tree, addr, ctx)
    return address, None, network, portgroup


def _portgroup_ref(tree: _Tree, elem: ET.Element, ctx: str) -> str:
    name = elem.attrib["portgroup"]
    if not name or any(not ch.isprintable() for ch in name):
        raise tree.error(elem, f"portgroup={name!r}: not a portgroup name", ctx)
    return name


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


def _insert_child(tree: _Tree, parent: ET.Element, child: ET.Element) -> None:
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


def _remove_child(parent: ET.Element, child: ET.Element) -> None:
    kids = list(parent)
    pos = kids.index(child)
    if pos == len(kids) - 1:
        if pos > 0:
            kids[pos - 1].tail = child.tail
        elif parent.text is not None and not parent.text.strip():
            parent.text = None
    parent.remove(child)


# --------------------------------------------------------------------------------------------
# Network definitions
# --------------------------------------------------------------------------------------------

_REFUSED_NETWORK = {
    "bandwidth": "bandwidth limits cannot be applied to a VF given to a guest",
    "ip": "a hostdev network has no host-side IP configuration",
    "dns": "a hostdev network has no DNS service",
    "bridge": "a hostdev network has no bridge",
    "mac": "a hostdev network has no host-side MAC address",
    "domain": "a hostdev network has no DNS domain",
    "route": "a hostdev network has no routes",
}
_NETWORK_CHILDREN = ("name", "uuid", "forward", "vlan", "virtualport", "portgroup")


def parse_network(data: str | bytes, *, source: str = "<input>") -> NetworkSpec:
    """Parse a ``<network>`` whose ``<forward mode=..>`` is ``hostdev`` (also accepted:
    ``hardware`` and ``device``, the proposal's alternatives). See the module documentation."""
    tree = _Tree(data, source)
    root = tree.root
    if root.tag != "network":
        raise tree.error(root, "the root element must be <network>")
    ctx = "network"
    for child in root:
        if isinstance(child.tag, str) and child.tag in _REFUSED_NETWORK:
            raise tree.error(child, f"not allowed: {_REFUSED_NETWORK[child.tag]}", ctx)
    _check_children(tree, root, _NETWORK_CHILDREN, ctx)
    _check_attrs(tree, root, (), ctx)

    name_elem = _one(tree, root, "name", ctx, required=True)
    assert name_elem is not None
    name = _netname(tree, name_elem, (name_elem.text or "").strip(), "network name", ctx)
    ctx = f"network {name!r}"

    uuid = None
    uuid_elem = _one(tree, root, "uuid", ctx, required=False)
    if uuid_elem is not None:
        raw = (uuid_elem.text or "").strip()
        try:
            uuid = str(_uuid.UUID(raw))
        except ValueError:
            raise tree.error(uuid_elem, f"{raw!r} is not a UUID", ctx) from None

    fwd = _one(tree, root, "forward", ctx, required=True)
    assert fwd is not None
    managed, pool = _parse_forward(tree, fwd, ctx)

    vlan_elem = _one(tree, root, "vlan", ctx, required=False)
    vport_elem = _one(tree, root, "virtualport", ctx, required=False)
    portgroups: list[PortGroup] = []
    default: str | None = None
    for pg_elem in _children(root, "portgroup"):
        pg = _parse_portgroup(tree, pg_elem, ctx)
        if any(p.name == pg.name for p in portgroups):
            raise tree.error(pg_elem, f"portgroup name {pg.name!r} is used twice", ctx)
        if pg.default:
            if default is not None:
                raise tree.error(
                    pg_elem, f"two default portgroups ({default!r} and {pg.name!r})", ctx
                )
            default = pg.name
        portgroups.append(pg)
    return NetworkSpec(
        name=name,
        uuid=uuid,
        managed=managed,
        pool=tuple(pool),
        vlan=_parse_vlan(tree, vlan_elem, ctx) if vlan_elem is not None else None,
        virtualport=_parse_virtualport(tree, vport_elem, ctx) if vport_elem is not None else None,
        portgroups=tuple(portgroups),
    )


def _parse_forward(tree: _Tree, fwd: ET.Element, ctx: str) -> tuple[bool, list[PoolEntry]]:
    _check_attrs(tree, fwd, ("mode", "managed", "dev"), ctx)
    mode = fwd.get("mode")
    if mode not in FORWARD_MODES:
        shown = "missing (libvirt's default is 'nat')" if mode is None else repr(mode)
        raise tree.error(fwd, f"forward mode {shown}: a VF pool needs mode='hostdev' "
                         "('hardware' and 'device' are accepted as the same)", ctx)
    managed = _yes_no(tree, fwd, "managed", ctx)
    nat = _children(fwd, "nat")
    if nat:
        raise tree.error(nat[0], "not allowed: a hostdev network does no NAT", ctx)
    _check_children(tree, fwd, ("interface", "pf", "address", "driver"), ctx)
    for drv in _children(fwd, "driver"):
        _check_attrs(tree, drv, ("name",), ctx)
        if drv.get("name", "vfio") != "vfio":
            raise tree.error(drv, f"name={drv.get('name')!r}: only 'vfio' is supported", ctx)
    pool: list[PoolEntry] = []
    seen: dict[tuple[str, object], ET.Element] = {}
    for child in fwd:
        if child.tag == "interface" or child.tag == "pf":
            _check_attrs(tree, child, ("dev",), ctx)
            if "dev" not in child.attrib:
                raise tree.error(child, "attribute 'dev' is missing", ctx)
            kind: Literal["interface", "pf"] = "pf" if child.tag == "pf" else "interface"
            entry = PoolEntry(kind, _netdev(tree, child, "dev", ctx), None)
            ident: tuple[str, object] = ("dev", entry.dev)
        elif child.tag == "address":
            _check_attrs(tree, child, (*_COORDS, "type"), ctx)
            if child.get("type", "pci") != "pci":
                raise tree.error(child, f"type={child.get('type')!r}: only 'pci' is supported", ctx)
            entry = PoolEntry("address", None, _pci(tree, child, ctx))
            ident = ("address", entry.address)
        else:
            continue
        if ident in seen:
            raise tree.error(child, "duplicate pool entry (same device listed twice)", ctx)
        seen[ident] = child
        pool.append(entry)
    dev = fwd.get("dev")
    if dev is not None:
        dev = _netdev(tree, fwd, "dev", ctx)
        if not pool:
            pool.append(PoolEntry("interface", dev, None))
        elif ("dev", dev) not in seen:
            raise tree.error(fwd, f"dev={dev!r} is not one of the pool's <interface>/<pf> entries",
                             ctx)
    if not pool:
        raise tree.error(fwd, "empty pool: list <interface dev=..>, <pf dev=..> or "
                         "<address type='pci' ..> entries", ctx)
    return managed, pool


def _parse_portgroup(tree: _Tree, elem: ET.Element, ctx: str) -> PortGroup:
    for child in elem:
        if isinstance(child.tag, str) and child.tag in _REFUSED_NETWORK:
            raise tree.error(child, f"not allowed: {_REFUSED_NETWORK[child.tag]}", ctx)
    _check_attrs(tree, elem, ("name", "default"), ctx)
    _check_children(tree, elem, ("vlan", "virtualport"), ctx)
    name = elem.get("name")
    if name is None:
        raise tree.error(elem, "attribute 'name' is missing", ctx)
    if not name or any(not ch.isprintable() for ch in name):
        raise tree.error(elem, f"name={name!r}: not a portgroup name", ctx)
    pg_ctx = f"{ctx}, portgroup {name!r}"
    vlan_elem = _one(tree, elem, "vlan", pg_ctx, required=False)
    vport_elem = _one(tree, elem, "virtualport", pg_ctx, required=False)
    return PortGroup(
        name=name,
        default=_yes_no(tree, elem, "default", pg_ctx),
        vlan=_parse_vlan(tree, vlan_elem, pg_ctx) if vlan_elem is not None else None,
        virtualport=(
            _parse_virtualport(tree, vport_elem, pg_ctx) if vport_elem is not None else None
        ),
    )


def network_to_xml(spec: NetworkSpec) -> str:
    """libvirt's format for ``spec`` (forward mode written as 'hostdev');
    ``parse_network(network_to_xml(s)) == s``."""
    root = ET.Element("network")
    ET.SubElement(root, "name").text = spec.name
    if spec.uuid is not None:
        ET.SubElement(root, "uuid").text = spec.uuid
    managed = "yes" if spec.managed else "no"
    fwd = ET.SubElement(root, "forward", {"mode": "hostdev", "managed": managed})
    for entry in spec.pool:
        if entry.kind == "address":
            assert entry.address is not None
            ET.SubElement(fwd, "address", {"type": "pci", **entry.address.xml_attrs()})
        else:
            ET.SubElement(fwd, entry.kind, {"dev": str(entry.dev)})
    if spec.vlan is not None:
        root.append(_vlan_elem(spec.vlan))
    if spec.virtualport is not None:
        root.append(_virtualport_elem(spec.virtualport))
    for pg in spec.portgroups:
        attrs = {"name": pg.name}
        if pg.default:
            attrs["default"] = "yes"
        pg_elem = ET.SubElement(root, "portgroup", attrs)
        if pg.vlan is not None:
            pg_elem.append(_vlan_elem(pg.vlan))
        if pg.virtualport is not None:
            pg_elem.append(_virtualport_elem(pg.virtualport))
    ET.indent(root, space="  ")
    out: list[str] = []
    _write(out, root, {}, {})
    return "".join(out) + "\n"


# --------------------------------------------------------------------------------------------
# Files
# --------------------------------------------------------------------------------------------


def write_atomic(path: str | os.PathLike[str], text: str) -> None:
    """Replace the file at ``path`` with ``text`` (UTF-8) atomically: write a temporary file in
    the same directory, fsync it, rename it over ``path``, fsync the directory. A symlink is
    followed (its target is replaced); an existing file's permission bits and owner are kept, a
    new file gets 0644. On failure the temporary file is removed and the old file is untouched;
    the error is a :class:`~pyvfmac.errors.KernelError` naming the path and the step."""
    target = os.path.realpath(os.fspath(path))
    directory = os.path.dirname(target) or "."
    step = "create a temporary file"
    tmp: str | None = None
    try:
        try:
            st: os.stat_result | None = os.stat(target)
        except FileNotFoundError:
            st = None
        fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(target)}.", suffix=".tmp",
                                   dir=directory)
        with os.fdopen(fd, "wb") as fh:
            step = "write"
            fh.write(text.encode("utf-8"))
            fh.flush()
            step = "fsync"
            os.fsync(fh.fileno())
            step = "set permissions"
            os.fchmod(fh.fileno(), stat.S_IMODE(st.st_mode) if st else 0o644)
            if st is not None and (st.st_uid, st.st_gid) != (os.getuid(), os.getgid()):
                os.fchown(fh.fileno(), st.st_uid, st.st_gid)
        step = "rename"
        os.replace(tmp, target)
        tmp = None
        step = "fsync the directory"
        dfd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError as exc:
        raise KernelError(exc.errno or 0, f"cannot {step} for {target}", device=None) from exc
    finally:
        if tmp is not None:
            try:
                os.unlink(tmp)
            except OSError:
                pass

