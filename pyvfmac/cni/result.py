"""What vfmac-cni writes on stdout: results in the config's version, errors, VERSION."""

from __future__ import annotations

import errno as _errno
import json
from dataclasses import dataclass

from ..errors import CniError, KernelError, StateError, TopologyError, VfmacError
from . import codes
from .config import SUPPORTED_VERSIONS

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (mypy: always_true)

if TYPE_CHECKING:
    from typing import Any

_TRANSIENT = frozenset({_errno.EAGAIN, _errno.EBUSY, _errno.EINTR, _errno.ETIMEDOUT,
                        _errno.ENOBUFS})


@dataclass(frozen=True, slots=True)
class IpConfig:
    """One address of a result: ``address`` in CIDR form, ``gateway`` or None."""

    address: str
    gateway: str | None

    @property
    def v6(self) -> bool:
        return ":" in self.address


@dataclass(frozen=True, slots=True)
class Route:
    """One route of a result: destination in CIDR form, gateway or None."""

    dst: str
    gw: str | None


@dataclass(frozen=True, slots=True)
class IpamResult:
    """What an IPAM delegate gave: addresses, routes and DNS (kept as sent)."""

    ips: tuple[IpConfig, ...] = ()
    routes: tuple[Route, ...] = ()
    dns: dict[str, Any] | None = None


def _is_1x(version: str) -> bool:
    return not version.startswith("0.")


def success(version: str, *, ifname: str, mac: str | None, sandbox: str, pci: str,
            ipam: IpamResult, mtu: int | None = None) -> dict[str, Any]:
    """The ADD result in ``version`` (0.3.0 .. 1.1.0): one interface, the IPAM addresses on it.

    ``mtu`` (the pod interface's, as sriov-cni reports it) and ``pciID`` are interface keys of
    spec 1.1.0 (SPEC.md, "ADD Success"): given in a 1.1.0 result only; ``mtu`` None omits it."""
    iface: dict[str, Any] = {"name": ifname, "sandbox": sandbox}
    if mac:
        iface["mac"] = mac
    if version == "1.1.0":
        if mtu:
            iface["mtu"] = mtu
        iface["pciID"] = pci
    out: dict[str, Any] = {"cniVersion": version, "interfaces": [iface]}
    ips = []
    for ip in ipam.ips:
        entry: dict[str, Any] = {"address": ip.address, "interface": 0}
        if ip.gateway:
            entry["gateway"] = ip.gateway
        if not _is_1x(version):
            entry["version"] = "6" if ip.v6 else "4"
        ips.append(entry)
    if ips:
        out["ips"] = ips
    if ipam.routes:
        out["routes"] = [{"dst": r.dst, **({"gw": r.gw} if r.gw else {})} for r in ipam.routes]
    out["dns"] = ipam.dns or {}
    return out


def chained(prev: dict[str, Any] | None, ours: dict[str, Any]) -> dict[str, Any]:
    """The ADD result of a plugin that is not first in its chain: ``prevResult`` with this
    plugin's interface, addresses and routes added (the spec: a chained plugin passes on what it
    does not change). Our addresses point at our interface's new index; the DNS of the result
    that has one is kept."""
    if not prev:
        return ours
    out = dict(prev, cniVersion=ours["cniVersion"])
    base = len(prev.get("interfaces") or [])
    out["interfaces"] = [*(prev.get("interfaces") or []), *ours["interfaces"]]
    ips = [*(prev.get("ips") or []),
           *({**ip, "interface": base + ip["interface"]} for ip in ours.get("ips", []))]
    if ips:
        out["ips"] = ips
    routes = [*(prev.get("routes") or []), *ours.get("routes", [])]
    if routes:
        out["routes"] = routes
    out["dns"] = ours.get("dns") or prev.get("dns") or {}
    return out


def version_info(requested: str | None) -> dict[str, Any]:
    """The VERSION answer."""
    version = requested if requested in SUPPORTED_VERSIONS else SUPPORTED_VERSIONS[-1]
    return {"cniVersion": version, "supportedVersions": list(SUPPORTED_VERSIONS)}


def code_of(exc: BaseException) -> int:
    """The CNI error code of an exception."""
    if isinstance(exc, CniError):
        return exc.code
    if isinstance(exc, KernelError):
        return codes.TRY_AGAIN if exc.errno in _TRANSIENT else codes.KERNEL
    if isinstance(exc, TopologyError):
        text = str(exc)
        if "not a VF" in text:
            return codes.NOT_A_VF
        if "not a network device" in text:
            return codes.NOT_NETWORK
        return codes.NO_DEVICE
    if isinstance(exc, StateError):
        return codes.STATE
    if isinstance(exc, VfmacError):
        return codes.INVALID_CONFIG  # InputError: a value given was wrong
    return codes.IO_FAILURE


def error(version: str | None, exc: BaseException) -> dict[str, Any]:
    """The CNI error object for ``exc`` (notes added to it become ``details``)."""
    details = getattr(exc, "details", "") or ""
    notes = getattr(exc, "__notes__", None)
    if notes:
        details = "; ".join(filter(None, [details, *notes]))
    msg = exc.msg if isinstance(exc, CniError) else str(exc) or type(exc).__name__
    out: dict[str, Any] = {"cniVersion": version or SUPPORTED_VERSIONS[-1], "code": code_of(exc),
                           "msg": msg}
    if details:
        out["details"] = details
    return out


def dumps(doc: dict[str, Any]) -> str:
    return json.dumps(doc, separators=(",", ":")) + "\n"


def parse_ipam(doc: object, plugin: str) -> IpamResult:
    """An IPAM plugin's result (any version 0.3.0 .. 1.1.0)."""
    if not isinstance(doc, dict):
        raise CniError(codes.IPAM, f"IPAM plugin {plugin}: result is not a JSON object")
    try:
        ips = tuple(IpConfig(address=_cidr(ip["address"]), gateway=ip.get("gateway") or None)
                    for ip in doc.get("ips") or ())
        routes = tuple(Route(dst=_cidr(r["dst"]), gw=r.get("gw") or None)
                       for r in doc.get("routes") or ())
    except (KeyError, TypeError, ValueError) as exc:
        raise CniError(codes.IPAM, f"IPAM plugin {plugin}: malformed result: {exc!r}") from None
    dns = doc.get("dns")
    return IpamResult(ips=ips, routes=routes, dns=dns if isinstance(dns, dict) else None)


def _cidr(text: object) -> str:
    import ipaddress

    if not isinstance(text, str):
        raise ValueError(f"{text!r} is not an address")
    ipaddress.ip_interface(text)
    return text
