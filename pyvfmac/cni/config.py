"""What a CNI request says: the environment (``CNI_*``) and the network configuration on stdin.

The configuration is sriov-cni's (v2.10), read as sriov-cni reads it apart from ``type``; key by
key, with where and why vfmac-cni differs, in docs/cni-sriov-compat.md. In short:

- keys match case-insensitively, as Go's encoding/json matches them (``"VLAN"`` is ``vlan``); one
  key spelled two ways is refused. ``null`` is "not given". A key sriov-cni decodes must have the
  JSON type it decodes (``"vlan": "5"`` is refused, as sriov-cni refuses it).
- ``cniVersion`` as libcni's plugin side takes it: missing means 0.1.0, which, like 0.2.0 and
  anything unknown, is code 1; CHECK needs 0.4.0 or later, GC and STATUS 1.1.0 (else code 1).
- ``name`` must match the spec's ``[a-zA-Z0-9][a-zA-Z0-9_.-]*`` (code 7), for every command.
- ``deviceID`` (or ``pciBusID``), ``mac``, ``runtimeConfig.mac`` and ``MAC=`` in ``CNI_ARGS``
  (precedence: ``runtimeConfig.mac``, then ``MAC=``, then ``mac``; ``""`` is not given).
- ``vlan`` 0..4094; absent leaves the VF's VLAN as it is (None). ``vlanQoS`` (0..7, default 0)
  and ``vlanProto`` (802.1Q or 802.1ad, any case, default 802.1Q) only with a ``vlan``; a qos
  or 802.1ad only with a non-zero one.
- ``spoofchk`` / ``trust``: ``"on"``, ``"off"`` or ``""`` (not given); sriov-cni reads any other
  string as off, vfmac-cni refuses it. ``link_state``: ``auto``, ``enable``, ``disable`` or ``""``.
- ``min_tx_rate`` / ``max_tx_rate`` (Mbit/s, 0 no limit): one given sets both, the other 0.
- ``ipam.type`` names the IPAM delegate; ``logLevel``, ``logFile``, ``mtu`` and unknown keys
  are ignored. ``CNI_ARGS`` keys other than ``MAC`` need ``IgnoreUnknown=1`` (ADD, CHECK).

:func:`parse` reads everything (ADD, CHECK); :func:`parse_for_del` only what DEL, GC and STATUS
use, so that a configuration ADD would refuse can still be deleted. A wrong value is a
:class:`~pyvfmac.errors.CniError` with code 7 (1 for the version, 4 for the environment, 6 for
undecodable JSON).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

from ..errors import CniError, InputError
from ..mac import parse_mac
from ..settings import DEFAULT_VLAN_PROTO, LINK_STATES, RATE_MAX, VfSettings, check
from ..types import PciAddress, validate_netdev_name
from . import codes

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (mypy: always_true)

if TYPE_CHECKING:
    from collections.abc import Iterable
    from typing import Any

    from ..settings import LinkState, VlanProto

SUPPORTED_VERSIONS: tuple[str, ...] = ("0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0")
COMMANDS: tuple[str, ...] = ("ADD", "DEL", "CHECK", "GC", "STATUS", "VERSION")
_SINCE = {"CHECK": "0.4.0", "GC": "1.1.0", "STATUS": "1.1.0"}  # libcni's skel
_CONTAINER_ID = r"[A-Za-z0-9][A-Za-z0-9_.\-]*"  # compiled by re on first use
_NETWORK_NAME = _CONTAINER_ID  # the spec's rule for both (libcni: pkg/utils, cniValidNameChars)
_ONOFF = {"on": True, "off": False}
_PROTOS: dict[str, VlanProto] = {"802.1q": "802.1Q", "802.1ad": "802.1ad"}
_ARG_BOOLS = {"1": True, "true": True, "0": False, "false": False}  # libcni's UnmarshallableBool
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
    environ: dict[str, str] = field(default_factory=dict, repr=False)
    """The whole environment of the call, which an IPAM delegate is run with (the daemon's own
    is not the runtime's)."""


@dataclass(frozen=True, slots=True)
class NetConf:
    """One network configuration as vfmac-cni uses it; ``raw`` is stdin, handed to IPAM.

    ``lenient``: made by :func:`parse_for_del` (DEL, GC, STATUS), which reads no VF key:
    ``device`` and ``mac`` are None and ``settings`` empty whatever the configuration says, so
    such a NetConf must never reach ADD or CHECK. ``settings.vlan`` None (any setting None)
    means "leave it as the VF has it"."""

    version: str
    name: str
    device: PciAddress | None
    mac: str | None
    settings: VfSettings
    ipam_type: str | None
    prev_result: dict[str, Any] | None
    valid_attachments: tuple[tuple[str, str], ...] | None
    raw: bytes
    lenient: bool = False
    allow_duplicate_mac: bool = False  # allowDuplicateMac: vfmac-cni's own key (not sriov-cni's)


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
               args=_cni_args(environ.get("CNI_ARGS", "")), path=path, environ=dict(environ))


