"""Device documents: every accepted form, whole domains, the live form, errors, the merge policy."""

from __future__ import annotations

import random
import xml.etree.ElementTree as ET
from dataclasses import replace

import pytest
from xmlcases import ADDR, DATA, MAC, domain_text, etree, expect_error, hd, random_addr

from pyvfmac.domain import DeviceDocument, DeviceSpec, effective_managed, merge_settings
from pyvfmac.errors import PoolError, XmlError
from pyvfmac.network import NetworkSpec, PoolEntry, parse_network
from pyvfmac.portsettings import VirtualPort, Vlan
from pyvfmac.types import PciAddress


def one(xml: str) -> DeviceSpec:
    doc = DeviceDocument.parse(xml)
    assert len(doc.devices) == 1
    return doc.devices[0]


def shape(elem: ET.Element) -> tuple[object, ...]:
    """An element tree as a comparable value (whitespace-only text ignored)."""
    text = (elem.text or "").strip()
    return (elem.tag, dict(elem.attrib), text, tuple(shape(c) for c in elem))


# ------------------------------------------------------------------------------------------
# Every accepted device form
# ------------------------------------------------------------------------------------------


PROPOSAL = f"""<hostdev mode='subsystem' type='pci' managed='yes'>
  <source>
    <address domain='0x0000' bus='0x06' slot='0x02' function='0x0'/>
  </source>
  <mac address='{MAC}'/>
</hostdev>"""


def test_proposal_form() -> None:
    spec = one(PROPOSAL)
    assert spec == DeviceSpec(0, "hostdev", True, MAC, ADDR, None, None, None, None, None)
    assert spec.key == "pci:0000:06:02.0"


def test_proposal_form_domain_optional_mode_optional_mac_in_source_managed_default() -> None:
    spec = one(
        "<hostdev type='pci'><source><address bus='6' slot='2' function='0'/>"
        "<mac address='52-54-00-6D-90-02'/></source></hostdev>"
    )
    assert spec.address == ADDR and spec.mac == MAC and spec.managed is False


def test_libvirt_interface_hostdev_form() -> None:
    spec = one(
        f"""<interface type='hostdev' managed='no'>
          <driver name='vfio'/>
          <source>
            <address type='pci' domain='0x0001' bus='0x81' slot='0x1f' function='0x7'/>
          </source>
          <mac address='{MAC}'/>
          <vlan><tag id='4095'/></vlan>
          <virtualport type='802.1Qbh'><parameters profileid='finance'/></virtualport>
          <address type='pci' domain='0x0000' bus='0x00' slot='0x07' function='0x0'/>
        </interface>"""
    )
    assert spec.form == "interface" and spec.managed is False
    assert spec.address == PciAddress(1, 0x81, 0x1F, 7)  # source address, not the guest one
    assert spec.vlan == Vlan(4095)
    assert spec.virtualport == VirtualPort("802.1Qbh", profileid="finance")


def test_vlan_and_qbg_virtualport_on_hostdev() -> None:
    # 802.1Qbg is checked like any virtualport, then refused: no VDP daemon is driven.
    expect_error(
        f"""<hostdev mode='subsystem' type='pci'><source><address bus='6' slot='2' function='0'/>
        </source><mac address='{MAC}'/><vlan trunk='no'><tag id='0'/></vlan>
        <virtualport type='802.1Qbg'><parameters managerid='0xb' typeid='1193047'
        typeidversion='2' instanceid='09B11C53-8B5C-4EEB-8F00-D84EAA0AAA4F'/></virtualport>
        </hostdev>""", "802.1Qbg", "not supported", "lldpad")


@pytest.mark.parametrize(
    "source, address, netdev",
    [
        ("<address netdev='eth22'/>", None, "eth22"),
        ("<network dev='eth22'/>", None, "eth22"),
        (
            "<address domain='0x0000' bus='0x06' slot='0x02' function='0x0' netdev='eth22'/>",
            ADDR,
            "eth22",
        ),
        ("<network dev='eth22'/><address bus='0x06' slot='0x02' function='0x0'/>", ADDR, "eth22"),
    ],
)
def test_step2_netdev_forms(source: str, address: PciAddress | None, netdev: str) -> None:
    spec = one(f"<hostdev mode='subsystem' type='pci'><source>{source}</source>"
               f"<mac address='{MAC}'/></hostdev>")
    assert (spec.address, spec.netdev, spec.network) == (address, netdev, None)
    assert spec.key == ("pci:0000:06:02.0" if address else "netdev:eth22")


