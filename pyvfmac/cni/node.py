"""What one call of vfmac-cni works with: the state store, the pod table, rtnetlink and the host's
network namespace."""

from __future__ import annotations

from ..netlink import Rtnl
from ..store import Store
from .netns import Netns
from .records import PodLinks


class Node:
    """What a call works with: the state store, the pod table, rtnetlink, the host namespace
    (opened on first use)."""

    def __init__(self, store: Store, links: PodLinks, nl: Rtnl, sysfs_root: str = "/sys") -> None:
        self.store = store
        self.links = links
        self.nl = nl
        self.sysfs_root = sysfs_root
        self._host: Netns | None = None

    @property
    def host(self) -> Netns:
        if self._host is None:
            self._host = Netns(None)
        return self._host

    def close(self) -> None:
        if self._host is not None:
            self._host.close()
        self.nl.close()
        self.links.close()
        self.store.close()


def open_node(state_dir: str | None = None, sysfs_root: str = "/sys") -> Node:
    store = Store(state_dir)
    try:
        links = PodLinks(store.path)
    except BaseException:
        store.close()
        raise
    try:
        return Node(store=store, links=links, nl=Rtnl(), sysfs_root=sysfs_root)
    except BaseException:
        links.close()
        store.close()
        raise


__all__ = ["Node", "open_node"]
