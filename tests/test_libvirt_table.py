"""docs/libvirt-xml.md, row by row: every element and attribute of libvirt's PCI <hostdev>,
<interface type='hostdev'>, <interface type='network'> and <network> with <forward
mode='hostdev'> is applied, kept unchanged or refused as the table says.

Each row of the table has one test here, named by the row's id; test_every_row_has_a_test
keeps the two in step."""

from __future__ import annotations

import io
import re
from collections.abc import Callable
from pathlib import Path
from typing import cast

import pytest

from pyvfmac.attach import attach_document
from pyvfmac.cli import main
from pyvfmac.domain import DeviceDocument, DeviceSpec, effective_managed, effective_trust, \
    merge_settings
from pyvfmac.errors import PoolError, XmlError
from pyvfmac.host import Host
from pyvfmac.network import NetworkSpec, PoolEntry, parse_network
from pyvfmac.portsettings import VirtualPort, Vlan
from pyvfmac.store import Store
from pyvfmac.types import PciAddress

TABLE = Path(__file__).parent.parent / "docs" / "libvirt-xml.md"
MAC = "52:54:00:6d:90:02"
ADDR = PciAddress(0, 6, 2, 0)
LIVE = PciAddress(0, 6, 0x10, 4)
PCI = "domain='0x0000' bus='0x06' slot='0x02' function='0x0'"
NETS = frozenset({"pn"})
UUID = "09b11c53-8b5c-4eeb-8f00-d84eaa0aaa4f"

Build = Callable[[str], str]
NO_HOST = cast(Host, None)  # a document with nothing to attach must not touch the host


def H(extra: str = "", attrs: str = "mode='subsystem' type='pci' managed='yes'",
      source: str = f"<source><address {PCI}/></source>") -> str:
    return f"<hostdev {attrs}>{source}<mac address='{MAC}'/>{extra}</hostdev>"


def IH(extra: str = "", attrs: str = "type='hostdev' managed='yes'",
       source: str = f"<source><address type='pci' {PCI}/></source>") -> str:
    return f"<interface {attrs}>{source}<mac address='{MAC}'/>{extra}</interface>"


def IN(extra: str = "", attrs: str = "type='network'",
       source: str = "<source network='pn'/>") -> str:
    return f"<interface {attrs}>{source}<mac address='{MAC}'/>{extra}</interface>"


def dom(*devices: str) -> str:
    return "<domain type='kvm'><name>g</name><devices>" + "".join(devices) + "</devices></domain>"


def parse(xml: str) -> DeviceDocument:
    return DeviceDocument.parse(xml, source="t.xml", networks=NETS)


def one(xml: str) -> DeviceSpec:
    doc = parse(xml)
    assert len(doc.devices) == 1, doc.devices
    return doc.devices[0]


def refused(xml: str, *needles: str) -> str:
    with pytest.raises(XmlError) as info:
        parse(xml)
    message = str(info.value)
    assert message.startswith("t.xml"), message
    for needle in needles:
        assert needle in message, f"{needle!r} not in {message!r}"
    return message


def kept(frag: str, *forms: Build) -> None:
    """The fragment is accepted in every form, changes nothing pyvfmac applies, and is written
    back unchanged (also after the live address is filled in)."""
    for form in forms:
        doc = parse(dom(form(frag)))
        assert len(doc.devices) == 1
        plain = parse(dom(form(""))).devices[0]
        assert doc.devices[0] == plain, frag
        doc.set_address(0, ADDR)
        assert frag in doc.to_string(), (frag, doc.to_string())


def net(forward: str = "<pf dev='eth3'/>", extra: str = "", attrs: str = "",
        fattrs: str = "mode='hostdev' managed='yes'") -> str:
    return f"<network{attrs}><name>pn</name><forward {fattrs}>{forward}</forward>{extra}</network>"


def net_refused(xml: str, *needles: str) -> None:
    with pytest.raises(XmlError) as info:
        parse_network(xml, source="t.xml")
    for needle in needles:
        assert needle in str(info.value), (needle, str(info.value))


