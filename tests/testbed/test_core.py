"""The netlink core against real kernel drivers in the testbed guest: netdevsim (scale) and the
emulated igb (82576, real PCI SR-IOV). Every setting is checked with pyvfmac's own read AND with an
independent reader: ``ip -j link show`` (iproute2) or, where ip truncates the VF list, the raw
pure-Python RTM_GETLINK reader of conftest.py (``raw_vfs``)."""

from __future__ import annotations

import errno
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from pyvfmac.errors import NetlinkError
from pyvfmac.netlink import Rtnl, check_results
from pyvfmac.types import LINK_STATES, PciAddress, VfChange, VfState

pytestmark = pytest.mark.testbed

FULL = VfChange(pf="", vf=1, mac="02:00:00:00:00:01", vlan=42, qos=3, spoofchk=False,
                trust=True, link_state="disable")


def ip_vf(info: dict[str, Any], vf: int) -> dict[str, Any]:
    """One ``vfinfo_list`` entry of ``ip -j link show`` output."""
    for entry in info.get("vfinfo_list", []):
        if entry["vf"] == vf:
            return dict(entry)
    raise AssertionError(f"{info['ifname']}: ip shows no vf {vf}")


def ip_vlan(entry: dict[str, Any]) -> tuple[int, int, str]:
    """(vlan, qos, protocol) of an ip vfinfo entry; ip omits the protocol for 802.1Q."""
    vl = (entry.get("vlan_list") or [{}])[0]
    return vl.get("vlan", 0), vl.get("qos", 0), vl.get("protocol", "802.1Q")


def mac_for(pf_index: int, vf: int) -> str:
    return f"02:{pf_index:02x}:00:{vf >> 16 & 0xFF:02x}:{vf >> 8 & 0xFF:02x}:{vf & 0xFF:02x}"


def with_pf(change: VfChange, pf: str, vf: int | None = None) -> VfChange:
    from dataclasses import replace

    return replace(change, pf=pf, vf=change.vf if vf is None else vf)


# ---------------------------------------------------------------- settings on netdevsim and igb

def test_nsim_every_setting(nsim_pf: Callable[..., Any], ip_link: Callable[[str], dict[str, Any]],
                            raw_vfs: Callable[[str], dict[int, Any]]) -> None:
    pf = nsim_pf(4)
    changes = [
        with_pf(FULL, pf.name, 1),
        VfChange(pf=pf.name, vf=2, mac="02:00:00:00:00:02", vlan=7, qos=0, vlan_proto="802.1ad",
                 spoofchk=True, trust=False, link_state="enable", min_tx_rate=10,
                 max_tx_rate=100),
        VfChange(pf=pf.ifindex, vf=3, mac="02:00:00:00:00:03", link_state="auto"),
    ]
    with Rtnl() as nl:
        results = nl.apply(changes)
        check_results(results)
        assert [r.ok for r in results] == [True, True, True]
        assert {r.pf_name for r in results} == {pf.name}
        link = nl.read_link(pf.name)
    assert link.num_vf == 4 and len(link.vfs) == 4 and link.missing_vfs == 0
    assert link.parent_bus == "netdevsim"
    assert link.vf(1) == VfState(vf=1, mac="02:00:00:00:00:01", vlan=42, qos=3,
                                 vlan_proto="802.1Q", spoofchk=False, trust=True,
                                 link_state="disable", min_tx_rate=0, max_tx_rate=0)
    assert link.vf(2) == VfState(vf=2, mac="02:00:00:00:00:02", vlan=7, qos=0,
                                 vlan_proto="802.1ad", spoofchk=True, trust=False,
                                 link_state="enable", min_tx_rate=10, max_tx_rate=100)
    assert link.vf(3).mac == "02:00:00:00:00:03" and link.vf(3).link_state == "auto"
    assert link.vf(0).mac == "00:00:00:00:00:00"  # untouched

    info = ip_link(pf.name)
    e1, e2, e3 = ip_vf(info, 1), ip_vf(info, 2), ip_vf(info, 3)
    assert e1["address"] == "02:00:00:00:00:01" and ip_vlan(e1) == (42, 3, "802.1Q")
    assert (e1["spoofchk"], e1["trust"], e1["link_state"]) == (False, True, "disable")
    assert e2["address"] == "02:00:00:00:00:02" and ip_vlan(e2) == (7, 0, "802.1ad")
    assert (e2["spoofchk"], e2["trust"], e2["link_state"]) == (True, False, "enable")
    assert e2["rate"] == {"min_tx": 10, "max_tx": 100}
    assert e3["address"] == "02:00:00:00:00:03" and e3["link_state"] == "auto"
    assert ip_vf(info, 0)["address"] == "00:00:00:00:00:00"
    raw = raw_vfs(pf.name)
    assert raw[2].vlan_proto == 0x88A8 and raw[1].vlan_proto == 0x8100

    # clearing the VLAN and flipping the booleans back
    with Rtnl() as nl:
        check_results(nl.apply([VfChange(pf=pf.name, vf=1, vlan=0, spoofchk=True, trust=False)]))
        after = nl.read_link(pf.name).vf(1)
    assert (after.vlan, after.qos, after.spoofchk, after.trust) == (0, 0, True, False)
    assert after.mac == "02:00:00:00:00:01"  # not part of the change: unchanged
    e1 = ip_vf(ip_link(pf.name), 1)
    assert ip_vlan(e1)[:2] == (0, 0) and e1["spoofchk"] is True and e1["trust"] is False


