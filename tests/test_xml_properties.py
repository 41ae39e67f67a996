"""Property tests (Hypothesis) of the XML layer: xmltree's round trip, device documents (domain.py)
and networks (network.py).

* whatever a document holds (elements, attributes with any characters, text, CDATA, character
  references, comments, processing instructions, namespace prefixes), what is written back parses
  to the same tree, and writing it again changes nothing;
* a generated domain parses to exactly the devices it was built from, and so does what is
  written back; editing pyvfmac's devices (set_address) leaves every other element as it was,
  and set_address + clear_address of a network reference gives back the document unchanged;
* a generated NetworkSpec survives network_to_xml + parse_network;
* any text, and any mutation of a valid document, either parses or raises an InputError
  (XmlError): never anything else.

Budget: the whole module stays within a few seconds in CI (max_examples below).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pyvfmac.domain import DeviceDocument
from pyvfmac.errors import InputError
from pyvfmac.network import NetworkSpec, PoolEntry, PortGroup, network_to_xml, parse_network
from pyvfmac.portsettings import VirtualPort, Vlan
from pyvfmac.types import PciAddress
from pyvfmac.xmltree import Tree

FAST = settings(max_examples=80, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

# ---------------------------------------------------------------- generic documents

# XML 1.0 characters (no surrogates, no U+FFFE/U+FFFF); the controls it allows are tab, LF, CR
XML_CHARS = st.characters(blacklist_categories=("Cs",), blacklist_characters="\ufffe\uffff")
xml_text = st.text(XML_CHARS, max_size=12).map(
    lambda s: "".join(c for c in s if c in "\t\n\r" or ord(c) >= 0x20))
NAMES = st.sampled_from(["a", "b", "devices", "disk", "hostdev", "source", "x-y", "z.1", "_u"])
PREFIXED = st.sampled_from(["q:cmd", "q:arg", "metadata"])


def esc_text(s: str, how: int) -> str:
    """s as element content, escaped one of several ways (all equivalent)."""
    if how == 1 and "]]>" not in s and "\r" not in s:
        return f"<![CDATA[{s}]]>"
    out = []
    for c in s:
        if c == "&":
            out.append("&amp;")
        elif c == "<":
            out.append("&lt;")
        elif c == ">":
            out.append("&gt;")
        elif c == "\r" or (how == 2 and not c.isalnum()):
            out.append(f"&#{ord(c)};")  # a raw CR would be read as LF
        else:
            out.append(c)
    return "".join(out)


def esc_attr(s: str, quote: str) -> str:
    out = []
    for c in s:
        if c in "&<" or c == quote or c in "\t\n\r":
            out.append(f"&#{ord(c)};")
        else:
            out.append(c)
    return "".join(out)


@st.composite
def element(draw: st.DrawFn, depth: int = 0) -> str:
    tag = draw(st.one_of(NAMES, PREFIXED))
    quote = draw(st.sampled_from("'\""))
    keys = draw(st.lists(st.sampled_from(["k", "type", "q:attr", "id", "name"]), unique=True,
                         max_size=3))
    attrs = "".join(f" {k}={quote}{esc_attr(draw(xml_text), quote)}{quote}" for k in keys)
    if depth >= 3 or draw(st.integers(0, 3)) == 0:
        return f"<{tag}{attrs}/>"
    parts = []
    for _ in range(draw(st.integers(0, 3))):
        kind = draw(st.integers(0, 5))
        if kind <= 2:
            parts.append(draw(element(depth + 1)))
        elif kind == 3:
            parts.append(esc_text(draw(xml_text), draw(st.integers(0, 2))))
        elif kind == 4:
            body = draw(xml_text).replace("-", "_").replace("\r", "")
            parts.append(f"<!--{body}-->")
        else:
            parts.append(f"<?pi-{draw(st.integers(0, 9))} {draw(st.sampled_from(['', 'a=1', 'x']))}?>")
    return f"<{tag}{attrs}>{''.join(parts)}</{tag}>"


@st.composite
def document(draw: st.DrawFn) -> str:
    decl = draw(st.sampled_from(["", "<?xml version='1.0'?>\n",
                                 '<?xml version="1.0" encoding="UTF-8"?>\n']))
    prolog = draw(st.sampled_from(["", "<!-- before -->\n", "<?pi before?>\n"]))
    default_ns = draw(st.sampled_from(["", " xmlns='urn:d'"]))
    body = draw(element(1))
    return (f"{decl}{prolog}<root xmlns:q='urn:q'{default_ns}>{body}"
            f"{esc_text(draw(xml_text), 0)}</root>\n")


def canon(elem: ET.Element) -> tuple:
    """The model of an element: what a round trip must keep."""
    return (str(elem.tag) if isinstance(elem.tag, str) else repr(elem.tag), dict(elem.attrib),
            elem.text or "", elem.tail or "", [canon(c) for c in elem])


@FAST
@given(document())
def test_tree_round_trip(text: str) -> None:
    tree = Tree(text, "t.xml")
    out = tree.to_string()
    again = Tree(out, "t.xml")
    assert canon(again.root) == canon(tree.root)
    assert [canon(n) for n in again.prolog] == [canon(n) for n in tree.prolog]
    assert again.to_string() == out
    # bytes in, same tree
    assert canon(Tree(text.encode(), "t.xml").root) == canon(tree.root)


# ---------------------------------------------------------------- device documents

NETDEV = st.from_regex(r"\A[a-z][a-z0-9_.-]{0,13}\Z")
NETNAME = st.from_regex(r"\A[a-zA-Z0-9][a-zA-Z0-9 _.-]{0,20}[a-zA-Z0-9]\Z")
MANAGED = st.sampled_from([None, "yes", "no"])


@dataclass(frozen=True)
class Want:
    form: str
    managed: bool
    mac: str
    address: PciAddress | None
    netdev: str | None
    network: str | None
    portgroup: str | None
    vlan: Vlan | None


def coords(a: PciAddress, quote: str = "'") -> str:
    return (f"domain={quote}0x{a.domain:04x}{quote} bus={quote}0x{a.bus:02x}{quote} "
            f"slot={quote}0x{a.slot:02x}{quote} function={quote}0x{a.function:x}{quote}")


@st.composite
def our_device(draw: st.DrawFn, i: int) -> tuple[str, Want]:
    mac = f"52:54:00:00:{i >> 8:02x}:{i & 255:02x}"
    addr = PciAddress(draw(st.integers(0, 3)), i & 0xFF, (i >> 8) & 0x1F, draw(st.integers(0, 7)))
    netdev = f"vf{i}" + draw(st.sampled_from(["", "x"]))
    network = draw(NETNAME)
    pg = draw(st.one_of(st.none(), st.sampled_from(["pg1", "gold"])))
    pgattr = f" portgroup='{pg}'" if pg else ""
    managed = draw(MANAGED)
    mattr = f" managed='{managed}'" if managed else ""
    vlan = draw(st.one_of(st.none(), st.integers(0, 4095).map(Vlan)))
    vxml = f"<vlan><tag id='{vlan.vid}'/></vlan>" if vlan else ""
    form = draw(st.sampled_from(["hd-addr", "hd-netdev", "hd-filled", "hd-net-addr",
                                 "hd-net-name", "if-hostdev", "if-network"]))
    mac_xml = f"<mac address='{mac.upper() if i % 2 else mac}'/>"
    w = dict(form="hostdev", managed=managed == "yes", mac=mac, address=None, netdev=None,
             network=None, portgroup=None, vlan=vlan)
    if form == "hd-addr":
        src = f"<address {coords(addr)}/>"
        w["address"] = addr
    elif form == "hd-netdev":
        src = f"<address netdev='{netdev}'/>"
        w["netdev"] = netdev
    elif form == "hd-filled":
        src = f"<address {coords(addr)} netdev='{netdev}'/>"
        w["address"], w["netdev"] = addr, netdev
    elif form == "hd-net-addr":
        src = f"<address network='{network}'{pgattr}/>"
        w["network"], w["portgroup"] = network, pg
    elif form == "hd-net-name":
        src = f"<network name='{network}'{pgattr}/>"
        w["network"], w["portgroup"] = network, pg
    if form.startswith("hd-"):
        xml = (f"<hostdev mode='subsystem' type='pci'{mattr}>\n        <source>{src}</source>\n"
               f"        {mac_xml}{vxml}\n      </hostdev>")
    elif form == "if-hostdev":
        xml = (f"<interface type='hostdev'{mattr}><source><address type='pci' {coords(addr)}/>"
               f"</source>{mac_xml}{vxml}</interface>")
        w["form"], w["address"] = "interface", addr
    else:
        xml = (f"<interface type='network'><source network='{network}'{pgattr}/>{mac_xml}{vxml}"
               "</interface>")
        w.update(form="interface", network=network, portgroup=pg, managed=False)
    return xml, Want(**w)  # type: ignore[arg-type]


FOREIGN = st.sampled_from([
    "<disk type='file' device='disk'><driver name='qemu' type='qcow2'/>"
    "<source file='/var/lib/a &amp; b.qcow2'/><target dev='vda' bus='virtio'/></disk>",
    "<hostdev mode='subsystem' type='usb'><source><vendor id='0x1234'/></source></hostdev>",
    "<interface type='bridge'><mac address='52:54:00:ff:ff:01'/><source bridge='br0'/>"
    "</interface>",
    "<!-- a comment with <tags> &amp; -->",
    "<graphics type='vnc' port='-1' listen=\"0.0.0.0\"/>",
    "<?pi data?>",
    "<console type='pty'>text &#233; &lt;x&gt;<target type='serial'/></console>",
])


@st.composite
def domain(draw: st.DrawFn) -> tuple[str, list[Want]]:
    n = draw(st.integers(0, 5))
    ours = [draw(our_device(i + 1)) for i in range(n)]
    foreign = draw(st.lists(FOREIGN, max_size=4))
    items: list[tuple[bool, str]] = [(True, x) for x, _ in ours]
    for f in foreign:  # foreign elements anywhere between ours, order of ours kept
        items.insert(draw(st.integers(0, len(items))), (False, f))
    ws = draw(st.sampled_from(["\n    ", "", "\n\t"]))
    devs = "".join(ws + x for _, x in items)
    text = ("<domain type='kvm' xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'>\n"
            "  <name>vm&#45;1</name>\n  <devices>" + devs + "\n  </devices>\n"
            "  <qemu:commandline><qemu:arg value='-S'/></qemu:commandline>\n</domain>\n")
    return text, [w for _, w in ours]


def model(doc: DeviceDocument) -> list[Want]:
    return [Want(d.form, d.managed, d.mac, d.address, d.netdev, d.network, d.portgroup, d.vlan)
            for d in doc.devices]


def foreign_elems(doc_text: str) -> list[tuple]:
    """Everything in <devices> that is not pyvfmac's, and everything outside it, as models."""
    root = Tree(doc_text, "t.xml").root
    devices = root.find("devices")
    assert devices is not None
    keep = [canon(c) for c in root if c is not devices]
    for c in devices:
        ours = (c.tag == "hostdev" and c.find("mac") is not None) or (
            c.tag == "interface" and c.get("type") in ("hostdev", "network"))
        if not ours:
            keep.append(canon(c))
    return keep


