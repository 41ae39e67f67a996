"""Port settings a VF takes from its device or its network: one ``<vlan>`` tag and one
``<virtualport>``; their values, how they are read from XML and written back in libvirt's format,
and libvirt's rule for merging the virtualports of an interface, its portgroup and its network
(pure Python, no kernel access).

A VF takes an 802.1Qbh port profile (associated through the PF, IFLA_VF_PORTS). 802.1Qbg is read
and checked (so that its errors name the bad value) but refused by the documents
(:func:`refuse_unsupported`): it needs a VDP daemon such as lldpad, which pyvfmac does not drive.
"""

from __future__ import annotations

import uuid as _uuid
import xml.etree.ElementTree as ET
from dataclasses import dataclass

from .errors import PoolError, XmlError
from .xmltree import Tree, check_attrs, check_children, children, int_attr, one_child, yes_no

PORT_PROFILE_MAX = 39  # IFLA_PORT_PROFILE: 40 bytes with the terminating NUL
VIRTUALPORT_TYPES = ("802.1Qbh", "802.1Qbg")
VPORT_PARAMS = ("managerid", "typeid", "typeidversion", "profileid", "instanceid", "interfaceid")
"""Every ``<parameters>`` attribute of a ``<virtualport>``, in libvirt's order."""


@dataclass(frozen=True, slots=True)
class Vlan:
    """One 802.1Q VLAN tag (a VF takes exactly one; 0 means untagged) and its 802.1p priority
    (``qos``, 0..7; libvirt's XML has none, ``vfmac attach --qos`` sets it)."""

    vid: int
    qos: int = 0

    def __post_init__(self) -> None:
        if isinstance(self.vid, bool) or not isinstance(self.vid, int) or not 0 <= self.vid <= 4095:
            raise XmlError(f"VLAN id {self.vid!r}: not in 0..4095")
        if isinstance(self.qos, bool) or not isinstance(self.qos, int) or not 0 <= self.qos <= 7:
            raise XmlError(f"VLAN qos {self.qos!r}: not in 0..7")
        if self.qos and not self.vid:
            raise XmlError(f"VLAN qos {self.qos}: a priority needs a VLAN id (not 0)")


@dataclass(frozen=True, slots=True)
class VirtualPort:
    """A ``<virtualport>``: 802.1Qbh (``profileid``, optional ``instanceid``) or 802.1Qbg
    (``managerid``, ``typeid``, ``typeidversion``, optional ``instanceid``, a UUID).

    In an ``<interface type='network'>`` libvirt lets a virtualport be partial: ``type`` None
    and any parameters missing (``interfaceid`` too, Open vSwitch's), to be completed from the
    portgroup and the network by :func:`merge_virtualports`."""

    type: str | None
    profileid: str | None = None
    managerid: int | None = None
    typeid: int | None = None
    typeidversion: int | None = None
    instanceid: str | None = None
    interfaceid: str | None = None



def parse_vlan(tree: Tree, elem: ET.Element, ctx: str) -> Vlan:
    check_attrs(tree, elem, ("trunk",), ctx)
    if yes_no(tree, elem, "trunk", ctx):
        raise tree.error(elem, "trunk='yes': a VF takes one VLAN tag, not a trunk", ctx)
    check_children(tree, elem, ("tag",), ctx)
    tags = children(elem, "tag")
    if len(tags) != 1:
        raise tree.error(elem, f"a VF takes exactly one <tag>; found {len(tags)}", ctx)
    tag = tags[0]
    check_attrs(tree, tag, ("id", "nativeMode"), ctx)
    if "nativeMode" in tag.attrib:
        raise tree.error(tag, "nativeMode is for trunks; a VF takes one tag", ctx)
    return Vlan(int_attr(tree, tag, "id", 0, 4095, ctx))


def _uuid_attr(tree: Tree, params: ET.Element, attr: str, ctx: str) -> str | None:
    if attr not in params.attrib:
        return None
    raw = params.attrib[attr]
    try:
        return str(_uuid.UUID(raw))
    except ValueError:
        raise tree.error(params, f"{attr}={raw!r} is not a UUID", ctx) from None


