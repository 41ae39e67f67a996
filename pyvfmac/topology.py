"""SR-IOV topology from sysfs: PFs, their VFs, netdev names, drivers, IOMMU groups.

``scan()`` runs the C walker once over ``<sysfs_root>/bus/pci/devices`` and returns a
:class:`Topology`, a snapshot with exact lookups::

    topo = scan()
    vf = topo.vf("0000:06:10.2")          # its PF, index, netdev, driver, IOMMU group
    topo.address_of_netdev("enp6s0")      # PciAddress('0000:06:00.0')
    topo.pf_by_netdev("enp6s0").vfs       # the PF's VFs, by index

Netdevs of PFs that are not PCI functions (netdevsim) are not in this walk; the netlink layer
covers them. A device that disappears during the scan is left out and named in
``Topology.vanished``; inconsistencies (a VF whose ``physfn`` disagrees with its PF's ``virtfnN``,
unreadable links, over-long names) leave the element out and are described in
``Topology.anomalies``: nothing half-read is presented as fresh.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field

from . import _lowlevel as _ll
from .errors import InputError, PciAddressError, TopologyError
from .types import PciAddress, validate_netdev_name

__all__ = [
    "Pf",
    "PciFunction",
    "Topology",
    "Vf",
    "read_pci_sysfs_root",
    "scan",
]

SYSFS_ROOT_ENV = "PYVFMAC_SYSFS_ROOT"
NETWORK_CLASS = 0x02  # PCI base class "network controller"


def read_pci_sysfs_root() -> str:
    """Where sysfs is: ``$PYVFMAC_SYSFS_ROOT`` when set and not empty, else ``/sys``."""
    return os.environ.get(SYSFS_ROOT_ENV) or "/sys"


def _check_root(root: str | os.PathLike[str] | None) -> str:
    if root is None:
        root = read_pci_sysfs_root()
    try:
        text = os.fspath(root)
    except TypeError:
        raise InputError(f"sysfs root {root!r}: not a path") from None
    if not isinstance(text, str):
        raise InputError(f"sysfs root {root!r}: not a text path")
    if not text or "\0" in text:
        raise InputError(f"sysfs root {text!r}: empty or contains NUL")
    return text


def _as_address(addr: PciAddress | str) -> PciAddress:
    if isinstance(addr, PciAddress):
        return addr
    if isinstance(addr, str):
        return PciAddress.parse(addr)
    raise PciAddressError(f"PCI address {addr!r}: expected a PciAddress or a string")


def _is_network_class(class_code: int) -> bool:
    return class_code >> 16 == NETWORK_CLASS


@dataclass(frozen=True, slots=True)
class PciFunction:
    """Any PCI function of the scan. ``totalvfs`` / ``numvfs`` are None unless it is a PF;
    ``physfn`` is its PF's address when it is a VF."""

    address: PciAddress
    vendor: int
    device: int
    class_code: int
    driver: str | None
    iommu_group: int | None
    netdevs: tuple[str, ...]
    totalvfs: int | None = None
    numvfs: int | None = None
    physfn: PciAddress | None = None

    @property
    def is_network(self) -> bool:
        """A network controller (class 0x02xxxx) or holding a netdev."""
        return _is_network_class(self.class_code) or bool(self.netdevs)

    @property
    def is_pf(self) -> bool:
        return self.totalvfs is not None

    @property
    def is_vf(self) -> bool:
        return self.physfn is not None


@dataclass(frozen=True, slots=True)
class Vf:
    """A VF tied to its PF from both sides (the PF's ``virtfnN`` and the VF's ``physfn``)."""

    address: PciAddress
    pf: PciAddress
    pf_netdevs: tuple[str, ...]
    index: int
    netdev: str | None
    driver: str | None
    iommu_group: int | None
    vendor: int
    device: int
    class_code: int

    @property
    def is_network(self) -> bool:
        return _is_network_class(self.class_code) or self.netdev is not None


@dataclass(frozen=True, slots=True)
class Pf:
    """An SR-IOV physical function (``sriov_totalvfs`` present) and its VFs, by index."""

    address: PciAddress
    netdevs: tuple[str, ...]
    numvfs: int
    totalvfs: int
    vendor: int
    device: int
    class_code: int
    driver: str | None
    vfs: tuple[Vf, ...]
    iommu_group: int | None = None

    def vf(self, index: int) -> Vf:
        """VF ``index`` of this PF; TopologyError when it has none."""
        for vf in self.vfs:
            if vf.index == index:
                return vf
        raise TopologyError(f"{self.name}: no VF {index} ({len(self.vfs)} VFs)")

    @property
    def name(self) -> str:
        """``0000:06:00.0 (enp6s0)`` for messages."""
        return f"{self.address} ({', '.join(self.netdevs)})" if self.netdevs else str(self.address)