def test_nsim_vf_beyond_count_is_einval(nsim_pf: Callable[..., Any]) -> None:
    pf = nsim_pf(2)
    with Rtnl() as nl:
        [res] = nl.apply([VfChange(pf=pf.name, vf=2, mac="02:00:00:00:00:09")])
    assert res.errno == errno.EINVAL and not res.ok
    with pytest.raises(NetlinkError) as exc:
        check_results([res])
    assert exc.value.errno == errno.EINVAL and exc.value.device == pf.name and exc.value.vf == 2
    assert f"{pf.name} vf 2" in str(exc.value) and "EINVAL" in str(exc.value)


def test_igb_settings(igb_pfs: tuple[str, ...], igb_clean: None,
                      ip_link: Callable[[str], dict[str, Any]]) -> None:
    pf0, pf1 = igb_pfs
    changes = [
        VfChange(pf=pf0, vf=0, mac="02:11:00:00:00:00", vlan=42, qos=3, spoofchk=False,
                 trust=True),
        VfChange(pf=pf0, vf=6, mac="02:11:00:00:00:06"),
        VfChange(pf=pf1, vf=3, mac="02:12:00:00:00:03", vlan=4094, qos=7, spoofchk=True,
                 trust=False),
    ]
    with Rtnl() as nl:
        results = nl.apply(changes)
        check_results(results)
        l0, l1 = nl.read_link(pf0), nl.read_link(pf1)
    assert l0.parent_bus == "pci" and PciAddress.parse(l0.parent_dev or "")
    assert l0.num_vf == 7 and len(l0.vfs) == 7 and len(l1.vfs) == 7
    assert l0.vf(0) == VfState(vf=0, mac="02:11:00:00:00:00", vlan=42, qos=3,
                               vlan_proto="802.1Q", spoofchk=False, trust=True,
                               link_state="auto", min_tx_rate=0, max_tx_rate=0)
    assert l0.vf(6).mac == "02:11:00:00:00:06" and l0.vf(6).vlan == 0
    assert (l1.vf(3).mac, l1.vf(3).vlan, l1.vf(3).qos) == ("02:12:00:00:00:03", 4094, 7)
    assert l1.vf(3).spoofchk is True and l1.vf(3).trust is False
    for i in (1, 2, 3, 4, 5):
        assert l0.vf(i).mac == "00:00:00:00:00:00", i  # igb's initial admin MAC
    e0, e6 = ip_vf(ip_link(pf0), 0), ip_vf(ip_link(pf0), 6)
    assert e0["address"] == "02:11:00:00:00:00" and ip_vlan(e0) == (42, 3, "802.1Q")
    assert (e0["spoofchk"], e0["trust"]) == (False, True)
    assert e6["address"] == "02:11:00:00:00:06"
    e13 = ip_vf(ip_link(pf1), 3)
    assert e13["address"] == "02:12:00:00:00:03" and ip_vlan(e13) == (4094, 7, "802.1Q")
    # back to the all-zero MAC (what a restore of igb's original does)
    with Rtnl() as nl:
        check_results(nl.apply([VfChange(pf=pf0, vf=6, mac="00:00:00:00:00:00",
                                         allow_zero_mac=True)]))
        assert nl.read_link(pf0).vf(6).mac == "00:00:00:00:00:00"
    assert ip_vf(ip_link(pf0), 6)["address"] == "00:00:00:00:00:00"