def net_ignored(xml: str) -> None:
    """Accepted and without effect: the same spec as the plain network."""
    assert parse_network(xml) == parse_network(net())


NETWORK = parse_network(net(extra="<vlan><tag id='5'/></vlan><virtualport type='802.1Qbh'>"
                                  "<parameters profileid='prof'/></virtualport>"
                                  "<portgroup name='pg' trustGuestRxFilters='yes'>"
                                  "<vlan><tag id='6'/></vlan></portgroup>",
                            attrs=" trustGuestRxFilters='no'"))


# ---------------------------------------------------------------------------- devices


def test_D01() -> None:
    assert one(H(attrs="type='pci'")).form == "hostdev"  # mode defaults to subsystem
    refused(H(attrs="mode='capabilities' type='pci'"), "only 'subsystem'")


USB = ("<hostdev mode='subsystem' type='usb'><source><vendor id='0x1234'/><product id='0xbeef'/>"
       "</source></hostdev>")
GPU = f"<hostdev mode='subsystem' type='pci'><source><address {PCI}/></source></hostdev>"


def test_D02() -> None:
    assert one(H()).address == ADDR
    # in a domain: a <mac> makes a hostdev pyvfmac's, and then only PCI will do ...
    refused(dom(H(attrs="mode='subsystem' type='usb'")), "type='usb': only 'pci' is supported")
    # ... without one (a GPU, a USB device) it is the guest's, kept
    doc = parse(dom(GPU, USB, H()))
    assert [d.address for d in doc.devices] == [ADDR]
    assert GPU in doc.to_string() and USB in doc.to_string()
    # alone, a hostdev was given to be attached: any type but PCI is refused, <mac> or not,
    # and a PCI one without <mac> too
    refused(H(attrs="mode='subsystem' type='usb'"), "type='usb': only 'pci' is supported")
    refused(USB, "type='usb': only 'pci' is supported")
    refused(GPU, "fixed MAC required")


def test_D03() -> None:
    assert one(H()).managed and one(IH()).managed
    assert not one(H(attrs="type='pci' managed='no'")).managed
    assert not one(IH(attrs="type='hostdev'")).managed  # libvirt's default
    refused(IH(attrs="type='hostdev' managed='maybe'"), "expected 'yes' or 'no'")


def test_D04() -> None:
    spec = one(IN())
    assert effective_managed(spec, NETWORK) is True  # <forward managed='yes'>
    assert effective_managed(spec, None) is False


def test_D05() -> None:
    assert one(IH(attrs="type='hostdev' trustGuestRxFilters='yes'")).trust is True
    assert one(IN(attrs="type='network' trustGuestRxFilters='no'")).trust is False
    assert one(IH()).trust is None
    refused(IH(attrs="type='hostdev' trustGuestRxFilters='on'"), "expected 'yes' or 'no'")


def test_D06() -> None:
    assert one(H()).address == ADDR and one(IH()).address == ADDR
    # libvirt's reading of a number: 0x hexadecimal, a leading 0 octal, else decimal
    octal = "<source><address domain='0' bus='010' slot='02' function='0'/></source>"
    assert one(H(source=octal)).address == PciAddress(0, 8, 2, 0)
    refused(H(source="<source><address bus='08' slot='2' function='0'/></source>"),
            "bus='08'", "octal")
    vmd = "<source><address domain='0x10000' bus='0x01' slot='0x00' function='0x0'/></source>"
    assert one(IH(source=vmd.replace("<address ", "<address type='pci' "))).address == \
        PciAddress(0x10000, 1, 0, 0)
    refused(IH(source="<source><address type='usb' bus='1'/></source>"), "only 'pci'")


def test_D07() -> None:
    doc = parse(dom(H(source=f"<source writeFiltering='no'><address {PCI}/></source>")))
    assert doc.devices[0] == parse(dom(H())).devices[0]
    assert "<source writeFiltering='no'>" in doc.to_string()