# ---------------------------------------------------------------------------- configuration

# sriov-cni v2.10 decodes stdin with Go's encoding/json into libcni's PluginConf and its own
# SriovNetConf (pkg/types/types.go): a key matches a field case-insensitively ("VLAN" is vlan),
# null leaves a field unset, and a value of the wrong JSON type fails the whole decoding. These
# are the keys it decodes, as their tags spell them, with the JSON type each must have.
_STR, _INT, _OBJ, _LIST = "a string", "an integer", "an object", "a list"
_GO_KEYS: dict[str, str] = {
    "cniVersion": _STR, "name": _STR, "type": _STR, "capabilities": _OBJ, "ipam": _OBJ,
    "dns": _OBJ, "prevResult": _OBJ, VALID_ATTACHMENTS: _LIST, "deviceID": _STR,
    "mac": _STR, "vlan": _INT, "vlanQoS": _INT, "vlanProto": _STR, "min_tx_rate": _INT,
    "max_tx_rate": _INT, "spoofchk": _STR, "trust": _STR, "link_state": _STR,
    "runtimeConfig": _OBJ, "logLevel": _STR, "logFile": _STR,
    # SriovNetConf's own state, which sriov-cni overwrites before use: decoded, so type-checked
    "MTU": _INT, "Master": _STR, "VFID": _INT, "OrigVfState": _OBJ,
    # vfmac-cni's own: a MAC another attachment, pod or netdev has is refused (code 109) unless
    # this is true
    "allowDuplicateMac": "true or false",
}
_FOLDED = {key.casefold(): key for key in _GO_KEYS}
_GO_INT = 1 << 63  # Go's int is 64 bits: a larger number does not decode


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


def _fold(doc: dict[str, Any], table: dict[str, str], where: str = "",
          strict: Iterable[str] | None = None) -> dict[str, Any]:
    """``doc`` with its keys spelled as ``table`` (casefolded -> canonical) spells them: Go
    matches ``"VLAN"`` to ``vlan``. A null is no value (Go leaves the field as it is). Two
    spellings of one key with values are refused (Go would take the last one written): every
    key when ``strict`` is None, else those in ``strict``."""
    out: dict[str, Any] = {}
    spelled: dict[str, str] = {}
    for key, value in doc.items():
        canon = table.get(key.casefold(), key)
        if value is None:
            out.setdefault(canon, None)
            continue
        if canon in spelled and (strict is None or canon in strict):
            raise bad_conf(f"{where}{spelled[canon]} and {where}{key} both given: one key, "
                           "spelled twice")
        spelled[canon] = key
        out[canon] = value
    return out


def _kind_ok(value: Any, kind: str) -> bool:
    if kind == _STR:
        return isinstance(value, str)
    if kind == _INT:
        return type(value) is int and -_GO_INT <= value < _GO_INT
    if kind == "true or false":
        return isinstance(value, bool)
    return isinstance(value, dict if kind == _OBJ else list)


def _types(doc: dict[str, Any]) -> None:
    """Each key sriov-cni decodes has the JSON type it decodes (null: not given)."""
    for key, kind in _GO_KEYS.items():
        value = doc.get(key)
        if value is not None and not _kind_ok(value, kind):
            raise bad_conf(f"{key} {_shown(value)}: must be {kind}")


