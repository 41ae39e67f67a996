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

from ..errors import (
    CniError,
    IpamError,
    NetlinkError,
    PoolError,
    RestoreError,
    StateError,
    VfmacError,
)
from ..host import Host
from ..mac import ZERO_MAC
from ..netlink import check_results
from ..netns import Netns, mtu_and_up, open_pod, wait_host_netdev
from ..records import Attachment, Original, PodLink
from ..restore import put_back, restore_attachment
from ..settings import VfChange, VfSettings, VfState, describe_diff, diff, restore_steps
from ..types import LinkInfo, PciAddress
from . import codes
from .config import Env, NetConf, bad_conf, bad_env, describe_owner, owner, split_owner

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (mypy: always_true)

if TYPE_CHECKING:
    from types import ModuleType
    from typing import Any

    from .result import IpamResult


def _ipam() -> ModuleType:
    """:mod:`.ipam` (subprocess and all), imported only when a delegate is configured."""
    from . import ipam

    return ipam


def _where(att: Attachment) -> str:
    return f"{att.vf_key} ({att.original.pf} vf {att.original.vf})"


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


def _find_vf(conf: NetConf, host: Host) -> _Vf:
    if conf.device is None:
        raise bad_conf("deviceID: missing (the VF's PCI address, set by the device plugin)")
    from ..topology import read_vf  # ADD only: DEL, CHECK and GC never read sysfs for a VF

    vf = read_vf(conf.device, host.sysfs_root)  # not a PCI device / network function / VF
    pf = vf.pf_netdevs[0]
    return _Vf(key=str(vf.address), pf=pf, index=vf.index, netdev=vf.netdev, driver=vf.driver,
               state=host.nl.read_link(pf).vf(vf.index))


def _original(vf: _Vf, netdev: LinkInfo | None) -> Original:
    return Original.of(vf.state, vf_key=vf.key, pf=vf.pf,
                       netdev=netdev.name if netdev else None,
                       netdev_mac=netdev.mac if netdev else None, driver=vf.driver)


def _fixed_mac(conf: NetConf, vf: _Vf, netdev: LinkInfo | None) -> str | None:
    """The MAC the pod gets: the configured one, else what the VF has (netdev, admin); None for
    a userspace VF (no netdev) with no MAC anywhere: its MAC is left to its user, as sriov-cni
    does (KubeVirt without a MAC pool), and the result names none."""
    if conf.mac is not None:
        return conf.mac
    if netdev is not None and netdev.mac:
        return netdev.mac
    if vf.state.mac != ZERO_MAC:
        return vf.state.mac
    if vf.netdev is None:
        return None
    raise bad_conf(f"{vf.key}: no mac given and its netdev {vf.netdev} has none; give mac "
                   "(config, CNI_ARGS MAC= or runtimeConfig.mac)")


def _refuse_if_held(host: Host, vf: _Vf, me: str) -> None:
    """Code 100 at once when someone else already holds the VF (nothing read, nothing changed)."""
    att = host.store.get(vf.key)
    if att is not None and att.owner != me:
        raise CniError(codes.VF_IN_USE, f"{vf.key} ({vf.pf} vf {vf.index}) is in use: held by "
                       f"{describe_owner(att.owner)}")


def _refuse_if_elsewhere(host: Host, vf: _Vf) -> None:
    """Code 100 for a VF on a kernel driver whose netdev is not on the host and that pyvfmac
    does not hold: another pod has it (it is no userspace VF to configure the admin side of)."""
    from ..owners import HOLDING_DRIVERS

    if vf.driver is not None and vf.driver not in HOLDING_DRIVERS and vf.netdev is None \
            and host.store.get(vf.key) is None:
        raise CniError(codes.VF_IN_USE, f"{vf.key} ({vf.pf} vf {vf.index}) is in use: bound to "
                       f"{vf.driver}, its netdev not on the host (in another network namespace)")


def _claim(host: Host, vf: _Vf, original: Original, me: str, mac: str,
           pod: PodLink) -> Attachment:
    """Save the original and where the netdev goes, and take the VF: exactly one claimant wins,
    and a VF allocated in a pyvfmac network is refused, in one SQLite transaction."""
    try:
        att = host.store.save_original(original, owner=me, mac=mac, managed=False, pod=pod)
    except PoolError as exc:
        raise CniError(codes.VF_IN_USE, str(exc)) from None
    if att.owner != me:
        raise CniError(codes.VF_IN_USE, f"{vf.key} ({vf.pf} vf {vf.index}) is in use: held by "
                       f"{describe_owner(att.owner)}")
    if att.pid != os.getpid() or att.phase != "saved":
        raise CniError(codes.VF_IN_USE, f"{vf.key} ({vf.pf} vf {vf.index}) was already added "
                       f"for {describe_owner(me)} (phase {att.phase}); DEL it first")
    return att