@dataclass(frozen=True, slots=True)
class Topology:
    """One scan's snapshot. Lookups raise :class:`TopologyError` naming the address or name."""

    sysfs_root: str
    functions: tuple[PciFunction, ...]
    pfs: tuple[Pf, ...]
    vanished: tuple[str, ...] = ()
    anomalies: tuple[str, ...] = ()
    _by_addr: dict[PciAddress, PciFunction] = field(init=False, repr=False, compare=False)
    _pf_by_addr: dict[PciAddress, Pf] = field(init=False, repr=False, compare=False)
    _vf_by_addr: dict[PciAddress, Vf] = field(init=False, repr=False, compare=False)
    _by_netdev: dict[str, PciFunction] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        by_netdev: dict[str, PciFunction] = {}
        for fn in self.functions:
            for name in fn.netdevs:
                by_netdev.setdefault(name, fn)
        object.__setattr__(self, "_by_addr", {fn.address: fn for fn in self.functions})
        object.__setattr__(self, "_pf_by_addr", {pf.address: pf for pf in self.pfs})
        object.__setattr__(
            self, "_vf_by_addr", {vf.address: vf for pf in self.pfs for vf in pf.vfs}
        )
        object.__setattr__(self, "_by_netdev", by_netdev)

    # ---- by address ----

    def function(self, addr: PciAddress | str) -> PciFunction:
        """Any PCI function; TopologyError ``...: not a PCI device``."""
        address = _as_address(addr)
        fn = self._by_addr.get(address)
        if fn is None:
            raise TopologyError(
                f"{address}: not a PCI device (no {self.sysfs_root.rstrip('/')}"
                f"/bus/pci/devices/{address})"
            )
        return fn

    def is_network(self, addr: PciAddress | str) -> bool:
        """Whether a PCI function is a network device (class 0x02xxxx or has a netdev)."""
        return self.function(addr).is_network

    def device_netdevs(self, addr: PciAddress | str) -> tuple[str, ...]:
        """The netdev names of any PCI function (empty when no host driver gives it one)."""
        return self.function(addr).netdevs

    def vf(self, addr: PciAddress | str) -> Vf:
        """The VF at ``addr``; TopologyError ``not a PCI device`` / ``not a network device`` /
        ``not a VF``."""
        address = _as_address(addr)
        found = self._vf_by_addr.get(address)
        fn = self.function(address)
        if not fn.is_network:
            raise TopologyError(
                f"{address}: not a network device (PCI class {fn.class_code:#08x})"
            )
        if found is None:
            what = f"an SR-IOV PF with {fn.numvfs} VFs" if fn.is_pf else "a PCI function"
            if fn.is_vf:
                what = f"a VF of {fn.physfn} that its PF does not list (see anomalies)"
            raise TopologyError(f"{address}: not a VF (it is {what})")
        return found

    def pf(self, addr: PciAddress | str) -> Pf:
        """The PF at ``addr``; TopologyError ``not a PCI device`` / ``not an SR-IOV PF``."""
        address = _as_address(addr)
        found = self._pf_by_addr.get(address)
        if found is None:
            self.function(address)
            raise TopologyError(f"{address}: not an SR-IOV PF (no sriov_totalvfs)")
        return found

    @property
    def vfs(self) -> tuple[Vf, ...]:
        """Every VF of every PF, PFs by address, VFs by index."""
        return tuple(vf for pf in self.pfs for vf in pf.vfs)

    # ---- by netdev name ----

    def _netdev_function(self, name: str) -> PciFunction:
        validate_netdev_name(name)
        fn = self._by_netdev.get(name)
        if fn is None:
            root = self.sysfs_root.rstrip("/")
            known = os.path.lexists(f"{root}/class/net/{name}")
            raise TopologyError(
                f"{name}: not a PCI network device (a virtual or non-PCI netdev)"
                if known
                else f"{name}: no such network device"
            )
        return fn

    def address_of_netdev(self, name: str) -> PciAddress:
        """The PCI address of the function holding netdev ``name``."""
        return self._netdev_function(name).address

    def pf_by_netdev(self, name: str) -> Pf:
        """The SR-IOV PF holding netdev ``name``."""
        fn = self._netdev_function(name)
        found = self._pf_by_addr.get(fn.address)
        if found is None:
            vf = self._vf_by_addr.get(fn.address)
            what = f"VF {vf.index} of {vf.pf}" if vf is not None else "not SR-IOV capable"
            raise TopologyError(f"{name}: not an SR-IOV PF ({fn.address}: {what})")
        return found

    def find_vf_by_netdev(self, name: str) -> Vf:
        """The VF whose netdev is ``name`` (a VF bound to a host network driver)."""
        fn = self._netdev_function(name)
        found = self._vf_by_addr.get(fn.address)
        if found is None:
            raise TopologyError(f"{name}: not a VF ({fn.address} is not a VF of any PF)")
        return found


