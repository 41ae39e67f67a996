"""pyvfmac.apply.run: ``vfmac apply``'s run against this host's kernel (dry runs) and a fake one.

The real runs against a kernel (numvfs, apply, read back) are in tests/testbed/test_apply.py."""

from __future__ import annotations

import errno
import io
import re
import time
from dataclasses import replace
from pathlib import Path
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import pytest
from applyhelp import KEY, PCI0, cfg_of, pf_link, vf_states, write_config

import pyvfmac.topology  # noqa: F401  the compiled core: a broken build fails here, never skips
from pyvfmac.apply import ApplyReport, Config, derive_mac, needs_topology, run_apply, wait_for_vfs
from pyvfmac.cli import main
from pyvfmac.errors import ConfigError
from pyvfmac.types import LinkInfo, VfChange, VfResult, VfState, VfStates

if TYPE_CHECKING:
    from pyvfmac.netlink import BulkIO


def test_wait_for_vfs_polls_until_the_vfs_are_there() -> None:
    seq = [pf_link("eth0", 3, vf_states(0)), pf_link("eth0", 3, vf_states(4)),
           pf_link("eth0", 3, vf_states(8))]
    calls: list[int] = []

    def read(dev: int) -> LinkInfo:
        calls.append(dev)
        return seq[min(len(calls) - 1, 2)]

    assert len(wait_for_vfs(read, 3, 8, 5.0).vfs) == 8 and calls == [3, 3, 3]
    t0 = time.monotonic()
    assert len(wait_for_vfs(lambda dev: seq[1], 3, 8, 0.2).vfs) == 4  # gives up, returns last
    assert 0.2 <= time.monotonic() - t0 < 1.5


# ---------------------------------------------------------------------- run_apply, host kernel


def test_boot_leaves_a_pf_without_netdev_to_the_daemon(tmp_path: Path) -> None:
    """`vfmac apply --boot`: a PF given by PCI address that is an SR-IOV function with no netdev
    yet (its driver binds later) is left out with a line, not an error that fails the boot unit
    and programs no other PF (seen under real systemd: tests/test_systemd_boot.py). Without
    --boot it stays an error; a name or an address that is no SR-IOV function stays one too."""
    from fakesysfs import FakeSysfs

    from pyvfmac.apply.run import without_late_pfs

    fs = FakeSysfs(tmp_path / "sys")
    fs.add_pf("0000:03:00.0", totalvfs=7)
    fs.add_pf("0000:04:00.0", totalvfs=7)
    fs.add_netdev("0000:04:00.0", "enp4s0")
    sysroot = str(tmp_path / "sys")
    path = write_config(tmp_path, '[[pf]]\npci = "0000:03:00.0"\nnumvfs = 7\n')
    with pytest.raises(ConfigError, match="the PF has no network device"):
        run_apply(path, dry_run=True, sysfs_root=sysroot)
    report, lines = run_apply(path, dry_run=True, sysfs_root=sysroot, boot=True)
    assert lines[0] == ("0000:03:00.0: no network device yet (its driver has not bound): "
                        "left to vfmac watch or the udev rule")
    assert report.exit_status == 0 and report.pfs == ()
    cfg = cfg_of({"pf": [{"pci": "0000:03:00.0"}, {"pci": "0000:04:00.0"},
                         {"pci": "0000:05:00.0"}, {"name": "enp9s0"}]})
    kept, late = without_late_pfs(cfg, sysroot)
    assert late == ["0000:03:00.0"]
    assert [e.label for e in kept.pfs] == ["0000:04:00.0", "0000:05:00.0", "enp9s0"]


def test_run_apply_rejects_bad_config_before_reading_the_host(tmp_path: Path) -> None:
    path = write_config(tmp_path, '[[pf]]\nname = "eth0"\nvlan = 5000\n')
    out = io.StringIO()
    with pytest.raises(ConfigError, match=r"pf\[0\]\.vlan = 5000"):
        run_apply(path, dry_run=True)
    assert main(["apply", "--dry-run", path], out) == 1  # the command: an error, no report
    assert out.getvalue() == ""


