"""Networks that are pools of VFs, in libvirt's XML: ``<network>`` with ``<forward
mode='hostdev'>`` (pure Python, no kernel access).

:func:`parse_network` reads a definition into a :class:`NetworkSpec` (its pool of
:class:`PoolEntry`, its own vlan/virtualport/trustGuestRxFilters and its :class:`PortGroup` s),
as ``virsh net-dumpxml`` writes it (active or not; what is kept, ignored or refused is in
docs/libvirt-xml.md); :func:`network_to_xml` writes one back in libvirt's format (what pyvfmac
applies; ``vfmac net-define`` stores the given text verbatim). :meth:`NetworkSpec.settings_for`
is the network half of libvirt's precedence rule (a portgroup's vlan over the network's, their
virtualports merged); the device half is :func:`pyvfmac.domain.merge_settings`.

:func:`validate_network_name` is pyvfmac's one rule for a network name, for the XML and for the
state store alike.
"""

from __future__ import annotations

import uuid as _uuid
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from typing import Literal

from .errors import InputError, PoolError
from .portsettings import (
    VirtualPort,
    Vlan,
    combine_virtualports,
    parse_virtualport,
    parse_vlan,
    refuse_unsupported,
    virtualport_to_elem,
    vlan_to_elem,
)
from .types import NETWORK_NAME_MAX, PciAddress, validate_network_name
from .xmltree import (
    Tree,
    check_attrs,
    check_children,
    children,
    int_attr,
    netdev_attr,
    one_child,
    pci_address_elem,
    serialize,
    yes_no,
)

__all__ = [
    "FORWARD_MODES",
    "NETWORK_NAME_MAX",
    "NetworkSpec",
    "PoolEntry",
    "PortGroup",
    "network_name_in",
    "network_to_xml",
    "parse_network",
    "validate_network_name",
]

FORWARD_MODES = ("hostdev", "hardware", "device")


@dataclass(frozen=True, slots=True)
class PoolEntry:
    """One pool entry of a network: ``<interface dev=..>``, ``<pf dev=..>`` (all VFs of that PF)
    or ``<address type='pci' ..>``."""

    kind: Literal["interface", "pf", "address"]
    dev: str | None
    address: PciAddress | None


@dataclass(frozen=True, slots=True)
class PortGroup:
    name: str
    default: bool
    vlan: Vlan | None
    virtualport: VirtualPort | None
    trust_guest_rx_filters: bool | None = None


@dataclass(frozen=True, slots=True)
class NetworkSpec:
    """A network whose forward mode is ``hostdev`` (a pool of VFs).

    ``trust_guest_rx_filters``: the network's ``trustGuestRxFilters`` (None when not given);
    a VF gets ``trust on`` / ``off`` from it (see :func:`pyvfmac.domain.effective_trust`)."""

    name: str
    uuid: str | None
    managed: bool
    pool: tuple[PoolEntry, ...]
    vlan: Vlan | None
    virtualport: VirtualPort | None
    portgroups: tuple[PortGroup, ...] = field(default=())
    trust_guest_rx_filters: bool | None = None

    def portgroup(self, name: str | None) -> PortGroup | None:
        """The named portgroup, the default one for ``None`` (or None when there is none);
        :class:`~pyvfmac.errors.PoolError` for an unknown name."""
        if name is None:
            return next((pg for pg in self.portgroups if pg.default), None)
        for pg in self.portgroups:
            if pg.name == name:
                return pg
        known = ", ".join(repr(pg.name) for pg in self.portgroups) or "none"
        raise PoolError(f"network {self.name!r} has no portgroup {name!r} (portgroups: {known})")

    def settings_for(self, portgroup: str | None) -> tuple[Vlan | None, VirtualPort | None]:
        """The vlan and virtualport of the named portgroup (the default portgroup when
        ``portgroup`` is None) and the network, by libvirt's rules: the portgroup's ``<vlan>``
        over the network's, whole; the two virtualports merged parameter by parameter
        (:func:`~pyvfmac.portsettings.combine_virtualports`; a conflict is a PoolError)."""
        pg = self.portgroup(portgroup)
        vlan = pg.vlan if pg is not None and pg.vlan is not None else self.vlan
        vport = combine_virtualports(
            [("portgroup", pg.virtualport if pg is not None else None),
             ("network", self.virtualport)], where=f"network {self.name}")
        return vlan, vport

    def trust_for(self, portgroup: str | None) -> bool | None:
        """``trustGuestRxFilters`` of the portgroup, else of the network (None: not given)."""
        pg = self.portgroup(portgroup)
        if pg is not None and pg.trust_guest_rx_filters is not None:
            return pg.trust_guest_rx_filters
        return self.trust_guest_rx_filters


