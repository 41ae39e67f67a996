"""A generated fake sysfs tree with the real kernel's PCI / SR-IOV layout.

What it writes, for a function X behind a bridge chain under ``devices/pci0000:00``:

- ``devices/pci0000:00/[BRIDGE/...]/X/`` with ``vendor``, ``device``, ``class`` ("0x8086\\n"),
- ``bus/pci/devices/X`` -> ``../../../devices/pci0000:00/.../X`` (relative symlink),
- ``X/uevent`` as ``pci_uevent`` writes it (DRIVER=, PCI_CLASS=, PCI_ID=, PCI_SUBSYS_ID=,
  PCI_SLOT_NAME=, MODALIAS=), rewritten on every (un)bind,
- ``X/driver`` -> ``../../../bus/pci/drivers/NAME`` (relative, as deep as X is) and the driver's
  back link ``bus/pci/drivers/NAME/X`` -> ``../../../../devices/.../X``,
- ``X/iommu_group`` -> ``../../../kernel/iommu_groups/N`` and ``kernel/iommu_groups/N/devices/X``,
- ``X/net/<name>/`` (with ``address`` and ``ifindex``) and
  ``class/net/<name>`` -> ``../../devices/.../X/net/<name>``,
- a PF: ``sriov_totalvfs``, ``sriov_numvfs``, ``virtfnN`` -> ``../<VF>``;
  a VF: ``physfn`` -> ``../<PF>``
  (PF and VFs are siblings, as the kernel puts them).

``FakeSysfs(root)`` builds into ``root`` (the directory standing for ``/sys``).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

NETWORK_CLASS = 0x020000
NVME_CLASS = 0x010802
BRIDGE_CLASS = 0x060400


def pci_name(domain: int, bus: int, slot: int, function: int) -> str:
    """The kernel's spelling: ``0000:06:02.0``."""
    return f"{domain:04x}:{bus:02x}:{slot:02x}.{function:x}"


def vf_name(pf: str, index: int, offset: int = 0x10, stride: int = 1) -> str:
    """The routing ID of VF ``index`` of PF ``pf`` (First VF Offset / VF Stride, as igb: 0x80/2
    puts VFs at bus:10.0, 10.2, ...; the default packs them 8 per slot from slot 2)."""
    dom, bus, rest = pf.split(":")
    slot, fn = rest.split(".")
    devfn = (int(slot, 16) << 3 | int(fn, 16)) + offset + index * stride
    bus_n = int(bus, 16) + devfn // 256
    devfn %= 256
    return pci_name(int(dom, 16), bus_n, devfn >> 3, devfn & 7)


@dataclass
class Function:
    """What was written for one PCI function (the expected scan result for it)."""

    name: str
    path: Path
    vendor: int
    device: int
    class_code: int
    driver: str | None = None
    iommu_group: int | None = None
    netdevs: tuple[str, ...] = ()
    totalvfs: int | None = None
    numvfs: int | None = None
    physfn: str | None = None
    vfs: tuple[str, ...] = ()


