"""The one module that touches the cffi ``ffi`` / ``lib`` objects of ``pyvfmac._native``.

Everything else in pyvfmac calls the plain-Python functions defined here.
"""

from __future__ import annotations

from ._native import ffi, lib

__all__ = ["ffi", "lib"]

# ---- netlink (lead) ----

import errno as _errno
import sys as _sys
import struct as _struct
from collections.abc import Sequence as _Sequence
from typing import Any as _Any

from .errors import NetlinkError as _NetlinkError
from .types import LinkInfo as _LinkInfo
from .types import VfState as _VfState
from .types import bulk_constructor as _bulk_constructor
from itertools import repeat as _repeat
from typing import NamedTuple as _NamedTuple

# The C structs' layouts, read from the compiled module (its cdef mirrors the header): changes
# are packed and records unpacked in bulk with struct formats derived here, not one cffi
# attribute access at a time.
_CODES = {"int32_t": "i", "uint32_t": "I", "uint16_t": "H", "uint8_t": "B"}


class _Layout(_NamedTuple):
    st: _struct.Struct
    fields: tuple[tuple[str, int, str], ...]  # (C path, offset, struct code), flattened


def _flat(ctype: _Any, prefix: str = "", base: int = 0) -> list[tuple[str, int, str]]:
    """Every field of a C struct as (path, offset, struct code), nested structs flattened."""
    out: list[tuple[str, int, str]] = []
    for name, f in ctype.fields:
        t, off = f.type, base + f.offset
        if t.kind == "struct":
            out += _flat(t, f"{prefix}{name}.", off)
        elif t.kind == "array" and t.item.cname in ("char", "uint8_t"):
            out.append((prefix + name, off, f"{t.length}s"))
        elif t.kind == "primitive" and t.cname in _CODES:
            out.append((prefix + name, off, _CODES[t.cname]))
        else:  # pragma: no cover - a field kind the bulk readers do not take
            raise ImportError(f"pyvfmac._native: {ctype.cname}.{prefix}{name}: {t.cname}")
    return out


def _layout(cname: str) -> _Layout:
    """The struct.Struct of a C struct of the core (padding where the compiler put it)."""
    fields = _flat(ffi.typeof(cname))
    fmt, at = "=", 0
    for _, off, code in fields:
        fmt += (f"{off - at}x" if off > at else "") + code
        at = off + _struct.calcsize("=" + code)
    size = ffi.sizeof(cname)
    st = _struct.Struct(fmt + (f"{size - at}x" if size > at else ""))
    if st.size != size:  # pragma: no cover - a build/ABI mismatch
        raise ImportError(f"pyvfmac._native: {cname} is {size} bytes, not {st.size}")
    return _Layout(st, tuple(fields))


_CHANGE = _layout("struct vfm_vf_change").st
_RESULT = _layout("struct vfm_vf_result").st
_VFINFO = _layout("struct vfm_vf_info").st

SET_MAC = int(lib.VFM_SET_MAC)
SET_VLAN = int(lib.VFM_SET_VLAN)
SET_SPOOFCHK = int(lib.VFM_SET_SPOOFCHK)
SET_TRUST = int(lib.VFM_SET_TRUST)
SET_LINK_STATE = int(lib.VFM_SET_LINK_STATE)
SET_RATE = int(lib.VFM_SET_RATE)

_LINK_STATE_NAMES = ("auto", "enable", "disable")
_PROTO_NAMES = {0: "802.1Q", 0x8100: "802.1Q", 0x88A8: "802.1ad"}

# One packed change: (ifindex, vf, set, mac6, vlan_proto, vlan, qos, spoofchk, trust,
#                     link_state, min_tx_rate, max_tx_rate)
PackedChange = tuple[int, int, int, bytes, int, int, int, int, int, int, int, int]


def _msg(buf: _Any) -> str:
    return bytes(ffi.string(buf)).decode("utf-8", "replace")


def check(rc: int, what: str, *, device: str | None = None, vf: int | None = None,
          ext_msg: str = "") -> int:
    """Turn a C return code into a :class:`NetlinkError`; pass other values through."""
    if rc < 0:
        raise _NetlinkError(-rc, what, device=device, vf=vf, ext_msg=ext_msg)
    return rc


