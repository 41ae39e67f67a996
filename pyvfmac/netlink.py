"""Reading and changing VF settings through their PF, over rtnetlink (the C core does the work).

>>> with Rtnl() as nl:
...     pf = nl.read_link("eth0")
...     results = nl.apply([VfChange(pf="eth0", vf=0, mac="02:00:00:00:00:01")])
...     check_results(results)
"""

from __future__ import annotations

import errno
import re
import socket
import uuid
from collections.abc import Iterable, Mapping, Sequence
from types import TracebackType

from . import _lowlevel as ll
from .errors import InputError, NetlinkError
from .mac import ZERO_MAC, mac_bytes, parse_mac
from .types import (
    LINK_STATES,
    VLAN_PROTOS,
    LinkInfo,
    VfChange,
    VfResult,
    validate_netdev_name,
)

DEFAULT_BUFSIZE = 64 << 20
_U32 = 0xFFFFFFFF
_VF_MAX = 0x7FFFFFFE
# many canonical unicast MACs, one per line, checked in one match
_ALL_CANONICAL = re.compile(r"(?:[0-9a-f][02468ace](?::[0-9a-f]{2}){5}\n)*")


def describe_change(change: VfChange) -> str:
    """``MAC 02:00:00:00:00:07, VLAN 42 qos 3 802.1Q`` — what a change sets, for messages."""
    parts = []
    if change.mac is not None:
        parts.append(f"MAC {change.mac}")
    if change.vlan is not None:
        vlan = f"VLAN {change.vlan}"
        if change.vlan and change.qos:
            vlan += f" qos {change.qos}"
        if change.vlan:
            vlan += f" {change.vlan_proto}"
        parts.append(vlan)
    if change.spoofchk is not None:
        parts.append(f"spoofchk {'on' if change.spoofchk else 'off'}")
    if change.trust is not None:
        parts.append(f"trust {'on' if change.trust else 'off'}")
    if change.link_state is not None:
        parts.append(f"link state {change.link_state}")
    if change.min_tx_rate is not None or change.max_tx_rate is not None:
        parts.append(f"TX rate min {change.min_tx_rate} max {change.max_tx_rate}")
    return ", ".join(parts) or "nothing"


def result_error(result: VfResult) -> NetlinkError | None:
    """The failure of one result as an exception (None when it applied)."""
    if result.ok:
        return None
    return NetlinkError(
        result.errno,
        f"cannot set {describe_change(result.change)}",
        device=result.pf_name,
        vf=result.change.vf,
        ext_msg=result.ext_msg,
    )


def check_results(results: Iterable[VfResult]) -> None:
    """Raise the first failure among ``results`` as a :class:`NetlinkError`."""
    for result in results:
        err = result_error(result)
        if err is not None:
            raise err


