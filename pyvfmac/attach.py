"""Attach and detach VFs for guests: check, save the original, set the fixed MAC (and VLAN / port
profile), hand the VF to vfio-pci when managed; on detach put everything back, verified.

Order of an attach, per device (each step a state-store phase, so that ``recover`` can undo a
crash at any point):

1. resolve the device to a VF (PCI address, netdev name, or a free VF of a network pool) and check
   it: a PCI function, a network function, a VF; its MAC used by no other netdev or VF;
2. save the VF's original configuration durably (``saved``) -- a second attach keeps the first;
3. set the admin MAC and VLAN through the PF, associate an 802.1Qbh port profile -- recorded
   before the request, forgotten again if the driver refuses it (``mac-set``); a VF netdev held
   by a host driver gets the MAC too, verified;
4. managed: unbind the host driver (``unbound``), bind vfio-pci (``bound``);
5. ``attached``; the live XML carries each VF's full PCI address.

Any failure rolls back what this document's attach already did, and only that (a port profile
the driver refused is not disassociated). Detach restores the saved original setting by setting,
disassociates the port profile the record names, verifies by reading back, and only then drops
the record.
"""

from __future__ import annotations

import errno
from collections.abc import Sequence
from dataclasses import dataclass, replace

from . import pcibind
from .domain import DeviceDocument, DeviceSpec, effective_managed, effective_trust, merge_settings
from .errors import (
    InputError,
    NetlinkError,
    PoolError,
    StateError,
    TopologyError,
    VfmacError,
    XmlError,
)
from .host import (
    Host,
    Progress,
    Snapshot,
    host_uuid,
    netdev_mac_is,
    open_host,
    owner_of,
    recorded_by_netdev,
)
from .files import read_text, write_atomic
from .mac import parse_mac
from .netlink import check_results
from .network import NetworkSpec, parse_network, validate_network_name
from .portsettings import VirtualPort, Vlan
from .pools import eligible
from .records import Attachment, NetworkRecord, Original
from .restore import Report, restore_all, restore_attachment
from .settings import VfSettings, describe_diff, diff
from .store import Store
from .topology import Topology, Vf
from .types import PciAddress, VfChange, VfState

__all__ = ["Target", "attach_devices", "attach_document", "attach_file", "attach_vf",
           "detach_file", "detach_owner"]


@dataclass(frozen=True, slots=True)
class Target:
    """A device resolved to its VF, with the settings it is to get."""

    spec: DeviceSpec
    vf: Vf
    pf: str
    address: PciAddress  # the VF's, parsed once at resolution
    owner: str
    managed: bool
    network: str | None
    vlan: Vlan | None
    virtualport: VirtualPort | None
    trust: bool | None = None
    spoofchk: bool | None = None

    @property
    def key(self) -> str:
        """The VF's key in the state store: its canonical PCI address, ``0000:06:10.2``."""
        return str(self.address)


class StoreNetworks:
    """The names of pyvfmac's networks, as a container the device parser asks: an
    ``<interface type='network'>`` naming any other network is libvirt's and left alone."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self._store.get_network(name) is not None


# --------------------------------------------------------------------------- resolution


def _address_of(spec: DeviceSpec, topo: Topology, store: Store) -> PciAddress:
    """Step 1/2: the device's PCI address, re-checked against its netdev name when both exist."""
    if spec.netdev is None:
        assert spec.address is not None
        return spec.address
    named: PciAddress | None = None
    try:
        named = topo.address_of_netdev(spec.netdev)
    except TopologyError:
        att = recorded_by_netdev(store, spec.netdev)
        if att is None:
            raise
        named = PciAddress.parse(att.vf_key)  # bound to vfio-pci by us: no netdev now
    if spec.address is not None and spec.address != named:
        raise TopologyError(
            f"{spec.name}: netdev {spec.netdev} is PCI device {named}, but the "
            f"definition says {spec.address}: they no longer agree"
        )
    return named


