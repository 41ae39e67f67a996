"""pyvfmac.topology: the C sysfs walker on generated fake sysfs trees (tests/fakesysfs.py) that
copy the kernel's layout, and on this machine's real /sys."""

from __future__ import annotations

import copy
import dataclasses
import gc
import os
import pickle
import shutil
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import fakesysfs
import pytest
from fakesysfs import NETWORK_CLASS, NVME_CLASS, FakeSysfs

from pyvfmac import _lowlevel
from pyvfmac.errors import (
    InputError,
    NetdevNameError,
    PciAddressError,
    SysfsError,
    TopologyError,
)
from pyvfmac.sysfs import pci_device_dir
from pyvfmac.topology import Pf, PciFunction, Topology, Vf, read_pci_sysfs_root, scan
from pyvfmac.types import PciAddress

A = PciAddress.parse

IGB_PF = "0000:01:00.0"
MLX_PF = "0000:02:00.0"
BNXT_PF0 = "0000:03:00.0"
BNXT_PF1 = "0000:03:00.1"
NVME_PF = "0000:04:00.0"
VIRTIO = "0000:00:03.0"
SATA = "0000:00:1f.2"


def igb_vf(i: int) -> str:
    # 82576: First VF Offset 0x80, VF Stride 2
    return fakesysfs.vf_name(IGB_PF, i, offset=0x80, stride=2)


def mlx_vf(i: int) -> str:
    return fakesysfs.vf_name(MLX_PF, i, offset=2, stride=1)


def build_host(root: Path) -> FakeSysfs:
    """A host with PFs of several vendors, VFs with and without netdevs, VFs on vfio-pci and
    unbound, an SR-IOV NVMe controller, a virtio-net function and a SATA controller."""
    fs = FakeSysfs(root)
    fs.add_function("0000:00:00.0", vendor=0x8086, device=0x29C0, class_code=0x060000)
    for port in ("0000:00:01.0", "0000:00:01.1", "0000:00:02.0", "0000:00:02.1"):
        fs.add_bridge(port)
    fs.add_function(SATA, vendor=0x8086, device=0x2922, class_code=0x010601, driver="ahci",
                    iommu_group=3)
    virtio = fs.add_function(VIRTIO, vendor=0x1AF4, device=0x1041, driver="virtio-pci")
    # virtio-net: the netdev is one level down, <dev>/virtio0/net/eth0
    (virtio.path / "virtio0/net/eth0").mkdir(parents=True)
    os.symlink("../../devices/pci0000:00/0000:00:03.0/virtio0/net/eth0", root / "class/net/eth0")
    virtio.netdevs = ("eth0",)

    # Intel 82576 (igb): 7 VFs possible, 4 created
    fs.add_pf(IGB_PF, totalvfs=7, bridge="0000:00:01.0", vendor=0x8086, device=0x10C9,
              driver="igb", iommu_group=10, netdevs=("enp1s0",))
    fs.add_vf(IGB_PF, 0, igb_vf(0), device=0x10CA, driver="igbvf", iommu_group=11,
              netdevs=("enp1s0v0",))
    fs.add_vf(IGB_PF, 1, igb_vf(1), device=0x10CA, driver="vfio-pci", iommu_group=12)
    fs.add_vf(IGB_PF, 2, igb_vf(2), device=0x10CA, iommu_group=13)  # unbound
    fs.add_vf(IGB_PF, 3, igb_vf(3), device=0x10CA, driver="igbvf", iommu_group=14,
              netdevs=("enp1s0v3",))
    fs.set_numvfs(IGB_PF, 4)

    # Mellanox ConnectX-5 (mlx5): one PF function with two netdevs (a representor), 2 VFs
    fs.add_pf(MLX_PF, totalvfs=8, bridge="0000:00:01.1", vendor=0x15B3, device=0x1017,
              driver="mlx5_core", iommu_group=20, netdevs=("enp2s0f0np0", "eth9"))
    fs.add_vfs(MLX_PF, 0)  # numvfs 0 for now
    fs.add_vf(MLX_PF, 0, mlx_vf(0), device=0x1018, driver="mlx5_core", iommu_group=21,
              netdevs=("enp2s0f0v0",))
    fs.add_vf(MLX_PF, 1, mlx_vf(1), device=0x1018, driver="mlx5_core", iommu_group=22,
              netdevs=("enp2s0f0v1",))
    fs.set_numvfs(MLX_PF, 2)

    # Broadcom dual port: two PFs, SR-IOV capable, no VFs
    for pf, nd in ((BNXT_PF0, "ens3f0np0"), (BNXT_PF1, "ens3f1np1")):
        fs.add_pf(pf, totalvfs=64, bridge="0000:00:02.0", vendor=0x14E4, device=0x16D7,
                  driver="bnxt_en", iommu_group=30, netdevs=(nd,))

    # Samsung NVMe with SR-IOV: a PF and one VF, neither a network device
    fs.add_pf(NVME_PF, totalvfs=4, bridge="0000:00:02.1", vendor=0x144D, device=0xA824,
              class_code=NVME_CLASS, driver="nvme", iommu_group=40)
    fs.add_vf(NVME_PF, 0, "0000:04:00.1", device=0xA824, driver="nvme", iommu_group=41)
    fs.set_numvfs(NVME_PF, 1)

    # a netdev that is not a PCI device
    (root / "devices/virtual/net/dummy0").mkdir(parents=True)
    os.symlink("../../devices/virtual/net/dummy0", root / "class/net/dummy0")
    return fs


@pytest.fixture
def host(tmp_path: Path) -> FakeSysfs:
    return build_host(tmp_path / "sys")