class Socket:
    """An open NETLINK_ROUTE socket of the C core."""

    __slots__ = ("_ptr", "call_args")

    def __init__(self, bufsize: int) -> None:
        out = ffi.new("struct vfm_sock **")
        check(lib.vfm_sock_open(out, bufsize), "cannot open a rtnetlink socket")
        self._ptr: _Any = out[0]
        # options and out-parameters of the bulk call, made once per socket
        self.call_args: tuple[_Any, _Any, _Any] = (
            ffi.new("struct vfm_batch_opts *"), ffi.new("struct vfm_mac_report **"),
            ffi.new("size_t *"))

    def close(self) -> None:
        if self._ptr is not None:
            lib.vfm_sock_close(self._ptr)
            self._ptr = None

    def __del__(self) -> None:
        self.close()

    @property
    def ptr(self) -> _Any:
        if self._ptr is None:
            raise ValueError("rtnetlink socket is closed")
        return self._ptr


def pack_changes(changes: _Sequence[PackedChange]) -> bytearray:
    buf = bytearray(_CHANGE.size * len(changes))
    pack = _CHANGE.pack_into
    size = _CHANGE.size
    for i, c in enumerate(changes):
        pack(buf, i * size, *c)
    return buf


def vf_apply(sock: Socket, changes: _Sequence[PackedChange], *, max_per_msg: int,
             retries: int, backoff_us: int) -> tuple[list[int], list[int], list[str]]:
    """Apply packed changes; three columns, one entry per change: errno (0 = applied), attempts,
    kernel message ("" unless it failed)."""
    n = len(changes)
    if n == 0:
        return [], [], []
    packed = pack_changes(changes)
    arr = ffi.from_buffer("struct vfm_vf_change[]", packed)
    res = ffi.new("struct vfm_vf_result[]", n)
    opts = ffi.new("struct vfm_batch_opts *", (max_per_msg, retries, backoff_us))
    failed = check(lib.vfm_vf_apply(sock.ptr, arr, n, opts, res), "cannot apply VF changes")
    words = memoryview(ffi.buffer(res)).cast("i")
    step = _RESULT.size // 4
    attempts = words[1::step].tolist()
    if failed == 0:
        return [0] * n, attempts, [""] * n
    errs = [-e for e in words[::step].tolist()]
    msgs = [_msg(res[i].msg) if e else "" for i, e in enumerate(errs)]
    return errs, attempts, msgs


VF_MAX = int(lib.VFM_VF_MAX)


MacJob = tuple[int, str, int]  # (ifindex, or 0 to look the name up; name; entries)


def vf_set_macs(sock: Socket, jobs: _Sequence[MacJob], vfs: _Any, text: bytes, *,
                max_per_msg: int, retries: int, backoff_us: int
                ) -> tuple[int, int, list[tuple[int, int, int, str]], _Any]:
    """Bulk fast path: MAC only, one or more PFs. Job j holds the next ``count`` entries;
    ``text``: one canonical MAC per entry, joined by newlines; ``vfs``: a buffer of uint32 VF
    indices, one per entry, or None (an entry's VF is its position within its job).

    Returns ``(bad, position, failures, resolved)``: ``bad`` is 0, or ENODEV (job ``position``
    names no netdev), ERANGE (the VF index of entry ``position`` is over VF_MAX) or EINVAL (its
    MAC is not canonical, unicast and non-zero), nothing sent then; ``failures``: (entry, errno,
    attempts, kernel message) of the entries that failed; ``resolved``: the jobs as the C core
    resolved them (unless ENODEV), for :func:`mac_job_names`."""
    cjobs = ffi.new("struct vfm_mac_job[]", [(i, n.encode(), c) for i, n, c in jobs])
    vfs_c = ffi.NULL if vfs is None else ffi.from_buffer("uint32_t[]", vfs)
    opts, report, bad = sock.call_args
    opts.max_per_msg, opts.retries, opts.backoff_us = max_per_msg, retries, backoff_us
    rc = lib.vfm_set_macs(sock.ptr, cjobs, len(jobs), vfs_c, text, len(text), opts, report, bad)
    if rc in (-_errno.ENODEV, -_errno.EINVAL, -_errno.ERANGE):
        return -rc, int(bad[0]), [], cjobs
    check(rc, "cannot set VF MACs")
    if rc == 0:
        return 0, 0, [], cjobs
    try:
        r = report[0]
        return 0, 0, [(int(f.pos), -int(f.err), int(f.attempts), _msg(f.msg))
                      for f in (r.fail[i] for i in range(r.n))], cjobs
    finally:
        lib.vfm_mac_report_free(report[0])


