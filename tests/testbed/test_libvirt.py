"""Issue 14 on igb VFs: libvirt's failover pair in a whole domain next to libvirt's own NAT
network, an active ``<pf>`` network as ``virsh net-dumpxml`` writes it, the command-line form
without XML (attach, detach, pool, bad input leaves the host unchanged) and the Proxmox VE
hookscript called as Proxmox calls it; each checked with ``ip -j link show`` and sysfs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from vfhelp import VFMAC, address_attrs, all_vf_states, driver_of, ok, vf_pci, vf_state, vfmac

from pyvfmac.store import Store

NET = "hostdev-pool"
HOOK = Path(__file__).resolve().parents[2] / "contrib" / "proxmox" / "vfmac-hook"


def dumpxml(pf: str, vfs: list[str]) -> str:
    """What ``virsh net-dumpxml`` writes for an active hostdev network with a <pf>."""
    addrs = "".join(f"\n    <address {address_attrs(p, with_type=True)}/>" for p in vfs)
    return f"""<network connections='1' trustGuestRxFilters='yes'>
  <name>{NET}</name>
  <uuid>3e3fce45-4f53-4fa7-bb32-11f34168b82b</uuid>
  <title>VF pool</title>
  <description>igb VFs for the failover pair</description>
  <metadata>
    <app1:foo xmlns:app1='http://app1.org/app1/'>kept</app1:foo>
  </metadata>
  <forward mode='hostdev' managed='no'>
    <driver name='vfio'/>
    <pf dev='{pf}' connections='1'/>{addrs}
  </forward>
  <mtu size='9000'/>
  <port isolated='yes'/>