def _still_as_read(host: Host, vf: _Vf) -> None:
    """The saved original must be what the VF had when it was claimed: a VF read while another
    call was changing it (and claimed after that call let it go) would be "restored" to that
    call's settings. Code 11: the caller's retry reads it afresh."""
    now = host.nl.read_link(vf.pf).vf(vf.index)
    if restore_steps(vf.state, now):
        raise CniError(codes.TRY_AGAIN, f"{vf.key} ({vf.pf} vf {vf.index}) changed while it "
                       "was being claimed; try again")


def _release_untouched(host: Host, key: str) -> None:
    try:
        host.store.delete(key)
    except VfmacError:
        pass  # left in phase "saved" by a dead worker: DEL or `vfmac recover` drops it


def _set_admin(host: Host, vf: _Vf, want: VfSettings) -> None:
    change = diff(want, vf.state)
    if change is not None:
        check_results(host.nl.apply([VfChange.of(vf.pf, vf.index, change)],
                                    before={(vf.pf, vf.index): vf.state}))


def _netdev_with_mac(host: Host, vf: _Vf, mac: str) -> LinkInfo:
    """The VF's host netdev with ``mac`` as its own MAC. Many VF drivers (igbvf) take an admin
    MAC only when they reset and refuse to change their MAC once the PF set one: the netdev is
    cycled up and down (igbvf resets on down), and as a last resort the driver is rebound (the
    netdev it makes, maybe under another name, is the one used)."""
    assert vf.netdev is not None
    link = host.ns.link(vf.netdev)
    if link is None:
        raise NetlinkError(errno.ENODEV, "the VF netdev vanished", device=vf.netdev)
    if link.mac == mac:
        return link
    try:
        host.ns.set_mac(link, mac)
    except NetlinkError:
        pass
    link = host.ns.link(vf.netdev)
    if link is not None and link.mac == mac:
        return link
    if link is not None:  # a VF driver that resets when it goes down (igbvf) reads it then
        host.ns.up(link)
        host.ns.down(link)
        link = host.ns.link(vf.netdev)
        if link is not None and link.mac == mac:
            return link
    from .. import pcibind

    pcibind.bind(PciAddress.parse(vf.key), vf.driver, sysfs_root=host.sysfs_root)
    name = wait_host_netdev(vf.key, 5.0, host.sysfs_root)
    link = host.ns.link(name) if name else None
    if link is None or link.mac != mac:
        raise NetlinkError(errno.EIO, f"the VF netdev does not take MAC {mac} (driver "
                           f"{vf.driver}, rebound)", device=vf.pf, vf=vf.index)
    return link


def _into_pod(host: Host, pod: Netns, link: LinkInfo, key: str, ifname: str) -> LinkInfo:
    """Move the VF netdev into the pod as ``ifname`` and bring it up."""
    host.ns.down(link)
    host.ns.move(link, pod, ifname)
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
    if result.ips:  # as sriov-cni: arp_notify, a gratuitous ARP / unsolicited NA per address
        pod.announce(link, [ip.address for ip in result.ips])


def _refuse_duplicate_mac(host: Host, vf: _Vf, mac: str | None, me: str,
                          conf: NetConf) -> None:
    """Code 109 for a MAC another attachment, pod or host netdev has (the device plugin can hand
    two pods one MAC: device plugin #685), unless the config allows it (``allowDuplicateMac``)."""
    if mac is None or conf.allow_duplicate_mac:
        return
    for att in host.store.find(mac=mac):
        if att.owner != me and att.vf_key != vf.key:
            raise CniError(codes.MAC_IN_USE, f"MAC {mac} is already used by {_where(att)}, "
                           f"held by {describe_owner(att.owner)}")
    for link in host.nl.dump_links():
        if link.mac == mac and link.parent_dev != vf.key:
            raise CniError(codes.MAC_IN_USE, f"MAC {mac} is already used by netdev {link.name}")
        for state in link.vfs:
            if state.mac == mac and (link.name, state.vf) != (vf.pf, vf.index):
                raise CniError(codes.MAC_IN_USE, f"MAC {mac} is already used by {link.name} "
                               f"vf {state.vf}")


def _lenient(conf: NetConf) -> CniError:
    return bad_conf("internal: a configuration read for DEL reached ADD or CHECK")


