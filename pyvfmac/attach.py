"""Attach and detach VFs for guests: check, save the original, set the fixed MAC (and VLAN / port
profile), hand the VF to vfio-pci when managed; on detach put everything back, verified.

Order of an attach, per device (each step a state-store phase, so that ``recover`` can undo a
crash at any point):

1. resolve the device to a VF (PCI address, netdev name, or a free VF of a network pool) and check
   it: a PCI function, a network function, a VF; its MAC used by no other netdev or VF;
2. save the VF's original configuration durably (``saved``) -- a second attach keeps the first;
3. set the admin MAC and VLAN through the PF, associate an 802.1Qbh port profile (``mac-set``);
   a VF netdev held by a host driver gets the MAC too, verified;
4. managed: unbind the host driver (``unbound``), bind vfio-pci (``bound``);
5. ``attached``; the live XML carries each VF's full PCI address.

Any failure rolls back what this document's attach already did. Detach restores the saved
original setting by setting, verifies it by reading back, and only then drops the record.
"""

from __future__ import annotations

import errno
import os
import signal
import sys
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TextIO

from . import pcibind
from .domain import DeviceDocument, DeviceSpec, effective_managed, merge_settings
from .errors import (
    InputError,
    KernelError,
    NetlinkError,
    PoolError,
    StateError,
    TopologyError,
    VfmacError,
    XmlError,
)
from .files import write_atomic
from .netlink import Rtnl, check_results, result_error
from .network import NetworkSpec, parse_network
from .portsettings import VirtualPort, Vlan
from .state import Attachment, Original, Store
from .topology import Topology, Vf, scan
from .types import LinkInfo, PciAddress, VfChange, VfState

ENV_CRASH = "PYVFMAC_CRASH_AFTER"
"""Test hook: the attach process SIGKILLs itself right after reaching this phase."""

Progress = Callable[[str], None] | None


class RestoreError(StateError):
    """A VF could not be put back completely; its saved record is kept."""


def _crash_point(phase: str) -> None:
    if os.environ.get(ENV_CRASH) == phase:
        sys.stdout.flush()
        os.kill(os.getpid(), signal.SIGKILL)


def _host_uuid() -> str | None:
    """The host's UUID for 802.1Qbh (libvirt sends the host's SMBIOS UUID); machine-id here."""
    for path in ("/sys/class/dmi/id/product_uuid", "/etc/machine-id"):
        try:
            with open(path, encoding="ascii") as f:
                return str(uuid.UUID(f.read().strip()))
        except (OSError, ValueError):
            continue
    return None


@dataclass
class Host:
    """What an operation works with: the state store, one rtnetlink socket, pcibind."""

    store: Store
    nl: Rtnl
    sysfs_root: str = "/sys"
    progress: Progress = None

    def scan(self) -> Topology:
        return scan(self.sysfs_root)

    def say(self, text: str) -> None:
        if self.progress is not None:
            self.progress(text)

    def close(self) -> None:
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


@dataclass(frozen=True, slots=True)
class Target:
    """A device resolved to its VF, with the settings it is to get."""

    spec: DeviceSpec
    vf: Vf
    pf: str
    key: str
    owner: str
    managed: bool
    network: str | None
    vlan: Vlan | None
    virtualport: VirtualPort | None


@dataclass
class _Snapshot:
    """One dump of all links: VF states by (PF, index) and every MAC on the host."""

    links: dict[str, LinkInfo]
    macs: dict[str, str] = field(default_factory=dict)

    @classmethod
    def take(cls, nl: Rtnl) -> _Snapshot:
        links = {link.name: link for link in nl.dump_links()}
        snap = cls(links)
        for link in links.values():
            if link.mac:
                snap.macs.setdefault(link.mac, f"netdev {link.name}")
            for st in link.vfs:
                snap.macs.setdefault(st.mac, f"{link.name} vf {st.vf}")
        return snap

    def vf_state(self, pf: str, index: int) -> VfState:
        link = self.links.get(pf)
        if link is None:
            raise NetlinkError(errno.ENODEV, "PF netdev vanished", device=pf)
        return link.vf(index)


