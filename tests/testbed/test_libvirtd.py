"""A real libvirtd in the testbed guest (issue 23): libvirt 11 (bookworm-backports) runs nested
QEMU guests (TCG inside TCG, 64 MiB, no disk) with igb VFs while pyvfmac's hook is installed as
``/etc/libvirt/hooks/qemu.d/pyvfmac``; checked with ``ip -j link show PF`` and sysfs.

- libvirt's own ``<interface type='hostdev'>`` keeps libvirt's MAC and VLAN while ``vfmac watch``
  runs with a config that gives that VF another MAC, and ``vfmac apply --pf`` says it is held;
  when the guest is gone the daemon puts the configured MAC back;
- the seed's ``<hostdev><mac>`` through ``vfmac libvirt-xml``: the hook sets MAC and VLAN at
  ``prepare`` (seen before QEMU runs), records the owner ``libvirt:<uuid>``, gives the VF back at
  ``release``;
- a MAC another VF has: ``virsh start`` fails naming it, nothing changes;
- a netdev name (level 2) checked at every start: renamed to name another VF, the start fails.

One libvirtd serves the whole file (a session fixture). Two more hooks, ``qemu.d/00-record`` and
``qemu.d/zz-record`` (libvirt runs ``qemu.d`` in name order: before and after pyvfmac's), record
every hook call with the VFs' state at that moment: the event order, what pyvfmac's hook found
and left, the state before QEMU runs.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
import uuid as uuidlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from test_watch import figure, quiet_since, seven_vfs, watching
from vfhelp import VFMAC, driver_of, hostdev_xml, interface_xml, netdev_of, ok, vf_pci, vf_state
from vfhelp import vfmac as run_vfmac

NS = "urn:x-pyvfmac:domain:1"
QEMU_CONF = """
user = "root"
group = "root"
dynamic_ownership = 0
security_driver = "none"
cgroup_controllers = [ ]
namespaces = [ ]
"""
CONTRIB_HOOK = Path(__file__).resolve().parents[2] / "contrib" / "libvirt" / "qemu-hook"
TMPFS = ("/var/log", "/var/cache/libvirt", "/var/lib/libvirt", "/run/libvirt")

RECORDER = """#!/bin/sh
# Records each qemu hook call and the igb VFs' state at that moment (tests/testbed/test_libvirtd.py)
cat >/dev/null
{{
  echo "@@EVENT {tag} $(cut -d' ' -f1 /proc/uptime) $*"
  for pf in {pfs}; do echo "LINK $(ip -j link show dev "$pf")"; done
  for d in /sys/bus/pci/devices/*; do
    [ -e "$d/physfn" ] || continue
    drv=$(readlink "$d/driver" 2>/dev/null)
    echo "DRIVER ${{d##*/}} ${{drv##*/}}"
  done
  n=0
  for p in /proc/[0-9]*; do
    case "$(readlink "$p/exe" 2>/dev/null)" in *qemu-system*) n=$((n + 1)) ;; esac
  done
  echo "QEMU $n"
}} >> {log} 2>&1
exit 0
"""


@dataclass
class HookCall:
    """One recorded hook call: its arguments and what the host looked like then."""

    args: str
    at: float  # the guest's uptime, s
    vfs: dict[tuple[str, int], dict[str, Any]] = field(default_factory=dict)
    drivers: dict[str, str] = field(default_factory=dict)
    qemu: int = -1

    def vf(self, pf: str, index: int) -> dict[str, Any]:
        vf = self.vfs[(pf, index)]
        vlan = (vf.get("vlan_list") or [{}])[0]
        return {"mac": vf["address"], "vlan": vlan.get("vlan", 0),
                "driver": self.drivers.get(vf_pci(pf, index)) or None}


@dataclass
class Libvirtd:
    state: Path  # the hook's state store (vfmac --state-dir)
    record: Path  # 00-record's and zz-record's log
    etc: Path  # the writable copy of /etc/libvirt

    def mark(self) -> int:
        return len(self.record.read_text()) if self.record.exists() else 0

    def calls(self, since: int = 0, where: str = "after") -> list[HookCall]:
        """The hook calls recorded since ``mark()`` was ``since``: ``after`` pyvfmac's hook ran
        (zz-record) or ``before`` (00-record)."""
        text = self.record.read_text()[since:] if self.record.exists() else ""
        out: list[HookCall] = []
        mine = False
        for line in text.splitlines():
            if line.startswith("@@EVENT "):
                tag, at, _guest, args = line[len("@@EVENT "):].split(" ", 3)
                mine = tag == where
                if mine:
                    out.append(HookCall(args, float(at)))
            elif not mine:
                continue
            elif line.startswith("LINK ") and out:
                (link,) = json.loads(line[5:])
                for vf in link.get("vfinfo_list", []):
                    out[-1].vfs[(link["ifname"], vf["vf"])] = vf
            elif line.startswith("DRIVER ") and out:
                _, pci, *drv = line.split()
                out[-1].drivers[pci] = drv[0] if drv else ""
            elif line.startswith("QEMU ") and out:
                out[-1].qemu = int(line.split()[1])
        return out

    def log_tail(self) -> str:
        path = Path("/var/log/libvirt/libvirtd.log")
        return path.read_text()[-3000:] if path.exists() else "(no libvirtd.log)"


def virsh(*args: str, check: bool = True, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(["virsh", "-c", "qemu:///system", *args], capture_output=True,
                          text=True, timeout=timeout, cwd="/")
    if check and proc.returncode != 0:
        tail = Path("/var/log/libvirt/libvirtd.log")
        pytest.fail(f"virsh {' '.join(args)}: exit {proc.returncode}: {proc.stderr.strip()}\n"
                    + (tail.read_text()[-2000:] if tail.exists() else ""))
    return proc


def wait_until(what: str, check: Callable[[], bool], timeout: float) -> None:
    end = time.monotonic() + timeout
    while not check():
        if time.monotonic() > end:
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.1)


def _mounted(path: str) -> bool:
    return any(line.split()[1] == path for line in Path("/proc/mounts").read_text().splitlines())


def _sh(*cmd: str) -> None:
    subprocess.run(cmd, check=True, capture_output=True, text=True)


def _pid(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def _stop(pidfile: Path) -> None:
    pid = _pid(pidfile)
    if pid is None:
        return
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    end = time.monotonic() + 30
    while Path(f"/proc/{pid}").exists() and time.monotonic() < end:
        time.sleep(0.1)
    if Path(f"/proc/{pid}").exists():
        os.kill(pid, signal.SIGKILL)


@pytest.fixture(scope="session")
def libvirtd(igb_pfs: tuple[str, ...], tmp_path_factory: pytest.TempPathFactory
             ) -> Iterator[Libvirtd]:
    """libvirtd and virtlogd as testbed-facts.md describes, pyvfmac's hook (and the recorder)
    installed before libvirtd starts; stopped, unmounted at the end."""
    tmp = tmp_path_factory.mktemp("libvirtd")
    lv = Libvirtd(state=tmp / "st", record=tmp / "hook-calls.log", etc=tmp / "etc-libvirt")
    mounts: list[str] = []
    run = tmp / "run"
    run.mkdir()
    try:
        for path in TMPFS:
            Path(path).mkdir(parents=True, exist_ok=True)  # /run is the guest's tmpfs
            _sh("mount", "-t", "tmpfs", "tmpfs", path)
            mounts.append(path)
        for sub in ("/var/log/libvirt/qemu", "/var/lib/libvirt/qemu", "/var/cache/libvirt/qemu"):
            Path(sub).mkdir(parents=True, exist_ok=True)
        shutil.copytree("/etc/libvirt", lv.etc, symlinks=True)
        with (lv.etc / "qemu.conf").open("a") as f:
            f.write(QEMU_CONF)
        with (lv.etc / "libvirtd.conf").open("a") as f:
            f.write('\nlog_outputs = "3:file:/var/log/libvirt/libvirtd.log"\n')
        hooks = lv.etc / "hooks" / "qemu.d"
        hooks.mkdir(parents=True, exist_ok=True)
        # the shipped hook, calling the venv's vfmac (libvirt's PATH does not have it)
        shipped = CONTRIB_HOOK.read_text()
        assert shipped.count("exec /usr/bin/vfmac libvirt-hook") == 1, shipped
        (hooks / "pyvfmac").write_text(shipped.replace(
            "/usr/bin/vfmac", f"{VFMAC} --state-dir {lv.state}"))
        for script, tag in (("00-record", "before"), ("zz-record", "after")):
            (hooks / script).write_text(RECORDER.format(pfs=" ".join(igb_pfs), log=lv.record,
                                                        tag=tag))
        for hook in hooks.iterdir():
            hook.chmod(0o755)
        _sh("mount", "--bind", str(lv.etc), "/etc/libvirt")
        mounts.append("/etc/libvirt")
        if not _mounted("/sys/fs/cgroup"):
            _sh("mount", "-t", "cgroup2", "none", "/sys/fs/cgroup")
            mounts.append("/sys/fs/cgroup")
        _sh("virtlogd", "-d", "-p", str(run / "virtlogd.pid"))
        _sh("libvirtd", "-d", "-p", str(run / "libvirtd.pid"))
        t0 = time.monotonic()
        wait_until("virsh list", lambda: subprocess.run(
            ["virsh", "-c", "qemu:///system", "list"], capture_output=True).returncode == 0, 120)
        figure(libvirtd_answered_s=round(time.monotonic() - t0, 1))
        yield lv
    finally:
        if _pid(run / "libvirtd.pid") is not None:
            for name in virsh("list", "--name", check=False).stdout.split():
                virsh("destroy", name, check=False)
            for name in virsh("list", "--all", "--name", check=False).stdout.split():
                virsh("undefine", name, check=False)
        _stop(run / "libvirtd.pid")
        _stop(run / "virtlogd.pid")
        for path in reversed(mounts):
            subprocess.run(["umount", path], capture_output=True)
            if _mounted(path):
                subprocess.run(["umount", "-l", path], capture_output=True)


@pytest.fixture
def pfs_up(igb_pfs: tuple[str, ...]) -> Iterator[None]:
    """libvirt refuses a VF of a PF that is down; the testbed leaves the PFs down."""
    was = {pf: "UP" in json.loads(subprocess.run(
        ["ip", "-j", "link", "show", "dev", pf], capture_output=True, text=True,
        check=True).stdout)[0]["flags"] for pf in igb_pfs}
    for pf in igb_pfs:
        _sh("ip", "link", "set", "dev", pf, "up")
    yield
    for pf, up in was.items():
        _sh("ip", "link", "set", "dev", pf, "up" if up else "down")


def domain_xml(name: str, uuid: str, device: str) -> str:
    return f"""<domain type='qemu'>
  <name>{name}</name>
  <uuid>{uuid}</uuid>
  <memory unit='MiB'>64</memory>
  <vcpu>1</vcpu>
  <os>
    <type arch='x86_64' machine='q35'>hvm</type>
  </os>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
    {device}
    <controller type='usb' model='none'/>
    <memballoon model='none'/>
  </devices>
