"""Boot-time bulk programming: the ``vfmac apply`` configuration, derived MACs, the plan, the run.

The configuration file (TOML, default ``/etc/pyvfmac/vfmac.toml``)::

    [defaults]                      # optional; every key optional
    host_key = "/etc/machine-id"    # file whose content keys the derived MACs
    mac_prefix = "02:00"            # derived MACs start with these 1-3 octets (default: none)
    mac_policy = "derived"          # "keep" (default) or "derived", for every PF below
    derive_from = "pci"             # "pci" (default) or "permanent-mac": the PF identity below
    spoofchk = true                 # VF settings: defaults for every VF of every PF below

    [[pf]]
    name = "enp3s0f0"               # or: pci = "0000:03:00.0" -- exactly one of the two
    numvfs = 16                     # optional: create that many VFs (sriov_numvfs) when different
    mac_policy = "derived"          # every VF without an explicit mac gets a derived stable MAC
    vlan_proto = "802.1Q"           # VF settings: defaults for every VF of this PF

    [[pf.vf]]
    index = 3
    mac = "52:54:00:00:00:03"
    vlan = 42                       # 0 clears the VLAN; qos and vlan_proto go with a vlan
    qos = 0
    spoofchk = false
    trust = true
    link_state = "auto"             # "auto" | "enable" | "disable"
    min_tx_rate = 0                 # Mbit/s; 0 = no limit
    max_tx_rate = 0

VF settings (``vlan qos vlan_proto spoofchk trust link_state min_tx_rate max_tx_rate``) may be
given in ``[defaults]``, in a ``[[pf]]`` table (then they apply to every VF of that PF) and in a
``[[pf.vf]]`` table; the most specific wins. ``mac`` exists only per VF. A setting given nowhere
is left as it is. A VF is managed when a setting applies to it: all VFs of a PF with any PF-level
setting or ``mac_policy = "derived"``, otherwise only the VFs listed.

Derived MACs (a compatibility promise: the same inputs give the same MAC in every version)::

    key = content of the host_key file, leading and trailing ASCII whitespace removed
    pf  = "pci:" + PCI address, canonical (pci:0000:03:00.0)    when the PF is a PCI function
        | "perm:" + permanent MAC, lowercase (perm:aa:bb:cc:dd:ee:ff)   else, when it has one
        | "dev:" + parent bus + ":" + parent device (dev:netdevsim:netdevsim10)  else
      with derive_from = "permanent-mac" (in [defaults] or a [[pf]] table):
          "perm:" + the PF's permanent MAC (IFLA_PERM_ADDRESS), always; a PF without one is an
          error. The permanent MAC is burnt into the card: it moves with it when a card added
          elsewhere, a slot change or a firmware setting renumbers the PCI bus, where "pci:" (the
          default, kept for compatibility) would give every VF of the PF new MACs.
    H   = HMAC-SHA256(key, "pyvfmac-derived-mac-v1\\n" + pf + "\\n" + decimal VF index)
    MAC = H[0:6] with the first octet's two low bits set to 10 (locally administered, unicast)
        | with mac_prefix P of n octets: P + H[0:6-n]

With ``/etc/machine-id`` as key, ``printf 'pyvfmac-derived-mac-v1\\npci:0000:03:00.0\\n3' |
openssl dgst -sha256 -hmac "$(cat /etc/machine-id)"`` shows H. Without a prefix 46 bits are
hashed; a 3-octet prefix leaves 24 bits, where 4096 VFs collide with probability about 0.4.
Collisions (with each other, with explicit MACs, with any netdev's MAC or any VF admin MAC on the
host that stays) are detected and refused before anything changes.
"""

from __future__ import annotations

import errno
import os
import sys
import time
import tomllib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from typing import IO, TYPE_CHECKING, Any, Literal, cast

from . import sysfs
from .errors import ConfigError, MacError, NetlinkError, PciAddressError, SysfsError
from .mac import ZERO_MAC, parse_mac
from .settings import LINK_STATES, VLAN_PROTOS, VfChange, VfSettings, VfState, diff
from .types import LinkInfo, PciAddress, VfResult, validate_netdev_name

if TYPE_CHECKING:
    from .topology import Topology

DEFAULT_CONFIG = "/etc/pyvfmac/vfmac.toml"
DEFAULT_HOST_KEY = "/etc/machine-id"
DERIVATION_TAG = "pyvfmac-derived-mac-v1"
MAX_VFS = 65535  # sriov_numvfs / sriov_totalvfs are 16-bit in PCI SR-IOV

MacPolicy = Literal["keep", "derived"]
MAC_POLICIES: tuple[MacPolicy, ...] = ("keep", "derived")
DeriveFrom = Literal["pci", "permanent-mac"]
DERIVE_FROM: tuple[DeriveFrom, ...] = ("pci", "permanent-mac")

# ---------------------------------------------------------------------------------------------
# Values
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class VfEntry:
    """One ``[[pf.vf]]`` table: ``settings`` as written there (not merged)."""

    key: str  # "pf[0].vf[2]"
    index: int
    settings: VfSettings


@dataclass(frozen=True, slots=True)
class PfEntry:
    """One ``[[pf]]`` table; ``settings`` are ``[defaults]`` completed by the PF table."""

    key: str  # "pf[0]"
    name: str | None
    pci: PciAddress | None
    numvfs: int | None
    mac_policy: MacPolicy
    mac_prefix: bytes
    settings: VfSettings
    vfs: tuple[VfEntry, ...]
    derive_from: DeriveFrom = "pci"

    @property
    def label(self) -> str:
        return self.name if self.name is not None else str(self.pci)


@dataclass(frozen=True, slots=True)
class Config:
    path: str
    pfs: tuple[PfEntry, ...]
    host_key_path: str = DEFAULT_HOST_KEY
    host_key: bytes | None = field(default=None, repr=False)  # read only when a PF derives

    def needs_host_key(self) -> bool:
        return any(pf.mac_policy == "derived" for pf in self.pfs)


# ---------------------------------------------------------------------------------------------
# Parsing and validation
# ---------------------------------------------------------------------------------------------

_SETTING_KEYS = (
    "vlan", "qos", "vlan_proto", "spoofchk", "trust", "link_state", "min_tx_rate", "max_tx_rate",
)
_DEFAULTS_KEYS = ("host_key", "mac_prefix", "mac_policy", "derive_from", *_SETTING_KEYS)
_PF_KEYS = ("name", "pci", "numvfs", "mac_policy", "mac_prefix", "derive_from", *_SETTING_KEYS,
            "vf")
_VF_KEYS = ("index", "mac", *_SETTING_KEYS)
_TOP_KEYS = ("defaults", "pf")


