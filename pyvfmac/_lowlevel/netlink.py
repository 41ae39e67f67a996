"""rtnetlink: the socket, batched VF changes, the bulk MAC path, link reads, a netdev's own
MAC, 802.1Qbh port profiles (csrc/vfm_socket.c ... vfm_vf_port.c)."""

from __future__ import annotations

import errno as _errno
import sys as _sys
from collections.abc import Iterable as _Iterable
from collections.abc import Sequence as _Sequence

from ..settings import LINK_STATES as _LINK_STATES
from ..types import LinkInfo as _LinkInfo
from ..types import VfStates as _VfStates
from . import base as _base
from .base import check, ffi, lib

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (mypy: always_true)
if TYPE_CHECKING:
    from collections.abc import Callable as _Callable
    from typing import Any as _Any

_CHANGE = _base.layout("struct vfm_vf_change").st
_RESULT = _base.layout("struct vfm_vf_result").st
_VFINFO_LAYOUT = _base.layout("struct vfm_vf_info")
_VFINFO = _VFINFO_LAYOUT.st

SET_MAC = int(lib.VFM_SET_MAC)
SET_VLAN = int(lib.VFM_SET_VLAN)
SET_SPOOFCHK = int(lib.VFM_SET_SPOOFCHK)
SET_TRUST = int(lib.VFM_SET_TRUST)
SET_LINK_STATE = int(lib.VFM_SET_LINK_STATE)
SET_RATE = int(lib.VFM_SET_RATE)

_PROTO_NAMES = {0: "802.1Q", 0x8100: "802.1Q", 0x88A8: "802.1ad"}

# One packed change: (ifindex, vf, set, mac6, vlan_proto, vlan, qos, spoofchk, trust,
#                     link_state, min_tx_rate, max_tx_rate)
PackedChange = tuple[int, int, int, bytes, int, int, int, int, int, int, int, int]


class Socket:
    """An open NETLINK_ROUTE socket of the C core."""

    __slots__ = ("_ptr", "call_args", "read_args")

    def __init__(self, bufsize: int) -> None:
        out = ffi.new("struct vfm_sock **")
        check(lib.vfm_sock_open(out, bufsize), "cannot open a rtnetlink socket")
        self._adopt(out[0])

    @classmethod
    def adopt(cls, ptr: _Any) -> Socket:
        """The Socket of a ``struct vfm_sock`` the C core opened otherwise (in a namespace)."""
        sock = cls.__new__(cls)
        sock._adopt(ptr)
        return sock

    def _adopt(self, ptr: _Any) -> None:
        self._ptr: _Any = ptr
        # options and out-parameters of the bulk call, made once per socket
        self.call_args: tuple[_Any, _Any, _Any] = (
            ffi.new("struct vfm_batch_opts *"), ffi.new("struct vfm_mac_report **"),
            ffi.new("size_t *"))
        # ... and of a link read: the answer's pointer, the kernel's message
        self.read_args: tuple[_Any, _Any] = (ffi.new("struct vfm_links **"),
                                             ffi.new("char[]", 256))

    def close(self) -> None:
        if getattr(self, "_ptr", None) is not None:  # unset: the C core could not open it
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
    msgs = [_base.msg(res[i].msg) if e else "" for i, e in enumerate(errs)]
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
        return 0, 0, [(int(f.pos), -int(f.err), int(f.attempts), _base.msg(f.msg))
                      for f in (r.fail[i] for i in range(r.n))], cjobs
    finally:
        lib.vfm_mac_report_free(report[0])


def mac_job_names(resolved: _Any) -> list[str]:
    """The PF name of each job :func:`vf_set_macs` resolved (jobs are resolved before any
    other check)."""
    return [_base.msg(j.name) for j in resolved]


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
_LINK_STATE = dict(enumerate(_LINK_STATES))  # IFLA_VF_LINK_STATE_AUTO, _ENABLE, _DISABLE
_NO_VFS = _VfStates.of(())


def _proto_name(proto: int) -> str:
    return _PROTO_NAMES.get(proto, "802.1Q")


# struct vfm_vf_info's numbers as VfState has them (the rest are taken as they are)
_DECODE: dict[str, _Callable[[int], object]] = {
    "vlan_proto": _proto_name, "spoofchk": _TRISTATE.__getitem__,
    "trust": _TRISTATE.__getitem__, "link_state": _LINK_STATE.get,
}


class _VfColumns:
    """A parsed link's VF records (struct vfm_vf_info), copied out of C, read one column at a
    time (VfStates' loader): the numbers through :func:`base.columns`, the MACs as text
    formatted by C."""

    __slots__ = ("_records", "_n")

    def __init__(self, link: _Any, n: int) -> None:
        self._records = ffi.buffer(link.vfs, n * _VFINFO.size)[:]
        self._n = n

    def __call__(self, name: str) -> _Iterable[_Any]:
        if name == "mac":
            size = lib.VFM_MAC_TEXT_LEN * self._n
            text = ffi.new("char[]", size)
            lib.vfm_vfs_mac_text(ffi.from_buffer("struct vfm_vf_info[]", self._records),
                                 self._n, text)
            macs: list[str] = ffi.string(text, size).decode("ascii").split("\n")
            return macs
        (column,) = _base.columns(_VFINFO_LAYOUT, self._records, (name,))
        decode = _DECODE.get(name)
        return column if decode is None else map(decode, column)


def _vf_states(link: _Any) -> _VfStates:
    """The VF states of a parsed link: no VfState is built, and no column read, until one is
    looked at (4096 VFs is one PF's answer, read at boot)."""
    n = int(link.n_vfs)
    return _VfStates(n, _VfColumns(link, n)) if n else _NO_VFS


def _links(ptr: _Any) -> list[_LinkInfo]:
    out = []
    for i in range(int(ptr.n)):
        link = ptr.links[i]
        num_vf = int(link.num_vf)
        vfs = _vf_states(link)
        out.append(_LinkInfo(
            ifindex=int(link.ifindex),
            name=_base.msg(link.name),
            mac=_addr(link.addr, int(link.addr_len)),
            perm_mac=_addr(link.perm_addr, int(link.perm_addr_len)),
            parent_bus=_base.msg(link.parent_bus) or None,
            parent_dev=_base.msg(link.parent_dev) or None,
            num_vf=None if num_vf < 0 else num_vf,
            vfs=vfs,
            missing_vfs=max(0, num_vf - len(vfs)) if link.vf_list else max(0, num_vf),
        ))
    return out


def links_get(sock: Socket, ifindex: int, name: str | None, *, device: str) -> list[_LinkInfo]:
    """RTM_GETLINK: ifindex > 0 one link, 0 by name, < 0 a dump of all links."""
    out, errbuf = sock.read_args
    cname = name.encode() if name is not None else ffi.NULL
    rc = lib.vfm_links_get(sock.ptr, ifindex, cname, out, errbuf, len(errbuf))
    if rc < 0:
        check(rc, "cannot read link and VF state", device=device, ext_msg=_base.msg(errbuf))
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
    check(rc, f"cannot set MAC {addr.hex(':')}", device=device, ext_msg=_base.msg(errbuf))


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
          ext_msg=_base.msg(errbuf))

