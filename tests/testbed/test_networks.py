"""Networks that are pools of igb VFs (issue 7 step 3), in both XML forms, with 32 processes
racing for 14 VFs; checked with ``ip -j link show`` and sysfs."""

from __future__ import annotations

import json
import os
import re
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from vfhelp import VFMAC, all_vf_states, ok, vf_pci, vf_state, vfmac, vfmac_killed_after

NET = "passthrough-net"


def network_xml(pfs: tuple[str, ...], *, managed: bool = False) -> str:
    pool = "".join(f"<pf dev='{pf}'/>" for pf in pfs)
    return (f"<network><name>{NET}</name>"
            f"<forward mode='hostdev' managed='{'yes' if managed else 'no'}'>{pool}</forward>"
            "<portgroup name='blue'><vlan><tag id='77'/></vlan></portgroup>"
            "</network>\n")


def guest_hostdev(mac: str) -> str:
    return (f"<hostdev mode='subsystem' type='pci' managed='no'><source>"
            f"<address network='{NET}'/></source><mac address='{mac}'/></hostdev>\n")


def guest_interface(mac: str, portgroup: str | None = None) -> str:
    pg = f" portgroup='{portgroup}'" if portgroup else ""
    return (f"<interface type='network'><source network='{NET}'{pg}/>"
            f"<mac address='{mac}'/></interface>\n")


def start_network(state: Path, pfs: tuple[str, ...], *, managed: bool = False) -> None:
    net = state / "net.xml"
    net.write_text(network_xml(pfs, managed=managed))
    ok(vfmac(state, "net-define", str(net)))
    ok(vfmac(state, "net-start", NET))


def pool(state: Path) -> list[dict[str, object]]:
    view = json.loads(ok(vfmac(state, "net-show", NET, "--json")))
    return list(view["pool"])


def live_address(text: str) -> str:
    m = re.search(r"domain='0x([0-9a-f]{4})' bus='0x([0-9a-f]{2})' slot='0x([0-9a-f]{2})' "
                  r"function='0x([0-7])'", text)
    assert m is not None, text
    return f"{m[1]}:{m[2]}:{m[3]}.{m[4]}"


def test_pool_attach_detach_both_forms(igb_pfs: tuple[str, ...], igb_clean: None,
                                       tmp_path: Path) -> None:
    before = all_vf_states(igb_pfs)
    start_network(tmp_path, igb_pfs)
    assert [s["state"] for s in pool(tmp_path)] == ["free"] * 14
    first = vf_pci(igb_pfs[0], 0)  # deterministic order: pool order, first free
    for i, doc in enumerate((guest_hostdev("52:54:00:aa:00:01"),
                             guest_interface("52:54:00:aa:00:02", "blue"))):
        dev = tmp_path / f"guest{i}.xml"
        dev.write_text(doc)
        live = tmp_path / f"guest{i}.live.xml"
        ok(vfmac(tmp_path, "attach", str(dev), "--live-xml", str(live)))
        addr = live_address(live.read_text())
        assert addr == (first if i == 0 else vf_pci(igb_pfs[0], 1))
        assert f"'{NET}'" in live.read_text()
        assert "domain=" not in dev.read_text()  # the persistent definition keeps the reference
    assert vf_state(igb_pfs[0], 0)["mac"] == "52:54:00:aa:00:01"
    assert vf_state(igb_pfs[0], 1)["mac"] == "52:54:00:aa:00:02"
    assert vf_state(igb_pfs[0], 1)["vlan"] == 77  # from the portgroup
    states = [s["state"] for s in pool(tmp_path)]
    assert states.count("in use") == 2 and states.count("free") == 12
    refused = vfmac(tmp_path, "net-stop", NET)
    assert refused.returncode == 1 and "in use" in refused.stderr
    ok(vfmac(tmp_path, "detach", str(tmp_path / "guest0.xml")))       # as given at attach
    ok(vfmac(tmp_path, "detach", str(tmp_path / "guest1.live.xml")))  # or the live XML
    assert [s["state"] for s in pool(tmp_path)] == ["free"] * 14
    assert all_vf_states(igb_pfs) == before
    ok(vfmac(tmp_path, "net-stop", NET))
    ok(vfmac(tmp_path, "net-undefine", NET))