def mac_job_names(resolved: _Any) -> list[str]:
    """The PF name of each job :func:`vf_set_macs` resolved (jobs are resolved before any
    other check)."""
    return [_msg(j.name) for j in resolved]


def macs_parse(text: bytes, n: int) -> tuple[bytes, int]:
    """The C parser of the bulk path (for tests): (6 bytes per MAC, -1), or (b"", bad entry)."""
    out = ffi.new("uint8_t[]", 6 * n + 1)
    bad = ffi.new("size_t *")
    rc = lib.vfm_macs_parse(text, len(text), n, out, bad)
    if rc < 0:
        return b"", int(bad[0])
    return bytes(ffi.buffer(out, 6 * n)), -1


def macs_encode(ifindex: int, vfs: _Sequence[int] | None, macs: bytes, *,
                max_per_msg: int = 0, seq: int = 1) -> list[bytes]:
    """The RTM_SETLINK messages the bulk path (:func:`vf_set_macs`) would send for one PF, as its
    own code encodes them (for tests and benches). ``macs``: 6 bytes per VF."""
    n = len(macs) // 6
    text = "\n".join(macs[i:i + 6].hex(":") for i in range(0, 6 * n, 6)).encode()
    job = ffi.new("struct vfm_mac_job[]", [(ifindex, b"", n)])
    vfs_c = ffi.NULL if vfs is None else ffi.new("uint32_t[]", list(vfs))
    used, bad = ffi.new("size_t *"), ffi.new("size_t *")
    buf = ffi.NULL
    rc = lib.vfm_macs_encode(job, 1, vfs_c, text, len(text), max_per_msg, seq, buf, 0, used, bad)
    if rc == -_errno.ENOSPC:
        buf = ffi.new("uint8_t[]", int(used[0]))
        rc = lib.vfm_macs_encode(job, 1, vfs_c, text, len(text), max_per_msg, seq, buf, len(buf),
                                 used, bad)
    check(rc, "cannot encode VF MACs")
    data = bytes(ffi.buffer(buf, int(used[0]))) if rc else b""
    out: list[bytes] = []
    pos = 0
    while pos < len(data):
        size = int.from_bytes(data[pos:pos + 4], _sys.byteorder)
        out.append(data[pos:pos + size])
        pos += size
    return out


def vf_encode(changes: _Sequence[PackedChange], *, max_per_msg: int = 0,
              seq: int = 1) -> list[bytes]:
    """The RTM_SETLINK messages the core would send for these changes (for tests and benches)."""
    packed = pack_changes(changes)
    arr = ffi.from_buffer("struct vfm_vf_change[]", packed)
    buf = ffi.new("uint8_t[]", 1 << 17)
    taken = ffi.new("size_t *")
    out: list[bytes] = []
    pos = 0
    while pos < len(changes):
        n = check(lib.vfm_vf_encode(arr + pos, len(changes) - pos, max_per_msg, seq + len(out),
                                    buf, len(buf), taken), "cannot encode VF changes")
        out.append(bytes(ffi.buffer(buf, n)))
        pos += int(taken[0])
    return out


def _addr(raw: _Any, length: int) -> str | None:
    if length <= 0:
        return None
    return bytes(ffi.buffer(raw, min(length, 32))).hex(":")


_TRISTATE = (False, True, None)  # C: 0, 1, -1 (not reported)
_link_state_name = {0: "auto", 1: "enable", 2: "disable"}.get
_proto_name = _PROTO_NAMES.get
_make_vf_state = _bulk_constructor(_VfState, (
    "vf", "mac", "vlan", "qos", "vlan_proto", "spoofchk", "trust", "link_state", "min_tx_rate",
    "max_tx_rate"))


def _vf_states(link: _Any) -> tuple[_VfState, ...]:
    """The VF states of a parsed link, built column by column (C-level loops; 4096 VFs is one
    PF's answer and is read at boot)."""
    n = int(link.n_vfs)
    if n == 0:
        return ()
    raw = ffi.buffer(link.vfs, n * _VFINFO.size)
    (vf, mac, vlan, qos, proto, spoof, trust, state, min_rate,
     max_rate) = zip(*_VFINFO.iter_unpack(raw))
    text = ffi.new("char[]", 18 * n)
    lib.vfm_vfs_mac_text(link.vfs, n, text)
    macs = ffi.string(text, 18 * n).decode("ascii").split("\n")
    return tuple(map(
        _make_vf_state, vf, macs, vlan, qos, map(_proto_name, proto, _repeat("802.1Q")),
        map(_TRISTATE.__getitem__, spoof), map(_TRISTATE.__getitem__, trust),
        map(_link_state_name, state), min_rate, max_rate,
    ))