def test_run_apply_dry_run_on_this_host(tmp_path: Path) -> None:
    """The real rtnetlink dump: ``lo`` exists and has no VFs. It is no SR-IOV PF: refused; with a
    sysfs root where it has ``sriov_numvfs``, a PF with nothing to change."""
    path = write_config(tmp_path, '[[pf]]\nname = "lo"\n')
    with pytest.raises(ConfigError, match=re.escape(
            'pf[0].name = "lo": lo cannot create VFs (/sys/class/net/lo/device/sriov_numvfs '
            "does not exist: not an SR-IOV PF)")):
        run_apply(path, dry_run=True)
    dev = tmp_path / "sys" / "class" / "net" / "lo" / "device"
    dev.mkdir(parents=True)
    (dev / "sriov_numvfs").write_text("0\n")
    report, lines = run_apply(path, dry_run=True, sysfs_root=str(tmp_path / "sys"))
    assert lines == [
        "lo: 0 VFs, 0 to change, 0 unchanged",
        "dry run: 0 changes would be made; nothing was changed",
    ]
    assert report.exit_status == 0
    path = write_config(tmp_path, '[[pf]]\nname = "lo"\n[[pf.vf]]\nindex = 0\ntrust = true\n')
    with pytest.raises(ConfigError,
                       match=re.escape("pf[0].vf[0].index = 0: lo has no VFs; set pf[0].numvfs")):
        run_apply(path, dry_run=True)
    path = write_config(tmp_path, '[[pf]]\nname = "lo"\nnumvfs = 2\n')
    with pytest.raises(ConfigError, match=r"pf\[0\]\.numvfs = 2: lo cannot create VFs"):
        run_apply(path, dry_run=True)


# ----------------------------------------------------------- run_apply's steps, a fake kernel
# The kernel cannot be asked to refuse one VF, accept a change and read back another value, or
# fail a read-back on demand: this fake stands in for Rtnl so that run_apply's handling of each
# is checked. The same runs against the real kernel are in tests/testbed/test_apply.py.