def show(value: object) -> str:
    """A value as TOML would spell it, for error messages."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        import json  # error messages only: not on every run's import path

        return json.dumps(value)
    if isinstance(value, dict):
        return "(a table)"
    if isinstance(value, list):
        return "(an array)"
    return repr(value)


class _Ctx:
    """Builds ConfigErrors that name the file, the key path and the value."""

    __slots__ = ("path",)

    def __init__(self, path: str) -> None:
        self.path = path

    def error(self, key: str, value: object, reason: str) -> ConfigError:
        return ConfigError(f"{self.path}: {key} = {show(value)}: {reason}")

    def missing(self, key: str, reason: str) -> ConfigError:
        return ConfigError(f"{self.path}: {key}: {reason}")

    def check_keys(self, table: Mapping[str, object], allowed: Sequence[str], where: str) -> None:
        for k, v in table.items():
            if k not in allowed:
                key = f"{where}.{k}" if where else k
                hint = ""
                if k == "mac" and where and "vf" not in where:
                    hint = ('; a MAC is set per VF ([[pf.vf]] mac = ...) or by '
                            'mac_policy = "derived"')
                raise self.error(key, v, f"unknown key (known: {', '.join(allowed)}){hint}")

    def table(self, value: object, key: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.error(key, value, "must be a table")
        return value

    def integer(self, value: object, key: str, lo: int, hi: int) -> int:
        if not isinstance(value, int) or isinstance(value, bool):
            raise self.error(key, value, f"must be an integer in {lo}..{hi}")
        if not lo <= value <= hi:
            raise self.error(key, value, f"out of range {lo}..{hi}")
        return value

    def boolean(self, value: object, key: str) -> bool:
        if not isinstance(value, bool):
            raise self.error(key, value, "must be true or false")
        return value

    def string(self, value: object, key: str) -> str:
        if not isinstance(value, str):
            raise self.error(key, value, "must be a string")
        return value

    def choice(self, value: object, key: str, choices: Sequence[str]) -> str:
        text = self.string(value, key)
        for c in choices:
            if text.lower() == c.lower():
                return c
        raise self.error(key, value, f"must be one of {', '.join(show(c) for c in choices)}")


def _parse_settings(ctx: _Ctx, table: Mapping[str, Any], where: str) -> VfSettings:
    def key(k: str) -> str:
        return f"{where}.{k}" if where else k

    vals: dict[str, Any] = {}
    if "vlan" in table:
        vals["vlan"] = ctx.integer(table["vlan"], key("vlan"), 0, 4095)
    if "qos" in table:
        vals["qos"] = ctx.integer(table["qos"], key("qos"), 0, 7)
    if "vlan_proto" in table:
        vals["vlan_proto"] = ctx.choice(table["vlan_proto"], key("vlan_proto"), tuple(VLAN_PROTOS))
    for name in ("spoofchk", "trust"):
        if name in table:
            vals[name] = ctx.boolean(table[name], key(name))
    if "link_state" in table:
        vals["link_state"] = ctx.choice(table["link_state"], key("link_state"), LINK_STATES)
    for name in ("min_tx_rate", "max_tx_rate"):
        if name in table:
            vals[name] = ctx.integer(table[name], key(name), 0, 0xFFFFFFFF)
    return VfSettings(**vals)


def _check_merged(ctx: _Ctx, merged: VfSettings, own: Mapping[str, Any], where: str) -> None:
    """Consistency of a VF's (or a PF level's) merged settings, blaming keys of ``own``."""
    lo, hi = merged.min_tx_rate, merged.max_tx_rate
    if lo is not None and hi is not None and hi != 0 and lo > hi:
        k = "min_tx_rate" if "min_tx_rate" in own else "max_tx_rate"
        value = lo if k == "min_tx_rate" else hi
        raise ctx.error(
            f"{where}.{k}", value, f"min_tx_rate {lo} is above max_tx_rate {hi} (0 = no limit)"
        )


def _parse_prefix(ctx: _Ctx, value: object, key: str) -> bytes:
    text = ctx.string(value, key).strip()
    parts = text.replace("-", ":").split(":")
    try:
        if not 1 <= len(parts) <= 3 or any(not 1 <= len(p) <= 2 for p in parts):
            raise ValueError
        octets = bytes(int(p, 16) for p in parts)
    except ValueError:
        raise ctx.error(key, value, "must be 1 to 3 hexadecimal octets, e.g. \"02:00\"") from None
    if octets[0] & 0x03 != 0x02:
        raise ctx.error(
            key, value,
            "not a locally administered unicast prefix: the first octet needs bit 0x02 set and "
            "bit 0x01 clear (e.g. 02, 06, 0a, ..., fe)",
        )
    return octets


def parse_config(doc: Mapping[str, Any], *, path: str) -> Config:
    """Validate a parsed TOML document. Raises :class:`ConfigError` naming file, key and value.

    Checks everything that needs no host: keys, types, ranges, MAC syntax, exactly one of
    name/pci, duplicate PF names / PCI addresses, duplicate VF indexes, VF index below ``numvfs``,
    explicit MACs used twice. Resolution against the host is :func:`build_plan`'s job.
    """
    ctx = _Ctx(path)
    ctx.check_keys(doc, _TOP_KEYS, "")
    defaults = ctx.table(doc.get("defaults", {}), "defaults")
    ctx.check_keys(defaults, _DEFAULTS_KEYS, "defaults")
    host_key_path = DEFAULT_HOST_KEY
    if "host_key" in defaults:
        host_key_path = ctx.string(defaults["host_key"], "defaults.host_key")
        if not host_key_path.strip():
            raise ctx.error("defaults.host_key", host_key_path, "must name a file")
        if not os.path.isabs(host_key_path):
            host_key_path = os.path.join(os.path.dirname(os.path.abspath(path)), host_key_path)
    policy: MacPolicy = "keep"
    if "mac_policy" in defaults:
        policy = cast(MacPolicy, ctx.choice(defaults["mac_policy"], "defaults.mac_policy",
                                            MAC_POLICIES))
    prefix = b""
    if "mac_prefix" in defaults:
        prefix = _parse_prefix(ctx, defaults["mac_prefix"], "defaults.mac_prefix")
    derive_from: DeriveFrom = "pci"
    if "derive_from" in defaults:
        derive_from = cast(DeriveFrom, ctx.choice(defaults["derive_from"], "defaults.derive_from",
                                                  DERIVE_FROM))
    base = _parse_settings(ctx, defaults, "defaults")
    _check_merged(ctx, base, defaults, "defaults")

    raw_pfs = doc.get("pf", [])
    if not isinstance(raw_pfs, list):
        raise ctx.error("pf", raw_pfs, "must be an array of tables ([[pf]])")
    pfs = tuple(
        _parse_pf(ctx, raw, f"pf[{i}]", base, policy, prefix, derive_from)
        for i, raw in enumerate(raw_pfs)
    )
    _check_duplicate_pfs(ctx, pfs)
    _check_explicit_macs(ctx, pfs)
    return Config(path=path, pfs=pfs, host_key_path=host_key_path)


def _parse_pf(
    ctx: _Ctx, raw: object, where: str, base: VfSettings, policy: MacPolicy, prefix: bytes,
    derive_from: DeriveFrom = "pci",
) -> PfEntry:
    table = ctx.table(raw, where)
    ctx.check_keys(table, _PF_KEYS, where)
    name: str | None = None
    pci: PciAddress | None = None
    if ("name" in table) == ("pci" in table):
        if "name" in table:
            raise ctx.error(f"{where}.pci", table["pci"], "give name or pci, not both")
        raise ctx.missing(where, "needs name = \"<netdev>\" or pci = \"<PCI address>\"")
    if "name" in table:
        name = ctx.string(table["name"], f"{where}.name")
        try:
            validate_netdev_name(name)
        except ValueError as exc:
            raise ctx.error(f"{where}.name", name, str(exc)) from None
    else:
        text = ctx.string(table["pci"], f"{where}.pci")
        try:
            pci = PciAddress.parse(text)
        except PciAddressError:
            raise ctx.error(
                f"{where}.pci", text, "not a PCI address (DDDD:BB:SS.F, e.g. 0000:03:00.0)"
            ) from None
    numvfs = None
    if "numvfs" in table:
        numvfs = ctx.integer(table["numvfs"], f"{where}.numvfs", 0, MAX_VFS)
    if "mac_policy" in table:
        policy = cast(MacPolicy, ctx.choice(table["mac_policy"], f"{where}.mac_policy",
                                            MAC_POLICIES))
    if "mac_prefix" in table:
        prefix = _parse_prefix(ctx, table["mac_prefix"], f"{where}.mac_prefix")
    if "derive_from" in table:
        derive_from = cast(DeriveFrom, ctx.choice(table["derive_from"], f"{where}.derive_from",
                                                  DERIVE_FROM))
    settings = _parse_settings(ctx, table, where).over(base)
    _check_merged(ctx, settings, table, where)

    raw_vfs = table.get("vf", [])
    if not isinstance(raw_vfs, list):
        raise ctx.error(f"{where}.vf", raw_vfs, "must be an array of tables ([[pf.vf]])")
    vfs: list[VfEntry] = []
    seen: dict[int, str] = {}
    for j, raw_vf in enumerate(raw_vfs):
        vf = _parse_vf(ctx, raw_vf, f"{where}.vf[{j}]", settings)
        if vf.index in seen:
            raise ctx.error(f"{vf.key}.index", vf.index, f"VF listed twice (also {seen[vf.index]})")
        if numvfs is not None and vf.index >= numvfs:
            raise ctx.error(f"{vf.key}.index", vf.index, f"not below {where}.numvfs = {numvfs}")
        seen[vf.index] = vf.key
        vfs.append(vf)
    return PfEntry(
        key=where, name=name, pci=pci, numvfs=numvfs, mac_policy=policy, mac_prefix=prefix,
        settings=settings, vfs=tuple(vfs), derive_from=derive_from,
    )


def _parse_vf(ctx: _Ctx, raw: object, where: str, pf_settings: VfSettings) -> VfEntry:
    table = ctx.table(raw, where)
    ctx.check_keys(table, _VF_KEYS, where)
    if "index" not in table:
        raise ctx.missing(where, "needs index = <VF number>")
    index = ctx.integer(table["index"], f"{where}.index", 0, MAX_VFS - 1)
    own = _parse_settings(ctx, table, where)
    if "mac" in table:
        value = table["mac"]
        try:
            mac = parse_mac(ctx.string(value, f"{where}.mac"))
        except MacError as exc:
            reason = str(exc).split(": ", 1)[-1]
            raise ctx.error(f"{where}.mac", value, reason) from None
        own = replace(own, mac=mac)
    merged = own.over(pf_settings)
    if merged.vlan is None:
        for k in ("qos", "vlan_proto"):
            if k in table:
                raise ctx.error(f"{where}.{k}", table[k], "needs a vlan (in this table or above)")
    _check_merged(ctx, merged, table, where)
    return VfEntry(key=where, index=index, settings=own)


def _check_duplicate_pfs(ctx: _Ctx, pfs: Sequence[PfEntry]) -> None:
    seen: dict[str | PciAddress, str] = {}
    for pf in pfs:
        ident: str | PciAddress = pf.name if pf.name is not None else cast(PciAddress, pf.pci)
        kind = "name" if pf.name is not None else "pci"
        if ident in seen:
            raise ctx.error(f"{pf.key}.{kind}", str(ident),
                            f"PF configured twice (also {seen[ident]})")
        seen[ident] = pf.key


def _check_explicit_macs(ctx: _Ctx, pfs: Sequence[PfEntry]) -> None:
    owners: dict[str, str] = {}
    for pf in pfs:
        for vf in pf.vfs:
            mac = vf.settings.mac
            if mac is None:
                continue
            if mac in owners:
                raise ctx.error(f"{vf.key}.mac", mac, f"MAC used twice (also {owners[mac]}.mac)")
            owners[mac] = vf.key


def read_toml(path: str) -> dict[str, Any]:
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None


def read_host_key(path: str, *, config_path: str) -> bytes:
    """The host key file's content without surrounding whitespace; ConfigError if unusable."""
    try:
        with open(path, "rb") as fh:
            key = fh.read(4096).strip()
    except OSError as exc:
        raise ConfigError(
            f"{config_path}: defaults.host_key = {show(path)}: cannot read: {exc.strerror}"
        ) from None
    if not key:
        raise ConfigError(f"{config_path}: defaults.host_key = {show(path)}: the file is empty")
    return key


