"""The settings a VF can have: one model, one validator, one comparison, one description.

A VF's settings (given through its PF over rtnetlink) are its admin MAC, VLAN id / qos /
protocol, spoof checking, trust, link state and TX rate limits. :class:`VfSettings` holds them,
every one optional (``None``: not given, leave as it is). Everything else that speaks of a VF's
settings is this class or a subclass of it:

- :class:`VfState`: what the kernel reports for one VF (every value known, ``vf`` its index);
- :class:`VfChange`: settings to give one VF of one PF (``pf``, ``vf``);
- the boot configuration's per-PF and per-VF settings (``pyvfmac.apply.config``) are
  :class:`VfSettings`, merged with :meth:`VfSettings.over`;
- a saved original (``pyvfmac.records.Original``) is a :class:`VfState` plus where the VF was.

One validator (:func:`check`, with :func:`problem` for the reason of one value), one comparison
(:func:`diff`: what to send to take a VF from what it has to what is wanted), one account of a
change the kernel refused part-way (:func:`refusal`, in the kernel's order :data:`KERNEL_ORDER`)
and one description serve all of them: every message, ``vfmac set``'s words, ``vfmac apply``'s
plan and read-back names settings from one table (:data:`NAMES`) and shows them in one order
(:func:`describe` in sentences, :func:`describe_diff` for a change against what a VF has,
:func:`words` in ``vfmac set``'s words). The C core has the one encoder (``csrc/``), which
``pyvfmac.netlink`` hands the checked settings.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields, replace
from operator import attrgetter

from .errors import InputError
from .mac import ZERO_MAC, is_canonical, parse_mac

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (mypy: always_true)
if TYPE_CHECKING:  # type aliases: for annotations only (typing is not imported at run time)
    from typing import Literal, TypeVar

    LinkState = Literal["auto", "enable", "disable"]
    VlanProto = Literal["802.1Q", "802.1ad"]
    _S = TypeVar("_S", bound="VfSettings")

LINK_STATES: tuple[LinkState, ...] = ("auto", "enable", "disable")
"""The link states, by their number in IFLA_VF_LINK_STATE (auto 0, enable 1, disable 2): the
one spelling, which the C core's reads and changes and every configuration use."""
VLAN_PROTOS: dict[VlanProto, int] = {"802.1Q": 0x8100, "802.1ad": 0x88A8}
DEFAULT_VLAN_PROTO: VlanProto = "802.1Q"

VLAN_MAX = 4095
QOS_MAX = 7
RATE_MAX = 0xFFFFFFFF  # Mbit/s, u32 in IFLA_VF_RATE
VF_MAX = 0x7FFFFFFE  # the largest VF index the C core accepts


@dataclass(frozen=True, slots=True, kw_only=True)
class VfSettings:
    """Settings of one VF; ``None`` means "not given: leave as it is".

    ``vlan=0`` means untagged; ``qos`` and ``vlan_proto`` go with a ``vlan``. TX rates are in
    Mbit/s, 0 = no limit; the kernel takes min and max together (a change that gives one is
    completed from the VF's current state).
    """

    mac: str | None = None
    vlan: int | None = None
    qos: int | None = None
    vlan_proto: VlanProto | None = None
    spoofchk: bool | None = None
    trust: bool | None = None
    link_state: LinkState | None = None
    min_tx_rate: int | None = None
    max_tx_rate: int | None = None

    def over(self, base: VfSettings) -> VfSettings:
        """These settings, completed by ``base`` where not given here."""
        return VfSettings(**{
            name: mine if (mine := getattr(self, name)) is not None else getattr(base, name)
            for name in SETTINGS
        })

    def only(self) -> VfSettings:
        """Just the settings (a plain :class:`VfSettings`, without what a subclass adds)."""
        return VfSettings(**{name: getattr(self, name) for name in SETTINGS})

    def empty(self) -> bool:
        """Whether no setting is given."""
        return all(getattr(self, name) is None for name in SETTINGS)

    def mac_only(self) -> bool:
        """Whether the MAC is given and nothing else."""
        return self.mac is not None and _OTHERS(self) == _NO_OTHERS


SETTINGS: tuple[str, ...] = tuple(f.name for f in fields(VfSettings))
"""The names of the settings, in their canonical order."""
_OTHERS = attrgetter(*SETTINGS[1:])  # every setting but the MAC, read in one call
_NO_OTHERS = (None,) * (len(SETTINGS) - 1)