def network_name_in(tree: Tree, elem: ET.Element, value: str, what: str, ctx: str) -> str:
    """:func:`validate_network_name` for a name read from ``elem``: the error names the element."""
    try:
        return validate_network_name(value, what=what)
    except InputError as exc:
        raise tree.error(elem, str(exc), ctx) from None


_REFUSED_NETWORK = {
    "bandwidth": "bandwidth limits cannot be applied to a VF given to a guest",
    "ip": "a hostdev network has no host-side IP configuration",
    "dns": "a hostdev network has no DNS service",
    "bridge": "a hostdev network has no bridge",
    "mac": "a hostdev network has no host-side MAC address",
    "domain": "a hostdev network has no DNS domain",
    "route": "a hostdev network has no routes",
}
_NETWORK_CHILDREN = ("name", "uuid", "title", "description", "metadata", "forward", "vlan",
                     "virtualport", "portgroup", "mtu", "port")
"""Kept unchanged and ignored: ``title``, ``description``, ``metadata`` (any namespaced
content), ``mtu`` (libvirt sets it on bridges and taps only; a VF's MTU is the guest's) and
``port isolated`` (bridge ports only). See docs/libvirt-xml.md."""
_NETWORK_ATTRS = ("connections", "trustGuestRxFilters", "ipv6")


def parse_network(data: str | bytes, *, source: str = "<input>") -> NetworkSpec:
    """Parse a ``<network>`` whose ``<forward mode=..>`` is ``hostdev`` (also accepted:
    ``hardware`` and ``device``, the proposal's alternatives), as libvirt writes it with
    ``virsh net-dumpxml`` (active or inactive). See the module documentation and
    docs/libvirt-xml.md for every element."""
    tree = Tree(data, source)
    root = tree.root
    if root.tag != "network":
        raise tree.error(root, "the root element must be <network>")
    ctx = "network"
    _check_hostdev_network(tree, root, ctx)
    for child in root:
        if isinstance(child.tag, str) and child.tag in _REFUSED_NETWORK:
            raise tree.error(child, f"not allowed: {_REFUSED_NETWORK[child.tag]}", ctx)
    check_children(tree, root, _NETWORK_CHILDREN, ctx)
    check_attrs(tree, root, _NETWORK_ATTRS, ctx)
    if "connections" in root.attrib:
        int_attr(tree, root, "connections", 0, 1 << 31, ctx)
    yes_no(tree, root, "ipv6", ctx)

    name_elem = one_child(tree, root, "name", ctx, required=True)
    assert name_elem is not None
    name = network_name_in(tree, name_elem, (name_elem.text or "").strip(), "network name", ctx)
    ctx = f"network {name!r}"

    uuid = None
    uuid_elem = one_child(tree, root, "uuid", ctx, required=False)
    if uuid_elem is not None:
        raw = (uuid_elem.text or "").strip()
        try:
            uuid = str(_uuid.UUID(raw))
        except ValueError:
            raise tree.error(uuid_elem, f"{raw!r} is not a UUID", ctx) from None
    for tag in ("title", "description", "metadata", "mtu", "port"):
        one_child(tree, root, tag, ctx, required=False)
    for port in children(root, "port"):
        check_attrs(tree, port, ("isolated",), ctx)
        yes_no(tree, port, "isolated", ctx)
    for mtu in children(root, "mtu"):
        check_attrs(tree, mtu, ("size",), ctx)
        int_attr(tree, mtu, "size", 68, 65535, ctx)

    fwd = one_child(tree, root, "forward", ctx, required=True)
    assert fwd is not None
    managed, pool = _parse_forward(tree, fwd, ctx)

    vlan_elem = one_child(tree, root, "vlan", ctx, required=False)
    vport_elem = one_child(tree, root, "virtualport", ctx, required=False)
    portgroups: list[PortGroup] = []
    default: str | None = None
    for pg_elem in children(root, "portgroup"):
        pg = _parse_portgroup(tree, pg_elem, ctx)
        if any(p.name == pg.name for p in portgroups):
            raise tree.error(pg_elem, f"portgroup name {pg.name!r} is used twice", ctx)
        if pg.default:
            if default is not None:
                raise tree.error(
                    pg_elem, f"two default portgroups ({default!r} and {pg.name!r})", ctx
                )
            default = pg.name
        portgroups.append(pg)
    spec = NetworkSpec(
        name=name,
        uuid=uuid,
        managed=managed,
        pool=tuple(pool),
        vlan=parse_vlan(tree, vlan_elem, ctx) if vlan_elem is not None else None,
        virtualport=_network_vport(tree, vport_elem, ctx),
        portgroups=tuple(portgroups),
        trust_guest_rx_filters=_opt_yes_no(tree, root, "trustGuestRxFilters", ctx),
    )
    for pg_name in (None, *(p.name for p in portgroups)):
        try:
            spec.settings_for(pg_name)  # a portgroup's virtualport conflicting with the network's
        except PoolError as exc:
            where = vport_elem if vport_elem is not None else root
            raise tree.error(where, f"portgroup {pg_name!r}: {exc}", ctx) from None
    return spec


