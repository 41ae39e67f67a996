"""``vfmac apply`` (pyvfmac.apply.run_apply, and the command) against a real kernel, in the
testbed guest.

Checked with readers that are not pyvfmac: ``ip -j link show`` (iproute2) and the raw RTM_GETLINK
reader of conftest (``raw_vfs``, which also sees VF lists too long for ip), and sysfs itself.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from ttyrun import run_with_stderr

from pyvfmac.apply import ApplyReport, derive_mac, run_apply
from pyvfmac.cli import main
from pyvfmac.errors import ConfigError
from pyvfmac.types import PciAddress

KEY = b"5c4f1e0d2b3a49687f6e5d4c3b2a1908"

NSIM_DEVICES = Path("/sys/bus/netdevsim/devices")


def config(tmp_path: Path, body: str) -> str:
    (tmp_path / "machine-id").write_bytes(KEY + b"\n")
    path = tmp_path / "vfmac.toml"
    path.write_text(f'[defaults]\nhost_key = "{tmp_path / "machine-id"}"\n{body}')
    return str(path)


def apply(path: str, **kw: Any) -> tuple[ApplyReport, list[str]]:
    return run_apply(path, **kw)


def nsim_macs(dev_id: int, count: int) -> dict[int, str]:
    return {i: derive_mac(KEY, f"dev:netdevsim:netdevsim{dev_id}", i) for i in range(count)}


def snapshot(raw_vfs: Callable[[str], dict[int, Any]], name: str) -> dict[int, Any]:
    vfs = raw_vfs(name)
    assert vfs, f"{name}: no VFs read"
    return vfs


def test_apply_derives_every_mac_on_256_vfs(nsim_pf: Any, ip_link: Any, raw_vfs: Any,
                                            tmp_path: Path) -> None:
    pf = nsim_pf(256)
    path = config(tmp_path, f'[[pf]]\nname = "{pf.name}"\nmac_policy = "derived"\n')
    report, lines = apply(path)
    assert report.exit_status == 0, lines
    assert lines == [f"{pf.name}: 256 VFs, 256 changed, 0 unchanged, 0 failed",
                     "256 changes, 0 failed"]
    want = nsim_macs(pf.dev_id, 256)
    assert len(set(want.values())) == 256
    # iproute2's view (it may print a truncated list for this many VFs: every VF it lists must
    # be right, and it must list some); then all 256 through the raw reader.
    listed = ip_link(pf.name).get("vfinfo_list", [])
    assert listed, "ip -j link show listed no VFs"
    for i, entry in enumerate(listed):
        vf = entry.get("vf", i)
        assert entry["address"] == want[vf], (vf, entry)
    got = {i: v.mac for i, v in snapshot(raw_vfs, pf.name).items()}
    assert got == want

    # Run twice: the second run changes nothing and says so.
    before = snapshot(raw_vfs, pf.name)
    report2, lines2 = apply(path)
    assert report2.exit_status == 0 and report2.changed == 0 and report2.changes == ()
    assert lines2 == [f"{pf.name}: 256 VFs, 0 changed, 256 unchanged, 0 failed",
                      "0 changes: every VF is already as configured"]
    assert snapshot(raw_vfs, pf.name) == before


def test_apply_explicit_settings_and_pf_defaults(nsim_pf: Any, ip_link: Any, raw_vfs: Any,
                                                 tmp_path: Path) -> None:
    pf = nsim_pf(8)
    path = config(tmp_path, f"""