def _vf_for(topo: Topology, address: PciAddress) -> Vf:
    vf = topo.vf(address)  # not a PCI device / not a VF / not a network function: TopologyError
    if not vf.pf_netdevs:
        raise TopologyError(f"{address}: its PF {vf.pf} has no network device to program it")
    return vf


_Networks = dict[str, tuple[NetworkRecord, NetworkSpec]]


def _network(store: Store, name: str, seen: _Networks) -> tuple[NetworkRecord, NetworkSpec]:
    """A started network's record and definition, read and parsed once per document."""
    if name not in seen:
        rec = store.get_network(name)
        if rec is None:
            raise PoolError(f"network {name}: not defined")
        if not rec.started:
            raise PoolError(f"network {name}: not started (vfmac net-start {name})")
        seen[name] = rec, parse_network(rec.xml, source=f"network {name}")
    return seen[name]


def _resolve(spec: DeviceSpec, host: Host, topo: Topology, allocated: list[tuple[str, str]],
             networks: _Networks, owner: str | None = None) -> Target:
    owner = owner or owner_of(spec)
    vlan, vport, network, trust = spec.vlan, spec.virtualport, None, spec.trust
    if spec.network is not None:
        rec, net = _network(host.store, spec.network, networks)
        vlan, vport = merge_settings(spec, net)
        trust = effective_trust(spec, net)
        managed = effective_managed(spec, net)
        network = net.name
        existing = host.store.find_allocation(net.name, spec.mac)
        if existing is not None:
            key = existing.vf_key  # attached before (a re-attach, or after a crash)
        else:
            key = host.store.allocate(net.name, owner, spec.mac, eligible(host.store, rec, topo))
            allocated.append((net.name, key))
        address = PciAddress.parse(key)
    else:
        managed = spec.managed
        address = _address_of(spec, topo, host.store)
    if vport is not None and vport.type != "802.1Qbh":
        raise InputError(
            f"{spec.name}: virtualport type {vport.type!r} is not supported for a VF "
            "(802.1Qbg needs a VDP daemon such as lldpad; use 802.1Qbh or none)")
    vf = _vf_for(topo, address)
    return Target(spec=spec, vf=vf, pf=vf.pf_netdevs[0], address=address, owner=owner,
                  managed=managed, network=network, vlan=vlan, virtualport=vport, trust=trust,
                  spoofchk=spec.spoofchk)


def _check_mac_free(t: Target, snap: Snapshot) -> None:
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
    others = [h for h in snap.holders(t.spec.mac) if h not in mine]
    if others:
        raise InputError(f"{t.spec.name}: MAC {t.spec.mac} is already used by "
                         f"{', '.join(others)}")


# --------------------------------------------------------------------------- attach


def _original(t: Target, snap: Snapshot) -> Original:
    netdev_mac = snap.netdev_mac(t.vf.netdev)
    return Original.of(snap.vf_state(t.pf, t.vf.index), vf_key=t.key, pf=t.pf,
                       netdev=t.vf.netdev if netdev_mac else None, netdev_mac=netdev_mac,
                       driver=t.vf.driver)


def _wanted(t: Target) -> VfSettings:
    """The admin settings the target is to get: its MAC, its VLAN (none: untagged, VLAN 0),
    trust and spoof checking when given."""
    vlan = t.vlan or Vlan(0, 0)
    return VfSettings(mac=t.spec.mac, vlan=vlan.vid, qos=vlan.qos,
                      vlan_proto="802.1Q", trust=t.trust, spoofchk=t.spoofchk)


def _set_admin(t: Target, host: Host, current: VfState) -> None:
    """Give the VF its admin settings (only what differs, :func:`pyvfmac.settings.diff`), and
    check them by reading the VF back."""
    want = _wanted(t)
    change = diff(want, current)
    if change is not None:
        check_results(host.nl.apply([VfChange.of(t.pf, t.vf.index, change)],
                                    before={(t.pf, t.vf.index): current}))
    now = host.nl.read_link(t.pf).vf(t.vf.index)
    wrong = diff(replace(want, trust=None if now.trust is None else want.trust,  # unreported
                         spoofchk=None if now.spoofchk is None else want.spoofchk), now)
    if wrong is not None:
        raise NetlinkError(errno.EIO, "read back " + describe_diff(now, wrong), device=t.pf,
                           vf=t.vf.index)


