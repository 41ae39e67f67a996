"""Port settings a VF takes from its device or its network: one ``<vlan>`` tag and one
``<virtualport>`` (802.1Qbh or 802.1Qbg); their values, how they are read from XML and written
back in libvirt's format (pure Python, no kernel access)."""

from __future__ import annotations

import uuid as _uuid
import xml.etree.ElementTree as ET
from dataclasses import dataclass

from .errors import XmlError
from .xmltree import Tree, check_attrs, check_children, children, int_attr, one_child, yes_no

PORT_PROFILE_MAX = 39  # IFLA_PORT_PROFILE: 40 bytes with the terminating NUL
VIRTUALPORT_TYPES = ("802.1Qbh", "802.1Qbg")


@dataclass(frozen=True, slots=True)
class Vlan:
    """One 802.1Q VLAN tag (a VF takes exactly one; 0 means untagged)."""

    vid: int

    def __post_init__(self) -> None:
        if isinstance(self.vid, bool) or not isinstance(self.vid, int) or not 0 <= self.vid <= 4095:
            raise XmlError(f"VLAN id {self.vid!r}: not in 0..4095")


@dataclass(frozen=True, slots=True)
class VirtualPort:
    """A ``<virtualport>``: 802.1Qbh (``profileid``, optional ``instanceid``) or 802.1Qbg
    (``managerid``, ``typeid``, ``typeidversion``, optional ``instanceid``, a UUID)."""

    type: str
    profileid: str | None = None
    managerid: int | None = None
    typeid: int | None = None
    typeidversion: int | None = None
    instanceid: str | None = None



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


def parse_virtualport(tree: Tree, elem: ET.Element, ctx: str) -> VirtualPort:
    check_attrs(tree, elem, ("type",), ctx)
    vtype = elem.get("type")
    if vtype is None:
        raise tree.error(elem, "attribute 'type' is missing (802.1Qbh or 802.1Qbg)", ctx)
    if vtype in ("openvswitch", "midonet"):
        raise tree.error(elem, f"type={vtype!r} is for a software switch port, not for a VF", ctx)
    if vtype not in VIRTUALPORT_TYPES:
        raise tree.error(elem, f"type={vtype!r}: expected '802.1Qbh' or '802.1Qbg'", ctx)
    check_children(tree, elem, ("parameters",), ctx)
    params = one_child(tree, elem, "parameters", ctx, required=True)
    assert params is not None
    instanceid = None
    if "instanceid" in params.attrib:
        raw = params.attrib["instanceid"]
        try:
            instanceid = str(_uuid.UUID(raw))
        except ValueError:
            raise tree.error(params, f"instanceid={raw!r} is not a UUID", ctx) from None
    if vtype == "802.1Qbh":
        check_attrs(tree, params, ("profileid", "instanceid"), ctx)
        profile = params.get("profileid")
        if profile is None:
            raise tree.error(params, "802.1Qbh needs attribute 'profileid'", ctx)
        if not profile or len(profile.encode()) > PORT_PROFILE_MAX:
            raise tree.error(
                params, f"profileid={profile!r}: must be 1 to {PORT_PROFILE_MAX} bytes", ctx
            )
        if any(not ch.isprintable() for ch in profile):
            raise tree.error(params, f"profileid={profile!r}: contains a control character", ctx)
        return VirtualPort(vtype, profileid=profile, instanceid=instanceid)
    check_attrs(tree, params, ("managerid", "typeid", "typeidversion", "instanceid"), ctx)
    return VirtualPort(
        vtype,
        managerid=int_attr(tree, params, "managerid", 1, 255, ctx, " (0 is reserved)"),
        typeid=int_attr(tree, params, "typeid", 0, 0xFFFFFF, ctx),
        typeidversion=int_attr(tree, params, "typeidversion", 0, 255, ctx),
        instanceid=instanceid,
    )


def virtualport_to_elem(vp: VirtualPort) -> ET.Element:
    elem = ET.Element("virtualport", {"type": vp.type})
    params: dict[str, str] = {}
    for key in ("managerid", "typeid", "typeidversion", "profileid", "instanceid"):
        value = getattr(vp, key)
        if value is not None:
            params[key] = str(value)
    ET.SubElement(elem, "parameters", params)
    return elem


def vlan_to_elem(vlan: Vlan) -> ET.Element:
    elem = ET.Element("vlan")
    ET.SubElement(elem, "tag", {"id": str(vlan.vid)})
    return elem

