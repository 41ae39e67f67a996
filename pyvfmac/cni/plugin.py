"""ADD, DEL, CHECK, GC and STATUS of vfmac-cni.

ADD claims the VF in the state store (owner ``cni:<container>:<ifname>:<network>``) with its
original saved durably before anything changes, sets the admin settings through the PF, and
for a VF with a host netdev moves it into the pod's namespace as ``CNI_IFNAME`` with the MAC,
up, with the IPAM delegate's addresses and routes. A VF on vfio-pci or another userspace driver
gets the admin settings only (KubeVirt). Any failure DELs the delegate and puts everything back
before the error is returned.

Restoring (DEL, GC, `vfmac recover`, a failed ADD) is driven by where the VF is, not by how far
ADD got: the netdev is looked for in the pod's namespace (``CNI_NETNS`` or the recorded one), then
on the host by PCI address (a deleted namespace hands it back, asynchronously), brought home under
its name, its MTU, up flag and MAC put back, the admin settings restored from the original; the
record is dropped only once all of that reads back as it was.
"""

from __future__ import annotations

import errno
import os
from dataclasses import dataclass

from ..errors import CniError, IpamError, KernelError, NetlinkError, StateError, VfmacError
from ..netlink import check_results, result_error
from ..settings import VfChange, VfSettings, VfState, describe_diff, diff, restore_steps
from ..records import Attachment, Original
from ..types import LinkInfo, PciAddress
from . import codes
from .config import Env, NetConf, bad_conf, bad_env, owner, split_owner
from .netns import Netns, host_netdevs, mtu_and_up, open_pod, wait_host_netdev
from .node import Node, open_node
from .records import PodLink

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (mypy: always_true)

if TYPE_CHECKING:
    from typing import Any, TextIO

    from .result import IpamResult

ENV_CRASH = "PYVFMAC_CRASH_AFTER"
"""Test hook (as in `vfmac attach`): the plugin SIGKILLs itself right after this step of ADD:
``saved``, ``mac-set``, ``moved`` or ``ipam``."""


def _crash_point(step: str) -> None:
    if os.environ.get(ENV_CRASH) == step:
        import signal
        import sys

        sys.stdout.flush()
        os.kill(os.getpid(), signal.SIGKILL)


def _ipam() -> Any:
    """:mod:`.ipam` (subprocess and all), imported only when a delegate is configured."""
    from . import ipam

    return ipam


def _where(att: Attachment) -> str:
    return f"{att.vf_key} ({att.original.pf} vf {att.original.vf})"


def describe_owner(text: str) -> str:
    """``pod container abc interface net1 (network sriov-a)`` or the owner as recorded."""
    parts = split_owner(text)
    if parts is None:
        return text if not text.startswith("mac:") else f"`vfmac attach` ({text})"
    return f"pod container {parts[0]} interface {parts[1]} (network {parts[2]})"


# ---------------------------------------------------------------------------- ADD


@dataclass(frozen=True, slots=True)
class _Vf:
    """The VF of an ADD, as found before anything changes."""

    key: str
    pf: str
    index: int
    netdev: str | None
    driver: str | None
    state: VfState


def _find_vf(conf: NetConf, node: Node) -> _Vf:
    if conf.device is None:
        raise bad_conf("deviceID: missing (the VF's PCI address, set by the device plugin)")
    from ..topology import read_vf  # ADD only: DEL, CHECK and GC never read sysfs for a VF

    vf = read_vf(conf.device, node.sysfs_root)  # not a PCI device / network function / VF
    pf = vf.pf_netdevs[0]
    return _Vf(key=str(vf.address), pf=pf, index=vf.index, netdev=vf.netdev, driver=vf.driver,
               state=node.nl.read_link(pf).vf(vf.index))


def _original(vf: _Vf, netdev: LinkInfo | None) -> Original:
    return Original.of(vf.state, vf_key=vf.key, pf=vf.pf,
                       netdev=netdev.name if netdev else None,
                       netdev_mac=netdev.mac if netdev else None, driver=vf.driver)


