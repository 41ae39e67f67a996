"""Binding a PCI function to a driver through sysfs (driver_override + drivers_probe), verified.

Used for managed devices: a VF leaves its host driver for vfio-pci at attach and goes back at
detach. Every write goes through :func:`pyvfmac.sysfs.write_attr` and names its path in the
error; every bind is checked by reading the ``driver``
link back, with a bounded wait (probing is asynchronous on some kernels).
"""

from __future__ import annotations

import errno
import os
import time
from pathlib import Path

from .errors import SysfsError
from .sysfs import driver_override, pci_device_dir, write_attr
from .types import PciAddress

VFIO = "vfio-pci"


def _dev(sysfs_root: str, address: PciAddress) -> Path:
    return Path(pci_device_dir(sysfs_root, address))


def current_driver(address: PciAddress, *, sysfs_root: str = "/sys") -> str | None:
    """The driver bound to the function now, or None."""
    try:
        return os.path.basename(os.readlink(_dev(sysfs_root, address) / "driver"))
    except FileNotFoundError:
        if not _dev(sysfs_root, address).exists():
            raise SysfsError(errno.ENODEV, "no such PCI device", device=str(address)) from None
        return None
    except OSError as exc:
        raise SysfsError(exc.errno or errno.EIO, "cannot read its driver link",
                         device=str(address)) from None


def _wait_driver(address: PciAddress, want: str | None, *, sysfs_root: str,
                 timeout: float) -> str | None:
    deadline = time.monotonic() + timeout
    while True:
        have = current_driver(address, sysfs_root=sysfs_root)
        if have == want or time.monotonic() >= deadline:
            return have
        time.sleep(0.02)


def unbind(address: PciAddress, *, sysfs_root: str = "/sys", timeout: float = 10.0) -> None:
    """Unbind the function from whatever driver holds it (nothing to do when unbound)."""
    driver = current_driver(address, sysfs_root=sysfs_root)
    if driver is None:
        return
    write_attr(_dev(sysfs_root, address) / "driver" / "unbind", str(address), device=str(address))
    left = _wait_driver(address, None, sysfs_root=sysfs_root, timeout=timeout)
    if left is not None:
        raise SysfsError(errno.EBUSY, f"still bound to {left} after unbind", device=str(address))


def _ensure_driver_loaded(driver: str, *, sysfs_root: str) -> None:
    if (Path(sysfs_root) / "bus" / "pci" / "drivers" / driver).exists():
        return
    if sysfs_root == "/sys":
        import subprocess  # only when a driver has to be loaded

        subprocess.run(["modprobe", driver], check=False, capture_output=True)
    if not (Path(sysfs_root) / "bus" / "pci" / "drivers" / driver).exists():
        raise SysfsError(errno.ENOENT, f"PCI driver {driver} is not loaded (modprobe {driver})",
                         device=driver)


def bind(address: PciAddress, driver: str | None, *, sysfs_root: str = "/sys",
         timeout: float = 10.0) -> None:
    """Bind to ``driver`` (None: leave unbound) through driver_override and drivers_probe, then
    clear the override so the kernel's normal matching applies again later. Verified."""
    dev = _dev(sysfs_root, address)
    name = str(address)
    unbind(address, sysfs_root=sysfs_root, timeout=timeout)
    if driver is None:
        return
    _ensure_driver_loaded(driver, sysfs_root=sysfs_root)
    write_attr(dev / "driver_override", driver + "\n", device=name)
    try:
        write_attr(Path(sysfs_root) / "bus" / "pci" / "drivers_probe", name, device=name)
        got = _wait_driver(address, driver, sysfs_root=sysfs_root, timeout=timeout)
    finally:
        if driver != VFIO:
            write_attr(dev / "driver_override", "\n", device=name)
    if got != driver:
        raise SysfsError(errno.EIO, f"bound to {got or 'no driver'}, not {driver}, after probe",
                         device=name)


def release_override(address: PciAddress, *, sysfs_root: str = "/sys") -> None:
    """Clear driver_override (after vfio-pci is let go)."""
    write_attr(_dev(sysfs_root, address) / "driver_override", "\n", device=str(address))


__all__ = ["VFIO", "bind", "current_driver", "driver_override", "iommu_group", "release_override",
           "unbind"]


def iommu_group(address: PciAddress, *, sysfs_root: str = "/sys") -> int | None:
    try:
        return int(os.path.basename(os.readlink(_dev(sysfs_root, address) / "iommu_group")))
    except (OSError, ValueError):
        return None