class FakeKernel:
    """Rtnl's surface as run_apply uses it, over LinkInfo values; records every call."""

    def __init__(self, *links: LinkInfo) -> None:
        self.links = {link.ifindex: link for link in links}
        self.calls: list[tuple[str, Any]] = []
        self.refuse: dict[tuple[int, int], int] = {}  # (ifindex, vf) -> errno
        self.ignore: set[tuple[int, int]] = set()  # accepted, but the VF keeps its old state
        self.unreadable: set[int] = set()  # read_link fails (after the first dump)
        self.refuse_at: dict[tuple[int, int], tuple[str, int]] = {}  # -> (setting, errno)
        self.undos: list[bool] = []  # apply's undo argument, per call

    def __call__(self) -> FakeKernel:  # stands in for the Rtnl class
        return self

    def __enter__(self) -> FakeKernel:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def dump_links(self) -> list[LinkInfo]:
        self.calls.append(("dump_links", None))
        return list(self.links.values())

    def read_link(self, dev: str | int, *, strict: bool = True) -> LinkInfo:
        assert isinstance(dev, int), "vfmac apply reads PFs by ifindex"
        self.calls.append(("read_link", dev))
        if dev in self.unreadable:
            from pyvfmac.errors import NetlinkError

            raise NetlinkError(errno.ENODEV, "cannot read link and VF state",
                               device=self.links[dev].name)
        return self.links[dev]

    def _set(self, ifindex: int, vf: int, **changes: Any) -> None:
        link = self.links[ifindex]
        vfs = list(link.vfs)
        vfs[vf] = replace(vfs[vf], **changes)
        self.links[ifindex] = replace(link, vfs=VfStates.of(vfs))

    def set_macs(self, pf: int, macs: dict[int, str]) -> dict[int, Any]:
        from pyvfmac.errors import NetlinkError

        self.calls.append(("set_macs", (pf, dict(macs))))
        failed = {}
        for vf, mac in macs.items():
            if (pf, vf) in self.refuse:
                failed[vf] = NetlinkError(self.refuse[(pf, vf)], f"cannot set MAC {mac}",
                                          device=self.links[pf].name, vf=vf)
            elif (pf, vf) not in self.ignore:
                self._set(pf, vf, mac=mac)
        return failed

    def apply(self, changes: Sequence[VfChange], *, undo: bool = True,
              before: Mapping[tuple[str | int, int], VfState] | None = None
              ) -> list[VfResult]:
        """As the kernel does: each change's settings in do_setvfinfo's order (MAC, VLAN, rate,
        spoofchk, link state, trust), stopping at a refused one (``refuse_at``: that setting,
        ``refuse``: the first), the ones before it applied. Never puts anything back:
        run_apply must ask for no undo (``undos``: what it asked), and gives no ``before``."""
        assert before is None, "FakeKernel.apply: before is not modelled"
        self.calls.append(("apply", list(changes)))
        self.undos.append(undo)
        out = []
        for c in changes:
            key = (int(c.pf), c.vf)
            code = self.refuse.get(key, 0)
            stop, stop_code = self.refuse_at.get(key, (None, 0))
            for name, fields in (("mac", ("mac",)), ("vlan", ("vlan", "qos", "vlan_proto")),
                                 ("rate", ("min_tx_rate", "max_tx_rate")),
                                 ("spoofchk", ("spoofchk",)), ("link_state", ("link_state",)),
                                 ("trust", ("trust",))):
                if getattr(c, fields[0]) is None or key in self.ignore:
                    continue
                if code or name == stop:
                    code = code or stop_code
                    break
                self._set(key[0], c.vf, **{f: getattr(c, f) for f in fields})
            out.append(VfResult(change=c, pf_name=self.links[key[0]].name, errno=code))
        return out

    def names(self, kind: str) -> list[Any]:
        return [arg for name, arg in self.calls if name == kind]


def nsim_link(name: str, ifindex: int, n: int) -> LinkInfo:
    return pf_link(name, ifindex, vf_states(n, spoofchk=True, trust=False),
                   mac=f"52:54:00:00:00:{ifindex:02x}", parent=("netdevsim", f"netdevsim{ifindex}"))


def fake_kernel(monkeypatch: pytest.MonkeyPatch, *links: LinkInfo) -> FakeKernel:
    import pyvfmac.netlink

    kernel = FakeKernel(*links)
    _checked: BulkIO = kernel  # mypy: the fake has what run_apply calls on its Rtnl
    monkeypatch.setattr(pyvfmac.netlink, "Rtnl", kernel)
    return kernel


TWO_PFS = """
[[pf]]
name = "eth0"
mac_policy = "derived"
[[pf]]
name = "eth1"
mac_policy = "derived"
[[pf.vf]]
index = 1
trust = true
"""


def run(path: str, **kw: Any) -> tuple[ApplyReport, list[str]]:
    return run_apply(path, **kw)


