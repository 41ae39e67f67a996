"""Putting a VF back from its saved original, against a fake rtnetlink socket and a real store:
one change per setting that differs, each with its own outcome; the record dropped only when the
VF reads back as saved (or ``force`` accepts it)."""

from __future__ import annotations

import errno
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from fakehost import PF, PF_ADDR, VFS, World, pci_attrs
from originals import original

from pyvfmac.attach import attach_document
from pyvfmac.domain import DeviceDocument
from pyvfmac.errors import NetlinkError, RestoreError, StateError, TopologyError
from pyvfmac.host import Host
from pyvfmac.records import Attachment
from pyvfmac.restore import _matching, explain, restore_attachment
from pyvfmac.settings import SETTINGS, VfChange, VfSettings, parts
from pyvfmac.store import Store
from pyvfmac.types import LinkInfo, VfResult, VfState, VfStates

KEY = "eni0np1/vf2"  # not a PCI function: no driver or VF-netdev step, only rtnetlink


class FakeNl:
    """One PF ``eni0np1`` with VF 2; ``refuse`` maps a setting name to the errno it gets."""

    def __init__(self, state: VfState, refuse: dict[str, int] | None = None) -> None:
        self.state = state
        self.refuse = refuse or {}
        self.sent: list[VfChange] = []

    def read_link(self, dev: str | int, *, strict: bool = True) -> LinkInfo:
        return LinkInfo(ifindex=7, name=str(dev), mac=None, perm_mac=None, parent_bus=None,
                        parent_dev=None, num_vf=3, vfs=VfStates.of((self.state,)))

    def dump_links(self) -> list[LinkInfo]:
        return [self.read_link("eni0np1")]

    def apply(self, changes: Sequence[VfChange], *, undo: bool = True,
              before: Mapping[tuple[str | int, int], VfState] | None = None
              ) -> list[VfResult]:
        """Each change whole, or refused whole: as ``Rtnl.apply`` only for a change of one
        kernel attribute (restore sends each setting alone), so any other is refused here."""
        assert before is None and all(len(parts(c)) == 1 for c in changes), changes
        results = []
        for c in changes:
            self.sent.append(c)
            given = {n: getattr(c, n) for n in SETTINGS if getattr(c, n) is not None}
            err = next((self.refuse[n] for n in given if n in self.refuse), 0)
            if not err:
                self.state = replace(self.state, **given)
            results.append(VfResult(change=c, pf_name=str(c.pf), errno=err))
        return results

    def set_link_mac(self, dev: str | int, mac: str) -> None:
        raise AssertionError(f"no netdev here: set_link_mac({dev!r}, {mac!r})")

    def set_vf_port(self, pf: str | int, vf: int, *, profile: str,
                    instance_uuid: str | None = None, host_uuid: str | None = None,
                    associate: bool = True) -> None:
        raise AssertionError(f"no port profile here: set_vf_port({pf!r}, {vf}, {profile!r})")

    def close(self) -> None:
        pass


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store(tmp_path / "state") as s:
        yield s


def attached(store: Store, **saved: Any) -> Attachment:
    o = original(KEY, pf="eni0np1", vf=2, netdev=None, netdev_mac=None, driver=None, **saved)
    store.save_original(o, owner="d#0", mac="02:00:00:00:00:01", managed=False)
    return store.set_phase(KEY, "attached")


def host(store: Store, nl: FakeNl) -> Host:
    return Host(store=store, nl=nl)


NOW = VfState(vf=2, mac="02:00:00:00:00:01", vlan=42, qos=0, spoofchk=True, trust=False,
              link_state="auto")


def test_each_differing_setting_is_sent_alone_and_the_record_dropped(store: Store) -> None:
    att = attached(store, vlan=0, spoofchk=False)
    nl = FakeNl(NOW)
    assert restore_attachment(att, host(store, nl)) == []
    assert [c.only() for c in nl.sent] == [
        VfSettings(mac="00:00:00:00:00:00"),
        VfSettings(vlan=0, qos=0, vlan_proto="802.1Q"),
        VfSettings(spoofchk=False),
    ]
    assert all(c.allow_zero_mac and (c.pf, c.vf) == ("eni0np1", 2) for c in nl.sent)
    assert (nl.state.mac, nl.state.vlan, nl.state.spoofchk) == ("00:00:00:00:00:00", 0, False)
    assert store.get(KEY) is None


