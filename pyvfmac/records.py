"""What the state store records: VF keys, saved originals, attachments, allocations, networks,
and whether the process working on a record still runs.

VF keys: a VF is identified by ``vf_key``, a string. For a PCI VF it is its canonical PCI address
(``0000:06:10.0``); for a VF that is not a PCI device (netdevsim) it is ``<pf-netdev>/vf<N>``
(``eni0np1/vf3``). :func:`canonical_vf_key` checks and normalises both spellings; :func:`vf_key`
builds one.

Attach progress: a record starts in phase ``saved`` (its original saved *before* anything on the
host changes) and goes through ``mac-set``, ``unbound``, ``bound`` to ``attached``
(:data:`ATTACH_PHASES`); detach moves it to ``detaching`` and, after a verified restore, drops it.
A record not in phase ``attached`` is *incomplete*; each record carries the pid (and the process
start time, to survive pid reuse) of the process working on it, so ``recover`` can tell a crash
(:meth:`Attachment.worker_alive` is False) from work in progress.

The records are values; :class:`pyvfmac.store.Store` keeps them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .errors import InputError
from .mac import parse_mac
from .settings import LABELS, SETTINGS, VfState, check, int_problem
from .types import PciAddress, validate_netdev_name

__all__ = [
    "ATTACH_PHASES",
    "PHASES",
    "Allocation",
    "Attachment",
    "NetworkRecord",
    "Original",
    "PodLink",
    "canonical_vf_key",
    "check_phase",
    "check_text",
    "process_alive",
    "process_start_time",
    "vf_key",
]

ATTACH_PHASES: tuple[str, ...] = ("saved", "mac-set", "unbound", "bound", "attached")
PHASES: tuple[str, ...] = ATTACH_PHASES + ("detaching",)

_NETDEV_KEY = r"(?P<pf>[^\s/]+)/vf(?P<vf>[0-9]{1,5})"  # compiled by re on first use
_VF_INDEX_MAX = 65535


# ----------------------------------------------------------------------------- VF keys


def vf_key(address: PciAddress | str | None = None, *, pf: str | None = None,
           vf: int | None = None) -> str:
    """The key of a VF: its canonical PCI address, or ``<pf>/vf<N>`` when it has none."""
    if address is not None:
        return str(address) if isinstance(address, PciAddress) else str(PciAddress.parse(address))
    if pf is None or vf is None:
        raise InputError("VF key: give a PCI address, or both the PF netdev and the VF index")
    return canonical_vf_key(f"{pf}/vf{vf}")


def canonical_vf_key(key: str) -> str:
    """Check a VF key and return its canonical spelling (lowercase full PCI address, or
    ``<pf-netdev>/vf<N>`` without leading zeros); :class:`InputError` naming the value."""
    if not isinstance(key, str):
        raise InputError(f"VF key {key!r}: not a string")
    if "/" not in key:
        try:
            return str(PciAddress.parse(key))
        except InputError:
            pass
    else:
        m = re.fullmatch(_NETDEV_KEY, key)
        if m is not None:
            try:
                pf = validate_netdev_name(m["pf"], what="PF netdev name in VF key")
            except InputError as exc:
                raise InputError(f"VF key {key!r}: {exc}") from None
            return f"{pf}/vf{int(m['vf'])}"
    raise InputError(
        f"VF key {key!r}: expected a PCI address (0000:06:10.0) or <pf-netdev>/vf<N> (eth3/vf2)"
    )


# ----------------------------------------------------------------------------- checks


def check_text(what: str, value: object, limit: int = 4096) -> str:
    """A non-empty string without NUL of at most ``limit`` characters (owners, network XML)."""
    if not isinstance(value, str) or not value or len(value) > limit or "\x00" in value:
        raise InputError(f"{what} {value!r}: must be a non-empty string of at most {limit} chars")
    return value


def check_phase(phase: object) -> str:
    """One of :data:`PHASES`."""
    if phase not in PHASES:
        raise InputError(f"attach phase {phase!r}: not one of {', '.join(PHASES)}")
    assert isinstance(phase, str)
    return phase


def _check_driver(value: object) -> None:
    if value is None:
        return
    if (not isinstance(value, str) or not value or len(value) > 255
            or any(c == "/" or c.isspace() or not c.isprintable() for c in value)):
        raise InputError(f"original driver {value!r}: not a driver name")


# ----------------------------------------------------------------------------- records

# How a saved original names its settings: "0000:06:10.0: original VLAN 4096: ..."
_ORIGINAL_LABELS = {**LABELS, "vlan": "VLAN", "qos": "qos"}
_KNOWN = ("mac", "vlan", "qos", "vlan_proto", "min_tx_rate", "max_tx_rate")


@dataclass(frozen=True, slots=True, kw_only=True)
class Original(VfState):
    """A VF's state as saved before pyvfmac touched it (its settings, its index ``vf``), and
    where it was: everything needed to put it back exactly.

    ``vf_key`` is canonicalised (see :func:`canonical_vf_key`); ``mac`` (the admin MAC given
    through the PF, often all-zero) and ``netdev_mac`` are canonicalised MACs. ``netdev`` and
    ``netdev_mac`` describe the VF's own netdev when a host driver held it; ``driver`` is the driver
    bound at save time (None: unbound).
    """

    vf_key: str
    pf: str
    netdev: str | None = None
    netdev_mac: str | None = None
    driver: str | None = None

    @classmethod
    def of(cls, state: VfState, *, vf_key: str, pf: str, netdev: str | None = None,
           netdev_mac: str | None = None, driver: str | None = None) -> Original:
        """The original of a VF now in ``state``."""
        return cls(vf_key=vf_key, pf=pf, vf=state.vf, netdev=netdev, netdev_mac=netdev_mac,
                   driver=driver, **{name: getattr(state, name) for name in SETTINGS})

    def __post_init__(self) -> None:
        object.__setattr__(self, "vf_key", canonical_vf_key(self.vf_key))
        validate_netdev_name(self.pf, what=f"{self.vf_key}: original PF netdev name")
        where = f"{self.vf_key}: original"
        reason = int_problem(self.vf, 0, _VF_INDEX_MAX)
        if reason is not None:
            raise InputError(f"{where} VF index {self.vf!r}: {reason}")
        for name in _KNOWN:
            if getattr(self, name) is None:
                raise InputError(f"{where} {_ORIGINAL_LABELS[name]} None: must be known")
        settings = check(self.only(), where, allow_zero_mac=True, labels=_ORIGINAL_LABELS,
                         sep=" ")
        object.__setattr__(self, "mac", settings.mac)
        if self.netdev is not None:
            validate_netdev_name(self.netdev, what=f"{where} VF netdev name")
        if self.netdev_mac is not None:
            object.__setattr__(self, "netdev_mac", parse_mac(
                self.netdev_mac, allow_zero=True, what=f"{where} VF netdev MAC"))
        _check_driver(self.driver)


@dataclass(frozen=True, slots=True)
class Attachment:
    """One VF pyvfmac holds: its saved original and the progress of its attach / detach.

    ``owner`` identifies the guest device holding it (e.g. network + MAC, or file + index);
    ``mac`` is the fixed MAC given; ``phase`` one of :data:`PHASES`; ``pid`` / ``pid_start`` the
    process working on it (the last one to change the phase) and its start time in clock ticks
    since boot (None when unknown). ``port_profile`` / ``port_instance``: the 802.1Qbh port
    profile (and instance UUID) the VF may have associated -- recorded before the request and
    cleared when the driver refused it or it was disassociated; None: nothing to disassociate.
    ``port_known`` is False for a record written before pyvfmac recorded profiles (state store
    schema 1): its profile, if any, is the one its document gives.
    """

    vf_key: str
    original: Original
    owner: str
    mac: str
    managed: bool
    network: str | None
    phase: str
    pid: int
    created: float
    updated: float
    pid_start: int | None = None
    port_profile: str | None = None
    port_instance: str | None = None
    port_known: bool = True

    @property
    def complete(self) -> bool:
        return self.phase == "attached"

    def worker_alive(self) -> bool:
        """Whether the process that last worked on this record still runs (pid reuse checked)."""
        return process_alive(self.pid, self.pid_start)


@dataclass(frozen=True, slots=True)
class Allocation:
    """A VF of a network's pool given to a guest device (``owner``, fixed ``mac``)."""

    network: str
    vf_key: str
    owner: str
    mac: str
    pid: int
    created: float
    pid_start: int | None = None

    def worker_alive(self) -> bool:
        """Whether the allocating process still runs (pid reuse checked)."""
        return process_alive(self.pid, self.pid_start)


