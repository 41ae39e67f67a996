"""Which configured PF an event concerns.

A configured PF is named by netdev name or PCI address (:class:`PfTarget`). An event names a
netdev (link events, ``net`` uevents) or a PCI function (``pci`` uevents); a VF's function leads
to its PF through sysfs (``physfn``), a PF's function to its netdevs (``net/``). What was learnt
is cached (ifindex -> PF, VF address -> PF), so that a storm of events for one PF costs a dict
look-up each, and a VF that is gone (``remove``: its sysfs directory no longer exists) is still
known. Events about anything else resolve to None and are dropped.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass

from .events import LinkEvent, Uevent

# the sysfs name of a PCI function (lowercase DDDD:BB:SS.F; the kernel prints the 32-bit domain
# with %04x: a VMD domain has 5 to 8 digits, without a leading zero)
PCI_NAME = re.compile(r"(?:[0-9a-f]{4}|[1-9a-f][0-9a-f]{4,7}):[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]")


@dataclass(frozen=True, slots=True)
class PfTarget:
    """One configured PF: its config key (``pf[0]``), how the config names it."""

    key: str
    name: str | None = None
    pci: str | None = None

    @property
    def label(self) -> str:
        return self.name or self.pci or self.key


class Resolver:
    def __init__(self, targets: Iterable[PfTarget], sysfs_root: str = "/sys") -> None:
        self.targets = tuple(targets)
        self.sysfs_root = sysfs_root
        self._by_name = {t.name: t.key for t in self.targets if t.name}
        self._by_pci = {t.pci.lower(): t.key for t in self.targets if t.pci}
        self._ifindex: dict[int, tuple[str | None, str | None]] = {}  # -> (name, key)
        self._vf_pf: dict[str, str] = {}  # VF PCI address -> key

    # ------------------------------------------------------------------ sysfs
    def _link(self, *parts: str) -> str | None:
        try:
            return os.path.basename(os.readlink(os.path.join(self.sysfs_root, *parts)))
        except OSError:
            return None

    def _pci_dir(self, address: str) -> tuple[str, ...]:
        return ("bus", "pci", "devices", address)

    def _netdevs_of(self, address: str) -> list[str]:
        try:
            return os.listdir(os.path.join(self.sysfs_root, *self._pci_dir(address), "net"))
        except OSError:
            return []

    def _key_of_pf_pci(self, address: str) -> str | None:
        key = self._by_pci.get(address)
        if key is None and self._by_name:
            key = next((self._by_name[n] for n in self._netdevs_of(address) if n in self._by_name),
                       None)
        return key

    def key_of_pci(self, address: str) -> str | None:
        """The configured PF that is, or is the PF of, the PCI function ``address``."""
        address = address.lower()
        if address in self._vf_pf:
            return self._vf_pf[address]
        key = self._key_of_pf_pci(address)
        if key is not None:
            return key
        pf = self._link(*self._pci_dir(address), "physfn")
        if pf is None:
            return None
        key = self._key_of_pf_pci(pf.lower())
        if key is not None:
            self._vf_pf[address] = key
        return key

    def key_of_netdev(self, name: str) -> str | None:
        if name in self._by_name:
            return self._by_name[name]
        device = self._link("class", "net", name, "device")
        return self.key_of_pci(device) if device and PCI_NAME.fullmatch(device.lower()) else None

    def learn_vfs(self, key: str, pf_address: str) -> None:
        """Remember the PF's current VFs (``virtfnN``), for their ``remove`` events later."""
        base = os.path.join(self.sysfs_root, *self._pci_dir(pf_address))
        try:
            names = [n for n in os.listdir(base) if n.startswith("virtfn")]
        except OSError:
            return
        for n in names:
            vf = self._link(*self._pci_dir(pf_address), n)
            if vf:
                self._vf_pf[vf.lower()] = key

    # ------------------------------------------------------------------ events
    def for_uevent(self, ev: Uevent) -> str | None:
        if ev.subsystem == "net":
            name = ev.interface
            if name in self._by_name:
                return self._by_name[name]
            parts = ev.devpath.rstrip("/").split("/")
            # /devices/.../<parent>/net/<name>
            if len(parts) >= 3 and parts[-2] == "net" and PCI_NAME.fullmatch(parts[-3].lower()):
                return self.key_of_pci(parts[-3])
            return None
        if ev.subsystem == "pci":
            address = os.path.basename(ev.devpath).lower()
            if not PCI_NAME.fullmatch(address):
                return None
            key = self.key_of_pci(address)
            if ev.action == "remove":
                self._vf_pf.pop(address, None)
            return key
        return None

    def for_link(self, ev: LinkEvent) -> str | None:
        cached = self._ifindex.get(ev.ifindex)
        if ev.kind == "del":
            self._ifindex.pop(ev.ifindex, None)
            if ev.name in self._by_name:
                return self._by_name[ev.name]
            return cached[1] if cached else None
        if cached is not None and cached[0] == ev.name:
            return cached[1]
        key: str | None = None
        if ev.name in self._by_name:
            key = self._by_name[ev.name]
        elif ev.parent_bus == "pci" and ev.parent:
            key = self.key_of_pci(ev.parent)
        elif ev.name:
            key = self.key_of_netdev(ev.name)
        self._ifindex[ev.ifindex] = (ev.name, key)
        return key
