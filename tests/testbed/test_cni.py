"""vfmac-cni (issue 12) on the emulated igb VFs, driven by a real CNI runtime (libcni, through
``tests/cnidrive``), with Debian's host-local as the IPAM delegate. Pods are network namespaces
made here. Everything is checked with ``ip -j`` (host and ``-n POD``) and sysfs.

GC and STATUS are spec 1.1.0, which the packaged libcni does not know: they call the plugin
directly, as a 1.1 runtime would."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from vfhelp import all_vf_states, driver_of, ip_json, netdev_of, vf_pci, vf_state, vfmac

REPO = Path(__file__).resolve().parents[2]
DRIVER = REPO / "build-cni" / "cnidrive"
PLUGIN = Path(sys.prefix) / "bin" / "vfmac-cni"
MAC = "02:5c:00:00:00:07"
CRASH_CNI = Path(__file__).resolve().with_name("crash_cni.py")


@dataclass
class Cni:
    """One test's CNI runtime: plugin dir, state, libcni cache, leases, pods."""

    root: Path
    pods: list[str]

    @property
    def state(self) -> Path:
        return self.root / "state"

    @property
    def cache(self) -> Path:
        return self.root / "cache"

    @property
    def leases(self) -> Path:
        return self.root / "leases"

    def env(self, **extra: str) -> dict[str, str]:
        return {**os.environ, "CNI_PATH": f"{self.root / 'bin'}:/usr/lib/cni",
                "CNIDRIVE_CACHE": str(self.cache), "PYVFMAC_STATE_DIR": str(self.state),
                **extra}

    def conflist(self, pci: str, *, name: str = "sriov-a", ipam: dict[str, Any] | None = None,
                 version: str = "1.0.0", **plugin: Any) -> Path:
        conf = {"type": "vfmac-cni", "deviceID": pci, "capabilities": {"mac": True}, **plugin}
        if ipam is not None:
            conf["ipam"] = ipam
        path = self.root / f"{name}-{uuid.uuid4().hex[:6]}.conflist"
        path.write_text(json.dumps({"cniVersion": version, "name": name, "plugins": [conf]}))
        return path

    def host_local(self, subnet: str = "10.56.0.0/24") -> dict[str, Any]:
        return {"type": "host-local", "subnet": subnet, "dataDir": str(self.leases),
                "routes": [{"dst": "10.99.0.0/16"}]}

    def pod(self) -> str:
        name = f"pod-{uuid.uuid4().hex[:8]}"
        subprocess.run(["ip", "netns", "add", name], check=True)
        self.pods.append(name)
        return name

    def drive(self, action: str, conflist: Path, cid: str, pod: str, ifname: str = "net1",
              capargs: dict[str, Any] | None = None, args: str = "",
              **env: str) -> subprocess.CompletedProcess[str]:
        netns = f"/run/netns/{pod}" if pod else ""
        cmd = [str(DRIVER), action, str(conflist), cid, netns, ifname,
               json.dumps(capargs or {}), args]
        return subprocess.run(cmd, capture_output=True, text=True, env=self.env(**env),
                              timeout=600)

    def plugin(self, command: str, conf: dict[str, Any], cid: str = "", pod: str = "",
               ifname: str = "net1", raw: bytes | None = None) -> tuple[int, Any]:
        env = self.env(CNI_COMMAND=command, CNI_CONTAINERID=cid, CNI_IFNAME=ifname,
                       CNI_NETNS=f"/run/netns/{pod}" if pod else "")
        done = subprocess.run([str(PLUGIN)], input=raw if raw is not None else
                              json.dumps(conf).encode(), capture_output=True, env=env,
                              timeout=600)
        out = json.loads(done.stdout) if done.stdout.strip() else None
        return done.returncode, out


@pytest.fixture
def cni(igb_pfs: tuple[str, ...], igb_clean: None, tmp_path: Path) -> Iterator[Cni]:
    if not DRIVER.exists():
        pytest.fail(f"{DRIVER} missing: run tests/cnidrive/build on the host (tests/run does)")
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "vfmac-cni").symlink_to(PLUGIN)
    c = Cni(tmp_path, [])
    yield c
    for pod in c.pods:
        subprocess.run(["ip", "netns", "del", pod], capture_output=True)