@pytest.mark.parametrize(
    "device, portgroup",
    [
        ("<hostdev mode='subsystem' type='pci' managed='yes'><source>"
         "<address network='passthrough-net'/></source><mac address='%s'/></hostdev>", None),
        ("<hostdev mode='subsystem' type='pci'><source><address network='passthrough-net' "
         "portgroup='pg1'/></source><mac address='%s'/></hostdev>", "pg1"),
        ("<hostdev mode='subsystem' type='pci'><source><network name='passthrough-net'/>"
         "</source><mac address='%s'/></hostdev>", None),
        ("<hostdev mode='subsystem' type='pci'><source><network name='passthrough-net' "
         "portgroup='pg1'/></source><mac address='%s'/></hostdev>", "pg1"),
        ("<interface type='network'><source network='passthrough-net' portgroup='pg1'/>"
         "<mac address='%s'/></interface>", "pg1"),
        ("<interface type='network'><source network='passthrough-net'/>"
         "<mac address='%s'/></interface>", None),
    ],
)
def test_step3_network_forms(device: str, portgroup: str | None) -> None:
    spec = one(device % MAC)
    assert spec.network == "passthrough-net" and spec.portgroup == portgroup
    assert spec.address is None and spec.netdev is None
    assert spec.key == f"network:passthrough-net/{MAC}"


# ------------------------------------------------------------------------------------------
# Whole domains
# ------------------------------------------------------------------------------------------


def test_domain_devices_found_in_order() -> None:
    doc = DeviceDocument.parse(domain_text(), source="domain-mixed.xml")
    assert doc.kind == "domain"
    got = [(d.index, d.form, d.key) for d in doc.devices]
    assert got == [
        (0, "hostdev", "pci:0000:06:10.0"),
        (1, "interface", "pci:0000:06:10.2"),
        (2, "hostdev", "netdev:eth22"),
        (3, "hostdev", "network:passthrough-net/52:54:00:6d:90:05"),
        (4, "hostdev", "network:passthrough-net/52:54:00:6d:90:06"),
        (5, "interface", "network:passthrough-net/52:54:00:6d:90:07"),
    ]
    assert doc.devices[0].vlan == Vlan(42)
    assert doc.devices[4].portgroup == "engineering"


def test_domain_written_back_byte_for_byte_when_unchanged() -> None:
    text = domain_text()
    assert DeviceDocument.parse(text).to_string() == text


def test_domain_set_then_clear_restores_persistent_form_exactly() -> None:
    text = domain_text()
    doc = DeviceDocument.parse(text)
    doc.set_address(2, PciAddress(0, 6, 0x10, 6))
    for i in (3, 4, 5):
        doc.set_address(i, PciAddress(0, 7, 0x10, i))
    live = doc.to_string()
    assert live != text
    for i in (3, 4, 5):
        doc.clear_address(i)
    step2 = DeviceDocument.parse(text)
    step2.set_address(2, PciAddress(0, 6, 0x10, 6))
    assert doc.to_string() == step2.to_string()


def test_domain_unrelated_elements_unchanged_after_set_address() -> None:
    text = domain_text()
    doc = DeviceDocument.parse(text)
    for i in (3, 4, 5):
        doc.set_address(i, PciAddress(0, 7, 0x10, i))
    doc.set_address(2, PciAddress(0, 6, 0x10, 6))
    before, after = etree(text), etree(doc.to_string())
    # Everything outside <devices> is identical.
    assert [shape(e) for e in before if e.tag != "devices"] == [
        shape(e) for e in after if e.tag != "devices"
    ]
    devices_before, devices_after = before.find("devices"), after.find("devices")
    assert devices_before is not None and devices_after is not None
    tags = [(e.tag, e.get("type")) for e in devices_before]
    assert tags == [(e.tag, e.get("type")) for e in devices_after]
    # Positions in <devices> of the four devices given an address (our devices 2..5).
    changed = {6, 7, 8, 9}
    assert tags[6] == ("hostdev", "pci") and tags[9] == ("interface", "network")
    for pos, (b, a) in enumerate(zip(devices_before, devices_after)):
        if pos in changed:
            assert shape(b) != shape(a)
            # Only <source> changed: the device's attributes and other children are untouched.
            assert b.attrib == a.attrib
            assert [shape(c) for c in b if c.tag != "source"] == [
                shape(c) for c in a if c.tag != "source"
            ]
        else:
            assert shape(b) == shape(a)


