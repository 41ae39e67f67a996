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
from .types import PciAddress, bulk_constructor, validate_netdev_name

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (mypy: always_true)
if TYPE_CHECKING:
    from typing import Any

__all__ = [
    "Pf",
    "PciFunction",
    "Topology",
    "Vf",
    "read_pci_sysfs_root",
    "read_vf",
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
    """One scan's snapshot. Lookups raise :class:`TopologyError` naming the address or name;
    the lookup tables are built on the first lookup."""

    sysfs_root: str
    functions: tuple[PciFunction, ...]
    pfs: tuple[Pf, ...]
    vanished: tuple[str, ...] = ()
    anomalies: tuple[str, ...] = ()
    _tables: _Tables | None = field(default=None, init=False, repr=False, compare=False)

    def _lookup(self) -> _Tables:
        """The lookup tables, built on the first lookup (a scan that is only listed needs
        none). Two threads may both build them: the result is the same."""
        tables = self._tables
        if tables is None:
            tables = _Tables.of(self)
            object.__setattr__(self, "_tables", tables)
        return tables

    # ---- by address ----

    def function(self, addr: PciAddress | str) -> PciFunction:
        """Any PCI function; TopologyError ``...: not a PCI device``."""
        address = _as_address(addr)
        fn = self._lookup().by_addr.get(address)
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
        found = self._lookup().vf_by_addr.get(address)
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
        found = self._lookup().pf_by_addr.get(address)
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
        fn = self._lookup().by_netdev.get(name)
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
        found = self._lookup().pf_by_addr.get(fn.address)
        if found is None:
            vf = self._lookup().vf_by_addr.get(fn.address)
            what = f"VF {vf.index} of {vf.pf}" if vf is not None else "not SR-IOV capable"
            raise TopologyError(f"{name}: not an SR-IOV PF ({fn.address}: {what})")
        return found

    def find_vf_by_netdev(self, name: str) -> Vf:
        """The VF whose netdev is ``name`` (a VF bound to a host network driver)."""
        fn = self._netdev_function(name)
        found = self._lookup().vf_by_addr.get(fn.address)
        if found is None:
            raise TopologyError(f"{name}: not a VF ({fn.address} is not a VF of any PF)")
        return found


@dataclass(frozen=True, slots=True)
class _Tables:
    """A Topology's lookup tables."""

    by_addr: dict[PciAddress, PciFunction]
    pf_by_addr: dict[PciAddress, Pf]
    vf_by_addr: dict[PciAddress, Vf]
    by_netdev: dict[str, PciFunction]

    @classmethod
    def of(cls, topo: Topology) -> _Tables:
        by_netdev: dict[str, PciFunction] = {}
        for fn in topo.functions:
            for name in fn.netdevs:
                by_netdev.setdefault(name, fn)
        return cls({fn.address: fn for fn in topo.functions}, {pf.address: pf for pf in topo.pfs},
                   {vf.address: vf for pf in topo.pfs for vf in pf.vfs}, by_netdev)


# ---- building a Topology from the C walker's records ----
#
# A scan yields thousands of values; a frozen dataclass's __init__ sets each field through
# object.__setattr__, which cost a third of the whole scan. The values the C walker has already
# checked are made with types.bulk_constructor (the one fast way to build frozen values), which
# fills the slots directly; user input still goes through the classes and their checks.
# tests/test_topology.py compares every field of every value with a constructed one.

_MAKE_ADDRESS = bulk_constructor(PciAddress, checked=True)
_MAKE_FUNCTION = bulk_constructor(PciFunction)
_MAKE_VF = bulk_constructor(Vf)
_MAKE_PF = bulk_constructor(Pf)

# compiled by re on first use, not at import
_PLAIN_NAME = r"[0-9A-Za-z_@+.-]{1,15}"
_PLAIN_NAMES = r"[0-9A-Za-z_@+.-]{1,15}(?:\0[0-9A-Za-z_@+.-]{1,15})*"


def _text(raw: bytes) -> str:
    return raw.decode("utf-8", "surrogateescape")


def _valid_name(name: str) -> bool:
    """validate_netdev_name, with a fast path for the plain names nearly every netdev has."""
    if re.fullmatch(_PLAIN_NAME, name) and name not in (".", ".."):
        return True
    try:
        validate_netdev_name(name)
    except InputError:
        return False
    return True


def _address(domain: int, bus: int, slot: int, function: int) -> PciAddress | None:
    """A PciAddress from the walker's numbers, None when out of range. The C parser admits only
    what the kernel prints (a 32-bit domain, bus 0..ff, slot 0..1f, function 0..7)."""
    if domain > 0xFFFFFFFF or bus > 0xFF or slot > 0x1F or function > 7:
        return None
    return _MAKE_ADDRESS(domain, bus, slot, function)


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
# Entries that give no function: not a PCI address, gone during the scan, ids unreadable.
_NO_FUNCTION = _ll.FN_BADNAME | _ll.FN_VANISHED | _ll.FN_BAD_IDS

_VIRTFN_NOTES = {
    _ll.VIRTFN_MISSING: "no such PCI function",
    _ll.VIRTFN_NOT_VF: "that function has no physfn link",
    _ll.VIRTFN_MISMATCH: "that function's physfn names another PF",
    _ll.VIRTFN_DUPLICATE: "another virtfn link already names that function",
}


class _Builder:
    """Turns the walker's records into the typed values, collecting what was left out: one pass
    over the functions, one over each PF's virtfn links. Anomalies are listed as entries that
    give no function, then problems of functions, then of virtfn links, then VFs that no PF
    claims, each group in address order."""

    def __init__(self, packed: _ll.PackedScan) -> None:
        self.packed = packed
        self.cols = _ll.func_columns(packed)  # RawFunc's fields but name, a list per field
        self.vanished: list[str] = []
        self.entry_notes: list[str] = []
        self.notes: list[str] = []
        self.drivers: dict[bytes, str | None] = {}
        raw = _ll.netdev_names(packed)
        # Every name decoded at once; when all are plain (nearly always) none needs a check.
        self.names = b"\0".join(raw).decode("utf-8", "surrogateescape").split("\0")
        self.names_ok = bool(raw) and re.fullmatch(_PLAIN_NAMES, "\0".join(self.names)) is not None
        if "." in self.names or ".." in self.names:
            self.names_ok = False

    def unusable(self, i: int) -> None:
        """Note why entry ``i`` gives no function."""
        row = [col[i] for col in self.cols]
        flags = row[4]
        if flags & _ll.FN_BADNAME:
            name = _text(_ll.func_name(self.packed, i))
            self.entry_notes.append(
                f"bus/pci/devices/{name!r}: not a PCI address: ignored" if name
                else "bus/pci/devices: an entry with an over-long name: ignored"
            )
            return
        address = _address(*row[:4])
        if address is None:
            self.entry_notes.append(f"{_text(_ll.func_name(self.packed, i))}: not a PCI address "
                                    "the kernel prints: ignored")
        elif flags & _ll.FN_VANISHED:
            self.vanished.append(str(address))
        else:
            self.entry_notes.append(f"{address}: vendor / device / class unreadable: ignored")

    def netdevs(self, address: PciAddress, first: int, count: int) -> tuple[str, ...]:
        names = []
        for name in self.names[first:first + count]:
            if self.names_ok or _valid_name(name):
                names.append(name)
            else:
                self.notes.append(
                    f"{address}: net/{name!r} is not a valid network device name: left out")
        if len(names) > 1:
            names.sort()
        return tuple(names)

    def driver(self, raw: bytes) -> str | None:
        """Driver names repeat: decode each distinct one once."""
        text = _ll.cstr(raw)
        name = self.drivers[raw] = _text(text) if text else None
        return name

    def functions(self) -> tuple[list[Any], list[int], list[int]]:
        """Every function (None where its entry gave none), the indexes of PFs and of VFs
        that no PF claims."""
        n = len(self.cols[0])
        funcs: list[Any] = [None] * n
        addrs: list[Any] = [None] * n
        pf_rows: list[int] = []
        orphans: list[int] = []
        drivers = self.drivers
        names, names_ok = self.names, self.names_ok
        make_address, make_function = _MAKE_ADDRESS, _MAKE_FUNCTION
        is_vf, linked, is_pf = _ll.FN_VF, _ll.FN_LINKED, _ll.FN_PF
        for i, (domain, bus, slot, function, flags, vendor, device, class_code, group, totalvfs,
                numvfs, pf_domain, pf_bus, pf_slot, pf_function, pf, _, netdev_first,
                netdev_count, _, _, driver_raw) in enumerate(zip(*self.cols)):
            if flags & _NO_FUNCTION:
                self.unusable(i)
                continue
            address = addrs[i] = make_address(domain, bus, slot, function)
            if flags & _ANY_BAD:
                for flag, text in _FLAG_NOTES:
                    if flags & flag:
                        self.notes.append(f"{address}: {text}")
            try:
                driver = drivers[driver_raw]
            except KeyError:
                driver = self.driver(driver_raw)
            physfn = None
            if flags & is_vf:
                if flags & linked:
                    physfn = addrs[pf]  # the PF whose virtfn link agrees (None: not built yet)
                else:
                    orphans.append(i)
                if physfn is None:
                    physfn = _address(pf_domain, pf_bus, pf_slot, pf_function)
            if flags & is_pf:
                pf_rows.append(i)
                if numvfs < 0:
                    numvfs = 0
            else:
                totalvfs = numvfs = None
            if not netdev_count:
                netdevs: tuple[str, ...] = ()
            elif netdev_count == 1 and names_ok:
                netdevs = (names[netdev_first],)
            else:
                netdevs = self.netdevs(address, netdev_first, netdev_count)
            funcs[i] = make_function(address, vendor, device, class_code, driver,
                                     group if group >= 0 else None, netdevs, totalvfs, numvfs,
                                     physfn)
        return funcs, pf_rows, orphans

    def pf(self, pf: PciFunction, first: int, count: int,
           virtfns: list[tuple[int, int, int, int, int, int, int]], funcs: list[Any]) -> Pf:
        vfs: list[Vf] = []
        append = vfs.append
        make_vf = _MAKE_VF
        ok, vanished = _ll.VIRTFN_OK, _ll.VIRTFN_VANISHED
        pf_address, pf_netdevs = pf.address, pf.netdevs
        for index, domain, bus, slot, function, func, state in virtfns[first:first + count]:
            fn = funcs[func] if func >= 0 else None
            if state != ok or fn is None:
                if state != vanished:  # a vanished one is already in vanished
                    why = _VIRTFN_NOTES.get(state, "not usable")
                    self.notes.append(f"{pf_address}: virtfn{index} -> {domain:04x}:{bus:02x}:"
                                      f"{slot:02x}.{function:x}: {why}: left out")
                continue
            netdevs = fn.netdevs
            append(make_vf(fn.address, pf_address, pf_netdevs, index,
                           netdevs[0] if netdevs else None, fn.driver, fn.iommu_group,
                           fn.vendor, fn.device, fn.class_code))
        return _MAKE_PF(pf_address, pf_netdevs, pf.numvfs or 0, pf.totalvfs or 0, pf.vendor,
                        pf.device, pf.class_code, pf.driver, tuple(vfs), pf.iommu_group)

    def build(self) -> tuple[tuple[PciFunction, ...], tuple[Pf, ...], tuple[str, ...],
                             tuple[str, ...]]:
        funcs, pf_rows, orphans = self.functions()
        virtfns = _ll.virtfn_rows(self.packed)
        firsts = self.cols[_ll.FUNC_COLUMN["virtfn_first"]]
        counts = self.cols[_ll.FUNC_COLUMN["virtfn_count"]]
        pfs = tuple(self.pf(funcs[i], firsts[i], counts[i], virtfns, funcs) for i in pf_rows)
        for i in orphans:
            fn = funcs[i]
            if fn.physfn is not None:
                self.notes.append(f"{fn.address}: physfn names {fn.physfn}, which does not list "
                                  "it as a virtfn: not taken as a VF")
        return (
            tuple(fn for fn in funcs if fn is not None),
            pfs,
            tuple(self.vanished),
            tuple(self.entry_notes + self.notes),
        )


# ---- one VF without the walk ----


def _entry_names(path: str) -> list[str]:
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


def read_vf(address: PciAddress, sysfs_root: str = "/sys") -> Vf:
    """One VF, read from its own sysfs entries without walking the whole tree (a CNI ADD wants
    one VF, fast): the same :class:`Vf` and the same :class:`TopologyError` messages as
    :meth:`Topology.vf` (``not a PCI device`` / ``not a network device`` / ``not a VF``), and
    ``its PF ... has no network device``. The vendor / device ids are not read (0)."""
    addr = str(address)
    dev = f"{sysfs_root}/bus/pci/devices/{addr}"
    if not os.path.isdir(dev):
        raise TopologyError(f"{addr}: not a PCI device (no {dev})")
    netdevs = _entry_names(f"{dev}/net")
    code = _class_code(dev)
    if not _is_network_class(code) and not netdevs:
        raise TopologyError(f"{addr}: not a network device (PCI class {code:#08x})")
    pf = _link_name(f"{dev}/physfn")
    if pf is None:
        what = "an SR-IOV PF" if os.path.exists(f"{dev}/sriov_totalvfs") else "a PCI function"
        raise TopologyError(f"{addr}: not a VF (it is {what})")
    pf_dir = f"{sysfs_root}/bus/pci/devices/{pf}"
    index = next((int(name[6:]) for name in _entry_names(pf_dir)
                  if name.startswith("virtfn") and _link_name(f"{pf_dir}/{name}") == addr), None)
    if index is None:
        raise TopologyError(f"{addr}: not a VF (its PF {pf} does not list it)")
    pf_netdevs = tuple(_entry_names(f"{pf_dir}/net"))
    if not pf_netdevs:
        raise TopologyError(f"{addr}: its PF {pf} has no network device to program it through")
    group = _link_name(f"{dev}/iommu_group")
    return Vf(address=PciAddress.parse(addr), pf=PciAddress.parse(pf), pf_netdevs=pf_netdevs,
              index=index, netdev=netdevs[0] if netdevs else None,
              driver=_link_name(f"{dev}/driver"),
              iommu_group=int(group) if group is not None and group.isdigit() else None,
              vendor=0, device=0, class_code=code)


def scan(sysfs_root: str | os.PathLike[str] | None = None, *, threads: int = 0) -> Topology:
    """One pass over ``<sysfs_root>/bus/pci/devices`` (default :func:`read_pci_sysfs_root`).

    ``threads``: how many readers share the functions (0: one per CPU, for trees of more than
    a few hundred functions). Raises :class:`~pyvfmac.errors.SysfsError` (with errno and the path)
    when sysfs cannot be read, :class:`~pyvfmac.errors.InputError` for a root that is not a
    path or a thread count out of 0..8.

    Everything is read in one pass and the values (:class:`PciFunction`, :class:`Pf`,
    :class:`Vf`) are built from what was read: they describe the tree as it was then."""
    root = _check_root(sysfs_root)
    if not isinstance(threads, int) or isinstance(threads, bool) or not 0 <= threads <= 8:
        raise InputError(f"threads {threads!r}: expected 0 (automatic) to 8")
    functions, pfs, vanished, anomalies = _Builder(_ll.topo_scan_packed(root, threads)).build()
    return Topology(root, functions, pfs, vanished, anomalies)
