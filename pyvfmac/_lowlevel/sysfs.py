"""The sysfs walker: one pass over bus/pci/devices, its records packed for bulk reading
(csrc/vfm_sysfs*.c)."""

from __future__ import annotations

import struct as _struct
from collections import namedtuple as _namedtuple

from . import base as _base
from .base import Layout as _Layout
from .base import ffi, lib

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (mypy: always_true)
if TYPE_CHECKING:
    from typing import Any as _Any


from ..errors import SysfsError as _SysfsError

FN_VANISHED = int(lib.VFM_FN_VANISHED)
FN_BADNAME = int(lib.VFM_FN_BADNAME)
FN_PF = int(lib.VFM_FN_PF)
FN_VF = int(lib.VFM_FN_VF)
FN_LINKED = int(lib.VFM_FN_LINKED)
FN_BAD_DRIVER = int(lib.VFM_FN_BAD_DRIVER)
FN_BAD_IOMMU = int(lib.VFM_FN_BAD_IOMMU)
FN_BAD_PHYSFN = int(lib.VFM_FN_BAD_PHYSFN)
FN_BAD_NETDEV = int(lib.VFM_FN_BAD_NETDEV)
FN_BAD_VIRTFN = int(lib.VFM_FN_BAD_VIRTFN)
FN_BAD_SRIOV = int(lib.VFM_FN_BAD_SRIOV)
FN_BAD_IDS = int(lib.VFM_FN_BAD_IDS)

VIRTFN_OK = int(lib.VFM_VIRTFN_OK)
VIRTFN_MISSING = int(lib.VFM_VIRTFN_MISSING)
VIRTFN_VANISHED = int(lib.VFM_VIRTFN_VANISHED)
VIRTFN_NOT_VF = int(lib.VFM_VIRTFN_NOT_VF)
VIRTFN_MISMATCH = int(lib.VFM_VIRTFN_MISMATCH)
VIRTFN_DUPLICATE = int(lib.VFM_VIRTFN_DUPLICATE)

# The named-tuple view of the walker's records (unpack_scan: tests and debugging; the topology
# reads the packed records as columns). Plain collections.namedtuple: no typing at run time.

RawVirtfn = _namedtuple("RawVirtfn", "vf_index domain bus slot function func state")
RawVirtfn.__doc__ = """One ``virtfnN`` link of a PF (struct vfm_virtfn), all ints: ``func``
indexes the scan's functions (-1: none); ``state``: VIRTFN_*."""

RawFunc = _namedtuple("RawFunc", (
    "name domain bus slot function flags vendor device class_code iommu_group totalvfs numvfs "
    "pf_domain pf_bus pf_slot pf_function pf vf_index netdev_first netdev_count virtfn_first "
    "virtfn_count driver"))
RawFunc.__doc__ = """One entry of ``bus/pci/devices`` as the C walker saw it (struct
vfm_pci_func, field by field). ``name`` and ``driver``: bytes, NUL-padded (driver empty: none);
the rest ints: ``flags`` FN_*; ``iommu_group`` -1 none; ``totalvfs`` / ``numvfs`` -1 not a PF
(numvfs also: unreadable); ``pf_domain`` .. ``pf_function`` the physfn of a VF; ``pf`` the index
of the PF (linked VFs) and ``vf_index``, -1; ``netdev_first`` / ``netdev_count`` and
``virtfn_first`` / ``virtfn_count``: slices of RawScan.netdevs / RawScan.virtfns."""


# struct vfm_pci_func / vfm_virtfn / vfm_netdev, unpacked in bulk. RawFunc / RawVirtfn name
# their fields: C paths map to those names (``addr.`` dropped, ``physfn.`` -> ``pf_``).
_RENAME = {"index": "vf_index"}


def _py_name(path: str) -> str:
    path = path.replace("addr.", "", 1) if path.startswith("addr.") else path
    return _RENAME.get(path, path.replace("physfn.", "pf_", 1))


def _records(cname: str, cls: type) -> _Layout:
    """A record struct's layout, its flattened fields checked against cls's field names."""
    lay = _base.layout(cname)
    names = tuple(_py_name(path) for path, _, _ in lay.fields)
    if names != getattr(cls, "_fields"):  # pragma: no cover - header and Python disagree
        raise ImportError(f"pyvfmac._lowlevel: {cname} fields {names} are not {cls.__name__}'s")
    return lay


_FUNC_LAYOUT = _records("struct vfm_pci_func", RawFunc)
_FUNC = _FUNC_LAYOUT.st
_VIRTFN = _records("struct vfm_virtfn", RawVirtfn).st
_NETDEV = _base.layout("struct vfm_netdev").st


RawScan = _namedtuple("RawScan", "funcs netdevs virtfns")
RawScan.__doc__ = """A scan unpacked: lists of RawFunc, of netdev names (bytes), of RawVirtfn."""