def _links(ptr: _Any) -> list[_LinkInfo]:
    out = []
    for i in range(int(ptr.n)):
        link = ptr.links[i]
        num_vf = int(link.num_vf)
        vfs = _vf_states(link)
        out.append(_LinkInfo(
            ifindex=int(link.ifindex),
            name=_msg(link.name),
            mac=_addr(link.addr, int(link.addr_len)),
            perm_mac=_addr(link.perm_addr, int(link.perm_addr_len)),
            parent_bus=_msg(link.parent_bus) or None,
            parent_dev=_msg(link.parent_dev) or None,
            num_vf=None if num_vf < 0 else num_vf,
            vfs=vfs,
            missing_vfs=max(0, num_vf - len(vfs)) if link.vf_list else max(0, num_vf),
        ))
    return out


def links_get(sock: Socket, ifindex: int, name: str | None, *, device: str) -> list[_LinkInfo]:
    """RTM_GETLINK: ifindex > 0 one link, 0 by name, < 0 a dump of all links."""
    out = ffi.new("struct vfm_links **")
    errbuf = ffi.new("char[]", 256)
    cname = name.encode() if name is not None else ffi.NULL
    rc = lib.vfm_links_get(sock.ptr, ifindex, cname, out, errbuf, len(errbuf))
    check(rc, "cannot read link and VF state", device=device, ext_msg=_msg(errbuf))
    try:
        return _links(out[0])
    finally:
        lib.vfm_links_free(out[0])


def links_parse(data: bytes) -> list[_LinkInfo]:
    """Parse received RTM_NEWLINK messages (tests: recorded and hostile replies)."""
    out = ffi.new("struct vfm_links **")
    rc = lib.vfm_links_parse(ffi.from_buffer(data), len(data), out)
    check(rc, "cannot parse link messages")
    try:
        return _links(out[0])
    finally:
        lib.vfm_links_free(out[0])


def link_set_addr(sock: Socket, ifindex: int, addr: bytes, *, device: str) -> None:
    errbuf = ffi.new("char[]", 256)
    rc = lib.vfm_link_set_addr(sock.ptr, ifindex, addr, len(addr), errbuf, len(errbuf))
    check(rc, f"cannot set MAC {addr.hex(':')}", device=device, ext_msg=_msg(errbuf))


def _port_req(ifindex: int, vf: int, request: int, profile: str,
              instance_uuid: bytes | None, host_uuid: bytes | None) -> _Any:
    raw = profile.encode()
    if len(raw) >= 40:
        raise ValueError(f"port profile {profile!r}: longer than 39 bytes")
    req = ffi.new("struct vfm_port_req *")
    req.ifindex = ifindex
    req.vf = vf
    req.request = request
    ffi.memmove(req.profile, raw, len(raw))
    if instance_uuid is not None:
        ffi.memmove(req.instance_uuid, instance_uuid, 16)
        req.has_instance_uuid = 1
    if host_uuid is not None:
        ffi.memmove(req.host_uuid, host_uuid, 16)
        req.has_host_uuid = 1
    return req


PORT_ASSOCIATE = int(lib.VFM_PORT_REQUEST_ASSOCIATE)
PORT_DISASSOCIATE = int(lib.VFM_PORT_REQUEST_DISASSOCIATE)


def vf_port_encode(ifindex: int, vf: int, request: int, profile: str,
                   instance_uuid: bytes | None, host_uuid: bytes | None, seq: int = 1) -> bytes:
    req = _port_req(ifindex, vf, request, profile, instance_uuid, host_uuid)
    buf = ffi.new("uint8_t[]", 512)
    n = check(lib.vfm_vf_port_encode(req, seq, buf, len(buf)), "cannot encode port profile")
    return bytes(ffi.buffer(buf, n))


def vf_port_set(sock: Socket, ifindex: int, vf: int, request: int, profile: str,
                instance_uuid: bytes | None, host_uuid: bytes | None, *, device: str) -> None:
    req = _port_req(ifindex, vf, request, profile, instance_uuid, host_uuid)
    errbuf = ffi.new("char[]", 256)
    rc = lib.vfm_vf_port_set(sock.ptr, req, errbuf, len(errbuf))
    verb = "associate" if request == PORT_ASSOCIATE else "disassociate"
    check(rc, f"cannot {verb} port profile {profile!r}", device=device, vf=vf,
          ext_msg=_msg(errbuf))