def load_config(path: str = DEFAULT_CONFIG) -> Config:
    """Read, validate and (when a PF derives MACs) read the host key."""
    cfg = parse_config(read_toml(path), path=path)
    if cfg.needs_host_key():
        cfg = replace(cfg, host_key=read_host_key(cfg.host_key_path, config_path=path))
    return cfg


# ---------------------------------------------------------------------------------------------
# Derived MACs
# ---------------------------------------------------------------------------------------------


def pf_identity(pci: PciAddress | None, link: LinkInfo,
                derive_from: DeriveFrom = "pci") -> str | None:
    """The stable identity a PF's derived MACs hang on (see the module docstring), or None."""
    if derive_from == "permanent-mac":
        if link.perm_mac and link.perm_mac != ZERO_MAC:
            return f"perm:{link.perm_mac.lower()}"
        return None
    if pci is not None:
        return f"pci:{pci}"
    if link.perm_mac and link.perm_mac != ZERO_MAC:
        return f"perm:{link.perm_mac.lower()}"
    if link.parent_bus and link.parent_dev:
        return f"dev:{link.parent_bus}:{link.parent_dev}"
    return None


def derive_mac(host_key: bytes, pf_id: str, vf: int, prefix: bytes = b"") -> str:
    """The derived MAC of VF ``vf`` of the PF with identity ``pf_id`` (formula in module doc)."""
    return _Deriver(host_key, pf_id, prefix).mac(vf)


def _sha256_type() -> Callable[[bytes], Any]:
    """SHA-256 without loading OpenSSL when the interpreter has its own implementation:
    ``hashlib`` (and ``hmac``) load ``_hashlib``, i.e. libcrypto, about 3.6 MB of resident memory
    and a noticeable share of ``vfmac apply``'s start-up, for a few thousand tiny hashes."""
    from importlib import import_module

    for name in ("_sha256", "_sha2"):  # CPython's built-in module: 3.11, 3.12+
        try:
            return cast(Callable[[bytes], Any], import_module(name).sha256)
        except (ImportError, AttributeError):
            continue
    import hashlib  # pragma: no cover - an interpreter built without its own SHA-256

    return hashlib.sha256  # pragma: no cover