def _profileid(tree: Tree, params: ET.Element, ctx: str) -> str | None:
    profile = params.get("profileid")
    if profile is None:
        return None
    if not profile or len(profile.encode()) > PORT_PROFILE_MAX:
        raise tree.error(
            params, f"profileid={profile!r}: must be 1 to {PORT_PROFILE_MAX} bytes", ctx
        )
    if any(not ch.isprintable() for ch in profile):
        raise tree.error(params, f"profileid={profile!r}: contains a control character", ctx)
    return profile


def _partial_virtualport(tree: Tree, elem: ET.Element, params: ET.Element | None,
                         vtype: str | None, ctx: str) -> VirtualPort:
    """libvirt's partial form (an interface that refers to a network): type and parameters
    optional, every parameter checked when present."""
    if params is None:
        return VirtualPort(vtype)
    check_attrs(tree, params, VPORT_PARAMS, ctx)

    def num(attr: str, low: int, high: int, why: str = "") -> int | None:
        if attr not in params.attrib:
            return None
        return int_attr(tree, params, attr, low, high, ctx, why)

    return VirtualPort(
        vtype,
        profileid=_profileid(tree, params, ctx),
        managerid=num("managerid", 1, 255, " (0 is reserved)"),
        typeid=num("typeid", 0, 0xFFFFFF),
        typeidversion=num("typeidversion", 0, 255),
        instanceid=_uuid_attr(tree, params, "instanceid", ctx),
        interfaceid=_uuid_attr(tree, params, "interfaceid", ctx),
    )


def parse_virtualport(tree: Tree, elem: ET.Element, ctx: str, *,
                      partial: bool = False) -> VirtualPort:
    """A ``<virtualport>``. ``partial``: the form libvirt allows in an ``<interface
    type='network'>`` (no type, parameters missing; completed by :func:`merge_virtualports`)."""
    check_attrs(tree, elem, ("type",), ctx)
    vtype = elem.get("type")
    if vtype is None and not partial:
        raise tree.error(elem, "attribute 'type' is missing (802.1Qbh or 802.1Qbg; only an "
                         "interface that refers to a network may leave it out)", ctx)
    if vtype in ("openvswitch", "midonet"):
        raise tree.error(elem, f"type={vtype!r} is for a software switch port, not for a VF", ctx)
    if vtype is not None and vtype not in VIRTUALPORT_TYPES:
        raise tree.error(elem, f"type={vtype!r}: expected '802.1Qbh' or '802.1Qbg'", ctx)
    check_children(tree, elem, ("parameters",), ctx)
    params = one_child(tree, elem, "parameters", ctx, required=not partial)
    if partial:
        vp = _partial_virtualport(tree, elem, params, vtype, ctx)
        if vtype is not None:
            _check_no_extras(tree, elem, vp, ctx)
        return vp
    assert params is not None
    instanceid = _uuid_attr(tree, params, "instanceid", ctx)
    if vtype == "802.1Qbh":
        check_attrs(tree, params, ("profileid", "instanceid"), ctx)
        profile = _profileid(tree, params, ctx)
        if profile is None:
            raise tree.error(params, "802.1Qbh needs attribute 'profileid'", ctx)
        return VirtualPort(vtype, profileid=profile, instanceid=instanceid)
    check_attrs(tree, params, ("managerid", "typeid", "typeidversion", "instanceid"), ctx)
    return VirtualPort(
        vtype,
        managerid=int_attr(tree, params, "managerid", 1, 255, ctx, " (0 is reserved)"),
        typeid=int_attr(tree, params, "typeid", 0, 0xFFFFFF, ctx),
        typeidversion=int_attr(tree, params, "typeidversion", 0, 255, ctx),
        instanceid=instanceid,
    )


_TYPE_PARAMS = {
    "802.1Qbh": ("profileid", "instanceid"),
    "802.1Qbg": ("managerid", "typeid", "typeidversion", "instanceid"),
}