def test_D08() -> None:
    spec = one(IN(source="<source network='pn' portgroup='pg'/>"))
    assert (spec.network, spec.portgroup) == ("pn", "pg")
    assert merge_settings(spec, NETWORK)[0] == Vlan(6)


def test_D09() -> None:
    doc = parse(dom(IN(source=f"<source network='pn' portid='{UUID}'/>")))
    assert doc.devices[0].network == "pn"
    assert f"portid='{UUID}'" in doc.to_string()


def test_D10() -> None:
    # libvirt's NAT network, a bridge network: not pyvfmac's, not even validated
    nat = ("<interface type='network'><source network='default'/><model type='virtio'/>"
           "<bandwidth><inbound average='1000'/></bandwidth></interface>")
    doc = parse(dom(nat, H()))
    assert [d.form for d in doc.devices] == ["hostdev"]
    assert doc.left_alone == ("default",)
    assert nat in doc.to_string()
    # alone: nothing to attach, and a lone device is given to be attached (attach / detach)
    with pytest.raises(XmlError, match=r"^t\.xml: no device with a fixed <mac> to attach "
                                       r"\(interfaces of network\(s\) default are libvirt's"):
        attach_document(parse(nat), NO_HOST)


def test_D11() -> None:
    assert one(IH()).mac == MAC
    refused(IH().replace(f"<mac address='{MAC}'/>", ""), "fixed MAC required")
    refused(IH().replace(MAC, "01:00:5e:00:00:01"), "multicast")


def test_D12() -> None:
    frag = f"<mac address='{MAC}' type='static' check='no'/>"
    for form in (H, IH, IN):
        doc = parse(dom(form().replace(f"<mac address='{MAC}'/>", frag)))
        assert doc.devices[0] == parse(dom(form())).devices[0]
        assert frag in doc.to_string()


def test_D13() -> None:
    assert one(IH("<vlan><tag id='42'/></vlan>")).vlan == Vlan(42)


def test_D14() -> None:
    refused(IH("<vlan trunk='yes'><tag id='42'/></vlan>"), "not a trunk")
    refused(IH("<vlan><tag id='4'/><tag id='5'/></vlan>"), "exactly one <tag>")
    refused(IH("<vlan><tag id='4' nativeMode='untagged'/></vlan>"), "nativeMode")


def test_D15() -> None:
    spec = one(IH("<virtualport type='802.1Qbh'><parameters profileid='finance'/></virtualport>"))
    assert spec.virtualport == VirtualPort("802.1Qbh", profileid="finance")
    # associated, recorded, disassociated; refused and rolled back: tests/test_port_profile.py
    # (a fake host) and tests/testbed/test_attach.py (igb, which refuses it)


def test_D16() -> None:
    # refused while parsing, before any host lookup (the VF named here does not exist)
    refused(IH("<virtualport type='802.1Qbg'><parameters managerid='11' typeid='1193047' "
               "typeidversion='2'/></virtualport>",
               source="<source><address netdev='nosuchvf9'/></source>"), "802.1Qbg", "lldpad")
    net_refused(net(extra="<virtualport type='802.1Qbg'><parameters managerid='1' typeid='1' "
                          "typeidversion='1'/></virtualport>"), "802.1Qbg")


def test_D17() -> None:
    refused(IN("<virtualport type='openvswitch'/>"), "software switch port")
    refused(IH("<virtualport type='midonet'/>"), "software switch port")


def test_D18() -> None:
    spec = one(IN(f"<virtualport><parameters instanceid='{UUID}' interfaceid='{UUID}'/>"
                  "</virtualport>"))
    assert spec.virtualport == VirtualPort(None, instanceid=UUID, interfaceid=UUID)
    assert merge_settings(spec, NETWORK)[1] == VirtualPort("802.1Qbh", profileid="prof",
                                                            instanceid=UUID)
    bare = one(IN("<virtualport/>"))
    assert merge_settings(bare, NETWORK)[1] == VirtualPort("802.1Qbh", profileid="prof")