def owner_of(spec: DeviceSpec) -> str:
    """Who holds a VF: a network allocation is (network, MAC); otherwise the fixed MAC."""
    return spec.key if spec.network is not None else f"mac:{spec.mac}"


# --------------------------------------------------------------------------- resolution


def _recorded_by_netdev(store: Store, netdev: str) -> Attachment | None:
    for att in store.all():
        if att.original.netdev == netdev:
            return att
    return None


def _address_of(spec: DeviceSpec, topo: Topology, store: Store) -> PciAddress:
    """Step 1/2: the device's PCI address, re-checked against its netdev name when both exist."""
    if spec.netdev is None:
        assert spec.address is not None
        return spec.address
    named: PciAddress | None = None
    try:
        named = topo.address_of_netdev(spec.netdev)
    except TopologyError:
        att = _recorded_by_netdev(store, spec.netdev)
        if att is None:
            raise
        named = PciAddress.parse(att.vf_key)  # bound to vfio-pci by us: no netdev now
    if spec.address is not None and spec.address != named:
        raise TopologyError(
            f"device {spec.index}: netdev {spec.netdev} is PCI device {named}, but the "
            f"definition says {spec.address}: they no longer agree"
        )
    return named


def _vf_for(topo: Topology, address: PciAddress, spec: DeviceSpec) -> Vf:
    vf = topo.vf(address)  # not a PCI device / not a VF / not a network function: TopologyError
    if not vf.pf_netdevs:
        raise TopologyError(f"{address}: its PF {vf.pf} has no network device to program it")
    return vf


def _network(store: Store, name: str) -> NetworkSpec:
    rec = store.get_network(name)
    if rec is None:
        raise PoolError(f"network {name}: not defined")
    if not rec.started:
        raise PoolError(f"network {name}: not started (vfmac net-start {name})")
    return parse_network(rec.xml, source=f"network {name}")


def _resolve(spec: DeviceSpec, host: Host, topo: Topology,
             allocated: list[tuple[str, str]]) -> Target:
    from .pools import eligible

    owner = owner_of(spec)
    vlan, vport, network = spec.vlan, spec.virtualport, None
    if spec.network is not None:
        net = _network(host.store, spec.network)
        vlan, vport = merge_settings(spec, net)
        managed = effective_managed(spec, net)
        network = net.name
        existing = host.store.find_allocation(net.name, spec.mac)
        if existing is not None:
            key = existing.vf_key  # attached before (a re-attach, or after a crash)
        else:
            key = host.store.allocate(net.name, owner, spec.mac, eligible(host.store, net.name, topo))
            allocated.append((net.name, key))
        address = PciAddress.parse(key)
    else:
        managed = spec.managed
        address = _address_of(spec, topo, host.store)
    if vport is not None and vport.type != "802.1Qbh":
        raise InputError(
            f"device {spec.index}: virtualport type {vport.type!r} is not supported for a VF "
            "(802.1Qbg needs a VDP daemon such as lldpad; use 802.1Qbh or none)")
    vf = _vf_for(topo, address, spec)
    return Target(spec=spec, vf=vf, pf=vf.pf_netdevs[0], key=str(address), owner=owner,
                  managed=managed, network=network, vlan=vlan, virtualport=vport)


def _check_mac_free(t: Target, snap: _Snapshot) -> None:
    """Refuse a MAC that another netdev or VF of the host already has."""
    user = snap.macs.get(t.spec.mac)
    if user is None:
        return
    mine = {f"{t.pf} vf {t.vf.index}"}
    if t.vf.netdev:
        mine.add(f"netdev {t.vf.netdev}")
    if user in mine:
        return
    # the MAC may sit on this VF and elsewhere: look at every holder
    holders = [f"netdev {n}" for n, link in snap.links.items() if link.mac == t.spec.mac]
    holders += [f"{n} vf {s.vf}" for n, link in snap.links.items() for s in link.vfs
                if s.mac == t.spec.mac]
    others = [h for h in holders if h not in mine]
    if others:
        raise InputError(f"device {t.spec.index}: MAC {t.spec.mac} is already used by "
                         f"{', '.join(others)}")