spoofchk = false
[[pf]]
name = "{pf.name}"
trust = true
[[pf.vf]]
index = 2
mac = "52:54:00:aa:00:02"
vlan = 42
qos = 3
link_state = "disable"
max_tx_rate = 100
[[pf.vf]]
index = 5
spoofchk = true
vlan = 7
vlan_proto = "802.1ad"
""")
    report, lines = apply(path)
    assert report.exit_status == 0, lines
    vfs = snapshot(raw_vfs, pf.name)
    assert len(vfs) == 8
    for i, v in vfs.items():
        assert v.trust is True, v
        assert v.spoofchk is (i == 5), v
    v2, v5 = vfs[2], vfs[5]
    assert (v2.mac, v2.vlan, v2.qos, v2.vlan_proto, v2.link_state, v2.max_tx_rate) == \
        ("52:54:00:aa:00:02", 42, 3, 0x8100, 2, 100)
    assert (v5.vlan, v5.vlan_proto) == (7, 0x88A8)
    assert vfs[0].mac == "00:00:00:00:00:00"  # policy "keep": no MAC for unlisted VFs
    ip_vfs = {e["vf"]: e for e in ip_link(pf.name)["vfinfo_list"]}
    assert ip_vfs[2]["address"] == "52:54:00:aa:00:02" and ip_vfs[2]["link_state"] == "disable"
    report2, lines2 = apply(path)
    assert report2.changed == 0 and lines2[-1] == "0 changes: every VF is already as configured"


def test_apply_changes_numvfs_4_to_8(nsim_pf: Any, raw_vfs: Any, tmp_path: Path) -> None:
    pf = nsim_pf(4, max_vfs=8)
    attr = NSIM_DEVICES / f"netdevsim{pf.dev_id}" / "sriov_numvfs"
    assert attr.read_text().strip() == "4"
    path = config(tmp_path, f'[[pf]]\nname = "{pf.name}"\nnumvfs = 8\nmac_policy = "derived"\n')
    report, lines = apply(path)
    assert report.exit_status == 0, lines
    assert attr.read_text().strip() == "8"
    assert lines[0] == (f"{pf.name}: 8 VFs, 8 changed, 0 unchanged, 0 failed "
                        "(sriov_numvfs changed 4 -> 8)")
    assert {i: v.mac for i, v in snapshot(raw_vfs, pf.name).items()} == nsim_macs(pf.dev_id, 8)
    report2, lines2 = apply(path)
    assert report2.changed == 0
    assert lines2[0] == f"{pf.name}: 8 VFs, 0 changed, 8 unchanged, 0 failed"


def test_apply_numvfs_beyond_the_device_is_reported(nsim_pf: Any, tmp_path: Path) -> None:
    pf = nsim_pf(4, max_vfs=8)
    path = config(tmp_path, f'[[pf]]\nname = "{pf.name}"\nnumvfs = 16\n')
    report, lines = apply(path)
    assert report.exit_status == 1
    (failure,) = report.failures
    assert failure.vf is None and failure.pf == pf.name
    assert f"cannot write 16 to /sys/class/net/{pf.name}/device/sriov_numvfs" in failure.message
    assert "(ENOMEM)" in failure.message  # netdevsim: more than its debugfs max_vfs
    # 4 -> 0 worked, 0 -> 16 did not: the PF is left without VFs, and the report says so
    assert lines == [f"{pf.name}: 0 VFs, 0 changed, 0 unchanged, 1 failed "
                     "(sriov_numvfs changed 4 -> 0)", f"  {failure.message}",
                     "0 changes, 1 failed"]
    assert (NSIM_DEVICES / f"netdevsim{pf.dev_id}" / "sriov_numvfs").read_text().strip() == "0"


def test_dry_run_changes_nothing(nsim_pf: Any, raw_vfs: Any, tmp_path: Path) -> None:
    pf = nsim_pf(8)
    attr = NSIM_DEVICES / f"netdevsim{pf.dev_id}" / "sriov_numvfs"
    before = snapshot(raw_vfs, pf.name)
    path = config(tmp_path, f'[[pf]]\nname = "{pf.name}"\nmac_policy = "derived"\n'
                            '[[pf.vf]]\nindex = 1\ntrust = true\n')
    report, lines = apply(path, dry_run=True)
    macs = nsim_macs(pf.dev_id, 8)
    assert lines[0] == f"{pf.name} vf 0: mac 00:00:00:00:00:00 -> {macs[0]}"
    assert lines[1] == f"{pf.name} vf 1: mac 00:00:00:00:00:00 -> {macs[1]}; trust off -> on"
    assert lines[-2:] == [f"{pf.name}: 8 VFs, 8 to change, 0 unchanged",
                          "dry run: 8 changes would be made; nothing was changed"]
    assert len(report.changes) == 8
    assert snapshot(raw_vfs, pf.name) == before and attr.read_text().strip() == "8"


@pytest.mark.parametrize("body,match", [
    ('[[pf]]\nname = "{pf}"\nmac_policy = "derived"\n'
     '[[pf.vf]]\nindex = 3\nmac = "02:00:00:00:00"\n',
     r'pf\[0\]\.vf\[0\]\.mac = "02:00:00:00:00": not six hexadecimal octets'),
    ('[[pf]]\nname = "{pf}"\nmac_policy = "derived"\n[[pf]]\nname = "nosuchpf0"\n',
     r'pf\[1\]\.name = "nosuchpf0": no such network device'),
    ('[[pf]]\nname = "{pf}"\nnumvfs = 8\nmac_policy = "derived"\n[[pf.vf]]\nindex = 9\n',
     r"pf\[0\]\.vf\[0\]\.index = 9: not below pf\[0\]\.numvfs = 8"),
    ('[[pf]]\nname = "{pf}"\nmac_policy = "derived"\n[[pf.vf]]\nindex = 2\nmac = "{pfmac}"\n',
     r"pf\[0\]\.vf\[0\]\.mac = .*which is also the MAC of netdev"),
    ('[[pf]]\nname = "{pf}"\nnumvfs = 6\nmac_policy = "derived"\n'
     '[[pf.vf]]\nindex = 1\nmac = "02:00:00:00:00:01"\n'
     '[[pf.vf]]\nindex = 2\nmac = "02-00-00-00-00-01"\n',
     r"pf\[0\]\.vf\[1\]\.mac = \"02:00:00:00:00:01\": MAC used twice"),
    ('[[pf]]\nname = "{pf}"\nmac_policy = "derived"\n[[pf]]\nname = "lo"\n',
     r'pf\[1\]\.name = "lo": lo cannot create VFs .*not an SR-IOV PF'),
], ids=["bad-mac", "unknown-pf", "index-beyond-numvfs", "collision-with-pf-mac", "duplicate-mac",
        "not-a-pf"])
def test_bad_config_changes_nothing(nsim_pf: Any, ip_link: Any, raw_vfs: Any, tmp_path: Path,
                                    body: str, match: str) -> None:
    pf = nsim_pf(4, max_vfs=8)
    attr = NSIM_DEVICES / f"netdevsim{pf.dev_id}" / "sriov_numvfs"
    before = snapshot(raw_vfs, pf.name)
    pf_mac = ip_link(pf.name)["address"]
    path = config(tmp_path, body.replace("{pf}", pf.name).replace("{pfmac}", pf_mac))
    out = io.StringIO()
    with pytest.raises(ConfigError, match=match) as exc:
        run_apply(path)
    assert str(exc.value).startswith(path + ": ")
    assert main(["apply", path], out) == 1  # the command: an error, no report
    assert out.getvalue() == ""
    assert snapshot(raw_vfs, pf.name) == before
    assert attr.read_text().strip() == "4"


def test_apply_4096_vfs_one_batch(nsim_pf: Any, raw_vfs: Any, tmp_path: Path) -> None:
    """The scale case: one PF, 4096 VFs, every MAC derived; the time is printed, not asserted."""
    pf = nsim_pf(4096)
    path = config(tmp_path, f'[[pf]]\nname = "{pf.name}"\nmac_policy = "derived"\n')
    t0 = time.perf_counter()
    report, lines = apply(path)
    first = time.perf_counter() - t0
    assert report.exit_status == 0, lines[-5:]
    assert lines[0] == f"{pf.name}: 4096 VFs, 4096 changed, 0 unchanged, 0 failed"
    assert {i: v.mac for i, v in raw_vfs(pf.name).items()} == nsim_macs(pf.dev_id, 4096)
    t0 = time.perf_counter()
    report2, _ = apply(path)
    second = time.perf_counter() - t0
    assert report2.changed == 0
    print(f"apply 4096 VFs: {first * 1000:.0f} ms, re-run (0 changes): {second * 1000:.0f} ms")


def _pci_of(netdev: str) -> PciAddress:
    return PciAddress.parse(os.path.basename(os.path.realpath(f"/sys/class/net/{netdev}/device")))


@pytest.mark.usefixtures("igb_clean")
def test_apply_igb_by_pci_address(igb_pfs: tuple[str, ...], ip_link: Any, tmp_path: Path) -> None:
    """Real PCI SR-IOV: PFs named by PCI address, MACs derived from it; a second run is clean
    even though each VF's own igbvf netdev may carry the MAC its VF was given."""
    a, b = igb_pfs
    pa, pb = _pci_of(a), _pci_of(b)
    path = config(tmp_path, f'mac_policy = "derived"\n[[pf]]\npci = "{pa}"\n'
                            f'[[pf]]\nname = "{b}"\n[[pf.vf]]\nindex = 6\nvlan = 11\n')
    report, lines = apply(path)
    assert report.exit_status == 0, lines
    assert lines[:2] == [f"{a}: 7 VFs, 7 changed, 0 unchanged, 0 failed",
                         f"{b}: 7 VFs, 7 changed, 0 unchanged, 0 failed"]
    for name, pci in ((a, pa), (b, pb)):
        got = {e["vf"]: e["address"] for e in ip_link(name)["vfinfo_list"]}
        assert got == {i: derive_mac(KEY, f"pci:{pci}", i) for i in range(7)}, name
    vf6 = [e for e in ip_link(b)["vfinfo_list"] if e["vf"] == 6][0]
    assert vf6["vlan_list"][0]["vlan"] == 11
    time.sleep(1)  # igbvf netdevs pick up the new MACs after their reset
    report2, lines2 = apply(path)
    assert report2.exit_status == 0 and report2.changed == 0, lines2


