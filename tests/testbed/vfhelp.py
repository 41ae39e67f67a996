"""Helpers for the attach / pool testbed tests: run the installed ``vfmac``, build device XML,
and read a VF's whole state with independent readers (``ip -j link show`` and sysfs)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

VFMAC = str(Path(sys.executable).with_name("vfmac"))
CRASH_AFTER = Path(__file__).resolve().with_name("crash_after.py")


def vfmac(state: Path | str, *args: str, env: dict[str, str] | None = None,
          timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """Run ``vfmac --state-dir STATE ARGS``: in this process (a Python start costs seconds under
    TCG), or as the installed console script when ``env`` is given."""
    if env is None:
        return _vfmac_here([ "--state-dir", str(state), "-q", *args])
    full_env = dict(os.environ)
    full_env.update(env or {})
    return subprocess.run([VFMAC, "--state-dir", str(state), "-q", *args], capture_output=True,
                          text=True, env=full_env, timeout=timeout, cwd="/")


def vfmac_killed_after(phase: str, state: Path | str, *args: str,
                       timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """Run ``vfmac --state-dir STATE ARGS`` in a process that SIGKILLs itself right after its
    attach reaches ``phase`` (``crash_after.py``: the fault injection lives in the tests)."""
    return subprocess.run([sys.executable, str(CRASH_AFTER), phase, "--state-dir", str(state),
                           "-q", *args], capture_output=True, text=True, timeout=timeout, cwd="/")


def _vfmac_here(argv: list[str]) -> subprocess.CompletedProcess[str]:
    import contextlib
    import io

    from pyvfmac.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(err):
        code = main(argv, out=out)
    return subprocess.CompletedProcess(["vfmac", *argv], code, out.getvalue(), err.getvalue())


def ok(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 0, f"vfmac failed ({proc.returncode}): {proc.stderr}{proc.stdout}"
    return proc.stdout


def vf_pci(pf: str, index: int) -> str:
    return os.path.basename(os.readlink(f"/sys/class/net/{pf}/device/virtfn{index}"))


def driver_of(pci: str) -> str | None:
    try:
        return os.path.basename(os.readlink(f"/sys/bus/pci/devices/{pci}/driver"))
    except FileNotFoundError:
        return None


def netdev_of(pci: str) -> str | None:
    try:
        names = os.listdir(f"/sys/bus/pci/devices/{pci}/net")
    except FileNotFoundError:
        return None
    return names[0] if names else None


def ip_json(*args: str) -> Any:
    out = subprocess.run(["ip", "-j", *args], check=True, capture_output=True, text=True).stdout
    return json.loads(out)


def vf_entry(pf: str, index: int) -> dict[str, Any]:
    (link,) = ip_json("-d", "link", "show", "dev", pf)
    for vf in link.get("vfinfo_list", []):
        if vf["vf"] == index:
            return dict(vf)
    raise AssertionError(f"{pf} has no vf {index} in ip's vfinfo_list")


def vf_state(pf: str, index: int) -> dict[str, Any]:
    """What a user would compare: admin MAC, VLAN/qos/proto, spoofchk, trust, link state (ip),
    and the bound driver (sysfs)."""
    vf = vf_entry(pf, index)
    vlan = (vf.get("vlan_list") or [{}])[0]
    pci = vf_pci(pf, index)
    return {
        "mac": vf["address"],
        "vlan": vlan.get("vlan", 0),
        "qos": vlan.get("qos", 0),
        "protocol": vlan.get("protocol", "802.1Q") if vlan.get("vlan") else "802.1Q",
        "spoofchk": vf.get("spoofchk"),
        "trust": vf.get("trust"),
        "link_state": vf.get("link_state"),
        "driver": driver_of(pci),
    }


def all_vf_states(pfs: tuple[str, ...]) -> dict[tuple[str, int], dict[str, Any]]:
    out = {}
    for pf in pfs:
        (link,) = ip_json("-d", "link", "show", "dev", pf)
        for vf in link.get("vfinfo_list", []):
            out[(pf, vf["vf"])] = vf_state(pf, vf["vf"])
    return out


def address_attrs(pci: str, *, with_type: bool = False) -> str:
    dom, bus, rest = pci.split(":")
    slot, fn = rest.split(".")
    kind = "type='pci' " if with_type else ""
    return f"{kind}domain='0x{dom}' bus='0x{bus}' slot='0x{slot}' function='0x{fn}'"


def hostdev_xml(pci: str, mac: str, *, managed: bool, vlan: int | None = None,
                extra: str = "") -> str:
    v = f"<vlan><tag id='{vlan}'/></vlan>" if vlan is not None else ""
    return (f"<hostdev mode='subsystem' type='pci' managed='{'yes' if managed else 'no'}'>"
            f"<source><address {address_attrs(pci)}/></source>"
            f"<mac address='{mac}'/>{v}{extra}</hostdev>\n")


def interface_xml(pci: str, mac: str, *, managed: bool, vlan: int | None = None,
                  extra: str = "") -> str:
    v = f"<vlan><tag id='{vlan}'/></vlan>" if vlan is not None else ""
    return (f"<interface type='hostdev' managed='{'yes' if managed else 'no'}'>"
            f"<source><address {address_attrs(pci, with_type=True)}/></source>"
            f"<mac address='{mac}'/>{v}{extra}</interface>\n")