@pytest.fixture
def topo(host: FakeSysfs) -> Topology:
    return scan(host.root)


# ---- every field, against what the generator wrote ----


def check_function(fn: PciFunction, exp: fakesysfs.Function) -> None:
    assert str(fn.address) == exp.name
    assert (fn.vendor, fn.device, fn.class_code) == (exp.vendor, exp.device, exp.class_code)
    assert fn.driver == exp.driver
    assert fn.iommu_group == exp.iommu_group
    assert fn.netdevs == tuple(sorted(exp.netdevs))
    assert fn.totalvfs == exp.totalvfs
    assert fn.numvfs == exp.numvfs
    assert (str(fn.physfn) if fn.physfn else None) == exp.physfn


def test_every_function_every_field(host: FakeSysfs, topo: Topology) -> None:
    assert [str(f.address) for f in topo.functions] == sorted(host.functions)
    for fn in topo.functions:
        check_function(fn, host.functions[str(fn.address)])
    assert topo.vanished == () and topo.anomalies == ()


def test_pfs_and_vfs(host: FakeSysfs, topo: Topology) -> None:
    assert [str(p.address) for p in topo.pfs] == [IGB_PF, MLX_PF, BNXT_PF0, BNXT_PF1, NVME_PF]
    for pf in topo.pfs:
        exp = host.functions[str(pf.address)]
        assert pf.netdevs == exp.netdevs
        assert (pf.numvfs, pf.totalvfs) == (exp.numvfs, exp.totalvfs)
        assert (pf.vendor, pf.device, pf.class_code) == (exp.vendor, exp.device, exp.class_code)
        assert pf.driver == exp.driver and pf.iommu_group == exp.iommu_group
        assert [str(v.address) for v in pf.vfs] == list(exp.vfs)
        for index, vf in enumerate(pf.vfs):
            vexp = host.functions[str(vf.address)]
            assert vf.index == index
            assert vf.pf == pf.address and vf.pf_netdevs == pf.netdevs
            assert vf.netdev == (vexp.netdevs[0] if vexp.netdevs else None)
            assert vf.driver == vexp.driver and vf.iommu_group == vexp.iommu_group
            assert (vf.vendor, vf.device, vf.class_code) == (
                vexp.vendor, vexp.device, vexp.class_code)
            assert pf.vf(index) is vf


def test_igb_vfs_exactly(topo: Topology) -> None:
    pf = topo.pf(IGB_PF)
    assert pf == Pf(
        address=A(IGB_PF), netdevs=("enp1s0",), numvfs=4, totalvfs=7, vendor=0x8086,
        device=0x10C9, class_code=NETWORK_CLASS, driver="igb", vfs=pf.vfs, iommu_group=10,
    )
    assert pf.vfs[1] == Vf(
        address=A("0000:01:10.2"), pf=A(IGB_PF), pf_netdevs=("enp1s0",), index=1, netdev=None,
        driver="vfio-pci", iommu_group=12, vendor=0x8086, device=0x10CA,
        class_code=NETWORK_CLASS,
    )
    assert [(v.index, str(v.address), v.netdev, v.driver) for v in pf.vfs] == [
        (0, "0000:01:10.0", "enp1s0v0", "igbvf"),
        (1, "0000:01:10.2", None, "vfio-pci"),
        (2, "0000:01:10.4", None, None),
        (3, "0000:01:10.6", "enp1s0v3", "igbvf"),
    ]
    with pytest.raises(TopologyError, match=r"0000:01:00\.0 \(enp1s0\): no VF 4"):
        pf.vf(4)


def test_vfs_property_and_pf_with_no_vfs(topo: Topology) -> None:
    assert len(topo.vfs) == 4 + 2 + 1
    bnxt = topo.pf(BNXT_PF1)
    assert bnxt.vfs == () and bnxt.numvfs == 0 and bnxt.totalvfs == 64


# ---- lookups ----


def test_vf_lookup_spellings(topo: Topology) -> None:
    vf = topo.vf("0000:01:10.2")
    assert topo.vf("01:10.2") is vf
    assert topo.vf(A("0000:01:10.2")) is vf
    attrs = {"domain": "0x0000", "bus": "0x01", "slot": "0x10", "function": "0x2"}
    assert topo.vf(PciAddress.from_attrs(attrs)) is vf
    assert (vf.pf_netdevs, vf.index) == (("enp1s0",), 1)
    assert str(vf.address) == "0000:01:10.2"


@pytest.mark.parametrize(
    ("addr", "message"),
    [
        ("0000:06:02.0",
         r"^0000:06:02\.0: not a PCI device \(no .*/bus/pci/devices/0000:06:02\.0\)$"),
        (IGB_PF, r"^0000:01:00\.0: not a VF \(it is an SR-IOV PF with 4 VFs\)$"),
        (VIRTIO, r"^0000:00:03\.0: not a VF \(it is a PCI function\)$"),
        (NVME_PF, r"^0000:04:00\.0: not a network device \(PCI class 0x010802\)$"),
        ("0000:04:00.1", r"^0000:04:00\.1: not a network device \(PCI class 0x010802\)$"),
        (SATA, r"^0000:00:1f\.2: not a network device \(PCI class 0x010601\)$"),
    ],
)
def test_vf_lookup_errors(topo: Topology, addr: str, message: str) -> None:
    with pytest.raises(TopologyError, match=message):
        topo.vf(addr)


def test_bad_addresses_are_input_errors(topo: Topology) -> None:
    for bad in ("0000:01:10.8", "1:2", "0000:01:20.0", "zz:00.0", "", "0000:01:10.2 x"):
        with pytest.raises(PciAddressError, match="PCI address"):
            topo.vf(bad)
    with pytest.raises(PciAddressError, match="expected a PciAddress"):
        topo.vf(12)  # type: ignore[arg-type]