</domain>
"""


@contextmanager
def defined(path: Path, name: str) -> Iterator[None]:
    virsh("define", str(path))
    try:
        yield
    finally:
        if name in virsh("list", "--name", check=False).stdout.split():
            virsh("destroy", name, check=False)
        virsh("undefine", name, check=False)


def records(lv: Libvirtd, owner: str) -> list[Any]:
    from pyvfmac.statepath import store_exists
    from pyvfmac.store import Store

    if not store_exists(str(lv.state)):
        return []
    with Store(str(lv.state)) as store:
        return list(store.find(owner=owner))


def libvirt_xml(lv: Libvirtd, tmp: Path, seed: str) -> Path:
    """``vfmac libvirt-xml`` of the seed; the output must pass libvirt's own schema."""
    src = tmp / "seed.xml"
    src.write_text(seed)
    out = tmp / "seed.libvirt.xml"
    out.write_text(ok(run_vfmac(lv.state, "libvirt-xml", str(src))))
    check = subprocess.run(["virt-xml-validate", str(out), "domain"], capture_output=True,
                           text=True)
    assert check.returncode == 0, check.stdout + check.stderr + out.read_text()
    return out


def ops(calls: list[HookCall]) -> list[str]:
    return [c.args for c in calls]


def timeline(calls: list[HookCall], t0: float) -> list[str]:
    """Each call with the seconds since t0 (the guest's uptime when virsh was run)."""
    return [f"{c.args} +{c.at - t0:.1f}s" for c in calls]