@FAST
@given(domain())
def test_domain_parses_to_its_devices_and_round_trips(case: tuple[str, list[Want]]) -> None:
    text, want = case
    doc = DeviceDocument.parse(text, source="t.xml")
    assert model(doc) == want
    out = doc.to_string()
    assert model(DeviceDocument.parse(out, source="t.xml")) == want
    assert canon(Tree(out, "t.xml").root) == canon(Tree(text, "t.xml").root)


@FAST
@given(domain(), st.integers(0, 0xFF))
def test_set_address_touches_only_our_devices(case: tuple[str, list[Want]], bus: int) -> None:
    text, want = case
    doc = DeviceDocument.parse(text, source="t.xml")
    before = doc.to_string()
    for i, w in enumerate(want):
        new = PciAddress(0x10, bus, i, 0) if w.address is None else w.address
        doc.set_address(i, new)
    after = doc.to_string()
    assert foreign_elems(after) == foreign_elems(before)
    again = model(DeviceDocument.parse(after, source="t.xml"))
    for i, (w, got) in enumerate(zip(want, again)):
        assert got.address == (PciAddress(0x10, bus, i, 0) if w.address is None else w.address)
        assert (got.mac, got.network, got.netdev, got.portgroup) == (
            w.mac, w.network, w.netdev, w.portgroup)
    # a network reference goes back to its persistent form exactly
    for i, w in enumerate(want):
        if w.network is not None:
            doc.clear_address(i)
    if all(w.network is not None for w in want):
        assert doc.to_string() == before