def _fixed_mac(conf: NetConf, vf: _Vf, netdev: LinkInfo | None) -> str:
    """The MAC the pod gets: the configured one, else what the VF has (netdev, admin)."""
    if conf.mac is not None:
        return conf.mac
    if netdev is not None and netdev.mac:
        return netdev.mac
    if vf.state.mac != "00:00:00:00:00:00":
        return vf.state.mac
    raise bad_conf(f"{vf.key}: no mac given and the VF has neither a netdev nor an admin MAC; "
                   "give mac (config, CNI_ARGS MAC= or runtimeConfig.mac)")


def _refuse_if_held(node: Node, vf: _Vf, me: str) -> None:
    """Code 100 at once when someone else already holds the VF (nothing read, nothing changed)."""
    att = node.store.get(vf.key)
    if att is not None and att.owner != me:
        raise CniError(codes.VF_IN_USE, f"{vf.key} ({vf.pf} vf {vf.index}) is in use: held by "
                       f"{describe_owner(att.owner)}")


def _claim(node: Node, vf: _Vf, original: Original, me: str, mac: str) -> Attachment:
    """Save the original and take the VF: exactly one claimant wins (one SQLite transaction)."""
    for alloc in node.store.allocations():
        if alloc.vf_key == vf.key:
            raise CniError(codes.VF_IN_USE, f"{vf.key} ({vf.pf} vf {vf.index}) is in use: "
                           f"allocated in pyvfmac network {alloc.network} to {alloc.owner}")
    att = node.store.save_original(original, owner=me, mac=mac, managed=False)
    if att.owner != me:
        raise CniError(codes.VF_IN_USE, f"{vf.key} ({vf.pf} vf {vf.index}) is in use: held by "
                       f"{describe_owner(att.owner)}")
    if att.pid != os.getpid() or att.phase != "saved":
        raise CniError(codes.VF_IN_USE, f"{vf.key} ({vf.pf} vf {vf.index}) was already added "
                       f"for {describe_owner(me)} (phase {att.phase}); DEL it first")
    return att


def _still_as_read(node: Node, vf: _Vf) -> None:
    """The saved original must be what the VF had when it was claimed: a VF read while another
    call was changing it (and claimed after that call let it go) would be "restored" to that
    call's settings. Code 11: the caller's retry reads it afresh."""
    now = node.nl.read_link(vf.pf).vf(vf.index)
    if restore_steps(vf.state, now):
        raise CniError(codes.TRY_AGAIN, f"{vf.key} ({vf.pf} vf {vf.index}) changed while it "
                       "was being claimed; try again")


def _release_untouched(node: Node, key: str) -> None:
    try:
        node.store.delete(key)
        node.links.drop(key)
    except VfmacError:
        pass  # left in phase "saved" by a dead worker: DEL or `vfmac recover` drops it


def _set_admin(node: Node, vf: _Vf, want: VfSettings) -> None:
    change = diff(want, vf.state)
    if change is not None:
        check_results(node.nl.apply([VfChange.of(vf.pf, vf.index, change)],
                                    before={(vf.pf, vf.index): vf.state}))


def _netdev_with_mac(node: Node, vf: _Vf, mac: str) -> LinkInfo:
    """The VF's host netdev with ``mac`` as its own MAC. Many VF drivers (igbvf) take an admin
    MAC only when they reset and refuse to change their MAC once the PF set one: the netdev is
    cycled up and down (igbvf resets on down), and as a last resort the driver is rebound (the
    netdev it makes, maybe under another name, is the one used)."""
    assert vf.netdev is not None
    host = node.host
    link = host.link(vf.netdev)
    if link is None:
        raise NetlinkError(errno.ENODEV, "the VF netdev vanished", device=vf.netdev)
    if link.mac == mac:
        return link
    try:
        host.set_mac(link, mac)
    except NetlinkError:
        pass
    link = host.link(vf.netdev)
    if link is not None and link.mac == mac:
        return link
    if link is not None:  # a VF driver that resets when it goes down (igbvf) reads it then
        host.up(link)
        host.down(link)
        link = host.link(vf.netdev)
        if link is not None and link.mac == mac:
            return link
    from .. import pcibind

    pcibind.bind(PciAddress.parse(vf.key), vf.driver, sysfs_root=node.sysfs_root)
    name = wait_host_netdev(vf.key, 5.0, node.sysfs_root)
    link = host.link(name) if name else None
    if link is None or link.mac != mac:
        raise NetlinkError(errno.EIO, f"the VF netdev does not take MAC {mac} (driver "
                           f"{vf.driver}, rebound)", device=vf.pf, vf=vf.index)
    return link