class FakeSysfs:
    """Builder of one fake ``/sys``; every ``add_*`` returns the :class:`Function` written."""

    def __init__(self, root: str | os.PathLike[str], domain: int = 0) -> None:
        self.root = Path(root)
        self.domain = domain
        self.functions: dict[str, Function] = {}
        self.host_bridge = self.root / "devices" / f"pci{domain:04x}:00"
        for sub in ("bus/pci/devices", "bus/pci/drivers", "kernel/iommu_groups", "class/net"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        self.host_bridge.mkdir(parents=True, exist_ok=True)

    # ---- low-level writers ----

    def _link(self, link: Path, target: Path) -> None:
        """A relative symlink, as sysfs makes them."""
        link.symlink_to(os.path.relpath(target, link.parent))

    @staticmethod
    def _write(path: Path, text: str) -> None:
        path.write_text(text)

    def write_uevent(self, name: str) -> None:
        fn = self.functions[name]
        ids = f"{fn.vendor:04X}:{fn.device:04X}"
        c = fn.class_code
        lines = [f"DRIVER={fn.driver}"] if fn.driver is not None else []
        lines += [
            f"PCI_CLASS={c:X}",
            f"PCI_ID={ids}",
            f"PCI_SUBSYS_ID={ids}",
            f"PCI_SLOT_NAME={name}",
            f"MODALIAS=pci:v{fn.vendor:08X}d{fn.device:08X}sv{fn.vendor:08X}sd{fn.device:08X}"
            f"bc{c >> 16:02X}sc{c >> 8 & 0xFF:02X}i{c & 0xFF:02X}",
        ]
        self._write(fn.path / "uevent", "\n".join(lines) + "\n")

    def bind_driver(self, name: str, driver: str | None) -> None:
        """(Re)bind: the ``driver`` link and the driver's back link; None unbinds."""
        fn = self.functions[name]
        link = fn.path / "driver"
        if link.is_symlink():
            old = self.root / "bus/pci/drivers" / os.path.basename(os.readlink(link)) / name
            if old.is_symlink():
                old.unlink()
            link.unlink()
        fn.driver = driver
        self.write_uevent(name)
        if driver is None:
            return
        ddir = self.root / "bus/pci/drivers" / driver
        ddir.mkdir(parents=True, exist_ok=True)
        self._link(link, ddir)
        self._link(ddir / name, fn.path)

    def add_netdev(self, name: str, netdev: str, ifindex: int = 0) -> None:
        fn = self.functions[name]
        ndir = fn.path / "net" / netdev
        ndir.mkdir(parents=True)
        self._write(ndir / "ifindex", f"{ifindex}\n")
        self._write(ndir / "address", "02:00:00:00:00:00\n")
        cls = self.root / "class/net" / netdev
        if not cls.is_symlink():
            self._link(cls, ndir)
        fn.netdevs = tuple(sorted(fn.netdevs + (netdev,)))

    def remove_netdev(self, name: str, netdev: str) -> None:
        fn = self.functions[name]
        shutil.rmtree(fn.path / "net" / netdev)
        (self.root / "class/net" / netdev).unlink(missing_ok=True)
        fn.netdevs = tuple(n for n in fn.netdevs if n != netdev)

    # ---- devices ----

    def add_function(
        self,
        name: str,
        *,
        vendor: int = 0x8086,
        device: int = 0x10C9,
        class_code: int = NETWORK_CLASS,
        driver: str | None = None,
        iommu_group: int | None = None,
        netdevs: Iterable[str] = (),
        parent: str | None = None,
    ) -> Function:
        """A PCI function under the host bridge, or under the directory of ``parent`` (a bridge
        added before, or a PF whose sibling this is when ``parent`` is a PF's own parent)."""
        base = self.host_bridge if parent is None else self.functions[parent].path
        path = base / name
        path.mkdir()
        fn = Function(name, path, vendor, device, class_code)
        self.functions[name] = fn
        self._write(path / "vendor", f"0x{vendor:04x}\n")
        self._write(path / "device", f"0x{device:04x}\n")
        self._write(path / "class", f"0x{class_code:06x}\n")
        self._write(path / "subsystem_vendor", f"0x{vendor:04x}\n")
        self._write(path / "enable", "1\n")
        self._link(self.root / "bus/pci/devices" / name, path)
        self.bind_driver(name, driver)
        if iommu_group is not None:
            self.set_iommu_group(name, iommu_group)
        for netdev in netdevs:
            self.add_netdev(name, netdev)
        return fn

    def set_iommu_group(self, name: str, group: int) -> None:
        fn = self.functions[name]
        gdir = self.root / "kernel/iommu_groups" / str(group)
        (gdir / "devices").mkdir(parents=True, exist_ok=True)
        self._link(fn.path / "iommu_group", gdir)
        self._link(gdir / "devices" / name, fn.path)
        fn.iommu_group = group

    def add_bridge(self, name: str, parent: str | None = None) -> Function:
        """A PCIe root port / bridge (class 0x060400) that PFs can sit behind."""
        return self.add_function(
            name, vendor=0x1B36, device=0x000C, class_code=BRIDGE_CLASS,
            driver="pcieport", parent=parent,
        )

    def add_pf(
        self,
        name: str,
        *,
        totalvfs: int,
        numvfs: int = 0,
        bridge: str | None = None,
        **kw: object,
    ) -> Function:
        """A PF (``sriov_totalvfs`` / ``sriov_numvfs`` present), no VFs yet."""
        fn = self.add_function(name, parent=bridge, **kw)  # type: ignore[arg-type]
        self._write(fn.path / "sriov_totalvfs", f"{totalvfs}\n")
        self._write(fn.path / "sriov_numvfs", f"{numvfs}\n")
        self._write(fn.path / "sriov_offset", "16\n")
        fn.totalvfs = totalvfs
        fn.numvfs = numvfs
        return fn

    def add_vf(
        self,
        pf: str,
        index: int,
        name: str | None = None,
        *,
        vendor: int | None = None,
        device: int = 0x10CA,
        class_code: int | None = None,
        driver: str | None = None,
        iommu_group: int | None = None,
        netdevs: Iterable[str] = (),
    ) -> Function:
        """VF ``index`` of ``pf``: a sibling directory, ``virtfnN`` and ``physfn`` links."""
        pfn = self.functions[pf]
        name = name or vf_name(pf, index)
        self.functions[name] = fn = Function(
            name, pfn.path.parent / name, vendor if vendor is not None else pfn.vendor, device,
            class_code if class_code is not None else pfn.class_code,
        )
        fn.path.mkdir()
        self._write(fn.path / "vendor", f"0x{fn.vendor:04x}\n")
        self._write(fn.path / "device", f"0x{device:04x}\n")
        self._write(fn.path / "class", f"0x{fn.class_code:06x}\n")
        self._link(self.root / "bus/pci/devices" / name, fn.path)
        self._link(pfn.path / f"virtfn{index}", fn.path)
        self._link(fn.path / "physfn", pfn.path)
        fn.physfn = pf
        pfn.vfs = pfn.vfs + (name,)
        self.bind_driver(name, driver)
        if iommu_group is not None:
            self.set_iommu_group(name, iommu_group)
        for netdev in netdevs:
            self.add_netdev(name, netdev)
        return fn

    def add_vfs(
        self,
        pf: str,
        count: int,
        *,
        driver: str | None = None,
        netdev_fmt: str | None = None,
        first_group: int | None = None,
        **kw: object,
    ) -> list[Function]:
        """VFs 0..count-1 of ``pf``; ``sriov_numvfs`` becomes ``count``. ``netdev_fmt`` is
        formatted with ``i`` (the VF index); ``first_group`` numbers IOMMU groups from there."""
        out = []
        for i in range(count):
            out.append(
                self.add_vf(
                    pf, i, driver=driver,
                    netdevs=(netdev_fmt.format(i=i),) if netdev_fmt else (),
                    iommu_group=None if first_group is None else first_group + i,
                    **kw,  # type: ignore[arg-type]
                )
            )
        self.set_numvfs(pf, count)
        return out

    def set_numvfs(self, pf: str, numvfs: int) -> None:
        self._write(self.functions[pf].path / "sriov_numvfs", f"{numvfs}\n")
        self.functions[pf].numvfs = numvfs

    def remove(self, name: str, *, keep_bus_link: bool = True) -> None:
        """The device's directory goes away; ``bus/pci/devices/X`` stays, dangling (what a
        scan racing with VF destruction can see), unless ``keep_bus_link`` is false."""
        fn = self.functions.pop(name)
        shutil.rmtree(fn.path)
        if not keep_bus_link:
            (self.root / "bus/pci/devices" / name).unlink()

    def write_raw(self, name: str, attr: str, content: str | bytes) -> None:
        """Overwrite one attribute file with arbitrary content (hostile-input tests)."""
        path = self.functions[name].path / attr
        path.write_bytes(content if isinstance(content, bytes) else content.encode())

    def link_raw(self, name: str, attr: str, target: str | bytes) -> None:
        """Replace one link of a function with an arbitrary target."""
        path = self.functions[name].path / attr
        if path.is_symlink() or path.exists():
            path.unlink()
        os.symlink(target, os.fsencode(path))


def build_scale(root: str | os.PathLike[str], n_pfs: int, vfs_per_pf: int) -> FakeSysfs:
    """The benchmark tree: ``n_pfs`` igb-like PFs, each behind its own root port on bus 0, with
    ``vfs_per_pf`` VFs each (igbvf with a netdev on even indexes, vfio-pci on odd ones), one IOMMU
    group per function."""
    fs = FakeSysfs(root)
    group = 0
    for p in range(n_pfs):
        devfn = 8 + p
        port = pci_name(0, 0, devfn >> 3, devfn & 7)
        fs.add_bridge(port)
        pf = pci_name(0, p + 1, 0, 0)
        fs.add_pf(pf, totalvfs=max(vfs_per_pf, 7), bridge=port, driver="igb",
                  iommu_group=group, netdevs=(f"enp{p + 1}s0",))
        group += 1
        for i in range(vfs_per_pf):
            on_host = i % 2 == 0
            fs.add_vf(pf, i, driver="igbvf" if on_host else "vfio-pci", iommu_group=group,
                      netdevs=(f"enp{p + 1}s0v{i}",) if on_host else ())
            group += 1
        fs.set_numvfs(pf, vfs_per_pf)
    return fs


def expected_vf_names(fs: FakeSysfs, pf: str) -> Sequence[str]:
    return fs.functions[pf].vfs
