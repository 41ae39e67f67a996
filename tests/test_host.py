"""What the host looks like now: the link snapshot (every MAC and who has it), owners, records
found by the netdev they had."""

from __future__ import annotations

from pathlib import Path

import pytest
from originals import original

from pyvfmac.domain import DeviceDocument
from pyvfmac.errors import NetlinkError, TopologyError
from pyvfmac.host import Snapshot, owner_of, recorded_by_netdev
from pyvfmac.store import Store
from pyvfmac.types import LinkInfo, VfState


def link(name: str, mac: str | None, *vfs: tuple[int, str]) -> LinkInfo:
    return LinkInfo(ifindex=len(name), name=name, mac=mac, perm_mac=None, parent_bus=None,
                    parent_dev=None, num_vf=len(vfs),
                    vfs=tuple(VfState(vf=i, mac=m) for i, m in vfs))


SNAP = Snapshot.of([
    link("eth0", "52:54:00:00:00:01", (0, "02:00:00:00:00:aa"), (1, "00:00:00:00:00:00")),
    link("eth0v0", "02:00:00:00:00:aa"),
    link("eth1", "52:54:00:00:00:02", (0, "00:00:00:00:00:00")),
])


def test_snapshot_knows_every_mac_and_its_first_user() -> None:
    assert SNAP.macs["52:54:00:00:00:01"] == "netdev eth0"
    assert SNAP.macs["02:00:00:00:00:aa"] == "eth0 vf 0"  # in dump order
    assert SNAP.macs["00:00:00:00:00:00"] == "eth0 vf 1"
    assert SNAP.holders("02:00:00:00:00:aa") == ["netdev eth0v0", "eth0 vf 0"]
    assert SNAP.holders("00:00:00:00:00:00") == ["eth0 vf 1", "eth1 vf 0"]
    assert SNAP.holders("02:00:00:00:00:99") == []


def test_snapshot_vf_state_and_netdev_mac() -> None:
    assert SNAP.vf_state("eth0", 1).mac == "00:00:00:00:00:00"
    with pytest.raises(NetlinkError, match="vanished"):
        SNAP.vf_state("eth9", 0)
    with pytest.raises(TopologyError, match="eth1: no VF 3"):
        SNAP.vf_state("eth1", 3)
    assert SNAP.netdev_mac("eth0v0") == "02:00:00:00:00:aa"
    assert SNAP.netdev_mac("nosuch") is None and SNAP.netdev_mac(None) is None


def test_owner_of() -> None:
    doc = DeviceDocument.parse(
        "<domain><devices>"
        "<hostdev mode='subsystem' type='pci'><source><address bus='0x06' slot='0x10' "
        "function='0x0'/></source><mac address='52:54:00:6d:90:02'/></hostdev>"
        "<interface type='network'><source network='pn'/><mac address='52:54:00:6d:90:03'/>"
        "</interface></devices></domain>", source="d.xml")
    direct, pooled = doc.devices
    assert owner_of(direct) == "mac:52:54:00:6d:90:02"
    assert owner_of(pooled) == "network:pn/52:54:00:6d:90:03"


def test_recorded_by_netdev(tmp_path: Path) -> None:
    with Store(tmp_path / "state") as store:
        store.save_original(original(netdev="enp6s0v0"), owner="d#0", mac="02:00:00:00:00:01",
                            managed=True)
        att = recorded_by_netdev(store, "enp6s0v0")
        assert att is not None and att.vf_key == "0000:06:10.0"
        assert recorded_by_netdev(store, "enp6s0v1") is None


def test_the_fake_hosts_rtnetlink_refuses_part_way_and_undoes_as_rtnl_does() -> None:
    """tests/fakehost.py's FakeNl stands in for Rtnl in the attach and restore tests: a change
    the "kernel" refuses part-way keeps the settings before the refused one, and with ``undo``
    they are put back and the refusal told, as Rtnl.apply does."""
    import errno as _errno

    from fakehost import INITIAL, PF, FakeNl

    from pyvfmac.settings import VfChange, VfSettings

    nl = FakeNl()
    nl.refuse = {"trust": _errno.EPERM}
    change = VfChange(pf=PF, vf=1, mac="02:00:00:00:00:11", vlan=5, trust=True)
    (kept,) = nl.apply([change], undo=False)
    assert kept.errno == _errno.EPERM and kept.refusal is None
    assert (nl.states[1].mac, nl.states[1].vlan, nl.states[1].trust) == (
        "02:00:00:00:00:11", 5, False)
    nl = FakeNl()
    nl.refuse = {"trust": _errno.EPERM}
    (undone,) = nl.apply([change])
    assert undone.refusal is not None and undone.refusal.failed == VfSettings(trust=True)
    assert undone.kept == VfSettings() and nl.states == INITIAL