def _semver(text: str) -> tuple[int, ...] | None:
    """``1.0.0`` as (1, 0, 0), as libcni's ParseVersion reads it (None: not a version)."""
    parts = text.split(".")
    if len(parts) > 3 or not all(p.isdigit() and p.isascii() for p in parts):
        return None
    return tuple(int(p) for p in parts) + (0,) * (3 - len(parts))


def version_of(doc: dict[str, Any], command: str = "ADD") -> str:
    """The configuration's cniVersion, as libcni's plugin side (pkg/skel, pkg/version) takes it:
    missing or empty means "0.1.0"; one this plugin does not support, or below what ``command``
    needs (CHECK 0.4.0, GC and STATUS 1.1.0), is code 1; one that is not a string, code 6."""
    version = doc.get("cniVersion")
    if version is None or version == "":
        version = "0.1.0"
    if not isinstance(version, str):
        raise CniError(codes.DECODE, f"cniVersion {_shown(version)}: not a string")
    since = _SINCE.get(command)
    have = _semver(version)
    if since is not None and have is not None and have < (_semver(since) or ()):
        raise CniError(codes.INCOMPATIBLE_VERSION,
                       f"cniVersion {_shown(version)} does not allow {command}",
                       f"{command} needs cniVersion {since} or later")
    if version not in SUPPORTED_VERSIONS:
        what = "" if doc.get("cniVersion") else " (no cniVersion: 0.1.0, as libcni reads it)"
        raise CniError(codes.INCOMPATIBLE_VERSION,
                       f"cniVersion {_shown(version)} is not supported{what}",
                       f"supported: {', '.join(SUPPORTED_VERSIONS)}")
    return version


def _name(doc: dict[str, Any]) -> str:
    """The network name, as the spec and libcni's skel require it (code 7)."""
    name = doc.get("name")
    if name is None or name == "":
        raise bad_conf("name: missing")
    if not isinstance(name, str) or not re.fullmatch(_NETWORK_NAME, name) or len(name) > 255:
        raise bad_conf(f"name {_shown(name)}: must be letters, digits, '_', '.', '-', starting "
                       "with a letter or digit, at most 255 characters")
    return name


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


def _args(env: Env) -> None:
    """``CNI_ARGS`` as sriov-cni's ADD reads it (libcni's LoadArgs into ``MAC`` and
    ``IgnoreUnknown``): any other key needs ``IgnoreUnknown`` true (code 4)."""
    ignore = env.args.get("IgnoreUnknown", "false")
    if ignore.lower() not in _ARG_BOOLS:
        raise bad_env(f"CNI_ARGS IgnoreUnknown={ignore}: use 1, true, 0 or false")
    for key, value in env.args.items():
        if "=" in value:
            raise bad_env(f"CNI_ARGS {key}={value}: not KEY=VALUE (one '=')")
        if key not in ("MAC", "IgnoreUnknown") and not _ARG_BOOLS[ignore.lower()]:
            raise bad_env(f"CNI_ARGS {key}: unknown (vfmac-cni reads MAC; give IgnoreUnknown=1 "
                          "to pass other keys on to IPAM)")


