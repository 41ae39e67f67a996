"""The round-trip XML engine: what a document keeps when written back, hostile input refused."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest
from xmlcases import ADDR, MAC, Parser, etree, expect_error, hd

from pyvfmac.domain import DeviceDocument
from pyvfmac.errors import XmlError
from pyvfmac.network import parse_network
from pyvfmac.xmltree import Tree, insert_child, pci_address_elem, remove_child, serialize


# ------------------------------------------------------------------------------------------
# Written back as read
# ------------------------------------------------------------------------------------------


def test_comments_namespaces_and_declaration_kept() -> None:
    text = ("<?xml version='1.0' encoding='ISO-8859-1'?>\n<!--before-->\n"
            "<domain xmlns:q='urn:q'><q:x q:a='1'>\u00e9</q:x><devices><!--c--><hostdev "
            f"mode='subsystem' type='pci'><source><address network='n'/></source>"
            f"<mac address='{MAC}'/></hostdev></devices></domain>\n<?after x?>\n")
    out = DeviceDocument.parse(text.encode("latin-1")).to_string()
    assert out == text.replace("ISO-8859-1", "UTF-8")


def test_default_namespace_is_kept_and_new_elements_stay_out_of_it() -> None:
    text = ("<domain><devices><interface type='network'><source network='n'/>"
            f"<mac address='{MAC}'/></interface></devices><m xmlns='urn:m'><a/></m></domain>")
    doc = DeviceDocument.parse(text)
    assert doc.to_string() == text + "\n"
    doc.set_address(0, ADDR)
    assert etree(doc.to_string()).find("{urn:m}m/{urn:m}a") is not None


def test_indentation_of_inserted_address() -> None:
    text = ("<domain>\n  <devices>\n    <interface type='network'>\n      <source network='n'/>\n"
            f"      <mac address='{MAC}'/>\n    </interface>\n  </devices>\n</domain>\n")
    doc = DeviceDocument.parse(text)
    doc.set_address(0, ADDR)
    assert ("      <source network='n'>\n        <address type='pci' domain='0x0000' bus='0x06'"
            " slot='0x02' function='0x0'/>\n      </source>\n") in doc.to_string()
    doc.clear_address(0)
    assert doc.to_string() == text


# ------------------------------------------------------------------------------------------
# Hostile documents
# ------------------------------------------------------------------------------------------


BILLION_LAUGHS = """<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
]>
<hostdev mode='subsystem' type='pci'><source><address netdev='&lol4;'/></source></hostdev>"""


EXTERNAL = """<?xml version="1.0"?>
<!DOCTYPE hostdev [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<hostdev mode='subsystem' type='pci'><source><address netdev='&xxe;'/></source></hostdev>"""


EXTERNAL_DTD = """<?xml version="1.0"?>
<!DOCTYPE hostdev SYSTEM "http://example.invalid/x.dtd">
<hostdev/>"""


@pytest.mark.parametrize("parse", [DeviceDocument.parse, parse_network])
@pytest.mark.parametrize("text", [BILLION_LAUGHS, EXTERNAL, EXTERNAL_DTD])
def test_dtd_and_entities_refused(text: str, parse: Parser) -> None:
    expect_error(text, "refused", "DOCTYPE", parse=parse)


def test_undefined_entity_is_malformed() -> None:
    expect_error(hd("<source><address netdev='&x;'/></source>"), "malformed XML",
                 "undefined entity")


def test_nesting_depth_bomb_refused() -> None:
    text = "<domain>" + "<a>" * 1000 + "</a>" * 1000 + "</domain>"
    expect_error(text, "nested deeper than 256")


def test_not_text_refused() -> None:
    with pytest.raises(XmlError, match="expected XML text"):
        DeviceDocument.parse(42)  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------------
# The engine on its own
# ------------------------------------------------------------------------------------------


def test_tree_round_trip_and_error_location() -> None:
    text = "<?xml version='1.0'?>\n<a x='1'>\n  <!--c-->\n  <b y='&apos;\"'>t&apos;</b>\n</a>\n"
    tree = Tree(text, "doc.xml")
    assert tree.to_string() == text
    b = tree.root[1]
    assert b.tag == "b" and b.get("y") == "'\""
    assert str(tree.error(b, "bad", "ctx")) == "doc.xml:4: <b y=''\"'> (ctx): bad"


def test_insert_and_remove_child_keep_indentation() -> None:
    text = "<a>\n  <b>\n    <c/>\n  </b>\n  <d/>\n</a>\n"
    tree = Tree(text, "t")
    b, d = tree.root[0], tree.root[1]
    insert_child(tree, b, ET.Element("e"))
    insert_child(tree, d, ET.Element("f"))
    assert tree.to_string() == ("<a>\n  <b>\n    <c/>\n    <e/>\n  </b>\n  <d>\n    <f/>\n"
                                "  </d>\n</a>\n")
    remove_child(b, b[1])
    remove_child(d, d[0])
    assert tree.to_string() == text


def test_serialize_writes_libvirt_format() -> None:
    root = ET.Element("network")
    ET.SubElement(root, "name").text = "a'b"
    ET.SubElement(root, "forward", {"mode": "hostdev", "note": "x'y"})
    assert serialize(root) == ("<network>\n  <name>a&apos;b</name>\n"
                               "  <forward mode='hostdev' note='x&apos;y'/>\n</network>\n")


@pytest.mark.parametrize(
    "attrs, expected",
    [
        ("type='pci' domain='0x0000' bus='0x06' slot='0x02' function='0x0'", ADDR),
        ("bus='6' slot='2' function='0'", ADDR),
        ("type='usb' bus='6' slot='2' function='0'", "type='usb': only 'pci' is supported"),
        ("bus='6' slot='2' function='0' netdev='eth0'", "unknown attribute 'netdev'"),
        ("bus='6' slot='40' function='0'", "slot='40'"),
    ],
)
def test_pci_address_elem(attrs: str, expected: object) -> None:
    tree = Tree(f"<address {attrs}/>", "t")
    if isinstance(expected, str):
        with pytest.raises(XmlError, match=expected):
            pci_address_elem(tree, tree.root, "ctx")
    else:
        assert pci_address_elem(tree, tree.root, "ctx") == expected