def _into_pod(node: Node, pod: Netns, link: LinkInfo, key: str, ifname: str) -> LinkInfo:
    """Move the VF netdev into the pod as ``ifname`` and bring it up."""
    host = node.host
    host.down(link)
    host.move(link, pod, ifname)
    moved = pod.find_pci(key)
    if moved is None:
        raise NetlinkError(errno.ENODEV, f"not found in {pod.label} after the move",
                           device=link.name)
    if moved.name != ifname:
        pod.rename(moved, ifname)
    named = pod.link(ifname)
    assert named is not None
    pod.up(named)
    return named


def _configure_ip(pod: Netns, link: LinkInfo, result: IpamResult) -> None:
    for ip in result.ips:
        pod.add_address(link, ip.address)
    for route in result.routes:
        pod.add_route(link, route.dst, route.gw)


def add(env: Env, conf: NetConf, node: Node) -> dict[str, Any]:
    """ADD: all or nothing; returns the result in the config's version."""
    from .result import IpamResult, success

    me = owner(env.container_id, env.ifname, conf.name)
    vf = _find_vf(conf, node)
    pod = open_pod(env.netns)
    if pod is None:
        raise bad_env(f"CNI_NETNS {env.netns}: no such network namespace")
    try:
        _refuse_if_held(node, vf, me)
        try:
            netdev = node.host.link(vf.netdev) if vf.netdev else None
            mtu, up = mtu_and_up(netdev.name, node.sysfs_root) if netdev else (None, None)
        except VfmacError:
            _refuse_if_held(node, vf, me)  # it changed under us: another ADD took it
            raise
        mac = _fixed_mac(conf, vf, netdev)
        _claim(node, vf, _original(vf, netdev), me, mac)
        try:
            node.links.put(PodLink(vf_key=vf.key, netns=env.netns, mtu=mtu, up=up))
            _still_as_read(node, vf)
        except BaseException:
            _release_untouched(node, vf.key)  # nothing changed yet: nothing to restore
            raise
        _crash_point("saved")
        ipam_ran = False
        try:
            _set_admin(node, vf, conf.settings)
            node.store.set_phase(vf.key, "mac-set")
            _crash_point("mac-set")
            link = None
            if netdev is not None:
                link = _into_pod(node, pod, _netdev_with_mac(node, vf, mac), vf.key, env.ifname)
                _crash_point("moved")
            result = IpamResult()
            if conf.ipam_type is not None:
                ipam_ran = True
                result = _ipam().add(conf.ipam_type, conf.raw, env)
                _crash_point("ipam")
                if link is not None:
                    _configure_ip(pod, link, result)
            node.store.set_phase(vf.key, "attached")
        except BaseException as exc:
            # a delegate that answered ADD with its own error holds no lease: no DEL for it (a
            # timeout or an unreadable answer may have left one: DEL then)
            lease = ipam_ran and not isinstance(exc, IpamError)
            _undo_add(env, conf, node, vf.key, lease, exc)
            raise
    finally:
        pod.close()
    return success(conf.version, ifname=env.ifname, mac=mac, sandbox=env.netns, pci=vf.key,
                   ipam=result)


