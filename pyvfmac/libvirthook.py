"""The seed's ``<hostdev><mac>`` inside a real libvirtd, through its hook.

libvirt never took a ``<mac>`` (nor a ``<vlan>`` or ``<virtualport>``) inside a PCI
``<hostdev>``, and drops elements it does not know; but it keeps an application's namespaced
``<metadata>`` verbatim and hands the whole domain XML to its hook,
``/etc/libvirt/hooks/qemu GUEST OP SUBOP EXTRA`` (or a script in ``/etc/libvirt/hooks/qemu.d/``).

- :func:`to_libvirt` (``vfmac libvirt-xml FILE``): the document with pyvfmac's forms turned into
  libvirt's. A ``<hostdev>``'s ``<mac>``, ``<vlan>`` and ``<virtualport>`` move into pyvfmac's
  metadata (namespace :data:`NS`); a netdev name (step 2: ``<address netdev=..>``,
  ``<network dev=..>``) is resolved to its PCI address now, and kept in the metadata, so that the
  hook re-checks it at every start. A reference to a pyvfmac network (a pool) is refused: libvirt
  picks a pool's VF itself (its own ``<forward mode='hostdev'>`` networks), or ``vfmac attach
  --network`` does outside libvirt. Nothing on the host changes.
- :func:`run_hook` (``vfmac libvirt-hook``): at ``prepare begin`` (before libvirt binds vfio-pci
  and starts QEMU; also for a restore and an incoming migration) the metadata's VFs are attached
  (saved original, fixed MAC, VLAN, port profile) for owner ``libvirt:<domain uuid>``; a refusal
  (a MAC another VF has, a netdev that now names another VF) fails the start with the reason in
  libvirt's error and changes nothing. At ``release end`` they are given back through the one
  restore path. Every other event passes; so does a domain without pyvfmac's metadata, with
  nothing read from the host.
"""

from __future__ import annotations

import copy
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass

from .domain import DeviceDocument, DeviceSpec
from .errors import XmlError
from .xmltree import Tree, children, insert_child, remove_child

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (mypy: always_true)
if TYPE_CHECKING:
    from .host import Host

__all__ = ["NS", "Hooked", "hook", "metadata_devices", "run_hook", "to_libvirt"]

NS = "urn:x-pyvfmac:domain:1"
"""pyvfmac's namespace in a domain's ``<metadata>``."""
PREFIX = "vfmac"
_KEPT = ("source", "mac", "vlan", "virtualport")  # what of a <hostdev> the metadata keeps


def _q(tag: str) -> str:
    return f"{{{NS}}}{tag}"


def _namespaced(elem: ET.Element) -> ET.Element:
    """A copy of ``elem`` with every tag in pyvfmac's namespace (libvirt keeps only metadata
    elements of the namespace of their top element)."""
    out = copy.deepcopy(elem)
    for node in out.iter():
        if isinstance(node.tag, str) and not node.tag.startswith("{"):
            node.tag = _q(node.tag)
    return out


def _plain(elem: ET.Element) -> ET.Element:
    """The inverse of :func:`_namespaced`."""
    out = copy.deepcopy(elem)
    for node in out.iter():
        if isinstance(node.tag, str) and node.tag.startswith(f"{{{NS}}}"):
            node.tag = node.tag.split("}", 1)[1]
    return out


# --------------------------------------------------------------------------- libvirt-xml


def _refuse_pool(doc: DeviceDocument, spec: DeviceSpec) -> XmlError:
    return XmlError(
        f"{doc.source}: {spec.name}: refers to pyvfmac network {spec.network!r} (a pool): "
        "libvirt picks a pool's VF at start itself; use libvirt's own hostdev network "
        "(<network><forward mode='hostdev'> and <interface type='network'>), or attach from "
        "the pool with `vfmac attach --network` outside libvirt")


def _resolve(doc: DeviceDocument, sysfs_root: str) -> None:
    """Step 2: each device named by netdev gets its PCI address, read now from sysfs."""
    from .topology import scan

    topo = None
    for spec in doc.devices:
        if spec.netdev is None:
            continue
        topo = topo or scan(sysfs_root)
        address = topo.address_of_netdev(spec.netdev)
        doc.set_address(spec.index, address)  # refuses a definition naming another VF