def test_D19() -> None:
    spec = one(IN("<virtualport type='802.1Qbh'><parameters profileid='other'/></virtualport>"))
    with pytest.raises(PoolError, match="profileid 'prof' of the network conflicts with 'other' of the interface"):
        merge_settings(spec, NETWORK)
    no_type = parse_network(net())
    with pytest.raises(PoolError, match="without a type"):
        merge_settings(one(IN("<virtualport><parameters profileid='p'/></virtualport>")),
                       no_type)


def test_D20() -> None:
    refused(IH("<virtualport><parameters profileid='p'/></virtualport>"), "'type' is missing")
    refused(H("<virtualport><parameters profileid='p'/></virtualport>"), "'type' is missing")


def test_D21() -> None:
    kept("<driver name='vfio'/>", H, IH, IN)
    refused(IH("<driver name='kvm'/>"), "only 'vfio'")


def test_D22() -> None:
    for form in (H, IH, IN):
        refused(form("<driver name='vfio' model='mlx5_vfio_pci'/>"),
                "model='mlx5_vfio_pci'", "VFIO variant drivers are not supported")


def test_D23() -> None:
    virtio = ("<interface type='network'><source network='default'/>"
              f"<mac address='{MAC}'/><model type='virtio'/><teaming type='persistent'/>"
              "<alias name='ua-backup0'/></interface>")
    transient = IN("<model type='virtio'/><teaming type='transient' persistent='ua-backup0'/>")
    doc = parse(dom(virtio, transient))
    assert [(d.mac, d.network, d.teaming) for d in doc.devices] == [(MAC, "pn", "ua-backup0")]
    direct = IH("<teaming type='transient' persistent='ua-backup0'/>")
    assert parse(dom(virtio, direct)).devices[0].teaming == "ua-backup0"
    refused(dom(transient), "no device with <alias name='ua-backup0'/>")
    refused(IH("<teaming type='transient'/>"), "needs persistent='ALIAS'")


def test_D24() -> None:
    refused(IH("<teaming type='persistent'/>"), "the persistent one is the guest's virtio NIC")
    refused(dom(IN("<model type='virtio'/><teaming type='persistent'/><alias name='ua-b'/>")),
            "pool of VFs")
    # any other NIC (the virtio partner) keeps its teaming element unchanged
    bridge = ("<interface type='bridge'><source bridge='br0'/><mac address='52:54:00:00:00:09'/>"
              "<teaming type='persistent'/><alias name='ua-b'/></interface>")
    assert bridge in parse(dom(bridge, H())).to_string()


def test_D25() -> None:
    refused(dom(H(), IH().replace(PCI, "domain='0x0000' bus='0x06' slot='0x02' "
                                       "function='0x1'")), "MAC 52:54:00:6d:90:02 is already used")
    virtio = ("<interface type='bridge'><source bridge='br0'/>"
              f"<mac address='{MAC}'/><model type='virtio'/><teaming type='persistent'/>"
              "<alias name='ua-b'/></interface>")
    assert len(parse(dom(virtio, IH("<teaming type='transient' persistent='ua-b'/>")))
               .devices) == 1


def test_D26() -> None:
    kept("<model type='virtio'/>", IH, IN)


def test_D27() -> None:
    kept("<boot order='1'/>", H, IH, IN)


def test_D28() -> None:
    kept("<rom bar='on' file='/etc/fake/boot.bin'/>", H, IH, IN)


def test_D29() -> None:
    frag = "<address type='pci' domain='0x0000' bus='0x07' slot='0x00' function='0x0'/>"
    kept(frag, H, IH, IN)
    assert one(IH(frag)).address == ADDR  # the source address, not the guest one


def test_D30() -> None:
    kept("<alias name='ua-net0'/>", H, IH, IN)


def test_D31() -> None:
    kept("<acpi index='4'/>", H, IH, IN)


