"""SR-IOV topology scan: the C walker (pyvfmac.topology.scan) against a straightforward
pure-Python pathlib implementation of the same output, on fake sysfs trees on tmpfs with
64 PFs x 64 VFs (4096 VFs) and 128 x 64 (8192).

Run: ``pytest bench/bench_topology.py`` (pytest-benchmark). Not a timed assertion: min and
median times, the pathlib / C ratio and the 8192 / 4096 ratio are printed at the end. Both
implementations must produce equal Topology objects; that part is asserted.

pyvfmac is timed three ways: ``c_raw`` the C walk with its records unpacked into named tuples,
``c`` the public ``scan()`` (the walk, its records kept; the typed values are built on first
look), ``c_built`` ``scan()`` plus that first look (every PciFunction / Pf / Vf built).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from pyvfmac import _lowlevel
from pyvfmac.errors import InputError, PciAddressError
from pyvfmac.topology import Pf, PciFunction, Topology, Vf, scan
from pyvfmac.types import PciAddress, validate_netdev_name

SIZES = (4096, 8192)


# ---- the pure-Python reference: pathlib, one function at a time ----


def _read_hex(path: Path) -> int:
    return int(path.read_text().strip(), 16)


def _link_name(path: Path) -> str | None:
    try:
        return path.readlink().name
    except FileNotFoundError:
        return None


def _netdevs(dev: Path, driver: str | None) -> tuple[str, ...]:
    try:
        names = [p.name for p in (dev / "net").iterdir()]
    except (FileNotFoundError, NotADirectoryError):
        if driver != "virtio-pci":
            return ()
        names = [p.name for p in dev.glob("virtio*/net/*")]  # virtio-net: one level down
    out = []
    for name in names:
        try:
            out.append(validate_netdev_name(name))
        except InputError:
            pass
    return tuple(sorted(out))


def _read_function(dev: Path, address: PciAddress) -> tuple[PciFunction, list[tuple[int, str]]]:
    driver = _link_name(dev / "driver")
    group = _link_name(dev / "iommu_group")
    physfn = _link_name(dev / "physfn")
    totalvfs = numvfs = None
    virtfns: list[tuple[int, str]] = []
    if (dev / "sriov_totalvfs").exists():
        totalvfs = int((dev / "sriov_totalvfs").read_text())
        numvfs = int((dev / "sriov_numvfs").read_text())
        for link in dev.glob("virtfn*"):
            virtfns.append((int(link.name[6:]), link.readlink().name))
    fn = PciFunction(
        address=address,
        vendor=_read_hex(dev / "vendor"),
        device=_read_hex(dev / "device"),
        class_code=_read_hex(dev / "class"),
        driver=driver,
        iommu_group=int(group) if group is not None else None,
        netdevs=_netdevs(dev, driver),
        totalvfs=totalvfs,
        numvfs=numvfs,
        physfn=PciAddress.parse(physfn) if physfn is not None else None,
    )
    return fn, sorted(virtfns)


def pathlib_scan(root: str) -> Topology:
    """The same Topology as :func:`pyvfmac.topology.scan`, in plain pathlib."""
    funcs: dict[PciAddress, PciFunction] = {}
    links: dict[PciAddress, list[tuple[int, str]]] = {}
    vanished = []
    for dev in (Path(root) / "bus/pci/devices").iterdir():
        try:
            address = PciAddress.parse(dev.name)
        except PciAddressError:
            continue
        try:
            funcs[address], links[address] = _read_function(dev, address)
        except FileNotFoundError:
            vanished.append(dev.name)
    pfs = []
    for address in sorted(funcs):
        fn = funcs[address]
        if fn.totalvfs is None:
            continue
        vfs = []
        for index, name in links[address]:
            vfn = funcs.get(PciAddress.parse(name))
            if vfn is None or vfn.physfn != address:
                continue
            vfs.append(Vf(
                address=vfn.address, pf=address, pf_netdevs=fn.netdevs, index=index,
                netdev=vfn.netdevs[0] if vfn.netdevs else None, driver=vfn.driver,
                iommu_group=vfn.iommu_group, vendor=vfn.vendor, device=vfn.device,
                class_code=vfn.class_code,
            ))
        pfs.append(Pf(
            address=address, netdevs=fn.netdevs, numvfs=fn.numvfs or 0,
            totalvfs=fn.totalvfs, vendor=fn.vendor, device=fn.device,
            class_code=fn.class_code, driver=fn.driver, vfs=tuple(vfs),
            iommu_group=fn.iommu_group,
        ))
    return Topology(
        sysfs_root=root,
        functions=tuple(funcs[a] for a in sorted(funcs)),
        pfs=tuple(pfs),
        vanished=tuple(sorted(vanished)),
    )


# ---- benchmarks ----


def _record(benchmark: Any, times: dict[tuple[str, int], tuple[float, float]], impl: str,
            vfs: int) -> None:
    times[(impl, vfs)] = (benchmark.stats.stats.min, benchmark.stats.stats.median)


@pytest.mark.parametrize("vfs", SIZES)
def test_scan_c(benchmark: Any, sysfs_trees: dict[int, str], topology_times: Any,
                vfs: int) -> None:
    """The public API: scan() walks sysfs and keeps what it read; the typed values are built
    from that on first look (see test_scan_c_built)."""
    topo = benchmark.pedantic(scan, args=(sysfs_trees[vfs],), rounds=7, warmup_rounds=1)
    _record(benchmark, topology_times, "c", vfs)
    assert len(topo.vfs) == vfs and not topo.anomalies and not topo.vanished


def _scan_and_build(root: str) -> Topology:
    topo = scan(root)
    topo.functions  # noqa: B018 - the first look builds every PciFunction, Pf and Vf
    return topo


@pytest.mark.parametrize("vfs", SIZES)
def test_scan_c_built(benchmark: Any, sysfs_trees: dict[int, str], topology_times: Any,
                      vfs: int) -> None:
    """scan() and the first look at its result: every typed value built (no lookup tables)."""
    topo = benchmark.pedantic(_scan_and_build, args=(sysfs_trees[vfs],), rounds=7,
                              warmup_rounds=1)
    _record(benchmark, topology_times, "c_built", vfs)
    assert len(topo.vfs) == vfs and not topo.anomalies and not topo.vanished


@pytest.mark.parametrize("vfs", SIZES)
def test_scan_c_raw(benchmark: Any, sysfs_trees: dict[int, str], topology_times: Any,
                    vfs: int) -> None:
    """The C walk alone, records unpacked but no typed objects built."""
    raw = benchmark.pedantic(_lowlevel.topo_scan, args=(sysfs_trees[vfs],), rounds=7,
                              warmup_rounds=1)
    _record(benchmark, topology_times, "c_raw", vfs)
    assert sum(1 for r in raw.funcs if r.flags & _lowlevel.FN_LINKED) == vfs


@pytest.mark.parametrize("vfs", SIZES)
def test_scan_pathlib(benchmark: Any, sysfs_trees: dict[int, str], topology_times: Any,
                      vfs: int) -> None:
    topo = benchmark.pedantic(pathlib_scan, args=(sysfs_trees[vfs],), rounds=3,
                              warmup_rounds=1)
    _record(benchmark, topology_times, "pathlib", vfs)
    assert len(topo.vfs) == vfs


@pytest.mark.parametrize("vfs", SIZES)
def test_same_result(sysfs_trees: dict[int, str], vfs: int) -> None:
    """Not timed: both implementations agree on every field."""
    c, ref = scan(sysfs_trees[vfs]), pathlib_scan(sysfs_trees[vfs])
    assert c.functions == ref.functions
    assert c.pfs == ref.pfs
    assert c == ref


def test_same_result_on_this_host() -> None:
    """The host's own /sys (whatever PCI devices it has) gives the same answer both ways."""
    if not os.path.isdir("/sys/bus/pci/devices"):
        pytest.skip("no /sys/bus/pci on this machine")
    assert scan("/sys") == pathlib_scan("/sys")