def test_live_documents_parse_back_to_the_same_devices() -> None:
    doc = DeviceDocument.parse(domain_text())
    doc.set_address(2, PciAddress(0, 6, 0x10, 6))
    for i in (3, 4, 5):
        doc.set_address(i, PciAddress(0, 7, 0x10, i))
    again = DeviceDocument.parse(doc.to_string())
    assert again.devices == doc.devices
    live = again.devices
    assert live[2].address == PciAddress(0, 6, 0x10, 6) and live[2].netdev == "eth22"
    assert live[5].address == PciAddress(0, 7, 0x10, 5) and live[5].network == "passthrough-net"
    # The allocation's key is the same in the live and the persistent form.
    persistent = DeviceDocument.parse(domain_text()).devices
    assert [d.key for d in live[3:]] == [d.key for d in persistent[3:]]


def test_live_form_of_each_network_reference() -> None:
    addr = PciAddress(0, 0x81, 0x10, 3)
    cases = {
        "<hostdev mode='subsystem' type='pci'><source><address network='n'/></source>"
        f"<mac address='{MAC}'/></hostdev>":
        "<address domain='0x0000' bus='0x81' slot='0x10' function='0x3' network='n'/>",
        "<hostdev mode='subsystem' type='pci'><source><network name='n'/></source>"
        f"<mac address='{MAC}'/></hostdev>":
        "<network name='n'/><address domain='0x0000' bus='0x81' slot='0x10' function='0x3'/>",
        "<interface type='network'><source network='n'/>"
        f"<mac address='{MAC}'/></interface>":
        "<source network='n'><address type='pci' domain='0x0000' bus='0x81' slot='0x10' "
        "function='0x3'/></source>",
    }
    for persistent, fragment in cases.items():
        doc = DeviceDocument.parse(persistent)
        doc.set_address(0, addr)
        assert fragment in doc.to_string()
        assert doc.devices[0].address == addr
        doc.clear_address(0)
        assert doc.to_string() == persistent + "\n"
        assert doc.devices[0].address is None


def test_clear_address_of_live_input() -> None:
    live = ("<interface type='network'><source network='n'><address type='pci' domain='0' bus='1'"
            f" slot='2' function='3'/></source><mac address='{MAC}'/></interface>")
    doc = DeviceDocument.parse(live)
    assert doc.devices[0].address == PciAddress(0, 1, 2, 3)
    doc.clear_address(0)
    assert doc.to_string() == (
        f"<interface type='network'><source network='n'/><mac address='{MAC}'/></interface>\n"
    )


def test_set_address_keeps_netdev_and_orders_coordinates_first() -> None:
    doc = DeviceDocument.parse("<hostdev mode='subsystem' type='pci'><source><address "
                               f"netdev='eth22'/></source><mac address='{MAC}'/></hostdev>")
    doc.set_address(0, ADDR)
    assert ("<address domain='0x0000' bus='0x06' slot='0x02' function='0x0' netdev='eth22'/>"
            in doc.to_string())
    assert doc.devices[0].netdev == "eth22" and doc.devices[0].key == "pci:0000:06:02.0"
    doc.set_address(0, ADDR)  # the same address again: fine


def test_set_address_refuses_a_different_vf_naming_both() -> None:
    doc = DeviceDocument.parse(PROPOSAL)
    with pytest.raises(XmlError, match=r"0000:06:02\.0.*0000:06:03\.0"):
        doc.set_address(0, PciAddress(0, 6, 3, 0))


def test_set_address_refuses_an_address_another_device_has() -> None:
    doc = DeviceDocument.parse(domain_text())
    with pytest.raises(XmlError, match=r"0000:06:10\.0 is already used by device 0"):
        doc.set_address(3, PciAddress(0, 6, 0x10, 0))


def test_set_and_clear_address_misuse() -> None:
    doc = DeviceDocument.parse(PROPOSAL)
    with pytest.raises(XmlError, match="network reference only"):
        doc.clear_address(0)
    with pytest.raises(XmlError, match="no device 1"):
        doc.set_address(1, ADDR)


def test_domain_without_our_devices() -> None:
    doc = DeviceDocument.parse("<domain><devices><hostdev mode='subsystem' type='pci'><source>"
                               "<address bus='1' slot='0' function='0'/></source></hostdev>"
                               "</devices></domain>")
    assert doc.devices == ()