def test_D32() -> None:
    for form in (H, IH, IN):
        refused(form("<bandwidth><outbound average='128'/></bandwidth>"), "bandwidth")


def test_D33() -> None:
    refused(IN("<filterref filter='clean-traffic'/>"), "nwfilter")


def test_D34() -> None:
    kept("<link state='down'/>", IH, IN)


def test_D35() -> None:
    kept("<mtu size='9000'/>", IH, IN)


def test_D36() -> None:
    kept("<port isolated='yes'/>", IN)


def test_D37() -> None:
    for frag in ("<target dev='vnet7'/>", "<guest dev='myeth'/>",
                 "<coalesce><rx><frames max='7'/></rx></coalesce>",
                 "<tune><sndbuf>1600</sndbuf></tune>", "<backend vhost='/dev/vhost-net'/>",
                 "<ip address='192.168.122.5' prefix='24'/>",
                 "<route family='ipv4' address='192.168.122.0' prefix='24' "
                 "gateway='192.168.122.1'/>"):
        kept(frag, IH, IN)


def test_D40() -> None:
    refused(IH("<backend tap='/dev/net/tun'/>"), "<backend tap='/dev/net/tun'>",
            "type='hostdev'")
    refused(dom(IH("<backend tap='/dev/net/tun'/>")), "tap=")
    kept("<backend tap='/dev/net/tun'/>", IN)
    refused(IH("<backend type='passt'/>"), "type='passt'", "type='user'")
    refused(IN("<backend type='passt'/>"), "type='passt'")


def test_D38() -> None:
    text = ("<?xml version='1.0'?>\n<!-- c -->\n<domain type='kvm' "
            "xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'><name>g</name><devices>"
            "<?pi x?>" + H() + "<console type='pty'/></devices><qemu:commandline>"
            "<qemu:arg value='-s'/></qemu:commandline></domain>")
    out = parse(text).to_string()
    for piece in ("<!-- c -->", "<?pi x?>", "<console type='pty'/>", "<qemu:arg value='-s'/>",
                  "xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'"):
        assert piece in out


def test_D39(tmp_path: Path) -> None:
    # a hook runs attach for every guest: with nothing of pyvfmac's there is nothing to do (the
    # host is not even looked at) and the document comes out exactly as it went in
    nat = "<interface type='network'><source network='default'/></interface>"
    for text in (dom(), dom(GPU, USB, nat), '<?xml version="1.0"?>\n<domain type="kvm">\n'
                 '  <name>g</name>\n</domain>\n'):
        assert parse(text).devices == () and attach_document(parse(text), NO_HOST) == []
        path, live = tmp_path / "g.xml", tmp_path / "live.xml"
        path.write_text(text)
        state = ["--state-dir", str(tmp_path / "st")]
        out = io.StringIO()
        assert main([*state, "attach", str(path)], out=out) == 0
        assert out.getvalue() == (text if text.endswith("\n") else text + "\n")
        assert main([*state, "attach", str(path), "--live-xml", str(live)]) == 0
        assert live.read_text() == text
        out = io.StringIO()
        assert main([*state, "detach", str(live)], out=out) == 0
        assert out.getvalue() == f"{live}: no device of pyvfmac's, nothing to detach\n"
        with Store(tmp_path / "st") as store:
            assert store.all() == []


# ---------------------------------------------------------------------------- networks


def test_N01() -> None:
    net_ignored(net(attrs=" connections='3'"))
    net_refused(net(attrs=" connections='many'"), "not a number")


def test_N02() -> None:
    spec = parse_network(net(attrs=" trustGuestRxFilters='yes'"))
    assert spec.trust_guest_rx_filters is True
    assert effective_trust(one(IN()), spec) is True
    assert effective_trust(one(IN(attrs="type='network' trustGuestRxFilters='no'")),
                           spec) is False  # the interface's own wins


def test_N03() -> None:
    net_ignored(net(attrs=" ipv6='yes'"))


def test_N04() -> None:
    assert parse_network(net()).name == "pn"
    net_refused(net().replace("<name>pn</name>", "<name>a/b</name>"), "'/'")