def _libvirt_source(source: ET.Element) -> None:
    """A hostdev's ``<source>`` as libvirt takes it: a PCI ``<address>`` alone."""
    for net in children(source, "network"):
        remove_child(source, net)
    for addr in children(source, "address"):
        for key in ("netdev", "network", "portgroup", "type"):
            addr.attrib.pop(key, None)
    for mac in children(source, "mac"):
        remove_child(source, mac)


def _libvirt_interface_source(source: ET.Element) -> None:
    for net in children(source, "network"):
        remove_child(source, net)
    for addr in children(source, "address"):
        addr.attrib.pop("netdev", None)
        addr.set("type", "pci")


def _networks(state_dir: str | None) -> frozenset[str]:
    """The names of pyvfmac's networks (none without a state store: nothing is created)."""
    from .statepath import store_exists

    if not store_exists(state_dir):
        return frozenset()
    from .store import Store

    with Store(state_dir) as store:
        return frozenset(rec.name for rec in store.networks())


def to_libvirt(text: str, *, source: str = "<input>", sysfs_root: str = "/sys",
               state_dir: str | None = None) -> str:
    """``vfmac libvirt-xml``: the document in libvirt's form, pyvfmac's part in its metadata.
    An ``<interface type='network'>`` of a network that is not pyvfmac's (``vfmac net-list``)
    is libvirt's and stays as it is."""
    doc = DeviceDocument.parse(text, source=source, networks=_networks(state_dir))
    if doc.kind != "domain":
        raise XmlError(f"{source}: libvirt-xml takes a whole <domain> (libvirt keeps pyvfmac's "
                       f"metadata in the domain), not a <{doc.kind}>")
    for spec in doc.devices:
        if spec.network is not None:
            raise _refuse_pool(doc, spec)
    _resolve(doc, sysfs_root)
    tree, root = doc.tree, doc.tree.root
    entries: list[ET.Element] = []
    for spec in doc.devices:
        elem = doc.element(spec.index)
        entry = ET.Element(_q(spec.form), {"managed": "yes" if spec.managed else "no"})
        for child in elem:
            if child.tag in _KEPT:
                entry.append(_namespaced(child))
        if spec.form == "hostdev":
            for child in list(elem):
                if child.tag in ("mac", "vlan", "virtualport"):
                    remove_child(elem, child)
            _libvirt_source(children(elem, "source")[0])
        elif spec.netdev is not None:  # libvirt's own interface: only the netdev re-check
            _libvirt_interface_source(children(elem, "source")[0])
        else:
            continue
        entries.append(entry)
    if not entries:
        return doc.to_string()
    for old in [m for meta in children(root, "metadata") for m in children(meta, _q("devices"))]:
        raise XmlError(f"{source}: already has pyvfmac's metadata ({ET.tostring(old)[:60]!r}"
                       "...): give the document as written, not libvirt-xml's output")
    block = ET.Element(_q("devices"))
    for entry in entries:
        for node in entry.iter():
            node.tail = None
            if node.text is not None and not node.text.strip():
                node.text = None
        block.append(entry)
    ET.indent(block, space="  ", level=2)
    tree.nsdecls[block] = [(PREFIX, NS)]
    metas = children(root, "metadata")
    meta = metas[0] if metas else ET.Element("metadata")
    if not metas:
        _insert_metadata(tree, root, meta)
    insert_child(tree, meta, block)
    return doc.to_string()


def _insert_metadata(tree: Tree, root: ET.Element, meta: ET.Element) -> None:
    """``<metadata>`` where libvirt writes it: after name, uuid, genid, title, description."""
    kids = list(root)
    pos = 0
    for i, child in enumerate(kids):
        if child.tag in ("name", "uuid", "genid", "title", "description"):
            pos = i + 1
    if pos == 0:
        insert_child(tree, root, meta)
        root.remove(meta)
        root.insert(0, meta)
        return
    before = kids[pos - 1]
    meta.tail = before.tail
    root.insert(pos, meta)


# --------------------------------------------------------------------------- the hook


@dataclass(frozen=True, slots=True)
class Hooked:
    """What one hook call did: the VFs attached or given back (their lines), nothing when the
    event or the domain is none of pyvfmac's."""

    lines: tuple[str, ...] = ()


