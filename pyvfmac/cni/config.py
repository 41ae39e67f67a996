"""What a CNI request says: the environment (``CNI_*``) and the network configuration on stdin.

The configuration is sriov-cni's, unchanged apart from ``type``: ``deviceID`` (or ``pciBusID``,
which Multus also writes), ``mac``, ``vlan``, ``vlanQoS``, ``vlanProto``, ``spoofchk``, ``trust``,
``link_state``, ``min_tx_rate``, ``max_tx_rate``, ``ipam``, ``runtimeConfig.mac`` and ``MAC=`` in
``CNI_ARGS``; ``logLevel`` / ``logFile`` and unknown keys are ignored. MAC precedence as in
sriov-cni: ``runtimeConfig.mac``, then ``CNI_ARGS`` ``MAC=``, then ``mac``. A wrong value is a
:class:`~pyvfmac.errors.CniError` with code 7 (4 for the environment, 6 for undecodable JSON).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from ..errors import CniError, InputError
from ..mac import parse_mac
from ..settings import LINK_STATES, VfSettings, check
from ..types import PciAddress, validate_netdev_name
from . import codes

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (mypy: always_true)

if TYPE_CHECKING:
    from typing import Any

SUPPORTED_VERSIONS: tuple[str, ...] = ("0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0")
COMMANDS: tuple[str, ...] = ("ADD", "DEL", "CHECK", "GC", "STATUS", "VERSION")
_CONTAINER_ID = r"[A-Za-z0-9][A-Za-z0-9_.\-]*"  # compiled by re on first use
_ONOFF = {"on": True, "off": False}
_PROTOS = {"802.1q": "802.1Q", "802.1ad": "802.1ad"}
VALID_ATTACHMENTS = "cni.dev/valid-attachments"


@dataclass(frozen=True, slots=True)
class Env:
    """The ``CNI_*`` environment of one call."""

    command: str
    container_id: str
    netns: str
    ifname: str
    args: dict[str, str]
    path: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class NetConf:
    """One network configuration as vfmac-cni uses it; ``raw`` is stdin, handed to IPAM."""

    version: str
    name: str
    device: PciAddress | None
    mac: str | None
    settings: VfSettings
    ipam_type: str | None
    prev_result: dict[str, Any] | None
    valid_attachments: tuple[tuple[str, str], ...] | None
    raw: bytes


def bad_env(msg: str) -> CniError:
    return CniError(codes.BAD_ENV, msg)


def bad_conf(msg: str) -> CniError:
    return CniError(codes.INVALID_CONFIG, msg)


# ---------------------------------------------------------------------------- environment


def _cni_args(text: str) -> dict[str, str]:
    """``K1=V1;K2=V2`` (``CNI_ARGS``)."""
    out: dict[str, str] = {}
    for item in filter(None, text.split(";")):
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise bad_env(f"CNI_ARGS {text!r}: {item!r} is not KEY=VALUE")
        out[key] = value
    return out


def read_env(environ: dict[str, str]) -> Env:
    """The environment of a call; :class:`CniError` code 4 names what is missing or wrong."""
    command = environ.get("CNI_COMMAND", "")
    if command not in COMMANDS:
        raise bad_env(f"CNI_COMMAND {command!r}: use one of {', '.join(COMMANDS)}")
    cid = environ.get("CNI_CONTAINERID", "")
    ifname = environ.get("CNI_IFNAME", "")
    netns = environ.get("CNI_NETNS", "")
    if command in ("ADD", "DEL", "CHECK"):
        if not re.fullmatch(_CONTAINER_ID, cid):
            raise bad_env(f"CNI_CONTAINERID {cid!r}: must be letters, digits, '_', '.', '-' "
                          "starting with a letter or digit")
        try:
            validate_netdev_name(ifname, what="CNI_IFNAME")
        except InputError as exc:
            raise bad_env(str(exc)) from None
        if command != "DEL" and not netns:
            raise bad_env(f"CNI_NETNS is required for {command}")
    path = tuple(p for p in environ.get("CNI_PATH", "").split(":") if p)
    return Env(command=command, container_id=cid, netns=netns, ifname=ifname,
               args=_cni_args(environ.get("CNI_ARGS", "")), path=path)


# ---------------------------------------------------------------------------- configuration


def _shown(value: Any) -> str:
    """A configuration value as JSON spells it, for messages (``true``, ``null``, ``"x"``)."""
    return json.dumps(value)


def decode(raw: bytes) -> dict[str, Any]:
    """stdin as a JSON object (code 6 when it is not)."""
    try:
        doc = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise CniError(codes.DECODE, f"network configuration: not JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise CniError(codes.DECODE, "network configuration: not a JSON object")
    return doc


def version_of(doc: dict[str, Any]) -> str:
    version = doc.get("cniVersion")
    if not isinstance(version, str) or not version:
        raise bad_conf("cniVersion: missing")
    if version not in SUPPORTED_VERSIONS:
        raise CniError(codes.INCOMPATIBLE_VERSION, f"cniVersion {_shown(version)} is not supported",
                       f"supported: {', '.join(SUPPORTED_VERSIONS)}")
    return version


def _device(doc: dict[str, Any]) -> PciAddress | None:
    text = doc.get("deviceID") or doc.get("pciBusID")
    if text is None:
        return None
    key = "deviceID" if doc.get("deviceID") else "pciBusID"
    if not isinstance(text, str):
        raise bad_conf(f"{key} {_shown(text)}: not a string")
    try:
        return PciAddress.parse(text)
    except InputError as exc:
        raise bad_conf(f"{key}: {exc}") from None


def _mac(doc: dict[str, Any], env: Env) -> str | None:
    runtime = doc.get("runtimeConfig")
    if runtime is not None and not isinstance(runtime, dict):
        raise bad_conf("runtimeConfig: not an object")
    for where, value in (("runtimeConfig.mac", (runtime or {}).get("mac")),
                         ("CNI_ARGS MAC", env.args.get("MAC")), ("mac", doc.get("mac"))):
        if value in (None, ""):
            continue
        try:
            return parse_mac(value, what=where)
        except InputError as exc:
            raise bad_conf(str(exc)) from None
    return None


def _int(doc: dict[str, Any], key: str, low: int, high: int) -> int | None:
    value = doc.get(key)
    if value is None:
        return None
    if type(value) is not int or not low <= value <= high:
        raise bad_conf(f"{key} {_shown(value)}: must be an integer in {low}..{high}")
    return value


def _choice(doc: dict[str, Any], key: str, table: dict[str, Any] | tuple[str, ...]) -> Any:
    value = doc.get(key)
    if value is None:
        return None
    name = value.lower() if isinstance(value, str) else value
    if name not in table:
        raise bad_conf(f"{key} {_shown(value)}: use one of {', '.join(table)}")
    return table[name] if isinstance(table, dict) else name


def _settings(doc: dict[str, Any], mac: str | None) -> VfSettings:
    """The admin settings, checked as sriov-cni checks them (the VLAN defaults to 0)."""
    vlan = _int(doc, "vlan", 0, 4094)
    qos = _int(doc, "vlanQoS", 0, 7)
    proto = _choice(doc, "vlanProto", _PROTOS)
    if not vlan and (qos or proto not in (None, "802.1Q")):
        raise bad_conf("vlanQoS / vlanProto 802.1ad need a non-zero vlan")
    lo = _int(doc, "min_tx_rate", 0, 0xFFFFFFFF)
    hi = _int(doc, "max_tx_rate", 0, 0xFFFFFFFF)
    if lo and hi and lo > hi:
        raise bad_conf(f"min_tx_rate {lo} is above max_tx_rate {hi}")
    settings = VfSettings(
        mac=mac, vlan=vlan or 0, qos=qos or 0, vlan_proto=proto or "802.1Q",
        spoofchk=_choice(doc, "spoofchk", _ONOFF), trust=_choice(doc, "trust", _ONOFF),
        link_state=_choice(doc, "link_state", LINK_STATES), min_tx_rate=lo, max_tx_rate=hi)
    try:
        return check(settings, "network configuration")
    except InputError as exc:
        raise bad_conf(str(exc)) from None


def _ipam_type(doc: dict[str, Any]) -> str | None:
    ipam = doc.get("ipam")
    if ipam is None:
        return None
    if not isinstance(ipam, dict):
        raise bad_conf("ipam: not an object")
    kind = ipam.get("type")
    if kind in (None, ""):
        return None  # "ipam": {} -- no IPAM, as with sriov-cni
    if not isinstance(kind, str) or "/" in kind or kind.startswith("."):
        raise bad_conf(f"ipam.type {_shown(kind)}: not a plugin name")
    return kind


def _valid_attachments(doc: dict[str, Any]) -> tuple[tuple[str, str], ...] | None:
    items = doc.get(VALID_ATTACHMENTS)
    if items is None:
        return None
    if not isinstance(items, list):
        raise bad_conf(f"{VALID_ATTACHMENTS}: not a list")
    out = []
    for item in items:
        if (not isinstance(item, dict) or not isinstance(item.get("containerID"), str)
                or not isinstance(item.get("ifname"), str)):
            raise bad_conf(f"{VALID_ATTACHMENTS}: {_shown(item)} is not "
                           '{"containerID": ..., "ifname": ...}')
        out.append((item["containerID"], item["ifname"]))
    return tuple(out)


def parse(raw: bytes, env: Env) -> NetConf:
    """The configuration on stdin, checked; :class:`CniError` codes 1, 6 or 7."""
    doc = decode(raw)
    version = version_of(doc)
    name = doc.get("name")
    if name is None:
        raise bad_conf("name: missing")
    if not isinstance(name, str) or not name or "\x00" in name or len(name) > 255:
        raise bad_conf(f"name {_shown(name)}: must be a non-empty string of at most 255 "
                       "characters, without NUL")
    mac = _mac(doc, env)
    prev = doc.get("prevResult")
    if prev is not None and not isinstance(prev, dict):
        raise bad_conf("prevResult: not an object")
    return NetConf(version=version, name=name, device=_device(doc), mac=mac,
                   settings=_settings(doc, mac), ipam_type=_ipam_type(doc), prev_result=prev,
                   valid_attachments=_valid_attachments(doc), raw=raw)


def owner(container_id: str, ifname: str, network: str) -> str:
    """The state store's owner of a VF held for a pod: ``cni:<container>:<ifname>:<network>``
    (container ids and netdev names have no ':', so it splits back unambiguously)."""
    return f"cni:{container_id}:{ifname}:{network}"


def split_owner(text: str) -> tuple[str, str, str] | None:
    """(container id, ifname, network) of a pod owner; None for any other owner."""
    if not text.startswith("cni:"):
        return None
    parts = text[4:].split(":", 2)
    if len(parts) != 3:
        return None
    return parts[0], parts[1], parts[2]


def describe_owner(text: str) -> str:
    """``pod container abc interface net1 (network sriov-a)`` or the owner as recorded."""
    parts = split_owner(text)
    if parts is None:
        return text if not text.startswith("mac:") else f"`vfmac attach` ({text})"
    return f"pod container {parts[0]} interface {parts[1]} (network {parts[2]})"