@dataclass(frozen=True, slots=True, kw_only=True)
class VfState(VfSettings):
    """One VF as its PF reports it (RTM_GETLINK, IFLA_VF_INFO): every setting known, except
    spoofchk / trust / link state, which a driver may not report (``None``)."""

    vf: int
    mac: str
    vlan: int = 0
    qos: int = 0
    vlan_proto: VlanProto = DEFAULT_VLAN_PROTO
    min_tx_rate: int = 0
    max_tx_rate: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class VfChange(VfSettings):
    """Settings to give VF ``vf`` of PF ``pf`` (a netdev name or ifindex). ``None`` leaves a
    setting as it is; ``allow_zero_mac`` permits 00:00:00:00:00:00 (restoring an original that
    was all-zero)."""

    pf: str | int
    vf: int
    allow_zero_mac: bool = False

    @classmethod
    def of(cls, pf: str | int, vf: int, settings: VfSettings, *,
           allow_zero_mac: bool = False) -> VfChange:
        """The change that gives ``settings`` to VF ``vf`` of ``pf``."""
        return cls(pf=pf, vf=vf, allow_zero_mac=allow_zero_mac,
                   **{name: getattr(settings, name) for name in SETTINGS})


# ---------------------------------------------------------------------------- validation

_INT_RANGES: dict[str, tuple[str, int]] = {
    "vlan": ("VLAN id", VLAN_MAX),
    "qos": ("VLAN qos", QOS_MAX),
    "min_tx_rate": ("min_tx_rate", RATE_MAX),
    "max_tx_rate": ("max_tx_rate", RATE_MAX),
}
NAMES: dict[str, tuple[str, str]] = {
    # setting: (how a message about its value names it, its word in ``vfmac set``)
    "mac": ("MAC", "mac"),
    "vlan": ("VLAN id", "vlan"),
    "qos": ("VLAN qos", "qos"),
    "vlan_proto": ("VLAN protocol", "proto"),
    "spoofchk": ("spoofchk", "spoofchk"),
    "trust": ("trust", "trust"),
    "link_state": ("link state", "state"),
    "min_tx_rate": ("min_tx_rate", "min_tx_rate"),
    "max_tx_rate": ("max_tx_rate", "max_tx_rate"),
}
"""How each setting is named: the one table every message and description takes names from."""
LABELS: dict[str, str] = {name: label for name, (label, _) in NAMES.items()}
"""How messages name each setting (``VLAN id 4096: out of range``)."""
WORDS: dict[str, str] = {name: word for name, (_, word) in NAMES.items()}
"""Each setting's word in ``vfmac set`` and in :func:`words` (``state auto``)."""


def is_int_in(value: object, low: int, high: int) -> bool:
    """An ``int`` (not a ``bool``) in ``low..high``."""
    return type(value) is int and low <= value <= high


def int_problem(value: object, low: int, high: int) -> str | None:
    """Why ``value`` is not an integer in ``low..high`` (None when it is)."""
    if not isinstance(value, int) or isinstance(value, bool):
        return f"must be an integer in {low}..{high}"
    if not low <= value <= high:
        return f"out of range {low}..{high}"
    return None


def problem(name: str, value: object) -> str | None:
    """Why ``value`` is not a valid value of setting ``name`` (None when it is, or is None).

    The reason alone, without the setting's name or value: callers say where it came from (a VF
    of a PF, a key of the boot configuration, a saved record). MACs are checked by
    :func:`check` (spellings are canonicalised there)."""
    if value is None:
        return None
    if name in _INT_RANGES:
        return int_problem(value, 0, _INT_RANGES[name][1])
    if name == "vlan_proto":
        return None if value in VLAN_PROTOS else f"use one of {', '.join(VLAN_PROTOS)}"
    if name == "link_state":
        return None if value in LINK_STATES else f"use one of {', '.join(LINK_STATES)}"
    if name in ("spoofchk", "trust"):
        return None if isinstance(value, bool) else "must be on/off (a bool)"
    return None