def _associate(t: Target, host: Host, had: Attachment) -> None:
    """Associate the target's 802.1Qbh port profile. It is recorded first, so that a crash
    after the request leaves it for ``recover`` to disassociate; a request the driver refuses
    associated nothing, and the record goes back to what it said before (``had``), so that no
    restore disassociates a profile that was never associated."""
    vp = t.virtualport
    if vp is None:
        return
    assert vp.profileid is not None  # an 802.1Qbh virtualport has one (parsed, merged)
    host.store.set_port(t.key, vp.profileid, vp.instanceid)
    try:
        host.nl.set_vf_port(t.pf, t.vf.index, profile=vp.profileid,
                            instance_uuid=vp.instanceid, host_uuid=host_uuid())
    except (NetlinkError, InputError):  # refused, or not sent: nothing associated
        host.store.set_port(t.key, had.port_profile, had.port_instance)
        raise


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
    if netdev_mac_is(host, netdev, t.spec.mac, tries=10):
        return
    if t.vf.driver:
        pcibind.bind(t.address, t.vf.driver, sysfs_root=host.sysfs_root)
        fresh = host.scan().vf(t.address)
        if fresh.netdev and netdev_mac_is(host, fresh.netdev, t.spec.mac):
            return
    raise NetlinkError(errno.EIO, f"the VF netdev {netdev} does not take MAC {t.spec.mac} "
                       f"(driver {t.vf.driver})", device=t.pf, vf=t.vf.index)


def _attach_one(t: Target, host: Host, snap: Snapshot, done: list[Target]) -> Attachment:
    """Attach one VF. Once its original is saved by this call, ``t`` joins ``done`` so that a
    failure in any later step (of this VF or the next) rolls it back."""
    prior = host.store.get(t.key)
    att = host.store.save_original(_original(t, snap), owner=t.owner, mac=t.spec.mac,
                                   managed=t.managed, network=t.network)
    if att.owner != t.owner or att.mac != t.spec.mac:
        raise StateError(f"{t.key} ({t.pf} vf {t.vf.index}) is already attached for "
                         f"{att.owner} with MAC {att.mac}")
    if prior is None:
        done.append(t)
    host.say(f"{t.pf} vf {t.vf.index} ({t.key}): MAC {t.spec.mac}")
    _set_admin(t, host, snap.vf_state(t.pf, t.vf.index))
    _associate(t, host, att)
    att = host.store.set_phase(t.key, "mac-set")
    if t.managed:
        if pcibind.current_driver(t.address, sysfs_root=host.sysfs_root) != pcibind.VFIO:
            pcibind.unbind(t.address, sysfs_root=host.sysfs_root)
            host.store.set_phase(t.key, "unbound")
            pcibind.bind(t.address, pcibind.VFIO, sysfs_root=host.sysfs_root)
        host.store.set_phase(t.key, "bound")
    else:
        _set_netdev_mac(t, host)
    return host.store.set_phase(t.key, "attached")


def attach_devices(specs: Sequence[DeviceSpec], host: Host, *, source: str,
                   owner: str | None = None) -> list[Target]:
    """Attach every device of ``specs`` (a document's, or one built from ``vfmac attach
    --pci/--network``): resolve, check, save the originals, configure. All or nothing.
    ``owner`` names who holds the VFs (``vfmac attach --owner``); default :func:`owner_of`."""
    topo = host.scan()
    allocated: list[tuple[str, str]] = []
    done: list[Target] = []
    networks: _Networks = {}
    try:
        targets = [_resolve(spec, host, topo, allocated, networks, owner) for spec in specs]
        addresses = [t.address for t in targets]
        for t in targets:
            if addresses.count(t.address) > 1:
                raise InputError(f"{source}: VF {t.key} is named by more than one device")
        snap = Snapshot.take(host.nl)
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
    return targets


