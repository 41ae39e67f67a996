"""The bulk MAC path (``Rtnl.set_macs``) on netdevsim, checked with the independent raw reader and
``ip -j link show``."""

from __future__ import annotations

import errno
from collections.abc import Callable
from typing import Any

from pyvfmac.netlink import Rtnl


def test_set_macs_every_vf_and_exactly_the_bad_one_fails(
        nsim_pf: Callable[..., Any], raw_vfs: Callable[[str], dict[int, Any]],
        ip_link: Callable[[str], dict[str, Any]]) -> None:
    pf = nsim_pf(1024)
    want = {vf: f"02:b0:00:00:{vf >> 8:02x}:{vf & 0xFF:02x}" for vf in range(1024)}
    bad = dict(want)
    bad[5000] = "02:b0:00:00:ff:ff"  # beyond the PF's VFs: netdevsim says EINVAL
    with Rtnl() as nl:
        failed = nl.set_macs(pf.name, bad)
    assert list(failed) == [5000]
    assert failed[5000].errno == errno.EINVAL
    assert f"{pf.name} vf 5000" in str(failed[5000])
    got = raw_vfs(pf.name)
    assert {vf: got[vf].mac for vf in range(1024)} == want
    listed = ip_link(pf.name).get("vfinfo_list", [])
    assert listed  # ip lists the first VFs only (truncated list), they must agree
    for entry in listed:
        assert entry["address"] == want[entry["vf"]]


def test_set_macs_refused_entry_mid_message_gets_its_own_outcome(
        nsim_pf: Callable[..., Any], raw_vfs: Callable[[str], dict[int, Any]]) -> None:
    """A VF the kernel refuses in the middle of a message: the VFs before it (applied by the
    kernel) and after it (resent) all end up set, only it fails; sequence form, mixed spellings."""
    pf = nsim_pf(64)
    before = raw_vfs(pf.name)
    want = {vf: f"02:b1:00:00:00:{vf:02x}" for vf in range(64)}
    macs: dict[int, str] = {}
    for vf in range(64):
        macs[vf] = want[vf].upper().replace(":", "-") if vf % 3 == 0 else want[vf]
        if vf == 20:
            macs[900] = "02:b1:00:00:09:00"  # no such VF: netdevsim refuses it (EINVAL)
    with Rtnl() as nl:
        failed = nl.set_macs(pf.name, macs, max_per_msg=16)
    assert list(failed) == [900] and failed[900].errno == errno.EINVAL
    assert "02:b1:00:00:09:00" in str(failed[900])
    got = raw_vfs(pf.name)
    assert {vf: got[vf].mac for vf in range(64)} == want
    assert {vf: got[vf].vlan for vf in range(64)} == {vf: before[vf].vlan for vf in range(64)}
    seq = [f"02:b2:00:00:00:{vf:02x}" for vf in range(64)]
    with Rtnl() as nl:
        assert nl.set_macs(pf.name, seq) == {}
    got = raw_vfs(pf.name)
    assert [got[vf].mac for vf in range(64)] == seq


def test_set_macs_every_refused_vf_reported_once(
        nsim_pf: Callable[..., Any], raw_vfs: Callable[[str], dict[int, Any]]) -> None:
    pf = nsim_pf(8)
    before = {vf: v.mac for vf, v in raw_vfs(pf.name).items()}
    with Rtnl() as nl:
        failed = nl.set_macs(pf.name, {vf: f"02:b3:00:00:{vf >> 8:02x}:{vf & 0xFF:02x}"
                                      for vf in range(8, 3008)})
    assert sorted(failed) == list(range(8, 3008))
    assert {e.errno for e in failed.values()} == {errno.EINVAL}
    assert {vf: v.mac for vf, v in raw_vfs(pf.name).items()} == before


def test_set_macs_many_pfs_in_one_call(
        nsim_pf: Callable[..., Any], raw_vfs: Callable[[str], dict[int, Any]],
        ip_link: Callable[[str], dict[str, Any]]) -> None:
    """Several PFs (by name and by ifindex) in one call; a VF one of them lacks fails alone."""
    a, b = nsim_pf(300), nsim_pf(40)
    want_a = [f"02:b4:00:00:{vf >> 8:02x}:{vf & 0xFF:02x}" for vf in range(300)]
    want_b = {vf: f"02:b5:00:00:00:{vf:02x}" for vf in range(40)}
    with Rtnl() as nl:
        failed = nl.set_macs_many({a.name: want_a, b.ifindex: {**want_b, 77: "02:b5:00:00:00:77"}},
                                  max_per_msg=128)
    assert list(failed) == [(b.name, 77)]
    assert failed[(b.name, 77)].errno == errno.EINVAL
    got_a, got_b = raw_vfs(a.name), raw_vfs(b.name)
    assert [got_a[vf].mac for vf in range(300)] == want_a
    assert {vf: got_b[vf].mac for vf in range(40)} == want_b
    for pf, want in ((a, dict(enumerate(want_a))), (b, want_b)):
        for entry in ip_link(pf.name).get("vfinfo_list", []):
            assert entry["address"] == want[entry["vf"]]


def test_apply_mac_only_changes_interleaved_pfs_results_in_order(
        nsim_pf: Callable[..., Any], raw_vfs: Callable[[str], dict[int, Any]]) -> None:
    """``Rtnl.apply`` with MAC-only changes (its bulk path): two PFs interleaved, a VF one of
    them lacks, a VF changed twice (the last wins): one result per change, in input order."""
    from pyvfmac.types import VfChange

    a, b = nsim_pf(20), nsim_pf(20)
    changes = []
    for vf in range(20):
        changes.append(VfChange(pf=a.name, vf=vf, mac=f"02:b6:00:00:00:{vf:02x}"))
        changes.append(VfChange(pf=b.ifindex, vf=vf, mac=f"02:b7:00:00:00:{vf:02X}"))
    changes.insert(7, VfChange(pf=b.name, vf=50, mac="02:b7:00:00:00:50"))
    changes.append(VfChange(pf=a.name, vf=3, mac="02:b6:00:00:01:03"))
    with Rtnl() as nl:
        results = nl.apply(changes)
    assert [r.change.vf for r in results] == [c.vf for c in changes]
    assert [(i, r.pf_name, r.errno) for i, r in enumerate(results) if not r.ok] == [
        (7, b.name, errno.EINVAL)]
    assert {r.pf_name for r in results} == {a.name, b.name}
    got_a, got_b = raw_vfs(a.name), raw_vfs(b.name)
    assert {vf: got_a[vf].mac for vf in range(20)} == {
        vf: "02:b6:00:00:01:03" if vf == 3 else f"02:b6:00:00:00:{vf:02x}" for vf in range(20)}
    assert {vf: got_b[vf].mac for vf in range(20)} == {
        vf: f"02:b7:00:00:00:{vf:02x}" for vf in range(20)}