def _undo_add(env: Env, conf: NetConf, node: Node, key: str, lease: bool,
              cause: BaseException) -> None:
    """Undo a failed ADD, last step first: the delegate's lease (when it may hold one), then
    the VF."""
    problems = []
    if lease and conf.ipam_type is not None:
        try:
            _ipam().delete(conf.ipam_type, conf.raw, env)
        except CniError as exc:
            problems.append(str(exc))
    att = node.store.get(key)
    if att is not None:
        try:
            restore(node, att, netns=env.netns)
        except VfmacError as exc:
            problems.append(str(exc))
    if problems:
        cause.add_note("undo incomplete (DEL or `vfmac recover` finishes it): "
                       + "; ".join(problems))


# ---------------------------------------------------------------------------- restore


def _rebind_if_unbound(node: Node, o: Original) -> None:
    """A VF left without a driver (an ADD killed while rebinding it) gets its driver back."""
    if not o.driver or os.path.lexists(f"{node.sysfs_root}/bus/pci/devices/{o.vf_key}/driver"):
        return  # bound, as almost always: pcibind is not even imported
    from .. import pcibind

    address = PciAddress.parse(o.vf_key)
    if pcibind.current_driver(address, sysfs_root=node.sysfs_root) is None:
        pcibind.bind(address, o.driver, sysfs_root=node.sysfs_root)


def _bring_home(node: Node, o: Original, places: list[str]) -> str | None:
    """Bring the VF netdev back to the host under its original name; a problem or None."""
    assert o.netdev is not None
    host = node.host
    _rebind_if_unbound(node, o)
    names = host_netdevs(o.vf_key, node.sysfs_root)
    if not names:
        for path in dict.fromkeys(p for p in places if p):
            pod = open_pod(path)
            if pod is None:
                continue
            with pod:
                link = pod.find_pci(o.vf_key)
                if link is not None:
                    pod.move(link, host, o.netdev)  # the kernel closes it on the way
                    break
        # after our own move it is there at once under its name: one RTM_GETLINK, no dump
        home = host.link(o.netdev)
        if home is None or home.parent_dev != o.vf_key:
            home = host.find_pci(o.vf_key)
        name = home.name if home else wait_host_netdev(o.vf_key, 10.0, node.sysfs_root)
        if name is None:
            return (f"its netdev is neither on the host nor in "
                    f"{', '.join(places) or 'a known namespace'} (waited 10 s)")
        names = [name]
    if names[0] != o.netdev:
        link = host.link(names[0])
        if link is None:
            return f"its netdev {names[0]} vanished"
        host.down(link)
        host.rename(link, o.netdev)
    return None


def _restore_admin(node: Node, o: Original) -> list[str]:
    have = node.nl.read_link(o.pf).vf(o.vf)
    steps = restore_steps(o, have)
    if not steps:
        return []
    changes = [VfChange.of(o.pf, o.vf, s, allow_zero_mac=True) for s in steps]
    problems = []
    for res in node.nl.apply(changes):
        err = result_error(res)
        if err is not None:
            problems.append(str(err))
    return problems


def _restore_netdev(node: Node, o: Original, rec: PodLink | None) -> list[str]:
    """The host netdev's own MAC, MTU and up flag, as saved."""
    assert o.netdev is not None
    host = node.host
    link = host.link(o.netdev)
    if link is None:
        return [f"its netdev {o.netdev} vanished"]
    if o.netdev_mac is not None and link.mac != o.netdev_mac:
        host.set_mac(link, o.netdev_mac)
    mtu, up = mtu_and_up(o.netdev, node.sysfs_root)
    if rec is not None and rec.mtu and mtu != rec.mtu:
        host.set_mtu(link, rec.mtu)
    if rec is not None and rec.up is not None and up != rec.up:
        (host.up if rec.up else host.down)(link)
    return _netdev_differs(node, o, rec)


