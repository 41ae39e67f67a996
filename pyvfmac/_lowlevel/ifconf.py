"""Network namespaces, a netdev's own configuration, IP addresses and routes
(csrc/vfm_ifconf.c; used by pyvfmac.netns)."""

from __future__ import annotations

from . import base as _base
from .base import check, ffi, lib
from .netlink import Socket


def socket_in_netns(bufsize: int, nsfd: int, *, where: str) -> Socket:
    """A :class:`Socket` opened inside the network namespace ``nsfd`` (the caller's thread
    returns to its own namespace)."""
    out = ffi.new("struct vfm_sock **")
    check(lib.vfm_sock_open_netns(out, bufsize, nsfd),
          f"cannot open a rtnetlink socket in network namespace {where}")
    return Socket.adopt(out[0])


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
    check(rc, what, device=device, ext_msg=_base.msg(errbuf))


def addr_add(sock: Socket, ifindex: int, family: int, addr: bytes, prefixlen: int, flags: int,
             *, device: str, what: str) -> None:
    errbuf = ffi.new("char[]", 256)
    rc = lib.vfm_addr_add(sock.ptr, ifindex, family, addr, prefixlen, flags, errbuf, len(errbuf))
    check(rc, what, device=device, ext_msg=_base.msg(errbuf))


def route_add(sock: Socket, ifindex: int, family: int, dst: bytes, dst_len: int,
              gw: bytes | None, *, device: str, what: str) -> None:
    errbuf = ffi.new("char[]", 256)
    rc = lib.vfm_route_add(sock.ptr, ifindex, family, dst, dst_len,
                           gw if gw is not None else ffi.NULL, errbuf, len(errbuf))
    check(rc, what, device=device, ext_msg=_base.msg(errbuf))


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


def netns_socket(nsfd: int, domain: int, kind: int, protocol: int, *, where: str) -> int:
    """A socket's descriptor, made inside the network namespace ``nsfd``."""
    fd = lib.vfm_netns_socket(nsfd, domain, kind, protocol)
    check(min(fd, 0), f"cannot open a socket in network namespace {where}")
    return int(fd)


def netns_open(nsfd: int, path: str, flags: int, *, where: str) -> int:
    """A file's descriptor, opened inside the network namespace ``nsfd``."""
    fd = lib.vfm_netns_open(nsfd, path.encode(), flags)
    check(min(fd, 0), f"cannot open {path} in network namespace {where}")
    return int(fd)