# ------------------------------------------------------------------------------------------
# Errors: every case names the element and the value
# ------------------------------------------------------------------------------------------


SRC = "<source><address bus='0x06' slot='0x02' function='0x0'/></source>"


@pytest.mark.parametrize(
    "xml, needles",
    [
        ("<hostdev", ("malformed XML",)),
        ("<hostdev></interface>", ("malformed XML", "mismatched tag")),
        ("", ("malformed XML",)),
        ("<disk/>", ("<disk>", "root element")),
        (hd(SRC, mac="01:00:5e:00:00:01"), ("<mac address='01:00:5e:00:00:01'>", "multicast")),
        (hd(SRC, mac="ff:ff:ff:ff:ff:ff"), ("<mac address='ff:ff:ff:ff:ff:ff'>", "broadcast")),
        (hd(SRC, mac="52:54:00:6d:90"), ("<mac address='52:54:00:6d:90'>", "six hexadecimal")),
        (hd(SRC, mac="00:00:00:00:00:00"), ("<mac address='00:00:00:00:00:00'>", "all-zero")),
        (hd(SRC, mac="52:54:00:6d:90:02:03"), ("52:54:00:6d:90:02:03",)),
        ("<hostdev mode='subsystem' type='pci'><source><mac/><address bus='1' slot='0' "
         "function='0'/></source></hostdev>", ("<mac>", "'address' is missing")),
        (hd("<source><address bus='0x100' slot='0x02' function='0x0'/></source>"),
         ("bus='0x100'", "PCI address bus 256: not in 0..0xff")),
        (hd("<source><address bus='0x06' slot='0x20' function='0x0'/></source>"),
         ("slot='0x20'", "slot 32")),
        (hd("<source><address bus='0x06' slot='0x02' function='8'/></source>"),
         ("function='8'", "function 8")),
        (hd("<source><address domain='0x100000000' bus='6' slot='2' function='0'/></source>"),
         ("domain='0x100000000'",)),
        (hd("<source><address bus='0x0g' slot='0x02' function='0x0'/></source>"),
         ("bus='0x0g'", "not a number")),
        (hd("<source><address bus='-1' slot='0x02' function='0x0'/></source>"),
         ("bus='-1'", "negative")),
        (hd("<source><address bus='6' function='0'/></source>"), ("<address bus='6'", "'slot'")),
        (hd(SRC, attrs="mode='subsystem' type='usb'"), ("<hostdev", "type='usb'", "'pci'")),
        (hd(SRC, attrs="type='pci' mode='capabilities'"), ("mode='capabilities'", "subsystem")),
        (hd(SRC, attrs="mode='subsystem'"), ("<hostdev mode='subsystem'>", "'type' is missing")),
        (hd(SRC, attrs="mode='subsystem' type='pci' managed='true'"),
         ("managed='true'", "'yes' or 'no'")),
        ("<interface type='bridge'><source bridge='br0'/><mac address='52:54:00:00:00:01'/>"
         "</interface>", ("<interface type='bridge'>", "'hostdev' or 'network'")),
        (f"<interface>{SRC}<mac address='{MAC}'/></interface>", ("'type' is missing",)),
        (f"<interface type='hostdev'>{SRC}</interface>", ("<interface type='hostdev'>",
                                                          "fixed MAC required")),
        (f"<hostdev mode='subsystem' type='pci'>{SRC}</hostdev>",
         ("<hostdev", "fixed MAC required")),
        (f"<interface type='hostdev'><source><address type='usb' bus='1' slot='2' function='0'/>"
         f"</source><mac address='{MAC}'/></interface>", ("type='usb'", "'pci'")),
        (hd(SRC + "<vlan trunk='yes'><tag id='42'/></vlan>"), ("<vlan trunk='yes'>", "trunk")),
        (hd(SRC + "<vlan><tag id='42'/><tag id='43'/></vlan>"), ("<vlan>", "found 2")),
        (hd(SRC + "<vlan/>"), ("<vlan>", "found 0")),
        (hd(SRC + "<vlan><tag id='4096'/></vlan>"), ("<tag id='4096'>", "0..4095")),
        (hd(SRC + "<vlan><tag id='-1'/></vlan>"), ("<tag id='-1'>", "0..4095")),
        (hd(SRC + "<vlan><tag id='x'/></vlan>"), ("<tag id='x'>", "not a number")),
        (hd(SRC + "<vlan><tag id='4' nativeMode='tagged'/></vlan>"), ("nativeMode",)),
        (hd(SRC + "<vlan><tag id='4'/></vlan><vlan><tag id='5'/></vlan>"), ("only one <vlan>",)),
        (hd(SRC + "<virtualport type='openvswitch'><parameters interfaceid='x'/></virtualport>"),
         ("<virtualport type='openvswitch'>", "not for a VF")),
        (hd(SRC + "<virtualport type='midonet'/>"), ("type='midonet'", "not for a VF")),
        (hd(SRC + "<virtualport type='foo'><parameters/></virtualport>"), ("type='foo'",)),
        (hd(SRC + "<virtualport><parameters profileid='p'/></virtualport>"),
         ("'type' is missing",)),
        (hd(SRC + "<virtualport type='802.1Qbh'><parameters/></virtualport>"),
         ("<parameters>", "profileid")),
        (hd(SRC + "<virtualport type='802.1Qbh'/>"), ("<parameters> is missing",)),
        (hd(SRC + f"<virtualport type='802.1Qbh'><parameters profileid='{'p' * 40}'/>"
                  "</virtualport>"),
         ("profileid='ppp", "1 to 39 bytes")),
        (hd(SRC + "<virtualport type='802.1Qbh'><parameters profileid='p' typeid='1'/>"
                  "</virtualport>"),
         ("unknown attribute 'typeid'",)),
        (hd(SRC + "<virtualport type='802.1Qbg'><parameters managerid='0' typeid='1' "
                  "typeidversion='1'/></virtualport>"), ("managerid='0'", "reserved")),
        (hd(SRC + "<virtualport type='802.1Qbg'><parameters managerid='1' typeid='16777216' "
                  "typeidversion='1'/></virtualport>"), ("typeid='16777216'",)),
        (hd(SRC + "<virtualport type='802.1Qbg'><parameters managerid='1' typeid='1' "
                  "typeidversion='256'/></virtualport>"), ("typeidversion='256'",)),
        (hd(SRC + "<virtualport type='802.1Qbg'><parameters managerid='1' typeid='1'/>"
                  "</virtualport>"), ("'typeidversion' is missing",)),
        (hd(SRC + "<virtualport type='802.1Qbg'><parameters managerid='1' typeid='1' "
                  "typeidversion='1' instanceid='nope'/></virtualport>"),
         ("instanceid='nope'", "not a UUID")),
        (hd("<source><address netdev='eth/0'/></source>"), ("netdev='eth/0'", "'/'")),
        (hd("<source><address netdev='a-very-long-name0'/></source>"), ("a-very-long-name0", "15")),
        (hd("<source><network dev=''/></source>"), ("<network dev=''>",)),
        (hd("<source><address network=''/></source>"), ("<address network=''>", "empty")),
        (hd("<source><address network='a/b'/></source>"), ("network='a/b'", "'/'")),
        (hd("<source><address network='%s'/></source>" % ("n" * 65)), ("64 characters",)),
        (hd("<source><address netdev='eth0' network='n'/></source>"), ("not both",)),
        (hd("<source><network dev='eth0' name='n'/></source>"), ("exactly one of dev=",)),
        (hd("<source><network/></source>"), ("<network>", "exactly one of dev=")),
        (hd("<source><address netdev='eth0'/><network dev='eth1'/></source>"),
         ("<network dev='eth1'>", "already names netdev 'eth0'")),
        (hd("<source><address/></source>"), ("<address>", "netdev= or network=")),
        (hd("<source><network name='n'/><address netdev='x'/></source>"), ("<network name='n'>",)),
        (hd("<source/>"), ("<source>", "needs an <address>")),
        (hd(""), ("<source> is missing",)),
        (hd("<source><address netdev='eth0' portgroup='p'/></source>"),
         ("portgroup 'p' without a network",)),
        (hd("<source><address bus='6' slot='2' function='0' bogus='1'/></source>"),
         ("unknown attribute 'bogus'",)),
        (hd(SRC + f"<mac address='{MAC}'/>"), ("only one <mac>",)),
        (hd(SRC.replace("</source>", f"<mac address='{MAC}'/></source>")), ("only one <mac>",)),
        ("<interface type='network'><source/><mac address='%s'/></interface>" % MAC,
         ("<source>", "'network' is missing")),
        ("<interface type='network'><source network='n' portgroup=''/><mac address='%s'/>"
         "</interface>" % MAC, ("portgroup=''",)),
        ("<interface type='network'><source network='n'><address netdev='e'/></source>"
         "<mac address='%s'/></interface>" % MAC, ("unknown attribute 'netdev'",)),
    ],
)
def test_device_errors(xml: str, needles: tuple[str, ...]) -> None:
    expect_error(xml, *needles)