def test_N05() -> None:
    assert parse_network(net(extra=f"<uuid>{UUID.upper()}</uuid>")).uuid == UUID
    net_refused(net(extra="<uuid>nope</uuid>"), "not a UUID")


def test_N06() -> None:
    net_ignored(net(extra="<title>VF pool</title><description>for &lt;guests&gt;</description>"))


def test_N07() -> None:
    net_ignored(net(extra="<metadata><app1:foo xmlns:app1='http://app1.org/app1/'>..</app1:foo>"
                          "</metadata>"))


def test_N08() -> None:
    for mode in ("hostdev", "hardware", "device"):
        assert parse_network(net(fattrs=f"mode='{mode}'")).pool == (PoolEntry("pf", "eth3", None),)
    net_refused(net(fattrs="mode='nat'"), "forward mode 'nat' (a NAT network) is not hostdev",
                "a VF pool needs <forward mode='hostdev'>")
    # a NAT network's own elements are not the mistake, its forward mode is
    net_refused("<network><name>default</name><bridge name='virbr0'/><forward mode='nat'/>"
                "<ip address='192.168.122.1' prefix='24'/></network>", "forward mode 'nat'")
    net_refused("<network><name>iso</name><bridge name='virbr1'/></network>",
                "no <forward>: an isolated network")


def test_N09() -> None:
    assert parse_network(net()).managed is True
    assert parse_network(net(fattrs="mode='hostdev'")).managed is False


def test_N10() -> None:
    spec = parse_network(net("", fattrs="mode='hostdev' dev='eth20'"))
    assert spec.pool == (PoolEntry("interface", "eth20", None),)


def test_N11() -> None:
    net_ignored(net("<driver name='vfio'/><pf dev='eth3'/>"))
    net_refused(net("<driver name='kvm'/><pf dev='eth3'/>"), "only 'vfio'")


def test_N12() -> None:
    net_refused(net("<driver name='vfio' model='mlx5_vfio_pci'/><pf dev='eth3'/>"),
                "VFIO variant drivers are not supported")


def test_N13() -> None:
    assert parse_network(net()).pool == (PoolEntry("pf", "eth3", None),)


def test_N14() -> None:
    net_ignored(net("<pf dev='eth3' connections='2'/>"))
    spec = parse_network(net("<interface dev='eth20' connections='1'/>"))
    assert spec.pool == (PoolEntry("interface", "eth20", None),)


def test_N15() -> None:
    spec = parse_network(net(f"<address type='pci' {PCI}/>"))
    assert spec.pool == (PoolEntry("address", None, ADDR),)


def test_N16() -> None:
    net_ignored(net(f"<pf dev='eth3'/><address type='pci' {PCI}/>"
                    "<address type='pci' domain='0x0000' bus='0x06' slot='0x02' "
                    "function='0x1'/>"))


def test_N17() -> None:
    spec = parse_network(net("<interface dev='eth20'/>"))
    assert spec.pool == (PoolEntry("interface", "eth20", None),)


def test_N18() -> None:
    net_refused(net("<nat/><pf dev='eth3'/>"), "does no NAT")


def test_N19() -> None:
    spec = parse_network(net(extra="<vlan><tag id='7'/></vlan>"))
    assert spec.vlan == Vlan(7) and merge_settings(one(IN()), spec)[0] == Vlan(7)
    net_refused(net(extra="<vlan trunk='yes'><tag id='7'/></vlan>"), "not a trunk")


def test_N20() -> None:
    spec = parse_network(net(extra="<virtualport type='802.1Qbh'/>"))
    assert spec.virtualport == VirtualPort("802.1Qbh")
    own = one(IN("<virtualport><parameters profileid='mine'/></virtualport>"))
    assert merge_settings(own, spec)[1] == VirtualPort("802.1Qbh", profileid="mine")
    net_refused(net(extra="<virtualport><parameters profileid='p'/></virtualport>"),
                "'type' is missing")