# --------------------------------------------------------------------------- attach


def _original(t: Target, snap: _Snapshot) -> Original:
    st = snap.vf_state(t.pf, t.vf.index)
    netdev_mac = None
    if t.vf.netdev and t.vf.netdev in snap.links:
        netdev_mac = snap.links[t.vf.netdev].mac
    return Original(
        vf_key=t.key, pf=t.pf, vf=t.vf.index, mac=st.mac, vlan=st.vlan, qos=st.qos,
        vlan_proto=st.vlan_proto, spoofchk=st.spoofchk, trust=st.trust,
        link_state=st.link_state, min_tx_rate=st.min_tx_rate, max_tx_rate=st.max_tx_rate,
        netdev=t.vf.netdev if netdev_mac else None, netdev_mac=netdev_mac, driver=t.vf.driver,
    )


def _set_admin(t: Target, host: Host, current: VfState) -> None:
    vid = t.vlan.vid if t.vlan is not None else 0
    change = VfChange(pf=t.pf, vf=t.vf.index, mac=t.spec.mac)
    if (current.vlan, current.qos) != (vid, 0) or (vid and current.vlan_proto != "802.1Q"):
        change = VfChange(pf=t.pf, vf=t.vf.index, mac=t.spec.mac, vlan=vid)
    check_results(host.nl.apply([change]))
    now = host.nl.read_link(t.pf).vf(t.vf.index)
    if now.mac != t.spec.mac or now.vlan != vid:
        raise NetlinkError(errno.EIO, f"set MAC {t.spec.mac} vlan {vid}, read back MAC "
                           f"{now.mac} vlan {now.vlan}", device=t.pf, vf=t.vf.index)
    if t.virtualport is not None:
        host.nl.set_vf_port(t.pf, t.vf.index, profile=t.virtualport.profileid or "",
                            instance_uuid=t.virtualport.instanceid, host_uuid=_host_uuid())


def _netdev_mac_ok(host: Host, netdev: str, mac: str, tries: int = 50) -> bool:
    import time

    for _ in range(tries):
        try:
            if host.nl.read_link(netdev, strict=False).mac == mac:
                return True
        except NetlinkError:
            pass
        time.sleep(0.04)
    return False


def _set_netdev_mac(t: Target, host: Host) -> None:
    """A host driver holding the VF keeps its old MAC on many drivers: set the VF netdev's own MAC
    too, and if that does not take, rebind the driver; verify with a bounded wait."""
    netdev = t.vf.netdev
    if netdev is None:
        return
    try:
        host.nl.set_link_mac(netdev, t.spec.mac)
    except NetlinkError:
        pass
    if _netdev_mac_ok(host, netdev, t.spec.mac, tries=10):
        return
    if t.vf.driver:
        pcibind.bind(PciAddress.parse(t.key), t.vf.driver, sysfs_root=host.sysfs_root)
        fresh = host.scan().vf(PciAddress.parse(t.key))
        if fresh.netdev and _netdev_mac_ok(host, fresh.netdev, t.spec.mac):
            return
    raise NetlinkError(errno.EIO, f"the VF netdev {netdev} does not take MAC {t.spec.mac} "
                       f"(driver {t.vf.driver})", device=t.pf, vf=t.vf.index)