def test_is_network(topo: Topology) -> None:
    assert topo.is_network(IGB_PF) and topo.is_network("0000:01:10.2")
    assert topo.is_network(VIRTIO)
    assert not topo.is_network(NVME_PF) and not topo.is_network("0000:04:00.1")
    assert not topo.is_network(SATA) and not topo.is_network("0000:00:01.0")
    with pytest.raises(TopologyError, match="not a PCI device"):
        topo.is_network("0000:77:00.0")


def test_device_netdevs(topo: Topology) -> None:
    assert topo.device_netdevs(MLX_PF) == ("enp2s0f0np0", "eth9")
    assert topo.device_netdevs("0000:01:10.0") == ("enp1s0v0",)
    assert topo.device_netdevs("0000:01:10.2") == ()
    assert topo.device_netdevs(VIRTIO) == ("eth0",)
    assert topo.device_netdevs(NVME_PF) == ()


def test_address_of_netdev(topo: Topology) -> None:
    assert topo.address_of_netdev("enp1s0") == A(IGB_PF)
    assert topo.address_of_netdev("enp1s0v3") == A("0000:01:10.6")
    assert topo.address_of_netdev("eth9") == A(MLX_PF)
    assert topo.address_of_netdev("eth0") == A(VIRTIO)
    with pytest.raises(TopologyError, match=r"^nosuch0: no such network device$"):
        topo.address_of_netdev("nosuch0")
    with pytest.raises(TopologyError, match=r"^dummy0: not a PCI network device"):
        topo.address_of_netdev("dummy0")


@pytest.mark.parametrize("bad", ["", "a" * 16, "../../etc", "a/b", "eth 0", "eth:0", ".", "..",
                                 "tab\tx", "nl\n"])
def test_bad_netdev_names_refused_before_any_lookup(topo: Topology, bad: str) -> None:
    for lookup in (topo.address_of_netdev, topo.pf_by_netdev, topo.find_vf_by_netdev):
        with pytest.raises(NetdevNameError, match="network device name"):
            lookup(bad)


def test_pf_by_netdev(topo: Topology) -> None:
    assert topo.pf_by_netdev("enp1s0") is topo.pf(IGB_PF)
    assert topo.pf_by_netdev("eth9") is topo.pf(MLX_PF)
    assert [v.netdev for v in topo.pf_by_netdev("enp2s0f0np0").vfs] == ["enp2s0f0v0", "enp2s0f0v1"]
    with pytest.raises(TopologyError, match=r"^enp1s0v0: not an SR-IOV PF \(0000:01:10\.0: VF 0 "
                                             r"of 0000:01:00\.0\)$"):
        topo.pf_by_netdev("enp1s0v0")
    with pytest.raises(TopologyError, match=r"^eth0: not an SR-IOV PF \(0000:00:03\.0: not SR-IOV"):
        topo.pf_by_netdev("eth0")
    with pytest.raises(TopologyError, match="no such network device"):
        topo.pf_by_netdev("nosuch0")


def test_pf_by_address(topo: Topology) -> None:
    assert topo.pf("03:00.1").netdevs == ("ens3f1np1",)
    with pytest.raises(TopologyError, match=r"^0000:01:10\.0: not an SR-IOV PF"):
        topo.pf("0000:01:10.0")
    with pytest.raises(TopologyError, match="not a PCI device"):
        topo.pf("0000:09:00.0")


def test_find_vf_by_netdev(topo: Topology) -> None:
    vf = topo.find_vf_by_netdev("enp2s0f0v1")
    assert (str(vf.address), vf.index) == ("0000:02:00.3", 1)
    assert vf.pf_netdevs == ("enp2s0f0np0", "eth9")
    with pytest.raises(TopologyError, match=r"^enp1s0: not a VF \(0000:01:00\.0 is not a VF"):
        topo.find_vf_by_netdev("enp1s0")
    with pytest.raises(TopologyError, match="not a PCI network device"):
        topo.find_vf_by_netdev("dummy0")


# ---- the snapshot follows the tree ----


def test_rebinding_a_vf_shows_in_the_next_scan(host: FakeSysfs) -> None:
    vf = igb_vf(0)
    host.remove_netdev(vf, "enp1s0v0")
    host.bind_driver(vf, "vfio-pci")
    topo = scan(host.root)
    assert topo.vf(vf).driver == "vfio-pci" and topo.vf(vf).netdev is None
    with pytest.raises(TopologyError, match="no such network device"):
        topo.address_of_netdev("enp1s0v0")
    host.bind_driver(vf, None)
    assert scan(host.root).vf(vf).driver is None


def test_many_vfs_in_index_order(tmp_path: Path) -> None:
    """Past the walker's first allocation (64) and with virtfn10 listed before virtfn9."""
    fs = FakeSysfs(tmp_path)
    fs.add_pf("0000:81:00.0", totalvfs=256, driver="ice", netdevs=("ens1",))
    fs.add_vfs("0000:81:00.0", 200, driver="iavf", netdev_fmt="ens1v{i}", first_group=100)
    topo = scan(tmp_path)
    pf = topo.pf_by_netdev("ens1")
    assert [v.index for v in pf.vfs] == list(range(200))
    assert [v.netdev for v in pf.vfs] == [f"ens1v{i}" for i in range(200)]
    assert [v.iommu_group for v in pf.vfs] == list(range(100, 300))
    assert [str(v.address) for v in pf.vfs] == list(fs.functions["0000:81:00.0"].vfs)
    assert topo.find_vf_by_netdev("ens1v150").index == 150


