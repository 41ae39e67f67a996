"""A process killed at every step of attach, detach and pool allocation: nothing on the host
changes before its record is durable, and no record is lost.

Unit level: a fake sysfs (PF enp6s0 with 4 unbound VFs) and a fake rtnetlink whose VF states live
in a file (so that they outlive the process), a real state store. Each scenario first runs once
to number its steps: every store commit point (``<operation>:before-commit`` /
``:after-commit``, the store's fault hook) and every kernel change (before / after). Then, for
each step K, a forked child runs the scenario and dies with ``os._exit`` at step K (no cleanup,
no rollback: as SIGKILL). After each death:

* at every kernel change the child made, the VF's record was already committed (checked in the
  child by a separate SQLite connection, which sees only committed data), and before an 802.1Qbh
  port profile request, the record named that profile;
* every VF that differs from its initial state has a record holding that initial state;
* every associated port profile is the one its VF's record names;
* ``recover`` (as ``vfmac recover`` runs it) leaves each VF either attached with its record, or
  back in its initial state (no port profile associated) without one, and no allocation without
  its attachment.

The same kill points with real VFs and SIGKILL are in tests/testbed/test_attach.py.
"""

from __future__ import annotations

import dataclasses
import errno
import io
import json
import os
import sqlite3
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, cast

import pytest
from fakehost import INITIAL, NVF, PF, PF_ADDR, VFS  # the same PF and VFs as the fake host's
from fakesysfs import FakeSysfs

from pyvfmac.attach import attach_document
from pyvfmac.domain import DeviceDocument
from pyvfmac.host import Host
from pyvfmac.restore import restore_all, restore_attachment
from pyvfmac.settings import SETTINGS, VfChange, VfState
from pyvfmac.store import Store
from pyvfmac.types import LinkInfo, VfResult, VfStates

NET_XML = ("<network><name>pool1</name><forward mode='hostdev' managed='no'>"
           + "".join(f"<address type='pci' domain='0' bus='6' slot='{int(v[8:10], 16)}' "
                     f"function='{v[-1]}'/>" for v in VFS[2:])
           + "</forward></network>")


class Killed(Exception):
    pass


class Steps:
    """Numbers the steps of one run; with ``die_at``, ends the process at that step."""

    def __init__(self, log: Path, die_at: int | None) -> None:
        self.n = 0
        self.die_at = die_at
        self.fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)

    def step(self, what: str) -> None:
        os.write(self.fd, f"{self.n} {what}\n".encode())
        if self.n == self.die_at:
            os._exit(137)  # as SIGKILL: no finally, no rollback, no atexit
        self.n += 1