ENODEV = _errno.ENODEV

# ---- sysfs walker (topology) ----

from .errors import SysfsError as _SysfsError

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

class RawVirtfn(_NamedTuple):
    """One ``virtfnN`` link of a PF (struct vfm_virtfn): ``func`` indexes the scan's functions
    (-1: none)."""

    vf_index: int
    domain: int
    bus: int
    slot: int
    function: int
    func: int
    state: int  # VIRTFN_*


class RawFunc(_NamedTuple):
    """One entry of ``bus/pci/devices`` as the C walker saw it (struct vfm_pci_func, field by
    field). ``name`` and ``driver`` are NUL-padded; ``flags``: FN_*."""

    name: bytes
    domain: int
    bus: int
    slot: int
    function: int
    flags: int
    vendor: int
    device: int
    class_code: int
    iommu_group: int  # -1: none
    totalvfs: int  # -1: not a PF
    numvfs: int  # -1: not a PF / unreadable
    pf_domain: int  # physfn (FN_VF)
    pf_bus: int
    pf_slot: int
    pf_function: int
    pf: int  # index of the PF (linked VFs), -1
    vf_index: int  # -1
    netdev_first: int  # RawScan.netdevs[first:first + count]
    netdev_count: int
    virtfn_first: int  # RawScan.virtfns[first:first + count]
    virtfn_count: int
    driver: bytes  # NUL-padded, empty: none


# struct vfm_pci_func / vfm_virtfn / vfm_netdev, unpacked in bulk. RawFunc / RawVirtfn name
# their fields: C paths map to those names (``addr.`` dropped, ``physfn.`` -> ``pf_``).
_RENAME = {"index": "vf_index"}


def _py_name(path: str) -> str:
    path = path.replace("addr.", "", 1) if path.startswith("addr.") else path
    return _RENAME.get(path, path.replace("physfn.", "pf_", 1))


def _records(cname: str, cls: type) -> _Layout:
    """A record struct's layout, its flattened fields checked against cls's field names."""
    lay = _layout(cname)
    names = tuple(_py_name(path) for path, _, _ in lay.fields)
    if names != getattr(cls, "_fields"):  # pragma: no cover - header and Python disagree
        raise ImportError(f"pyvfmac._lowlevel: {cname} fields {names} are not {cls.__name__}'s")
    return lay


_FUNC_LAYOUT = _records("struct vfm_pci_func", RawFunc)
_FUNC = _FUNC_LAYOUT.st
_VIRTFN = _records("struct vfm_virtfn", RawVirtfn).st
_NETDEV = _layout("struct vfm_netdev").st


class RawScan(_NamedTuple):
    funcs: list[RawFunc]
    netdevs: list[bytes]
    virtfns: list[RawVirtfn]


def cstr(raw: bytes) -> bytes:
    """The bytes of a NUL-terminated char array."""
    return raw.partition(b"\0")[0]


class PackedScan(_NamedTuple):
    """The walker's three arrays copied out of C as they are (struct vfm_pci_func /
    vfm_netdev / vfm_virtfn records back to back): a snapshot that costs one copy to keep and
    is unpacked only when needed (:func:`func_rows`, :func:`netdev_names`, :func:`virtfn_rows`)."""

    funcs: bytes
    netdevs: bytes
    virtfns: bytes


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


def _func_column(offset: int, code: str) -> tuple[str, int, int]:
    """How func_columns reads a field: ("I" / "i", 32-bit word index, 0) or ("s", offset, length)."""
    if code.endswith("s"):
        return "s", offset, _struct.calcsize(code)
    if code not in "Ii" or offset % 4:  # pragma: no cover - a field the reader cannot take
        raise ImportError(f"pyvfmac._native: vfm_pci_func field at {offset}: {code!r}")
    return code, offset // 4, 0


# RawFunc's fields after ``name``, in order, as func_columns reads them.
_FUNC_COLUMNS = tuple(_func_column(off, code) for _, off, code in _FUNC_LAYOUT.fields[1:])
if _FUNC.size % 4:  # pragma: no cover - a layout the column reader cannot take
    raise ImportError("pyvfmac._native: struct vfm_pci_func is not a whole number of words")