def _mac_of_digest(digest: bytes, prefix: bytes) -> str:
    if prefix:
        return (prefix + digest[: 6 - len(prefix)]).hex(":")
    raw = bytearray(digest[:6])
    raw[0] = (raw[0] & 0xFC) | 0x02
    return raw.hex(":")


class _Deriver:
    """:func:`derive_mac` for many VFs of one PF: the HMAC (RFC 2104) pads and the common message
    head are hashed once, each VF costs two SHA-256 finishes (about 3x faster)."""

    __slots__ = ("_inner", "_outer", "_prefix")

    def __init__(self, host_key: bytes, pf_id: str, prefix: bytes) -> None:
        sha256 = _sha256_type()
        key = sha256(host_key).digest() if len(host_key) > 64 else host_key
        key = key.ljust(64, b"\0")
        self._inner = sha256(bytes(b ^ 0x36 for b in key))
        self._inner.update(f"{DERIVATION_TAG}\n{pf_id}\n".encode())
        self._outer = sha256(bytes(b ^ 0x5C for b in key))
        self._prefix = prefix

    def mac(self, vf: int) -> str:
        inner = self._inner.copy()
        inner.update(str(vf).encode())
        outer = self._outer.copy()
        outer.update(inner.digest())
        return _mac_of_digest(outer.digest(), self._prefix)


# ---------------------------------------------------------------------------------------------
# The host as the plan sees it, and the plan
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class HostView:
    """Everything the plan reads from the host, gathered once (one dump, one sysfs scan)."""

    links: tuple[LinkInfo, ...]
    pf_netdevs: Mapping[PciAddress, tuple[str, ...]] = field(default_factory=dict)
    netdev_pci: Mapping[str, PciAddress] = field(default_factory=dict)
    vf_netdevs: Mapping[tuple[PciAddress, int], str] = field(default_factory=dict)
    totalvfs: Mapping[PciAddress, int] = field(default_factory=dict)


def host_view(links: Iterable[LinkInfo], topology: Topology | None = None) -> HostView:
    """A :class:`HostView` from a link dump and a ``pyvfmac.topology.Topology`` (or None)."""
    pf_netdevs: dict[PciAddress, tuple[str, ...]] = {}
    netdev_pci: dict[str, PciAddress] = {}
    vf_netdevs: dict[tuple[PciAddress, int], str] = {}
    totalvfs: dict[PciAddress, int] = {}
    if topology is not None:
        for pf in topology.pfs:
            pf_netdevs[pf.address] = tuple(pf.netdevs)
            totalvfs[pf.address] = int(pf.totalvfs)
            for name in pf.netdevs:
                netdev_pci[name] = pf.address
            for vf in pf.vfs:
                if vf.netdev:
                    vf_netdevs[(pf.address, vf.index)] = vf.netdev
    return HostView(tuple(links), pf_netdevs, netdev_pci, vf_netdevs, totalvfs)


@dataclass(frozen=True, slots=True)
class VfPlan:
    vf: int
    want: VfSettings  # merged settings (shared between VFs; see ``mac`` for the MAC)
    mac: str | None  # the wanted MAC: explicit or derived
    have: VfState | None  # None: the VF does not exist yet / is recreated / was not listed
    change: VfChange | None  # None: already as configured


@dataclass(frozen=True, slots=True)
class PfPlan:
    entry: PfEntry
    link: LinkInfo
    pci: PciAddress | None
    numvfs_now: int
    numvfs_target: int
    numvfs_path: str  # relative to the sysfs root
    vfs: tuple[VfPlan, ...]  # managed VFs, by index
    missing: tuple[int, ...] = ()  # configured VFs that do not exist (after a numvfs change)

    @property
    def name(self) -> str:
        return self.link.name

    @property
    def numvfs_change(self) -> bool:
        return self.numvfs_target != self.numvfs_now

    @property
    def changes(self) -> list[VfChange]:
        return [v.change for v in self.vfs if v.change is not None]


@dataclass(frozen=True, slots=True)
class Collision:
    pf_key: str
    pf_name: str
    vf: int
    mac: str
    message: str  # "<file>: <key> = <value>: ..." ready to print


@dataclass(frozen=True, slots=True)
class Plan:
    pfs: tuple[PfPlan, ...]
    collisions: tuple[Collision, ...] = ()

    @property
    def changes(self) -> list[VfChange]:
        return [c for pf in self.pfs for c in pf.changes]


def diff_vf(
    pf: str | int, vf: int, want: VfSettings, have: VfState | None, *, mac: str | None = None
) -> VfChange | None:
    """The :class:`VfChange` that takes ``have`` to ``want`` (only what differs), or None.

    ``mac`` (when given) is the wanted MAC instead of ``want.mac``. The comparison itself is
    :func:`pyvfmac.settings.diff`."""
    if mac is not None and mac != want.mac:
        want = replace(want, mac=mac)
    left = diff(want, have)
    return None if left is None else VfChange.of(pf, vf, left)


def build_plan(
    cfg: Config, view: HostView, *, after_numvfs: bool = False,
    exclude: frozenset[str] = frozenset(),
) -> Plan:
    """Resolve every PF of ``cfg`` in ``view`` and compute the changes. Pure: no I/O.

    Raises :class:`ConfigError` (file, key, value) for an unknown PF, a PF configured twice, a VF
    index the PF cannot have, a numvfs above sriov_totalvfs, a PF whose MACs cannot be derived.
    MAC collisions are returned in ``Plan.collisions`` (the caller refuses or reports them).
    ``after_numvfs``: the VF counts were already changed; a configured VF that does not exist is
    listed in ``PfPlan.missing`` instead of raising. PFs whose key is in ``exclude`` are skipped.
    """
    ctx = _Ctx(cfg.path)
    by_name = {link.name: link for link in view.links}
    pfs: list[PfPlan] = []
    owner_of_ifindex: dict[int, str] = {}
    for entry in cfg.pfs:
        if entry.key in exclude:
            continue
        link, pci = _resolve_pf(ctx, entry, view, by_name)
        if link.ifindex in owner_of_ifindex:
            kind = "name" if entry.name is not None else "pci"
            raise ctx.error(
                f"{entry.key}.{kind}", entry.label,
                f"the same PF as {owner_of_ifindex[link.ifindex]} ({link.name})",
            )
        owner_of_ifindex[link.ifindex] = entry.key
        pfs.append(_plan_pf(ctx, cfg, entry, link, pci, view, after_numvfs))
    return Plan(tuple(pfs), tuple(_collisions(ctx, pfs, view)))


def _resolve_pf(
    ctx: _Ctx, entry: PfEntry, view: HostView, by_name: Mapping[str, LinkInfo]
) -> tuple[LinkInfo, PciAddress | None]:
    if entry.name is not None:
        link = by_name.get(entry.name)
        if link is None:
            raise ctx.error(f"{entry.key}.name", entry.name, "no such network device")
        pci = view.netdev_pci.get(link.name)
        if pci is None and link.parent_bus == "pci" and link.parent_dev:
            try:
                pci = PciAddress.parse(link.parent_dev)
            except PciAddressError:
                pci = None
        return link, pci
    pci = cast(PciAddress, entry.pci)
    key = f"{entry.key}.pci"
    netdevs = view.pf_netdevs.get(pci)
    if netdevs is None:
        what = ("a network function without SR-IOV" if pci in view.netdev_pci.values()
                else "not an SR-IOV network PF on this host")
        raise ctx.error(key, str(pci), what)
    present = [by_name[n] for n in netdevs if n in by_name]
    if not present:
        raise ctx.error(key, str(pci), "the PF has no network device (is its driver bound?)")
    if len(present) > 1:
        names = ", ".join(link.name for link in present)
        raise ctx.error(key, str(pci), f"the PF has several network devices ({names}): use name")
    return present[0], pci


