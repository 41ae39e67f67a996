"""contrib/proxmox/vfmac-hook, called as Proxmox calls it (``SCRIPT VMID PHASE``), with a fake
config directory and a stand-in for vfmac that records its arguments."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

HOOK = Path(__file__).parent.parent / "contrib" / "proxmox" / "vfmac-hook"

VM_CONF = """\
boot: order=scsi0
cores: 2
hostpci0: 0000:03:10.0,pcie=1
hostpci1: host=03:10.2;0000:03:10.4
hostpci2: 0000:01:00.0,x-vga=1
hostpci3: mapping=gpu
hostpci4: 03:11
memory: 2048

[snap1]
hostpci0: 0000:03:11.0
"""

MACS = """\
# PCI address   MAC   options
0000:03:10.0 52:54:00:12:34:01 vlan=10 qos=2
03:10.2      52:54:00:12:34:02 trust=on spoofchk=off   # short form
0000:03:11.0 52:54:00:12:34:03
"""

FAKE = """\
import os, sys
with open(os.environ["FAKE_LOG"], "a") as f:
    f.write(" ".join(sys.argv[1:]) + "\\n")
fail = os.environ.get("FAKE_FAIL_PCI")
sys.exit(1 if fail and fail in sys.argv else 0)
"""


def run(tmp: Path, vmid: str, phase: str, **env: str) -> subprocess.CompletedProcess[str]:
    (tmp / "qemu-server").mkdir(exist_ok=True)
    (tmp / "qemu-server" / "100.conf").write_text(VM_CONF)
    (tmp / "macs.conf").write_text(env.pop("macs", MACS))
    (tmp / "fake.py").write_text(FAKE)
    full = {**os.environ, "PYVFMAC_PVE_CONF_DIR": str(tmp / "qemu-server"),
            "PYVFMAC_PROXMOX_MACS": str(tmp / "macs.conf"),
            "VFMAC": f"{sys.executable} {tmp / 'fake.py'}", "FAKE_LOG": str(tmp / "log"), **env}
    return subprocess.run([sys.executable, str(HOOK), vmid, phase], capture_output=True,
                          text=True, env=full, check=False)


def calls(tmp: Path) -> list[str]:
    log = tmp / "log"
    return log.read_text().splitlines() if log.exists() else []


def test_pre_start_attaches_the_mapped_vfs(tmp_path: Path) -> None:
    res = run(tmp_path, "100", "pre-start")
    assert res.returncode == 0, res.stderr
    assert calls(tmp_path) == [
        "attach --pci 0000:03:10.0 --mac 52:54:00:12:34:01 --vlan 10 --qos 2 --owner pve-100",
        "attach --pci 0000:03:10.2 --mac 52:54:00:12:34:02 --trust on --spoofchk off "
        "--owner pve-100",
    ]  # 03:10.4 and 01:00.0 have no MAC: Proxmox's alone; the snapshot's hostpci is not read
    assert "mapping" in res.stderr and "03:11" in res.stderr


def test_post_stop_detaches_by_owner(tmp_path: Path) -> None:
    res = run(tmp_path, "100", "post-stop")
    assert res.returncode == 0, res.stderr
    assert calls(tmp_path) == ["detach --owner pve-100"]


@pytest.mark.parametrize("phase", ["post-start", "pre-stop"])
def test_other_phases_do_nothing(tmp_path: Path, phase: str) -> None:
    assert run(tmp_path, "100", phase).returncode == 0
    assert calls(tmp_path) == []


def test_a_failed_attach_undoes_the_start(tmp_path: Path) -> None:
    res = run(tmp_path, "100", "pre-start", FAKE_FAIL_PCI="0000:03:10.2")
    assert res.returncode == 1
    assert calls(tmp_path)[-1] == "detach --owner pve-100"
    assert "does not start" in res.stderr


@pytest.mark.parametrize(
    "macs, needle",
    [("0000:03:10.0\n", "expected 'PCI-ADDRESS MAC"),
     ("0000:03:10.0 52:54:00:12:34:01 colour=red\n", "'colour=red'"),
     ("0000:03:10.0 52:54:00:12:34:01\n03:10.0 52:54:00:12:34:02\n", "listed twice")],
)
def test_bad_mac_config_attaches_nothing(tmp_path: Path, macs: str, needle: str) -> None:
    res = run(tmp_path, "100", "pre-start", macs=macs)
    assert res.returncode != 0 and needle in res.stderr
    assert calls(tmp_path) == []


def test_usage(tmp_path: Path) -> None:
    assert run(tmp_path, "abc", "pre-start").returncode == 2
    assert run(tmp_path, "100", "pre-start", macs="").returncode == 0  # nothing mapped
    missing = subprocess.run([sys.executable, str(HOOK), "100"], capture_output=True, text=True,
                             check=False)
    assert missing.returncode == 2
