"""Every write pyvfmac makes to sysfs goes through :func:`write_attr`; the attributes that are
written whole (``sriov_numvfs``) and read one at a time (``driver_override``) are here too.

Binding a function to a driver is built on it in :mod:`pyvfmac.pcibind`; the whole-tree walk
(every PF, VF, netdev and driver in one pass) is the C walker's job, in :mod:`pyvfmac.topology`.
"""

from __future__ import annotations

import errno
import os

from .errors import SysfsError
from .types import PciAddress


def pci_device_dir(sysfs_root: str, address: PciAddress) -> str:
    """``<root>/bus/pci/devices/<address>``."""
    return os.path.join(sysfs_root, "bus", "pci", "devices", str(address))


def write_attr(path: str | os.PathLike[str], value: str, *, device: str) -> None:
    """Write ``value`` to one sysfs attribute; SysfsError (errno, path, device) on failure."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    except OSError as exc:
        raise SysfsError(exc.errno or errno.EIO, f"cannot open {path}", device=device) from None
    try:
        os.write(fd, value.encode())
    except OSError as exc:
        text = value.strip()  # a count as it is (sriov_numvfs), a word quoted (a driver's name)
        shown = text if text.isdigit() else repr(text)
        raise SysfsError(exc.errno or errno.EIO, f"cannot write {shown} to {path}",
                         device=device) from None
    finally:
        os.close(fd)


def set_numvfs(path: str, now: int, target: int, *, device: str) -> None:
    """``sriov_numvfs`` at ``path``: ``now`` -> ``target`` VFs, through 0 when both are non-zero
    (the kernel refuses N -> M)."""
    if now == target:
        return
    if now != 0 and target != 0:
        write_attr(path, "0", device=device)
    write_attr(path, str(target), device=device)


def driver_override(address: PciAddress, *, sysfs_root: str = "/sys") -> str:
    """The function's ``driver_override`` ("" when none is set or it cannot be read)."""
    try:
        with open(os.path.join(pci_device_dir(sysfs_root, address), "driver_override"),
                  encoding="ascii", errors="replace") as f:
            value = f.read().strip()
    except OSError:
        return ""
    return "" if value == "(null)" else value
