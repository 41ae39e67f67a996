"""The kernel's events, as values: uevents and rtnetlink link messages.

Two non-blocking netlink sockets, read only when the selector says so:

- :class:`UeventSocket`: ``NETLINK_KOBJECT_UEVENT``, kernel multicast group 1 (the kernel's own
  messages, not udev's re-broadcasts). A message is ``ACTION@DEVPATH`` then ``KEY=VALUE``
  fields, NUL-separated; :func:`parse_uevent` keeps those of the subsystems asked for.
- :class:`LinkSocket`: ``NETLINK_ROUTE`` subscribed to ``RTNLGRP_LINK``; :func:`parse_link_messages`
  turns ``RTM_NEWLINK`` / ``RTM_DELLINK`` into :class:`LinkEvent` (ifindex, name, parent device).

A receive buffer that overflowed (``ENOBUFS``: the kernel dropped messages, e.g. in a storm of
thousands of VF changes) is reported as :data:`OVERFLOW`, so that the caller re-checks everything
instead of trusting a partial picture. Pure-Python is enough: a 4096-VF storm is a few thousand
messages of a few hundred bytes, read in batches of up to 64 per wake-up.
"""

from __future__ import annotations

import errno
import os
import socket
import sys
import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Final, Literal

NETLINK_ROUTE: Final = 0
NETLINK_KOBJECT_UEVENT: Final = 15
UEVENT_KERNEL_GROUP: Final = 1
RTMGRP_LINK: Final = 1
RTM_NEWLINK: Final = 16
RTM_DELLINK: Final = 17
NLMSG_ERROR: Final = 2
NLMSG_OVERRUN: Final = 4
IFLA_IFNAME: Final = 3
IFLA_NUM_VF: Final = 21
IFLA_PARENT_DEV_NAME: Final = 56
IFLA_PARENT_DEV_BUS_NAME: Final = 57
SO_RCVBUFFORCE: Final = 33
RCVBUF: Final = 8 << 20  # 8 MiB: a 4096-VF storm fits when the process may force it (root)
BATCH: Final = 64  # messages per wake-up, so one busy socket cannot starve the other one

_NLMSGHDR = struct.Struct("=IHHII")
_IFINFOMSG = struct.Struct("=BxHiII")
_RTATTR = struct.Struct("=HH")
WATCHED_SUBSYSTEMS: Final = frozenset({"pci", "net"})


@dataclass(frozen=True, slots=True)
class Uevent:
    """One kernel uevent: ``action`` (add, remove, change, bind, unbind, move, ...), ``devpath``
    (below /sys, starts with /devices), ``subsystem`` and every field (``env``)."""

    action: str
    devpath: str
    subsystem: str
    env: dict[str, str] = field(default_factory=dict, compare=False)

    @property
    def interface(self) -> str | None:
        return self.env.get("INTERFACE")

    @property
    def ifindex(self) -> int | None:
        text = self.env.get("IFINDEX", "")
        return int(text) if text.isdigit() else None

    def describe(self) -> str:
        name = self.interface or os.path.basename(self.devpath)
        return f"uevent {self.subsystem} {self.action} {name}"


@dataclass(frozen=True, slots=True)
class LinkEvent:
    """One rtnetlink link message: ``kind`` new or del, the interface's index and name, and its
    parent device when the kernel says (``parent_bus`` "pci", ``parent`` "0000:01:00.0")."""

    kind: Literal["new", "del"]
    ifindex: int
    name: str | None
    parent_bus: str | None = None
    parent: str | None = None
    num_vf: int | None = None  # IFLA_NUM_VF, when the kernel sends it (a PF's VF count)

    def describe(self) -> str:
        vfs = f" ({self.num_vf} VFs)" if self.num_vf is not None else ""
        return f"link {self.kind} {self.name or self.ifindex}{vfs}"


@dataclass(frozen=True, slots=True)
class Overflow:
    """Messages were lost (ENOBUFS or NLMSG_OVERRUN) on the named socket."""

    source: str

    def describe(self) -> str:
        return f"{self.source} events lost (receive buffer overflow)"


OVERFLOW_UEVENT: Final = Overflow("uevent")
OVERFLOW_LINK: Final = Overflow("link")
Event = Uevent | LinkEvent | Overflow


def parse_uevent(data: bytes, subsystems: Iterable[str] | None = WATCHED_SUBSYSTEMS) -> Uevent | None:
    """A kernel uevent message -> :class:`Uevent`; None for anything else (udev's ``libudev``
    re-broadcasts, a malformed header, a subsystem not in ``subsystems``)."""
    parts = data.split(b"\0")
    head = parts[0].decode("utf-8", "replace")
    action, at, devpath = head.partition("@")
    if not at or not action or not devpath.startswith("/"):
        return None
    env: dict[str, str] = {}
    for raw in parts[1:]:
        key, eq, value = raw.decode("utf-8", "replace").partition("=")
        if eq and key:
            env[key] = value
    subsystem = env.get("SUBSYSTEM", "")
    if subsystems is not None and subsystem not in subsystems:
        return None
    return Uevent(env.get("ACTION", action), env.get("DEVPATH", devpath), subsystem, env)


