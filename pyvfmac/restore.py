"""Putting a VF back as it was saved: the one restore path of pyvfmac.

:func:`put_back` (and :func:`restore_attachment`, its notes) puts one VF back. Every caller goes through it: ``vfmac detach``, an
attach's rollback, ``vfmac restore``, ``vfmac recover``, ``vfmac net-stop --force``, and
vfmac-cni's DEL, GC and the undo of a failed ADD. In this order:

1. the driver the VF had when saved (an attach may have left it on vfio-pci, or a killed call
   unbound); a ``driver_override`` left on it is cleared;
2. its netdev, when vfmac-cni put it into a pod: brought home from the pod's network namespace
   under its original name (when the namespace is gone, the kernel hands the netdev back by
   itself, asynchronously: it is waited for);
3. the 802.1Qbh port profile the record names is disassociated (only that one: a profile never
   associated is not disassociated);
4. the admin settings, one change per setting that differs from the saved original
   (:func:`pyvfmac.settings.restore_steps`, each with its own outcome);
5. the VF netdev's own MAC, and a pod's netdev's MTU and up flag;
6. a read-back of all of it; only then is the record dropped, with its pool allocation and its
   pod link, in one transaction.

An all-zero original admin MAC means "none: the VF driver picks its own": once the zero MAC is
accepted, whatever MAC the VF then shows is accepted. A VF that no longer exists (its PF has
fewer VFs now, its PCI device was removed) has nothing left to restore: its record is dropped
and the result says so. Anything else not back raises :class:`RestoreError` and keeps the record
(phase ``detaching``) for the next try, unless ``force`` accepts the state.

Nothing here writes output: the results say what was done, for ``pyvfmac.cli`` and vfmac-cni.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterable
from dataclasses import dataclass, field

from .errors import InputError, KernelError, NetlinkError, RestoreError, StateError, VfmacError
from .host import Host, host_uuid, open_host
from .mac import ZERO_MAC
from .netlink import find_link, result_error
from .owners import bound_driver, driver_override
from .records import Attachment, Original, PodLink
from .settings import VfChange, VfSettings, VfState, describe, restore_steps
from .types import PciAddress

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (mypy: always_true)
if TYPE_CHECKING:
    from .store import Store
    from .topology import Pf

__all__ = ["Recovery", "Report", "RestoreError", "Restored", "explain", "put_back", "recover",
           "restore", "restore_all", "restore_attachment"]

RETURN_WAIT = 10.0
"""Seconds to wait for the kernel to hand a pod's VF netdev back from a deleted namespace."""


@dataclass(frozen=True, slots=True)
class Restored:
    """A VF put back (its record dropped): ``notes`` says what was accepted as it is
    (``force``), or why there was nothing to restore (``gone``: the VF no longer exists)."""

    att: Attachment
    notes: tuple[str, ...] = ()
    gone: bool = False


@dataclass(slots=True)
class Report:
    """What a restore of several VFs did: the VFs put back, and the errors of the others (their
    records kept)."""

    done: list[Restored] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def check(self) -> None:
        """Raise the errors, together, as one :class:`RestoreError`."""
        if self.errors:
            raise RestoreError("; ".join(self.errors))


def explain(step: VfSettings, err: KernelError, o: Original) -> str:
    """Why one restore step failed, in the words of the usual cause."""
    if err.errno == errno.EINVAL and step.mac == ZERO_MAC:
        return (f"{o.pf} vf {o.vf}: the driver refused to restore the all-zero admin MAC "
                f"(EINVAL); the VF keeps its fixed MAC")
    if err.errno == errno.EPERM and step.vlan is not None:
        return (f"{o.pf} vf {o.vf}: the driver refused to change the VLAN back to {o.vlan} "
                f"(EPERM)")
    return str(err)


# --------------------------------------------------------------------------- where the VF is


def _device_dir(o: Original, host: Host) -> str | None:
    """The VF's sysfs directory (None: not a PCI function, a netdevsim VF)."""
    return None if "/" in o.vf_key else f"{host.sysfs_root}/bus/pci/devices/{o.vf_key}"