@pytest.mark.usefixtures("igb_clean")
def test_same_igb_pf_by_name_and_pci_is_refused(igb_pfs: tuple[str, ...], tmp_path: Path) -> None:
    a = igb_pfs[0]
    path = config(tmp_path, f'[[pf]]\nname = "{a}"\n[[pf]]\npci = "{_pci_of(a)}"\n')
    with pytest.raises(ConfigError, match=rf'pf\[1\]\.pci = "{_pci_of(a)}": the same PF as '
                                          rf"pf\[0\] \({a}\)"):
        run_apply(path)


def test_apply_mac_only_pf_and_pf_with_settings_in_one_run(nsim_pf: Any, raw_vfs: Any,
                                                            tmp_path: Path) -> None:
    """One PF whose changes are MAC-only (the bulk set_macs path) and one with a setting more
    (the batched per-VF path), in one run; each read back on its own; a third PF untouched."""
    a, b, c = nsim_pf(64), nsim_pf(16), nsim_pf(8)
    untouched = snapshot(raw_vfs, c.name)
    path = config(tmp_path, f'mac_policy = "derived"\n[[pf]]\nname = "{a.name}"\n'
                            f'[[pf]]\nname = "{b.name}"\n[[pf.vf]]\nindex = 3\ntrust = true\n'
                            'vlan = 9\n')
    report, lines = apply(path)
    assert lines == [f"{a.name}: 64 VFs, 64 changed, 0 unchanged, 0 failed",
                     f"{b.name}: 16 VFs, 16 changed, 0 unchanged, 0 failed",
                     "80 changes, 0 failed"], lines
    got_a, got_b = snapshot(raw_vfs, a.name), snapshot(raw_vfs, b.name)
    assert {i: v.mac for i, v in got_a.items()} == nsim_macs(a.dev_id, 64)
    assert {i: v.mac for i, v in got_b.items()} == nsim_macs(b.dev_id, 16)
    assert [i for i, v in got_b.items() if v.trust] == [3] and got_b[3].vlan == 9
    assert snapshot(raw_vfs, c.name) == untouched
    report2, lines2 = apply(path)
    assert report2.changed == 0 and lines2[-1] == "0 changes: every VF is already as configured"


