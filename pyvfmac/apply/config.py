"""The ``vfmac apply`` configuration: TOML schema, parsing and validation (no host needed).

The configuration file (TOML, default ``/etc/pyvfmac/vfmac.toml``)::

    [defaults]                      # optional; every key optional
    host_key = "/etc/machine-id"    # file whose content keys the derived MACs
    mac_prefix = "02:00"            # derived MACs start with these 1-3 octets (default: none)
    mac_policy = "derived"          # "keep" (default) or "derived", for every PF below
    derive_from = "pci"             # "pci" (default) or "permanent-mac": what derived MACs hang on
    spoofchk = true                 # VF settings: defaults for every VF of every PF below

    [[pf]]
    name = "enp3s0f0"               # or: pci = "0000:03:00.0" -- exactly one of the two
    numvfs = 16                     # optional: create that many VFs (sriov_numvfs) when different
    mac_policy = "derived"          # every VF without an explicit mac gets a derived stable MAC
    vlan_proto = "802.1Q"           # VF settings: defaults for every VF of this PF

    [[pf.vf]]
    index = 3
    program_held = true             # program this VF even while another owner holds it
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

A VF held by another owner (libvirt's guest on vfio-pci, a pod's netdev moved by another CNI
plugin, a ``driver_override``: :mod:`pyvfmac.owners`) or attached by pyvfmac is left alone and
reported, except at boot (``vfmac apply --boot``) and where ``program_held = true`` (in
``[defaults]``, a ``[[pf]]`` or a ``[[pf.vf]]`` table; the most specific wins) asks to program
it anyway. VFs pyvfmac attached are always left alone while attached.

How ``mac_policy = "derived"`` MACs are made: :mod:`pyvfmac.apply.derive`. Every error is a
:class:`~pyvfmac.errors.ConfigError` naming the file, the key path and the value (a file that
cannot be read at all: a :class:`~pyvfmac.errors.FileError`, ``PATH: cannot read: REASON``, the
form of every command's file errors). The limits of the VF settings are those of
:mod:`pyvfmac.settings` (one place for every user of them).
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal, cast

from ..errors import ConfigError, FileError, MacError, PciAddressError
from ..mac import parse_mac
from ..settings import LINK_STATES, SETTINGS, VLAN_PROTOS, VfSettings, int_problem, problem
from ..types import PciAddress, validate_netdev_name

DEFAULT_CONFIG = "/etc/pyvfmac/vfmac.toml"
DEFAULT_HOST_KEY = "/etc/machine-id"
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
    program_held: bool | None = None  # None: as the PF says


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
    derive_from: DeriveFrom = "pci"  # the PF identity derived MACs hang on (apply.derive)
    program_held: bool = False  # program VFs another owner holds ([defaults], then this table)

    @property
    def label(self) -> str:
        return self.name if self.name is not None else str(self.pci)

    def programs_held(self, vf: int) -> bool:
        """Whether VF ``vf`` is programmed even while another owner holds it."""
        for entry in self.vfs:
            if entry.index == vf and entry.program_held is not None:
                return entry.program_held
        return self.program_held


@dataclass(frozen=True, slots=True)
class Config:
    """A whole config file: its PFs, and the host key derived MACs are made from."""

    path: str
    pfs: tuple[PfEntry, ...]
    host_key_path: str = DEFAULT_HOST_KEY
    host_key: bytes | None = field(default=None, repr=False)  # read only when a PF derives

    def needs_host_key(self) -> bool:
        return any(pf.mac_policy == "derived" for pf in self.pfs)


# ---------------------------------------------------------------------------------------------
# Parsing and validation
# ---------------------------------------------------------------------------------------------

_SETTING_KEYS = tuple(name for name in SETTINGS if name != "mac")  # a MAC is given per VF
_DEFAULTS_KEYS = ("host_key", "mac_prefix", "mac_policy", "derive_from", "program_held",
                  *_SETTING_KEYS)
_PF_KEYS = ("name", "pci", "numvfs", "mac_policy", "mac_prefix", "derive_from", "program_held",
            *_SETTING_KEYS, "vf")
_VF_KEYS = ("index", "mac", "program_held", *_SETTING_KEYS)
_TOP_KEYS = ("defaults", "pf")


def show(value: object) -> str:
    """A value as TOML would spell it, for error messages."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        import json  # error messages only: not on every run's import path

        # a message stays one readable line whatever the value's length
        return json.dumps(value) if len(value) <= 80 else json.dumps(value[:77]) + "..."
    if isinstance(value, dict):
        return "(a table)"
    if isinstance(value, list):
        return "(an array)"
    return repr(value)


class ConfigCtx:
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
        reason = int_problem(value, lo, hi)
        if reason is not None:
            raise self.error(key, value, reason)
        return cast(int, value)

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


_CHOICES: dict[str, Sequence[str]] = {"vlan_proto": tuple(VLAN_PROTOS), "link_state": LINK_STATES}
_BOOLS = ("spoofchk", "trust")