def _attrs(data: bytes, start: int, end: int) -> Iterator[tuple[int, bytes]]:
    while start + _RTATTR.size <= end:
        length, kind = _RTATTR.unpack_from(data, start)
        if length < _RTATTR.size or start + length > end:
            return
        yield kind & 0x3FFF, data[start + _RTATTR.size:start + length]
        start += (length + 3) & ~3


def _cstr(value: bytes) -> str:
    return value.split(b"\0", 1)[0].decode("utf-8", "replace")


def _link_event(data: bytes, kind: Literal["new", "del"], start: int, end: int) -> LinkEvent | None:
    if start + _IFINFOMSG.size > end:
        return None
    _family, _type, ifindex, _flags, _change = _IFINFOMSG.unpack_from(data, start)
    name = parent_bus = parent = None
    num_vf = None
    for attr, value in _attrs(data, start + _IFINFOMSG.size, end):
        if attr == IFLA_IFNAME:
            name = _cstr(value)
        elif attr == IFLA_PARENT_DEV_NAME:
            parent = _cstr(value)
        elif attr == IFLA_PARENT_DEV_BUS_NAME:
            parent_bus = _cstr(value)
        elif attr == IFLA_NUM_VF and len(value) >= 4:
            num_vf = int.from_bytes(value[:4], sys.byteorder)
    return LinkEvent(kind, ifindex, name, parent_bus, parent, num_vf)


def parse_link_messages(data: bytes) -> list[LinkEvent | Overflow]:
    """Every RTM_NEWLINK / RTM_DELLINK in one datagram (other messages are skipped; a truncated
    message ends the walk; NLMSG_OVERRUN is an :data:`OVERFLOW_LINK`)."""
    out: list[LinkEvent | Overflow] = []
    pos = 0
    while pos + _NLMSGHDR.size <= len(data):
        length, mtype, _flags, _seq, _pid = _NLMSGHDR.unpack_from(data, pos)
        if length < _NLMSGHDR.size or pos + length > len(data):
            break
        body = pos + _NLMSGHDR.size
        if mtype in (RTM_NEWLINK, RTM_DELLINK):
            event = _link_event(data, "new" if mtype == RTM_NEWLINK else "del", body, pos + length)
            if event is not None:
                out.append(event)
        elif mtype == NLMSG_OVERRUN:
            out.append(OVERFLOW_LINK)
        pos += (length + 3) & ~3
    return out


def _open(protocol: int, groups: int) -> socket.socket:
    sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_NONBLOCK
                         | socket.SOCK_CLOEXEC, protocol)
    try:
        try:
            sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, RCVBUF)
        except OSError:  # not CAP_NET_ADMIN: as much as net.core.rmem_max allows
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF)
        sock.bind((0, groups))
    except BaseException:
        sock.close()
        raise
    return sock


class _NetlinkReader:
    source = ""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock

    def fileno(self) -> int:
        return self.sock.fileno()

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> _NetlinkReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _datagrams(self, limit: int) -> Iterator[bytes | None]:
        """Up to ``limit`` datagrams that are waiting; None for a lost batch (ENOBUFS)."""
        for _ in range(limit):
            try:
                yield self.sock.recv(1 << 16)
            except BlockingIOError:
                return
            except OSError as exc:
                if exc.errno != errno.ENOBUFS:
                    raise
                yield None


class UeventSocket(_NetlinkReader):
    """The kernel's uevents for ``subsystems`` (default pci and net)."""

    source = "uevent"

    def __init__(self, subsystems: Iterable[str] = WATCHED_SUBSYSTEMS,
                 sock: socket.socket | None = None) -> None:
        super().__init__(sock or _open(NETLINK_KOBJECT_UEVENT, UEVENT_KERNEL_GROUP))
        self.subsystems = frozenset(subsystems)

    def read(self, limit: int = BATCH) -> list[Uevent | Overflow]:
        out: list[Uevent | Overflow] = []
        for data in self._datagrams(limit):
            if data is None:
                out.append(OVERFLOW_UEVENT)
            elif (event := parse_uevent(data, self.subsystems)) is not None:
                out.append(event)
        return out


class LinkSocket(_NetlinkReader):
    """rtnetlink link events (RTNLGRP_LINK)."""

    source = "link"

    def __init__(self, sock: socket.socket | None = None) -> None:
        super().__init__(sock or _open(NETLINK_ROUTE, RTMGRP_LINK))

    def read(self, limit: int = BATCH) -> list[LinkEvent | Overflow]:
        out: list[LinkEvent | Overflow] = []
        for data in self._datagrams(limit):
            if data is None:
                out.append(OVERFLOW_LINK)
            else:
                out.extend(parse_link_messages(data))
        return out