def _no_devices(doc: DeviceDocument, what: str) -> XmlError:
    alone = ""
    if doc.left_alone:
        names = ", ".join(sorted(set(doc.left_alone)))
        alone = (f" (interfaces of network(s) {names} are libvirt's, not pyvfmac's: pyvfmac's "
                 "networks are those of `vfmac net-list`)")
    return XmlError(f"{doc.source}: no device with a fixed <mac> to {what}{alone}")


def _nothing_to_do(doc: DeviceDocument, what: str) -> bool:
    """Whether ``doc`` has no device of pyvfmac's and that is fine: a whole ``<domain>`` (a hook
    runs attach and detach for every guest, with VFs or not) has nothing to do; a lone
    ``<hostdev>`` / ``<interface>`` was given to be attached, so it is an error of the input."""
    if doc.devices:
        return False
    if doc.kind == "domain":
        return True
    raise _no_devices(doc, what)


def attach_document(doc: DeviceDocument, host: Host) -> list[Target]:
    """Attach every device of ``doc``; fill the live addresses into ``doc``. All or nothing.
    A ``<domain>`` without a device of pyvfmac's: nothing to do, no targets."""
    if _nothing_to_do(doc, "attach"):
        return []
    targets = attach_devices(doc.devices, host, source=doc.source)
    for t in targets:
        doc.set_address(t.spec.index, t.address)
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
            restore_attachment(att, host)
        except VfmacError as exc:
            failures.append(str(exc))
    if failures:
        cause.add_note("rollback incomplete (run `vfmac recover`): " + "; ".join(failures))


# --------------------------------------------------------------------------- documents


def attach_file(path: str, *, live_xml: str | None, state_dir: str | None = None,
                sysfs_root: str = "/sys", progress: Progress = None) -> tuple[list[Target], str]:
    """``vfmac attach``: attach the devices of a file; returns the targets and the live XML,
    written to ``live_xml`` when given. A step-2 definition (``<address netdev=...>``) gets its
    address filled into the file too, atomically. A ``<domain>`` with no device of pyvfmac's
    comes back as it was read."""
    text = read_text(path)
    host = open_host(state_dir=state_dir, sysfs_root=sysfs_root, progress=progress)
    try:
        names = StoreNetworks(host.store)
        doc = DeviceDocument.parse(text, source=path, networks=names)
        targets = attach_document(doc, host)
        persistent = DeviceDocument.parse(text, source=path, networks=names)
    finally:
        host.close()
    changed = False
    for t in targets:
        if t.spec.netdev is not None and t.spec.network is None and t.spec.address is None:
            persistent.set_address(t.spec.index, t.address)
            changed = True
    if changed:
        write_atomic(path, persistent.to_string())
    live = doc.to_string() if targets else text
    if live_xml:
        write_atomic(live_xml, live)
    return targets, live


def _find_attachment(spec: DeviceSpec, host: Host) -> Attachment:
    if spec.network is not None:
        alloc = host.store.find_allocation(spec.network, spec.mac)
        att = host.store.get(alloc.vf_key) if alloc is not None else None
        if att is None:
            raise StateError(f"{spec.name}: MAC {spec.mac} holds no VF of network "
                             f"{spec.network} (not attached)")
        return att
    att = None
    if spec.address is not None:
        att = host.store.get(str(spec.address))
    elif spec.netdev is not None:
        att = recorded_by_netdev(host.store, spec.netdev)
        if att is None:
            try:
                att = host.store.get(str(host.scan().address_of_netdev(spec.netdev)))
            except TopologyError:
                att = None
    where = spec.address or spec.netdev
    if att is None:
        raise StateError(f"{spec.name}: VF {where} was never attached by pyvfmac")
    if att.mac != spec.mac:
        raise StateError(f"{spec.name}: VF {where} is attached with MAC {att.mac}, "
                         f"not {spec.mac}")
    return att if att.port_known else _with_document_port(att, spec, host)


