"""pyvfmac.topology on a real kernel: the guest's two igb PFs with 7 VFs each. Every field of
the scan is compared with what ``readlink`` / ``open().read()`` give, before and after binding a
VF to vfio-pci and after undoing it."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from pyvfmac.errors import TopologyError
from pyvfmac.topology import PciFunction, Topology, scan
from pyvfmac.types import PciAddress

DEVICES = "/sys/bus/pci/devices"


def _read(path: str) -> str:
    with open(path) as f:
        return f.read().strip()


def _link_name(path: str) -> str | None:
    try:
        return os.path.basename(os.readlink(path))
    except FileNotFoundError:
        return None


def _netdevs(dev: str) -> tuple[str, ...]:
    try:
        return tuple(sorted(os.listdir(f"{dev}/net")))
    except FileNotFoundError:
        return ()


def check_function(fn: PciFunction) -> None:
    """One PCI function against its sysfs files and links."""
    dev = f"{DEVICES}/{fn.address}"
    assert fn.vendor == int(_read(f"{dev}/vendor"), 16), dev
    assert fn.device == int(_read(f"{dev}/device"), 16), dev
    assert fn.class_code == int(_read(f"{dev}/class"), 16), dev
    assert fn.driver == _link_name(f"{dev}/driver"), dev
    group = _link_name(f"{dev}/iommu_group")
    assert fn.iommu_group == (int(group) if group is not None else None), dev
    if not any(n.startswith("virtio") for n in os.listdir(dev)):
        assert fn.netdevs == _netdevs(dev), dev
    physfn = _link_name(f"{dev}/physfn")
    assert fn.physfn == (PciAddress.parse(physfn) if physfn else None), dev
    if os.path.exists(f"{dev}/sriov_totalvfs"):
        assert fn.totalvfs == int(_read(f"{dev}/sriov_totalvfs")), dev
        assert fn.numvfs == int(_read(f"{dev}/sriov_numvfs")), dev
    else:
        assert fn.totalvfs is None and fn.numvfs is None, dev


def check_igb(topo: Topology, pf_names: tuple[str, ...]) -> None:
    """Both igb PFs and all their VFs, every field, and the reverse lookups."""
    assert topo.vanished == () and topo.anomalies == ()
    assert sorted(str(f.address) for f in topo.functions) == sorted(os.listdir(DEVICES))
    for fn in topo.functions:
        check_function(fn)
    for name in pf_names:
        pf_addr = os.path.basename(os.readlink(f"/sys/class/net/{name}/device"))
        pf = topo.pf_by_netdev(name)
        assert str(pf.address) == pf_addr
        assert topo.address_of_netdev(name) == pf.address
        dev = f"{DEVICES}/{pf_addr}"
        assert name in pf.netdevs and pf.netdevs == _netdevs(dev)
        assert pf.driver == "igb" == _link_name(f"{dev}/driver")
        assert (pf.vendor, pf.device) == (0x8086, 0x10C9)
        assert pf.totalvfs == 7 == int(_read(f"{dev}/sriov_totalvfs"))
        assert pf.numvfs == 7 == int(_read(f"{dev}/sriov_numvfs"))
        links = sorted((int(e[6:]), _link_name(f"{dev}/{e}"))
                       for e in os.listdir(dev) if e.startswith("virtfn"))
        assert [(v.index, str(v.address)) for v in pf.vfs] == links
        assert len(pf.vfs) == 7
        for vf in pf.vfs:
            vdev = f"{DEVICES}/{vf.address}"
            assert _link_name(f"{vdev}/physfn") == pf_addr
            assert vf.pf == pf.address and vf.pf_netdevs == pf.netdevs
            assert (vf.vendor, vf.device, vf.class_code) == (
                int(_read(f"{vdev}/vendor"), 16), int(_read(f"{vdev}/device"), 16),
                int(_read(f"{vdev}/class"), 16))
            assert vf.device == 0x10CA
            assert vf.driver == _link_name(f"{vdev}/driver")
            group = _link_name(f"{vdev}/iommu_group")
            assert vf.iommu_group == (int(group) if group is not None else None)
            netdevs = _netdevs(vdev)
            assert vf.netdev == (netdevs[0] if netdevs else None)
            assert topo.vf(vf.address) == vf
            assert topo.vf(f"{vf.address.bus:02x}:{vf.address.slot:02x}."
                           f"{vf.address.function:x}") == vf
            assert topo.is_network(vf.address)
            if vf.netdev is not None:
                assert topo.find_vf_by_netdev(vf.netdev) == vf
                assert topo.address_of_netdev(vf.netdev) == vf.address
                assert _link_name(f"/sys/class/net/{vf.netdev}/device") == str(vf.address)


def _wait(what: str, check: Callable[[], bool], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.05)


def _bind(pci: str, driver: str) -> None:
    dev = Path(DEVICES) / pci
    if (dev / "driver").exists():
        (dev / "driver" / "unbind").write_text(pci)
    (dev / "driver_override").write_text(driver)
    Path("/sys/bus/pci/drivers_probe").write_text(pci)
    _wait(f"{pci} on {driver}", lambda: _link_name(f"{dev}/driver") == driver)


def _unbind_override(pci: str) -> None:
    dev = Path(DEVICES) / pci
    if (dev / "driver").exists():
        (dev / "driver" / "unbind").write_text(pci)
    (dev / "driver_override").write_text("\n")
    Path("/sys/bus/pci/drivers_probe").write_text(pci)
    _wait(f"{pci} back on igbvf with a netdev",
          lambda: _link_name(f"{dev}/driver") == "igbvf" and bool(_netdevs(str(dev))))


def test_scan_agrees_with_sysfs(igb_pfs: tuple[str, ...]) -> None:
    check_igb(scan("/sys"), igb_pfs)


def test_scan_follows_a_vf_onto_vfio_and_back(igb_pfs: tuple[str, ...], igb_clean: None) -> None:
    before = scan("/sys")
    check_igb(before, igb_pfs)
    vf = before.pf_by_netdev(igb_pfs[0]).vf(1)
    assert vf.driver == "igbvf" and vf.netdev is not None
    old_netdev = vf.netdev
    pci = str(vf.address)

    _bind(pci, "vfio-pci")
    during = scan("/sys")
    check_igb(during, igb_pfs)
    moved = during.vf(pci)
    assert moved.driver == "vfio-pci" and moved.netdev is None
    assert moved.iommu_group is not None and moved.iommu_group == vf.iommu_group
    assert os.path.exists(f"/dev/vfio/{moved.iommu_group}")
    assert (moved.index, moved.pf) == (1, vf.pf)
    with pytest.raises(TopologyError):
        during.find_vf_by_netdev(old_netdev)

    _unbind_override(pci)
    after = scan("/sys")
    check_igb(after, igb_pfs)
    back = after.vf(pci)
    assert back.driver == "igbvf" and back.netdev is not None
    assert after.find_vf_by_netdev(back.netdev) == back