def _pf_netdev(o: Original, host: Host) -> str:
    """The PF's netdev name now: a PCI VF's PF may have been renamed since the save."""
    path = _device_dir(o, host)
    if path is not None:
        try:
            names = sorted(os.listdir(f"{path}/physfn/net"))
        except OSError:
            names = []
        if names:
            return names[0]
    return o.pf


def _gone(o: Original, host: Host, pf: str) -> str | None:
    """Why the VF no longer exists (None: it does)."""
    path = _device_dir(o, host)
    if path is not None and not os.path.lexists(path):
        return (f"PCI device {o.vf_key} no longer exists (its PF's VFs were removed, or it was "
                "unplugged): nothing left to restore")
    try:
        link = host.nl.read_link(pf, strict=False)
    except NetlinkError as exc:
        if exc.errno == errno.ENODEV and path is None:
            return f"PF {pf} no longer exists: nothing left to restore"
        raise
    if link.num_vf is not None and o.vf >= link.num_vf:
        return f"{pf} has {link.num_vf} VFs now, vf {o.vf} is gone: nothing left to restore"
    return None


def _restore_driver(o: Original, host: Host) -> None:
    """Step 1: the driver the VF had, and no ``driver_override`` (vfio-pci's own stays while
    the VF is on vfio-pci: it was so when saved)."""
    path = _device_dir(o, host)
    if path is None:
        return
    have = bound_driver(path)
    if have == o.driver and (have == "vfio-pci" or driver_override(path) is None):
        return  # as almost always for a pod's VF: pcibind is not even imported
    from . import pcibind

    addr = PciAddress.parse(o.vf_key)
    if have != o.driver:
        pcibind.bind(addr, o.driver, sysfs_root=host.sysfs_root)
    if o.driver != pcibind.VFIO:
        try:
            pcibind.release_override(addr, sysfs_root=host.sysfs_root)
        except KernelError:
            pass


def _host_netdev(o: Original, host: Host, wait: float) -> str | None:
    """The VF's netdev in the host's namespace, waiting up to ``wait`` seconds for it."""
    from .netns import wait_host_netdev

    return wait_host_netdev(o.vf_key, wait, host.sysfs_root)


def _bring_home(o: Original, host: Host, places: Iterable[str]) -> str:
    """Step 2: a pod's VF netdev back in the host's namespace under its original name; its name
    there. :class:`RestoreError` (one problem) when it cannot be."""
    from .netns import host_netdevs, open_pod

    assert o.netdev is not None
    names = host_netdevs(o.vf_key, host.sysfs_root)
    if not names:
        for path in dict.fromkeys(p for p in places if p):
            pod = open_pod(path)
            if pod is None:
                continue
            with pod:
                link = pod.find_pci(o.vf_key)
                if link is not None:
                    pod.move(link, host.ns, o.netdev)  # the kernel closes it on the way
                    break
        home = host.ns.link(o.netdev)  # after our own move it is there at once, by its name
        if home is not None and home.parent_dev == o.vf_key:
            names = [home.name]
        else:
            name = _host_netdev(o, host, RETURN_WAIT)
            if name is None:
                where = ", ".join(dict.fromkeys(p for p in places if p)) or "a known namespace"
                raise RestoreError(f"its netdev is neither on the host nor in {where} "
                                   f"(waited {RETURN_WAIT:g} s)")
            names = [name]
    if names[0] != o.netdev:
        link = host.ns.link(names[0])
        if link is None:
            raise RestoreError(f"its netdev {names[0]} vanished")
        host.ns.down(link)
        host.ns.rename(link, o.netdev)  # its name taken: EEXIST, said as such
    return o.netdev


# --------------------------------------------------------------------------- settings


def _disassociate(att: Attachment, host: Host, pf: str) -> list[str]:
    """Step 3: the 802.1Qbh port profile the record names, and nothing else."""
    if att.port_profile is None:
        return []
    o = att.original
    try:
        host.nl.set_vf_port(pf, o.vf, profile=att.port_profile, instance_uuid=att.port_instance,
                            host_uuid=host_uuid(), associate=False)
    except NetlinkError as exc:
        return [str(exc)]
    host.store.set_port(att.vf_key, None)
    return []