# ---------------------------------------------------------------- networks

UUIDS = st.one_of(st.none(), st.uuids().map(str))
VPORTS = st.one_of(  # 802.1Qbg is refused in a network (a VF would need a VDP daemon)
    st.none(),
    st.builds(lambda p, u: VirtualPort("802.1Qbh", profileid=p, instanceid=u),
              st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7e), min_size=1,
                      max_size=39), UUIDS),
)
# A portgroup's virtualport merges with the network's (libvirt's rule): one that gives no
# parameter never conflicts.
PG_VPORTS = st.one_of(st.none(), st.just(VirtualPort("802.1Qbh")))
TRUST = st.one_of(st.none(), st.booleans())
VLANS = st.one_of(st.none(), st.integers(0, 4095).map(Vlan))


@st.composite
def network_spec(draw: st.DrawFn) -> NetworkSpec:
    n = draw(st.integers(1, 6))
    pool = []
    for i in range(n):
        kind = draw(st.sampled_from(["interface", "pf", "address"]))
        if kind == "address":
            pool.append(PoolEntry("address", None, PciAddress(0, 3, i, draw(st.integers(0, 7)))))
        else:
            pool.append(PoolEntry(kind, f"{'pf' if kind == 'pf' else 'if'}{i}", None))
    if any(e.kind == "pf" for e in pool):  # addresses beside a <pf>: libvirt's live list
        pool = [e for e in pool if e.kind != "address"]
    names = draw(st.lists(st.from_regex(r"\A[a-z][a-z0-9-]{0,8}\Z"), unique=True, max_size=3))
    default = draw(st.one_of(st.none(), st.sampled_from(names))) if names else None
    pgs = tuple(PortGroup(nm, nm == default, draw(VLANS), draw(PG_VPORTS), draw(TRUST))
                for nm in names)
    return NetworkSpec(name=draw(NETNAME), uuid=draw(UUIDS), managed=draw(st.booleans()),
                       pool=tuple(pool), vlan=draw(VLANS), virtualport=draw(VPORTS),
                       portgroups=pgs, trust_guest_rx_filters=draw(TRUST))


