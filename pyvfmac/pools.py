"""Networks that are pools of VFs (``<forward mode='hostdev'>``): define, start, stop, show,
and which VFs are free.

A VF of a started network is *free* when pyvfmac has not allocated or attached it and nobody
else holds it (:mod:`pyvfmac.owners`: the one rule of who holds a VF).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from .errors import PoolError, TopologyError, VfmacError
from .files import read_text
from .host import open_host
from .network import NetworkSpec, PoolEntry, parse_network
from .owners import held_outside
from .records import Allocation, NetworkRecord
from .restore import restore_attachment
from .store import Store
from .topology import Topology, Vf
from .types import PciAddress

def _entry_vfs(entry: PoolEntry, topo: Topology, net: str) -> list[Vf]:
    try:
        if entry.kind == "pf":
            assert entry.dev is not None
            pf = topo.pf_by_netdev(entry.dev)
            if not pf.vfs:
                raise PoolError(f"network {net}: <pf dev='{entry.dev}'> has no VFs (sriov_numvfs 0)")
            return list(pf.vfs)
        if entry.kind == "interface":
            assert entry.dev is not None
            return [topo.find_vf_by_netdev(entry.dev)]
        assert entry.address is not None
        return [topo.vf(entry.address)]
    except TopologyError as exc:
        what = f"<{entry.kind} dev='{entry.dev}'>" if entry.dev else f"<address {entry.address}>"
        raise PoolError(f"network {net}: pool entry {what}: {exc}") from None


def resolve_pool(spec: NetworkSpec, topo: Topology) -> list[str]:
    """Every pool entry as VF keys (canonical PCI addresses), in pool order, without repeats."""
    keys: list[str] = []
    for entry in spec.pool:
        for vf in _entry_vfs(entry, topo, spec.name):
            key = str(vf.address)
            if key not in keys:
                keys.append(key)
    if not keys:
        raise PoolError(f"network {spec.name}: the pool resolves to no VF")
    return keys


def _defined(store: Store, network: str) -> NetworkRecord:
    rec = store.get_network(network)
    if rec is None:
        raise PoolError(f"network {network}: not defined")
    return rec


def eligible(store: Store, network: str | NetworkRecord, topo: Topology) -> list[str]:
    """The started network's pool, in order, without VFs held outside pyvfmac (``network``: its
    name, or its record already read)."""
    rec = network if isinstance(network, NetworkRecord) else _defined(store, network)
    ours = {a.vf_key for a in store.all()} | {a.vf_key for a in store.allocations()}
    out = []
    for key in rec.pool:
        if key in ours:
            out.append(key)  # the store decides; it is busy
            continue
        try:
            topo.vf(PciAddress.parse(key))
        except TopologyError:
            continue  # gone (VFs destroyed since start)
        if held_outside(key, topo.sysfs_root) is None:
            out.append(key)
    return out


@dataclass(frozen=True, slots=True)
class PoolSlot:
    """One VF of a network's pool as ``net-show`` shows it."""

    key: str
    pf: str | None
    vf: int | None
    netdev: str | None
    driver: str | None
    state: str          # free / in use / held / missing
    detail: str


def pool_view(store: Store, network: str, topo: Topology) -> list[PoolSlot]:
    """Every VF of the network's pool (resolved now when it is not started) and its state."""
    rec = _defined(store, network)
    if not rec.started:
        spec = parse_network(rec.xml, source=f"network {network}")
        try:
            keys = resolve_pool(spec, topo)
        except PoolError as exc:
            return [PoolSlot("-", None, None, None, None, "unresolved", str(exc))]
    else:
        keys = list(rec.pool)
    allocs = {a.vf_key: a for a in store.allocations()}
    atts = {a.vf_key: a for a in store.all()}
    slots = []
    for key in keys:
        try:
            vf = topo.vf(PciAddress.parse(key))
        except TopologyError as exc:
            slots.append(PoolSlot(key, None, None, None, None, "missing", str(exc)))
            continue
        pf = vf.pf_netdevs[0] if vf.pf_netdevs else None
        if key in allocs:
            a = allocs[key]
            phase = atts[key].phase if key in atts else "allocated"
            where = "" if a.network == network else f" (network {a.network})"
            state, detail = "in use", f"{a.owner}{where}, {phase}"
        elif key in atts:
            state, detail = "in use", f"attached directly for {atts[key].owner}"
        else:
            reason = held_outside(key, topo.sysfs_root)
            state, detail = ("held", reason) if reason else ("free", "")
        slots.append(PoolSlot(key, pf, vf.index, vf.netdev, vf.driver, state, detail))
    return slots


# --------------------------------------------------------------------------- commands


def net_define(store: Store, path: str) -> NetworkSpec:
    text = read_text(path)
    spec = parse_network(text, source=path)
    store.define_network(spec.name, text)
    return spec


def net_start(store: Store, name: str, topo: Topology) -> list[str]:
    rec = _defined(store, name)
    if rec.started:
        raise PoolError(f"network {name}: already started")
    keys = resolve_pool(parse_network(rec.xml, source=f"network {name}"), topo)
    store.start_network(name, keys)
    return keys


def net_stop(name: str, *, force: bool, state_dir: str | None, sysfs_root: str,
             restored: Callable[[Allocation], object] | None = None) -> list[Allocation]:
    """Stop a network; forced, restore the VFs still in use and release them (``restored`` is
    told of each as it is done). Returns the allocations it had."""
    host = open_host(state_dir=state_dir, sysfs_root=sysfs_root)
    try:
        held = host.store.stop_network(name, force=force)
        for alloc in held:
            att = host.store.get(alloc.vf_key)
            if att is not None:
                restore_attachment(att, host)
                if restored is not None:
                    restored(alloc)
            else:
                try:
                    host.store.release(name, alloc.vf_key)
                except VfmacError:
                    pass
        return held
    finally:
        host.close()
