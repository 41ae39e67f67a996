"""Attach / detach / recover on the emulated igb VFs (issue 5) and netdev names (issue 7 step 2),
checked with ``ip -j link show`` and sysfs, never only with pyvfmac's own reads."""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path

import pytest
from vfhelp import (
    all_vf_states,
    hostdev_xml,
    interface_xml,
    netdev_of,
    ok,
    vf_entry,
    vf_pci,
    vf_state,
    vfmac,
    vfmac_killed_after,
)

MAC = "52:54:00:6d:90:02"
FORMS = {"hostdev": hostdev_xml, "interface": interface_xml}


# both forms, managed and not, with and without VLAN: every value of each dimension twice
@pytest.mark.parametrize(("form", "managed", "vlan"), [
    ("hostdev", True, 42), ("hostdev", False, None),
    ("interface", True, None), ("interface", False, 42),
])
def test_round_trip_restores_everything(form: str, managed: bool, vlan: int | None,
                                        igb_pfs: tuple[str, ...], igb_clean: None,
                                        tmp_path: Path) -> None:
    pf = igb_pfs[0]
    index = 2
    pci = vf_pci(pf, index)
    # a non-default starting point, so that "restored" means something
    ok(vfmac(tmp_path, "set", pf, str(index), "vlan", "7", "qos", "1", "spoofchk", "off"))
    before = vf_state(pf, index)
    assert before["driver"] == "igbvf" and before["vlan"] == 7
    dev = tmp_path / "dev.xml"
    dev.write_text(FORMS[form](pci, MAC, managed=managed, vlan=vlan))
    live = tmp_path / "live.xml"
    ok(vfmac(tmp_path, "attach", str(dev), "--live-xml", str(live)))
    during = vf_state(pf, index)
    assert during["mac"] == MAC
    assert during["vlan"] == (vlan or 0)
    assert during["driver"] == ("vfio-pci" if managed else "igbvf")
    dom, bus, rest = pci.split(":")
    assert f"bus='0x{bus}'" in live.read_text() and f"domain='0x{dom}'" in live.read_text()
    ok(vfmac(tmp_path, "detach", str(live)))
    assert vf_state(pf, index) == before
    # the record is gone: a second detach is a clear error
    again = vfmac(tmp_path, "detach", str(live))
    assert again.returncode == 1 and "never attached" in again.stderr


def test_unmanaged_vf_netdev_gets_the_mac(igb_pfs: tuple[str, ...], igb_clean: None,
                                          tmp_path: Path) -> None:
    """A VF held by igbvf: what the host sees on the VF netdev is the fixed MAC."""
    pf = igb_pfs[0]
    pci = vf_pci(pf, 1)
    dev = tmp_path / "dev.xml"
    dev.write_text(hostdev_xml(pci, MAC, managed=False))
    ok(vfmac(tmp_path, "attach", str(dev)))
    netdev = netdev_of(pci)
    assert netdev is not None
    assert Path(f"/sys/class/net/{netdev}/address").read_text().strip() == MAC
    ok(vfmac(tmp_path, "detach", str(dev)))


@pytest.mark.parametrize("phase", ["saved", "mac-set", "unbound"])
def test_killed_attach_is_recovered(phase: str, igb_pfs: tuple[str, ...], igb_clean: None,
                                    tmp_path: Path) -> None:
    pf = igb_pfs[1]
    index = 3
    pci = vf_pci(pf, index)
    before = vf_state(pf, index)
    dev = tmp_path / "dev.xml"
    dev.write_text(hostdev_xml(pci, MAC, managed=True, vlan=9))
    killed = vfmac_killed_after(phase, tmp_path, "attach", str(dev))
    assert killed.returncode == -9, killed.stderr
    mid = vf_state(pf, index)
    if phase == "saved":
        assert mid == before
    else:
        assert mid["mac"] == MAC
    if phase == "unbound":
        assert mid["driver"] is None
    out = ok(vfmac(tmp_path, "recover"))
    assert "restored" in out
    assert vf_state(pf, index) == before
    assert "nothing to recover" in ok(vfmac(tmp_path, "recover"))