def _numvfs_path(entry: PfEntry, link: LinkInfo, pci: PciAddress | None) -> str:
    if pci is not None:
        return f"bus/pci/devices/{pci}/sriov_numvfs"
    return f"class/net/{link.name}/device/sriov_numvfs"


def _plan_pf(
    ctx: _Ctx, cfg: Config, entry: PfEntry, link: LinkInfo, pci: PciAddress | None,
    view: HostView, after_numvfs: bool,
) -> PfPlan:
    now = link.num_vf or 0
    target = now if entry.numvfs is None or after_numvfs else entry.numvfs
    if entry.numvfs is not None and pci is not None and pci in view.totalvfs:
        total = view.totalvfs[pci]
        if entry.numvfs > total:
            raise ctx.error(
                f"{entry.key}.numvfs", entry.numvfs,
                f"{link.name} ({pci}) supports at most {total} VFs (sriov_totalvfs)",
            )
    wanted_count = entry.numvfs if entry.numvfs is not None else now
    missing: list[int] = []
    listed = {vf.index: vf for vf in entry.vfs}
    for vf in entry.vfs:
        if vf.index >= target:
            if after_numvfs:
                missing.append(vf.index)
                continue
            has = f"has {now} VFs (VF indexes 0..{now - 1})" if now else "has no VFs"
            raise ctx.error(f"{vf.key}.index", vf.index,
                            f"{link.name} {has}; set {entry.key}.numvfs")
    if after_numvfs and wanted_count > target:
        missing.extend(i for i in range(target, wanted_count) if i not in listed)
    derive = entry.mac_policy == "derived"
    identity = None
    if derive:
        identity = pf_identity(pci, link, entry.derive_from)
        if cfg.host_key is None:
            raise ctx.missing("defaults.host_key", "the host key was not read (use load_config)")
        if identity is None and entry.derive_from == "permanent-mac":
            raise ctx.error(f"{entry.key}.derive_from", "permanent-mac",
                            f"{link.name} has no permanent MAC (IFLA_PERM_ADDRESS)")
        if identity is None:
            raise ctx.error(
                f"{entry.key}.mac_policy", "derived",
                f"{link.name} has no PCI address, no permanent MAC and no parent device to "
                "derive stable MACs from; give each VF an explicit mac",
            )
    manage_all = derive or not entry.settings.empty()
    indexes: Iterable[int] = (range(target) if manage_all
                              else sorted(i for i in listed if i < target))
    have_by_index = {} if entry.numvfs is not None and entry.numvfs != now and not after_numvfs \
        else {s.vf: s for s in link.vfs}
    deriver = _Deriver(cfg.host_key, identity, entry.mac_prefix) if identity and cfg.host_key \
        else None
    pf_ref = link.ifindex
    plans: list[VfPlan] = []
    base = entry.settings
    base_empty = base.empty()  # then an unlisted VF wants at most its MAC: no full diff
    for i in indexes:
        vf_entry = listed.get(i)
        want = vf_entry.settings.over(base) if vf_entry is not None else base
        mac = want.mac
        if mac is None and deriver is not None:
            mac = deriver.mac(i)
        have = have_by_index.get(i)
        if vf_entry is None and base_empty:
            change = (None if mac is None or (have is not None and have.mac == mac)
                      else VfChange(pf=pf_ref, vf=i, mac=mac))
        else:
            change = diff_vf(pf_ref, i, want, have, mac=mac)
        plans.append(VfPlan(i, want, mac, have, change))
    return PfPlan(
        entry=entry, link=link, pci=pci, numvfs_now=now, numvfs_target=target,
        numvfs_path=_numvfs_path(entry, link, pci), vfs=tuple(plans),
        missing=tuple(sorted(set(missing))),
    )


def _collisions(ctx: _Ctx, pfs: Sequence[PfPlan], view: HostView) -> list[Collision]:
    """Wanted MACs that another VF also wants, or that stay on another device of the host."""
    # MACs that stay: every netdev's, every VF admin MAC not being replaced. A managed VF's own
    # admin MAC and its own VF netdev are not "other"; VFs about to be recreated vanish.
    # Owners are kept as (PF or netdev name, VF index or -1) and put in words only on a hit.
    replaced: dict[int, set[int]] = {}
    own_netdevs: set[str] = set()
    recreated: set[int] = set()
    for pf in pfs:
        if pf.numvfs_change:
            recreated.add(pf.link.ifindex)
        mine = replaced.setdefault(pf.link.ifindex, set())
        mine.update(v.vf for v in pf.vfs if v.mac is not None)
        if pf.pci is not None and view.vf_netdevs:
            for (pci, index), name in view.vf_netdevs.items():
                if pci == pf.pci and (index in mine or pf.numvfs_change):
                    own_netdevs.add(name)
    # Only MACs somebody wants can collide: the host's other MACs (thousands of VFs) are looked
    # up, not collected.
    wanted_macs = {v.mac for pf in pfs for v in pf.vfs if v.mac is not None}
    staying: dict[str, tuple[str, int]] = {}
    for link in view.links:
        if link.mac and link.mac != ZERO_MAC and link.name not in own_netdevs:
            netdev_mac = link.mac.lower()
            if netdev_mac in wanted_macs:
                staying.setdefault(netdev_mac, (link.name, -1))
        if link.ifindex in recreated:
            continue
        skip = replaced.get(link.ifindex, ())
        for st in link.vfs:
            if st.mac in wanted_macs and st.vf not in skip and st.mac != ZERO_MAC:
                staying.setdefault(st.mac, (link.name, st.vf))
    out: list[Collision] = []
    wanted: dict[str, tuple[str, int]] = {}
    for pf in pfs:
        name = pf.name
        for v in pf.vfs:
            mac = v.mac
            if mac is None:
                continue
            if mac in wanted or mac in staying:
                out.append(_collision(ctx, pf, v.vf, mac, wanted.get(mac), staying.get(mac)))
            else:
                wanted[mac] = (name, v.vf)
    return out


def _collision(
    ctx: _Ctx, pf: PfPlan, vf: int, mac: str, wanted: tuple[str, int] | None,
    staying: tuple[str, int] | None,
) -> Collision:
    who = f"{pf.name} vf {vf}"
    explicit = next((e.key for e in pf.entry.vfs if e.index == vf and e.settings.mac), None)
    if explicit is not None:
        key, value, lead = f"{explicit}.mac", mac, f"{who}: "
    else:
        key, value, lead = f"{pf.entry.key}.mac_policy", "derived", f"{who} gets {mac}, "
    if wanted is not None:
        other = f"wanted for {wanted[0]} vf {wanted[1]}"
    else:
        owner, index = cast(tuple[str, int], staying)
        other = (f"the MAC of netdev {owner}" if index < 0
                 else f"the admin MAC of {owner} vf {index}")
    return Collision(pf.entry.key, pf.name, vf, mac,
                     str(ctx.error(key, value, f"{lead}which is also {other}")))