def cstr(raw: bytes) -> bytes:
    """The bytes of a NUL-terminated char array."""
    return raw.partition(b"\0")[0]


class PackedScan:
    """The walker's three arrays copied out of C as they are (struct vfm_pci_func /
    vfm_netdev / vfm_virtfn records back to back): a snapshot that costs one copy to keep and
    is unpacked only when needed (:func:`func_rows`, :func:`netdev_names`, :func:`virtfn_rows`)."""

    __slots__ = ("funcs", "netdevs", "virtfns")

    def __init__(self, funcs: bytes, netdevs: bytes, virtfns: bytes) -> None:
        self.funcs = funcs
        self.netdevs = netdevs
        self.virtfns = virtfns


# struct vfm_pci_func's name (first): func_rows / func_columns leave it out (see func_name).
_NAME_PATH, _NAME_OFF, _NAME_CODE = _FUNC_LAYOUT.fields[0]
_NAME_LEN = _struct.calcsize(_NAME_CODE)
if _NAME_PATH != "name" or _NAME_OFF != 0:  # pragma: no cover - a reordered header
    raise ImportError("pyvfmac._native: struct vfm_pci_func does not start with its name")
# The same struct with the name as pad bytes: the fields of RawFunc after ``name``.
_FUNC_NONAME = _struct.Struct(_FUNC.format.replace(_NAME_CODE, f"{_NAME_LEN}x", 1))


def func_rows(p: PackedScan) -> list[tuple[_Any, ...]]:
    """Every function as a plain tuple: RawFunc's fields but ``name`` (see :func:`func_name`)."""
    return list(_FUNC_NONAME.iter_unpack(p.funcs)) if p.funcs else []


# RawFunc's fields after ``name``, in order, as func_columns reads them (C paths).
_FUNC_COLUMNS = tuple(path for path, _, _ in _FUNC_LAYOUT.fields[1:])


# Where each of RawFunc's fields but ``name`` is in func_rows' tuples / func_columns' list.
FUNC_COLUMN = {name: i for i, name in enumerate(RawFunc._fields[1:])}


def func_columns(p: PackedScan) -> list[list[_Any]]:
    """The same values as :func:`func_rows`, one list per field (column): cheaper to build."""
    return _base.columns(_FUNC_LAYOUT, p.funcs, _FUNC_COLUMNS)


def func_name(p: PackedScan, i: int) -> bytes:
    """The ``bus/pci/devices`` entry name of function ``i`` (NUL padding removed)."""
    return cstr(p.funcs[i * _FUNC.size:i * _FUNC.size + _NAME_LEN])


def netdev_names(p: PackedScan) -> list[bytes]:
    return [n.partition(b"\0")[0] for (n,) in _NETDEV.iter_unpack(p.netdevs)] if p.netdevs else []


def virtfn_rows(p: PackedScan) -> list[tuple[int, int, int, int, int, int, int]]:
    """Every virtfn link as a plain tuple of RawVirtfn's fields."""
    return list(_VIRTFN.iter_unpack(p.virtfns)) if p.virtfns else []


def unpack_scan(p: PackedScan) -> RawScan:
    """The named-tuple view of a packed scan."""
    return RawScan(
        list(map(RawFunc._make, _FUNC.iter_unpack(p.funcs) if p.funcs else ())),
        netdev_names(p),
        list(map(RawVirtfn._make, virtfn_rows(p))),
    )


def _copy_scan(t: _Any) -> PackedScan:
    def copy(ptr: _Any, n: int, size: int) -> bytes:
        return ffi.buffer(ptr, n * size)[:] if n else b""

    return PackedScan(copy(t.funcs, t.n_funcs, _FUNC.size),
                      copy(t.netdevs, t.n_netdevs, _NETDEV.size),
                      copy(t.virtfns, t.n_virtfns, _VIRTFN.size))


def topo_scan_packed(root: str, threads: int = 0) -> PackedScan:
    """One pass of the C walker over ``<root>/bus/pci/devices``, sorted by address (entries whose
    name is not a PCI address last); :class:`SysfsError` naming the path on an I/O failure.
    ``threads``: readers (0: one per CPU for big trees)."""
    out = ffi.new("struct vfm_topo **")
    errpath = ffi.new("char[]", 512)
    rc = lib.vfm_topo_scan(root.encode("utf-8", "surrogateescape"), threads, out, errpath, 512)
    if rc < 0:
        where = _base.msg(errpath)
        path = root if where in ("", ".") else f"{root.rstrip('/')}/{where}"
        raise _SysfsError(-rc, f"cannot scan PCI devices: {path}", device=None)
    try:
        return _copy_scan(out[0])
    finally:
        lib.vfm_topo_free(out[0])


def topo_scan(root: str, threads: int = 0) -> RawScan:
    """:func:`topo_scan_packed`, unpacked into named tuples."""
    return unpack_scan(topo_scan_packed(root, threads))