def _mac(doc: dict[str, Any], env: Env) -> str | None:
    runtime = _fold(doc.get("runtimeConfig") or {}, {"mac": "mac"}, "runtimeConfig.")
    for where, value in (("runtimeConfig.mac", runtime.get("mac")),
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


def _onoff(doc: dict[str, Any], key: str) -> bool | None:
    """spoofchk / trust: "on", "off", or "" (not given). sriov-cni reads every other string as
    "off" ("ON", "yes", "true"): refused here."""
    value = doc.get(key)
    if value is None or value == "":
        return None
    if value not in _ONOFF:
        raise bad_conf(f'{key} {_shown(value)}: use "on" or "off" (lower case; sriov-cni would '
                       'take any other value as "off")')
    return _ONOFF[value]


def _link_state(doc: dict[str, Any]) -> LinkState | None:
    value = doc.get("link_state")
    if value is None or value == "":
        return None
    if value not in LINK_STATES:
        raise bad_conf(f"link_state {_shown(value)}: use one of {', '.join(LINK_STATES)} "
                       "(lower case)")
    return value  # type: ignore[no-any-return]


def _vlan(doc: dict[str, Any]) -> tuple[int | None, int | None, VlanProto | None]:
    """(vlan, qos, protocol) as sriov-cni's LoadConf checks them: no vlan, no qos or protocol;
    a vlan's qos defaults to 0 and its protocol to 802.1Q (any case); qos and 802.1ad need a
    non-zero vlan. No vlan: the VF's VLAN is left as it is (sriov-cni 2.8, its issue 291)."""
    vlan = _int(doc, "vlan", 0, 4094)
    if vlan is None:
        for key in ("vlanQoS", "vlanProto"):
            if doc.get(key) is not None:
                raise bad_conf(f"{key} {_shown(doc[key])}: needs a vlan")
        return None, None, None
    qos = _int(doc, "vlanQoS", 0, 7) or 0
    text = doc.get("vlanProto", "802.1q")
    proto = _PROTOS.get(text.lower()) if isinstance(text, str) else None
    if proto is None:
        raise bad_conf(f"vlanProto {_shown(text)}: use 802.1Q or 802.1ad")
    if vlan == 0 and (qos or proto != DEFAULT_VLAN_PROTO):
        what = f"vlanQoS {qos}" if qos else "vlanProto 802.1ad"
        raise bad_conf(f"{what}: needs a non-zero vlan")
    return vlan, qos, proto


def _rates(doc: dict[str, Any]) -> tuple[int | None, int | None]:
    """(min, max) TX rates: either given sets both, the other as 0 (no limit), as sriov-cni
    does; a min above a non-zero max is refused (the kernel's drivers refuse it)."""
    lo = _int(doc, "min_tx_rate", 0, RATE_MAX)
    hi = _int(doc, "max_tx_rate", 0, RATE_MAX)
    if lo is None and hi is None:
        return None, None
    lo, hi = lo or 0, hi or 0
    if hi and lo > hi:
        raise bad_conf(f"min_tx_rate {lo} is above max_tx_rate {hi}")
    return lo, hi


def _settings(doc: dict[str, Any], mac: str | None) -> VfSettings:
    """The admin settings, checked as sriov-cni checks them; what is not given is None."""
    vlan, qos, proto = _vlan(doc)
    lo, hi = _rates(doc)
    settings = VfSettings(
        mac=mac, vlan=vlan, qos=qos, vlan_proto=proto, spoofchk=_onoff(doc, "spoofchk"),
        trust=_onoff(doc, "trust"), link_state=_link_state(doc), min_tx_rate=lo, max_tx_rate=hi)
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
    kind = _fold(ipam, {"type": "type"}, "ipam.").get("type")
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
    """The configuration on stdin, every key checked (ADD, CHECK); :class:`CniError` codes 1,
    4 (``CNI_ARGS``), 6 or 7."""
    doc = _fold(decode(raw), _FOLDED)
    version = version_of(doc, env.command)
    name = _name(doc)
    _types(doc)
    _args(env)
    mac = _mac(doc, env)
    return NetConf(version=version, name=name, device=_device(doc), mac=mac,
                   settings=_settings(doc, mac), ipam_type=_ipam_type(doc),
                   prev_result=doc.get("prevResult"),
                   valid_attachments=_valid_attachments(doc), raw=raw,
                   allow_duplicate_mac=doc.get("allowDuplicateMac") is True)


def parse_for_del(raw: bytes, env: Env) -> NetConf:
    """The configuration of a DEL, GC or STATUS: only what they use, and nothing that could
    make a VF undeletable. Only undecodable JSON (6), the version (1) and a missing or invalid
    network name (7) fail it, and for GC a malformed ``cni.dev/valid-attachments`` (7, since a
    wrong list would release live VFs). The VF keys are not read (``device`` and ``mac`` None,
    ``settings`` empty, ``lenient`` True); an unusable ``ipam`` is no IPAM delegate."""
    doc = _fold(decode(raw), _FOLDED, strict=("cniVersion", "name", VALID_ATTACHMENTS))
    version = version_of(doc, env.command)
    name = _name(doc)
    try:
        ipam_type = _ipam_type(doc)
    except CniError:
        ipam_type = None
    valid = _valid_attachments(doc) if env.command == "GC" else None
    return NetConf(version=version, name=name, device=None, mac=None, settings=VfSettings(),
                   ipam_type=ipam_type, prev_result=None, valid_attachments=valid, raw=raw,
                   lenient=True)


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