def test_error_names_line_and_device() -> None:
    text = domain_text().replace("<tag id='42'/>", "<tag id='5000'/>")
    message = expect_error(text, "<tag id='5000'>", "device 0 <hostdev>")
    line = next(i for i, l in enumerate(text.splitlines(), 1) if "5000" in l)
    assert message.startswith(f"t.xml:{line}:")


@pytest.mark.parametrize(
    "second, needles",
    [
        (hd("<source><address bus='7' slot='2' function='0'/></source>"),
         ("MAC 52:54:00:6d:90:02 is already used by device 0",)),
        (hd(SRC, mac="52:54:00:00:00:09"),
         ("PCI address 0000:06:02.0 is already used by device 0",)),
    ],
)
def test_duplicates_in_a_domain(second: str, needles: tuple[str, ...]) -> None:
    expect_error(f"<domain><devices>{hd(SRC)}{second}</devices></domain>", *needles)


def test_duplicate_netdev_and_mac_in_source_counted() -> None:
    first = hd("<source><address netdev='eth22'/></source>")
    second = hd("<source><network dev='eth22'/></source>", mac="52:54:00:00:00:09")
    expect_error(f"<domain><devices>{first}{second}</devices></domain>",
                 "netdev eth22 is already used by device 0")


def test_hostdev_of_other_type_with_mac_in_domain_is_an_error() -> None:
    expect_error("<domain><devices><hostdev mode='subsystem' type='usb'><source/>"
                 f"<mac address='{MAC}'/></hostdev></devices></domain>", "type='usb'")