def uptime() -> float:
    return float(Path("/proc/uptime").read_text().split()[0])


def test_libvirts_interface_kept_while_watch_runs(
        libvirtd: Libvirtd, igb_pfs: tuple[str, ...], igb_clean: None, pfs_up: None,
        tmp_path: Path) -> None:
    seven_vfs()
    pf, vf = igb_pfs[0], 1
    pci = vf_pci(pf, vf)
    ours, libvirts, reloaded = "02:6f:00:00:01:01", "52:54:00:23:01:01", "02:6f:00:00:01:11"
    body = f'[[pf]]\nname = "{pf}"\nmac_policy = "keep"\n[[pf.vf]]\nindex = {vf}\nmac = "{ours}"\n'
    dom = tmp_path / "iface.xml"
    dom.write_text(domain_xml("lv-iface", str(uuidlib.uuid4()),
                              interface_xml(pci, libvirts, managed=True, vlan=42)))
    with watching(tmp_path, body) as w, defined(dom, "lv-iface"):
        wait_until("the daemon's start-up pass", lambda: vf_state(pf, vf)["mac"] == ours, 60)
        mark, up0 = libvirtd.mark(), uptime()
        virsh("start", "lv-iface")
        figure(iface_start=timeline(libvirtd.calls(mark), up0) + [
            f"virsh start returned +{uptime() - up0:.1f}s"])
        quiet_since(w, 3)
        for _ in range(4):  # the daemon saw libvirt's changes and leaves them
            state = vf_state(pf, vf)
            assert (state["mac"], state["vlan"], state["driver"]) == (libvirts, 42, "vfio-pci")
            time.sleep(1)
        log = w.log_path.read_text()
        assert f"vf {vf}: held (bound to vfio-pci outside pyvfmac): left alone" in log, log
        out = ok(run_vfmac(tmp_path / "st", "apply", str(w.cfg), "--pf", pf))
        assert f"{pf} vf {vf}: held (bound to vfio-pci outside pyvfmac): left alone" in out, out
        state = vf_state(pf, vf)
        assert (state["mac"], state["vlan"], state["driver"]) == (libvirts, 42, "vfio-pci")
        # the admin gives the VF another MAC while the guest runs: the reload leaves it too
        w.cfg.write_text(w.cfg.read_text().replace(ours, reloaded))
        w.proc.send_signal(signal.SIGHUP)
        w.expect(b"RELOADING=1")
        w.expect(b"READY=1")
        quiet_since(w, 3)
        state = vf_state(pf, vf)
        assert (state["mac"], state["vlan"], state["driver"]) == (libvirts, 42, "vfio-pci")
        applies = len(w.events("apply"))
        mark, up0 = libvirtd.mark(), uptime()
        virsh("destroy", "lv-iface")
        calls = libvirtd.calls(mark)
        # libvirt rebinds igbvf, puts VLAN 0 back and, as admin MAC, the MAC the VF's netdev had
        # at start (igbvf's own random one, not the admin MAC: seen here); the daemon, seeing
        # the VF free again, gives it the configured one (only the daemon knows it; it may have
        # done so before the recorders ran at release)
        (stopped, release) = calls
        found = libvirtd.calls(mark, "before")
        wait_until("the configured MAC from the daemon", lambda: (
            vf_state(pf, vf)["mac"], driver_of(pci)) == (reloaded, "igbvf"), 60)
        figure(iface_destroy=timeline(calls, up0) + [
            f"configured MAC back +{uptime() - up0:.1f}s"], iface_vf_at_stopped=stopped.vf(
                pf, vf), iface_vf_at_release=release.vf(pf, vf),
            iface_vf_found_at_release=found[1].vf(pf, vf))
        assert vf_state(pf, vf)["vlan"] == 0
        quiet_since(w, 2)
        assert len(w.events("apply")) > applies
        assert w.stop() == 0


