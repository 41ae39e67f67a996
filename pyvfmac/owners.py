"""Who holds a VF: the one rule every pyvfmac command and the daemon follow before changing one.

A VF is held, and left alone, when

- pyvfmac attached it (a record in the state store: a guest's device, a pod of vfmac-cni, a pool
  allocation): :func:`record_holder` says for whom;
- or someone else has it (:func:`held_outside`, from sysfs alone):
  - it is bound to a driver that hands it to userspace (vfio-pci: libvirt's managed hostdevs,
    KubeVirt; pci-stub; uio), which pyvfmac did not bind (that would be a record);
  - it is bound to a kernel driver but its netdev is not in the host's network namespace (another
    CNI plugin moved it into a pod; the host's sysfs lists the netdevs of its own namespace);
  - a ``driver_override`` is set on it (someone is about to bind it).

An unbound VF, and a VF on its kernel driver with its netdev on the host, are free. Who uses it:
``vfmac apply`` (with and without ``--pf``, except the boot-time run ``--boot``: no guest or pod
runs yet), ``vfmac watch`` (through the same apply), the pools (a held VF is never picked) and
``vfmac list`` (the holder column). A config can ask to program a held VF anyway
(``program_held``, per PF or VF: :mod:`pyvfmac.apply.config`).
"""

from __future__ import annotations

import os
import re

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (mypy: always_true)
if TYPE_CHECKING:
    from .records import Attachment

__all__ = ["HOLDING_DRIVERS", "bound_driver", "driver_override", "held_outside", "holders",
           "record_holder"]

HOLDING_DRIVERS: tuple[str, ...] = ("vfio-pci", "pci-stub", "uio_pci_generic", "igb_uio")
"""Drivers that hold a VF for userspace (a guest, a DPDK application) or for nobody."""

_VIRTFN = r"virtfn([0-9]+)"  # compiled by re on first use


def bound_driver(path: str) -> str | None:
    """The driver the PCI function at sysfs directory ``path`` is bound to (None: none)."""
    try:
        return os.path.basename(os.readlink(os.path.join(path, "driver")))
    except OSError:
        return None


def _has_host_netdev(path: str) -> bool:
    try:
        return bool(os.listdir(os.path.join(path, "net")))
    except OSError:
        return False


def driver_override(path: str) -> str | None:
    """The ``driver_override`` set on the PCI function at ``path`` (None: none)."""
    try:
        with open(os.path.join(path, "driver_override"), encoding="ascii") as f:
            value = f.read().strip()
    except OSError:
        return None
    return None if value in ("", "(null)") else value


def held_outside(address: str, sysfs_root: str = "/sys") -> str | None:
    """Why the PCI VF ``address`` is held by someone other than pyvfmac (None: it is not).
    The VF's records are not looked at: see :func:`record_holder`."""
    path = os.path.join(sysfs_root, "bus", "pci", "devices", address)
    driver = bound_driver(path)
    if driver in HOLDING_DRIVERS:
        return f"bound to {driver} outside pyvfmac"
    if driver is not None and not _has_host_netdev(path):
        return f"bound to {driver}, its netdev not on the host (in another network namespace)"
    override = driver_override(path)
    if override is not None:
        return f"driver_override {override} set outside pyvfmac"
    return None


def holders(pf_address: str, sysfs_root: str = "/sys") -> dict[int, str]:
    """Every VF of the PCI PF ``pf_address`` held outside pyvfmac: VF index -> why."""
    path = os.path.join(sysfs_root, "bus", "pci", "devices", pf_address)
    try:
        names = os.listdir(path)
    except OSError:
        return {}
    out: dict[int, str] = {}
    for name in names:
        m = re.fullmatch(_VIRTFN, name)
        if m is None:
            continue
        try:
            vf = os.path.basename(os.readlink(os.path.join(path, name)))
        except OSError:
            continue
        reason = held_outside(vf, sysfs_root)
        if reason is not None:
            out[int(m.group(1))] = reason
    return out


def record_holder(att: Attachment) -> str:
    """Who holds a VF pyvfmac attached, as its record says."""
    where = f"pyvfmac network {att.network}" if att.network else "pyvfmac"
    return f"attached by {where} for {att.owner}"
