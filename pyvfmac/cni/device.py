"""The VF named by ``deviceID``, read from its own sysfs directory: whether it is a PCI device,
a network function and a VF, its PF's netdevs, its index, netdev and driver.

A pod start needs one VF, not the host's whole PCI tree (:func:`pyvfmac.topology.scan`): a few
readlinks of that VF and its PF. The messages match topology's, which :mod:`.result` maps to the
codes 101-103."""

from __future__ import annotations

import os
from dataclasses import dataclass

from ..errors import TopologyError
from ..types import PciAddress

NETWORK_CLASS = 0x02


@dataclass(frozen=True, slots=True)
class VfDevice:
    address: str
    pf: str
    pf_netdevs: tuple[str, ...]
    index: int
    netdev: str | None
    driver: str | None


def _names(path: str) -> list[str]:
    try:
        return sorted(os.listdir(path))
    except OSError:
        return []


def _link_name(path: str) -> str | None:
    try:
        return os.path.basename(os.readlink(path))
    except OSError:
        return None


def _class_code(dev: str) -> int:
    try:
        with open(f"{dev}/class", encoding="ascii") as f:
            return int(f.read().strip(), 16)
    except (OSError, ValueError):
        return 0


def read_vf(address: PciAddress, sysfs_root: str = "/sys") -> VfDevice:
    """The VF at ``address``; :class:`TopologyError` ``not a PCI device`` / ``not a network
    device`` / ``not a VF`` / ``its PF ... has no network device``."""
    addr = str(address)
    dev = f"{sysfs_root}/bus/pci/devices/{addr}"
    if not os.path.isdir(dev):
        raise TopologyError(f"{addr}: not a PCI device (no {dev})")
    netdevs = _names(f"{dev}/net")
    code = _class_code(dev)
    if code >> 16 != NETWORK_CLASS and not netdevs:
        raise TopologyError(f"{addr}: not a network device (PCI class {code:#08x})")
    pf = _link_name(f"{dev}/physfn")
    if pf is None:
        what = "an SR-IOV PF" if os.path.exists(f"{dev}/sriov_totalvfs") else "a PCI function"
        raise TopologyError(f"{addr}: not a VF (it is {what})")
    pf_dir = f"{sysfs_root}/bus/pci/devices/{pf}"
    index = next((int(name[6:]) for name in _names(pf_dir)
                  if name.startswith("virtfn") and _link_name(f"{pf_dir}/{name}") == addr), None)
    if index is None:
        raise TopologyError(f"{addr}: not a VF (its PF {pf} does not list it)")
    pf_netdevs = tuple(_names(f"{pf_dir}/net"))
    if not pf_netdevs:
        raise TopologyError(f"{addr}: its PF {pf} has no network device to program it through")
    return VfDevice(address=addr, pf=pf, pf_netdevs=pf_netdevs, index=index,
                    netdev=netdevs[0] if netdevs else None, driver=_link_name(f"{dev}/driver"))
