"""A VF netdev on either side of a pod: a network namespace (the pod's, or the host's) with an
rtnetlink socket made inside it, the host's sysfs by PCI address, and moving, renaming and
addressing the netdev.

Every change is one RTM_SETLINK / RTM_NEWADDR / RTM_NEWROUTE with its own outcome; errors are
:class:`~pyvfmac.errors.NetlinkError` naming the netdev, the namespace and the errno."""

from __future__ import annotations

import errno
import fcntl
import os
import time

from . import _lowlevel as ll
from .errors import NetlinkError
from .mac import mac_bytes
from .netlink import Rtnl, find_link
from .types import LinkInfo

HOST_NS = "/proc/self/ns/net"
NS_GET_NSTYPE = 0xB703  # ioctl on a namespace file (linux/nsfs.h): its CLONE_NEW* type
CLONE_NEWNET = 0x40000000
RETURN_WAIT = 10.0  # seconds for the kernel to hand a VF netdev back from a deleted netns


class Netns:
    """An open network namespace (``path`` None: the host's) and a socket in it."""

    def __init__(self, path: str | None) -> None:
        self.path = path
        self.label = f"netns {path}" if path else "the host"
        self.fd = os.open(path or HOST_NS, os.O_RDONLY | os.O_CLOEXEC)
        try:
            self.nl = Rtnl(sock=ll.socket_in_netns(0, self.fd if path else -1,
                                                   where=self.label))
        except BaseException:
            os.close(self.fd)
            raise
        self.sock = self.nl.sock

    def close(self) -> None:
        if self.fd >= 0:
            self.nl.close()
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> Netns:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- reading --

    def link(self, name: str) -> LinkInfo | None:
        """The netdev ``name`` in this namespace, or None (:func:`pyvfmac.netlink.find_link`)."""
        return find_link(self.nl, name)

    def find_pci(self, address: str) -> LinkInfo | None:
        """The netdev of PCI function ``address`` in this namespace, or None."""
        for link in self.nl.dump_links():
            if link.parent_bus == "pci" and link.parent_dev == address:
                return link
        return None

    def addresses(self, link: LinkInfo) -> set[str]:
        """The netdev's addresses as ``10.1.2.3/24`` / ``fd00::3/64``."""
        import ipaddress

        out = set()
        for family, plen, raw in ll.addrs_get(self.sock, link.ifindex,
                                               device=f"{link.name} in {self.label}"):
            ip = ipaddress.ip_address(raw)
            out.add(f"{ip}/{plen}")
        return out

    # -- changing --

    def setlink(self, link: LinkInfo, what: str, **conf: object) -> None:
        """One RTM_SETLINK (see :func:`pyvfmac._lowlevel.link_conf_set`)."""
        ll.link_conf_set(self.sock, link.ifindex, what=what,
                         device=f"{link.name} in {self.label}", **conf)  # type: ignore[arg-type]

    def down(self, link: LinkInfo) -> None:
        self.setlink(link, "cannot set it down", up=0)

    def up(self, link: LinkInfo) -> None:
        self.setlink(link, "cannot set it up", up=1)

    def rename(self, link: LinkInfo, name: str) -> None:
        self.setlink(link, f"cannot rename it {name}", name=name)

    def set_mac(self, link: LinkInfo, mac: str) -> None:
        self.setlink(link, f"cannot set its MAC {mac}", addr=mac_bytes(mac))

    def set_mtu(self, link: LinkInfo, mtu: int) -> None:
        self.setlink(link, f"cannot set its MTU {mtu}", mtu=mtu)

    def move(self, link: LinkInfo, to: Netns, name: str) -> None:
        """Move the netdev into ``to`` (the kernel keeps its name there when free, else uses
        ``name``); it arrives down."""
        self.setlink(link, f"cannot move it to {to.label}", netns_fd=to.fd, name=name)

    def add_address(self, link: LinkInfo, cidr: str) -> None:
        import ipaddress
        import socket

        iface = ipaddress.ip_interface(cidr)
        family = socket.AF_INET6 if iface.version == 6 else socket.AF_INET
        nodad = 0x02 if iface.version == 6 else 0  # IFA_F_NODAD: usable at once
        ll.addr_add(self.sock, link.ifindex, family, iface.ip.packed,
                    iface.network.prefixlen, nodad, device=f"{link.name} in {self.label}",
                    what=f"cannot add address {cidr}")

    def add_route(self, link: LinkInfo, dst: str, gw: str | None) -> None:
        import ipaddress
        import socket

        net = ipaddress.ip_network(dst, strict=False)
        family = socket.AF_INET6 if net.version == 6 else socket.AF_INET
        gateway = ipaddress.ip_address(gw).packed if gw else None
        ll.route_add(self.sock, link.ifindex, family, net.network_address.packed,
                     net.prefixlen, gateway, device=f"{link.name} in {self.label}",
                     what=f"cannot add route {dst}" + (f" via {gw}" if gw else ""))


    # -- announcing --

    def announce(self, link: LinkInfo, cidrs: list[str]) -> None:
        """Tell the pod's network its addresses are here now, as sriov-cni does: ``arp_notify``
        on the netdev (the kernel announces it again when the link or its MAC changes), a
        gratuitous ARP for each IPv4 address and an unsolicited neighbour advertisement (to all
        nodes, override set) for each IPv6 one. A VF's MAC was another pod's a moment ago:
        neighbours' caches would otherwise point elsewhere until they expire."""
        import ipaddress
        import socket

        assert self.path is not None and link.mac is not None
        fd = ll.netns_open(self.fd, f"/proc/sys/net/ipv4/conf/{link.name}/arp_notify",
                           os.O_WRONLY, where=self.label)
        with open(fd, "w", closefd=True) as f:
            f.write("1")
        mac = mac_bytes(link.mac)
        ips = [ipaddress.ip_interface(c).ip for c in cidrs]
        v4 = [ip.packed for ip in ips if ip.version == 4]
        v6 = [ip.packed for ip in ips if ip.version == 6]
        if v4:
            sock = socket.socket(fileno=ll.netns_socket(
                self.fd, socket.AF_PACKET, socket.SOCK_RAW, 0, where=self.label))
            with sock:
                sock.bind((link.name, 0x0806))
                for ip in v4:
                    sock.send(gratuitous_arp(mac, ip))
        if v6:
            sock = socket.socket(fileno=ll.netns_socket(
                self.fd, socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6,
                where=self.label))
            with sock:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, 255)
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF, link.ifindex)
                for ip in v6:
                    sock.sendto(neighbour_advert(mac, ip), ("ff02::1", 0, 0, link.ifindex))