@pytest.mark.parametrize("threads", [2, 3, 8])
def test_parallel_readers_give_the_same_answer(tmp_path: Path, threads: int) -> None:
    """The functions split across readers, their netdev / virtfn lists merged: same Topology,
    and right against the generator."""
    fs = fakesysfs.build_scale(tmp_path, 9, 37)
    one = scan(tmp_path, threads=1)
    many = scan(tmp_path, threads=threads)
    assert many == one
    assert len(many.vfs) == 9 * 37
    for fn in many.functions:
        check_function(fn, fs.functions[str(fn.address)])
    for pf in many.pfs:
        assert [str(v.address) for v in pf.vfs] == list(fs.functions[str(pf.address)].vfs)
        assert [v.netdev for v in pf.vfs] == [
            f"enp{pf.address.bus}s0v{i}" if i % 2 == 0 else None for i in range(37)]


def test_thread_count_is_checked(tmp_path: Path) -> None:
    for bad in (-1, 9, True, 1.5):
        with pytest.raises(InputError, match="threads"):
            scan(tmp_path, threads=bad)  # type: ignore[arg-type]


def test_pci_domains(tmp_path: Path) -> None:
    fs = FakeSysfs(tmp_path, domain=0xC7D2)  # Hyper-V style domain
    fs.add_pf("c7d2:00:02.0", totalvfs=4, driver="mlx5_core", netdevs=("enP51154s1",))
    fs.add_vf("c7d2:00:02.0", 0, "c7d2:00:02.1", driver="mlx5_core")
    fs.add_function("10000:00:00.0", driver="vmd")  # VMD domain: over 16 bits
    topo = scan(tmp_path)
    assert topo.vf("c7d2:00:02.1").pf == PciAddress(0xC7D2, 0, 2, 0)
    assert topo.anomalies == ()
    assert topo.function("10000:00:00.0").address == PciAddress(0x10000, 0, 0, 0)


def test_vmd_domain_pf_and_vfs(tmp_path: Path) -> None:
    """Behind Intel VMD, Linux numbers the domain from 0x10000 and names the functions
    10000:01:00.0 (the kernel's %04x): the PF and its VFs are found, named and compared as
    such (libvirt takes any 32-bit domain too)."""
    fs = FakeSysfs(tmp_path, domain=0x10000)
    fs.add_pf("10000:01:00.0", totalvfs=4, driver="ice", netdevs=("ens1f0",))
    fs.add_vf("10000:01:00.0", 0, "10000:01:01.0", driver="iavf", netdevs=("ens1f0v0",))
    fs.add_vf("10000:01:00.0", 1, "10000:01:01.1", driver="iavf")
    fs.add_pf("0000:02:00.0", totalvfs=1, driver="ice")
    topo = scan(tmp_path)
    assert topo.anomalies == ()
    pf = topo.pf("10000:01:00.0")
    assert pf.address == PciAddress(0x10000, 1, 0, 0) and str(pf.address) == "10000:01:00.0"
    assert [str(vf.address) for vf in pf.vfs] == ["10000:01:01.0", "10000:01:01.1"]
    vf = topo.vf(PciAddress.parse("10000:01:01.0"))
    assert vf.pf == pf.address and vf.netdev == "ens1f0v0"
    assert [str(p.address) for p in sorted(topo.pfs, key=lambda p: p.address)] == [
        "0000:02:00.0", "10000:01:00.0"]
    assert pci_device_dir(str(tmp_path), vf.address) == str(
        tmp_path / "bus" / "pci" / "devices" / "10000:01:01.0")
    assert os.path.isdir(pci_device_dir(str(tmp_path), vf.address))


# ---- disappearing devices and hostile trees ----


def test_device_removed_leaves_dangling_link(host: FakeSysfs) -> None:
    vf = igb_vf(2)
    host.remove(vf)  # bus/pci/devices/X and the PF's virtfn2 now dangle
    topo = scan(host.root)
    assert topo.vanished == (vf,)
    assert topo.anomalies == ()
    assert [v.index for v in topo.pf(IGB_PF).vfs] == [0, 1, 3]
    with pytest.raises(TopologyError, match="not a PCI device"):
        topo.vf(vf)


def test_device_removed_entirely(host: FakeSysfs) -> None:
    host.remove(igb_vf(2), keep_bus_link=False)
    topo = scan(host.root)
    assert topo.vanished == ()
    assert topo.anomalies == (
        "0000:01:00.0: virtfn2 -> 0000:01:10.4: no such PCI function: left out",
    )