class FileNl:
    """rtnetlink for one PF whose VF states are kept in a JSON file."""

    def __init__(self, path: Path, steps: Steps | None, db: Path) -> None:
        self.path, self.steps, self.db = path, steps, db
        self.refuse: set[int] = set()  # VFs whose new MAC the "driver" refuses (EINVAL)

    def states(self) -> list[VfState]:
        return [VfState(**d) for d in json.loads(self.path.read_text())]

    def save(self, states: Sequence[VfState]) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps([dataclasses.asdict(s) for s in states]))
        os.replace(tmp, self.path)

    def read_link(self, dev: str | int, *, strict: bool = True) -> LinkInfo:
        return LinkInfo(ifindex=7, name=PF, mac="02:aa:00:00:00:01", perm_mac=None,
                        parent_bus="pci", parent_dev=PF_ADDR, num_vf=NVF,
                        vfs=VfStates.of(self.states()))

    def dump_links(self) -> list[LinkInfo]:
        return [self.read_link(PF)]

    def recorded(self, vf: int) -> bool:
        """The VF's record is committed (a separate connection sees committed data only)."""
        conn = sqlite3.connect(f"file:{self.db}?mode=ro", uri=True)
        try:
            return conn.execute("SELECT 1 FROM attachments WHERE vf_key = ?",
                                (VFS[vf],)).fetchone() is not None
        finally:
            conn.close()

    def apply(self, changes: Sequence[VfChange], *, undo: bool = True,
              before: Mapping[tuple[str | int, int], VfState] | None = None
              ) -> list[VfResult]:
        """A refused change is refused whole: what ``Rtnl.apply`` leaves with ``undo`` (the
        only way attach and restore call it), so a call without it is refused here."""
        assert undo, "FileNl.apply: undo=False is not modelled"
        results = []
        for c in changes:
            if self.steps is not None:
                self.steps.step(f"kernel-before vf{c.vf} recorded={int(self.recorded(c.vf))}")
            if c.vf in self.refuse and c.mac not in (None, INITIAL[c.vf].mac):
                results.append(VfResult(change=c, pf_name=PF, errno=errno.EINVAL))
                continue
            states = self.states()
            given = {n: getattr(c, n) for n in SETTINGS if getattr(c, n) is not None}
            states[c.vf] = dataclasses.replace(states[c.vf], **given)
            self.save(states)
            if self.steps is not None:
                self.steps.step(f"kernel-after vf{c.vf}")
            results.append(VfResult(change=c, pf_name=PF))
        return results

    def ports(self) -> dict[int, str]:
        """VF -> the 802.1Qbh port profile associated with it."""
        path = self.path.with_suffix(".ports")
        if not path.exists():
            return {}
        return {int(k): v for k, v in json.loads(path.read_text()).items()}

    def port_recorded(self, vf: int) -> str | None:
        """The port profile the VF's committed record names."""
        conn = sqlite3.connect(f"file:{self.db}?mode=ro", uri=True)
        try:
            row = conn.execute("SELECT port_profile FROM attachments WHERE vf_key = ?",
                               (VFS[vf],)).fetchone()
            return None if row is None else cast(str | None, row[0])
        finally:
            conn.close()

    def set_vf_port(self, pf: str | int, vf: int, *, profile: str, associate: bool = True,
                    **kw: Any) -> None:
        if self.steps is not None:
            self.steps.step(f"kernel-before port vf{vf} "
                            f"recorded={int(self.port_recorded(vf) == profile)}")
        ports = self.ports()
        if associate:
            ports[vf] = profile
        else:
            ports.pop(vf, None)
        tmp = self.path.with_suffix(".ports.tmp")
        tmp.write_text(json.dumps(ports))
        os.replace(tmp, self.path.with_suffix(".ports"))
        if self.steps is not None:
            self.steps.step(f"kernel-after port vf{vf}")

    def set_link_mac(self, dev: str | int, mac: str) -> None:
        raise AssertionError(f"no VF netdevs here: set_link_mac({dev!r}, {mac!r})")

    def close(self) -> None:
        pass


class World:
    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.sysfs = tmp / "sys"
        fs = FakeSysfs(self.sysfs)
        fs.add_pf(PF_ADDR, totalvfs=NVF, netdevs=[PF])
        fs.add_vfs(PF_ADDR, NVF)
        self.state = tmp / "state"
        self.vfs = tmp / "vfs.json"
        FileNl(self.vfs, None, self.state / "state.db").save(INITIAL)
        with Store(self.state) as s:
            s.define_network("pool1", NET_XML)
            s.start_network("pool1", VFS[2:])

    def host(self, steps: Steps | None) -> Host:
        store = Store(self.state)
        if steps is not None:
            store.fault_hook = steps.step
        nl = FileNl(self.vfs, steps, self.state / "state.db")
        return Host(store=store, nl=nl, sysfs_root=str(self.sysfs))

    def run(self, scenario: Callable[[Host], None], die_at: int | None, log: Path,
            fails: bool = False) -> int:
        """Run the scenario in a forked child; the number of steps it passed (or died at)."""
        log.unlink(missing_ok=True)
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                steps = Steps(log, die_at)
                host = self.host(steps)
                scenario(host)
                host.close()
            except BaseException:  # noqa: BLE001 - the child reports by exit status only
                code = 1
            os._exit(code)
        _, status = os.waitpid(pid, 0)
        code = os.waitstatus_to_exitcode(status)
        assert code == (137 if die_at is not None else 1 if fails else 0), (code, log.read_text())
        return len(log.read_text().splitlines())


