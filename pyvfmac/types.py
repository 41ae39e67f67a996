"""Value types shared by the netlink layer and everything above it."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any, Literal, TypeVar

_T = TypeVar("_T")

LinkState = Literal["auto", "enable", "disable"]
VlanProto = Literal["802.1Q", "802.1ad"]

LINK_STATES: tuple[LinkState, ...] = ("auto", "enable", "disable")
VLAN_PROTOS: dict[VlanProto, int] = {"802.1Q": 0x8100, "802.1ad": 0x88A8}


@dataclass(frozen=True, slots=True)
class VfState:
    """One VF as its PF reports it (RTM_GETLINK, IFLA_VF_INFO)."""

    vf: int
    mac: str
    vlan: int = 0
    qos: int = 0
    vlan_proto: VlanProto = "802.1Q"
    spoofchk: bool | None = None
    trust: bool | None = None
    link_state: LinkState | None = None
    min_tx_rate: int = 0
    max_tx_rate: int = 0


@dataclass(frozen=True, slots=True)
class LinkInfo:
    """A netdev and, for a PF, its VFs.

    ``num_vf`` is ``IFLA_NUM_VF`` (None when the kernel sent none: not a device with a parent bus,
    or read without VF info); ``missing_vfs`` counts VFs the kernel announced but did not list.
    """

    ifindex: int
    name: str
    mac: str | None
    perm_mac: str | None
    parent_bus: str | None
    parent_dev: str | None
    num_vf: int | None
    vfs: tuple[VfState, ...]
    missing_vfs: int = 0

    def vf(self, index: int) -> VfState:
        """The VF with this index; ``LookupError`` naming the PF when it has none."""
        for state in self.vfs:
            if state.vf == index:
                return state
        from .errors import TopologyError

        raise TopologyError(f"{self.name}: no VF {index} (the PF has {len(self.vfs)} VFs)")


@dataclass(frozen=True, slots=True)
class VfChange:
    """Settings to give one VF through its PF. ``None`` leaves a setting as it is.

    ``vlan=0`` clears the VLAN. A TX rate change sends min and max together; one given alone is
    completed from the VF's current state. ``allow_zero_mac`` permits 00:00:00:00:00:00 (restoring
    an original that was all-zero).
    """

    pf: str | int
    vf: int
    mac: str | None = None
    vlan: int | None = None
    qos: int = 0
    vlan_proto: VlanProto = "802.1Q"
    spoofchk: bool | None = None
    trust: bool | None = None
    link_state: LinkState | None = None
    min_tx_rate: int | None = None
    max_tx_rate: int | None = None
    allow_zero_mac: bool = False


@dataclass(frozen=True, slots=True)
class VfResult:
    """What happened to one :class:`VfChange`: ``errno`` 0 when applied."""

    change: VfChange
    pf_name: str
    errno: int = 0
    ext_msg: str = ""
    attempts: int = 1

    @property
    def ok(self) -> bool:
        return self.errno == 0


@dataclass(frozen=True, slots=True, order=True)
class PciAddress:
    """A PCI function address; ``str()`` is the canonical ``0000:06:02.0``."""

    domain: int
    bus: int
    slot: int
    function: int

    def __post_init__(self) -> None:
        from .errors import PciAddressError

        for field, value, top in (
            ("domain", self.domain, 0xFFFF),
            ("bus", self.bus, 0xFF),
            ("slot", self.slot, 0x1F),
            ("function", self.function, 0x7),
        ):
            if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= top:
                raise PciAddressError(f"PCI address {field} {value!r}: not in 0..{top:#x}")

    def __str__(self) -> str:
        return f"{self.domain:04x}:{self.bus:02x}:{self.slot:02x}.{self.function:x}"

    @classmethod
    def parse(cls, text: str) -> PciAddress:
        """``0000:06:02.0`` or ``06:02.0`` (domain 0); hex, case-insensitive."""
        from .errors import PciAddressError

        m = _PCI_RE.fullmatch(text.strip()) if isinstance(text, str) else None
        if m is None:
            raise PciAddressError(
                f"PCI address {text!r}: expected DDDD:BB:SS.F or BB:SS.F (hexadecimal)"
            )
        dom, bus, slot, fn = m.groups()
        return cls(int(dom or "0", 16), int(bus, 16), int(slot, 16), int(fn, 16))

    @classmethod
    def from_attrs(cls, attrs: dict[str, str], *, where: str = "<address>") -> PciAddress:
        """From XML attribute values: ``domain='0x0000' bus='0x06' slot='0x02' function='0x0'``
        (domain optional, default 0; ``0x`` hex or plain decimal, as libvirt accepts)."""
        from .errors import PciAddressError

        values: dict[str, int] = {}
        for key in ("domain", "bus", "slot", "function"):
            raw = attrs.get(key)
            if raw is None:
                if key == "domain":
                    values[key] = 0
                    continue
                raise PciAddressError(f"{where}: attribute {key!r} is missing")
            raw = raw.strip()
            try:
                values[key] = int(raw, 16) if raw.lower().startswith("0x") else int(raw, 10)
            except ValueError:
                raise PciAddressError(f"{where}: {key}={raw!r} is not a number") from None
            if values[key] < 0:
                raise PciAddressError(f"{where}: {key}={raw!r} is negative")
        try:
            return cls(**values)
        except PciAddressError as exc:
            raise PciAddressError(f"{where}: {exc}") from None

    def xml_attrs(self) -> dict[str, str]:
        """The libvirt attribute spelling: ``{'domain': '0x0000', 'bus': '0x06', ...}``."""
        return {
            "domain": f"0x{self.domain:04x}",
            "bus": f"0x{self.bus:02x}",
            "slot": f"0x{self.slot:02x}",
            "function": f"0x{self.function:x}",
        }


_PCI_RE = __import__("re").compile(
    r"(?:([0-9a-fA-F]{1,4}):)?([0-9a-fA-F]{1,2}):([0-9a-fA-F]{1,2})\.([0-7])"
)

IFNAMSIZ = 16


_NAME_BAD = re.compile(r"[/:\s\x00-\x1f\x7f]")  # what dev_valid_name refuses, ASCII names


def validate_netdev_name(name: str, *, what: str = "network device name") -> str:
    """Check a netdev name against the kernel's rules (dev_valid_name): 1-15 bytes, not ``.`` or
    ``..``, no ``/``, ``:`` or whitespace. Returns it unchanged; raises NetdevNameError."""
    if (type(name) is str and 0 < len(name) < IFNAMSIZ and name.isascii()
            and _NAME_BAD.search(name) is None and name not in (".", "..")):
        return name  # the common case, without a loop per character
    from .errors import NetdevNameError

    if not isinstance(name, str):
        raise NetdevNameError(f"{what} {name!r}: not a string")
    raw = name.encode("utf-8", "surrogateescape")
    if not 1 <= len(raw) < IFNAMSIZ:
        raise NetdevNameError(f"{what} {name!r}: must be 1 to {IFNAMSIZ - 1} bytes")
    if name in (".", ".."):
        raise NetdevNameError(f"{what} {name!r}: not allowed")
    for ch in name:
        if ch in "/:" or ch.isspace() or ord(ch) < 0x20 or ch == "\x7f":
            raise NetdevNameError(f"{what} {name!r}: contains {ch!r}")
    return name


def bulk_constructor(cls: type[_T]) -> Callable[..., _T]:
    """A positional constructor for a frozen slotted dataclass that fills the slots directly.

    The generated ``__init__`` of a frozen dataclass sets each field through
    ``object.__setattr__``; building thousands of values read from the kernel (VF states, results)
    that way costs several times more than the kernel's answer. Only for values that need no
    checking (the class has no ``__post_init__``); equal in every way to ``cls(*args)``."""
    if hasattr(cls, "__post_init__"):
        raise TypeError(f"{cls.__name__} validates in __post_init__: use its constructor")
    names = [f.name for f in fields(cls)]  # type: ignore[arg-type]
    scope: dict[str, Any] = {"_new": object.__new__, "_cls": cls}
    scope.update({f"_set_{n}": getattr(cls, n).__set__ for n in names})
    body = "".join(f"    _set_{n}(o, {n})\n" for n in names)
    exec(f"def make({', '.join(names)}):\n    o = _new(_cls)\n{body}    return o\n", scope)
    make: Callable[..., _T] = scope["make"]
    make.__qualname__ = make.__name__ = f"bulk_{cls.__name__}"
    return make