# ---------------------------------------------------------------------------------------------
# sysfs: sriov_numvfs
# ---------------------------------------------------------------------------------------------


def wait_for_vfs(
    read: Any, pf: int, target: int, timeout: float, *,
    progress: Callable[[int, float], None] | None = None,
) -> LinkInfo:
    """Poll ``read(pf)`` (e.g. ``Rtnl.read_link``) until the PF lists ``target`` VFs or the
    ``timeout`` (seconds) is over; returns the last read. ``progress(listed, seconds)`` is
    called after every read that does not list them all yet."""
    start = time.monotonic()
    deadline = start + timeout
    pause = 0.02
    while True:
        link: LinkInfo = read(pf)
        if (link.num_vf or 0) == target and len(link.vfs) >= target:
            return link
        if progress is not None:
            progress(len(link.vfs), time.monotonic() - start)
        if time.monotonic() >= deadline:
            return link
        time.sleep(min(pause, max(0.0, deadline - time.monotonic())))
        pause = min(pause * 2, 0.5)


# ---------------------------------------------------------------------------------------------
# The report
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class VfFailure:
    pf: str
    vf: int | None  # None: the PF as a whole (sriov_numvfs)
    message: str


@dataclass(frozen=True, slots=True)
class PfReport:
    key: str
    name: str
    vfs: int
    changed: int  # applied and verified (dry run: would change)
    unchanged: int
    failed: int
    numvfs_before: int
    numvfs_after: int

    def line(self, dry_run: bool) -> str:
        numvfs = ""
        if self.numvfs_before != self.numvfs_after:
            verb = "would change" if dry_run else "changed"
            numvfs = f" (sriov_numvfs {verb} {self.numvfs_before} -> {self.numvfs_after})"
        if dry_run:
            return (f"{self.name}: {self.vfs} VFs, {self.changed} to change, "
                    f"{self.unchanged} unchanged{numvfs}")
        return (f"{self.name}: {self.vfs} VFs, {self.changed} changed, {self.unchanged} unchanged, "
                f"{self.failed} failed{numvfs}")


@dataclass(frozen=True, slots=True)
class ApplyReport:
    """What ``vfmac apply`` did. ``exit_status``: 0 when everything applied, 1 otherwise."""

    config_path: str
    dry_run: bool
    pfs: tuple[PfReport, ...]
    failures: tuple[VfFailure, ...]
    changes: tuple[VfChange, ...]  # planned (dry run) or sent

    @property
    def changed(self) -> int:
        return sum(p.changed for p in self.pfs)

    @property
    def ok(self) -> bool:
        return not self.failures

    @property
    def exit_status(self) -> int:
        return 0 if self.ok else 1

    def lines(self) -> list[str]:
        out = [p.line(self.dry_run) for p in self.pfs]
        out += [f"  {f.message}" for f in self.failures]
        n = self.changed
        if self.dry_run:
            out.append(f"dry run: {n} change{'s' * (n != 1)} would be made; nothing was changed")
        elif n == 0 and self.ok:
            out.append("0 changes: every VF is already as configured")
        else:
            out.append(f"{n} change{'s' * (n != 1)}, {len(self.failures)} failed")
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "config": self.config_path,
            "dry_run": self.dry_run,
            "ok": self.ok,
            "changed": self.changed,
            "pfs": [
                {f.name: getattr(p, f.name) for f in fields(PfReport)} for p in self.pfs
            ],
            "failures": [{"pf": f.pf, "vf": f.vf, "message": f.message} for f in self.failures],
        }


def describe_change(pf: PfPlan, v: VfPlan) -> str:
    """``eth0 vf 3: mac 52:54:00:aa:bb:01 -> 02:1f:...; vlan 0 -> 42 (qos 0, 802.1Q)``."""
    c, h = v.change, v.have
    assert c is not None
    parts: list[str] = []

    def was(value: object) -> str:
        if h is None:
            return "(new)"
        if isinstance(value, bool):
            return "on" if value else "off"
        return "?" if value is None else str(value)

    if c.mac is not None:
        parts.append(f"mac {was(h.mac if h else None)} -> {c.mac}")
    if c.vlan is not None:
        old = f"{h.vlan} (qos {h.qos}, {h.vlan_proto})" if h else was(None)
        parts.append(f"vlan {old} -> {c.vlan} (qos {c.qos}, {c.vlan_proto})")
    if c.spoofchk is not None:
        new = "on" if c.spoofchk else "off"
        parts.append(f"spoofchk {was(h.spoofchk if h else None)} -> {new}")
    if c.trust is not None:
        parts.append(f"trust {was(h.trust if h else None)} -> {'on' if c.trust else 'off'}")
    if c.link_state is not None:
        parts.append(f"state {was(h.link_state if h else None)} -> {c.link_state}")
    if c.min_tx_rate is not None or c.max_tx_rate is not None:
        old = f"{h.min_tx_rate}/{h.max_tx_rate}" if h else was(None)
        parts.append(f"rate {old} -> {c.min_tx_rate}/{c.max_tx_rate} Mbit/s (min/max)")
    return f"{pf.name} vf {v.vf}: " + "; ".join(parts)


def dry_run_lines(plan: Plan) -> list[str]:
    lines: list[str] = []
    for pf in plan.pfs:
        if pf.numvfs_change:
            lines.append(f"{pf.name}: would write {pf.numvfs_target} to {pf.numvfs_path} "
                         f"(now {pf.numvfs_now})")
        lines.extend(describe_change(pf, v) for v in pf.vfs if v.change is not None)
    return lines


def _pf_report(pf: PfPlan, before: int, vfs: int, changed: int, failed: int) -> PfReport:
    return PfReport(pf.entry.key, pf.name, vfs, changed, max(0, vfs - changed - failed), failed,
                    before, pf.numvfs_target)


def plan_report(cfg: Config, plan: Plan) -> ApplyReport:
    """The dry-run report of a plan (nothing applied)."""
    pfs = tuple(
        _pf_report(p, p.numvfs_now, p.numvfs_target, len(p.changes), 0) for p in plan.pfs
    )
    return ApplyReport(cfg.path, True, pfs, (), tuple(plan.changes))


# ---------------------------------------------------------------------------------------------
# The run
# ---------------------------------------------------------------------------------------------


Progress = Callable[[str], None]


def _no_progress(text: str) -> None:
    """The progress callback when nobody watches."""


def _result_message(result: VfResult) -> str:
    from .netlink import check_results

    try:
        check_results([result])
    except NetlinkError as exc:
        return str(exc)
    return f"{result.pf_name} vf {result.change.vf}: failed (errno {result.errno})"


def _collision_error(collisions: Sequence[Collision]) -> ConfigError:
    shown = [c.message for c in collisions[:20]]
    if len(collisions) > 20:
        shown.append(f"... and {len(collisions) - 20} more MAC collisions")
    return ConfigError("\n".join(shown))