def _differs(att: Attachment, have: VfState, zero_taken: bool) -> list[VfSettings]:
    """The settings in which ``have`` is not the original. Once the all-zero admin MAC was
    taken, a MAC the VF driver then picked is its own (igbvf picks one, or takes its netdev's):
    only the fixed MAC still there is not restored."""
    steps = restore_steps(att.original, have)
    if zero_taken and have.mac != att.mac:
        steps = [s for s in steps if s.mac is None]
    return steps


def _restore_admin(o: Original, host: Host, pf: str) -> tuple[list[str], bool]:
    """Step 4: one change per setting that differs; the problems, and whether the VF has (or
    took) the all-zero admin MAC of an original that had none."""
    steps = restore_steps(o, host.nl.read_link(pf).vf(o.vf))
    zero = o.mac == ZERO_MAC and all(s.mac is None for s in steps)
    if not steps:
        return [], zero
    results = host.nl.apply([VfChange.of(pf, o.vf, s, allow_zero_mac=True) for s in steps])
    problems = []
    for step, res in zip(steps, results):
        err = result_error(res)
        if err is not None:
            problems.append(explain(step, err, o))
        elif step.mac == ZERO_MAC:
            zero = True
    return problems, zero


def _netdev_state(o: Original, host: Host, name: str, pod: PodLink | None) -> list[str]:
    """What of the VF netdev ``name`` is not as saved: its own MAC; a pod's netdev's MTU and
    up flag."""
    from .netns import mtu_and_up

    link = find_link(host.nl, name)
    if link is None:
        return [f"its netdev {name} vanished"]
    out = []
    if o.netdev_mac is not None and link.mac != o.netdev_mac:
        out.append(f"{name} MAC {link.mac}, was {o.netdev_mac}")
    if pod is not None:
        mtu, up = mtu_and_up(name, host.sysfs_root)
        if pod.mtu and mtu != pod.mtu:
            out.append(f"{name} MTU {mtu}, was {pod.mtu}")
        if pod.up is not None and up != pod.up:
            out.append(f"{name} {'up' if up else 'down'}, was {'up' if pod.up else 'down'}")
    return out


def _restore_netdev(o: Original, host: Host, name: str, pod: PodLink | None) -> list[str]:
    """Step 5: the VF netdev's own MAC (and a pod's netdev's MTU and up flag) as saved."""
    from .netns import mtu_and_up

    link = find_link(host.nl, name)
    if link is None:
        return [f"its netdev {name} vanished"]
    try:
        if o.netdev_mac is not None and link.mac != o.netdev_mac:
            host.nl.set_link_mac(name, o.netdev_mac)
        if pod is not None:
            mtu, up = mtu_and_up(name, host.sysfs_root)
            if pod.mtu and mtu != pod.mtu:
                host.ns.set_mtu(link, pod.mtu)
            if pod.up is not None and up != pod.up:
                (host.ns.up if pod.up else host.ns.down)(link)
    except (NetlinkError, InputError) as exc:
        return [f"{name}: {exc}"]
    return _netdev_state(o, host, name, pod)


# --------------------------------------------------------------------------- one VF


def _put_back(att: Attachment, host: Host, pf: str, netns: str | None) -> list[str]:
    """Steps 1 to 6 for a VF that exists; the problems left."""
    o = att.original
    pod = host.store.pod_link(att.vf_key)
    problems: list[str] = []
    try:
        _restore_driver(o, host)
    except KernelError as exc:
        problems.append(f"driver {o.driver or 'none'}: {exc}")
    netdev: str | None = None
    if o.netdev is not None and _device_dir(o, host) is not None and o.driver is not None:
        try:
            if pod is not None:
                netdev = _bring_home(o, host, [netns or "", pod.netns])
            else:
                netdev = _host_netdev(o, host, 2.0)
                if netdev is None:
                    problems.append(f"{o.vf_key}: no netdev after rebinding {o.driver}; its "
                                    f"MAC was {o.netdev_mac}")
        except (RestoreError, NetlinkError) as exc:
            problems.append(str(exc))
    problems += _disassociate(att, host, pf)
    admin, zero = _restore_admin(o, host, pf)
    problems += admin
    if netdev is not None and not problems:
        problems += _restore_netdev(o, host, netdev, pod)
    if not problems:
        left = _differs(att, host.nl.read_link(pf).vf(o.vf), zero)
        if left:
            problems.append(f"{pf} vf {o.vf}: read back differs from the saved original in "
                            + ", ".join(describe(s) for s in left))
    return problems