def test_scan_while_vfs_come_and_go(tmp_path: Path) -> None:
    """VFs destroyed and recreated during scans (each directory appears and goes at once, as
    kernfs does it): every scan completes, and every VF it returns is whole."""
    fs = FakeSysfs(tmp_path / "sys")
    pf = "0000:05:00.0"
    fs.add_pf(pf, totalvfs=64, driver="igb", netdevs=("enp5s0",))
    fs.add_vfs(pf, 32, driver="igbvf", netdev_fmt="enp5s0v{i}", first_group=50)
    stop = threading.Event()
    errors: list[BaseException] = []
    rounds = [0]

    def recreate(i: int) -> None:
        name = fs.functions[pf].vfs[i]
        path = fs.functions[name].path
        new = tmp_path / "staging" / name
        new.mkdir(parents=True)
        for attr in ("vendor", "device", "class", "uevent"):
            (new / attr).write_text(_attr(fs, name, attr))
        os.symlink(f"../{pf}", new / "physfn")
        os.symlink(os.path.relpath(fs.root / f"kernel/iommu_groups/{50 + i}", path),
                   new / "iommu_group")
        os.symlink(os.path.relpath(fs.root / "bus/pci/drivers/igbvf", path), new / "driver")
        (new / "net" / f"enp5s0v{i}").mkdir(parents=True)
        gone = tmp_path / "trash" / name
        gone.parent.mkdir(exist_ok=True)
        os.rename(path, gone)
        shutil.rmtree(gone)
        os.rename(new, path)

    def churn() -> None:
        try:
            while not stop.is_set():
                recreate(rounds[0] % 32)
                rounds[0] += 1
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    thread = threading.Thread(target=churn)
    thread.start()
    try:
        for _ in range(80):
            topo = scan(fs.root)
            assert topo.anomalies == ()
            got = topo.pf(pf).vfs
            assert len(got) + len(topo.vanished) >= 31
            for vf in got:
                assert (vf.vendor, vf.device, vf.class_code) == (0x8086, 0x10CA, NETWORK_CLASS)
                assert vf.driver == "igbvf"
                assert vf.iommu_group == 50 + vf.index
                assert vf.netdev == f"enp5s0v{vf.index}"
                assert vf.pf_netdevs == ("enp5s0",)
    finally:
        stop.set()
        thread.join()
    assert not errors
    assert rounds[0] > 0


def _attr(fs: FakeSysfs, name: str, attr: str) -> str:
    fn = fs.functions[name]
    if attr == "uevent":
        return (f"DRIVER=igbvf\nPCI_CLASS={fn.class_code:X}\n"
                f"PCI_ID={fn.vendor:04X}:{fn.device:04X}\nPCI_SLOT_NAME={name}\n")
    value = {"vendor": fn.vendor, "device": fn.device, "class": fn.class_code}[attr]
    return f"0x{value:04x}\n" if attr != "class" else f"0x{value:06x}\n"


def test_hostile_names(host: FakeSysfs) -> None:
    root = host.root
    vf0, vf3 = igb_vf(0), igb_vf(3)
    # netdev entries: too long for IFNAMSIZ, a space, odd (non-UTF-8) bytes, 255 bytes
    for name in (b"x" * 16, b"has space", b"e\xffth\x01", b"y" * 255):
        os.mkdir(os.fsencode(host.functions[vf3].path / "net") + b"/" + name)
    # bus entries that are not PCI addresses
    for name in (b"not-a-device", b"0000:01:10.8", b"00000:01:00.0", b"0000:01:00.0x",
                 b"0000:1:00.0", b"0000:01:20.0", b"0000:01:00.A", b"z" * 255, b"\xff\xfe"):
        os.symlink(b"../../../devices/pci0000:00/nowhere", os.fsencode(root / "bus/pci/devices")
                   + b"/" + name)
    # links whose targets are not what they should be
    host.link_raw(igb_vf(1), "iommu_group", "../../../kernel/iommu_groups/" + "9" * 3000)
    host.link_raw(igb_vf(2), "iommu_group", "../../../kernel/iommu_groups/twelve")
    host.link_raw(IGB_PF, "virtfn9", "../" + "0" * 4000)
    host.link_raw(IGB_PF, "virtfn01", "../0000:01:10.0")  # leading zero: not a kernel name
    host.link_raw(MLX_PF, "virtfn7", b"../\xff\n")
    host.write_raw(vf0, "uevent", "DRIVER=" + "d" * 100 + "\nPCI_CLASS=20000\nPCI_ID=8086:10CA\n")

    topo = scan(root)
    assert topo.device_netdevs(vf3) == ("enp1s0v3",)
    assert topo.vf(vf3).netdev == "enp1s0v3"
    assert topo.vf(vf0).driver is None
    assert topo.vf(igb_vf(1)).iommu_group is None and topo.vf(igb_vf(2)).iommu_group is None
    assert [v.index for v in topo.pf(IGB_PF).vfs] == [0, 1, 2, 3]
    assert len(topo.pf(MLX_PF).vfs) == 2
    notes = "\n".join(topo.anomalies)
    for expected in (
        f"{vf3}: a net/ entry is too long for a network device name: left out",
        f"{vf3}: net/'has space' is not a valid network device name: left out",
        f"{vf3}: net/'e\\udcffth\\x01' is not a valid network device name: left out",
        f"{vf0}: driver link unreadable or its name too long: driver unknown",
        f"{igb_vf(1)}: iommu_group link does not end in a group number: group unknown",
        f"{igb_vf(2)}: iommu_group link does not end in a group number: group unknown",
        f"{IGB_PF}: a virtfn entry is not a link to a PCI function: left out",
        f"{MLX_PF}: a virtfn entry is not a link to a PCI function: left out",
        "bus/pci/devices/'not-a-device': not a PCI address: ignored",
        "bus/pci/devices/'0000:01:10.8': not a PCI address: ignored",
        "bus/pci/devices/'00000:01:00.0': not a PCI address: ignored",
        "bus/pci/devices/'0000:01:20.0': not a PCI address: ignored",
        "bus/pci/devices/'\\udcff\\udcfe': not a PCI address: ignored",
        "bus/pci/devices: an entry with an over-long name: ignored",
    ):
        assert expected in notes
    assert sum(n.startswith("bus/pci/devices") for n in topo.anomalies) == 9


def test_non_utf8_netdev_name_is_kept(host: FakeSysfs) -> None:
    vf3 = igb_vf(3)
    host.remove_netdev(vf3, "enp1s0v3")
    os.mkdir(os.fsencode(host.functions[vf3].path / "net") + b"/e\xffth")
    topo = scan(host.root)
    name = os.fsdecode(b"e\xffth")
    assert topo.vf(vf3).netdev == name
    assert topo.find_vf_by_netdev(name).address == A(vf3)