@dataclass(frozen=True, slots=True)
class PodLink:
    """Where vfmac-cni put a VF's netdev, beside its attachment record: the pod's network
    namespace, and the netdev's MTU and up flag before (None: unknown), which the saved original
    does not hold. A restore brings the netdev home from ``netns`` and puts both back."""

    vf_key: str
    netns: str
    mtu: int | None
    up: bool | None


@dataclass(frozen=True, slots=True)
class NetworkRecord:
    """A defined network. ``pool`` holds the resolved VF keys, in pool order, while started."""

    name: str
    xml: str
    started: bool
    pool: tuple[str, ...]


# ----------------------------------------------------------------------------- processes


def process_start_time(pid: int) -> int | None:
    """Start time of ``pid`` in clock ticks since boot (``/proc/PID/stat`` field 22); None if the
    process does not exist (or is a zombie)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            text = f.read().decode("ascii", "replace")
    except OSError:
        return None
    fields = text[text.rindex(")") + 2:].split()
    if len(fields) < 20 or fields[0] in ("Z", "X"):
        return None
    return int(fields[19])


def process_alive(pid: int, start: int | None = None) -> bool:
    """True if ``pid`` runs and, when ``start`` is given, started at that time (not a reused pid)."""
    if pid <= 0:
        return False
    now = process_start_time(pid)
    if now is None:
        return False
    return start is None or now == start
