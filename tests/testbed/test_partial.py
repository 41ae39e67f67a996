"""A VF change that the kernel refuses part-way, for real: igb (82576) in the testbed guest has no
VF link-state control (EOPNOTSUPP) and refuses TX rates (EINVAL, no 1 Gb/s link), and the kernel
applies a change's settings in its order (net/core/rtnetlink.c do_setvfinfo: MAC, VLAN, rate,
spoofchk, link state, trust), keeping the ones before the refused one. netdevsim implements every
setting, so igb it is. Checked with ``ip -j link show`` (iproute2), not with pyvfmac's reader."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from vfhelp import ok, vfmac

from pyvfmac.cli import main

pytestmark = pytest.mark.testbed


def ip_vfs(ip_link: Callable[[str], dict[str, Any]], pf: str) -> dict[int, dict[str, Any]]:
    return {e["vf"]: e for e in ip_link(pf)["vfinfo_list"]}


@pytest.mark.usefixtures("igb_clean")
def test_set_refused_part_way_leaves_the_vf_as_it_was(
        igb_pfs: tuple[str, ...], ip_link: Callable[[str], dict[str, Any]],
        tmp_path: Path) -> None:
    """`vfmac set` puts back what the kernel applied before the refusal, to what the VF had
    (igb's all-zero MAC on VF 3; a MAC, VLAN and trust of its own on VF 4), and names the
    refused setting alone."""
    pf = igb_pfs[0]
    ok(vfmac(tmp_path, "set", pf, "4", "mac", "02:00:00:00:04:04", "vlan", "7", "trust", "on"))
    before = ip_vfs(ip_link, pf)
    assert before[3]["address"] == "00:00:00:00:00:00" and before[4]["address"] == (
        "02:00:00:00:04:04")
    r = vfmac(tmp_path, "set", pf, "3", "mac", "02:00:00:00:00:07", "state", "enable")
    assert (r.returncode, r.stderr) == (
        1, f"vfmac: error: {pf} vf 3: cannot set link state enable: Operation not supported "
           "(EOPNOTSUPP); nothing changed\n")
    assert ip_vfs(ip_link, pf) == before
    r = vfmac(tmp_path, "set", pf, "4", "mac", "02:00:00:00:00:44", "vlan", "44", "spoofchk",
              "off", "max_tx_rate", "100")
    assert (r.returncode, r.stderr) == (
        1, f"vfmac: error: {pf} vf 4: cannot set TX rate max 100 Mbit/s: Invalid argument "
           "(EINVAL); nothing changed\n")
    assert ip_vfs(ip_link, pf) == before


@pytest.mark.usefixtures("igb_clean")
def test_apply_refused_part_way_names_the_setting_and_keeps_the_rest(
        igb_pfs: tuple[str, ...], ip_link: Callable[[str], dict[str, Any]],
        tmp_path: Path) -> None:
    """`vfmac apply` converges as far as it can: the MAC and VLAN the kernel applied before
    refusing the link state stay, trust (after it) is not set, and the report says so."""
    pf = igb_pfs[0]
    path = tmp_path / "vfmac.toml"
    path.write_text(f'[[pf]]\nname = "{pf}"\n[[pf.vf]]\nindex = 1\nmac = "02:00:00:00:01:01"\n'
                    'vlan = 200\nlink_state = "enable"\ntrust = true\n')
    out = io.StringIO()
    assert main(["apply", str(path)], out) == 1
    assert out.getvalue().splitlines() == [
        f"{pf}: 7 VFs, 0 changed, 6 unchanged, 1 failed",
        f"  {pf} vf 1: cannot set link state enable: Operation not supported (EOPNOTSUPP); "
        "set: MAC 02:00:00:00:01:01, VLAN 200 802.1Q; not set: trust on",
        "0 changes, 1 failed",
    ]
    vf1 = ip_vfs(ip_link, pf)[1]
    assert vf1["address"] == "02:00:00:00:01:01"
    assert vf1["vlan_list"][0]["vlan"] == 200
    assert (vf1["link_state"], vf1["trust"]) == ("auto", False)