def test_interface_without_mac_in_domain_is_an_error() -> None:
    expect_error("<domain><devices><interface type='network'><source network='n'/></interface>"
                 "</devices></domain>", "fixed MAC required")


# ------------------------------------------------------------------------------------------
# The merge policy
# ------------------------------------------------------------------------------------------


def test_settings_for_and_merge() -> None:
    spec = parse_network((DATA / "network-full.xml").read_text())
    qbh = VirtualPort("802.1Qbh", profileid="default-profile")
    iid = "09b11c53-8b5c-4eeb-8f00-d84eaa0aaa4f"
    qbh_sales = VirtualPort("802.1Qbh", profileid="default-profile", instanceid=iid)
    assert spec.settings_for(None) == (Vlan(200), qbh)  # default portgroup 'engineering'
    assert spec.settings_for("engineering") == (Vlan(200), qbh)
    assert spec.settings_for("sales") == (Vlan(100), qbh_sales)  # merged, libvirt's rule
    with pytest.raises(PoolError, match="no portgroup 'nope'.*'engineering', 'sales'"):
        spec.settings_for("nope")
    no_pg = NetworkSpec("n", None, False, (PoolEntry("pf", "e", None),), Vlan(7), None)
    assert no_pg.settings_for(None) == (Vlan(7), None)

    doc = DeviceDocument.parse(domain_text())
    by_pg = {d.portgroup: d for d in doc.devices if d.network}
    assert merge_settings(by_pg[None], spec) == (Vlan(200), qbh)
    assert merge_settings(by_pg["sales"], spec) == (Vlan(100), qbh_sales)
    own = DeviceDocument.parse(
        "<interface type='network'><source network='passthrough-net' portgroup='sales'/>"
        f"<mac address='{MAC}'/><vlan><tag id='9'/></vlan></interface>").devices[0]
    assert merge_settings(own, spec) == (Vlan(9), qbh_sales)  # device vlan wins
    with pytest.raises(PoolError, match="refers to network 'other'"):
        merge_settings(DeviceDocument.parse(
            f"<interface type='network'><source network='other'/><mac address='{MAC}'/>"
            "</interface>").devices[0], spec)