def check(settings: _S, where: str, *, allow_zero_mac: bool = False,
          labels: Mapping[str, str] = LABELS, sep: str = ": ") -> _S:
    """Check every setting given; return the settings with the MAC in canonical form.

    :class:`~pyvfmac.errors.InputError` names ``where`` (``eth0 vf 3``), the setting and the
    value: ``{where}{sep}{labels[name]} {value!r}: reason`` (a saved original says
    ``0000:06:10.0: original VLAN 4096: ...``). A qos or VLAN protocol without a VLAN is refused
    (except on a complete :class:`VfState`, where vlan 0 is "untagged")."""
    for name in SETTINGS:
        if name == "mac":
            continue
        value = getattr(settings, name)
        reason = problem(name, value)
        if reason is not None:
            raise InputError(f"{where}{sep}{labels[name]} {value!r}: {reason}")
    if settings.vlan is None and settings.qos:
        raise InputError(f"{where}{sep}qos {settings.qos} given without a VLAN")
    mac = settings.mac
    if mac is None or is_canonical(mac):
        return settings
    canonical = parse_mac(mac, allow_zero=allow_zero_mac, what=f"{where}{sep}{labels['mac']}")
    return settings if canonical == mac else replace(settings, mac=canonical)


# ---------------------------------------------------------------------------- comparison


def vlan_equal(vlan: int, qos: int, proto: VlanProto, have: VfState) -> bool:
    """Whether the VF already has this VLAN (an untagged VF's protocol does not matter)."""
    if vlan == 0 and qos == 0:
        return have.vlan == 0 and have.qos == 0
    return (have.vlan, have.qos, have.vlan_proto) == (vlan, qos, proto)


def diff(want: VfSettings, have: VfState | None) -> VfSettings | None:
    """What to send to take a VF from ``have`` to ``want``: only what differs (None: nothing).

    ``have`` None: the VF's state is unknown (about to be created): every wanted setting. A
    VLAN goes with its qos and protocol (0 and 802.1Q when not given); TX rates go together,
    the one not wanted taken from ``have`` (0 when unknown). Runs per VF at boot: kept lean."""
    vlan = want.vlan
    qos = want.qos or 0
    proto = want.vlan_proto or DEFAULT_VLAN_PROTO
    lo, hi = want.min_tx_rate, want.max_tx_rate
    if have is None:
        mac, spoofchk, trust, link_state = want.mac, want.spoofchk, want.trust, want.link_state
        if lo is not None or hi is not None:
            lo, hi = lo or 0, hi or 0
    else:
        mac = want.mac if want.mac is not None and want.mac != have.mac else None
        if vlan is not None and vlan_equal(vlan, qos, proto, have):
            vlan = None
        spoofchk = want.spoofchk if want.spoofchk != have.spoofchk else None
        trust = want.trust if want.trust != have.trust else None
        link_state = want.link_state if want.link_state != have.link_state else None
        if lo is not None or hi is not None:
            lo = lo if lo is not None else have.min_tx_rate
            hi = hi if hi is not None else have.max_tx_rate
            if (lo, hi) == (have.min_tx_rate, have.max_tx_rate):
                lo = hi = None
    if (mac is None and vlan is None and spoofchk is None and trust is None
            and link_state is None and lo is None):
        return None
    return VfSettings(mac=mac, vlan=vlan, qos=qos if vlan is not None else None,
                      vlan_proto=proto if vlan is not None else None, spoofchk=spoofchk,
                      trust=trust, link_state=link_state, min_tx_rate=lo, max_tx_rate=hi)


def restore_steps(original: VfState, have: VfState) -> list[VfSettings]:
    """What puts a VF back to ``original``: one :class:`VfSettings` per setting that differs
    (each sent alone, so that each gets its own outcome). Settings the original did not report
    (spoofchk, trust, link state as None) are left as they are."""
    steps: list[VfSettings] = []
    if have.mac != original.mac:
        steps.append(VfSettings(mac=original.mac))
    if not vlan_equal(original.vlan, original.qos, original.vlan_proto, have):
        steps.append(VfSettings(vlan=original.vlan, qos=original.qos,
                                vlan_proto=original.vlan_proto if original.vlan
                                else DEFAULT_VLAN_PROTO))
    for name in ("spoofchk", "trust", "link_state"):
        value = getattr(original, name)
        if value is not None and getattr(have, name) != value:
            steps.append(VfSettings(**{name: value}))
    if (have.min_tx_rate, have.max_tx_rate) != (original.min_tx_rate, original.max_tx_rate):
        steps.append(VfSettings(min_tx_rate=original.min_tx_rate,
                                max_tx_rate=original.max_tx_rate))
    return steps


# ---------------------------------------------------------------------------- refusals

KERNEL_ORDER: tuple[tuple[str, ...], ...] = (
    ("mac",), ("vlan", "qos", "vlan_proto"), ("min_tx_rate", "max_tx_rate"), ("spoofchk",),
    ("link_state",), ("trust",))