QBH = "<virtualport type='802.1Qbh'><parameters profileid='finance'/></virtualport>"
DOC_TWO = ("<domain><devices>"
           + "".join(f"<hostdev mode='subsystem' type='pci' managed='no'><source><address "
                     f"domain='0' bus='6' slot='{int(v[8:10], 16)}' function='{v[-1]}'/>"
                     f"</source><mac address='52:54:00:00:00:0{i + 1}'/>{QBH * (i == 0)}"
                     "</hostdev>"
                     for i, v in enumerate(VFS[:2]))
           + "<interface type='network'><source network='pool1'/>"
             "<mac address='52:54:00:00:01:01'/></interface></devices></domain>")


def attach(host: Host) -> None:
    attach_document(DeviceDocument.parse(DOC_TWO, source="vm.xml"), host)


def attach_refused(host: Host) -> None:
    """The second device's MAC is refused: the first is rolled back (restored, record dropped),
    the pool allocation released."""
    cast(FileNl, host.nl).refuse = {1}
    attach(host)


def detach(host: Host) -> None:
    for att in host.store.all():
        restore_attachment(att, host)


def recover(w: World) -> None:
    host = w.host(None)
    try:
        stale = [a for a in host.store.incomplete() if not a.worker_alive()]
        restore_all(stale, host)
        for alloc in host.store.orphan_allocations():
            host.store.release(alloc.network, alloc.vf_key)
    finally:
        host.close()


def check_after_death(w: World, log: Path) -> None:
    lines = log.read_text().splitlines()
    for line in lines:
        if "kernel-before" in line:
            assert "recorded=1" in line, f"host changed before its record was durable: {line}"
    nl = FileNl(w.vfs, None, w.state / "state.db")
    states, ports = nl.states(), nl.ports()
    with Store(w.state) as s:
        s.check()
        for i, st in enumerate(states):
            att = s.get(VFS[i])
            if st != INITIAL[i]:
                assert att is not None, f"VF {i} changed, no record ({lines[-1]})"
            if att is not None:
                assert att.original.mac == INITIAL[i].mac and att.original.vlan == 0
            if i in ports:  # an associated profile is one its record names
                assert att is not None and att.port_profile == ports[i], (att, lines[-1])
    recover(w)
    states, ports = nl.states(), nl.ports()
    with Store(w.state) as s:
        for i, st in enumerate(states):
            att = s.get(VFS[i])
            if att is None:
                assert st == INITIAL[i], f"VF {i} not restored after recover ({lines[-1]})"
                assert i not in ports, f"VF {i}: profile left associated ({lines[-1]})"
            else:
                assert att.phase == "attached" and st.mac == att.mac, (att, st)
                assert ports.get(i) == att.port_profile, (att, ports)
        attached = {a.vf_key for a in s.all()}
        assert {a.vf_key for a in s.allocations()} <= attached
        assert s.orphan_allocations() == []


SCENARIOS = {"attach": (attach, 26), "attach-rolled-back": (attach_refused, 25),
             "detach": (detach, 18)}


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_killed_at_every_step(tmp_path: Path, scenario: str) -> None:
    fn, least = SCENARIOS[scenario]
    fails = scenario == "attach-rolled-back"
    base = World(tmp_path / "base")
    log = tmp_path / "steps.log"
    if scenario == "detach":
        base.run(attach, None, log)
    total = base.run(fn, None, log, fails)  # count the steps once (a clean run in its own world)
    assert total >= least, log.read_text()
    if fails:  # the clean run rolled back everything
        check_after_death(base, log)
        assert FileNl(base.vfs, None, base.state / "state.db").states() == INITIAL
    for k in range(total):
        w = World(tmp_path / f"k{k}")
        if scenario == "detach":
            w.run(attach, None, log)
        w.run(fn, k, log)
        check_after_death(w, log)