def test_effective_managed() -> None:
    ref = one(f"<interface type='network'><source network='n'/><mac address='{MAC}'/></interface>")
    managed_net = NetworkSpec("n", None, True, (PoolEntry("pf", "e", None),), None, None)
    unmanaged = replace(managed_net, managed=False)
    assert effective_managed(ref, managed_net) is True
    assert effective_managed(ref, unmanaged) is False
    assert effective_managed(one(PROPOSAL)) is True


# ------------------------------------------------------------------------------------------
# Property-style: random valid addresses, MACs, forms
# ------------------------------------------------------------------------------------------


def random_mac(rng: random.Random) -> str:
    octets = [rng.randrange(256) for _ in range(6)]
    octets[0] &= 0xFE  # unicast
    if not any(octets):
        octets[5] = 1
    return ":".join(f"{o:02x}" for o in octets)


def spell_mac(rng: random.Random, mac: str) -> str:
    raw = mac.replace(":", "")
    return rng.choice([
        mac, mac.upper(), "-".join(mac.split(":")),
        f"{raw[:4]}.{raw[4:8]}.{raw[8:]}", raw,
    ])


def spell_addr(rng: random.Random, addr: PciAddress) -> str:
    def num(v: int) -> str:
        return rng.choice([f"0x{v:x}", f"0x{v:04X}", str(v)])
    dom = "" if addr.domain == 0 and rng.random() < 0.5 else f"domain='{num(addr.domain)}' "
    return f"{dom}bus='{num(addr.bus)}' slot='{num(addr.slot)}' function='{num(addr.function)}'"


@pytest.mark.parametrize("seed", range(20))
def test_random_devices_parse_and_round_trip(seed: int) -> None:
    rng = random.Random(seed)
    n = rng.randrange(1, 12)
    macs = list(dict.fromkeys(random_mac(rng) for _ in range(n)))
    addrs = list(dict.fromkeys(random_addr(rng) for _ in range(len(macs))))
    parts: list[str] = []
    expect: list[tuple[str, str, PciAddress | None, str | None]] = []
    for i, (mac, addr) in enumerate(zip(macs, addrs)):
        vid = rng.choice([None, rng.randrange(4096)])
        vlan = f"<vlan><tag id='{vid}'/></vlan>" if vid is not None else ""
        kind = rng.randrange(4)
        if kind == 0:
            parts.append(f"<hostdev mode='subsystem' type='pci' managed='yes'><source><address "
                         f"{spell_addr(rng, addr)}/></source><mac address='{spell_mac(rng, mac)}'/>"
                         f"{vlan}</hostdev>")
            expect.append(("hostdev", mac, addr, None))
        elif kind == 1:
            parts.append(f"<interface type='hostdev'><source><address type='pci' "
                         f"{spell_addr(rng, addr)}/></source><mac address='{spell_mac(rng, mac)}'/>"
                         f"{vlan}</interface>")
            expect.append(("interface", mac, addr, None))
        elif kind == 2:
            parts.append(f"<hostdev mode='subsystem' type='pci'><source><address network='net{i}'/>"
                         f"</source><mac address='{mac}'/>{vlan}</hostdev>")
            expect.append(("hostdev", mac, None, f"net{i}"))
        else:
            parts.append(f"<interface type='network'><source network='net{i}'/>"
                         f"<mac address='{mac}'/>{vlan}</interface>")
            expect.append(("interface", mac, None, f"net{i}"))
    rng.shuffle(parts)  # the order in the document decides the indices
    text = "<domain>\n  <devices>\n    " + "\n    ".join(parts) + "\n  </devices>\n</domain>\n"
    doc = DeviceDocument.parse(text)
    got = {(d.form, d.mac, d.address, d.network) for d in doc.devices}
    assert got == set(expect)
    assert [d.index for d in doc.devices] == list(range(len(parts)))
    assert doc.to_string() == text
    # Give every network reference a fresh address, check the live form, then go back.
    used = {d.address for d in doc.devices if d.address}
    for d in doc.devices:
        if d.network:
            addr = random_addr(rng)
            while addr in used:
                addr = random_addr(rng)
            used.add(addr)
            doc.set_address(d.index, addr)
    assert DeviceDocument.parse(doc.to_string()).devices == doc.devices
    for d in doc.devices:
        if d.network:
            doc.clear_address(d.index)
    assert doc.to_string() == text