"""The settings of one VF as the kernel applies them from one IFLA_VF_INFO, one attribute each
(net/core/rtnetlink.c, do_setvfinfo: MAC, VLAN list, rate, spoofchk, link state, trust). It stops
at the first one the driver refuses and returns that error: the ones before it stay applied, the
ones after it are not tried."""


def parts(s: VfSettings) -> list[VfSettings]:
    """The settings ``s`` gives, one :class:`VfSettings` per kernel attribute, in
    :data:`KERNEL_ORDER` (a VLAN with its qos and protocol, the TX rates together)."""
    out = []
    for group in KERNEL_ORDER:
        given = {name: value for name in group if (value := getattr(s, name)) is not None}
        if given and (group[0] != "vlan" or s.vlan is not None):
            out.append(VfSettings(**given))
    return out


def joined(settings: Iterable[VfSettings]) -> VfSettings:
    """One :class:`VfSettings` of several that give different settings (the inverse of
    :func:`parts`)."""
    out: dict[str, object] = {}
    for s in settings:
        out.update((name, value) for name in SETTINGS if (value := getattr(s, name)) is not None)
    return VfSettings(**out)  # type: ignore[arg-type]


def has(have: VfState, part: VfSettings) -> bool:
    """Whether the VF has every setting ``part`` gives (one it does not report: no)."""
    if part.mac is not None and part.mac != have.mac:
        return False
    if part.vlan is not None and not vlan_equal(
            part.vlan, part.qos or 0, part.vlan_proto or DEFAULT_VLAN_PROTO, have):
        return False
    return all(getattr(have, name) == value
               for name in ("spoofchk", "link_state", "trust", "min_tx_rate", "max_tx_rate")
               if (value := getattr(part, name)) is not None)


@dataclass(frozen=True, slots=True)
class Refusal:
    """What became of a change of several settings that the kernel refused, as the VF reads back.

    ``failed``: the setting it refused (None when that cannot be told: every setting reads back
    as asked, or one the VF already had may be the refused one); ``applied``: what of the change the VF has
    (the settings before the refused one); ``not_set``: the settings after it that the VF does
    not have (the kernel did not try them)."""

    failed: VfSettings | None
    applied: VfSettings
    not_set: VfSettings


def refusal(change: VfSettings, after: VfState, before: VfState | None = None) -> Refusal:
    """Which setting of ``change`` the kernel refused, given the VF's state ``after`` it (and,
    when known, ``before`` it): the first one in :data:`KERNEL_ORDER` that the VF does not have.

    When the VF has all of them, the refused one was already in effect; with ``before``, the
    settings that it shows changing were applied, and if a single one after them is left, that
    one was refused. With ``before``, a setting ahead of the first missing one that the VF
    already had may be the refused one (sent again, refused, the rest not tried): then which one
    cannot be told either. (Without ``before``, the change is taken to be a :func:`diff`: nothing
    in it was in effect.)"""
    steps = parts(change)
    for i, part in enumerate(steps):
        if not has(after, part):
            unsure = before is not None and any(has(before, p) for p in steps[:i])
            rest = steps[i:] if unsure else steps[i + 1:]  # unsure: this one is not set either
            return Refusal(None if unsure else part, joined(steps[:i]),
                           joined(p for p in rest if not has(after, p)))
    if before is not None:
        last = max((i for i, p in enumerate(steps) if not has(before, p)), default=-1)
        if last == len(steps) - 2:
            return Refusal(steps[-1], joined(steps[:-1]), VfSettings())
    return Refusal(None, joined(steps), VfSettings())


def put_back(applied: VfSettings, before: VfState, after: VfState
             ) -> list[tuple[VfSettings, VfSettings]]:
    """What puts the settings ``applied`` (of a change the kernel refused part-way) back to their
    values ``before`` the change, where they differ ``after`` it: (the setting as applied, the
    step that puts it back) for each, in the kernel's order; every step is sent alone, as for
    :func:`restore_steps`."""
    steps = restore_steps(before, after)
    return [(part, step) for part in parts(applied) for step in steps
            if any(getattr(part, name) is not None and getattr(step, name) is not None
                   for name in SETTINGS)]


# ---------------------------------------------------------------------------- description
# Every description of settings is built here, from NAMES (how each setting is named) and
# _SHOWN (which settings are shown together, and in what order).


def show(value: object, unknown: str = "?") -> str:
    """One value as messages show it: ``on`` / ``off`` for a bool, ``unknown`` for None (a
    setting the driver does not report)."""
    if isinstance(value, bool):
        return "on" if value else "off"
    return unknown if value is None else str(value)