def add(env: Env, conf: NetConf, host: Host) -> dict[str, Any]:
    """ADD: all or nothing; returns the result in the config's version (``prevResult`` with this
    VF added, when a plugin came before in the chain)."""
    from .result import IpamResult, chained, success

    if conf.lenient:
        raise _lenient(conf)
    me = owner(env.container_id, env.ifname, conf.name)
    vf = _find_vf(conf, host)
    pod = open_pod(env.netns)
    if pod is None:
        raise bad_env(f"CNI_NETNS {env.netns}: no such network namespace")
    try:
        _refuse_if_held(host, vf, me)
        _refuse_if_elsewhere(host, vf)
        try:
            netdev = host.ns.link(vf.netdev) if vf.netdev else None
            mtu, up = mtu_and_up(netdev.name, host.sysfs_root) if netdev else (None, None)
        except VfmacError:
            _refuse_if_held(host, vf, me)  # it changed under us: another ADD took it
            raise
        mac = _fixed_mac(conf, vf, netdev)
        _refuse_duplicate_mac(host, vf, mac, me, conf)
        if mtu is None:  # a userspace VF: its PF's MTU, as sriov-cni reports it
            mtu = mtu_and_up(vf.pf, host.sysfs_root)[0]
        _claim(host, vf, _original(vf, netdev), me, mac or ZERO_MAC,
               PodLink(vf_key=vf.key, netns=env.netns, mtu=mtu, up=up))
        try:
            _still_as_read(host, vf)
        except BaseException:
            _release_untouched(host, vf.key)  # nothing changed yet: nothing to restore
            raise
        ipam_ran = False
        try:
            _set_admin(host, vf, conf.settings)
            host.store.set_phase(vf.key, "mac-set")
            link = None
            if netdev is not None:
                assert mac is not None  # a netdev has a MAC: _fixed_mac
                link = _into_pod(host, pod, _netdev_with_mac(host, vf, mac), vf.key, env.ifname)
            result = IpamResult()
            if conf.ipam_type is not None:
                ipam_ran = True
                result = _ipam().add(conf.ipam_type, conf.raw, env)
                if link is not None:
                    _configure_ip(pod, link, result)
            host.store.set_phase(vf.key, "attached")
        except BaseException as exc:
            # a delegate that answered ADD with its own error holds no lease: no DEL for it (a
            # timeout or an unreadable answer may have left one: DEL then)
            lease = ipam_ran and not isinstance(exc, IpamError)
            _undo_add(env, conf, host, vf.key, lease, exc)
            raise
    finally:
        pod.close()
    return chained(conf.prev_result, success(conf.version, ifname=env.ifname, mac=mac,
                                             sandbox=env.netns, pci=vf.key, ipam=result,
                                             mtu=mtu))


def _undo_add(env: Env, conf: NetConf, host: Host, key: str, lease: bool,
              cause: BaseException) -> None:
    """Undo a failed ADD, last step first: the delegate's lease (when it may hold one), then
    the VF."""
    problems = []
    if lease and conf.ipam_type is not None:
        try:
            _ipam().delete(conf.ipam_type, conf.raw, env)
        except CniError as exc:
            problems.append(str(exc))
    att = host.store.get(key)
    if att is not None:
        try:
            restore_attachment(att, host, netns=env.netns)
        except VfmacError as exc:
            problems.append(str(exc))
    if problems:
        cause.add_note("undo incomplete (DEL or `vfmac recover` finishes it): "
                       + "; ".join(problems))


# ---------------------------------------------------------------------------- DEL


def delete(env: Env, conf: NetConf, host: Host) -> list[str]:
    """DEL: best effort, as the spec asks; idempotent. Restores from pyvfmac's own record
    whatever the runtime still has. A VF that no longer exists has nothing left to restore (its
    record is dropped); one that cannot be put back now keeps its record (phase ``detaching``:
    no new pod gets it; ``vfmac recover``, GC or ``vfmac watch`` finish the restore) and DEL
    succeeds all the same: the returned warnings say so, for the runtime's log. Only an ADD
    still running for the same attachment (code 11, try again), the state store failing, and
    the IPAM delegate's own DEL error are errors."""
    me = owner(env.container_id, env.ifname, conf.name)
    warnings: list[str] = []
    for att in host.store.find(owner=me):
        if att.phase not in ("attached", "detaching") and att.worker_alive() \
                and att.pid != os.getpid():
            raise CniError(codes.TRY_AGAIN, f"{_where(att)}: an ADD for "
                           f"{describe_owner(me)} is still running (pid {att.pid})")
        try:
            done = put_back(att, host, netns=env.netns or None)
        except RestoreError as exc:
            warnings.append(f"{exc} (DEL succeeds; `vfmac recover` finishes the restore)")
            continue
        except StateError:
            if host.store.get(att.vf_key) is None:
                continue  # a DEL running beside this one put it back first
            raise
        if done.gone:
            warnings.append(f"{_where(att)}: {done.notes[0]}; record dropped")
    if conf.ipam_type is not None:
        _ipam().delete(conf.ipam_type, conf.raw, env)
    return warnings


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