def metadata_devices(text: str, *, source: str = "domain XML") -> tuple[str, str, DeviceDocument]:
    """The domain's name, UUID, and pyvfmac's devices from its metadata, as one document."""
    tree = Tree(text, source)
    root = tree.root
    if root.tag != "domain":
        raise XmlError(f"{source}: not a <domain>")
    name = (root.findtext("name") or "").strip()
    uuid = (root.findtext("uuid") or "").strip()
    if not uuid:
        raise XmlError(f"{source}: the domain has no <uuid>")
    domain = ET.Element("domain")
    devices = ET.SubElement(domain, "devices")
    for meta in children(root, "metadata"):
        for block in children(meta, _q("devices")):
            for entry in block:
                if entry.tag == _q("hostdev"):
                    dev = _plain(entry)
                    dev.attrib.update({"mode": "subsystem", "type": "pci"})
                    devices.append(dev)
    body = ET.tostring(domain, encoding="unicode")
    return name, uuid, DeviceDocument.parse(body, source=f"{source} (pyvfmac metadata)")


def _interface_checks(text: str, sysfs_root: str) -> None:
    """The seed's step 2 for libvirt's own interfaces: a netdev name kept in the metadata must
    still be the VF the domain names."""
    from .topology import scan

    root = Tree(text, "domain XML").root
    entries = [e for meta in children(root, "metadata") for b in children(meta, _q("devices"))
               for e in b if e.tag == _q("interface")]
    if not entries:
        return
    doc = DeviceDocument.parse(
        "<domain><devices>" + "".join(
            ET.tostring(_with_type(_plain(e)), encoding="unicode") for e in entries)
        + "</devices></domain>", source="domain XML (pyvfmac metadata)")
    topo = scan(sysfs_root)
    for spec in doc.devices:
        if spec.netdev is None or spec.address is None:
            continue
        now = topo.address_of_netdev(spec.netdev)
        if now != spec.address:
            raise XmlError(f"{spec.name}: netdev {spec.netdev} is PCI device {now}, but the "
                           f"definition says {spec.address}: they no longer agree")


def _with_type(elem: ET.Element) -> ET.Element:
    elem.set("type", "hostdev")
    return elem


def run_hook(guest: str, op: str, subop: str, text: str, *, state_dir: str | None = None,
             sysfs_root: str = "/sys") -> Hooked:
    """One call of libvirt's qemu hook with the domain XML ``text`` on this host; see
    :func:`hook`."""
    from .host import open_host

    return hook(guest, op, subop, text,
                lambda: open_host(state_dir=state_dir, sysfs_root=sysfs_root))


def hook(guest: str, op: str, subop: str, text: str, open_host: Callable[[], Host]) -> Hooked:
    """One call of libvirt's qemu hook; see the module documentation. ``open_host`` is called
    only for an event of a domain with pyvfmac's metadata. Raises a
    :class:`~pyvfmac.errors.VfmacError` that fails the start."""
    if NS not in text:
        return Hooked()  # a domain without pyvfmac's metadata: nothing read from the host
    if op == "migrate":
        raise XmlError(f"domain {guest}: its VFs are attached by pyvfmac (a PCI hostdev): a VF "
                       "cannot move with a live guest; shut it down and start it on the other "
                       "host")
    if (op, subop) not in (("prepare", "begin"), ("release", "end")):
        return Hooked()  # start, started, stopped, reconnect, restore (prepare follows) ...
    name, uuid, doc = metadata_devices(text)
    owner = f"libvirt:{uuid}"
    host = open_host()
    try:
        if op == "prepare":
            _interface_checks(text, host.sysfs_root)
            if not doc.devices:
                return Hooked()
            from .attach import attach_devices

            targets = attach_devices(doc.devices, host, source=f"domain {name or guest}",
                                     owner=owner)
            return Hooked(tuple(f"{t.pf} vf {t.vf.index} ({t.key}): MAC {t.spec.mac} attached "
                                f"for domain {name or guest}" for t in targets))
        from .restore import restore_all

        report = restore_all(host.store.find(owner=owner), host)
        report.check()
        return Hooked(tuple(f"{r.att.original.pf} vf {r.att.original.vf} ({r.att.vf_key}): "
                            "restored" for r in report.done))
    finally:
        host.close()
