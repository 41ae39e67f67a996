"""Other owners of a VF (issue 23): a guest's VF on vfio-pci and a pod's VF whose netdev another
CNI plugin moved into a namespace are left alone by `vfmac apply --pf` and by `vfmac watch`, an
unowned VF changed by hand is still repaired, `program_held` and `--boot` program held VFs, and a
VF its holder lets go gets its configured MAC back from the daemon. Checked with ``ip -j`` and
sysfs."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

from test_watch import igb_pci, igb_reader, quiet_since, seven_vfs, wait_macs, watching
from vfhelp import driver_of, netdev_of, ok, vf_pci, vf_state, vfmac

from pyvfmac.pcibind import bind
from pyvfmac.types import PciAddress

THEIRS = {1: "02:aa:00:00:00:01", 2: "02:aa:00:00:00:02", 3: "02:aa:00:00:00:03"}
OURS = {1: "02:6f:00:00:00:01", 2: "02:6f:00:00:00:02", 3: "02:6f:00:00:00:03"}


def _vf_tables(extra: dict[int, str] | None = None) -> str:
    return "".join(f'[[pf.vf]]\nindex = {i}\nmac = "{m}"\n' + (extra or {}).get(i, "")
                   for i, m in OURS.items())


def _set_vf_mac(pf: str, vf: int, mac: str) -> None:
    subprocess.run(["ip", "link", "set", "dev", pf, "vf", str(vf), "mac", mac], check=True)


def _take(pf: str, pod: str) -> None:
    """VF 1 as libvirt holds a guest's (vfio-pci, MAC set through the PF), VF 2 as another CNI
    plugin holds a pod's (its netdev in the pod's namespace, MAC set through the PF)."""
    bind(PciAddress.parse(vf_pci(pf, 1)), "vfio-pci")
    _set_vf_mac(pf, 1, THEIRS[1])
    subprocess.run(["ip", "netns", "add", pod], check=True)
    netdev = netdev_of(vf_pci(pf, 2))
    assert netdev is not None
    subprocess.run(["ip", "link", "set", "dev", netdev, "netns", pod], check=True)
    _set_vf_mac(pf, 2, THEIRS[2])


def _macs(pf: str) -> dict[int, str]:
    return {i: vf_state(pf, i)["mac"] for i in (1, 2, 3)}


def test_apply_leaves_other_owners_alone(tmp_path: Path, igb_pfs: tuple[str, ...],
                                         igb_clean: None) -> None:
    seven_vfs()
    pf = igb_pfs[0]
    pod = "owners-apply"
    cfg = tmp_path / "vfmac.toml"
    state = tmp_path / "st"
    try:
        _take(pf, pod)
        _set_vf_mac(pf, 3, THEIRS[3])  # nobody's: changed by hand
        cfg.write_text(f'[[pf]]\nname = "{pf}"\n' + _vf_tables())
        out = ok(vfmac(state, "apply", str(cfg), "--pf", pf))
        assert _macs(pf) == {1: THEIRS[1], 2: THEIRS[2], 3: OURS[3]}, out
        assert f"{pf} vf 1: held (bound to vfio-pci outside pyvfmac): left alone" in out
        assert (f"{pf} vf 2: held (bound to igbvf, its netdev not on the host (in another "
                "network namespace)): left alone") in out
        assert driver_of(vf_pci(pf, 1)) == "vfio-pci"
        held = subprocess.run(["ip", "-n", pod, "-j", "link", "show"], check=True, text=True,
                              capture_output=True).stdout
        assert vf_pci(pf, 2) not in out and '"ifname"' in held  # still in the pod

        # the config asks for VF 1 anyway; VF 2 stays the pod's
        cfg.write_text(f'[[pf]]\nname = "{pf}"\n'
                       + _vf_tables({1: "program_held = true\n"}))
        out = ok(vfmac(state, "apply", str(cfg)))
        assert _macs(pf) == {1: OURS[1], 2: THEIRS[2], 3: OURS[3]}, out
        assert "vf 1: held" not in out and f"{pf} vf 2: held" in out

        # at boot nothing holds a VF yet: --boot programs every configured VF
        cfg.write_text(f'[[pf]]\nname = "{pf}"\n' + _vf_tables())
        out = ok(vfmac(state, "apply", "--boot", str(cfg)))
        assert _macs(pf) == OURS and "held" not in out, out
    finally:
        subprocess.run(["ip", "netns", "del", pod], capture_output=True)


def test_watch_leaves_other_owners_alone_and_takes_back_what_they_let_go(
        tmp_path: Path, igb_pfs: tuple[str, ...], igb_clean: None, ip_link: object,
        raw_vfs: object) -> None:
    seven_vfs()
    pf = igb_pfs[0]
    pci = next(p for p in igb_pci() if netdev_of_pf(p) == pf)
    read = igb_reader(pci, ip_link, raw_vfs)  # type: ignore[arg-type]
    pod = "owners-watch"
    body = f'[[pf]]\nname = "{pf}"\nmac_policy = "keep"\n' + _vf_tables()
    try:
        with watching(tmp_path, body) as w:
            wait_macs(read, OURS, time.monotonic(), 60)  # the start-up pass
            _take(pf, pod)
            t0 = time.monotonic()
            _set_vf_mac(pf, 3, THEIRS[3])
            wait_macs(read, {3: OURS[3]}, t0)  # an unowned VF changed by hand: repaired
            quiet_since(w, 3)
            assert {i: read()[i] for i in (1, 2)} == {1: THEIRS[1], 2: THEIRS[2]}
            assert _macs(pf)[1] == THEIRS[1] and _macs(pf)[2] == THEIRS[2]
            log = w.log_path.read_text()
            assert "vf 1: held (bound to vfio-pci outside pyvfmac): left alone" in log, log

            t0 = time.monotonic()  # the guest is destroyed: libvirt rebinds igbvf
            subprocess.run(["ip", "link", "set", "dev", pf, "vf", "1", "mac",
                            "00:00:00:00:00:00"], check=True)
            _rebind(vf_pci(pf, 1))
            subprocess.run(["ip", "netns", "del", pod], check=True)  # the pod is deleted
            wait_macs(read, {1: OURS[1], 2: OURS[2]}, t0)
            assert _macs(pf) == OURS
            assert w.stop() == 0
    finally:
        subprocess.run(["ip", "netns", "del", pod], capture_output=True)


def netdev_of_pf(pci: str) -> str:
    return next(Path(f"/sys/bus/pci/devices/{pci}/net").iterdir()).name


def _rebind(pci: str) -> None:
    dev = Path(f"/sys/bus/pci/devices/{pci}")
    (dev / "driver" / "unbind").write_text(pci)
    (dev / "driver_override").write_text("\n")
    Path("/sys/bus/pci/drivers_probe").write_text(pci)