def test_a_refused_setting_keeps_the_record_unless_forced(store: Store) -> None:
    att = attached(store)
    nl = FakeNl(NOW, refuse={"mac": errno.EINVAL})
    with pytest.raises(RestoreError) as info:
        restore_attachment(att, host(store, nl))
    text = str(info.value)
    assert "eni0np1/vf2 (eni0np1 vf 2) not fully restored, saved record kept" in text
    assert "refused to restore the all-zero admin MAC (EINVAL)" in text
    kept = store.get(KEY)
    assert kept is not None and kept.phase == "detaching"
    assert nl.state.vlan == 0  # the other settings were put back all the same
    notes = restore_attachment(kept, host(store, nl), force=True)
    assert len(notes) == 1 and "all-zero admin MAC" in notes[0]
    assert store.get(KEY) is None


def test_a_setting_that_does_not_stick_is_named(store: Store) -> None:
    class Deaf(FakeNl):
        def apply(self, changes: Sequence[VfChange], **kw: Any) -> list[VfResult]:
            return [VfResult(change=c, pf_name=str(c.pf)) for c in changes]  # "ok", no effect

    att = attached(store, trust=True)
    with pytest.raises(RestoreError, match=r"read back differs from the saved original in "
                                           r"MAC 00:00:00:00:00:00, VLAN 0, trust on"):
        restore_attachment(att, host(store, Deaf(NOW)))


def test_explain() -> None:
    o = original(pf="eth0", vf=3, vlan=7)
    eperm = NetlinkError(errno.EPERM, "cannot set VLAN", device="eth0", vf=3)
    assert explain(VfSettings(vlan=7, qos=0), eperm, o) == (
        "eth0 vf 3: the driver refused to change the VLAN back to 7 (EPERM)")
    assert explain(VfSettings(trust=True), eperm, o) == str(eperm)


def test_restore_names_the_pf_by_netdev_or_pci_address(tmp_path: Path) -> None:
    """`vfmac restore PF VF` takes the PF as a netdev name or a PCI address (a user trial's
    `vfmac restore 0000:01:00.0 1` said "no saved original" of an attached VF), and says when
    there is no such PF."""
    world = World(tmp_path)
    host = world.host()
    xml = (f"<hostdev mode='subsystem' type='pci' managed='no'><source><address "
           f"{pci_attrs(VFS[2])}/></source><mac address='52:54:00:6d:90:03'/></hostdev>")
    attach_document(DeviceDocument.parse(xml, source="h.xml"), host)
    (att,) = host.store.all()
    assert _matching(host, PF, 2, False) == [att]  # the name it had at attach
    assert _matching(host, PF_ADDR, 2, False) == [att]
    assert _matching(host, PF_ADDR[5:], 2, False) == [att]  # the short spelling
    with pytest.raises(StateError, match=rf"{PF_ADDR} vf 1 \({VFS[1]}\): no saved original"):
        _matching(host, PF_ADDR, 1, False)
    with pytest.raises(TopologyError, match="nosuch0: no such network device"):
        _matching(host, "nosuch0", 0, False)
    with pytest.raises(TopologyError, match=r"no VF 9"):
        _matching(host, PF, 9, False)
    host.close()