def _vfmac(*args: str, tty: bool) -> tuple[int, str, str]:
    """The vfmac command, stderr on a pty (a terminal) or a pipe: (status, stdout, stderr)."""
    return run_with_stderr([os.path.join(sys.prefix, "bin", "vfmac"), *args], tty=tty)


def test_apply_command_shows_progress_only_at_a_terminal(nsim_pf: Any, tmp_path: Path) -> None:
    """`vfmac apply` with a sriov_numvfs change: a status line on a terminal's stderr, rewritten
    in place and cleared before the report; nothing on a pipe."""
    pf = nsim_pf(4, max_vfs=8)
    path = config(tmp_path, f'[[pf]]\nname = "{pf.name}"\nnumvfs = 8\nmac_policy = "derived"\n')
    rc, out, err = _vfmac("apply", path, tty=True)
    assert rc == 0, (out, err)
    assert out.splitlines() == [f"{pf.name}: 8 VFs, 8 changed, 0 unchanged, 0 failed "
                                "(sriov_numvfs changed 4 -> 8)", "8 changes, 0 failed"]
    steps = err.split("\r\x1b[K")
    assert steps[0] == "" and steps[-1] == "", repr(err)  # every step in place; cleared at the end
    assert f"vfmac: {pf.name}: sriov_numvfs 4 -> 8" in steps, steps
    assert "vfmac: programming 8 VFs on 1 PF" in steps and "\n" not in err, steps
    path = config(tmp_path, f'[[pf]]\nname = "{pf.name}"\nnumvfs = 6\nmac_policy = "derived"\n')
    rc, out, err = _vfmac("apply", path, tty=False)
    assert (rc, err) == (0, ""), err
    assert out.splitlines()[0].endswith("(sriov_numvfs changed 8 -> 6)")