def _parse_settings(ctx: ConfigCtx, table: Mapping[str, Any], where: str) -> VfSettings:
    """The VF settings of one table; their limits are :func:`pyvfmac.settings.problem`'s,
    choices spelled in any case as TOML users do (``"802.1AD"``), booleans as TOML's."""
    vals: dict[str, Any] = {}
    for name in _SETTING_KEYS:
        if name not in table:
            continue
        value, key = table[name], f"{where}.{name}" if where else name
        if name in _CHOICES:
            vals[name] = ctx.choice(value, key, _CHOICES[name])
        elif name in _BOOLS:
            vals[name] = ctx.boolean(value, key)
        else:
            reason = problem(name, value)
            if reason is not None:
                raise ctx.error(key, value, reason)
            vals[name] = value
    return VfSettings(**vals)


def _check_merged(ctx: ConfigCtx, merged: VfSettings, own: Mapping[str, Any], where: str) -> None:
    """Consistency of a VF's (or a PF level's) merged settings, blaming keys of ``own``."""
    lo, hi = merged.min_tx_rate, merged.max_tx_rate
    if lo is not None and hi is not None and hi != 0 and lo > hi:
        k = "min_tx_rate" if "min_tx_rate" in own else "max_tx_rate"
        value = lo if k == "min_tx_rate" else hi
        raise ctx.error(
            f"{where}.{k}", value, f"min_tx_rate {lo} is above max_tx_rate {hi} (0 = no limit)"
        )


def _parse_prefix(ctx: ConfigCtx, value: object, key: str) -> bytes:
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
    ctx = ConfigCtx(path)
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
    derive_from = _derive_from(ctx, defaults, "defaults", "pci")
    base = _parse_settings(ctx, defaults, "defaults")
    _check_merged(ctx, base, defaults, "defaults")

    raw_pfs = doc.get("pf", [])
    if not isinstance(raw_pfs, list):
        raise ctx.error("pf", raw_pfs, "must be an array of tables ([[pf]])")
    held = (ctx.boolean(defaults["program_held"], "defaults.program_held")
            if "program_held" in defaults else False)
    pfs = tuple(
        _parse_pf(ctx, raw, f"pf[{i}]", base, policy, prefix, derive_from, held)
        for i, raw in enumerate(raw_pfs)
    )
    _check_duplicate_pfs(ctx, pfs)
    _check_explicit_macs(ctx, pfs)
    return Config(path=path, pfs=pfs, host_key_path=host_key_path)


def _derive_from(ctx: ConfigCtx, table: Mapping[str, Any], where: str,
                 default: DeriveFrom) -> DeriveFrom:
    if "derive_from" not in table:
        return default
    return cast(DeriveFrom, ctx.choice(table["derive_from"], f"{where}.derive_from", DERIVE_FROM))


def _parse_pf(
    ctx: ConfigCtx, raw: object, where: str, base: VfSettings, policy: MacPolicy, prefix: bytes,
    derive_from: DeriveFrom = "pci", program_held: bool = False,
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
    derive_from = _derive_from(ctx, table, where, derive_from)
    if "program_held" in table:
        program_held = ctx.boolean(table["program_held"], f"{where}.program_held")
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
        settings=settings, vfs=tuple(vfs), derive_from=derive_from, program_held=program_held,
    )


def _parse_vf(ctx: ConfigCtx, raw: object, where: str, pf_settings: VfSettings) -> VfEntry:
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
    held = (ctx.boolean(table["program_held"], f"{where}.program_held")
            if "program_held" in table else None)
    return VfEntry(key=where, index=index, settings=own, program_held=held)


def _check_duplicate_pfs(ctx: ConfigCtx, pfs: Sequence[PfEntry]) -> None:
    seen: dict[str | PciAddress, str] = {}
    for pf in pfs:
        ident: str | PciAddress = pf.name if pf.name is not None else cast(PciAddress, pf.pci)
        kind = "name" if pf.name is not None else "pci"
        if ident in seen:
            raise ctx.error(f"{pf.key}.{kind}", str(ident),
                            f"PF configured twice (also {seen[ident]})")
        seen[ident] = pf.key


def _check_explicit_macs(ctx: ConfigCtx, pfs: Sequence[PfEntry]) -> None:
    owners: dict[str, str] = {}
    for pf in pfs:
        for vf in pf.vfs:
            mac = vf.settings.mac
            if mac is None:
                continue
            if mac in owners:
                raise ctx.error(f"{vf.key}.mac", mac, f"MAC used twice (also {owners[mac]}.mac)")
            owners[mac] = vf.key


MAX_CONFIG = 16 << 20  # bytes: a config naming 100 000 VFs is about 5 MiB


def read_toml(path: str) -> dict[str, Any]:
    try:
        with open(path, "rb") as fh:
            data = fh.read(MAX_CONFIG + 1)
        if len(data) > MAX_CONFIG:
            raise ConfigError(f"{path}: larger than {MAX_CONFIG >> 20} MiB: not a vfmac config")
        return tomllib.loads(data.decode("utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: not UTF-8 at byte {exc.start}") from None
    except RecursionError:
        raise ConfigError(f"{path}: not valid TOML: arrays or tables nested too deeply") from None
    except OSError as exc:
        raise FileError(exc.errno or 0, "cannot read", path) from None


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
