"""Device documents in libvirt-style XML (pure Python, no kernel access).

Device forms
------------
The input is one ``<hostdev>``, one ``<interface>`` or a whole ``<domain>``. Accepted device forms:

* the proposal's ``<hostdev mode='subsystem' type='pci' managed='yes'><source><address domain=..
  bus=.. slot=.. function=../></source><mac address=../></hostdev>`` (``domain`` optional,
  ``mode`` optional and then ``subsystem``; ``<mac>`` directly in the device or inside
  ``<source>``),
* libvirt's ``<interface type='hostdev' managed='yes'><source><address type='pci' .../></source>
  <mac address=../></interface>``,
* step 2, a VF named by its netdev: ``<address netdev='eth22'/>`` or ``<network dev='eth22'/>``
  in ``<source>``; the filled form carries both (``<address domain=.. bus=.. slot=.. function=..
  netdev='eth22'/>``, or ``<network dev=..>`` next to an ``<address>`` with the PCI coordinates),
* step 3, a reference to one of pyvfmac's networks: ``<address network='passthrough-net'/>`` or
  ``<network name='passthrough-net'/>`` in a hostdev's ``<source>`` (both take an optional
  ``portgroup`` attribute), and libvirt's ``<interface type='network'><source
  network='passthrough-net' portgroup='pg1'/><mac address=../></interface>``.

Every device may carry one ``<vlan>`` (one tag) and one ``<virtualport>`` (802.1Qbh; 802.1Qbg is
refused here, before any host lookup). In a whole domain, only the ``<hostdev>`` elements that
have a ``<mac>`` and the ``<interface>`` elements of type ``hostdev``, or of type ``network``
naming one of pyvfmac's networks (``networks`` of :meth:`DeviceDocument.parse`), directly inside
``<devices>`` are ours; the virtio NIC of libvirt's failover pair (``<teaming
type='persistent'/>``) never is, its transient partner is. Everything else is written back as it
was read (comments, processing instructions, namespace prefixes and whitespace included;
attribute values are written with single quotes, as libvirt does). docs/libvirt-xml.md lists
every element libvirt documents for these devices and what pyvfmac does with it.

The live form of a network reference
------------------------------------
When a VF of a network is given to a device, :meth:`DeviceDocument.set_address` writes its PCI
coordinates while the network reference stays, so that detach finds the allocation (network +
MAC) from the live XML as well as from the persistent one:

* ``<address network='pn'/>`` becomes ``<address domain=.. bus=.. slot=.. function..
  network='pn'/>`` (the same rule as step 2's ``netdev``),
* ``<network name='pn'/>`` gets a sibling ``<address domain=.. bus=.. slot=.. function=../>``,
* ``<interface type='network'><source network='pn'/>`` gets ``<address type='pci' ...>`` as a
  child of ``<source>``.

:meth:`DeviceDocument.clear_address` undoes exactly that (back to the persistent form).

The merge policy
----------------
A device that refers to a network takes its vlan by libvirt's rule: the device's own, else its
portgroup's, else the network's; its virtualport is the merge of the three, parameter by
parameter (:func:`merge_settings`); its trust from ``trustGuestRxFilters`` likewise
(:func:`effective_trust`); :func:`effective_managed` says whether its VF is bound to vfio-pci.

Untrusted input is parsed with defusedxml: a DTD, an entity declaration or an external reference
is refused. Every validation problem is an :class:`~pyvfmac.errors.XmlError` (an ``InputError``)
whose message names the source, the line, the element with its attributes, and the bad value.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Container
from dataclasses import dataclass, replace
from typing import Literal

from .errors import InputError, PoolError, XmlError
from .mac import parse_mac
from .network import NetworkSpec, network_name_in
from .portsettings import (
    VirtualPort,
    Vlan,
    merge_virtualports,
    parse_virtualport,
    parse_vlan,
    refuse_unsupported,
)
from .types import PciAddress
from .xmltree import (
    PCI_COORDS,
    Tree,
    check_attrs,
    children,
    describe,
    has_pci_coords,
    insert_child,
    netdev_attr,
    one_child,
    pci_address_elem,
    pci_attr,
    remove_child,
    yes_no,
)

__all__ = [
    "DeviceDocument",
    "DeviceSpec",
    "effective_managed",
    "effective_trust",
    "merge_settings",
]


@dataclass(frozen=True, slots=True)
class DeviceSpec:
    """One device of a :class:`DeviceDocument`.

    ``index`` counts only pyvfmac's devices (0..), in document order. ``managed`` is the device's
    own ``managed`` attribute (default False, like libvirt); for a network reference see
    :func:`effective_managed`. ``address`` and ``netdev`` may both be set (step 2's filled form),
    as may ``network`` and ``address`` (the live form of a network reference). ``label``: how
    messages name a device that no document holds (``vfmac attach --pci ADDR``); see :attr:`name`.
    """

    index: int
    form: Literal["hostdev", "interface"]
    managed: bool
    mac: str
    address: PciAddress | None
    netdev: str | None
    network: str | None
    portgroup: str | None
    vlan: Vlan | None
    virtualport: VirtualPort | None
    trust: bool | None = None
    spoofchk: bool | None = None
    teaming: str | None = None
    label: str | None = None

    @property
    def name(self) -> str:
        """How messages name this device: ``device N`` (its place among the document's devices
        of pyvfmac), or its ``label``, the words that asked for it (``--pci 0000:01:10.2``)."""
        return self.label if self.label is not None else f"device {self.index}"

    @property
    def key(self) -> str:
        """Who this device is: a network allocation's owner (``host.owner_of``), else its VF.

        * a network reference: ``network:<name>/<mac>`` -- an allocation is identified by
          (network, MAC), so the persistent form (no address) and the live form (address filled
          in) of one device have the same key;
        * otherwise the VF itself: ``pci:<canonical address>`` when the address is known, else
          ``netdev:<name>`` (the state store does not use this: it keys a VF's record by the
          bare PCI address, ``0000:06:10.0``, that attach resolves either form to).
        """
        if self.network is not None:
            return f"network:{self.network}/{self.mac}"
        if self.address is not None:
            return f"pci:{self.address}"
        return f"netdev:{self.netdev}"


def merge_settings(
    device: DeviceSpec, network: NetworkSpec
) -> tuple[Vlan | None, VirtualPort | None]:
    """The vlan and virtualport to give the VF allocated to ``device`` from ``network``.

    libvirt's rules: the device's own ``<vlan>`` wins over the portgroup's (the device's
    ``portgroup``, else the network's default portgroup), which wins over the network's, each
    taken whole; the three ``<virtualport>`` s are merged parameter by parameter
    (:func:`~pyvfmac.portsettings.merge_virtualports`: a device's virtualport without a type
    takes it from the portgroup or the network; conflicting values are an error).
    :class:`~pyvfmac.errors.PoolError` when the device refers to another network, to a
    portgroup the network does not have, or when the virtualports do not merge.
    """
    if device.network != network.name:
        raise PoolError(
            f"{device.name} (MAC {device.mac}) refers to network {device.network!r}, "
            f"not {network.name!r}"
        )
    pg = network.portgroup(device.portgroup)
    vlan = device.vlan
    if vlan is None:
        vlan = pg.vlan if pg is not None and pg.vlan is not None else network.vlan
    vport = merge_virtualports(
        device.virtualport, pg.virtualport if pg is not None else None, network.virtualport,
        where=f"{device.name} (MAC {device.mac}), network {network.name}")
    return vlan, vport


def effective_trust(device: DeviceSpec, network: NetworkSpec | None = None) -> bool | None:
    """VF trust from ``trustGuestRxFilters``: the device's, else its portgroup's, else the
    network's (libvirt's precedence); None when none says (the VF's setting is left alone)."""
    if device.trust is not None or network is None:
        return device.trust
    return network.trust_for(device.portgroup)


def effective_managed(device: DeviceSpec, network: NetworkSpec | None = None) -> bool:
    """Whether pyvfmac binds the VF to vfio-pci: the device's ``managed='yes'``, or, for a network
    reference, the network's ``<forward managed='yes'>`` (``<interface type='network'>`` has no
    ``managed`` attribute of its own in libvirt)."""
    return device.managed or (network is not None and network.managed)


_ROOTS = ("hostdev", "interface", "domain")


def _macs(elem: ET.Element) -> list[ET.Element]:
    found = children(elem, "mac")
    for source in children(elem, "source"):
        found += children(source, "mac")
    return found


class DeviceDocument:
    """A parsed ``<hostdev>``, ``<interface>`` or ``<domain>``; see the module documentation.

    ``kind`` is the root element's name. ``devices`` are pyvfmac's devices, in document order.
    :meth:`set_address` / :meth:`clear_address` edit the tree in place; :meth:`to_string` writes
    the document back with everything that is not pyvfmac's unchanged.
    """

    def __init__(self, tree: Tree, kind: str, elems: list[ET.Element], specs: list[DeviceSpec]):
        self._tree = tree
        self.kind = kind
        self._elems = elems
        self._specs = specs
        self.left_alone: tuple[str, ...] = ()
        """Names of the networks whose ``<interface type='network'>`` s are not pyvfmac's."""

    @property
    def devices(self) -> tuple[DeviceSpec, ...]:
        return tuple(self._specs)

    @property
    def source(self) -> str:
        return self._tree.source

    @property
    def tree(self) -> Tree:
        """The parsed document, for a caller that rewrites more than addresses
        (:mod:`pyvfmac.libvirthook`)."""
        return self._tree

    def element(self, index: int) -> ET.Element:
        """Device ``index``'s element in :attr:`tree`."""
        return self._device(index)[1]

    @classmethod
    def parse(cls, data: str | bytes, *, source: str = "<input>",
              networks: Container[str] | None = None) -> DeviceDocument:
        """Parse a device document. ``networks``: the names of pyvfmac's networks (the state
        store's); an ``<interface type='network'>`` that names any other network (libvirt's
        NAT network ``default``, a bridge or Open vSwitch network) is not pyvfmac's and is left
        exactly as it is (see :attr:`left_alone`). None: every network reference is taken as
        pyvfmac's (pure parsing, without a store)."""
        tree = Tree(data, source)
        root = tree.root
        if root.tag not in _ROOTS:
            raise tree.error(
                root, "the root element must be <hostdev>, <interface> or <domain>"
            )
        elems: list[ET.Element] = []
        left_alone: list[str] = []
        aliases: dict[str, ET.Element] = {}
        if root.tag == "domain":
            for devices in children(root, "devices"):
                for child in devices:
                    for alias in children(child, "alias"):
                        aliases.setdefault(alias.get("name", ""), child)
                    if child.tag == "hostdev" and _macs(child):
                        elems.append(child)
                    elif child.tag == "interface" and _ours(tree, child, networks, left_alone):
                        elems.append(child)
        else:
            if root.tag == "interface" and root.get("type") not in ("hostdev", "network"):
                itype = root.get("type")
                shown = "attribute 'type' is missing" if itype is None else f"type={itype!r}"
                raise tree.error(root, f"interface {shown}: expected 'hostdev' or 'network'")
            if root.tag != "interface" or _ours(tree, root, networks, left_alone):
                elems.append(root)
        specs = [_parse_device(tree, elem, i) for i, elem in enumerate(elems)]
        if root.tag == "domain":
            for spec, elem in zip(specs, elems):
                _check_partner(tree, spec, elem, aliases)
        doc = cls(tree, str(root.tag), elems, specs)
        doc.left_alone = tuple(left_alone)
        doc._check_unique()
        return doc

    def _check_unique(self) -> None:
        seen: dict[tuple[str, object], int] = {}
        for spec, elem in zip(self._specs, self._elems):
            for what, value in (
                ("MAC", spec.mac),
                ("PCI address", spec.address),
                ("netdev", spec.netdev),
            ):
                if value is None:
                    continue
                first = seen.setdefault((what, value), spec.index)
                if first != spec.index:
                    raise self._tree.error(
                        elem, f"{what} {value} is already used by device {first}",
                        f"device {spec.index}",
                    )

    def _device(self, index: int) -> tuple[DeviceSpec, ET.Element, ET.Element]:
        if not isinstance(index, int) or not 0 <= index < len(self._specs):
            count = len(self._specs)
            raise XmlError(f"{self.source}: no device {index!r} (the document has {count})")
        elem = self._elems[index]
        source = children(elem, "source")[0]
        return self._specs[index], elem, source

    @staticmethod
    def _coord_carrier(source: ET.Element) -> ET.Element | None:
        """The ``<address>`` in ``<source>`` that carries the PCI coordinates, if it exists."""
        found = children(source, "address")
        return found[0] if found else None

    def set_address(self, index: int, address: PciAddress) -> None:
        """Write ``address`` into device ``index`` (keeping ``netdev=`` / the network reference;
        see the module documentation for the live form of a network reference).

        A device whose definition already names a different VF (address or step 2's filled form)
        is refused with both values; a network reference takes any address (the allocation)."""
        if not isinstance(address, PciAddress):
            raise XmlError(f"set_address: expected a PciAddress, got {address!r}")
        spec, elem, source = self._device(index)
        if spec.network is None and spec.address is not None and spec.address != address:
            raise self._tree.error(
                elem,
                f"the definition says PCI address {spec.address}, the VF found is {address}",
                f"device {index}",
            )
        for other in self._specs:
            if other.index != index and other.address == address:
                raise self._tree.error(
                    elem, f"PCI address {address} is already used by device {other.index}",
                    f"device {index}",
                )
        carrier = self._coord_carrier(source)
        if carrier is None:
            carrier = ET.Element("address", {"type": "pci"} if elem.tag == "interface" else {})
            insert_child(self._tree, source, carrier)
        attrs = dict(carrier.attrib)
        ordered: dict[str, str] = {}
        if "type" in attrs:
            ordered["type"] = attrs.pop("type")
        ordered.update(address.xml_attrs())
        ordered.update((k, v) for k, v in attrs.items() if k not in PCI_COORDS)
        carrier.attrib.clear()
        carrier.attrib.update(ordered)
        self._specs[index] = replace(spec, address=address)

    def clear_address(self, index: int) -> None:
        """Back to the persistent form of a network reference: the PCI coordinates leave the
        device (and so does an ``<address>`` that carried nothing else). Only for network
        references; other devices keep their address in the persistent definition."""
        spec, elem, source = self._device(index)
        if spec.network is None:
            raise self._tree.error(
                elem, "clear_address applies to a network reference only", f"device {index}"
            )
        carrier = self._coord_carrier(source)
        if carrier is not None:
            for key in PCI_COORDS:
                carrier.attrib.pop(key, None)
            if set(carrier.attrib) <= {"type"} and not len(carrier):
                remove_child(source, carrier)
        self._specs[index] = replace(spec, address=None)

    def to_string(self) -> str:
        return self._tree.to_string()


def _teaming(elem: ET.Element) -> ET.Element | None:
    found = children(elem, "teaming")
    return found[0] if found else None


def _ours(tree: Tree, elem: ET.Element, networks: Container[str] | None,
          left_alone: list[str]) -> bool:
    """Whether an ``<interface>`` is pyvfmac's: type 'hostdev', or type 'network' naming one of
    ``networks`` (any network when None), except the persistent (virtio) NIC of a failover pair."""
    itype = elem.get("type")
    if itype == "hostdev":
        return True
    if itype != "network":
        return False
    sources = children(elem, "source")
    name = sources[0].get("network") if len(sources) == 1 else None
    teaming = _teaming(elem)
    persistent = teaming is not None and teaming.get("type") == "persistent"
    if networks is not None and name is not None and name not in networks:
        left_alone.append(name)
        return False
    if persistent:
        if networks is not None and name is not None:
            raise tree.error(elem, f"the persistent NIC of a failover pair is the guest's virtio "
                             f"NIC; network {name!r} is a pool of VFs")
        return False
    return True


def _check_partner(tree: Tree, spec: DeviceSpec, elem: ET.Element,
                   aliases: dict[str, ET.Element]) -> None:
    """A transient failover device names its persistent partner by alias: it must exist in the
    domain and be marked ``<teaming type='persistent'/>``."""
    if spec.teaming is None:
        return
    partner = aliases.get(spec.teaming)
    teaming = _teaming(partner) if partner is not None else None
    if teaming is None or teaming.get("type") != "persistent":
        raise tree.error(elem, f"<teaming persistent={spec.teaming!r}>: the domain has no device "
                         f"with <alias name={spec.teaming!r}/> and <teaming type='persistent'/>",
                         f"device {spec.index}")


_REFUSED_DEVICE = {
    "bandwidth": "bandwidth limits cannot be applied to a VF given to a guest (libvirt refuses "
                 "them for hostdev interfaces too)",
    "filterref": "nwfilter rules work on a host tap device; a VF's traffic never passes the "
                 "host, so the filter would silently not apply",
}


def _check_driver(tree: Tree, elem: ET.Element, ctx: str) -> None:
    drivers = children(elem, "driver")
    if len(drivers) > 1:
        raise tree.error(drivers[1], f"only one <driver> allowed in {describe(elem)}", ctx)
    for drv in drivers:
        name = drv.get("name")
        if name is not None and name != "vfio":
            raise tree.error(drv, f"name={name!r}: only 'vfio' is supported (pyvfmac binds "
                             "managed VFs to vfio-pci)", ctx)
        if "model" in drv.attrib:
            raise tree.error(drv, f"model={drv.get('model')!r}: VFIO variant drivers are not "
                             "supported; pyvfmac binds managed VFs to vfio-pci only (drop "
                             "model=, or bind the variant driver yourself and use "
                             "managed='no')", ctx)


def _check_backend(tree: Tree, elem: ET.Element, ctx: str) -> None:
    """``<backend>`` of an interface: ``tap=`` names the tun/tap device libvirt opens for a
    network, bridge or ethernet interface; an ``<interface type='hostdev'>`` has no tap, and
    libvirt 11.3.0 refuses the attribute there (issue #21). ``type='passt'`` is for
    ``type='user'`` only (domain_validate.c, virDomainNetDefValidate). ``vhost=`` libvirt drops
    for a hostdev interface: it is kept, like the rest."""
    for backend in children(elem, "backend"):
        if "tap" in backend.attrib and elem.get("type") == "hostdev":
            raise tree.error(backend, "tap= is the tun/tap device of a network, bridge or "
                             "ethernet interface; an <interface type='hostdev'> has none "
                             "(libvirt refuses it too)", ctx)
        if backend.get("type") == "passt":
            raise tree.error(backend, "type='passt' is for <interface type='user'> only "
                             "(libvirt refuses it on any other interface)", ctx)


def _parse_teaming(tree: Tree, elem: ET.Element, ctx: str) -> str | None:
    teaming = one_child(tree, elem, "teaming", ctx, required=False)
    if teaming is None:
        return None
    check_attrs(tree, teaming, ("type", "persistent"), ctx)
    ttype = teaming.get("type")
    if ttype == "persistent":
        raise tree.error(teaming, "a VF is the transient device of a failover pair; the "
                         "persistent one is the guest's virtio NIC", ctx)
    if ttype != "transient":
        raise tree.error(teaming, f"type={ttype!r}: expected 'transient' (for a VF)", ctx)
    partner = teaming.get("persistent")
    if not partner:
        raise tree.error(teaming, "type='transient' needs persistent='ALIAS' (the alias of the "
                         "virtio NIC)", ctx)
    return partner


def _parse_device(tree: Tree, elem: ET.Element, index: int) -> DeviceSpec:
    ctx = f"device {index} <{elem.tag}>"
    form: Literal["hostdev", "interface"]
    if elem.tag == "hostdev":
        form = "hostdev"
        mode = elem.get("mode", "subsystem")
        if mode != "subsystem":
            raise tree.error(elem, f"mode={mode!r}: only 'subsystem' is supported", ctx)
        htype = elem.get("type")
        if htype is None:
            raise tree.error(elem, "attribute 'type' is missing (expected type='pci')", ctx)
        if htype != "pci":
            raise tree.error(elem, f"type={htype!r}: only 'pci' is supported", ctx)
    else:
        form = "interface"
    managed = yes_no(tree, elem, "managed", ctx)
    for child in elem:
        if isinstance(child.tag, str) and child.tag in _REFUSED_DEVICE:
            raise tree.error(child, f"not allowed: {_REFUSED_DEVICE[child.tag]}", ctx)
    _check_driver(tree, elem, ctx)
    if form == "interface":
        _check_backend(tree, elem, ctx)
    teaming = _parse_teaming(tree, elem, ctx)
    trust = None
    if form == "interface" and "trustGuestRxFilters" in elem.attrib:
        trust = yes_no(tree, elem, "trustGuestRxFilters", ctx)
    source = one_child(tree, elem, "source", ctx, required=True)
    assert source is not None
    if form == "interface" and elem.get("type") == "network":
        address, netdev, network, portgroup = _network_source(tree, source, ctx)
    else:
        address, netdev, network, portgroup = _hostdev_source(tree, source, ctx)

    macs = _macs(elem)
    if not macs:
        raise tree.error(elem, "fixed MAC required: add <mac address='...'/>", ctx)
    if len(macs) > 1:
        raise tree.error(macs[1], f"only one <mac> allowed in {describe(elem)}", ctx)
    raw_mac = macs[0].get("address")
    if raw_mac is None:
        raise tree.error(macs[0], "attribute 'address' is missing", ctx)
    try:
        mac = parse_mac(raw_mac)
    except InputError as exc:
        raise tree.error(macs[0], str(exc), ctx) from None

    vlan_elem = one_child(tree, elem, "vlan", ctx, required=False)
    vport_elem = one_child(tree, elem, "virtualport", ctx, required=False)
    vport = None
    if vport_elem is not None:
        # a network reference may leave the type and parameters to the network (libvirt's merge)
        vport = parse_virtualport(tree, vport_elem, ctx, partial=network is not None)
        refuse_unsupported(tree, vport_elem, vport, ctx)
    return DeviceSpec(
        index=index,
        form=form,
        managed=managed,
        mac=mac,
        address=address,
        netdev=netdev,
        network=network,
        portgroup=portgroup,
        vlan=parse_vlan(tree, vlan_elem, ctx) if vlan_elem is not None else None,
        virtualport=vport,
        trust=trust,
        teaming=teaming,
    )


_Source = tuple[PciAddress | None, str | None, str | None, str | None]


def _hostdev_source(tree: Tree, source: ET.Element, ctx: str) -> _Source:
    """``<source>`` of a hostdev or an interface type='hostdev'."""
    addr = one_child(tree, source, "address", ctx, required=False)
    net = one_child(tree, source, "network", ctx, required=False)
    if addr is None and net is None:
        raise tree.error(source, "needs an <address> (PCI address, netdev= or network=) "
                         "or a <network dev=.. | name=..>", ctx)
    address = netdev = network = portgroup = None
    if addr is not None:
        check_attrs(tree, addr, (*PCI_COORDS, "type", "netdev", "network", "portgroup"), ctx)
        atype = addr.get("type", "pci")
        if atype != "pci":
            raise tree.error(addr, f"type={atype!r}: only 'pci' is supported", ctx)
        if has_pci_coords(addr):
            address = pci_attr(tree, addr, ctx)
        if "netdev" in addr.attrib and "network" in addr.attrib:
            raise tree.error(addr, "give either netdev= or network=, not both", ctx)
        if "netdev" in addr.attrib:
            netdev = netdev_attr(tree, addr, "netdev", ctx)
        if "network" in addr.attrib:
            network = network_name_in(tree, addr, addr.attrib["network"], "network", ctx)
        if "portgroup" in addr.attrib:
            portgroup = _portgroup_ref(tree, addr, ctx)
        if address is None and netdev is None and network is None:
            if net is None:
                raise tree.error(addr, "needs domain/bus/slot/function, netdev= or network=", ctx)
            raise tree.error(addr, "an <address> next to <network> must carry the PCI "
                             "address (domain/bus/slot/function)", ctx)
    if net is not None:
        check_attrs(tree, net, ("dev", "name", "portgroup"), ctx)
        if ("dev" in net.attrib) == ("name" in net.attrib):
            raise tree.error(net, "give exactly one of dev= (a netdev) or name= (a network)", ctx)
        if netdev is not None or network is not None:
            named = f"netdev {netdev!r}" if netdev is not None else f"network {network!r}"
            raise tree.error(net, f"the <address> already names {named}", ctx)
        if "dev" in net.attrib:
            netdev = netdev_attr(tree, net, "dev", ctx)
        else:
            network = network_name_in(tree, net, net.attrib["name"], "network name", ctx)
        if "portgroup" in net.attrib:
            if portgroup is not None:
                raise tree.error(net, "portgroup given twice", ctx)
            portgroup = _portgroup_ref(tree, net, ctx)
    if portgroup is not None and network is None:
        raise tree.error(source, f"portgroup {portgroup!r} without a network reference", ctx)
    return address, netdev, network, portgroup


def _network_source(tree: Tree, source: ET.Element, ctx: str) -> _Source:
    """``<source network=.. portgroup=..>`` of an interface type='network' (and, live, the
    ``<address type='pci' ..>`` pyvfmac put inside it)."""
    if "network" not in source.attrib:
        raise tree.error(source, "attribute 'network' is missing", ctx)
    network = network_name_in(tree, source, source.attrib["network"], "network", ctx)
    portgroup = _portgroup_ref(tree, source, ctx) if "portgroup" in source.attrib else None
    address = None
    addr = one_child(tree, source, "address", ctx, required=False)
    if addr is not None:
        address = pci_address_elem(tree, addr, ctx)
    return address, None, network, portgroup


def _portgroup_ref(tree: Tree, elem: ET.Element, ctx: str) -> str:
    name = elem.attrib["portgroup"]
    if not name or any(not ch.isprintable() for ch in name):
        raise tree.error(elem, f"portgroup={name!r}: not a portgroup name", ctx)
    return name