def _check_no_extras(tree: Tree, elem: ET.Element, vp: VirtualPort, ctx: str) -> None:
    assert vp.type is not None
    for key in VPORT_PARAMS:
        if getattr(vp, key) is not None and key not in _TYPE_PARAMS[vp.type]:
            raise tree.error(elem, f"parameter {key!r} does not belong to type {vp.type!r}", ctx)


def refuse_unsupported(tree: Tree, elem: ET.Element, vp: VirtualPort, ctx: str) -> None:
    """The documents' policy: 802.1Qbg is refused where it is read, before any host lookup."""
    if vp.type == "802.1Qbg":
        raise tree.error(elem, "virtualport type '802.1Qbg' is not supported for a VF (it needs "
                         "a VDP daemon such as lldpad; use 802.1Qbh or none)", ctx)


def combine_virtualports(levels: list[tuple[str, VirtualPort | None]], *,
                         where: str) -> VirtualPort | None:
    """libvirt's merge of virtualports (virNetDevVPortProfileMerge3), ``levels`` as (name,
    virtualport) pairs: the type and every parameter are taken from whichever level gives them;
    two levels that give different values are an error (:class:`~pyvfmac.errors.PoolError`).
    The result may still be partial (see :func:`merge_virtualports`)."""
    given = [(name, vp) for name, vp in levels if vp is not None]
    if not given:
        return None
    merged: dict[str, tuple[str, object]] = {}
    for key in ("type", *VPORT_PARAMS):
        for name, vp in given:
            value = getattr(vp, key)
            if value is None:
                continue
            first, have = merged.setdefault(key, (name, value))
            if have != value:
                raise PoolError(f"{where}: virtualport {key} {value!r} of the {name} conflicts "
                                f"with {have!r} of the {first} (libvirt's merge rule)")
    values = {key: value for key, (_, value) in merged.items()}
    vtype = values.pop("type", None)
    return VirtualPort(None if vtype is None else str(vtype), **values)  # type: ignore[arg-type]


def merge_virtualports(interface: VirtualPort | None, portgroup: VirtualPort | None,
                       network: VirtualPort | None, *, where: str) -> VirtualPort | None:
    """The virtualport a VF gets: :func:`combine_virtualports` of the interface's, the
    portgroup's and the network's, which must then be complete for a VF: none at all, or
    802.1Qbh with a profileid. Parameters that a typeless interface virtualport carried for other
    switch types (libvirt's documented use: a profileid and an interfaceid side by side) are
    dropped."""
    vp = combine_virtualports(
        [("interface", interface), ("portgroup", portgroup), ("network", network)], where=where)
    if vp is None:
        return None
    if vp.type is None:
        if vp == VirtualPort(None):
            return None
        raise PoolError(f"{where}: a <virtualport> without a type, and neither the portgroup nor "
                        "the network gives one")
    if vp.type != "802.1Qbh":
        raise PoolError(f"{where}: virtualport type {vp.type!r} is not supported for a VF "
                        "(802.1Qbg needs a VDP daemon such as lldpad; use 802.1Qbh or none)")
    if vp.profileid is None:
        raise PoolError(f"{where}: the merged 802.1Qbh virtualport has no profileid")
    return VirtualPort("802.1Qbh", profileid=vp.profileid, instanceid=vp.instanceid)


def virtualport_to_elem(vp: VirtualPort) -> ET.Element:
    elem = ET.Element("virtualport", {"type": vp.type} if vp.type is not None else {})
    params: dict[str, str] = {}
    for key in VPORT_PARAMS:
        value = getattr(vp, key)
        if value is not None:
            params[key] = str(value)
    ET.SubElement(elem, "parameters", params)
    return elem


def vlan_to_elem(vlan: Vlan) -> ET.Element:
    elem = ET.Element("vlan")
    ET.SubElement(elem, "tag", {"id": str(vlan.vid)})
    return elem