# ---- building a Topology from the C walker's records ----

_PLAIN_NAME = re.compile(r"[0-9A-Za-z_@+.-]{1,15}")
_new = object.__new__
_set = object.__setattr__


def _text(raw: bytes) -> str:
    return raw.decode("utf-8", "surrogateescape")


def _valid_name(name: str) -> bool:
    """validate_netdev_name, with a fast path for the plain names nearly every netdev has."""
    if _PLAIN_NAME.fullmatch(name) and name not in (".", ".."):
        return True
    try:
        validate_netdev_name(name)
    except InputError:
        return False
    return True


def _address(domain: int, bus: int, slot: int, function: int) -> PciAddress | None:
    """A PciAddress from the walker's numbers. The C parser admits only what the kernel prints
    (bus 0..ff, slot 0..1f, function 0..7); the domain is checked here. Built without
    PciAddress.__post_init__, whose checks cost ~6 us each, thousands of times per scan."""
    if domain > 0xFFFF or bus > 0xFF or slot > 0x1F or function > 7:
        return None  # a domain over 0xffff: not representable, reported by the caller
    a = _new(PciAddress)
    _set(a, "domain", domain)
    _set(a, "bus", bus)
    _set(a, "slot", slot)
    _set(a, "function", function)
    return a


_FLAG_NOTES = (
    (_ll.FN_BAD_DRIVER, "driver link unreadable or its name too long: driver unknown"),
    (_ll.FN_BAD_IOMMU, "iommu_group link does not end in a group number: group unknown"),
    (_ll.FN_BAD_PHYSFN, "physfn link does not name a PCI function: not taken as a VF"),
    (_ll.FN_BAD_NETDEV, "a net/ entry is too long for a network device name: left out"),
    (_ll.FN_BAD_VIRTFN, "a virtfn entry is not a link to a PCI function: left out"),
    (_ll.FN_BAD_SRIOV, "sriov_totalvfs / sriov_numvfs unreadable or not a number"),
)
_ANY_BAD = 0
for _flag, _ in _FLAG_NOTES:
    _ANY_BAD |= _flag

_VIRTFN_NOTES = {
    _ll.VIRTFN_MISSING: "no such PCI function",
    _ll.VIRTFN_NOT_VF: "that function has no physfn link",
    _ll.VIRTFN_MISMATCH: "that function's physfn names another PF",
    _ll.VIRTFN_DUPLICATE: "another virtfn link already names that function",
}