def test_seed_hostdev_through_the_hook(libvirtd: Libvirtd, igb_pfs: tuple[str, ...],
                                       igb_clean: None, tmp_path: Path) -> None:
    seven_vfs()
    pf, vf = igb_pfs[0], 2
    pci = vf_pci(pf, vf)
    mac, uuid = "52:54:00:23:02:02", str(uuidlib.uuid4())
    before = vf_state(pf, vf)
    path = libvirt_xml(libvirtd, tmp_path, domain_xml(
        "lv-seed", uuid, hostdev_xml(pci, mac, managed=True, vlan=42)))
    assert NS in path.read_text()
    with defined(path, "lv-seed"):
        assert vf_state(pf, vf) == before  # defining changes nothing
        mark, up0 = libvirtd.mark(), uptime()
        virsh("start", "lv-seed")
        calls, found = libvirtd.calls(mark), libvirtd.calls(mark, "before")
        figure(seed_start=timeline(calls, up0) + [f"virsh start returned +{uptime() - up0:.1f}s"],
               seed_hook_s={c.args: round(c.at - b.at, 1) for c, b in zip(calls, found)})
        assert found[0].vf(pf, vf) == {"mac": before["mac"], "vlan": 0, "driver": "igbvf"}
        assert ops(calls)[:3] == ["prepare begin -", "start begin -", "started begin -"]
        prepare, start = calls[0], calls[1]
        assert prepare.qemu == 0 and start.qemu == 0  # QEMU not running yet ...
        assert prepare.vf(pf, vf) == {"mac": mac, "vlan": 42, "driver": "vfio-pci"}
        assert start.vf(pf, vf) == {"mac": mac, "vlan": 42, "driver": "vfio-pci"}
        live = virsh("dumpxml", "lv-seed").stdout
        assert NS in live and f"'{mac}'" in live.replace('"', "'"), live  # metadata kept
        assert f"function='0x{pci[-1]}'" in live.replace('"', "'")
        state = vf_state(pf, vf)
        assert (state["mac"], state["vlan"], state["driver"]) == (mac, 42, "vfio-pci")
        (rec,) = records(libvirtd, f"libvirt:{uuid}")
        assert rec.vf_key == pci and rec.mac == mac
        mark, up0 = libvirtd.mark(), uptime()
        virsh("destroy", "lv-seed")
        calls, found = libvirtd.calls(mark), libvirtd.calls(mark, "before")
        figure(seed_destroy=timeline(calls, up0)
               + [f"virsh destroy returned +{uptime() - up0:.1f}s"],
               seed_hook_s={c.args: round(c.at - b.at, 1) for c, b in zip(calls, found)},
               seed_vf_found_at_stopped=found[0].vf(pf, vf),
               seed_vf_found_at_release=found[1].vf(pf, vf))
        assert ops(calls) == ["stopped end -", "release end destroyed"]
        assert vf_state(pf, vf) == before
        assert driver_of(pci) == "igbvf" and records(libvirtd, f"libvirt:{uuid}") == []