@pytest.mark.parametrize("seed", range(5))
def test_random_invalid_addresses_refused(seed: int) -> None:
    rng = random.Random(2000 + seed)
    field, top = rng.choice([("bus", 0xFF), ("slot", 0x1F), ("function", 7),
                             ("domain", 0xFFFFFFFF)])
    bad = rng.randrange(top + 1, top * 4 + 16)
    attrs = {"bus": "6", "slot": "2", "function": "0", field: hex(bad)}
    spelled = " ".join(f"{k}='{v}'" for k, v in attrs.items())
    expect_error(hd(f"<source><address {spelled}/></source>"), f"{field}='{hex(bad)}'")


# ------------------------------------------------------------------------------------------
# PCI numbers are read as libvirt reads them (issue #21)
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "spelled, expected",
    [
        ("domain='0x0000' bus='0x0a' slot='0x02' function='0x1'", PciAddress(0, 10, 2, 1)),
        ("bus='10' slot='2' function='1'", PciAddress(0, 10, 2, 1)),  # decimal
        ("bus='012' slot='02' function='01'", PciAddress(0, 10, 2, 1)),  # a leading 0: octal
        ("domain='00' bus='010' slot='037' function='07'", PciAddress(0, 8, 0x1F, 7)),
        ("domain='0' bus='0' slot='0x1f' function='0'", PciAddress(0, 0, 0x1F, 0)),
        ("bus='0X0A' slot='0x02' function='1'", PciAddress(0, 10, 2, 1)),
    ],
)
def test_pci_numbers_read_as_libvirt_reads_them(spelled: str, expected: PciAddress) -> None:
    """libvirt's virPCIDeviceAddressParseXML reads each number with strtoul, base 0: bus='010'
    is bus 8 to libvirt, so pyvfmac must not program the VF at bus 10."""
    assert one(hd(f"<source><address {spelled}/></source>")).address == expected
    iface = (f"<interface type='hostdev'><source><address type='pci' {spelled}/></source>"
             f"<mac address='{MAC}'/></interface>")
    assert one(iface).address == expected


@pytest.mark.parametrize("value", ["08", "09", "018", "0099"])
def test_pci_number_with_leading_zero_and_digit_8_or_9_refused(value: str) -> None:
    """strtoul(base 0) stops at the 8 of '08', and libvirt refuses what is left over."""
    expect_error(hd(f"<source><address bus='{value}' slot='2' function='0'/></source>"),
                 f"bus='{value}'", "octal", "0x")


@pytest.mark.parametrize("form", ["interface", "domain"])
def test_backend_tap_in_a_hostdev_interface_refused(form: str) -> None:
    """libvirt refuses <backend tap=..> in an <interface type='hostdev'>: there is no tun/tap
    device to open; pyvfmac kept it and attached the VF anyway."""
    iface = (f"<interface type='hostdev'>{SRC}<mac address='{MAC}'/>"
             "<backend tap='/dev/net/tun'/></interface>")
    xml = iface if form == "interface" else f"<domain><devices>{iface}</devices></domain>"
    expect_error(xml, "<backend tap='/dev/net/tun'>", "type='hostdev'", "libvirt")


def test_backend_vhost_in_a_hostdev_interface_kept() -> None:
    iface = (f"<interface type='hostdev'>{SRC}<mac address='{MAC}'/>"
             "<backend vhost='/dev/vhost-net'/></interface>")
    doc = DeviceDocument.parse(iface)
    assert "<backend vhost='/dev/vhost-net'/>" in doc.to_string()


def test_pci_domain_over_16_bits_read_and_written() -> None:
    """libvirt takes any 32-bit PCI domain (VMD puts functions in domain 0x10000 and up) and
    writes it as '0x%04x'; pyvfmac refused it."""
    doc = DeviceDocument.parse(hd("<source><address domain='0x10000' bus='0x01' slot='0x01' "
                                  "function='0x0'/></source>"))
    assert doc.devices[0].address == PciAddress(0x10000, 1, 1, 0)
    assert doc.devices[0].key == "pci:10000:01:01.0"
    net = DeviceDocument.parse(f"<interface type='network'><source network='pn'/>"
                               f"<mac address='{MAC}'/></interface>")
    net.set_address(0, PciAddress(0xFFFFFFFF, 1, 1, 7))
    assert ("<address type='pci' domain='0xffffffff' bus='0x01' slot='0x01' function='0x7'/>"
            in net.to_string())
    assert DeviceDocument.parse(net.to_string()).devices[0].address == PciAddress(
        0xFFFFFFFF, 1, 1, 7)