def _check_int(value: object, what: str, low: int, high: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise InputError(f"{what} {value!r}: must be an integer from {low} to {high}")
    return value


def validate_change(change: VfChange) -> VfChange:
    """Check every field before anything is sent; canonicalise the MAC."""
    where = f"{change.pf} vf {change.vf}"
    _check_int(change.vf, f"{change.pf}: VF index", 0, 0x7FFFFFFE)
    mac = change.mac
    if mac is not None:
        mac = parse_mac(mac, allow_zero=change.allow_zero_mac, what=f"{where}: MAC")
    if change.vlan is not None:
        _check_int(change.vlan, f"{where}: VLAN id", 0, 4095)
        _check_int(change.qos, f"{where}: VLAN qos", 0, 7)
        if change.vlan_proto not in VLAN_PROTOS:
            raise InputError(f"{where}: VLAN protocol {change.vlan_proto!r}: use 802.1Q or 802.1ad")
    elif change.qos:
        raise InputError(f"{where}: qos {change.qos} given without a VLAN")
    if change.link_state is not None and change.link_state not in LINK_STATES:
        raise InputError(f"{where}: link state {change.link_state!r}: use auto, enable or disable")
    for name in ("spoofchk", "trust"):
        value = getattr(change, name)
        if value is not None and not isinstance(value, bool):
            raise InputError(f"{where}: {name} {value!r}: must be on/off (a bool)")
    for name in ("min_tx_rate", "max_tx_rate"):
        value = getattr(change, name)
        if value is not None:
            _check_int(value, f"{where}: {name}", 0, _U32)
    if mac == change.mac:
        return change
    return _replace_mac(change, mac)


def _replace_mac(change: VfChange, mac: str | None) -> VfChange:
    from dataclasses import replace

    return replace(change, mac=mac)


def _pack(change: VfChange, ifindex: int, rates: tuple[int, int] | None) -> ll.PackedChange:
    flags = 0
    if change.mac is not None:
        flags |= ll.SET_MAC
    if change.vlan is not None:
        flags |= ll.SET_VLAN
    if change.spoofchk is not None:
        flags |= ll.SET_SPOOFCHK
    if change.trust is not None:
        flags |= ll.SET_TRUST
    if change.link_state is not None:
        flags |= ll.SET_LINK_STATE
    if rates is not None:
        flags |= ll.SET_RATE
    return (
        ifindex,
        change.vf,
        flags,
        mac_bytes(change.mac) if change.mac is not None else b"\0" * 6,
        VLAN_PROTOS[change.vlan_proto] if change.vlan is not None else 0,
        change.vlan or 0,
        change.qos if change.vlan else 0,
        int(bool(change.spoofchk)),
        int(bool(change.trust)),
        LINK_STATES.index(change.link_state) if change.link_state is not None else 0,
        rates[0] if rates else 0,
        rates[1] if rates else 0,
    )


class Rtnl:
    """One rtnetlink socket of the C core. Use as a context manager, or call :meth:`close`."""

    def __init__(self, bufsize: int = DEFAULT_BUFSIZE) -> None:
        self._sock = ll.Socket(bufsize)
        self._names: dict[int, str] = {}

    def close(self) -> None:
        self._sock.close()

    def __enter__(self) -> Rtnl:
        return self

    def __exit__(
        self, t: type[BaseException] | None, v: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # -- names --

    def resolve(self, dev: str | int) -> tuple[int, str]:
        """(ifindex, name) of a netdev given by name or ifindex; ENODEV when it does not exist."""
        if isinstance(dev, bool) or not isinstance(dev, (str, int)):
            raise InputError(f"network device {dev!r}: give a name or an ifindex")
        try:
            if isinstance(dev, int):
                return dev, socket.if_indextoname(dev)
            validate_netdev_name(dev)
            return socket.if_nametoindex(dev), dev
        except OSError:
            raise NetlinkError(errno.ENODEV, "no such network device", device=str(dev)) from None

    # -- reading --

    def read_link(self, dev: str | int, *, strict: bool = True) -> LinkInfo:
        """One netdev with its VFs, in one request. With ``strict``, a VF list shorter than the
        kernel's ``IFLA_NUM_VF`` raises instead of returning a partial answer."""
        ifindex, name = self.resolve(dev)
        links = ll.links_get(self._sock, ifindex, None, device=name)
        if len(links) != 1:
            raise NetlinkError(errno.EBADMSG, f"expected one link, the kernel sent {len(links)}",
                               device=name)
        link = links[0]
        if strict and link.missing_vfs:
            raise NetlinkError(
                errno.EMSGSIZE,
                f"VF list incomplete: the kernel announced {link.num_vf} VFs and listed "
                f"{len(link.vfs)}",
                device=link.name,
            )
        return link

    def dump_links(self) -> list[LinkInfo]:
        """Every netdev, with VFs for PFs, in one dump (``missing_vfs`` says where lists are short)."""
        return ll.links_get(self._sock, -1, None, device="all links")

    # -- changing --

    def apply(
        self,
        changes: Sequence[VfChange],
        *,
        max_per_msg: int = 0,
        retries: int = 5,
        backoff_us: int = 1000,
    ) -> list[VfResult]:
        """Apply VF changes in batches; one :class:`VfResult` per change, in order.

        Input is checked whole before anything is sent (``InputError``); a PF that does not exist
        raises ``NetlinkError`` (ENODEV) before anything is sent. Kernel refusals are per VF in the
        results: use :func:`check_results` to raise the first.
        """
        checked = [validate_change(c) for c in changes]
        _check_int(max_per_msg, "max_per_msg", 0, 1 << 20)
        _check_int(retries, "retries", 0, 100)
        _check_int(backoff_us, "backoff_us", 0, 10_000_000)
        pfs: dict[str | int, tuple[int, str]] = {}
        for c in checked:
            if c.pf not in pfs:
                pfs[c.pf] = self.resolve(c.pf)
        rates = self._complete_rates(checked, pfs)
        packed = [_pack(c, pfs[c.pf][0], rates.get(i)) for i, c in enumerate(checked)]
        raw = ll.vf_apply(self._sock, packed, max_per_msg=max_per_msg, retries=retries,
                          backoff_us=backoff_us)
        return [
            VfResult(change=c, pf_name=pfs[c.pf][1], errno=e, ext_msg=m, attempts=a)
            for c, (e, a, m) in zip(checked, raw)
        ]

    def set_macs(
        self,
        pf: str | int,
        macs: Mapping[int, str],
        *,
        max_per_msg: int = 0,
        retries: int = 5,
        backoff_us: int = 1000,
    ) -> dict[int, NetlinkError]:
        """Bulk fast path: give VFs of one PF their admin MACs (``{vf index: MAC}``), in as few
        messages as fit. Input is checked whole first (``InputError``, nothing sent). Returns the
        VFs that failed, each with its error; an empty dict means every MAC was applied."""
        ifindex, name = self.resolve(pf)
        vfs = list(macs)
        values = list(macs.values())
        if not all(type(v) is int for v in vfs) or (vfs and not 0 <= min(vfs) <= max(vfs) <= _VF_MAX):
            bad = next(v for v in vfs if type(v) is not int or not 0 <= v <= _VF_MAX)
            raise InputError(f"{name}: VF index {bad!r}: must be an integer from 0 to {_VF_MAX}")
        if not _ALL_CANONICAL.fullmatch("\n".join(values) + "\n") or ZERO_MAC in values:
            values = [parse_mac(m, what=f"{name} vf {v}: MAC") for v, m in zip(vfs, values)]
        hexes = [m.replace(":", "") for m in values]
        failures = ll.vf_apply_macs(self._sock, ifindex, vfs, hexes, max_per_msg=max_per_msg,
                                    retries=retries, backoff_us=backoff_us)
        return {
            vfs[i]: NetlinkError(code, f"cannot set MAC {values[i]}", device=name, vf=vfs[i],
                                 ext_msg=msg)
            for i, code, _attempts, msg in failures
        }

    def _complete_rates(
        self, changes: Sequence[VfChange], pfs: dict[str | int, tuple[int, str]]
    ) -> dict[int, tuple[int, int]]:
        """min and max TX rate go together: a missing one comes from the VF's current state
        (each PF read once)."""
        rates: dict[int, tuple[int, int]] = {}
        current: dict[int, LinkInfo] = {}
        for i, c in enumerate(changes):
            if c.min_tx_rate is None and c.max_tx_rate is None:
                continue
            if c.min_tx_rate is not None and c.max_tx_rate is not None:
                rates[i] = (c.min_tx_rate, c.max_tx_rate)
                continue
            ifindex = pfs[c.pf][0]
            if ifindex not in current:
                current[ifindex] = self.read_link(ifindex)
            state = current[ifindex].vf(c.vf)
            rates[i] = (
                c.min_tx_rate if c.min_tx_rate is not None else state.min_tx_rate,
                c.max_tx_rate if c.max_tx_rate is not None else state.max_tx_rate,
            )
        return rates

    def set_link_mac(self, dev: str | int, mac: str) -> None:
        """A netdev's own MAC (RTM_SETLINK IFLA_ADDRESS), e.g. a VF netdev held by a host driver."""
        canonical = parse_mac(mac, allow_zero=False)
        ifindex, name = self.resolve(dev)
        ll.link_set_addr(self._sock, ifindex, mac_bytes(canonical), device=name)

    def set_vf_port(
        self,
        pf: str | int,
        vf: int,
        *,
        profile: str,
        instance_uuid: str | None = None,
        host_uuid: str | None = None,
        associate: bool = True,
    ) -> None:
        """802.1Qbh: associate (or disassociate) a port profile with a VF (IFLA_VF_PORTS)."""
        _check_int(vf, "VF index", 0, 0x7FFFFFFE)
        ifindex, name = self.resolve(pf)
        try:
            inst = uuid.UUID(instance_uuid).bytes if instance_uuid else None
            host = uuid.UUID(host_uuid).bytes if host_uuid else None
            ll.vf_port_set(
                self._sock, ifindex, vf,
                ll.PORT_ASSOCIATE if associate else ll.PORT_DISASSOCIATE,
                profile, inst, host, device=name,
            )
        except ValueError as exc:
            raise InputError(f"{name} vf {vf}: port profile: {exc}") from None


def read_link(dev: str | int, *, strict: bool = True) -> LinkInfo:
    with Rtnl() as nl:
        return nl.read_link(dev, strict=strict)


def dump_links() -> list[LinkInfo]:
    with Rtnl() as nl:
        return nl.dump_links()


def apply_changes(changes: Sequence[VfChange], **kwargs: int) -> list[VfResult]:
    with Rtnl() as nl:
        return nl.apply(changes, **kwargs)


__all__ = [
    "ZERO_MAC",
    "Rtnl",
    "apply_changes",
    "check_results",
    "describe_change",
    "dump_links",
    "read_link",
    "result_error",
    "validate_change",
]