_FORWARD_KINDS = {
    "nat": "a NAT network",
    "route": "a routed network",
    "open": "an open (routed) network",
    "bridge": "a bridge network",
    "private": "a macvtap network",
    "vepa": "a macvtap network",
    "passthrough": "a macvtap network",
}


def _check_hostdev_network(tree: Tree, root: ET.Element, ctx: str) -> None:
    """A network that is not a pool of VFs is refused by its forward mode, before any of its
    other elements (a NAT network's <bridge> and <ip> are right for it, not wrong): no
    ``<forward>`` is an isolated network, a ``<forward>`` without a mode libvirt's NAT."""
    names = children(root, "name")
    if len(names) == 1 and (names[0].text or "").strip():
        ctx = f"network {(names[0].text or '').strip()!r}"
    fwd = one_child(tree, root, "forward", ctx, required=False)
    want = "a VF pool needs <forward mode='hostdev'> ('hardware' and 'device' are accepted " \
           "as the same)"
    if fwd is None:
        raise tree.error(root, f"no <forward>: an isolated network, not a hostdev network; "
                         f"{want}", ctx)
    mode = fwd.get("mode")
    if mode in FORWARD_MODES:
        return
    if mode is None:
        shown = "forward mode missing (libvirt's default is 'nat': a NAT network)"
    else:
        kind = _FORWARD_KINDS.get(mode)
        shown = f"forward mode {mode!r}" + (f" ({kind})" if kind else "")
    raise tree.error(fwd, f"{shown} is not hostdev; {want}", ctx)


def _opt_yes_no(tree: Tree, elem: ET.Element, attr: str, ctx: str) -> bool | None:
    return yes_no(tree, elem, attr, ctx) if attr in elem.attrib else None


def _network_vport(tree: Tree, elem: ET.Element | None, ctx: str, *,
                   require_type: bool = True) -> VirtualPort | None:
    """A network's or portgroup's ``<virtualport>``: parameters may be left to the interface
    (libvirt's merge); 802.1Qbg refused. The network's own needs a type (libvirt parses it with
    VIR_VPORT_XML_REQUIRE_TYPE); a portgroup's may leave it out (parsed without flags), and
    takes it from the network or the interface when merged (``require_type`` False)."""
    if elem is None:
        return None
    if require_type and "type" not in elem.attrib:
        raise tree.error(elem, "attribute 'type' is missing (802.1Qbh; only a portgroup's "
                         "virtualport may leave it to the network's)", ctx)
    vp = parse_virtualport(tree, elem, ctx, partial=True)
    refuse_unsupported(tree, elem, vp, ctx)
    return vp


def _parse_driver(tree: Tree, drv: ET.Element, ctx: str) -> None:
    check_attrs(tree, drv, ("name", "model"), ctx)
    if drv.get("name", "vfio") != "vfio":
        raise tree.error(drv, f"name={drv.get('name')!r}: only 'vfio' is supported (pyvfmac "
                         "binds managed VFs to vfio-pci)", ctx)
    if "model" in drv.attrib:
        raise tree.error(drv, f"model={drv.get('model')!r}: VFIO variant drivers are not "
                         "supported; pyvfmac binds managed VFs to vfio-pci only (drop model=, "
                         "or bind the variant driver yourself and use managed='no')", ctx)