def test_vfmac_apply_twice_changes_every_vf_then_nothing(nsim_pf: Any, ip_link: Any,
                                                        raw_vfs: Any, tmp_path: Path) -> None:
    """`vfmac apply` (the command, as the boot unit runs it) twice, on netdevsim VFs: a MAC-only
    PF (the bulk path) and one with a setting more (the batched path). Read independently (the
    raw reader, iproute2): the first run changes every VF, the second changes nothing and says
    so. The fake-kernel unit test of the same runs (tests/test_apply_run.py) keeps what only it
    can see: which calls each run makes (one dump, no read-back when nothing was sent)."""
    a, b = nsim_pf(6), nsim_pf(4)
    before = {pf.name: snapshot(raw_vfs, pf.name) for pf in (a, b)}
    path = config(tmp_path, f'mac_policy = "derived"\n[[pf]]\nname = "{a.name}"\n'
                            f'[[pf]]\nname = "{b.name}"\n[[pf.vf]]\nindex = 1\ntrust = true\n')
    rc, out, err = _vfmac("apply", path, tty=False)
    assert (rc, err) == (0, ""), (out, err)
    assert out.splitlines() == [f"{a.name}: 6 VFs, 6 changed, 0 unchanged, 0 failed",
                                f"{b.name}: 4 VFs, 4 changed, 0 unchanged, 0 failed",
                                "10 changes, 0 failed"]
    first = {pf.name: snapshot(raw_vfs, pf.name) for pf in (a, b)}
    for pf in (a, b):
        want = nsim_macs(pf.dev_id, pf.num_vfs)
        assert {i: v.mac for i, v in first[pf.name].items()} == want
        assert all(first[pf.name][i] != before[pf.name][i] for i in want), pf.name  # every VF
        assert {e["vf"]: e["address"] for e in ip_link(pf.name)["vfinfo_list"]} == want
    assert [i for i, v in first[b.name].items() if v.trust] == [1]
    rc, out, err = _vfmac("apply", path, tty=False)
    assert (rc, err) == (0, ""), (out, err)
    assert out.splitlines() == [f"{a.name}: 6 VFs, 0 changed, 6 unchanged, 0 failed",
                                f"{b.name}: 4 VFs, 0 changed, 4 unchanged, 0 failed",
                                "0 changes: every VF is already as configured"]
    assert {pf.name: snapshot(raw_vfs, pf.name) for pf in (a, b)} == first


def _peak_rss_mb(*args: str) -> tuple[float, int, str]:
    """Peak RSS (MB), exit status and output of a command, measured from a small launcher:
    wait4 in a process forked from a big one (pytest) reports the parent's size, not the
    command's (the kernel carries the forking process's high-water mark into the child)."""
    launcher = ("import os, sys\n"
                "pid = os.fork()\n"
                "if pid == 0:\n"
                "    os.execv(sys.argv[1], sys.argv[1:])\n"
                "_, status, usage = os.wait4(pid, 0)\n"
                "print('peak-rss-kb', usage.ru_maxrss, os.waitstatus_to_exitcode(status))\n")
    proc = subprocess.run([sys.executable, "-S", "-c", launcher, *args], capture_output=True,
                          text=True, check=True)
    *output, last = proc.stdout.splitlines()
    tag, kb, code = last.split()
    assert tag == "peak-rss-kb", proc.stdout[-2000:]
    return int(kb) / 1024, int(code), "\n".join(output) + proc.stderr


def test_apply_4096_vfs_peak_rss_well_under_40_mb(nsim_pf: Any, raw_vfs: Any,
                                                  tmp_path: Path) -> None:
    """Issue 6: `vfmac apply` programming 4096 VFs stays under 40 MB peak RSS, with margin."""
    pf = nsim_pf(4096)
    path = config(tmp_path, f'[[pf]]\nname = "{pf.name}"\nmac_policy = "derived"\n')
    mb, code, out = _peak_rss_mb(os.path.join(sys.prefix, "bin", "vfmac"), "apply", path)
    assert code == 0 and out.splitlines()[-1] == "4096 changes, 0 failed", out[-2000:]
    assert {i: v.mac for i, v in raw_vfs(pf.name).items()} == nsim_macs(pf.dev_id, 4096)
    print(f"vfmac apply, 4096 VFs: peak RSS {mb:.1f} MB")
    assert mb < 34, f"peak RSS {mb:.1f} MB"