def _netdev_differs(node: Node, o: Original, rec: PodLink | None) -> list[str]:
    assert o.netdev is not None
    link = node.host.link(o.netdev)
    if link is None:
        return [f"its netdev {o.netdev} vanished"]
    mtu, up = mtu_and_up(o.netdev, node.sysfs_root)
    out = []
    if o.netdev_mac is not None and link.mac != o.netdev_mac:
        out.append(f"{o.netdev} MAC {link.mac}, was {o.netdev_mac}")
    if rec is not None and rec.mtu and mtu != rec.mtu:
        out.append(f"{o.netdev} MTU {mtu}, was {rec.mtu}")
    if rec is not None and rec.up is not None and up != rec.up:
        out.append(f"{o.netdev} {'up' if up else 'down'}, was {'up' if rec.up else 'down'}")
    return out


def restore(node: Node, att: Attachment, *, netns: str | None) -> None:
    """Put a pod's VF back exactly as saved, verified; then drop its record. Otherwise
    :class:`CniError` (code 106) says what is left, and the record stays for the next try."""
    o = att.original
    rec = node.links.get(att.vf_key)
    node.store.set_phase(att.vf_key, "detaching")
    problems: list[str] = []
    try:
        if o.netdev is not None:
            problem = _bring_home(node, o, [netns or "", rec.netns if rec else ""])
            if problem:
                problems.append(problem)
        problems += _restore_admin(node, o)
        if o.netdev is not None and not problems:
            problems += _restore_netdev(node, o, rec)
        left = restore_steps(o, node.nl.read_link(o.pf).vf(o.vf))
        if left and not problems:
            problems.append("admin settings read back differ: "
                            + "; ".join(describe_diff(None, s) for s in left))
    except (KernelError, OSError) as exc:
        problems.append(str(exc))
    if problems:
        raise CniError(codes.RESTORE_INCOMPLETE,
                       f"{_where(att)} not fully restored; its record is kept (the next DEL, GC "
                       "or `vfmac recover` finishes it)", "; ".join(problems))
    node.store.delete(att.vf_key)
    node.links.drop(att.vf_key)


# ---------------------------------------------------------------------------- DEL


def delete(env: Env, conf: NetConf, node: Node) -> None:
    """DEL: idempotent; restores from pyvfmac's own record whatever the runtime still has."""
    me = owner(env.container_id, env.ifname, conf.name)
    problems: list[CniError | VfmacError] = []
    for att in node.store.find(owner=me):
        if att.phase not in ("attached", "detaching") and att.worker_alive() \
                and att.pid != os.getpid():
            raise CniError(codes.TRY_AGAIN, f"{_where(att)}: an ADD for "
                           f"{describe_owner(me)} is still running (pid {att.pid})")
        try:
            restore(node, att, netns=env.netns or None)
        except VfmacError as exc:
            problems.append(exc)
    if conf.ipam_type is not None:
        try:
            _ipam().delete(conf.ipam_type, conf.raw, env)
        except CniError as exc:
            problems.append(exc)
    if problems:
        raise problems[0]


# ---------------------------------------------------------------------------- CHECK


def _mismatch(att: Attachment, what: str) -> CniError:
    return CniError(codes.MISMATCH, f"{_where(att)}: {what}")


def _prev_addresses(conf: NetConf, ifname: str) -> list[str]:
    prev = conf.prev_result or {}
    ifaces = prev.get("interfaces") or []
    out = []
    for ip in prev.get("ips") or []:
        idx = ip.get("interface")
        if isinstance(idx, int) and 0 <= idx < len(ifaces) \
                and ifaces[idx].get("name") != ifname:
            continue
        if isinstance(ip.get("address"), str):
            out.append(ip["address"])
    return out