def _parse_forward(tree: Tree, fwd: ET.Element, ctx: str) -> tuple[bool, list[PoolEntry]]:
    check_attrs(tree, fwd, ("mode", "managed", "dev"), ctx)
    managed = yes_no(tree, fwd, "managed", ctx)
    nat = children(fwd, "nat")
    if nat:
        raise tree.error(nat[0], "not allowed: a hostdev network does no NAT", ctx)
    check_children(tree, fwd, ("interface", "pf", "address", "driver"), ctx)
    one_child(tree, fwd, "driver", ctx, required=False)
    for drv in children(fwd, "driver"):
        _parse_driver(tree, drv, ctx)
    # An active network's net-dumpxml lists, beside <pf>, the VFs libvirt found at its start
    # (as <address> entries): runtime state, not the pool. The pool is the PF's VFs at net-start.
    has_pf = bool(children(fwd, "pf"))
    pool: list[PoolEntry] = []
    seen: dict[tuple[str, object], ET.Element] = {}
    for child in fwd:
        if child.tag == "interface" or child.tag == "pf":
            check_attrs(tree, child, ("dev", "connections"), ctx)
            if "dev" not in child.attrib:
                raise tree.error(child, "attribute 'dev' is missing", ctx)
            if "connections" in child.attrib:
                int_attr(tree, child, "connections", 0, 1 << 31, ctx)
            kind: Literal["interface", "pf"] = "pf" if child.tag == "pf" else "interface"
            entry = PoolEntry(kind, netdev_attr(tree, child, "dev", ctx), None)
            ident: tuple[str, object] = ("dev", entry.dev)
        elif child.tag == "address":
            entry = PoolEntry("address", None, pci_address_elem(tree, child, ctx))
            ident = ("address", entry.address)
            if has_pf:
                continue
        else:
            continue
        if ident in seen:
            raise tree.error(child, "duplicate pool entry (same device listed twice)", ctx)
        seen[ident] = child
        pool.append(entry)
    dev = fwd.get("dev")
    if dev is not None:
        dev = netdev_attr(tree, fwd, "dev", ctx)
        if not pool:
            pool.append(PoolEntry("interface", dev, None))
        elif ("dev", dev) not in seen:
            raise tree.error(fwd, f"dev={dev!r} is not one of the pool's <interface>/<pf> entries",
                             ctx)
    if not pool:
        raise tree.error(fwd, "empty pool: list <interface dev=..>, <pf dev=..> or "
                         "<address type='pci' ..> entries", ctx)
    return managed, pool


def _parse_portgroup(tree: Tree, elem: ET.Element, ctx: str) -> PortGroup:
    for child in elem:
        if isinstance(child.tag, str) and child.tag in _REFUSED_NETWORK:
            raise tree.error(child, f"not allowed: {_REFUSED_NETWORK[child.tag]}", ctx)
    check_attrs(tree, elem, ("name", "default", "trustGuestRxFilters"), ctx)
    check_children(tree, elem, ("vlan", "virtualport"), ctx)
    name = elem.get("name")
    if name is None:
        raise tree.error(elem, "attribute 'name' is missing", ctx)
    if not name or any(not ch.isprintable() for ch in name):
        raise tree.error(elem, f"name={name!r}: not a portgroup name", ctx)
    pg_ctx = f"{ctx}, portgroup {name!r}"
    vlan_elem = one_child(tree, elem, "vlan", pg_ctx, required=False)
    vport_elem = one_child(tree, elem, "virtualport", pg_ctx, required=False)
    return PortGroup(
        name=name,
        default=yes_no(tree, elem, "default", pg_ctx),
        vlan=parse_vlan(tree, vlan_elem, pg_ctx) if vlan_elem is not None else None,
        virtualport=_network_vport(tree, vport_elem, pg_ctx, require_type=False),
        trust_guest_rx_filters=_opt_yes_no(tree, elem, "trustGuestRxFilters", pg_ctx),
    )


def network_to_xml(spec: NetworkSpec) -> str:
    """libvirt's format for ``spec`` (forward mode written as 'hostdev');
    ``parse_network(network_to_xml(s)) == s``."""
    root = ET.Element("network")
    if spec.trust_guest_rx_filters is not None:
        root.set("trustGuestRxFilters", "yes" if spec.trust_guest_rx_filters else "no")
    ET.SubElement(root, "name").text = spec.name
    if spec.uuid is not None:
        ET.SubElement(root, "uuid").text = spec.uuid
    managed = "yes" if spec.managed else "no"
    fwd = ET.SubElement(root, "forward", {"mode": "hostdev", "managed": managed})
    for entry in spec.pool:
        if entry.kind == "address":
            assert entry.address is not None
            ET.SubElement(fwd, "address", {"type": "pci", **entry.address.xml_attrs()})
        else:
            ET.SubElement(fwd, entry.kind, {"dev": str(entry.dev)})
    if spec.vlan is not None:
        root.append(vlan_to_elem(spec.vlan))
    if spec.virtualport is not None:
        root.append(virtualport_to_elem(spec.virtualport))
    for pg in spec.portgroups:
        attrs = {"name": pg.name}
        if pg.default:
            attrs["default"] = "yes"
        if pg.trust_guest_rx_filters is not None:
            attrs["trustGuestRxFilters"] = "yes" if pg.trust_guest_rx_filters else "no"
        pg_elem = ET.SubElement(root, "portgroup", attrs)
        if pg.vlan is not None:
            pg_elem.append(vlan_to_elem(pg.vlan))
        if pg.virtualport is not None:
            pg_elem.append(virtualport_to_elem(pg.virtualport))
    return serialize(root)