def _attach_one(t: Target, host: Host, snap: _Snapshot, done: list[Target]) -> Attachment:
    """Attach one VF. Once its original is saved by this call, ``t`` joins ``done`` so that a
    failure in any later step (of this VF or the next) rolls it back."""
    addr = PciAddress.parse(t.key)
    prior = host.store.get(t.key)
    att = host.store.save_original(_original(t, snap), owner=t.owner, mac=t.spec.mac,
                                   managed=t.managed, network=t.network)
    if att.owner != t.owner or att.mac != t.spec.mac:
        raise StateError(f"{t.key} ({t.pf} vf {t.vf.index}) is already attached for "
                         f"{att.owner} with MAC {att.mac}")
    if prior is None:
        done.append(t)
    _crash_point("saved")
    host.say(f"{t.pf} vf {t.vf.index} ({t.key}): MAC {t.spec.mac}")
    _set_admin(t, host, snap.vf_state(t.pf, t.vf.index))
    att = host.store.set_phase(t.key, "mac-set")
    _crash_point("mac-set")
    if t.managed:
        if pcibind.current_driver(addr, sysfs_root=host.sysfs_root) != pcibind.VFIO:
            pcibind.unbind(addr, sysfs_root=host.sysfs_root)
            host.store.set_phase(t.key, "unbound")
            _crash_point("unbound")
            pcibind.bind(addr, pcibind.VFIO, sysfs_root=host.sysfs_root)
        host.store.set_phase(t.key, "bound")
        _crash_point("bound")
    else:
        _set_netdev_mac(t, host)
    return host.store.set_phase(t.key, "attached")


def attach_document(doc: DeviceDocument, host: Host) -> list[Target]:
    """Attach every device of ``doc``; fill the live addresses into ``doc``. All or nothing."""
    if not doc.devices:
        raise XmlError(f"{doc.source}: no device with a fixed <mac> to attach")
    topo = host.scan()
    allocated: list[tuple[str, str]] = []
    done: list[Target] = []
    try:
        targets = [_resolve(spec, host, topo, allocated) for spec in doc.devices]
        keys = [t.key for t in targets]
        for t in targets:
            if keys.count(t.key) > 1:
                raise InputError(f"{doc.source}: VF {t.key} is named by more than one device")
        snap = _Snapshot.take(host.nl)
        for t in targets:
            _check_mac_free(t, snap)
        for t in targets:
            _attach_one(t, host, snap, done)
    except BaseException as exc:
        _rollback(done, host, exc)
        for network, key in allocated:
            if host.store.get(key) is None:
                try:
                    host.store.release(network, key)
                except VfmacError:
                    pass
        raise
    for t in targets:
        doc.set_address(t.spec.index, PciAddress.parse(t.key))
    return targets


def _rollback(done: Sequence[Target], host: Host, cause: BaseException) -> None:
    """Undo this document's attaches, last first. A VF that cannot be put back keeps its record
    (``recover`` retries) and the failure is chained to the original error."""
    failures = []
    for t in reversed(done):
        att = host.store.get(t.key)
        if att is None:
            continue
        try:
            restore_attachment(att, host, virtualport=t.virtualport)
        except VfmacError as exc:
            failures.append(str(exc))
    if failures:
        cause.add_note("rollback incomplete (run `vfmac recover`): " + "; ".join(failures))


# --------------------------------------------------------------------------- restore