def gratuitous_arp(mac: bytes, ip: bytes) -> bytes:
    """An Ethernet frame: a broadcast ARP request for ``ip`` from (``mac``, ``ip``)."""
    arp = (b"\x00\x01\x08\x00\x06\x04\x00\x01" + mac + ip + b"\0" * 6 + ip)
    return b"\xff" * 6 + mac + b"\x08\x06" + arp


def neighbour_advert(mac: bytes, ip: bytes) -> bytes:
    """An ICMPv6 neighbour advertisement of ``ip`` at ``mac`` (override set, not solicited;
    the kernel fills in the checksum), with the target link-layer address option."""
    return b"\x88\x00\x00\x00\x20\x00\x00\x00" + ip + b"\x02\x01" + mac


def open_pod(path: str) -> Netns | None:
    """The pod's namespace, or None when it no longer exists."""
    try:
        return Netns(path)
    except FileNotFoundError:
        return None
    except NetlinkError as exc:
        if exc.errno in (errno.EINVAL, errno.ENOENT):  # not a netns (any more)
            return None
        raise


def netns_gone(path: str) -> bool:
    """Whether ``path`` is certainly no network namespace any more: missing (``ip netns del``,
    ``/proc/PID/ns/net`` of a process that exited) or not a namespace file (an unmounted pin).
    A path that cannot be opened for another reason is not called gone."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except (FileNotFoundError, NotADirectoryError):
        return True
    except OSError:
        return False
    try:
        return fcntl.ioctl(fd, NS_GET_NSTYPE) != CLONE_NEWNET
    except OSError:  # ENOTTY: a plain file, not a namespace
        return True
    finally:
        os.close(fd)


# ---------------------------------------------------------------------------- host sysfs


def host_netdevs(address: str, sysfs_root: str = "/sys") -> list[str]:
    """The host-namespace netdevs of a PCI function (sysfs shows only the reader's namespace)."""
    try:
        return sorted(os.listdir(f"{sysfs_root}/bus/pci/devices/{address}/net"))
    except OSError:
        return []


def wait_host_netdev(address: str, timeout: float, sysfs_root: str = "/sys") -> str | None:
    """The VF's host netdev, waiting up to ``timeout`` for the kernel to hand it back (a deleted
    namespace returns its physical netdevs asynchronously)."""
    deadline = time.monotonic() + timeout
    pause = 0.01
    while True:
        names = host_netdevs(address, sysfs_root)
        if names:
            return names[0]
        if time.monotonic() >= deadline:
            return None
        time.sleep(pause)
        pause = min(pause * 2, 0.2)


def mtu_and_up(name: str, sysfs_root: str = "/sys") -> tuple[int, bool]:
    """A host netdev's MTU and whether it is administratively up (sysfs)."""
    base = f"{sysfs_root}/class/net/{name}"
    try:
        with open(f"{base}/mtu") as f:
            mtu = int(f.read())
        with open(f"{base}/flags") as f:
            flags = int(f.read(), 16)
    except (OSError, ValueError) as exc:
        raise NetlinkError(errno.ENODEV, f"cannot read its MTU and flags: {exc}",
                           device=name) from None
    return mtu, bool(flags & 1)