def ok(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 0, f"cnidrive failed ({done.returncode}): {done.stdout}{done.stderr}"
    return done.stdout


def err(done: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    assert done.returncode == 1, f"expected a CNI error: {done.stdout}{done.stderr}"
    doc: dict[str, Any] = json.loads(done.stdout)
    return doc


def pod_link(pod: str, ifname: str = "net1") -> dict[str, Any] | None:
    links = json.loads(subprocess.run(["ip", "-n", pod, "-j", "addr", "show"], check=True,
                                      capture_output=True, text=True).stdout)
    return next((link for link in links if link["ifname"] == ifname), None)


def host_link(name: str) -> dict[str, Any]:
    (link,) = ip_json("link", "show", "dev", name)
    return dict(link)


def snapshot(pf: str, index: int) -> dict[str, Any]:
    """The VF as a user sees it: admin state (ip), driver (sysfs), netdev name, MAC, MTU, up."""
    pci = vf_pci(pf, index)
    out: dict[str, Any] = {"vf": vf_state(pf, index), "driver": driver_of(pci)}
    name = netdev_of(pci)
    if name is not None:
        link = host_link(name)
        out.update(netdev=name, mac=link["address"], mtu=link["mtu"],
                   up="UP" in link["flags"])
    return out


def leases(c: Cni, net: str = "sriov-a") -> list[str]:
    d = c.leases / net
    return sorted(p.name for p in d.iterdir() if p.name[0].isdigit()) if d.exists() else []


# ---------------------------------------------------------------------------- round trips


def test_netdev_vf_add_check_del(cni: Cni, igb_pfs: tuple[str, ...]) -> None:
    pf, index = igb_pfs[0], 1
    pci = vf_pci(pf, index)
    before = snapshot(pf, index)
    conf = cni.conflist(pci, ipam=cni.host_local(), vlan=42, spoofchk="off", trust="on")
    pod = cni.pod()
    result = json.loads(ok(cni.drive("add", conf, "c1", pod,
                                     capargs={"mac": MAC})))
    assert result["interfaces"][0]["mac"] == MAC
    assert result["ips"][0]["address"].startswith("10.56.0.")
    inside = pod_link(pod)
    assert inside is not None and inside["address"] == MAC and "UP" in inside["flags"]
    assert [a["local"] for a in inside["addr_info"] if a["family"] == "inet"] == [
        result["ips"][0]["address"].split("/")[0]]
    routes = json.loads(subprocess.run(["ip", "-n", pod, "-j", "route"], check=True,
                                       capture_output=True, text=True).stdout)
    assert any(r["dst"] == "10.99.0.0/16" for r in routes)
    assert netdev_of(pci) is None  # gone from the host
    during = vf_state(pf, index)
    assert (during["mac"], during["vlan"], during["spoofchk"], during["trust"]) == (
        MAC, 42, False, True)
    assert len(leases(cni)) == 1
    listed = vfmac(cni.state, "list")
    assert "pod c1 net1 (network sriov-a)" in listed.stdout
    ok(cni.drive("check", conf, "c1", pod))
    # CHECK names what differs
    subprocess.run(["ip", "link", "set", "dev", pf, "vf", str(index), "vlan", "5"], check=True)
    bad = err(cni.drive("check", conf, "c1", pod))
    assert bad["code"] == 105 and "vlan 5" in bad["msg"]
    ok(cni.drive("del", conf, "c1", pod))
    assert snapshot(pf, index) == before
    assert pod_link(pod) is None and leases(cni) == []
    ok(cni.drive("del", conf, "c1", pod))  # DEL twice: nothing to do, no error
    assert snapshot(pf, index) == before


def test_vfio_vf_gets_admin_settings_only(cni: Cni, igb_pfs: tuple[str, ...]) -> None:
    pf, index = igb_pfs[0], 2
    pci = vf_pci(pf, index)
    from pyvfmac.pcibind import bind
    from pyvfmac.types import PciAddress

    bind(PciAddress.parse(pci), "vfio-pci")
    assert driver_of(pci) == "vfio-pci"
    before = snapshot(pf, index)
    conf = cni.conflist(pci, vlan=7, version="1.0.0")
    pod = cni.pod()
    result = json.loads(ok(cni.drive("add", conf, "vm1", pod, args=f"MAC={MAC}")))
    assert result["interfaces"][0]["mac"] == MAC
    assert vf_state(pf, index)["mac"] == MAC and vf_state(pf, index)["vlan"] == 7
    assert driver_of(pci) == "vfio-pci" and pod_link(pod) is None
    ok(cni.drive("check", conf, "vm1", pod))
    ok(cni.drive("del", conf, "vm1", pod))
    assert snapshot(pf, index) == before


# ---------------------------------------------------------------------------- DEL without help


def test_del_without_cache_and_netns(cni: Cni, igb_pfs: tuple[str, ...]) -> None:
    pf, index = igb_pfs[0], 3
    pci = vf_pci(pf, index)
    before = snapshot(pf, index)
    conf = cni.conflist(pci, ipam=cni.host_local(), mac=MAC)
    pod = cni.pod()
    ok(cni.drive("add", conf, "c3", pod))
    shutil.rmtree(cni.cache)  # the runtime lost its cache ...
    subprocess.run(["ip", "netns", "del", pod], check=True)  # ... and the pod is gone
    doc = json.loads(conf.read_text())
    plugin_conf = {"cniVersion": "1.0.0", "name": "sriov-a", **doc["plugins"][0]}
    code, out = cni.plugin("DEL", plugin_conf, cid="c3", pod="")  # CNI_NETNS empty
    assert code == 0, out
    assert snapshot(pf, index) == before
    assert leases(cni) == []
    code, out = cni.plugin("DEL", plugin_conf, cid="c3", pod="")
    assert code == 0, out


# ---------------------------------------------------------------------------- GC, STATUS


def test_gc_releases_what_the_runtime_no_longer_lists(cni: Cni,
                                                      igb_pfs: tuple[str, ...]) -> None:
    pf = igb_pfs[1]
    before = {i: snapshot(pf, i) for i in (0, 1)}
    pods = [cni.pod(), cni.pod()]
    confs = [cni.conflist(vf_pci(pf, i), ipam=cni.host_local(), mac=f"02:5c:00:00:01:0{i}")
             for i in (0, 1)]
    for i in (0, 1):
        ok(cni.drive("add", confs[i], f"g{i}", pods[i]))
    gc_conf = {"cniVersion": "1.1.0", "name": "sriov-a", "type": "vfmac-cni",
               "ipam": cni.host_local(),
               "cni.dev/valid-attachments": [{"containerID": "g1", "ifname": "net1"}]}
    code, out = cni.plugin("GC", gc_conf)
    assert code == 0, out
    assert snapshot(pf, 0) == before[0]
    assert vf_state(pf, 1)["mac"] == "02:5c:00:00:01:01" and pod_link(pods[1]) is not None
    assert len(leases(cni)) == 1
    code, out = cni.plugin("STATUS", {"cniVersion": "1.1.0", "name": "sriov-a",
                                      "type": "vfmac-cni"})
    assert code == 0 and out is None
    ok(cni.drive("del", confs[1], "g1", pods[1]))
    assert snapshot(pf, 1) == before[1] and leases(cni) == []


# ---------------------------------------------------------------------------- refusals


def test_vf_in_use_and_two_adds_of_one_vf(cni: Cni, igb_pfs: tuple[str, ...]) -> None:
    pf, index = igb_pfs[0], 4
    pci = vf_pci(pf, index)
    before = snapshot(pf, index)
    pods = [cni.pod(), cni.pod()]
    confs = [cni.conflist(pci, mac=f"02:5c:00:00:02:0{i}") for i in (0, 1)]
    procs = [subprocess.Popen([str(DRIVER), "add", str(confs[i]), f"r{i}",
                               f"/run/netns/{pods[i]}", "net1", "{}", ""],
                              stdout=subprocess.PIPE, text=True, env=cni.env())
             for i in (0, 1)]
    outs = [(p.wait(600), p.stdout.read() if p.stdout else "") for p in procs]
    winners = [i for i, (rc, _) in enumerate(outs) if rc == 0]
    assert len(winners) == 1, outs
    loser = 1 - winners[0]
    assert json.loads(outs[loser][1])["code"] == 100
    assert vf_state(pf, index)["mac"] == f"02:5c:00:00:02:0{winners[0]}"
    ok(cni.drive("del", confs[loser], f"r{loser}", pods[loser]))  # the loser's DEL: no harm
    assert vf_state(pf, index)["mac"] == f"02:5c:00:00:02:0{winners[0]}"
    ok(cni.drive("del", confs[winners[0]], f"r{winners[0]}", pods[winners[0]]))
    assert snapshot(pf, index) == before


def test_failing_ipam_leaves_nothing_changed(cni: Cni, igb_pfs: tuple[str, ...]) -> None:
    pf, index = igb_pfs[0], 5
    pci = vf_pci(pf, index)
    before = snapshot(pf, index)
    fail = cni.root / "bin" / "ipam-fails"
    calls = cni.root / "ipam-fails.calls"
    fail.write_text(f'#!/bin/sh\necho "$CNI_COMMAND" >> {calls}\n'
                    'echo \'{"cniVersion":"1.0.0","code":999,"msg":"no leases"}\'\nexit 1\n')
    fail.chmod(0o755)
    conf = cni.conflist(pci, ipam={"type": "ipam-fails"}, mac=MAC, vlan=9)
    pod = cni.pod()
    out = err(cni.drive("add", conf, "f1", pod))
    # the delegate's own error, passed through; it refused the ADD, so it is not sent a DEL,
    # and the undo of the VF is complete
    assert out["code"] == 999 and "no leases" in out["msg"]
    assert "undo incomplete" not in out.get("details", ""), out
    assert calls.read_text().split() == ["ADD"]
    assert snapshot(pf, index) == before and pod_link(pod) is None
    assert "pod f1" not in vfmac(cni.state, "list").stdout


BAD = [
    (b'{"cniVersion": "1.0.0", "name": "x", ', 6),
    (None, 101),  # the PF as deviceID
    ("0000:00:00.0", 102),  # the host bridge: not a network function
    ({"mac": "01:00:5e:00:00:01"}, 7),
    ({"vlan": 4095}, 7),
]


def test_bad_configs_change_nothing(cni: Cni, igb_pfs: tuple[str, ...]) -> None:
    pf = igb_pfs[0]
    pci = vf_pci(pf, 6)
    pf_pci = os.path.basename(os.readlink(f"/sys/class/net/{pf}/device"))
    before = all_vf_states(igb_pfs)
    pod = cni.pod()
    for what, code in BAD:
        conf: dict[str, Any] = {"cniVersion": "1.0.0", "name": "sriov-a", "type": "vfmac-cni",
                                "deviceID": pci}
        raw = what if isinstance(what, bytes) else None
        if what is None:
            conf["deviceID"] = pf_pci
        elif isinstance(what, str):
            conf["deviceID"] = what
        elif isinstance(what, dict):
            conf.update(what)
        rc, out = cni.plugin("ADD", conf, cid="bad", pod=pod, raw=raw)
        assert rc == 1 and out["code"] == code, (what, out)
        assert out["msg"]
    assert all_vf_states(igb_pfs) == before
    assert pod_link(pod) is None


# ---------------------------------------------------------------------------- crashes, scale


@pytest.mark.parametrize("step", ["moved", "ipam"])
def test_sigkill_during_add(cni: Cni, igb_pfs: tuple[str, ...], step: str) -> None:
    pf, index = igb_pfs[1], 2 if step == "moved" else 3
    pci = vf_pci(pf, index)
    before = snapshot(pf, index)
    conf = cni.conflist(pci, ipam=cni.host_local(), mac=MAC)
    pod = cni.pod()
    plugin = cni.root / "bin" / "vfmac-cni"  # the plugin, wrapped to die after ``step``
    plugin.unlink()
    plugin.write_text(f"#!/bin/sh\nexec {sys.executable} {CRASH_CNI} \"$@\"\n")
    plugin.chmod(0o755)
    done = cni.drive("add", conf, "k1", pod, PYVFMAC_CRASH_AFTER=step)
    plugin.unlink()
    plugin.symlink_to(PLUGIN)
    assert done.returncode != 0
    assert vf_state(pf, index)["mac"] == MAC  # killed half-way: the VF is changed
    if step == "moved":
        ok(cni.drive("del", conf, "k1", pod))  # the runtime's DEL after a failed ADD
    else:
        assert "restored" in vfmac(cni.state, "recover").stdout
    assert snapshot(pf, index) == before
    assert pod_link(pod) is None


def test_seven_pods_at_once(cni: Cni, igb_pfs: tuple[str, ...]) -> None:
    pf = igb_pfs[1]
    before = {i: snapshot(pf, i) for i in range(7)}
    pods = [cni.pod() for _ in range(7)]
    confs = [cni.conflist(vf_pci(pf, i), ipam=cni.host_local("10.57.0.0/24"),
                          mac=f"02:5c:00:00:03:0{i}") for i in range(7)]

    def run_all(action: str) -> list[tuple[int, str]]:
        procs = [subprocess.Popen([str(DRIVER), action, str(confs[i]), f"p{i}",
                                   f"/run/netns/{pods[i]}", "net1", "{}", ""],
                                  stdout=subprocess.PIPE, text=True, env=cni.env())
                 for i in range(7)]
        return [(p.wait(900), p.stdout.read() if p.stdout else "") for p in procs]

    added = run_all("add")
    assert all(rc == 0 for rc, _ in added), added
    addresses = {json.loads(out)["ips"][0]["address"] for _, out in added}
    assert len(addresses) == 7
    for i in range(7):
        inside = pod_link(pods[i])
        assert inside is not None and inside["address"] == f"02:5c:00:00:03:0{i}"
    deleted = run_all("del")
    assert all(rc == 0 for rc, _ in deleted), deleted
    for i in range(7):
        assert snapshot(pf, i) == before[i]
    assert leases(cni) == []


# ---------------------------------------------------------------------------- DEL never stuck


def _records(c: Cni) -> list[dict[str, Any]]:
    """What `vfmac list --json` says pyvfmac holds (an independent reader of the store)."""
    listed = json.loads(vfmac(c.state, "list", "--json").stdout)
    return [vf for pf in listed for vf in pf["vfs"] if vf.get("held")
            and str(vf["held"]).startswith("pod ")]


def test_del_when_the_name_is_taken_keeps_the_record_and_succeeds(
        cni: Cni, igb_pfs: tuple[str, ...]) -> None:
    """The VF netdev's original name is taken on the host when the pod goes (sriov-cni #250,
    #445): DEL succeeds (the runtime must not retry it forever), says so on stderr and keeps
    the record (no other pod gets the VF); `vfmac recover` finishes once the name is free."""
    pf, index = igb_pfs[0], 4
    pci = vf_pci(pf, index)
    before = snapshot(pf, index)
    name = before["netdev"]
    conf = cni.conflist(pci, mac=MAC)
    pod = cni.pod()
    ok(cni.drive("add", conf, "k4", pod))
    other = netdev_of(vf_pci(pf, 6))  # another VF's netdev takes the name
    assert other is not None
    subprocess.run(["ip", "link", "set", "dev", other, "down"], check=True)
    subprocess.run(["ip", "link", "set", "dev", other, "name", name], check=True)
    try:
        done = cni.drive("del", conf, "k4", pod)
        assert done.returncode == 0, done.stdout + done.stderr
        assert "DEL succeeds" in done.stderr and "vfmac recover" in done.stderr, done.stderr
        assert len(_records(cni)) == 1  # kept: the VF is not back yet
        second = cni.conflist(pci, mac="02:5c:00:00:00:44")
        assert err(cni.drive("add", second, "k5", cni.pod()))["code"] == 100
    finally:
        subprocess.run(["ip", "link", "set", "dev", name, "name", other], check=True)
        subprocess.run(["ip", "link", "set", "dev", other, "up"], check=True)
    assert "restored" in vfmac(cni.state, "recover").stdout
    assert snapshot(pf, index) == before and _records(cni) == []


def test_del_after_the_vf_is_gone_drops_the_record(cni: Cni, igb_pfs: tuple[str, ...]) -> None:
    """The PF's VFs are removed under a running pod (numvfs 0): DEL has nothing left to
    restore, succeeds and drops the record (it returned 106 on every retry)."""
    from test_watch import seven_vfs

    pf, index = igb_pfs[1], 5
    pci = vf_pci(pf, index)
    conf = cni.conflist(pci, mac="02:5c:00:00:00:66")
    pod = cni.pod()
    ok(cni.drive("add", conf, "k6", pod))
    numvfs = Path(f"/sys/class/net/{pf}/device/sriov_numvfs")
    numvfs.write_text("0")
    try:
        done = cni.drive("del", conf, "k6", pod)
        assert done.returncode == 0, done.stdout + done.stderr
        assert "no longer exists" in done.stderr and "record dropped" in done.stderr
        assert _records(cni) == []
    finally:
        seven_vfs()


def test_a_vf_another_plugins_pod_has_is_refused(cni: Cni, igb_pfs: tuple[str, ...]) -> None:
    """A VF on igbvf whose netdev another plugin moved into its pod: ADD refuses it (100), where
    it used to take it for a userspace VF and configure its admin side."""
    pf, index = igb_pfs[0], 5
    pci = vf_pci(pf, index)
    theirs = cni.pod()
    subprocess.run(["ip", "link", "set", "dev", netdev_of(pci), "netns", theirs], check=True)
    before = vf_state(pf, index)
    bad = err(cni.drive("add", cni.conflist(pci, mac=MAC), "k7", cni.pod()))
    assert bad["code"] == 100 and "not on the host" in bad["msg"]
    assert vf_state(pf, index) == before and _records(cni) == []


def test_userspace_vf_without_any_mac(cni: Cni, igb_pfs: tuple[str, ...]) -> None:
    """KubeVirt without a MAC pool: a vfio-pci VF, no MAC anywhere, an all-zero admin MAC. ADD
    succeeds as sriov-cni's does, names no MAC and leaves the admin MAC; DEL gives it back."""
    from pyvfmac.pcibind import bind
    from pyvfmac.types import PciAddress

    pf, index = igb_pfs[1], 2
    pci = vf_pci(pf, index)
    bind(PciAddress.parse(pci), "vfio-pci")
    before = snapshot(pf, index)
    assert before["vf"]["mac"] == "00:00:00:00:00:00"
    conf = cni.conflist(pci, vlan=9)
    pod = cni.pod()
    result = json.loads(ok(cni.drive("add", conf, "vm2", pod)))
    assert "mac" not in result["interfaces"][0]
    assert vf_state(pf, index)["mac"] == "00:00:00:00:00:00" and vf_state(pf, index)["vlan"] == 9
    ok(cni.drive("del", conf, "vm2", pod))
    assert snapshot(pf, index) == before and _records(cni) == []


# ---------------------------------------------------------------------------- through the daemon


def test_add_check_del_through_the_daemon_and_without_it(cni: Cni,
                                                          igb_pfs: tuple[str, ...]) -> None:
    """`vfmac watch --cni-socket` answers the plugin's calls in-process (issue 25): the same
    results, the VF as before after DEL, each call in the daemon's log; with the daemon gone the
    plugin answers itself (a DEL of what the daemon ADDed)."""
    import signal

    pf, index = igb_pfs[0], 3
    pci = vf_pci(pf, index)
    before = snapshot(pf, index)
    sock = cni.root / "cni.sock"
    (cni.root / "empty.toml").write_text("[defaults]\n")
    log = cni.root / "watch.log"
    daemon = subprocess.Popen(
        [sys.executable, "-m", "pyvfmac.cli", "--state-dir", str(cni.state), "watch",
         str(cni.root / "empty.toml"), "--cni-socket", str(sock)],
        stdout=subprocess.DEVNULL, stderr=open(log, "w"))
    try:
        for _ in range(600):
            if sock.exists():
                break
            assert daemon.poll() is None, log.read_text()
            __import__("time").sleep(0.1)
        conf = cni.conflist(pci, ipam=cni.host_local(), vlan=11)
        pod = cni.pod()
        result = json.loads(ok(cni.drive("add", conf, "d1", pod, capargs={"mac": MAC},
                                         PYVFMAC_CNI_SOCKET=str(sock))))
        assert result["interfaces"][0]["mac"] == MAC
        inside = pod_link(pod)
        assert inside is not None and inside["address"] == MAC
        assert (vf_state(pf, index)["mac"], vf_state(pf, index)["vlan"]) == (MAC, 11)
        ok(cni.drive("check", conf, "d1", pod, PYVFMAC_CNI_SOCKET=str(sock)))
        text = log.read_text()
        assert "cni: ADD d1 net1: exit 0" in text and "cni: CHECK d1 net1: exit 0" in text, text
    finally:
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(60) == 0, log.read_text()
    assert not sock.exists()
    ok(cni.drive("del", conf, "d1", pod, PYVFMAC_CNI_SOCKET=str(sock)))  # no daemon: here
    assert "cni: DEL" not in log.read_text()
    assert snapshot(pf, index) == before and pod_link(pod) is None and leases(cni) == []
