"""The host an attach, detach or restore works on, and what it looks like now.

:class:`Host` bundles the state store, one rtnetlink socket and the sysfs root; :class:`Snapshot`
is one dump of every link: each VF's state and every MAC in use on the host, by netdev or VF.
"""

from __future__ import annotations

import errno
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from .errors import NetlinkError
from .netlink import Rtnl
from .records import Attachment
from .store import Store
from .types import LinkInfo, VfState

Progress = Callable[[str], None] | None

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (mypy: always_true)
if TYPE_CHECKING:  # annotations only: vfmac-cni's DEL imports this module, and none of these
    from .domain import DeviceSpec
    from .netlink import LinkIO, VfIO
    from .netns import Netns
    from .topology import Topology

__all__ = ["Host", "Progress", "Snapshot", "host_uuid", "netdev_mac_is", "open_host", "owner_of",
           "recorded_by_netdev"]


@dataclass
class Host:
    """What an operation works with: the state store, one rtnetlink socket, the sysfs root, and
    the host's network namespace for moving netdevs in and out of pods (opened on first use)."""

    store: Store
    nl: LinkIO  # an Rtnl (tests: a fake, checked against LinkIO)
    sysfs_root: str = "/sys"
    progress: Progress = None
    _ns: Netns | None = field(default=None, init=False, repr=False)

    @property
    def ns(self) -> Netns:
        """The host's network namespace (:class:`~pyvfmac.netns.Netns`)."""
        if self._ns is None:
            from .netns import Netns

            self._ns = Netns(None)
        return self._ns

    def scan(self) -> Topology:
        from .topology import scan

        return scan(self.sysfs_root)

    def say(self, text: str) -> None:
        if self.progress is not None:
            self.progress(text)

    def close(self) -> None:
        if self._ns is not None:
            self._ns.close()
        self.nl.close()
        self.store.close()


def open_host(*, state_dir: str | None = None, sysfs_root: str = "/sys",
              progress: Progress = None) -> Host:
    store = Store(state_dir)
    try:
        return Host(store=store, nl=Rtnl(), sysfs_root=sysfs_root, progress=progress)
    except BaseException:
        store.close()
        raise


@dataclass
class Snapshot:
    """One dump of all links: VF states by (PF, index) and every MAC on the host, each with its
    first user (``netdev NAME`` or ``PF vf N``)."""

    links: dict[str, LinkInfo]
    macs: dict[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, links: Iterable[LinkInfo]) -> Snapshot:
        snap = cls({link.name: link for link in links})
        for link in snap.links.values():
            if link.mac:
                snap.macs.setdefault(link.mac, f"netdev {link.name}")
            for st in link.vfs:
                snap.macs.setdefault(st.mac, f"{link.name} vf {st.vf}")
        return snap

    @classmethod
    def take(cls, nl: VfIO) -> Snapshot:
        return cls.of(nl.dump_links())

    def vf_state(self, pf: str, index: int) -> VfState:
        link = self.links.get(pf)
        if link is None:
            raise NetlinkError(errno.ENODEV, "PF netdev vanished", device=pf)
        return link.vf(index)

    def holders(self, mac: str) -> list[str]:
        """Every netdev and VF that has ``mac`` now."""
        return ([f"netdev {n}" for n, link in self.links.items() if link.mac == mac]
                + [f"{n} vf {s.vf}" for n, link in self.links.items() for s in link.vfs
                   if s.mac == mac])

    def netdev_mac(self, netdev: str | None) -> str | None:
        """The MAC of ``netdev`` in this dump (None: no such netdev, or none given)."""
        link = self.links.get(netdev) if netdev else None
        return link.mac if link is not None else None


def owner_of(spec: DeviceSpec) -> str:
    """Who holds a VF: a network allocation is (network, MAC); otherwise the fixed MAC."""
    return spec.key if spec.network is not None else f"mac:{spec.mac}"


def recorded_by_netdev(store: Store, netdev: str) -> Attachment | None:
    """The record of the VF whose netdev was ``netdev`` when saved (bound to vfio-pci by us, it
    has no netdev now)."""
    for att in store.all():
        if att.original.netdev == netdev:
            return att
    return None


def host_uuid() -> str | None:
    """The host's UUID for 802.1Qbh (libvirt sends the host's SMBIOS UUID); machine-id here."""
    for path in ("/sys/class/dmi/id/product_uuid", "/etc/machine-id"):
        try:
            with open(path, encoding="ascii") as f:
                return str(uuid.UUID(f.read().strip()))
        except (OSError, ValueError):
            continue
    return None


def netdev_mac_is(host: Host, netdev: str, mac: str, tries: int = 50) -> bool:
    """Whether ``netdev`` shows ``mac``, waiting up to ``tries`` x 40 ms (drivers apply it late)."""
    for _ in range(tries):
        try:
            if host.nl.read_link(netdev, strict=False).mac == mac:
                return True
        except NetlinkError:
            pass
        time.sleep(0.04)
    return False
