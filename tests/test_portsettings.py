"""Port settings: one VLAN tag and one 802.1Qbh/802.1Qbg virtualport, read and written."""

from __future__ import annotations

import pytest

from pyvfmac.errors import XmlError
from pyvfmac.portsettings import (
    VirtualPort,
    Vlan,
    parse_virtualport,
    parse_vlan,
    virtualport_to_elem,
    vlan_to_elem,
)
from pyvfmac.xmltree import Tree, serialize


@pytest.mark.parametrize("vid", [-1, 4096, True, "5"])
def test_vlan_out_of_range_refused(vid: object) -> None:
    with pytest.raises(XmlError, match="not in 0..4095"):
        Vlan(vid)  # type: ignore[arg-type]


@pytest.mark.parametrize("vid", [0, 1, 4095])
def test_vlan_written_and_read_back(vid: int) -> None:
    text = serialize(vlan_to_elem(Vlan(vid)))
    assert text == f"<vlan>\n  <tag id='{vid}'/>\n</vlan>\n"
    tree = Tree(text, "t")
    assert parse_vlan(tree, tree.root, "ctx") == Vlan(vid)


@pytest.mark.parametrize(
    "vport",
    [
        VirtualPort("802.1Qbh", profileid="prof"),
        VirtualPort("802.1Qbh", profileid="p" * 39,
                    instanceid="09b11c53-8b5c-4eeb-8f00-d84eaa0aaa4f"),
        VirtualPort("802.1Qbg", managerid=1, typeid=0xFFFFFF, typeidversion=255),
    ],
)
def test_virtualport_written_and_read_back(vport: VirtualPort) -> None:
    tree = Tree(serialize(virtualport_to_elem(vport)), "t")
    assert parse_virtualport(tree, tree.root, "ctx") == vport


@pytest.mark.parametrize(
    "xml, needle",
    [
        ("<virtualport type='802.1Qbh'><parameters profileid='{}'/></virtualport>".format("p" * 40),
         "must be 1 to 39 bytes"),
        ("<virtualport type='802.1Qbg'><parameters managerid='0' typeid='1' typeidversion='1'/>"
         "</virtualport>", "0 is reserved"),
        ("<virtualport type='802.1Qbh'/>", "<parameters> is missing"),
        ("<vlan><tag id='1'/><tag id='2'/></vlan>", "exactly one <tag>; found 2"),
    ],
)
def test_settings_errors(xml: str, needle: str) -> None:
    tree = Tree(xml, "t.xml")
    parse = parse_vlan if tree.root.tag == "vlan" else parse_virtualport
    with pytest.raises(XmlError, match=needle) as info:
        parse(tree, tree.root, "ctx")
    assert str(info.value).startswith("t.xml:1: ")