def test_a_driver_picked_mac_after_the_zero_mac_is_accepted(store: Store) -> None:
    """An original with no admin MAC (all-zero, as a new igb VF has): once the zero MAC is
    taken, the VF driver picks a MAC of its own, which the PF then reports; that is restored
    (issue 22: DEL failed forever on it). The fixed MAC still there is not."""

    class Picks(FakeNl):
        def apply(self, changes: Sequence[VfChange], **kw: Any) -> list[VfResult]:
            results = super().apply(changes, **kw)
            if self.state.mac == "00:00:00:00:00:00":
                self.state = replace(self.state, mac="5a:11:22:33:44:55")  # igbvf's own pick
            return results

    att = attached(store, vlan=42, spoofchk=True)
    nl = Picks(NOW)
    assert restore_attachment(att, host(store, nl)) == []
    assert nl.state.mac == "5a:11:22:33:44:55" and store.get(KEY) is None


def test_a_vf_that_no_longer_exists_drops_its_record(store: Store) -> None:
    """Its PF has fewer VFs now (numvfs lowered, the PF re-created): nothing left to restore,
    nothing sent, the record dropped with a note saying why."""
    att = attached(store)

    class Fewer(FakeNl):
        def read_link(self, dev: str | int, *, strict: bool = True) -> LinkInfo:
            return replace(super().read_link(dev), num_vf=2, vfs=VfStates.of(()))

    nl = Fewer(NOW)
    (note,) = restore_attachment(att, host(store, nl))
    assert "eni0np1 has 2 VFs now, vf 2 is gone: nothing left to restore" == note
    assert nl.sent == [] and store.get(KEY) is None


# ------------------------------------------------------------------ recover: a pod that is gone


def test_recover_takes_pod_vfs_whose_namespace_is_gone(tmp_path: Path) -> None:
    """A complete vfmac-cni record whose pod namespace no longer exists (a runtime killed while
    ADD ran never sends DEL) is recovered; a live namespace, a userspace VF, an attach of
    ``vfmac`` and a record still being worked on are not."""
    import os

    from pyvfmac.cni.config import owner
    from pyvfmac.records import Original, PodLink
    from pyvfmac.restore import pods_gone

    plain = tmp_path / "not-a-netns"
    plain.write_text("")
    cases = {  # VF key: (netns, netdev saved, owner, phase)
        "0000:06:10.0": ("/proc/self/ns/net", "eth5", "cni", "attached"),  # alive
        "0000:06:10.2": (str(tmp_path / "deleted"), "eth6", "cni", "attached"),  # gone
        "0000:06:10.4": (str(plain), "eth7", "cni", "attached"),  # an unmounted pin: gone
        "0000:06:10.6": (str(tmp_path / "deleted"), None, "cni", "attached"),  # vfio-pci VF
        "0000:06:11.0": (str(tmp_path / "deleted"), "eth8", "mac:02:00:00:00:00:01", "attached"),
        "0000:06:11.2": (str(tmp_path / "deleted"), "eth9", "cni", "saved"),  # for incomplete()
    }
    pid = os.fork()  # the records' worker: a process that is gone when recover looks
    if pid == 0:
        try:
            with Store(tmp_path / "state") as store:
                for n, (key, (netns, netdev, who, phase)) in enumerate(cases.items()):
                    orig = Original(vf_key=key, pf="eth0", vf=n, mac="00:00:00:00:00:00",
                                    netdev=netdev, driver="igbvf" if netdev else "vfio-pci",
                                    netdev_mac="52:54:00:00:00:05" if netdev else None)
                    mine = owner(f"c{n}", "eth0", "net") if who == "cni" else who
                    pod = (PodLink(vf_key=key, netns=netns, mtu=1500, up=False)
                           if who == "cni" else None)
                    store.save_original(orig, owner=mine, mac=f"02:00:00:00:01:0{n}",
                                        managed=False, pod=pod)
                    if phase != "saved":
                        store.set_phase(key, phase)
        finally:
            os._exit(0)
    assert os.waitpid(pid, 0)[1] == 0
    with Store(tmp_path / "state") as store:
        assert len(store.all()) == len(cases)
        assert [a.vf_key for a in pods_gone(store)] == ["0000:06:10.2", "0000:06:10.4"]
        store.set_phase("0000:06:10.2", "attached")  # a live worker: not taken from under it
        assert [a.vf_key for a in pods_gone(store)] == ["0000:06:10.4"]