</network>
"""


def define_and_start(state: Path, text: str) -> None:
    net = state / "net.xml"
    net.write_text(text)
    ok(vfmac(state, "net-define", str(net)))
    ok(vfmac(state, "net-start", NET))


def test_failover_pair_next_to_libvirts_nat_network(igb_pfs: tuple[str, ...], igb_clean: None,
                                                    tmp_path: Path) -> None:
    before = all_vf_states(igb_pfs)
    define_and_start(tmp_path, dumpxml(igb_pfs[0], []))
    mac = "52:54:00:fa:11:01"
    virtio = (f"<interface type='network'>\n      <source network='default'/>\n"
              f"      <mac address='{mac}'/>\n      <model type='virtio'/>\n"
              "      <teaming type='persistent'/>\n      <alias name='ua-backup0'/>\n"
              "    </interface>")
    nat = ("<interface type='network'>\n      <source network='default'/>\n"
           "      <mac address='52:54:00:fa:11:02'/>\n      <model type='virtio'/>\n"
           "    </interface>")
    domain = (f"<domain type='kvm'>\n  <name>failover</name>\n  <devices>\n    {virtio}\n"
              f"    <interface type='network'>\n      <source network='{NET}'/>\n"
              f"      <mac address='{mac}'/>\n      <model type='virtio'/>\n"
              "      <teaming type='transient' persistent='ua-backup0'/>\n"
              f"    </interface>\n    {nat}\n  </devices>\n</domain>\n")
    dom = tmp_path / "failover.xml"
    dom.write_text(domain)
    live = tmp_path / "failover.live.xml"
    ok(vfmac(tmp_path, "attach", str(dom), "--live-xml", str(live)))
    text = live.read_text()
    assert virtio in text and nat in text  # libvirt's NICs exactly as they were
    pci = vf_pci(igb_pfs[0], 0)
    assert address_attrs(pci, with_type=True) in text
    state = vf_state(igb_pfs[0], 0)
    assert state["mac"] == mac and state["trust"] is True  # trustGuestRxFilters='yes'
    assert state["driver"] == "igbvf"  # managed='no'
    others = {k: v for k, v in all_vf_states(igb_pfs).items() if k != (igb_pfs[0], 0)}
    assert others == {k: v for k, v in before.items() if k != (igb_pfs[0], 0)}
    ok(vfmac(tmp_path, "detach", str(live)))
    assert all_vf_states(igb_pfs) == before


def test_net_dumpxml_of_an_active_pf_network(igb_pfs: tuple[str, ...], igb_clean: None,
                                             tmp_path: Path) -> None:
    before = all_vf_states(igb_pfs)
    pf = igb_pfs[1]
    listed = [vf_pci(pf, i) for i in range(3)]  # libvirt's list, as at its own start
    text = dumpxml(pf, listed)
    define_and_start(tmp_path, text)
    with Store(tmp_path) as store:
        rec = store.get_network(NET)
        assert rec is not None and rec.xml == text  # kept verbatim: a round trip
    view = json.loads(ok(vfmac(tmp_path, "net-show", NET, "--json")))
    assert [s["pci"] for s in view["pool"]] == [vf_pci(pf, i) for i in range(7)]  # the PF's VFs
    dev = tmp_path / "nic.xml"
    dev.write_text(f"<interface type='network' trustGuestRxFilters='no'>"
                   f"<source network='{NET}'/><mac address='52:54:00:fa:22:01'/></interface>\n")
    ok(vfmac(tmp_path, "attach", str(dev), "--live-xml", str(tmp_path / "nic.live.xml")))
    assert vf_state(pf, 0)["mac"] == "52:54:00:fa:22:01"
    assert vf_state(pf, 0)["trust"] is False  # the interface's own setting wins
    ok(vfmac(tmp_path, "detach", str(dev)))
    assert all_vf_states(igb_pfs) == before


def test_command_line_form(igb_pfs: tuple[str, ...], igb_clean: None, tmp_path: Path) -> None:
    before = all_vf_states(igb_pfs)
    pf = igb_pfs[0]
    pci = vf_pci(pf, 2)
    out = ok(vfmac(tmp_path, "attach", "--pci", pci, "--mac", "52:54:00:fa:33:01", "--vlan",
                   "42", "--qos", "3", "--spoofchk", "off", "--trust", "on", "--owner", "vm100",
                   "--json"))
    assert json.loads(out)["pci"] == pci and json.loads(out)["mac"] == "52:54:00:fa:33:01"
    state = vf_state(pf, 2)
    assert (state["mac"], state["vlan"], state["qos"]) == ("52:54:00:fa:33:01", 42, 3)
    assert (state["spoofchk"], state["trust"], state["driver"]) == (False, True, "igbvf")
    # managed: bound to vfio-pci, as the hypervisor needs it
    pci2 = vf_pci(pf, 3)
    ok(vfmac(tmp_path, "attach", "--pci", pci2, "--mac", "52:54:00:fa:33:02", "--managed",
             "--owner", "vm100"))
    assert driver_of(pci2) == "vfio-pci" and vf_state(pf, 3)["mac"] == "52:54:00:fa:33:02"
    # bad input leaves the host unchanged: a MAC in use, a VF already held, a bad VLAN
    now = all_vf_states(igb_pfs)
    for args, code, word in (
            (["--pci", vf_pci(pf, 4), "--mac", "52:54:00:fa:33:01"], 1, "already used"),
            (["--pci", pci, "--mac", "52:54:00:fa:33:09"], 1, "already attached"),
            (["--pci", vf_pci(pf, 4), "--mac", "52:54:00:fa:33:09", "--vlan", "5000"], 2, "5000"),
            (["--pci", "0000:00:01.0", "--mac", "52:54:00:fa:33:09"], 1, "0000:00:01.0")):
        proc = vfmac(tmp_path, "attach", *args, "--owner", "vm101")
        assert proc.returncode == code and word in proc.stderr, proc.stderr
        assert all_vf_states(igb_pfs) == now
    with Store(tmp_path) as store:
        assert len(store.all()) == 2
    ok(vfmac(tmp_path, "detach", "--owner", "vm100"))
    assert all_vf_states(igb_pfs) == before
    # from a pool
    define_and_start(tmp_path, dumpxml(igb_pfs[1], []).replace(" trustGuestRxFilters='yes'", ""))
    out = ok(vfmac(tmp_path, "attach", "--network", NET, "--mac", "52:54:00:fa:33:03",
                   "--owner", "vm102", "--json"))
    got = json.loads(out)
    assert got["pci"] == vf_pci(igb_pfs[1], 0) and got["network"] == NET
    assert vf_state(igb_pfs[1], 0)["mac"] == "52:54:00:fa:33:03"
    ok(vfmac(tmp_path, "detach", "--owner", "vm102"))
    view = json.loads(ok(vfmac(tmp_path, "net-show", NET, "--json")))
    assert [s["state"] for s in view["pool"]] == ["free"] * 7
    assert all_vf_states(igb_pfs) == before
    assert ok(vfmac(tmp_path, "detach", "--owner", "vm102")).endswith("nothing attached\n")


def test_proxmox_hookscript(igb_pfs: tuple[str, ...], igb_clean: None, tmp_path: Path) -> None:
    before = all_vf_states(igb_pfs)
    pf = igb_pfs[1]
    a, b, gpu = vf_pci(pf, 5), vf_pci(pf, 6), vf_pci(pf, 4)
    conf = tmp_path / "qemu-server"
    conf.mkdir()
    (conf / "105.conf").write_text(f"cores: 2\nhostpci0: {a},pcie=1\nhostpci1: host={b}\n"
                                   f"hostpci2: {gpu}\nmemory: 1024\n")
    macs = tmp_path / "macs.conf"
    macs.write_text(f"{a} 52:54:00:fa:44:01 vlan=7\n{b} 52:54:00:fa:44:02 trust=on\n")
    env = {**os.environ, "PYVFMAC_PVE_CONF_DIR": str(conf), "PYVFMAC_PROXMOX_MACS": str(macs),
           "VFMAC": f"{VFMAC} --state-dir {tmp_path / 'st'} -q"}

    def hook(phase: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, str(HOOK), "105", phase], capture_output=True,
                              text=True, env=env, timeout=600, cwd="/")

    res = hook("pre-start")
    assert res.returncode == 0, res.stderr
    assert (vf_state(pf, 5)["mac"], vf_state(pf, 5)["vlan"]) == ("52:54:00:fa:44:01", 7)
    assert (vf_state(pf, 6)["mac"], vf_state(pf, 6)["trust"]) == ("52:54:00:fa:44:02", True)
    assert vf_state(pf, 4) == before[(pf, 4)]  # no MAC configured: Proxmox's alone
    assert hook("post-stop").returncode == 0
    assert all_vf_states(igb_pfs) == before
    assert hook("post-stop").returncode == 0  # again: nothing attached, not an error