def _restore_changes(o: Original, have: VfState) -> list[tuple[str, VfChange]]:
    """One change per setting that differs, so that each gets its own outcome."""
    pf, vf = o.pf, o.vf
    out: list[tuple[str, VfChange]] = []
    if have.mac != o.mac:
        out.append((f"MAC {o.mac}", VfChange(pf=pf, vf=vf, mac=o.mac, allow_zero_mac=True)))
    if (have.vlan, have.qos) != (o.vlan, o.qos) or (o.vlan and have.vlan_proto != o.vlan_proto):
        proto = o.vlan_proto if o.vlan else "802.1Q"
        out.append((f"VLAN {o.vlan}", VfChange(pf=pf, vf=vf, vlan=o.vlan, qos=o.qos,
                                               vlan_proto=proto)))  # type: ignore[arg-type]
    if o.spoofchk is not None and have.spoofchk != o.spoofchk:
        out.append((f"spoofchk {o.spoofchk}", VfChange(pf=pf, vf=vf, spoofchk=o.spoofchk)))
    if o.trust is not None and have.trust != o.trust:
        out.append((f"trust {o.trust}", VfChange(pf=pf, vf=vf, trust=o.trust)))
    if o.link_state is not None and have.link_state != o.link_state:
        out.append((f"link state {o.link_state}",
                    VfChange(pf=pf, vf=vf, link_state=o.link_state)))  # type: ignore[arg-type]
    if (have.min_tx_rate, have.max_tx_rate) != (o.min_tx_rate, o.max_tx_rate):
        out.append((f"TX rate {o.min_tx_rate}/{o.max_tx_rate}",
                    VfChange(pf=pf, vf=vf, min_tx_rate=o.min_tx_rate, max_tx_rate=o.max_tx_rate)))
    return out


def _explain(what: str, err: KernelError, o: Original) -> str:
    if err.errno == errno.EINVAL and what.startswith("MAC 00:00:00:00:00:00"):
        return (f"{o.pf} vf {o.vf}: the driver refused to restore the all-zero admin MAC "
                f"(EINVAL); the VF keeps its fixed MAC")
    if err.errno == errno.EPERM and what.startswith("VLAN"):
        return (f"{o.pf} vf {o.vf}: the driver refused to change the VLAN back to {o.vlan} "
                f"(EPERM)")
    return str(err)


def _restore_driver(o: Original, att: Attachment, host: Host) -> None:
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


def restore_attachment(att: Attachment, host: Host, *, virtualport: VirtualPort | None = None,
                       force: bool = False) -> list[str]:
    """Put one VF back as saved; verify; then drop its record (and pool allocation).

    Returns notes on what could not be restored when ``force`` accepted it; without ``force`` a
    VF not fully back raises :class:`RestoreError` and keeps its record."""
    o = att.original
    host.store.set_phase(att.vf_key, "detaching")
    problems: list[str] = []
    try:
        _restore_driver(o, att, host)
    except KernelError as exc:
        problems.append(f"driver {o.driver or 'none'}: {exc}")
    if virtualport is not None and virtualport.type == "802.1Qbh":
        try:
            host.nl.set_vf_port(o.pf, o.vf, profile=virtualport.profileid or "",
                                instance_uuid=virtualport.instanceid, host_uuid=_host_uuid(),
                                associate=False)
        except NetlinkError as exc:
            problems.append(str(exc))
    have = host.nl.read_link(o.pf).vf(o.vf)
    changes = _restore_changes(o, have)
    if changes:
        results = host.nl.apply([c for _, c in changes])
        for (what, _), res in zip(changes, results):
            err = result_error(res)
            if err is not None:
                problems.append(_explain(what, err, o))
    note = _restore_netdev_mac(o, host)
    if note:
        problems.append(note)
    left = [w for w, _ in _restore_changes(o, host.nl.read_link(o.pf).vf(o.vf))]
    if left and not problems:
        problems.append(f"{o.pf} vf {o.vf}: read back differs from the saved original in "
                        + ", ".join(left))
    if problems and not force:
        raise RestoreError(f"{att.vf_key} ({o.pf} vf {o.vf}) not fully restored, saved record "
                           "kept (`vfmac restore " + f"{o.pf} {o.vf} --force` accepts this "
                           "state): " + "; ".join(problems))
    host.store.delete(att.vf_key)
    return problems


# --------------------------------------------------------------------------- documents