def test_double_attach_keeps_the_first_original(igb_pfs: tuple[str, ...], igb_clean: None,
                                                tmp_path: Path) -> None:
    pf = igb_pfs[0]
    pci = vf_pci(pf, 4)
    before = vf_state(pf, 4)
    dev = tmp_path / "dev.xml"
    dev.write_text(hostdev_xml(pci, MAC, managed=False, vlan=5))
    ok(vfmac(tmp_path, "attach", str(dev)))
    ok(vfmac(tmp_path, "attach", str(dev)))  # again: same device, nothing overwritten
    other = tmp_path / "other.xml"
    other.write_text(hostdev_xml(pci, "52:54:00:00:00:99", managed=False))
    refused = vfmac(tmp_path, "attach", str(other))
    assert refused.returncode == 1 and "already attached" in refused.stderr
    assert vf_state(pf, 4)["mac"] == MAC
    ok(vfmac(tmp_path, "detach", str(dev)))
    assert vf_state(pf, 4) == before


def _bad_documents(pf_pci: str, vf0: str, vf1: str) -> dict[str, tuple[str, str]]:
    """name -> (document, a word the error must contain)"""
    good = hostdev_xml(vf0, MAC, managed=True)
    return {
        "malformed": (good.replace("</hostdev>", ""), "malformed XML"),
        "multicast": (hostdev_xml(vf0, "01:00:5e:00:00:01", managed=True), "multicast"),
        "broadcast": (hostdev_xml(vf0, "ff:ff:ff:ff:ff:ff", managed=True), "broadcast"),
        "short mac": (hostdev_xml(vf0, "52:54:00:6d:90", managed=True), "52:54:00:6d:90"),
        "bus range": (good.replace("bus='0x", "bus='0x1"), "bus"),
        "slot range": (good.replace("slot='0x", "slot='0x4"), "slot"),
        "type usb": (good.replace("type='pci'", "type='usb'"), "usb"),
        "mode caps": (good.replace("mode='subsystem'", "mode='capabilities'"), "capabilities"),
        "same mac twice": (f"<domain><devices>{good}{hostdev_xml(vf1, MAC, managed=True)}"
                           "</devices></domain>", MAC),
        "same vf twice": (f"<domain><devices>{good}"
                          f"{hostdev_xml(vf0, '52:54:00:00:00:02', managed=True)}"
                          "</devices></domain>", vf0),
        "not a vf": (hostdev_xml(pf_pci, MAC, managed=True), "not a VF"),
        "no such device": (hostdev_xml("0000:7f:1f.7", MAC, managed=True), "0000:7f:1f.7"),
        "entity": ("<!DOCTYPE x [<!ENTITY a 'b'>]>" + good, "ntit"),
        "qbg": (hostdev_xml(vf0, MAC, managed=True, extra=(
            "<virtualport type='802.1Qbg'><parameters managerid='11' typeid='1193047' "
            "typeidversion='2'/></virtualport>")), "802.1Qbg"),
        "qbh unsupported": (hostdev_xml(vf0, MAC, managed=True, extra=(
            "<virtualport type='802.1Qbh'><parameters profileid='finance'/></virtualport>")),
            "EOPNOTSUPP"),
    }


def test_bad_input_changes_nothing(igb_pfs: tuple[str, ...], igb_clean: None,
                                   tmp_path: Path) -> None:
    pf_pci = Path(f"/sys/class/net/{igb_pfs[0]}/device").resolve().name
    vf0, vf1 = vf_pci(igb_pfs[0], 0), vf_pci(igb_pfs[0], 1)
    before = all_vf_states(igb_pfs)
    for name, (doc, word) in _bad_documents(pf_pci, vf0, vf1).items():
        path = tmp_path / f"{name.replace(' ', '-')}.xml"
        path.write_text(doc)
        proc = vfmac(tmp_path, "attach", str(path))
        assert proc.returncode in (1, 2), f"{name}: {proc.stdout}"
        assert proc.stderr.count("\n") == 1, f"{name}: not one line: {proc.stderr!r}"
        assert word in proc.stderr, f"{name}: {proc.stderr!r} does not name {word!r}"
        assert all_vf_states(igb_pfs) == before, f"{name}: the host changed"
    assert "nothing to recover" in ok(vfmac(tmp_path, "recover"))


def test_mac_used_elsewhere_is_refused(igb_pfs: tuple[str, ...], igb_clean: None,
                                       tmp_path: Path) -> None:
    pf = igb_pfs[0]
    # --json after the settings is taken as well as before them
    shown = json.loads(ok(vfmac(tmp_path, "set", pf, "5", "mac", MAC, "--json")))
    assert shown["mac"] == MAC == vf_state(pf, 5)["mac"]
    before = all_vf_states(igb_pfs)
    dev = tmp_path / "dev.xml"
    dev.write_text(hostdev_xml(vf_pci(pf, 6), MAC, managed=False))
    proc = vfmac(tmp_path, "attach", str(dev))
    assert proc.returncode == 1 and f"{pf} vf 5" in proc.stderr
    assert all_vf_states(igb_pfs) == before
    # asked for on the command line: named as it was asked for, not as a document's "device 0"
    pci = vf_pci(pf, 6)
    proc = vfmac(tmp_path, "attach", "--pci", pci, "--mac", MAC, "--owner", "vm1")
    assert proc.returncode == 1 and proc.stderr.count("\n") == 1 and f"{pf} vf 5" in proc.stderr
    assert proc.stderr.startswith(f"vfmac: error: --pci {pci}: MAC {MAC} is already used by ")
    assert all_vf_states(igb_pfs) == before