def test_inconsistent_links_are_left_out(host: FakeSysfs) -> None:
    # a VF whose physfn names the other PF
    host.link_raw(igb_vf(3), "physfn", f"../../0000:00:01.1/{MLX_PF}")
    # a VF whose physfn names a PF that does not list it (an orphan)
    host.add_function("0000:01:11.0", device=0x10CA, driver="igbvf", parent="0000:00:01.0")
    host.link_raw("0000:01:11.0", "physfn", f"../{IGB_PF}")
    # a virtfn link to a function that is not a VF
    host.link_raw(MLX_PF, "virtfn5", "../../0000:00:02.0/0000:03:00.1")
    topo = scan(host.root)
    assert [v.index for v in topo.pf(IGB_PF).vfs] == [0, 1, 2]
    assert set(topo.anomalies) == {
        f"{IGB_PF}: virtfn3 -> {igb_vf(3)}: that function's physfn names another PF: left out",
        f"{igb_vf(3)}: physfn names {MLX_PF}, which does not list it as a virtfn: not taken as "
        "a VF",
        "0000:01:11.0: physfn names 0000:01:00.0, which does not list it as a virtfn: not taken "
        "as a VF",
        f"{MLX_PF}: virtfn5 -> {BNXT_PF1}: that function has no physfn link: left out",
    }
    with pytest.raises(TopologyError, match=r"not a VF \(it is a VF of 0000:02:00\.0 that its PF "
                                             r"does not list"):
        topo.vf(igb_vf(3))


def test_uevent_missing_or_foreign_falls_back_to_files(host: FakeSysfs) -> None:
    vf0, vf1 = igb_vf(0), igb_vf(1)
    (host.functions[vf0].path / "uevent").unlink()
    # a uevent that belongs to another device is not believed
    host.write_raw(vf1, "uevent", f"DRIVER=e1000e\nPCI_CLASS=20000\nPCI_ID=1234:5678\n"
                                  f"PCI_SLOT_NAME={IGB_PF}\n")
    host.write_raw(IGB_PF, "uevent", "garbage without ids\n")
    topo = scan(host.root)
    assert topo.anomalies == ()
    for name in (vf0, vf1, IGB_PF):
        check_function(topo.function(name), host.functions[name])


def test_unreadable_ids_and_sriov_files(host: FakeSysfs) -> None:
    sata = host.functions[SATA]
    (sata.path / "uevent").unlink()
    host.write_raw(SATA, "class", "0xnothex\n")
    host.write_raw(BNXT_PF0, "sriov_totalvfs", "lots\n")
    (host.functions[BNXT_PF1].path / "sriov_numvfs").unlink()
    topo = scan(host.root)
    assert "0000:00:1f.2: vendor / device / class unreadable: ignored" in topo.anomalies
    with pytest.raises(TopologyError, match="not a PCI device"):
        topo.function(SATA)
    assert topo.pf(BNXT_PF0).totalvfs == 0
    assert topo.pf(BNXT_PF1).numvfs == 0
    assert sum("sriov_totalvfs / sriov_numvfs" in n for n in topo.anomalies) == 2


def test_net_or_vendor_of_the_wrong_kind(host: FakeSysfs) -> None:
    # a net that is a file, a vendor that is a directory
    (host.functions[igb_vf(2)].path / "net").write_text("x")
    sata = host.functions[SATA]
    (sata.path / "uevent").unlink()
    (sata.path / "vendor").unlink()
    (sata.path / "vendor").mkdir()
    topo = scan(host.root)
    assert topo.vf(igb_vf(2)).netdev is None
    assert "0000:00:1f.2: vendor / device / class unreadable: ignored" in topo.anomalies


# ---- the root, errors ----


def test_scan_errors_name_the_path(tmp_path: Path) -> None:
    with pytest.raises(SysfsError) as info:
        scan(tmp_path / "missing")
    assert info.value.errno == 2
    assert str(info.value) == (f"cannot scan PCI devices: {tmp_path}/missing: No such file or "
                               "directory (ENOENT)")
    (tmp_path / "bus/pci").mkdir(parents=True)
    (tmp_path / "bus/pci/devices").write_text("")
    with pytest.raises(SysfsError, match=r"bus/pci/devices: Not a directory \(ENOTDIR\)"):
        scan(tmp_path)
    for bad in ("", "a\0b", 5):
        with pytest.raises(InputError, match="sysfs root"):
            scan(bad)  # type: ignore[arg-type]


def test_empty_tree(tmp_path: Path) -> None:
    FakeSysfs(tmp_path)
    topo = scan(str(tmp_path))
    assert topo.functions == () and topo.pfs == () and topo.vfs == ()