def test_igb_refusals_are_clean(igb_pfs: tuple[str, ...], igb_clean: None,
                                ip_link: Callable[[str], dict[str, Any]]) -> None:
    """igb (82576) has no 802.1ad VLAN on VFs and no VF link-state control."""
    pf = igb_pfs[0]
    with Rtnl() as nl:
        r_ad, r_state = nl.apply([
            VfChange(pf=pf, vf=1, vlan=7, vlan_proto="802.1ad"),
            VfChange(pf=pf, vf=2, link_state="disable"),
        ])
        link = nl.read_link(pf)
    assert r_ad.errno == errno.EPROTONOSUPPORT, r_ad
    assert r_state.errno == errno.EOPNOTSUPP, r_state
    with pytest.raises(NetlinkError) as exc:
        check_results([r_ad])
    text = str(exc.value)
    assert text.startswith(f"{pf} vf 1: cannot set VLAN 7 802.1ad") and "EPROTONOSUPPORT" in text
    with pytest.raises(NetlinkError, match=rf"{pf} vf 2: .*link state disable.*EOPNOTSUPP"):
        check_results([r_state])
    assert link.vf(1).vlan == 0 and link.vf(2).link_state == "auto"
    info = ip_link(pf)
    assert ip_vlan(ip_vf(info, 1))[0] == 0 and ip_vf(info, 2)["link_state"] == "auto"


def test_igb_sysfs_vf_links(igb_pfs: tuple[str, ...]) -> None:
    """VF PCI addresses and physfn/virtfnN links as the guest kernel shows them."""
    seen: set[str] = set()
    for name in igb_pfs:
        pf_dev = Path(f"/sys/class/net/{name}/device").resolve()
        pf_addr = PciAddress.parse(pf_dev.name)
        assert (pf_dev / "sriov_totalvfs").read_text().strip() == "7"
        assert (pf_dev / "sriov_numvfs").read_text().strip() == "7"
        assert Path(f"/sys/bus/pci/devices/{pf_addr}/driver").resolve().name == "igb"
        for n in range(7):
            link = os.readlink(pf_dev / f"virtfn{n}")
            vf_addr = PciAddress.parse(Path(link).name)
            assert link == f"../{vf_addr}"  # a sibling in the same PCI bus directory
            assert vf_addr.bus == pf_addr.bus and vf_addr.domain == pf_addr.domain
            vf_dev = pf_dev.parent / str(vf_addr)
            assert os.readlink(vf_dev / "physfn") == f"../{pf_addr}"
            assert (vf_dev / "physfn").resolve() == pf_dev
            assert (vf_dev / "driver").resolve().name == "igbvf"
            assert any((vf_dev / "net").iterdir())
            assert (vf_dev / "iommu_group").exists()  # the emulated IOMMU gives groups
            seen.add(str(vf_addr))
        # 82576 VF layout: offset 0x80, stride 2 -> device 0x10, functions 0,2,4,6 then 0x11
        first = PciAddress.parse(Path(os.readlink(pf_dev / "virtfn0")).name)
        assert (first.slot, first.function) == (0x10, 0)
        assert not (pf_dev / "virtfn7").exists()
    assert len(seen) == 14


# ------------------------------------------------------------------------------------- scale

def test_4096_vfs_one_batch(nsim_pf: Callable[..., Any],
                            raw_vfs: Callable[[str], dict[int, Any]],
                            ip_link: Callable[[str], dict[str, Any]]) -> None:
    pf = nsim_pf(4096)
    changes = [VfChange(pf=pf.name, vf=i, mac=mac_for(1, i)) for i in range(4096)]
    t0 = time.monotonic()
    with Rtnl() as nl:
        results = nl.apply(changes)
        t_apply = time.monotonic() - t0
        assert len(results) == 4096
        bad = [r for r in results if not r.ok]
        assert not bad, bad[:3]
        t1 = time.monotonic()
        link = nl.read_link(pf.name)
        t_read = time.monotonic() - t1
    print(f"4096 VFs: apply {t_apply:.2f} s, read {t_read * 1000:.0f} ms")
    # pyvfmac's own read: all 4096, each with its MAC (ip truncates this list)
    assert link.num_vf == 4096 and link.missing_vfs == 0
    assert [v.vf for v in link.vfs] == list(range(4096))
    for v in link.vfs:
        assert v.mac == mac_for(1, v.vf), v
    # independent: the raw reader, VF by VF
    raw = raw_vfs(pf.name)
    assert sorted(raw) == list(range(4096))
    for i in range(4096):
        assert raw[i].mac == mac_for(1, i), (i, raw[i])
    # and iproute2 for the part it can print
    entries = ip_link(pf.name).get("vfinfo_list", [])
    assert entries, "ip printed no VF at all"
    for e in entries:
        assert e["address"] == mac_for(1, e["vf"])