_SHOWN: tuple[tuple[str, str, str], ...] = (
    # (the setting that heads a group, the group's name in a sentence, its word in a change),
    # in the order every description shows them: a VLAN with its qos and protocol, the TX
    # rates together
    ("mac", "MAC", "mac"),
    ("vlan", "VLAN", "vlan"),
    ("spoofchk", "spoofchk", "spoofchk"),
    ("trust", "trust", "trust"),
    ("link_state", "link state", "state"),
    ("min_tx_rate", "TX rate", "rate"),
)


def _shown(s: VfSettings) -> list[tuple[str, str, str]]:
    """The groups of :data:`_SHOWN` that ``s`` gives (the TX rates: either one)."""
    return [row for row in _SHOWN if getattr(s, row[0]) is not None
            or (row[0] == "min_tx_rate" and s.max_tx_rate is not None)]


def _vlan(s: VfSettings) -> tuple[int, int, str]:
    return s.vlan or 0, s.qos or 0, s.vlan_proto or DEFAULT_VLAN_PROTO


def describe(s: VfSettings) -> str:
    """``MAC 02:00:00:00:00:07, VLAN 42 qos 3 802.1Q``: what settings set, for messages."""
    out = []
    for head, name, _ in _shown(s):
        if head == "vlan":
            vlan, qos, proto = _vlan(s)
            text = f"{vlan}{f' qos {qos}' * bool(vlan and qos)}{f' {proto}' * bool(vlan)}"
        elif head == "min_tx_rate":
            text = " ".join(f"{word} {rate}" for word, rate in (("min", s.min_tx_rate),
                                                               ("max", s.max_tx_rate))
                            if rate is not None) + " Mbit/s"
        else:
            text = show(getattr(s, head))
        out.append(f"{name} {text}")
    return ", ".join(out) or "nothing"


def describe_diff(have: VfState | None, change: VfSettings) -> str:
    """``mac 52:54:00:aa:bb:01 -> 02:1f:...; vlan 0 (qos 0, 802.1Q) -> 42 (qos 0, 802.1Q)``:
    a change against what the VF has. ``have`` None is a VF not created yet (``vfmac apply``'s
    plan for the VFs it is about to create): ``mac (new) -> ...``. A VF that exists and was not
    read is :func:`describe`'s."""

    def value(s: VfSettings, head: str) -> str:
        if head == "vlan":
            vlan, qos, proto = _vlan(s)
            return f"{vlan} (qos {qos}, {proto})"
        if head == "min_tx_rate":
            return f"{show(s.min_tx_rate)}/{show(s.max_tx_rate)}"
        return show(getattr(s, head))

    out = []
    for head, _, word in _shown(change):
        was = "(new)" if have is None else value(have, head)
        unit = " Mbit/s (min/max)" if head == "min_tx_rate" else ""
        out.append(f"{word} {was} -> {value(change, head)}{unit}")
    return "; ".join(out)


def words(s: VfSettings) -> str:
    """The settings ``s`` gives in ``vfmac set``'s own words (:data:`WORDS`; qos and proto with
    a VLAN): ``mac M vlan 10 qos 3 proto 802.1ad spoofchk on trust off state auto
    max_tx_rate 100``. Of a :class:`VfState` (what a VF has): every setting, ``-`` for one the
    driver does not report, the TX rates when limited."""
    state = isinstance(s, VfState)
    out = []
    for head, _, _ in (_SHOWN if state else _shown(s)):
        if head == "vlan":
            vlan, qos, proto = _vlan(s)
            out.append(f"vlan {vlan}" + (f" qos {qos} proto {proto}" if vlan else ""))
        elif head == "min_tx_rate":
            out.extend(f"{WORDS[name]} {rate}" for name in ("min_tx_rate", "max_tx_rate")
                       if (rate := getattr(s, name)) is not None and (rate or not state))
        else:
            out.append(f"{WORDS[head]} {show(getattr(s, head), '-')}")
    return " ".join(out)


__all__ = [
    "DEFAULT_VLAN_PROTO",
    "KERNEL_ORDER",
    "LABELS",
    "LINK_STATES",
    "NAMES",
    "SETTINGS",
    "VLAN_PROTOS",
    "Refusal",
    "VfChange",
    "VfSettings",
    "VfState",
    "WORDS",
    "ZERO_MAC",
    "check",
    "describe",
    "describe_diff",
    "diff",
    "has",
    "int_problem",
    "joined",
    "parts",
    "problem",
    "put_back",
    "refusal",
    "restore_steps",
    "show",
    "words",
]