def test_N21() -> None:
    net_refused(net(extra="<portgroup name='x'><virtualport type='802.1Qbg'><parameters "
                          "managerid='1' typeid='1' typeidversion='1'/></virtualport>"
                          "</portgroup>"), "802.1Qbg")


def test_N22() -> None:
    spec = parse_network(net(extra="<portgroup name='a'/><portgroup name='b' default='yes'/>"))
    assert [(p.name, p.default) for p in spec.portgroups] == [("a", False), ("b", True)]
    net_refused(net(extra="<portgroup name='a' default='yes'/><portgroup name='b' "
                          "default='yes'/>"), "two default portgroups")


def test_N23() -> None:
    spec = parse_network(net(extra="<portgroup name='a' trustGuestRxFilters='yes'/>",
                             attrs=" trustGuestRxFilters='no'"))
    assert effective_trust(one(IN(source="<source network='pn' portgroup='a'/>")), spec) is True
    assert effective_trust(one(IN()), spec) is False


def test_N24() -> None:
    spec = parse_network(net(extra="<virtualport type='802.1Qbh'><parameters profileid='p'/>"
                                   "</virtualport><portgroup name='a'><vlan><tag id='3'/></vlan>"
                                   f"<virtualport type='802.1Qbh'><parameters instanceid='{UUID}'/>"
                                   "</virtualport></portgroup>"))
    assert spec.settings_for("a") == (Vlan(3), VirtualPort("802.1Qbh", profileid="p",
                                                            instanceid=UUID))
    net_refused(net(extra="<virtualport type='802.1Qbh'><parameters profileid='p'/></virtualport>"
                          "<portgroup name='a'><virtualport type='802.1Qbh'><parameters "
                          "profileid='q'/></virtualport></portgroup>"), "conflicts")
    # a portgroup's virtualport may leave the type to the network's (libvirt merges them)
    typeless = parse_network(net(extra="<virtualport type='802.1Qbh'/><portgroup name='a'>"
                                       "<virtualport><parameters profileid='pg'/></virtualport>"
                                       "</portgroup>"))
    assert typeless.settings_for("a") == (None, VirtualPort("802.1Qbh", profileid="pg"))
    iface = one(IN(source="<source network='pn' portgroup='a'/>"))
    assert merge_settings(iface, typeless)[1] == VirtualPort("802.1Qbh", profileid="pg")


def test_N25() -> None:
    net_ignored(net(extra="<mtu size='9000'/>"))
    net_refused(net(extra="<mtu size='big'/>"), "not a number")


def test_N26() -> None:
    net_ignored(net(extra="<port isolated='yes'/>"))


def test_N27() -> None:
    net_refused(net(extra="<bandwidth><inbound average='1'/></bandwidth>"), "bandwidth")
    net_refused(net(extra="<portgroup name='a'><bandwidth/></portgroup>"), "bandwidth")


def test_N28() -> None:
    for extra in ("<bridge name='virbr0'/>", "<mac address='52:54:00:00:00:01'/>",
                  "<ip address='192.168.1.1'/>", "<dns/>", "<domain name='x'/>",
                  "<route address='10.0.0.0'/>"):
        net_refused(net(extra=extra), "not allowed")


# ---------------------------------------------------------------------------- the table


def test_every_row_has_a_test() -> None:
    rows = re.findall(r"^\| *([DN]\d\d) *\|", TABLE.read_text(), flags=re.M)
    assert len(rows) == len(set(rows)), "duplicate row ids"
    tests = {name[5:] for name in globals() if re.fullmatch(r"test_[DN]\d\d", name)}
    assert set(rows) == tests


def test_network_spec_defaults_unchanged() -> None:
    # NetworkSpec built by hand (older callers): trust unset, portgroups empty
    spec = NetworkSpec("n", None, False, (PoolEntry("pf", "e", None),), None, None)
    assert spec.trust_guest_rx_filters is None and spec.portgroups == ()