def _with_document_port(att: Attachment, spec: DeviceSpec, host: Host) -> Attachment:
    """A record from before pyvfmac recorded port profiles (``port_known`` False) with the
    802.1Qbh profile its document gives (the device's, merged with its network's), as detach
    found it then, so that detaching the document still disassociates it."""
    vport = spec.virtualport
    if spec.network is not None and (rec := host.store.get_network(spec.network)) is not None:
        try:
            vport = merge_settings(spec, parse_network(rec.xml))[1]
        except PoolError:
            pass  # the network changed since: keep the device's own
    if vport is None or vport.type != "802.1Qbh":
        return att
    return replace(att, port_profile=vport.profileid, port_instance=vport.instanceid)


def detach_file(path: str, *, state_dir: str | None = None, sysfs_root: str = "/sys",
                force: bool = False) -> Report | None:
    """``vfmac detach``: give back every device of a document (as given at attach, or live)
    through the one restore path; None: a ``<domain>`` with no device of pyvfmac's, nothing to
    give back."""
    text = read_text(path)
    host = open_host(state_dir=state_dir, sysfs_root=sysfs_root)
    try:
        doc = DeviceDocument.parse(text, source=path, networks=StoreNetworks(host.store))
        if _nothing_to_do(doc, "detach"):
            return None
        return restore_all([_find_attachment(spec, host) for spec in doc.devices], host,
                           force=force)
    finally:
        host.close()


# --------------------------------------------------------------------------- without XML


def owner_key(name: str) -> str:
    """The state store's owner for ``vfmac attach --owner NAME``."""
    if not name or len(name) > 128 or not name.isprintable() or name != name.strip():
        raise InputError(f"owner {name!r}: 1 to 128 printable characters, no leading or "
                         "trailing blank")
    return f"owner:{name}"


def vf_request(*, pci: str | None, network: str | None, mac: str, vlan: int | None = None,
               qos: int | None = None, spoofchk: bool | None = None, trust: bool | None = None,
               managed: bool = False) -> DeviceSpec:
    """``vfmac attach --pci/--network``: the same request a document's device makes. Every
    value is checked here, before anything on the host is looked at."""
    if (pci is None) == (network is None):
        raise InputError("give either --pci ADDRESS or --network NAME")
    if qos is not None and vlan is None:
        raise InputError("--qos needs --vlan")
    return DeviceSpec(
        index=0, form="hostdev", managed=managed, mac=parse_mac(mac),
        address=PciAddress.parse(pci) if pci is not None else None, netdev=None,
        network=validate_network_name(network) if network is not None else None,
        portgroup=None, vlan=Vlan(vlan, qos or 0) if vlan is not None else None,
        virtualport=None, trust=trust, spoofchk=spoofchk,
        label=f"--pci {pci}" if pci is not None else f"--network {network}")


def attach_vf(spec: DeviceSpec, *, owner: str, state_dir: str | None = None,
              sysfs_root: str = "/sys", progress: Progress = None) -> Target:
    """``vfmac attach --pci ADDR | --network NAME --mac MAC ... --owner NAME``: one VF through
    :func:`attach_devices`, the XML path's code (checks, saved original, rollback, records)."""
    key = owner_key(owner)
    host = open_host(state_dir=state_dir, sysfs_root=sysfs_root, progress=progress)
    try:
        (t,) = attach_devices([spec], host, source=spec.name, owner=key)
    finally:
        host.close()
    return t


def detach_owner(owner: str, *, state_dir: str | None = None, sysfs_root: str = "/sys",
                 force: bool = False) -> Report:
    """``vfmac detach --owner NAME``: put back every VF attached for ``owner``; nothing attached
    is not an error (a hypervisor hook may call it after a start that failed)."""
    key = owner_key(owner)
    host = open_host(state_dir=state_dir, sysfs_root=sysfs_root)
    try:
        return restore_all(host.store.find(owner=key), host, force=force)
    finally:
        host.close()