def test_sysfs_root_from_environment(host: FakeSysfs, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PYVFMAC_SYSFS_ROOT", raising=False)
    assert read_pci_sysfs_root() == "/sys"
    monkeypatch.setenv("PYVFMAC_SYSFS_ROOT", str(host.root))
    assert read_pci_sysfs_root() == str(host.root)
    assert scan().pf_by_netdev("enp1s0").numvfs == 4
    monkeypatch.setenv("PYVFMAC_SYSFS_ROOT", "")
    assert read_pci_sysfs_root() == "/sys"


def test_topology_values_are_frozen(topo: Topology) -> None:
    with pytest.raises(AttributeError):
        topo.pfs = ()  # type: ignore[misc]
    with pytest.raises(AttributeError):
        topo.pfs[0].numvfs = 9  # type: ignore[misc]


# ---- values built on first look, from what the scan read ----


def _rebuilt(value: Any) -> Any:
    """The same value built through its class's own constructor (with its checks)."""
    kwargs = {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
    if isinstance(value, Pf):
        kwargs["vfs"] = tuple(_rebuilt(vf) for vf in value.vfs)
    for key in ("address", "pf", "physfn"):
        if kwargs.get(key) is not None:
            a = kwargs[key]
            kwargs[key] = PciAddress(a.domain, a.bus, a.slot, a.function)
    return type(value)(**kwargs)


def test_scanned_values_are_like_constructed_ones(topo: Topology) -> None:
    """scan() builds its values without the dataclass constructors: they must be exactly what
    the constructors give, in type, equality, hash, repr, order and immutability."""
    values: list[Any] = [*topo.functions, *topo.pfs, *topo.vfs]
    values += [v.address for v in topo.functions]
    values += [fn.physfn for fn in topo.functions if fn.physfn is not None]
    assert len(values) > 40
    for value in values:
        twin = _rebuilt(value)
        assert type(value) is type(twin) and type(value).__module__.startswith("pyvfmac.")
        assert value == twin and twin == value and hash(value) == hash(twin)
        assert repr(value) == repr(twin)
        assert dataclasses.astuple(value) == dataclasses.astuple(twin)
        assert dataclasses.replace(value) == value
        name = dataclasses.fields(value)[0].name
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(value, name, None)
        with pytest.raises(dataclasses.FrozenInstanceError):
            delattr(value, name)
        assert not hasattr(value, "__dict__")
        assert copy.deepcopy(value) == value
        assert pickle.loads(pickle.dumps(value)) == value
    addrs = [fn.address for fn in topo.functions]
    assert sorted(reversed(addrs)) == addrs == sorted(A(str(a)) for a in addrs)
    assert topo.vf(igb_vf(3)).pf is topo.pf(IGB_PF).address  # one PciAddress per function


def test_first_look_shows_the_scan_not_a_later_state(host: FakeSysfs) -> None:
    """Values built after the tree changed still describe it as it was at scan()."""
    before = scan(host.root)
    host.bind_driver(igb_vf(1), "igbvf")
    host.remove(igb_vf(3), keep_bus_link=False)
    shutil.rmtree(host.functions[SATA].path)
    after = scan(host.root)
    assert [v.index for v in before.pf(IGB_PF).vfs] == [0, 1, 2, 3]
    assert before.vf(igb_vf(1)).driver == "vfio-pci"
    assert before.function(SATA).driver == "ahci"
    assert before.vanished == ()
    assert [v.index for v in after.pf(IGB_PF).vfs] == [0, 1, 2]
    assert after.vf(igb_vf(1)).driver == "igbvf"
    assert after.vanished == (SATA,)
    assert before != after


LOOKS: dict[str, Callable[[Topology], object]] = {
    "functions": lambda t: [str(f.address) for f in t.functions],
    "pfs": lambda t: [(str(p.address), len(p.vfs)) for p in t.pfs],
    "vanished": lambda t: t.vanished,
    "anomalies": lambda t: t.anomalies,
    "vfs": lambda t: len(t.vfs),
    "vf": lambda t: t.vf(igb_vf(3)).netdev,
    "pf": lambda t: t.pf(MLX_PF).netdevs,
    "function": lambda t: t.function(SATA).driver,
    "is_network": lambda t: t.is_network(VIRTIO),
    "device_netdevs": lambda t: t.device_netdevs(VIRTIO),
    "address_of_netdev": lambda t: str(t.address_of_netdev("eth9")),
    "pf_by_netdev": lambda t: t.pf_by_netdev("enp1s0").numvfs,
    "find_vf_by_netdev": lambda t: t.find_vf_by_netdev("enp1s0v0").index,
    "lookup error": lambda t: pytest.raises(TopologyError, t.pf, SATA).value.args,
    "repr": repr,
    "hash": hash,
    "equality": lambda t: t == scan(t.sysfs_root),
    "copy": lambda t: copy.copy(t).pfs,
    "deepcopy": lambda t: copy.deepcopy(t).functions,
    "pickle": lambda t: pickle.loads(pickle.dumps(t)).functions,
    "fields": lambda t: [getattr(t, f.name) for f in dataclasses.fields(t) if f.compare],
    "replace": lambda t: dataclasses.replace(t, sysfs_root="/x").functions,
}


@pytest.mark.parametrize("look", LOOKS)
def test_any_first_look_gives_the_full_answer(host: FakeSysfs, look: str) -> None:
    """Whatever a fresh scan is first asked, the answer is the one a fully built (and then
    re-constructed) Topology gives."""
    reference = scan(host.root)
    built = Topology(sysfs_root=reference.sysfs_root, functions=reference.functions,
                     pfs=reference.pfs, vanished=reference.vanished,
                     anomalies=reference.anomalies)
    assert LOOKS[look](scan(host.root)) == LOOKS[look](built)


def test_two_unlooked_scans_compare_and_hash_equal(host: FakeSysfs) -> None:
    one, two = scan(host.root), scan(host.root)
    assert one == two and hash(one) == hash(two)
    host.bind_driver(igb_vf(2), "igbvf")
    three = scan(host.root)
    assert three != one


def test_first_look_from_many_threads_builds_once(tmp_path: Path) -> None:
    """Threads looking at a fresh scan at once all get the same values (built once)."""
    fakesysfs.build_scale(tmp_path, 8, 64)
    for _ in range(5):
        topo = scan(tmp_path)
        start = threading.Barrier(6)
        got: list[object] = []

        def look() -> None:
            start.wait()
            got.append(topo.pfs)

        threads = [threading.Thread(target=look) for _ in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(got) == 6 and all(g is got[0] for g in got)
        assert len(topo.pfs) == 8 and len(topo.vfs) == 8 * 64


def test_constructed_topology_lookups_and_unknown_attributes(topo: Topology) -> None:
    """A Topology made by hand gets its lookup tables on first use, as a scanned one does; an
    unknown attribute is still an AttributeError naming it."""
    made = Topology(sysfs_root=topo.sysfs_root, functions=topo.functions, pfs=topo.pfs)
    assert made.vf(igb_vf(3)) is topo.vf(igb_vf(3))
    assert made.pf_by_netdev("eth9").address == A(MLX_PF)
    assert made.address_of_netdev("eth0") == A(VIRTIO)
    with pytest.raises(TopologyError, match="not a PCI device"):
        made.function("0000:09:00.0")
    for t in (made, topo, scan(topo.sysfs_root)):
        with pytest.raises(AttributeError, match="'Topology' object has no attribute 'nope'"):
            t.nope  # type: ignore[attr-defined]  # noqa: B018
        assert not hasattr(t, "_functions")
    empty = Topology(sysfs_root="/nowhere", functions=(), pfs=())
    with pytest.raises(TopologyError, match="0000:00:00.0: not a PCI device"):
        empty.vf("0000:00:00.0")


def test_first_look_pauses_gc_and_leaves_no_cycles(host: FakeSysfs) -> None:
    """The values are built with the cycle collector paused: it is back as it was after, and
    nothing built needs it (no reference cycles: all freed by reference counting)."""
    gc.collect()
    topo = scan(host.root)
    assert len(topo.functions) == len(host.functions) and gc.isenabled()
    topo.vf(igb_vf(0))
    del topo
    assert gc.collect() == 0
    gc.disable()
    try:
        assert scan(host.root).pfs
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_packed_records_read_alike_by_rows_and_columns(host: FakeSysfs) -> None:
    """The builder reads the walker's records column by column; the named-tuple view reads them
    row by row: both give every field of every record, hostile entries included."""
    os.symlink("../../../devices/nowhere", host.root / "bus/pci/devices/not-a-device")
    (host.functions[SATA].path / "uevent").unlink()
    host.write_raw(SATA, "class", "0xnothex\n")
    packed = _lowlevel.topo_scan_packed(str(host.root))
    rows = _lowlevel.func_rows(packed)
    raw = _lowlevel.unpack_scan(packed)
    assert len(rows) == len(raw.funcs) == len(host.functions) + 1
    assert list(zip(*_lowlevel.func_columns(packed))) == rows == [r[1:] for r in raw.funcs]
    assert [_lowlevel.func_name(packed, i) for i in range(len(rows))] == [
        _lowlevel.cstr(r.name) for r in raw.funcs]
    assert raw.funcs[-1].name.rstrip(b"\0") == b"not-a-device"
    assert raw.funcs[-1].flags & _lowlevel.FN_BADNAME
    col = _lowlevel.FUNC_COLUMN
    assert [r[col["driver"]] for r in rows] == [r.driver for r in raw.funcs]
    assert [r[col["iommu_group"]] for r in rows] == [r.iommu_group for r in raw.funcs]
    assert -1 in [r[col["totalvfs"]] for r in rows]  # signed fields stay signed
    assert raw.virtfns == [_lowlevel.RawVirtfn._make(v) for v in _lowlevel.virtfn_rows(packed)]
    assert raw.netdevs == _lowlevel.netdev_names(packed)
    assert b"enp1s0" in raw.netdevs
    empty = _lowlevel.PackedScan(b"", b"", b"")
    assert _lowlevel.func_columns(empty) == [[] for _ in range(22)]
    assert _lowlevel.func_rows(empty) == [] and _lowlevel.unpack_scan(empty).funcs == []


# ---- this machine's real sysfs ----


def _read(path: str) -> str:
    with open(path) as f:
        return f.read().strip()


def test_real_sysfs_agrees_with_its_files() -> None:
    """Whatever PCI devices this machine has: every field agrees with the files and links."""
    base = "/sys/bus/pci/devices"
    if not os.path.isdir(base):
        pytest.skip("no PCI bus in this machine's sysfs")
    topo = scan("/sys")
    names = sorted(os.listdir(base))
    assert [str(f.address) for f in topo.functions] == names
    for fn in topo.functions:
        d = f"{base}/{fn.address}"
        assert fn.vendor == int(_read(f"{d}/vendor"), 16)
        assert fn.device == int(_read(f"{d}/device"), 16)
        assert fn.class_code == int(_read(f"{d}/class"), 16)
        drv = f"{d}/driver"
        assert fn.driver == (os.path.basename(os.readlink(drv)) if os.path.islink(drv) else None)
        grp = f"{d}/iommu_group"
        assert fn.iommu_group == (int(os.path.basename(os.readlink(grp)))
                                  if os.path.islink(grp) else None)
        expected = set(os.listdir(f"{d}/net")) if os.path.isdir(f"{d}/net") else set()
        for sub in os.listdir(d):
            if sub.startswith("virtio") and os.path.isdir(f"{d}/{sub}/net"):
                expected |= set(os.listdir(f"{d}/{sub}/net"))
        assert set(fn.netdevs) == expected
        assert fn.is_pf == os.path.exists(f"{d}/sriov_totalvfs")
    for name in os.listdir("/sys/class/net"):
        target = os.path.realpath(f"/sys/class/net/{name}")
        if "/pci" in target and not target.startswith("/sys/devices/virtual"):
            assert str(topo.address_of_netdev(name)) in target