def _scan(sysfs_root: str) -> Topology | None:
    from .topology import scan

    try:
        return scan(sysfs_root=sysfs_root)
    except SysfsError as exc:
        if exc.errno == errno.ENOENT:
            return None  # no PCI bus here (<root>/bus/pci missing): PFs by name still work
        raise


def needs_topology(cfg: Config, links: Iterable[LinkInfo]) -> bool:
    """Whether the plan needs the sysfs PCI scan: for PFs given by PCI address and for PCI PFs
    (their address, ``sriov_totalvfs``, their VFs' own netdevs). A config whose PFs are all named
    netdevs on another bus (netdevsim, ...) needs none; a PF whose parent bus the kernel did not
    say might be PCI, so it gets the scan. An unknown name needs none (the plan refuses it)."""
    bus = {link.name: link.parent_bus for link in links}
    for pf in cfg.pfs:
        if pf.name is None:
            return True
        if pf.name in bus and bus[pf.name] in (None, "pci"):
            return True
    return False


def _read_host(nl: Any, cfg: Config, sysfs_root: str) -> HostView:
    """One dump of every link, and the PCI scan only when the plan needs it."""
    links = nl.dump_links()
    return host_view(links, _scan(sysfs_root) if needs_topology(cfg, links) else None)


def _check_numvfs_files(cfg: Config, plan: Plan, sysfs_root: str) -> None:
    for pf in plan.pfs:
        path = os.path.join(sysfs_root, pf.numvfs_path)
        if pf.numvfs_change and not os.path.exists(path):
            raise ConfigError(
                f"{cfg.path}: {pf.entry.key}.numvfs = {pf.numvfs_target}: {pf.name} cannot "
                f"create VFs ({path} does not exist: not an SR-IOV PF)"
            )


def run_apply(
    config_path: str = DEFAULT_CONFIG,
    *,
    dry_run: bool = False,
    sysfs_root: str = "/sys",
    out: IO[str] | None = None,
    numvfs_timeout: float = 30.0,
    progress: Progress | None = None,
    pfs: Sequence[str] = (),
) -> ApplyReport:
    """``vfmac apply``: program every configured PF and VF; print and return the report.

    ``pfs`` (``--pf``, netdev names or PCI addresses): only the config's tables of those PFs,
    whichever way the config names them (:func:`select_pfs`); the same checks, plan,
    verification and report, for that part only.

    ConfigError (nothing changed) for a bad config, an unknown PF or a MAC collision.
    KernelError when the host cannot be read at all. Everything else is a failure in the report;
    the CLI exits with ``report.exit_status`` (0: all applied and verified, 1: any failure).
    ``progress`` (e.g. a status line at a terminal) is told what is going on; ``""`` at the end.

    Memory stays flat in the VF count where it can: the host is read in one dump that is
    dropped once planned (the plan keeps the configured PFs only), MAC-only PFs go through the
    bulk ``Rtnl.set_macs`` path, and each changed PF is read back alone for the verification.
    """
    cfg = load_config(config_path)
    stream = out if out is not None else sys.stdout
    if pfs:
        cfg, unknown = select_pfs(cfg, pfs, sysfs_root)
        for name in unknown:
            print(f"{name}: not in {cfg.path}: nothing to do", file=stream)
    return apply_config(cfg, dry_run=dry_run, sysfs_root=sysfs_root, out=stream,
                        numvfs_timeout=numvfs_timeout, progress=progress)


def _pf_names_and_pci(value: str, sysfs_root: str) -> tuple[set[str], set[PciAddress]]:
    """A ``--pf`` value's netdev names and PCI address, as far as sysfs tells."""
    names: set[str] = set()
    pcis: set[PciAddress] = set()
    try:
        pcis.add(PciAddress.parse(value))
    except PciAddressError:
        names.add(value)
        try:
            device = os.path.basename(os.readlink(
                os.path.join(sysfs_root, "class", "net", value, "device")))
            pcis.add(PciAddress.parse(device))
        except (OSError, PciAddressError):
            pass
    for pci in list(pcis):
        try:
            names.update(os.listdir(os.path.join(sysfs.pci_device_dir(sysfs_root, pci), "net")))
        except OSError:
            pass
    return names, pcis


def select_pfs(cfg: Config, wanted: Sequence[str], sysfs_root: str = "/sys"
               ) -> tuple[Config, list[str]]:
    """The config restricted to the PFs ``wanted`` names (netdev names or PCI addresses, matched
    against the config's ``name`` and ``pci`` keys through sysfs), and the wanted values that
    match no ``[[pf]]`` table."""
    keep: list[PfEntry] = []
    unknown: list[str] = []
    for value in wanted:
        names, pcis = _pf_names_and_pci(value, sysfs_root)
        hits = [e for e in cfg.pfs if (e.name is not None and e.name in names)
                or (e.pci is not None and e.pci in pcis)]
        if not hits:
            unknown.append(value)
        keep.extend(e for e in hits if e not in keep)
    order = {e.key: i for i, e in enumerate(cfg.pfs)}
    keep.sort(key=lambda e: order[e.key])
    return replace(cfg, pfs=tuple(keep)), unknown


def apply_config(
    cfg: Config,
    *,
    dry_run: bool = False,
    sysfs_root: str = "/sys",
    out: IO[str] | None = None,
    numvfs_timeout: float = 30.0,
    progress: Progress | None = None,
    held: Mapping[str, frozenset[int]] | None = None,
) -> ApplyReport:
    """:func:`run_apply` for a config already loaded (``vfmac watch`` keeps one in memory).
    ``held``: VF indexes by PF netdev name that the apply leaves alone (attached to guests)."""
    from .netlink import Rtnl

    stream = out if out is not None else sys.stdout
    say = progress if progress is not None else _no_progress
    if not cfg.pfs:
        return ApplyReport(cfg.path, dry_run, (), (), ())
    try:
        with Rtnl() as nl:
            say("reading the host's links")
            plan = build_plan(cfg, _read_host(nl, cfg, sysfs_root))
            if plan.collisions:
                raise _collision_error(plan.collisions)
            _check_numvfs_files(cfg, plan, sysfs_root)
            if dry_run:
                report = plan_report(cfg, plan)
                lines = dry_run_lines(plan) + report.lines()
            else:
                report = _apply_plan(nl, cfg, plan, sysfs_root, numvfs_timeout, say,
                                     held or {})
                lines = report.lines()
    finally:
        say("")
    for line in lines:
        print(line, file=stream)
    return report