def test_run_apply_bulk_path_for_mac_only_pfs_and_reads_back_only_changed_pfs(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    kernel = fake_kernel(monkeypatch, nsim_link("eth0", 10, 4), nsim_link("eth1", 11, 3),
                         nsim_link("eth2", 12, 5))  # eth2: not configured, never touched
    path = write_config(tmp_path, TWO_PFS)
    report, lines = run(path, sysfs_root=str(tmp_path))
    assert lines == ["eth0: 4 VFs, 4 changed, 0 unchanged, 0 failed",
                     "eth1: 3 VFs, 3 changed, 0 unchanged, 0 failed", "7 changes, 0 failed"]
    assert report.exit_status == 0 and len(report.changes) == 7
    eth0 = [derive_mac(KEY, "dev:netdevsim:netdevsim10", i) for i in range(4)]
    eth1 = [derive_mac(KEY, "dev:netdevsim:netdevsim11", i) for i in range(3)]
    # one dump; eth0 (MAC only) through set_macs, eth1 (a trust change too) through apply;
    # the verification reads back eth0 and eth1 alone, no second dump
    assert [name for name, _ in kernel.calls] == ["dump_links", "set_macs", "apply", "read_link",
                                                  "read_link"]
    assert kernel.names("set_macs") == [(10, dict(enumerate(eth0)))]
    (sent,) = kernel.names("apply")
    assert [(c.pf, c.vf, c.mac, c.trust) for c in sent] == [
        (11, 0, eth1[0], None), (11, 1, eth1[1], True), (11, 2, eth1[2], None)]
    assert kernel.names("read_link") == [10, 11]
    assert [s.mac for s in kernel.links[10].vfs] == eth0
    assert kernel.links[12] == nsim_link("eth2", 12, 5)
    # run twice: nothing sent, nothing read back, and it says so
    kernel.calls.clear()
    report2, lines2 = run(path, sysfs_root=str(tmp_path))
    assert kernel.calls == [("dump_links", None)]
    assert report2.changed == 0 and report2.changes == () and report2.exit_status == 0
    assert lines2[-1] == "0 changes: every VF is already as configured"


def test_run_apply_reports_refusals_and_wrong_read_backs(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    kernel = fake_kernel(monkeypatch, nsim_link("eth0", 10, 4), nsim_link("eth1", 11, 3))
    kernel.refuse = {(10, 2): errno.EOPNOTSUPP, (11, 1): errno.EPERM}
    kernel.ignore = {(10, 3)}
    path = write_config(tmp_path, TWO_PFS)
    report, lines = run(path, sysfs_root=str(tmp_path))
    want3 = derive_mac(KEY, "dev:netdevsim:netdevsim10", 3)
    assert lines == [
        "eth0: 4 VFs, 2 changed, 0 unchanged, 2 failed",
        "eth1: 3 VFs, 2 changed, 0 unchanged, 1 failed",
        f"  eth0 vf 2: cannot set MAC {derive_mac(KEY, 'dev:netdevsim:netdevsim10', 2)}: "
        "Operation not supported (EOPNOTSUPP)",
        "  eth0 vf 3: the kernel accepted the change but reads back differently "
        f"(still not: mac {want3})",
        f"  eth1 vf 1: cannot set MAC {derive_mac(KEY, 'dev:netdevsim:netdevsim11', 1)}: "
        "Operation not permitted (EPERM); nothing changed",
        "4 changes, 3 failed",
    ]
    assert report.exit_status == 1
    assert [(f.pf, f.vf) for f in report.failures] == [("eth0", 2), ("eth0", 3), ("eth1", 1)]


def test_run_apply_names_the_refused_setting_and_what_else_was_set(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The kernel applies a VF's settings in its order and stops at the refused one: the report
    names that one alone, the ones before it as set (they stay: apply converges as far as it
    can), those after it as not set; from the verification's read-back, no read of its own."""
    kernel = fake_kernel(monkeypatch, nsim_link("eth0", 10, 3))
    kernel.refuse_at = {(10, 1): ("link_state", errno.EOPNOTSUPP),
                        (10, 2): ("mac", errno.EINVAL)}
    path = write_config(tmp_path, '[[pf]]\nname = "eth0"\nmac_policy = "derived"\n'
                        '[[pf.vf]]\nindex = 1\nvlan = 200\nlink_state = "enable"\ntrust = true\n'
                        '[[pf.vf]]\nindex = 2\nvlan = 5\n')
    report, lines = run(path, sysfs_root=str(tmp_path))
    mac1, mac2 = (derive_mac(KEY, "dev:netdevsim:netdevsim10", i) for i in (1, 2))
    assert lines == [
        "eth0: 3 VFs, 1 changed, 0 unchanged, 2 failed",
        "  eth0 vf 1: cannot set link state enable: Operation not supported (EOPNOTSUPP); "
        f"set: MAC {mac1}, VLAN 200 802.1Q; not set: trust on",
        f"  eth0 vf 2: cannot set MAC {mac2}: Invalid argument (EINVAL); nothing changed",
        "1 change, 2 failed",
    ]
    assert kernel.undos == [False]
    assert [name for name, _ in kernel.calls] == ["dump_links", "apply", "read_link"]
    vf1 = kernel.links[10].vf(1)
    assert (vf1.mac, vf1.vlan, vf1.link_state, vf1.trust) == (mac1, 200, None, False)


def test_run_apply_read_back_failure_fails_that_pfs_vfs(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    kernel = fake_kernel(monkeypatch, nsim_link("eth0", 10, 2), nsim_link("eth1", 11, 3))
    kernel.unreadable = {10}
    path = write_config(tmp_path, TWO_PFS)
    report, lines = run(path, sysfs_root=str(tmp_path))
    assert lines[:4] == [
        "eth0: 2 VFs, 0 changed, 0 unchanged, 2 failed",
        "eth1: 3 VFs, 3 changed, 0 unchanged, 0 failed",
        "  eth0 vf 0: cannot read back: eth0: cannot read link and VF state: No such device "
        "(ENODEV)",
        "  eth0 vf 1: cannot read back: eth0: cannot read link and VF state: No such device "
        "(ENODEV)",
    ]
    assert report.exit_status == 1 and lines[-1] == "3 changes, 2 failed"


def test_run_apply_tells_its_progress(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_kernel(monkeypatch, nsim_link("eth0", 10, 4), nsim_link("eth1", 11, 3))
    path = write_config(tmp_path, TWO_PFS)
    said: list[str] = []
    run(path, sysfs_root=str(tmp_path), progress=said.append)
    assert said == ["reading the host's links", "programming 7 VFs on 2 PFs",
                    "eth0: reading back 4 VFs", "eth1: reading back 3 VFs", ""]
    said.clear()
    run(path, sysfs_root=str(tmp_path), dry_run=True, progress=said.append)
    assert said == ["reading the host's links", ""]
    said.clear()
    with pytest.raises(ConfigError):  # cleared on errors too (before the CLI prints one)
        run(write_config(tmp_path, '[[pf]]\nname = "eth9"\n'), progress=said.append)
    assert said == ["reading the host's links", ""]


def test_topology_scan_only_when_a_pf_may_be_pci() -> None:
    links = [nsim_link("eth0", 10, 2), pf_link("eth1", 11, (), pci=PCI0),
             pf_link("eth2", 12, ())]  # eth2: the kernel named no parent
    need = needs_topology

    def cfg(*pfs: dict[str, Any]) -> Config:
        return cfg_of({"pf": list(pfs)})

    assert not need(cfg({"name": "eth0"}), links)
    assert not need(cfg({"name": "eth0"}, {"name": "nosuch0"}), links)
    assert need(cfg({"name": "eth0"}, {"name": "eth1"}), links)
    assert need(cfg({"name": "eth2"}), links)
    assert need(cfg({"pci": str(PCI0)}), links)


def test_wait_for_vfs_tells_its_progress() -> None:
    seq = [pf_link("eth0", 3, vf_states(0)), pf_link("eth0", 3, vf_states(5)),
           pf_link("eth0", 3, vf_states(8))]
    calls: list[int] = []
    told: list[tuple[int, float]] = []

    def read(dev: int) -> LinkInfo:
        calls.append(dev)
        return seq[min(len(calls) - 1, 2)]

    wait_for_vfs(read, 3, 8, 5.0, progress=lambda n, t: told.append((n, t)))
    assert [n for n, _t in told] == [0, 5]  # not after the read that has them all
    assert 0 <= told[0][1] <= told[1][1] < 5.0
