"""802.1Qbh port profiles through attach, rollback, detach and recover: the record names the
profile the VF may have associated, and a restore disassociates that one and no other -- a
profile the driver refused to associate is never disassociated (igb answers EOPNOTSUPP to both,
so a rollback that tried kept the record and the VF "held" until ``vfmac recover``).

A fake sysfs and rtnetlink (tests/fakehost.py), a real state store; the same on the emulated igb
VFs: tests/testbed/test_attach.py."""

from __future__ import annotations

import errno
from pathlib import Path
from typing import Any

import pytest
from fakehost import INITIAL, PF, VFS, FakeNl, World, pci_attrs

from pyvfmac.attach import _find_attachment, attach_document
from pyvfmac.domain import DeviceDocument
from pyvfmac.errors import NetlinkError, RestoreError
from pyvfmac.host import Host
from pyvfmac.restore import restore_attachment

MAC = "52:54:00:6d:90:03"
QBH = "<virtualport type='802.1Qbh'><parameters profileid='finance'/></virtualport>"


def interface(vf: int, mac: str = MAC, extra: str = "") -> str:
    return (f"<interface type='hostdev' managed='no'><source><address type='pci' "
            f"{pci_attrs(VFS[vf])}/></source><mac address='{mac}'/><vlan><tag id='43'/></vlan>"
            f"{extra}</interface>")


def attach(host: Host, xml: str) -> None:
    attach_document(DeviceDocument.parse(xml, source="h2.xml"), host)


@pytest.fixture
def world(tmp_path: Path) -> World:
    return World(tmp_path)


def test_a_refused_profile_is_rolled_back_without_a_disassociate(world: World) -> None:
    """The user's trial (igb): MAC and VLAN set, the profile refused: MAC and VLAN go back, the
    record is dropped, and the only port request is the refused one."""
    world.nl.port_errno = errno.EOPNOTSUPP
    host = world.host()
    with pytest.raises(NetlinkError) as info:
        attach(host, interface(2, extra=QBH))
    assert str(info.value) == (f"{PF} vf 2: cannot associate port profile 'finance': "
                               "Operation not supported (EOPNOTSUPP)")
    assert not getattr(info.value, "__notes__", None)  # no "rollback incomplete"
    assert world.nl.port_requests == [(2, "finance", True)]
    assert world.nl.states == INITIAL
    assert host.store.all() == []
    host.close()


def test_an_associated_profile_is_disassociated_by_the_rollback(world: World) -> None:
    """Associated, then the next device fails: the rollback disassociates what was associated."""
    world.nl.refuse = {"vlan": errno.EPERM}
    host = world.host()
    first = interface(1, extra=QBH).replace("<vlan><tag id='43'/></vlan>", "")
    with pytest.raises(NetlinkError, match="EPERM"):
        attach(host, f"<domain><devices>{first}{interface(2, '52:54:00:6d:90:04')}"
                     "</devices></domain>")
    assert world.nl.port_requests == [(1, "finance", True), (1, "finance", False)]
    assert world.nl.ports == {} and world.nl.states == INITIAL
    assert host.store.all() == []
    host.close()


def test_detach_disassociates_the_recorded_profile(world: World) -> None:
    host = world.host()
    attach(host, interface(2, extra=QBH))
    (att,) = host.store.all()
    assert (att.phase, att.port_profile) == ("attached", "finance")
    assert world.nl.ports == {2: "finance"} and world.nl.states[2].vlan == 43
    assert restore_attachment(att, host) == []  # what detach, restore and recover run
    assert world.nl.port_requests[-1] == (2, "finance", False) and world.nl.ports == {}
    assert world.nl.states == INITIAL and host.store.all() == []
    host.close()


def test_a_record_from_before_profiles_were_recorded_gets_its_documents(world: World) -> None:
    """A record of state store schema 1 names no profile (port_known False): detaching its
    document disassociates the document's profile, as detach did then."""
    host = world.host()
    xml = interface(2, extra=QBH)
    attach(host, xml)
    host.store._db().execute("UPDATE attachments SET port_profile = NULL, port_instance = NULL, "
                             "port_known = 0")
    (att,) = host.store.all()
    assert (att.port_known, att.port_profile) == (False, None)
    (spec,) = DeviceDocument.parse(xml, source="h2.xml").devices
    found = _find_attachment(spec, host)  # what vfmac detach FILE gives back
    assert (found.port_profile, found.vf_key) == ("finance", att.vf_key)
    assert restore_attachment(found, host) == []
    assert world.nl.port_requests[-1] == (2, "finance", False) and world.nl.ports == {}
    assert world.nl.states == INITIAL and host.store.all() == []
    host.close()


class RefusesThenStuck(FakeNl):
    """Refuses the profile (EOPNOTSUPP), and from then on the MAC change back too (EINVAL)."""

    def set_vf_port(self, pf: str | int, vf: int, **kw: Any) -> None:
        self.port_errno = errno.EOPNOTSUPP
        try:
            super().set_vf_port(pf, vf, **kw)
        finally:
            self.refuse = {"mac": errno.EINVAL}


def test_a_record_whose_profile_was_never_associated_is_restored(tmp_path: Path) -> None:
    """A rollback that could not finish (the MAC restore refused) keeps the record; restoring
    it later (detach, restore, recover) must not disassociate the profile the driver refused."""
    world = World(tmp_path, RefusesThenStuck())
    host = world.host()
    with pytest.raises(NetlinkError, match="cannot associate port profile") as info:
        attach(host, interface(2, extra=QBH))
    (note,) = info.value.__notes__
    assert "rollback incomplete" in note and "all-zero admin MAC" in note
    assert "disassociate" not in note
    (kept,) = host.store.all()
    assert kept.port_profile is None and world.nl.states[2].mac == MAC
    world.nl.refuse = {}
    assert restore_attachment(kept, host) == []
    assert world.nl.port_requests == [(2, "finance", True)]
    assert world.nl.states == INITIAL and host.store.all() == []
    host.close()


def test_a_failed_disassociate_keeps_the_record_and_its_profile(world: World) -> None:
    host = world.host()
    attach(host, interface(2, extra=QBH))
    world.nl.port_errno = errno.EBUSY
    (att,) = host.store.all()
    with pytest.raises(RestoreError, match="cannot disassociate port profile 'finance'"):
        restore_attachment(att, host)
    (kept,) = host.store.all()
    assert (kept.phase, kept.port_profile) == ("detaching", "finance")
    world.nl.port_errno = 0
    assert restore_attachment(kept, host) == []
    assert world.nl.ports == {} and host.store.all() == []
    host.close()