def test_a_mac_another_vf_has_fails_the_start(libvirtd: Libvirtd, igb_pfs: tuple[str, ...],
                                              igb_clean: None, tmp_path: Path) -> None:
    seven_vfs()
    pf, vf, other = igb_pfs[0], 4, 3
    pci = vf_pci(pf, vf)
    mac, uuid = "52:54:00:23:03:03", str(uuidlib.uuid4())
    path = libvirt_xml(libvirtd, tmp_path, domain_xml(
        "lv-dup", uuid, hostdev_xml(pci, mac, managed=True)))
    _sh("ip", "link", "set", "dev", pf, "vf", str(other), "mac", mac)
    before = vf_state(pf, vf)
    with defined(path, "lv-dup"):
        mark = libvirtd.mark()
        proc = virsh("start", "lv-dup", check=False)
        figure(dup_calls_before=ops(libvirtd.calls(mark, "before")),
               dup_calls_after=ops(libvirtd.calls(mark)), dup_error=proc.stderr.strip())
        assert proc.returncode != 0 and mac in proc.stderr, proc.stderr
        assert vf_state(pf, vf) == before and vf_state(pf, other)["mac"] == mac
        assert "lv-dup" not in virsh("list", "--name").stdout.split()
        assert records(libvirtd, f"libvirt:{uuid}") == []


def _rename(old: str, new: str) -> None:
    _sh("ip", "link", "set", "dev", old, "name", new)


def test_netdev_name_checked_at_every_start(libvirtd: Libvirtd, igb_pfs: tuple[str, ...],
                                            igb_clean: None, tmp_path: Path) -> None:
    seven_vfs()
    pf, vf, other = igb_pfs[1], 5, 6
    pci = vf_pci(pf, vf)
    name = netdev_of(pci)
    assert name is not None
    mac, uuid = "52:54:00:23:04:04", str(uuidlib.uuid4())
    seed = domain_xml("lv-netdev", uuid, (
        "<hostdev mode='subsystem' type='pci' managed='yes'>"
        f"<source><address netdev='{name}'/></source><mac address='{mac}'/></hostdev>"))
    path = libvirt_xml(libvirtd, tmp_path, seed)
    assert f"bus='0x{pci[5:7]}'" in path.read_text().replace('"', "'")
    before = vf_state(pf, vf)
    renamed: list[tuple[str, str]] = []
    try:
        with defined(path, "lv-netdev"):
            virsh("start", "lv-netdev")
            assert (vf_state(pf, vf)["mac"], driver_of(pci)) == (mac, "vfio-pci")
            virsh("destroy", "lv-netdev")
            assert vf_state(pf, vf) == before
            # the name now names VF 6: VF 5's netdev (perhaps a new name after the rebind)
            # steps aside, VF 6's takes the name
            now, theirs = netdev_of(pci), netdev_of(vf_pci(pf, other))
            assert now is not None and theirs is not None
            if now == name:
                _rename(name, "lvtmp0")
                renamed.append(("lvtmp0", name))
            _rename(theirs, name)
            renamed.insert(0, (name, theirs))
            proc = virsh("start", "lv-netdev", check=False)
            figure(netdev_error=proc.stderr.strip())
            assert proc.returncode != 0 and "no longer agree" in proc.stderr, proc.stderr
            assert vf_state(pf, vf) == before and records(libvirtd, f"libvirt:{uuid}") == []
    finally:
        for old, new in renamed:
            subprocess.run(["ip", "link", "set", "dev", old, "name", new], capture_output=True)