def restore_attachment(att: Attachment, host: Host, *, netns: str | None = None,
                       force: bool = False) -> list[str]:
    """:func:`put_back` one VF; the notes: what was accepted as it is (``force``), or why there
    was nothing to restore."""
    return list(put_back(att, host, netns=netns, force=force).notes)


def put_back(att: Attachment, host: Host, *, netns: str | None = None,
             force: bool = False) -> Restored:
    """Put one VF back as saved, verify, then drop its record (and its pool allocation and pod
    link). ``netns``: where the caller says the VF's netdev is (a pod's namespace), beside the one
    recorded.

    A VF not fully back raises :class:`RestoreError` and keeps its record; with ``force`` the
    record is dropped all the same and the result's notes say what was not restored."""
    o = att.original
    host.store.set_phase(att.vf_key, "detaching")
    pf = _pf_netdev(o, host)
    try:
        gone = _gone(o, host, pf)
        problems = [] if gone else _put_back(att, host, pf, netns)
    except (KernelError, OSError) as exc:
        gone, problems = None, [str(exc)]
    if gone:
        host.store.delete(att.vf_key)
        return Restored(att, (gone,), gone=True)
    if problems and not force:
        raise RestoreError(f"{att.vf_key} ({o.pf} vf {o.vf}) not fully restored, saved record "
                           "kept (`vfmac recover` tries again; `vfmac restore "
                           + f"{o.pf} {o.vf} --force` accepts this state): "
                           + "; ".join(problems))
    host.store.delete(att.vf_key)
    return Restored(att, tuple(problems))


def restore_all(records: Iterable[Attachment], host: Host, *, force: bool = False) -> Report:
    """Restore each VF; every one is tried, the errors are collected."""
    report = Report()
    for att in records:
        try:
            report.done.append(put_back(att, host, force=force))
        except VfmacError as exc:
            report.errors.append(str(exc))
    return report


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


def restore(*, pf: str | None, vf: int | None, everything: bool, force: bool,
            state_dir: str | None = None, sysfs_root: str = "/sys") -> Report:
    """``vfmac restore``: put back one VF (or all) from the saved originals."""
    host = open_host(state_dir=state_dir, sysfs_root=sysfs_root)
    try:
        return restore_all(_matching(host, pf, vf, everything), host, force=force)
    finally:
        host.close()


@dataclass(slots=True)
class Recovery(Report):
    """What ``vfmac recover`` did: the VFs put back, and the pool allocations released that no
    attach got as far as saving (network, VF key)."""

    released: list[tuple[str, str]] = field(default_factory=list)


def pods_gone(store: Store) -> list[Attachment]:
    """vfmac-cni's complete records of a VF netdev put into a pod whose network namespace no
    longer exists: the pod is gone and no DEL came (a runtime killed before it had ADD's
    answer, e.g. containerd 1.6, never sends one). The kernel hands the netdev back to the host
    when the namespace goes, so nothing can be using it. A VF on a userspace driver (no netdev
    saved) is left alone: a namespace says nothing about who holds it."""
    from .netns import netns_gone

    gone = []
    for att in store.all():
        if att.phase != "attached" or not att.owner.startswith("cni:") \
                or att.original.netdev is None or att.worker_alive():
            continue
        pod = store.pod_link(att.vf_key)
        if pod is not None and netns_gone(pod.netns):
            gone.append(att)
    return gone


def recover(*, state_dir: str | None = None, sysfs_root: str = "/sys") -> Recovery:
    """``vfmac recover``: restore every VF whose attach, detach, ADD or DEL did not complete and
    whose worker process is gone, and every pod's VF netdev whose pod namespace is gone
    (:func:`pods_gone`); release pool allocations that never got as far as saving."""
    host = open_host(state_dir=state_dir, sysfs_root=sysfs_root)
    try:
        stale = [a for a in host.store.incomplete() if not a.worker_alive()]
        stale += pods_gone(host.store)
        report = restore_all(stale, host)
        out = Recovery(done=report.done, errors=report.errors)
        for alloc in host.store.orphan_allocations():
            host.store.release(alloc.network, alloc.vf_key)
            out.released.append((alloc.network, alloc.vf_key))
        return out
    finally:
        host.close()
