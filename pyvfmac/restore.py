"""Putting VFs back as they were saved: one VF (:func:`restore_attachment`, used by detach,
rollback and network stop), ``vfmac restore`` and ``vfmac recover``.

A restore sets the driver back, disassociates the 802.1Qbh port profile its record names (only
that one: a profile never associated is not disassociated), sends one change per setting that
differs from the saved original (:func:`pyvfmac.settings.restore_steps`, each with its own
outcome), puts the VF netdev's own MAC back, reads the VF back to verify, and only then drops
the record (and its pool allocation).
"""

from __future__ import annotations

import errno
from collections.abc import Iterable
from typing import TextIO

from . import pcibind
from .errors import InputError, KernelError, NetlinkError, RestoreError, StateError, VfmacError
from .host import Host, host_uuid, open_host
from .netlink import result_error
from .records import Attachment, Original
from .settings import ZERO_MAC, VfChange, VfSettings, describe, restore_steps
from .topology import Pf
from .types import PciAddress

__all__ = ["RestoreError", "explain", "recover", "restore", "restore_attachment"]


def explain(step: VfSettings, err: KernelError, o: Original) -> str:
    """Why one restore step failed, in the words of the usual cause."""
    if err.errno == errno.EINVAL and step.mac == ZERO_MAC:
        return (f"{o.pf} vf {o.vf}: the driver refused to restore the all-zero admin MAC "
                f"(EINVAL); the VF keeps its fixed MAC")
    if err.errno == errno.EPERM and step.vlan is not None:
        return (f"{o.pf} vf {o.vf}: the driver refused to change the VLAN back to {o.vlan} "
                f"(EPERM)")
    return str(err)


def _restore_driver(o: Original, host: Host) -> None:
    if "/" in o.vf_key:
        return  # not a PCI function
    addr = PciAddress.parse(o.vf_key)
    have = pcibind.current_driver(addr, sysfs_root=host.sysfs_root)
    if have == o.driver:
        if have != pcibind.VFIO:
            _clear_override(addr, host)
        return
    pcibind.bind(addr, o.driver, sysfs_root=host.sysfs_root)
    _clear_override(addr, host)


def _clear_override(addr: PciAddress, host: Host) -> None:
    try:
        pcibind.release_override(addr, sysfs_root=host.sysfs_root)
    except KernelError:
        pass


def _restore_netdev_mac(o: Original, host: Host) -> str | None:
    if o.netdev_mac is None or "/" in o.vf_key or o.driver is None:
        return None
    vf = host.scan().vf(PciAddress.parse(o.vf_key))
    if vf.netdev is None:
        return f"{o.vf_key}: no netdev after rebinding {o.driver}; its MAC was {o.netdev_mac}"
    try:
        if host.nl.read_link(vf.netdev, strict=False).mac != o.netdev_mac:
            host.nl.set_link_mac(vf.netdev, o.netdev_mac)
    except (NetlinkError, InputError) as exc:
        return f"{vf.netdev}: cannot restore its own MAC {o.netdev_mac}: {exc}"
    return None


def restore_attachment(att: Attachment, host: Host, *, force: bool = False) -> list[str]:
    """Put one VF back as saved; verify; then drop its record (and pool allocation). The port
    profile the record names is disassociated (and then no longer named); none named, none
    was associated and nothing is sent.

    Returns notes on what could not be restored when ``force`` accepted it; without ``force`` a
    VF not fully back raises :class:`RestoreError` and keeps its record."""
    o = att.original
    host.store.set_phase(att.vf_key, "detaching")
    problems: list[str] = []
    try:
        _restore_driver(o, host)
    except KernelError as exc:
        problems.append(f"driver {o.driver or 'none'}: {exc}")
    if att.port_profile is not None:
        try:
            host.nl.set_vf_port(o.pf, o.vf, profile=att.port_profile,
                                instance_uuid=att.port_instance, host_uuid=host_uuid(),
                                associate=False)
        except NetlinkError as exc:
            problems.append(str(exc))
        else:
            host.store.set_port(att.vf_key, None)
    steps = restore_steps(o, host.nl.read_link(o.pf).vf(o.vf))
    if steps:
        results = host.nl.apply([VfChange.of(o.pf, o.vf, s, allow_zero_mac=True) for s in steps])
        for step, res in zip(steps, results):
            err = result_error(res)
            if err is not None:
                problems.append(explain(step, err, o))
    note = _restore_netdev_mac(o, host)
    if note:
        problems.append(note)
    left = [describe(s) for s in restore_steps(o, host.nl.read_link(o.pf).vf(o.vf))]
    if left and not problems:
        problems.append(f"{o.pf} vf {o.vf}: read back differs from the saved original in "
                        + ", ".join(left))
    if problems and not force:
        raise RestoreError(f"{att.vf_key} ({o.pf} vf {o.vf}) not fully restored, saved record "
                           "kept (`vfmac restore " + f"{o.pf} {o.vf} --force` accepts this "
                           "state): " + "; ".join(problems))
    host.store.delete(att.vf_key)
    return problems