def check(env: Env, conf: NetConf, host: Host) -> None:
    """CHECK: the VF is where ADD put it, with its MAC, settings and addresses, and the
    ``prevResult`` the runtime cached names it so."""
    if conf.lenient:
        raise _lenient(conf)
    me = owner(env.container_id, env.ifname, conf.name)
    found = host.store.find(owner=me)
    if not found:
        raise CniError(codes.UNKNOWN_CONTAINER, f"{describe_owner(me)} holds no VF "
                       "(never added, or deleted)")
    att = found[0]
    if att.phase != "attached":
        raise _mismatch(att, f"ADD did not complete (phase {att.phase})")
    if conf.device is not None and str(conf.device) != att.vf_key:
        raise _mismatch(att, f"the configuration names {conf.device}, ADD took {att.vf_key}")
    _check_prev_result(env, conf, att)
    o = att.original
    have = host.nl.read_link(o.pf).vf(o.vf)
    change = diff(conf.settings, have)  # no MAC given: the admin MAC was left as it was
    if change is not None:
        raise _mismatch(att, "admin settings differ: " + describe_diff(have, change))
    if o.netdev is not None:
        _check_pod(env, conf, att)
    if conf.ipam_type is not None:
        _ipam().run(conf.ipam_type, "CHECK", conf.raw, env)


def _check_prev_result(env: Env, conf: NetConf, att: Attachment) -> None:
    """The result the runtime cached (``prevResult``, which the spec says CHECK must consult)
    names this interface, in this sandbox, with the VF's MAC."""
    prev = conf.prev_result
    if prev is None:
        return
    ours = [i for i in prev.get("interfaces") or []
            if isinstance(i, dict) and i.get("name") == env.ifname
            and i.get("sandbox", env.netns) == env.netns]
    if not ours:
        raise _mismatch(att, f"prevResult names no interface {env.ifname} in {env.netns}")
    mac = ours[0].get("mac")
    if att.mac != ZERO_MAC and mac is not None and str(mac).lower() != att.mac:
        raise _mismatch(att, f"prevResult gives {env.ifname} MAC {mac}, ADD gave {att.mac}")


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


def gc(env: Env, conf: NetConf, host: Host) -> None:
    """GC: restore and release every VF of this network the runtime no longer lists; then the
    IPAM delegate's own GC (a delegate of spec 1.1 or later: older ones know no GC)."""
    if conf.valid_attachments is None:
        raise bad_conf("GC: cni.dev/valid-attachments missing")
    valid = set(conf.valid_attachments)
    problems = []
    for att in host.store.all():
        parts = split_owner(att.owner)
        if parts is None or parts[2] != conf.name or parts[:2] in valid:
            continue
        if att.phase != "attached" and att.worker_alive():
            continue  # an ADD or DEL at work
        try:
            restore_attachment(att, host)
            if conf.ipam_type is not None:
                _ipam().delete(conf.ipam_type, conf.raw, env, container_id=parts[0],
                               ifname=parts[1])
        except VfmacError as exc:
            problems.append(str(exc) + (f": {exc.details}" if isinstance(exc, CniError)
                                        and exc.details else ""))
    if problems:
        raise CniError(codes.RESTORE_INCOMPLETE, "GC: not every stale VF was restored",
                       "; ".join(problems))
    if conf.ipam_type is not None and _ipam().knows_1_1(conf.ipam_type, env):
        _ipam().run(conf.ipam_type, "GC", conf.raw, env)


def status(env: Env, conf: NetConf, host: Host) -> None:
    """STATUS: the store answers and rtnetlink works; then the IPAM delegate's own STATUS (a
    delegate of spec 1.1 or later: older ones know no STATUS)."""
    host.store.all()
    host.nl.dump_links()
    if conf.ipam_type is not None and _ipam().knows_1_1(conf.ipam_type, env):
        _ipam().run(conf.ipam_type, "STATUS", conf.raw, env)
