"""A host for attach / detach tests without VFs: a fake sysfs (one PF ``enp6s0`` at 0000:06:00.0
with unbound VFs, no VF netdevs), a fake rtnetlink socket that keeps the VF states, the host's
other netdevs and the 802.1Qbh port profiles in memory, and a real state store.

``FakeNl.port_errno`` is what the "driver" answers a port-profile request (0: done; igb answers
EOPNOTSUPP); ``FakeNl.refuse`` maps a setting name to the errno the "kernel" refuses it with
(the settings before it in a change stay applied, as the kernel's do)."""

from __future__ import annotations

import dataclasses
import errno
from collections.abc import Mapping, Sequence
from pathlib import Path

from fakesysfs import FakeSysfs, vf_name

from pyvfmac.errors import NetlinkError
from pyvfmac.host import Host
from pyvfmac.settings import SETTINGS, VfChange, VfState, joined, parts, put_back, refusal
from pyvfmac.store import Store
from pyvfmac.types import LinkInfo, VfResult, VfStates

PF_ADDR = "0000:06:00.0"
PF = "enp6s0"
NVF = 4
VFS = [vf_name(PF_ADDR, i) for i in range(NVF)]
INITIAL = [VfState(vf=i, mac="00:00:00:00:00:00", spoofchk=True, trust=False, link_state="auto")
           for i in range(NVF)]


class FakeNl:
    """rtnetlink for PF ``enp6s0`` and the netdevs in ``others`` (name -> MAC)."""

    def __init__(self, others: dict[str, str] | None = None) -> None:
        self.states = list(INITIAL)
        self.others = dict(others or {})
        self.port_errno = 0
        self.refuse: dict[str, int] = {}
        self.ports: dict[int, str] = {}  # VF -> associated profile
        self.port_requests: list[tuple[int, str, bool]] = []  # (VF, profile, associate)

    def read_link(self, dev: str | int, *, strict: bool = True) -> LinkInfo:
        if dev == PF:
            return LinkInfo(ifindex=7, name=PF, mac="02:aa:00:00:00:01", perm_mac=None,
                            parent_bus="pci", parent_dev=PF_ADDR, num_vf=NVF,
                            vfs=VfStates.of(self.states))
        if dev not in self.others:
            raise NetlinkError(errno.ENODEV, "cannot read link", device=str(dev))
        return LinkInfo(ifindex=8 + sorted(self.others).index(str(dev)), name=str(dev),
                        mac=self.others[str(dev)], perm_mac=None, parent_bus=None,
                        parent_dev=None, num_vf=None, vfs=VfStates.of(()))

    def dump_links(self) -> list[LinkInfo]:
        return [self.read_link(PF), *(self.read_link(n) for n in sorted(self.others))]

    def apply(self, changes: Sequence[VfChange], *, undo: bool = True,
              before: Mapping[tuple[str | int, int], VfState] | None = None
              ) -> list[VfResult]:
        """As ``Rtnl.apply`` with the kernel under it: each change's settings in the kernel's
        order, stopping at the first refused (those before it stay applied). With ``undo``, a
        refused change of several settings is told (``refusal``) and what applied put back to
        the VF's state before it (``before``'s, when given), each setting alone."""
        results = []
        for c in changes:
            had = (before or {}).get((c.pf, c.vf), self.states[c.vf])
            err = 0
            for part in parts(c):
                given = {n: v for n in SETTINGS if (v := getattr(part, n)) is not None}
                err = next((self.refuse[n] for n in given if n in self.refuse), 0)
                if err:
                    break
                self.states[c.vf] = dataclasses.replace(self.states[c.vf], **given)
            result = VfResult(change=c, pf_name=PF, errno=err)
            if err and undo and len(parts(c)) > 1:
                told = refusal(c, self.states[c.vf], had)
                steps = put_back(told.applied, had, self.states[c.vf])
                back = self.apply([VfChange.of(c.pf, c.vf, step, allow_zero_mac=True)
                                   for _part, step in steps], undo=False)
                kept = [part for (part, _step), r in zip(steps, back) if not r.ok]
                result = dataclasses.replace(
                    result, refusal=told, kept=joined(kept),
                    undo_errno=next((r.errno for r in back if not r.ok), 0))
            results.append(result)
        return results

    def set_link_mac(self, dev: str | int, mac: str) -> None:
        if dev not in self.others:
            raise NetlinkError(errno.ENODEV, "no such network device", device=str(dev))
        self.others[str(dev)] = mac

    def set_vf_port(self, pf: str | int, vf: int, *, profile: str,
                    instance_uuid: str | None = None, host_uuid: str | None = None,
                    associate: bool = True) -> None:
        self.port_requests.append((vf, profile, associate))
        if self.port_errno:
            verb = "associate" if associate else "disassociate"
            raise NetlinkError(self.port_errno, f"cannot {verb} port profile {profile!r}",
                               device=str(pf), vf=vf)
        if associate:
            self.ports[vf] = profile
        else:
            self.ports.pop(vf, None)

    def close(self) -> None:
        pass


class World:
    """The fake sysfs and the state directory under ``tmp``; :meth:`host` opens a Host on them
    with ``nl`` (kept, so that the VF states outlive one Host)."""

    def __init__(self, tmp: Path, nl: FakeNl | None = None) -> None:
        self.sysfs = tmp / "sys"
        fs = FakeSysfs(self.sysfs)
        fs.add_pf(PF_ADDR, totalvfs=NVF, netdevs=[PF])
        fs.add_vfs(PF_ADDR, NVF)
        self.state = tmp / "state"
        self.nl = nl or FakeNl()

    def host(self) -> Host:
        return Host(store=Store(self.state), nl=self.nl, sysfs_root=str(self.sysfs))


def pci_attrs(key: str) -> str:
    """The ``<address>`` attributes of a VF key (``0000:06:10.2``)."""
    dom, bus, rest = key.split(":")
    slot, fn = rest.split(".")
    return f"domain='0x{dom}' bus='0x{bus}' slot='0x{slot}' function='0x{fn}'"