# --------------------------------------------------------------------------- commands


def _matching(host: Host, pf: str | None, vf: int | None,
              everything: bool) -> list[Attachment]:
    """The records to restore: every one, or VF ``vf`` of ``pf`` (the PF's netdev name as it
    was at attach, else the PF as it is now, by netdev name or PCI address)."""
    records = host.store.all()
    if everything:
        return records
    hits = [a for a in records if a.original.pf == pf and a.original.vf == vf]
    if hits or pf is None or vf is None:
        return hits
    key = str(_pf_now(host, pf).vf(vf).address)  # TopologyError: no such PF, or no such VF
    hits = [a for a in records if a.vf_key == key]
    if not hits:
        raise StateError(f"{pf} vf {vf} ({key}): no saved original (not attached by pyvfmac)")
    return hits


def _pf_now(host: Host, pf: str) -> Pf:
    """The SR-IOV PF ``pf`` names now: a PCI address, else a netdev name."""
    topo = host.scan()
    try:
        address = PciAddress.parse(pf)
    except InputError:
        return topo.pf_by_netdev(pf)
    return topo.pf(address)


def restore(*, pf: str | None, vf: int | None, everything: bool, force: bool, out: TextIO,
            state_dir: str | None = None, sysfs_root: str = "/sys") -> None:
    """``vfmac restore``: put back one VF (or all) from the saved originals."""
    host = open_host(state_dir=state_dir, sysfs_root=sysfs_root)
    try:
        _restore_all(_matching(host, pf, vf, everything), host, out, force=force)
    finally:
        host.close()


def _restore_all(records: Iterable[Attachment], host: Host, out: TextIO, *,
                 force: bool = False) -> int:
    errors = []
    count = 0
    for att in records:
        try:
            notes = restore_attachment(att, host, force=force)
        except VfmacError as exc:
            errors.append(str(exc))
            continue
        count += 1
        out.write(f"{att.original.pf} vf {att.original.vf} ({att.vf_key}): restored"
                  + ("; accepted: " + "; ".join(notes) if notes else "") + "\n")
    if errors:
        raise RestoreError("; ".join(errors))
    return count


def recover(*, out: TextIO, state_dir: str | None = None, sysfs_root: str = "/sys") -> int:
    """``vfmac recover``: restore every VF whose attach (or detach) did not complete and whose
    worker process is gone; release pool allocations that never got as far as saving."""
    host = open_host(state_dir=state_dir, sysfs_root=sysfs_root)
    try:
        stale = [a for a in host.store.incomplete() if not a.worker_alive()]
        pods = [a for a in stale if a.owner.startswith("cni:")]  # vfmac-cni's: netns-aware
        count = _restore_all([a for a in stale if a not in pods], host, out)
        if pods:
            from .cni.plugin import recover_pods

            count += recover_pods(pods, out, state_dir=state_dir, sysfs_root=sysfs_root)
        for alloc in host.store.orphan_allocations():
            host.store.release(alloc.network, alloc.vf_key)
            out.write(f"network {alloc.network}: released {alloc.vf_key} (attach never saved)\n")
            count += 1
        if count == 0:
            out.write("nothing to recover\n")
        return count
    finally:
        host.close()