class _Builder:
    """Turns the walker's records into the typed snapshot, collecting what was left out."""

    def __init__(self, raw: _ll.RawScan) -> None:
        self.raws = raw.funcs
        self.netdev_names = raw.netdevs
        self.virtfns = raw.virtfns
        self.funcs: list[PciFunction | None] = [None] * len(raw.funcs)
        self.vanished: list[str] = []
        self.anomalies: list[str] = []
        self.drivers: dict[bytes, str] = {}

    def note(self, text: str) -> None:
        self.anomalies.append(text)

    def netdevs(self, address: PciAddress, raw: _ll.RawFunc) -> tuple[str, ...]:
        names = []
        first = raw.netdev_first
        for b in self.netdev_names[first:first + raw.netdev_count]:
            name = _text(b)
            if _valid_name(name):
                names.append(name)
            else:
                self.note(f"{address}: net/{name!r} is not a valid network device name: left out")
        if len(names) > 1:
            names.sort()
        return tuple(names)

    def address(self, raw: _ll.RawFunc) -> PciAddress | None:
        flags = raw.flags
        if flags & _ll.FN_BADNAME:
            name = _text(_ll.cstr(raw.name))
            self.note(
                f"bus/pci/devices/{name!r}: not a PCI address: ignored" if name
                else "bus/pci/devices: an entry with an over-long name: ignored"
            )
            return None
        address = _address(raw.domain, raw.bus, raw.slot, raw.function)
        if address is None:
            self.note(f"{_text(_ll.cstr(raw.name))}: PCI domain over 0xffff is not supported: "
                      "ignored")
        elif flags & _ll.FN_VANISHED:
            self.vanished.append(str(address))
            return None
        elif flags & _ll.FN_BAD_IDS:
            self.note(f"{address}: vendor / device / class unreadable: ignored")
            return None
        return address

    def driver(self, raw: bytes) -> str | None:
        """Driver names repeat: decode each distinct one once."""
        name = self.drivers.get(raw)
        if name is None:
            text = _ll.cstr(raw)
            name = self.drivers[raw] = _text(text) if text else ""
        return name or None

    def function(self, address: PciAddress, raw: _ll.RawFunc,
                 by_tuple: dict[tuple[int, int, int, int], PciAddress]) -> PciFunction:
        (_, _, _, _, _, flags, vendor, device, class_code, group, totalvfs, numvfs,
         pf_domain, pf_bus, pf_slot, pf_function, _, _, _, netdev_count, _, _, driver) = raw
        if flags & _ANY_BAD:
            for flag, text in _FLAG_NOTES:
                if flags & flag:
                    self.note(f"{address}: {text}")
        is_pf = flags & _ll.FN_PF
        physfn = None
        if flags & _ll.FN_VF:
            key = (pf_domain, pf_bus, pf_slot, pf_function)
            physfn = by_tuple.get(key) or _address(*key)
        return PciFunction(
            address,
            vendor,
            device,
            class_code,
            self.driver(driver),
            group if group >= 0 else None,
            self.netdevs(address, raw) if netdev_count else (),
            totalvfs if is_pf else None,
            max(numvfs, 0) if is_pf else None,
            physfn,
        )

    def vf(self, pf: PciFunction, v: _ll.RawVirtfn) -> Vf | None:
        fn = self.funcs[v.func] if v.func >= 0 else None
        if v.state == _ll.VIRTFN_VANISHED:
            return None  # already in vanished
        if v.state != _ll.VIRTFN_OK or fn is None:
            target = f"{v.domain:04x}:{v.bus:02x}:{v.slot:02x}.{v.function:x}"
            why = _VIRTFN_NOTES.get(v.state, "not usable")
            self.note(f"{pf.address}: virtfn{v.vf_index} -> {target}: {why}: left out")
            return None
        return Vf(
            fn.address,
            pf.address,
            pf.netdevs,
            v.vf_index,
            fn.netdevs[0] if fn.netdevs else None,
            fn.driver,
            fn.iommu_group,
            fn.vendor,
            fn.device,
            fn.class_code,
        )

    def pf(self, fn: PciFunction, raw: _ll.RawFunc) -> Pf:
        first = raw.virtfn_first
        vfs = tuple(
            vf for v in self.virtfns[first:first + raw.virtfn_count]
            if (vf := self.vf(fn, v)) is not None
        )
        return Pf(
            fn.address,
            fn.netdevs,
            fn.numvfs or 0,
            fn.totalvfs or 0,
            fn.vendor,
            fn.device,
            fn.class_code,
            fn.driver,
            vfs,
            fn.iommu_group,
        )

    def orphans(self) -> None:
        for fn, raw in zip(self.funcs, self.raws):
            if fn is not None and fn.physfn is not None and not raw.flags & _ll.FN_LINKED:
                self.note(
                    f"{fn.address}: physfn names {fn.physfn}, which does not list it as a "
                    "virtfn: not taken as a VF"
                )

    def build(self, root: str) -> Topology:
        addresses = [self.address(raw) for raw in self.raws]
        by_tuple = {
            (a.domain, a.bus, a.slot, a.function): a for a in addresses if a is not None
        }
        funcs = self.funcs
        for i, (address, raw) in enumerate(zip(addresses, self.raws)):
            if address is not None:
                funcs[i] = self.function(address, raw, by_tuple)
        pfs = tuple(
            self.pf(fn, raw) for fn, raw in zip(funcs, self.raws)
            if fn is not None and raw.flags & _ll.FN_PF
        )
        self.orphans()
        return Topology(
            sysfs_root=root,
            functions=tuple(fn for fn in funcs if fn is not None),
            pfs=pfs,
            vanished=tuple(self.vanished),
            anomalies=tuple(self.anomalies),
        )


def scan(sysfs_root: str | os.PathLike[str] | None = None, *, threads: int = 0) -> Topology:
    """One pass over ``<sysfs_root>/bus/pci/devices`` (default :func:`read_pci_sysfs_root`).

    ``threads``: how many readers share the functions (0: one per CPU, for trees of more than
    a few hundred functions). Raises :class:`~pyvfmac.errors.SysfsError` (with errno and the path)
    when sysfs cannot be read, :class:`~pyvfmac.errors.InputError` for a root that is not a
    path or a thread count out of 0..8."""
    root = _check_root(sysfs_root)
    if not isinstance(threads, int) or isinstance(threads, bool) or not 0 <= threads <= 8:
        raise InputError(f"threads {threads!r}: expected 0 (automatic) to 8")
    return _Builder(_ll.topo_scan(root, threads)).build(root)