def check(env: Env, conf: NetConf, node: Node) -> None:
    """CHECK: the VF is where ADD put it, with its MAC, settings and addresses."""
    if conf.version in ("0.3.0", "0.3.1"):
        raise CniError(codes.INCOMPATIBLE_VERSION, f"CHECK needs cniVersion 0.4.0 or later, "
                       f"not {conf.version}")
    me = owner(env.container_id, env.ifname, conf.name)
    found = node.store.find(owner=me)
    if not found:
        raise CniError(codes.UNKNOWN_CONTAINER, f"{describe_owner(me)} holds no VF "
                       "(never added, or deleted)")
    att = found[0]
    if att.phase != "attached":
        raise _mismatch(att, f"ADD did not complete (phase {att.phase})")
    if conf.device is not None and str(conf.device) != att.vf_key:
        raise _mismatch(att, f"the configuration names {conf.device}, ADD took {att.vf_key}")
    o = att.original
    have = node.nl.read_link(o.pf).vf(o.vf)
    change = diff(conf.settings, have)  # no MAC given: the admin MAC was left as it was
    if change is not None:
        raise _mismatch(att, "admin settings differ: " + describe_diff(have, change))
    if o.netdev is not None:
        _check_pod(env, conf, att)
    if conf.ipam_type is not None:
        _ipam().run(conf.ipam_type, "CHECK", conf.raw, env)


def _check_pod(env: Env, conf: NetConf, att: Attachment) -> None:
    pod = open_pod(env.netns)
    if pod is None:
        raise _mismatch(att, f"network namespace {env.netns} is gone")
    with pod:
        link = pod.link(env.ifname)
        if link is None:
            raise _mismatch(att, f"no interface {env.ifname} in {pod.label}")
        if link.parent_dev != att.vf_key:
            what = link.parent_dev or "no PCI device"
            raise _mismatch(att, f"{env.ifname} in {pod.label} is {what}, not this VF")
        if link.mac != att.mac:
            raise _mismatch(att, f"{env.ifname} in {pod.label} has MAC {link.mac}, "
                            f"not {att.mac}")
        have = pod.addresses(link)
        missing = [a for a in _prev_addresses(conf, env.ifname) if a not in have]
        if missing:
            raise _mismatch(att, f"{env.ifname} in {pod.label} lacks {', '.join(missing)}")


# ---------------------------------------------------------------------------- GC, STATUS


def gc(env: Env, conf: NetConf, node: Node) -> None:
    """GC: restore and release every VF of this network the runtime no longer lists."""
    if conf.valid_attachments is None:
        raise bad_conf("GC: cni.dev/valid-attachments missing")
    valid = set(conf.valid_attachments)
    problems = []
    for att in node.store.all():
        parts = split_owner(att.owner)
        if parts is None or parts[2] != conf.name or parts[:2] in valid:
            continue
        if att.phase != "attached" and att.worker_alive():
            continue  # an ADD or DEL at work
        try:
            restore(node, att, netns=None)
            if conf.ipam_type is not None:
                _ipam().delete(conf.ipam_type, conf.raw, env, container_id=parts[0],
                            ifname=parts[1])
        except VfmacError as exc:
            problems.append(str(exc) + (f": {exc.details}" if isinstance(exc, CniError)
                                        and exc.details else ""))
    if conf.ipam_type is not None:
        try:
            _ipam().run(conf.ipam_type, "GC", conf.raw, env)
        except CniError:
            pass  # delegates from before spec 1.1 know no GC; their leases went with DEL
    if problems:
        raise CniError(codes.RESTORE_INCOMPLETE, "GC: not every stale VF was restored",
                       "; ".join(problems))


def status(node: Node) -> None:
    """STATUS: the store answers and rtnetlink works."""
    node.store.all()
    node.nl.dump_links()


def recover_pods(records: list[Attachment], out: TextIO, *, state_dir: str | None = None,
                 sysfs_root: str = "/sys") -> int:
    """`vfmac recover` of pods' records whose worker died (a killed ADD or DEL): each is
    restored from its record; those that cannot be are kept and named in one error."""
    node = open_node(state_dir, sysfs_root)
    problems = []
    count = 0
    try:
        for att in records:
            try:
                restore(node, att, netns=None)
            except VfmacError as exc:
                problems.append(f"{exc}" + (f": {exc.details}" if isinstance(exc, CniError)
                                            and exc.details else ""))
                continue
            count += 1
            out.write(f"{att.original.pf} vf {att.original.vf} ({att.vf_key}): restored "
                      f"({describe_owner(att.owner)})\n")
    finally:
        node.close()
    if problems:
        raise StateError("; ".join(problems))
    return count