def _held(state: Path, pf: str, index: int) -> object:
    """What `vfmac list --json` says holds the VF (None: nothing)."""
    listing = json.loads(ok(vfmac(state, "list", "--json")))
    (entry,) = [vf for p in listing if p["pf"] == pf for vf in p["vfs"] if vf["vf"] == index]
    return entry["held"]


def test_refused_port_profile_is_rolled_back_without_a_record(igb_pfs: tuple[str, ...],
                                                              igb_clean: None,
                                                              tmp_path: Path) -> None:
    """A user's trial: MAC, VLAN and an 802.1Qbh port profile, which igb refuses (EOPNOTSUPP):
    exit 1 with the driver's error, MAC and VLAN back as before (ip -j link show), and no record
    -- the rollback does not disassociate the profile that was never associated, which igb
    refuses too and which kept the record (the VF "held" until `vfmac recover`)."""
    pf = igb_pfs[0]
    index = 4
    pci = vf_pci(pf, index)
    ok(vfmac(tmp_path, "set", pf, str(index), "vlan", "7"))  # "back as before" must mean something
    before = vf_state(pf, index)
    h2 = tmp_path / "h2.xml"
    h2.write_text(interface_xml(pci, "52:54:00:6d:90:03", managed=False, vlan=43, extra=(
        "<virtualport type='802.1Qbh'><parameters profileid='finance'/></virtualport>")))
    proc = vfmac(tmp_path, "attach", str(h2))
    assert (proc.returncode, proc.stdout) == (1, "")
    assert proc.stderr == (f"vfmac: error: {pf} vf {index}: cannot associate port profile "
                           "'finance': Operation not supported (EOPNOTSUPP)\n")
    entry = vf_entry(pf, index)  # ip -j link show PF
    assert entry["address"] == before["mac"] == "00:00:00:00:00:00"
    assert (entry["vlan_list"][0]["vlan"], vf_state(pf, index)) == (7, before)
    assert _held(tmp_path, pf, index) is None
    db = sqlite3.connect(f"file:{tmp_path}/state.db?mode=ro", uri=True)
    try:  # the store itself, read by SQLite: no row left for the VF
        assert db.execute("SELECT count(*) FROM attachments").fetchone() == (0,)
    finally:
        db.close()
    detach = vfmac(tmp_path, "detach", str(h2))
    assert detach.returncode == 1 and "never attached" in detach.stderr


def test_detach_of_never_attached_vf(igb_pfs: tuple[str, ...], tmp_path: Path) -> None:
    dev = tmp_path / "dev.xml"
    dev.write_text(hostdev_xml(vf_pci(igb_pfs[0], 0), MAC, managed=True))
    proc = vfmac(tmp_path, "detach", str(dev))
    assert proc.returncode == 1 and "never attached" in proc.stderr


def test_restore_one_and_all(igb_pfs: tuple[str, ...], igb_clean: None, tmp_path: Path) -> None:
    pf = igb_pfs[1]
    before = all_vf_states(igb_pfs)
    for i, mac in ((0, "52:54:00:00:01:00"), (1, "52:54:00:00:01:01")):
        dev = tmp_path / f"d{i}.xml"
        dev.write_text(hostdev_xml(vf_pci(pf, i), mac, managed=bool(i)))
        ok(vfmac(tmp_path, "attach", str(dev)))
    ok(vfmac(tmp_path, "restore", pf, "0"))
    assert vf_state(pf, 0) == before[(pf, 0)]
    assert vf_state(pf, 1)["driver"] == "vfio-pci"
    missing = vfmac(tmp_path, "restore", "nosuch0", "1")
    assert missing.returncode == 1 and "nosuch0: no such network device" in missing.stderr
    pf_pci = os.path.basename(os.readlink(f"/sys/class/net/{pf}/device"))
    ok(vfmac(tmp_path, "restore", pf_pci, "1"))  # the PF by PCI address
    assert vf_state(pf, 1) == before[(pf, 1)]
    for i in (0, 1):  # both held again, for --all
        ok(vfmac(tmp_path, "attach", str(tmp_path / f"d{i}.xml")))
    ok(vfmac(tmp_path, "restore", "--all"))
    assert all_vf_states(igb_pfs) == before