@FAST
@given(network_spec())
def test_network_round_trip(spec: NetworkSpec) -> None:
    text = network_to_xml(spec)
    assert parse_network(text, source="n.xml") == spec
    assert network_to_xml(parse_network(text.encode(), source="n.xml")) == text


# ---------------------------------------------------------------- hostile input

def only_input_errors(parse, data: str | bytes) -> None:  # type: ignore[no-untyped-def]
    """parse(data) returns, or raises an InputError whose message names the source."""
    try:
        parse(data, source="t.xml")
    except InputError as exc:
        assert str(exc).startswith("t.xml"), str(exc)


@st.composite
def mutated(draw: st.DrawFn, base: st.SearchStrategy[str]) -> str:
    text = draw(base)
    for _ in range(draw(st.integers(1, 4))):
        pos = draw(st.integers(0, len(text)))
        op = draw(st.integers(0, 2))
        piece = draw(st.sampled_from(["<", ">", "'", "&", "&#0;", "&#x110000;", "<!DOCTYPE x>",
                                      "<!ENTITY e 'x'>", "]]>", "\0", "\ud800", "\x85", "=",
                                      " managed='maybe'", " domain='0x10000'", "<mac/>",
                                      "<source/>", "</devices>", "<address netdev='a/b'/>"]))
        if op == 0:
            text = text[:pos] + piece + text[pos:]
        elif op == 1:
            text = text[:pos] + text[pos + draw(st.integers(1, 20)):]
        else:
            text = text[:pos] + draw(xml_text) + text[pos:]
    return text


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.one_of(mutated(domain().map(lambda c: c[0])),
                 mutated(network_spec().map(network_to_xml)),
                 st.text(max_size=200), st.binary(max_size=200)))
def test_any_input_parses_or_raises_input_error(data: str | bytes) -> None:
    only_input_errors(DeviceDocument.parse, data)
    only_input_errors(parse_network, data)
    if isinstance(data, str):
        only_input_errors(DeviceDocument.parse, data.encode("utf-8", "surrogatepass"))