def test_bad_entry_in_the_middle(nsim_pf: Callable[..., Any],
                                 raw_vfs: Callable[[str], dict[int, Any]],
                                 ip_link: Callable[[str], dict[str, Any]]) -> None:
    pf = nsim_pf(64)
    changes = [VfChange(pf=pf.name, vf=i, mac=mac_for(2, i)) for i in range(32)]
    changes.append(VfChange(pf=pf.name, vf=64, mac=mac_for(2, 64)))  # beyond the PF's 64 VFs
    changes += [VfChange(pf=pf.name, vf=i, mac=mac_for(2, i)) for i in range(32, 64)]
    with Rtnl() as nl:
        results = nl.apply(changes)
        link = nl.read_link(pf.name)
    assert len(results) == 65
    bad = [r for r in results if not r.ok]
    assert [(r.change.vf, r.errno) for r in bad] == [(64, errno.EINVAL)]
    assert all(r.ok for r in results if r.change.vf != 64)
    assert [r.change.vf for r in results] == [c.vf for c in changes]  # order kept
    raw = raw_vfs(pf.name)
    info = ip_link(pf.name)
    for i in range(64):
        assert link.vf(i).mac == mac_for(2, i)
        assert raw[i].mac == mac_for(2, i)
        assert ip_vf(info, i)["address"] == mac_for(2, i)
    assert 64 not in raw


def test_read_4096_vfs_every_setting(nsim_pf: Callable[..., Any],
                                     raw_vfs: Callable[[str], dict[int, Any]]) -> None:
    """The state read of a 4096-VF PF, where ``ip link show`` truncates: all 4096 VFs, each with
    what was set (VLAN, qos, protocol, booleans, link state, rates), compared with the raw reader."""
    pf = nsim_pf(4096)
    states = LINK_STATES  # index = IFLA_VF_LINK_STATE_AUTO / _ENABLE / _DISABLE

    def want(i: int) -> VfChange:
        return VfChange(pf=pf.name, vf=i, mac=mac_for(3, i), vlan=i % 4095 + 1, qos=i % 8,
                        vlan_proto="802.1ad" if i % 3 == 0 else "802.1Q",
                        spoofchk=i % 2 == 0, trust=i % 5 == 0, link_state=states[i % 3],
                        min_tx_rate=i % 7, max_tx_rate=1000 + i)

    changes = [want(i) for i in range(4096)]
    with Rtnl() as nl:
        check_results(nl.apply(changes))
        link = nl.read_link(pf.name)
    raw = raw_vfs(pf.name)
    assert len(link.vfs) == 4096 and len(raw) == 4096
    for c in changes:
        got = link.vf(c.vf)
        assert got == VfState(vf=c.vf, mac=c.mac or "", vlan=c.vlan or 0, qos=c.qos,
                              vlan_proto=c.vlan_proto, spoofchk=c.spoofchk, trust=c.trust,
                              link_state=c.link_state, min_tx_rate=c.min_tx_rate or 0,
                              max_tx_rate=c.max_tx_rate or 0), c.vf
        r = raw[c.vf]
        assert (r.mac, r.vlan, r.qos, r.spoofchk, r.trust) == (
            got.mac, got.vlan, got.qos, got.spoofchk, got.trust)
        assert r.vlan_proto == (0x88A8 if got.vlan_proto == "802.1ad" else 0x8100)
        assert states[r.link_state] == got.link_state
        assert (r.min_tx_rate, r.max_tx_rate) == (got.min_tx_rate, got.max_tx_rate)


def test_16_pfs_x_256_vfs_one_batch(nsim_pf: Callable[..., Any],
                                    raw_vfs: Callable[[str], dict[int, Any]]) -> None:
    pfs = [nsim_pf(256) for _ in range(16)]
    changes = [VfChange(pf=pf.name, vf=i, mac=mac_for(0x10 + n, i))
               for i in range(256) for n, pf in enumerate(pfs)]  # PFs interleaved
    t0 = time.monotonic()
    with Rtnl() as nl:
        results = nl.apply(changes)
        elapsed = time.monotonic() - t0
        assert len(results) == 4096 and all(r.ok for r in results), \
            [r for r in results if not r.ok][:3]
        links = {pf.name: nl.read_link(pf.name) for pf in pfs}
    print(f"16 x 256 VFs: apply {elapsed:.2f} s")
    for n, pf in enumerate(pfs):
        assert [v.mac for v in links[pf.name].vfs] == [mac_for(0x10 + n, i) for i in range(256)]
        raw = raw_vfs(pf.name)
        assert [raw[i].mac for i in range(256)] == [mac_for(0x10 + n, i) for i in range(256)]