def test_vf_held_outside_is_skipped_and_shown(igb_pfs: tuple[str, ...], igb_clean: None,
                                              tmp_path: Path) -> None:
    pci = vf_pci(igb_pfs[0], 0)
    Path(f"/sys/bus/pci/devices/{pci}/driver/unbind").write_text(pci)
    Path(f"/sys/bus/pci/devices/{pci}/driver_override").write_text("vfio-pci")
    Path("/sys/bus/pci/drivers_probe").write_text(pci)
    try:
        start_network(tmp_path, igb_pfs)
        slots = pool(tmp_path)
        assert slots[0]["state"] == "held" and "vfio-pci" in str(slots[0]["detail"])
        dev = tmp_path / "g.xml"
        dev.write_text(guest_hostdev("52:54:00:aa:00:09"))
        live = tmp_path / "g.live.xml"
        ok(vfmac(tmp_path, "attach", str(dev), "--live-xml", str(live)))
        assert live_address(live.read_text()) == vf_pci(igb_pfs[0], 1)
        ok(vfmac(tmp_path, "detach", str(live)))
    finally:
        Path(f"/sys/bus/pci/devices/{pci}/driver_override").write_text("\n")


def test_32_processes_race_for_14_vfs(igb_pfs: tuple[str, ...], igb_clean: None,
                                      tmp_path: Path) -> None:
    before = all_vf_states(igb_pfs)
    start_network(tmp_path, igb_pfs)
    docs = []
    for i in range(32):
        dev = tmp_path / f"g{i}.xml"
        dev.write_text(guest_hostdev(f"52:54:00:bb:00:{i:02x}"))
        docs.append(dev)

    def attach(dev: Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run([VFMAC, "--state-dir", str(tmp_path), "-q", "attach", str(dev),
                               "--live-xml", f"{dev}.live"], capture_output=True, text=True,
                              timeout=600, cwd="/")

    with ThreadPoolExecutor(max_workers=32) as ex:
        procs = list(ex.map(attach, docs))
    won = [d for d, p in zip(docs, procs) if p.returncode == 0]
    lost = [p for p in procs if p.returncode != 0]
    assert len(won) == 14, [p.stderr for p in lost][:3]
    assert len(lost) == 18
    for p in lost:
        assert f"network {NET} has no free device" in p.stderr, p.stderr
    addresses = [live_address(Path(f"{d}.live").read_text()) for d in won]
    assert len(set(addresses)) == 14  # no VF given twice
    macs = {vf_state(pf, i)["mac"] for pf in igb_pfs for i in range(7)}
    assert macs == {f"52:54:00:bb:00:{int(d.stem[1:]):02x}" for d in won}
    for d in won:
        ok(vfmac(tmp_path, "detach", f"{d}.live"))
    assert [s["state"] for s in pool(tmp_path)] == ["free"] * 14
    assert all_vf_states(igb_pfs) == before


def test_killed_pool_attach_leaks_nothing(igb_pfs: tuple[str, ...], igb_clean: None,
                                          tmp_path: Path) -> None:
    before = all_vf_states(igb_pfs)
    start_network(tmp_path, igb_pfs, managed=True)
    dev = tmp_path / "g.xml"
    dev.write_text(guest_hostdev("52:54:00:cc:00:01"))
    for phase in ("saved", "mac-set", "unbound"):
        killed = vfmac_killed_after(phase, tmp_path, "attach", str(dev))
        assert killed.returncode == -9
        assert [s["state"] for s in pool(tmp_path)].count("in use") == 1
        ok(vfmac(tmp_path, "recover"))
        assert [s["state"] for s in pool(tmp_path)] == ["free"] * 14
        assert all_vf_states(igb_pfs) == before


def test_bad_network_definitions(tmp_path: Path) -> None:
    net = tmp_path / "n.xml"
    for extra, word in (("<bandwidth><inbound average='1000'/></bandwidth>", "bandwidth"),
                        ("<ip address='192.0.2.1'/>", "ip"),
                        ("<bridge name='br0'/>", "bridge")):
        net.write_text(f"<network><name>{NET}</name><forward mode='hostdev'>"
                       f"<pf dev='eth0'/></forward>{extra}</network>")
        proc = vfmac(tmp_path, "net-define", str(net))
        assert proc.returncode == 1 and word in proc.stderr
    assert json.loads(ok(vfmac(tmp_path, "net-list", "--json"))) == []
    assert os.path.exists(tmp_path / "state.db")