def _apply_plan(
    nl: Any, cfg: Config, plan: Plan, sysfs_root: str, timeout: float, say: Progress,
    held: Mapping[str, frozenset[int]],
) -> ApplyReport:
    failures: list[VfFailure] = []
    # what the report needs of each PF as it was (not its VF list): key, name, ifindex, numvfs
    before = [(p.entry.key, p.name, p.link.ifindex, p.numvfs_now) for p in plan.pfs]
    now_of_failed: dict[str, int] = {}
    if any(p.numvfs_change for p in plan.pfs):
        failed_pfs = _apply_numvfs(nl, plan, sysfs_root, timeout, failures, say)
        say("reading the host's links again")
        view = _read_host(nl, cfg, sysfs_root)
        plan = build_plan(cfg, view, after_numvfs=True, exclude=failed_pfs)
        if failed_pfs:
            nums = {link.ifindex: link.num_vf or 0 for link in view.links}
            now_of_failed = {key: nums.get(ifindex, 0) for key, _name, ifindex, _n in before
                             if key in failed_pfs}
        del view  # the plan keeps what it needs of the second snapshot
        for pf in plan.pfs:
            failures.extend(
                VfFailure(pf.name, i, f"{pf.name} vf {i}: missing: the PF has "
                          f"{pf.link.num_vf or 0} VFs after {timeout:g} s")
                for i in pf.missing
            )
    blocked = {(c.pf_key, c.vf) for c in plan.collisions}
    failures.extend(VfFailure(c.pf_name, c.vf, c.message) for c in plan.collisions)
    sent: list[VfChange] = []
    reports: list[PfReport] = []
    numvfs_before = {key: numvfs for key, _name, _ifindex, numvfs in before}
    todo: list[tuple[PfPlan, list[VfPlan], bool]] = []
    for pf in plan.pfs:
        keep = held.get(pf.name, frozenset())
        vfs = [v for v in pf.vfs if v.change is not None and (pf.entry.key, v.vf) not in blocked
               and v.vf not in keep]
        todo.append((pf, vfs, all(_mac_only(cast(VfChange, v.change)) for v in vfs)))
    refused = _program(nl, todo, say)
    for pf, vfs, bulk in todo:
        sent.extend(cast(VfChange, v.change) for v in vfs)
        reports.append(_verify_pf(nl, pf, vfs, bulk, refused, failures,
                                  numvfs_before[pf.entry.key], say))
    done = {r.key for r in reports}
    for key, name, _ifindex, numvfs in before:  # PFs whose sriov_numvfs write failed
        if key not in done:  # (left out of the re-plan)
            now = now_of_failed.get(key, 0)
            reports.append(PfReport(key, name, now, 0, now, 1, numvfs, now))
    order = {key: i for i, (key, *_rest) in enumerate(before)}
    reports.sort(key=lambda r: order[r.key])
    return ApplyReport(cfg.path, False, tuple(reports), tuple(failures), tuple(sent))


def _mac_only(c: VfChange) -> bool:
    return (c.mac is not None and c.vlan is None and c.spoofchk is None and c.trust is None
            and c.link_state is None and c.min_tx_rate is None and c.max_tx_rate is None)


def _program(
    nl: Any, todo: Sequence[tuple[PfPlan, Sequence[VfPlan], bool]], say: Progress
) -> dict[tuple[int, int], str]:
    """Send every change: a PF whose changes are all MAC-only (``bulk``) through the bulk
    ``set_macs`` path, everything else in one batched ``apply``. Returns the kernel's refusals,
    as messages, by (PF ifindex, VF)."""
    total = sum(len(vfs) for _pf, vfs, _bulk in todo)
    if total:
        pfs = sum(1 for _pf, vfs, _bulk in todo if vfs)
        say(f"programming {total} VF{'s' * (total != 1)} on {pfs} PF{'s' * (pfs != 1)}")
    refused: dict[tuple[int, int], str] = {}
    general: list[VfChange] = []
    for pf, vfs, bulk in todo:
        if not vfs:
            continue
        if bulk:
            macs = {v.vf: cast(str, v.mac) for v in vfs}
            for vf, err in nl.set_macs(pf.link.ifindex, macs).items():
                refused[(pf.link.ifindex, vf)] = str(err)
        else:
            general.extend(cast(VfChange, v.change) for v in vfs)
    if general:
        for r in nl.apply(general):
            if not r.ok:
                refused[(cast(int, r.change.pf), r.change.vf)] = _result_message(r)
    return refused


def _verify_pf(
    nl: Any, pf: PfPlan, vfs: Sequence[VfPlan], bulk: bool, refused: Mapping[tuple[int, int], str],
    failures: list[VfFailure], numvfs_before: int, say: Progress,
) -> PfReport:
    """Read one PF back (only when something was sent to it) and count its VFs. ``bulk``: every
    change of ``vfs`` is MAC-only, so the MAC is all there is to compare."""
    ifindex = pf.link.ifindex
    failed_keys = {f.vf for f in failures if f.pf == pf.name}
    failed = len(pf.missing) + sum(1 for v in pf.vfs if v.vf in failed_keys)
    changed = 0
    num_vf = pf.link.num_vf or 0
    if vfs:
        say(f"{pf.name}: reading back {len(vfs)} VF{'s' * (len(vfs) != 1)}")
        unread = ""
        try:
            link = nl.read_link(ifindex, strict=False)
        except NetlinkError as exc:
            link = None
            unread = f"cannot read back: {exc}"
        states = {s.vf: s for s in link.vfs} if link is not None else {}
        if link is not None:
            num_vf = link.num_vf or 0
        for v in vfs:
            message = refused.get((ifindex, v.vf))
            if message is None and link is None:
                message = f"{pf.name} vf {v.vf}: {unread}"
            if message is None:
                state = states.get(v.vf)
                if bulk and state is not None:
                    left = None if state.mac == v.mac else VfChange(pf=ifindex, vf=v.vf, mac=v.mac)
                else:
                    left = diff_vf(ifindex, v.vf, v.want, state, mac=v.mac)
                if left is None:
                    changed += 1
                    continue
                message = _verify_message(pf.name, v.vf, left)
            failures.append(VfFailure(pf.name, v.vf, message))
            failed += 1
    return _pf_report(pf, numvfs_before, num_vf, changed, failed)


def _apply_numvfs(
    nl: Any, plan: Plan, sysfs_root: str, timeout: float, failures: list[VfFailure],
    say: Progress = _no_progress,
) -> frozenset[str]:
    """Change sriov_numvfs where needed; returns the keys of PFs that failed."""
    failed: set[str] = set()
    for pf in plan.pfs:
        if not pf.numvfs_change:
            continue
        say(f"{pf.name}: sriov_numvfs {pf.numvfs_now} -> {pf.numvfs_target}")
        try:
            sysfs.set_numvfs(os.path.join(sysfs_root, pf.numvfs_path), pf.numvfs_now,
                       pf.numvfs_target, device=pf.name)
        except SysfsError as exc:
            failures.append(VfFailure(pf.name, None, str(exc)))
            failed.add(pf.entry.key)
            continue
        name, target = pf.name, pf.numvfs_target
        wait_for_vfs(lambda dev: nl.read_link(dev, strict=False), pf.link.ifindex, target,
                     timeout, progress=lambda n, t: say(
                         f"{name}: waiting for {target} VFs ({n} so far, {t:.1f} s)"))
    return frozenset(failed)


def _verify_message(pf: str, vf: int, left: VfChange) -> str:
    wrong = [
        f"{name} {getattr(left, name)}" for name in ("mac", "vlan", "spoofchk", "trust",
                                                     "link_state", "max_tx_rate")
        if getattr(left, name) is not None
    ]
    return (f"{pf} vf {vf}: the kernel accepted the change but reads back differently "
            f"(still not: {', '.join(wrong)})")