# ------------------------------------------------------------------ step 2: netdev names


def test_netdev_name_is_resolved_recorded_and_rechecked(igb_pfs: tuple[str, ...],
                                                        igb_clean: None, tmp_path: Path) -> None:
    pf = igb_pfs[0]
    pci = vf_pci(pf, 0)
    name = netdev_of(pci)
    assert name is not None
    before = vf_state(pf, 0)
    dev = tmp_path / "dev.xml"
    dev.write_text(f"<hostdev mode='subsystem' type='pci' managed='yes'><source>"
                   f"<address netdev='{name}'/></source><mac address='{MAC}'/></hostdev>\n")
    live = tmp_path / "live.xml"
    ok(vfmac(tmp_path, "attach", str(dev), "--live-xml", str(live)))
    _, bus, rest = pci.split(":")
    for text in (live.read_text(), dev.read_text()):  # live XML and persistent definition
        assert f"netdev='{name}'" in text and f"bus='0x{bus}'" in text
    assert vf_state(pf, 0)["driver"] == "vfio-pci" and netdev_of(pci) is None
    # bound to vfio-pci the VF has no netdev: detach and re-attach use the recorded address
    ok(vfmac(tmp_path, "detach", str(dev)))
    assert vf_state(pf, 0) == before
    ok(vfmac(tmp_path, "attach", str(dev)))
    ok(vfmac(tmp_path, "detach", str(dev)))
    # both present but no longer agreeing: refused, with both values
    other = netdev_of(vf_pci(pf, 1))
    assert other is not None
    dev.write_text(dev.read_text().replace(f"netdev='{name}'", f"netdev='{other}'"))
    states = all_vf_states(igb_pfs)
    proc = vfmac(tmp_path, "attach", str(dev))
    assert proc.returncode == 1 and other in proc.stderr and pci in proc.stderr
    assert all_vf_states(igb_pfs) == states


def test_netdev_that_is_not_a_vf(igb_pfs: tuple[str, ...], tmp_path: Path) -> None:
    dev = tmp_path / "dev.xml"
    for name, word in ((igb_pfs[0], "not a VF"), ("lo", "lo"), ("nosuch0", "nosuch0")):
        dev.write_text(f"<hostdev mode='subsystem' type='pci'><source><address netdev='{name}'/>"
                       f"</source><mac address='{MAC}'/></hostdev>")
        proc = vfmac(tmp_path, "attach", str(dev))
        assert proc.returncode == 1 and word in proc.stderr, proc.stderr


def test_whole_domain_every_device_and_the_rest_kept(igb_pfs: tuple[str, ...], igb_clean: None,
                                                     tmp_path: Path) -> None:
    pf0, pf1 = igb_pfs
    before = all_vf_states(igb_pfs)
    disk = ("<disk type='file' device='disk'><driver name='qemu' type='qcow2'/>"
            "<source file='/var/lib/libvirt/images/g1.qcow2'/><target dev='vda' bus='virtio'/>"
            "</disk>")
    gpu = ("<hostdev mode='subsystem' type='pci' managed='yes'><source><address domain='0x0000' "
           "bus='0x65' slot='0x00' function='0x0'/></source></hostdev>")
    domain = ("<domain type='kvm'>\n  <name>g1</name>\n  <memory unit='KiB'>1048576</memory>\n"
              f"  <devices>\n    {disk}\n    {gpu}\n"
              f"    {hostdev_xml(vf_pci(pf0, 5), '52:54:00:dd:00:01', managed=True).strip()}\n"
              f"    {interface_xml(vf_pci(pf1, 6), '52:54:00:dd:00:02', managed=False, vlan=11).strip()}\n"
              "  </devices>\n</domain>\n")
    dom = tmp_path / "g1.xml"
    dom.write_text(domain)
    live = tmp_path / "g1.live.xml"
    ok(vfmac(tmp_path, "attach", str(dom), "--live-xml", str(live)))
    text = live.read_text()
    assert disk in text and gpu in text and "<name>g1</name>" in text
    assert vf_state(pf0, 5)["mac"] == "52:54:00:dd:00:01"
    assert vf_state(pf0, 5)["driver"] == "vfio-pci"
    assert (vf_state(pf1, 6)["mac"], vf_state(pf1, 6)["vlan"]) == ("52:54:00:dd:00:02", 11)
    ok(vfmac(tmp_path, "detach", str(live)))
    assert all_vf_states(igb_pfs) == before