def _read(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except UnicodeDecodeError as exc:
        raise XmlError(f"{path}: not UTF-8 text ({exc.reason})") from None


def attach_file(path: str, *, live_xml: str | None, out: TextIO, state_dir: str | None = None,
                sysfs_root: str = "/sys", progress: Progress = None) -> list[Target]:
    """``vfmac attach``: attach the devices of a file, write the live XML; a step-2 definition
    (``<address netdev=...>``) gets its address filled into the file too, atomically."""
    text = _read(path)
    doc = DeviceDocument.parse(text, source=path)
    host = open_host(state_dir=state_dir, sysfs_root=sysfs_root, progress=progress)
    try:
        targets = attach_document(doc, host)
    finally:
        host.close()
    persistent = DeviceDocument.parse(text, source=path)
    changed = False
    for t in targets:
        if t.spec.netdev is not None and t.spec.network is None and t.spec.address is None:
            persistent.set_address(t.spec.index, PciAddress.parse(t.key))
            changed = True
    if changed:
        write_atomic(path, persistent.to_string())
    live = doc.to_string()
    if live_xml:
        write_atomic(live_xml, live)
    else:
        out.write(live if live.endswith("\n") else live + "\n")
    return targets


def _find_attachment(spec: DeviceSpec, host: Host) -> Attachment:
    if spec.network is not None:
        alloc = host.store.find_allocation(spec.network, spec.mac)
        att = host.store.get(alloc.vf_key) if alloc is not None else None
        if att is None:
            raise StateError(f"device {spec.index}: MAC {spec.mac} holds no VF of network "
                             f"{spec.network} (not attached)")
        return att
    att = None
    if spec.address is not None:
        att = host.store.get(str(spec.address))
    elif spec.netdev is not None:
        att = _recorded_by_netdev(host.store, spec.netdev)
        if att is None:
            try:
                att = host.store.get(str(host.scan().address_of_netdev(spec.netdev)))
            except TopologyError:
                att = None
    where = spec.address or spec.netdev
    if att is None:
        raise StateError(f"device {spec.index}: VF {where} was never attached by pyvfmac")
    if att.mac != spec.mac:
        raise StateError(f"device {spec.index}: VF {where} is attached with MAC {att.mac}, "
                         f"not {spec.mac}")
    return att


def detach_file(path: str, *, out: TextIO, state_dir: str | None = None,
                sysfs_root: str = "/sys", force: bool = False) -> None:
    """``vfmac detach``: give back every device of a document (as given at attach, or live)."""
    doc = DeviceDocument.parse(_read(path), source=path)
    if not doc.devices:
        raise XmlError(f"{path}: no device with a fixed <mac> to detach")
    host = open_host(state_dir=state_dir, sysfs_root=sysfs_root)
    try:
        found = [(spec, _find_attachment(spec, host)) for spec in doc.devices]
        errors = []
        for spec, att in found:
            vport = spec.virtualport
            if spec.network is not None and vport is None:
                net = host.store.get_network(spec.network)
                if net is not None:
                    vport = merge_settings(spec, parse_network(net.xml))[1]
            try:
                notes = restore_attachment(att, host, virtualport=vport, force=force)
            except VfmacError as exc:
                errors.append(str(exc))
                continue
            o = att.original
            out.write(f"{o.pf} vf {o.vf} ({att.vf_key}): restored"
                      + (" (network " + att.network + ")" if att.network else "")
                      + ("; accepted: " + "; ".join(notes) if notes else "") + "\n")
        if errors:
            raise RestoreError("; ".join(errors))
    finally:
        host.close()


def _matching(store: Store, pf: str | None, vf: int | None,
              everything: bool) -> list[Attachment]:
    records = store.all()
    if everything:
        return records
    hits = [a for a in records if a.original.pf == pf and a.original.vf == vf]
    if not hits:
        raise StateError(f"{pf} vf {vf}: no saved original (not attached by pyvfmac)")
    return hits


def restore(*, pf: str | None, vf: int | None, everything: bool, force: bool, out: TextIO,
            state_dir: str | None = None, sysfs_root: str = "/sys") -> None:
    """``vfmac restore``: put back one VF (or all) from the saved originals."""
    host = open_host(state_dir=state_dir, sysfs_root=sysfs_root)
    try:
        _restore_all(_matching(host.store, pf, vf, everything), host, out, force=force)
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