# Where each of RawFunc's fields but ``name`` is in func_rows' tuples / func_columns' list.
FUNC_COLUMN = {name: i for i, name in enumerate(RawFunc._fields[1:])}


def func_columns(p: PackedScan) -> list[list[_Any]]:
    """The same values as :func:`func_rows`, one list per field (column): cheaper to build."""
    buf = p.funcs
    if not buf:
        return [[] for _ in _FUNC_COLUMNS]
    size = _FUNC.size
    words = {"I": memoryview(buf).cast("I"), "i": memoryview(buf).cast("i")}
    return [words[kind][at::size // 4].tolist() if kind != "s"
            else [buf[o:o + length] for o in range(at, len(buf), size)]
            for kind, at, length in _FUNC_COLUMNS]


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
        where = _msg(errpath)
        path = root if where in ("", ".") else f"{root.rstrip('/')}/{where}"
        raise _SysfsError(-rc, f"cannot scan PCI devices: {path}", device=None)
    try:
        return _copy_scan(out[0])
    finally:
        lib.vfm_topo_free(out[0])


def topo_scan(root: str, threads: int = 0) -> RawScan:
    """:func:`topo_scan_packed`, unpacked into named tuples."""
    return unpack_scan(topo_scan_packed(root, threads))


# ---- CNI: network namespaces, a netdev's own configuration, IP addresses and routes ----
# (csrc/vfm_ifconf.c; used by pyvfmac.cni.netns)


def socket_in_netns(bufsize: int, nsfd: int, *, where: str) -> Socket:
    """A :class:`Socket` opened inside the network namespace ``nsfd`` (the caller's thread
    returns to its own namespace)."""
    out = ffi.new("struct vfm_sock **")
    check(lib.vfm_sock_open_netns(out, bufsize, nsfd),
          f"cannot open a rtnetlink socket in network namespace {where}")
    sock = Socket.__new__(Socket)
    sock._ptr = out[0]
    sock.call_args = (ffi.new("struct vfm_batch_opts *"), ffi.new("struct vfm_mac_report **"),
                      ffi.new("size_t *"))
    return sock


def link_conf_set(sock: Socket, ifindex: int, *, what: str, device: str, netns_fd: int = -1,
                  name: str = "", mtu: int = 0, addr: bytes = b"", up: int = -1) -> None:
    """One RTM_SETLINK of a netdev: move to ``netns_fd``, rename, MTU, own address, up/down."""
    conf = ffi.new("struct vfm_link_conf *")
    conf.ifindex = ifindex
    conf.netns_fd = netns_fd
    conf.name = name.encode()
    conf.mtu = mtu
    conf.addr = addr
    conf.addr_len = len(addr)
    conf.up = up
    errbuf = ffi.new("char[]", 256)
    rc = lib.vfm_link_conf_set(sock.ptr, conf, errbuf, len(errbuf))
    check(rc, what, device=device, ext_msg=_msg(errbuf))


def addr_add(sock: Socket, ifindex: int, family: int, addr: bytes, prefixlen: int, flags: int,
             *, device: str, what: str) -> None:
    errbuf = ffi.new("char[]", 256)
    rc = lib.vfm_addr_add(sock.ptr, ifindex, family, addr, prefixlen, flags, errbuf, len(errbuf))
    check(rc, what, device=device, ext_msg=_msg(errbuf))


def route_add(sock: Socket, ifindex: int, family: int, dst: bytes, dst_len: int,
              gw: bytes | None, *, device: str, what: str) -> None:
    errbuf = ffi.new("char[]", 256)
    rc = lib.vfm_route_add(sock.ptr, ifindex, family, dst, dst_len,
                           gw if gw is not None else ffi.NULL, errbuf, len(errbuf))
    check(rc, what, device=device, ext_msg=_msg(errbuf))


def addrs_get(sock: Socket, ifindex: int, *, device: str) -> list[tuple[int, int, bytes]]:
    """The addresses of one netdev: (family, prefix length, address bytes)."""
    out = ffi.new("struct vfm_ifaddrs **")
    check(lib.vfm_addrs_get(sock.ptr, ifindex, out), "cannot list addresses", device=device)
    try:
        found = []
        for i in range(out[0].n):
            a = out[0].addrs[i]
            size = 4 if a.family == 2 else 16
            found.append((int(a.family), int(a.prefixlen), bytes(ffi.buffer(a.addr, size))))
        return found
    finally:
        lib.vfm_addrs_free(out[0])
