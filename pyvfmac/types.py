"""Value types shared by the netlink layer and everything above it: links, results of changes,
PCI addresses, netdev names, and the one fast way to build frozen values in bulk.

A VF's settings, its state and changes to it are in :mod:`pyvfmac.settings` (re-exported here:
``VfState``, ``VfChange``, ``LINK_STATES``, ``VLAN_PROTOS``)."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import MISSING, dataclass, fields
from operator import attrgetter

from .settings import LINK_STATES, VLAN_PROTOS, Refusal, VfChange, VfSettings, VfState

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (mypy: always_true)
if TYPE_CHECKING:
    from typing import Any, TypeVar, overload

    _T = TypeVar("_T")


class VfStates(Sequence[VfState]):
    """The VFs of a link (:attr:`LinkInfo.vfs`): a read-only sequence of :class:`VfState`, kept
    as one column per field, each read from the C core's records when first asked for.

    The :class:`VfState` values are built when first looked at: all of them when the sequence is
    iterated, hashed or compared with a tuple (once, then kept), one when indexed. A reader that
    needs a field or two of thousands of VFs (``vfmac apply``: their MACs) takes :meth:`column`
    and :meth:`position` and builds no VfState and no other column. Equal to the tuple of the
    same values (two VfStates compare their columns), and hashes and pickles like it (a
    :class:`LinkInfo` stays a hashable, picklable value). Unlike a tuple, it cannot be added to
    or serialised by ``json``: ``tuple(vfs)`` gives the tuple.

    What it saves (``bench/bench_values.py``, 4096 VFs, minimums on the 2-vCPU development host,
    2026-12-07): ``column("mac")`` 0.7 us against 3.3 ms for building every VfState
    (``list(vfs)``); under TCG about 100 ms for every VfState of 4096 VFs, where ``read_link``
    of them all takes 12.7 ms (bench/README.md "Reads", bench/results/vfset-tcg.md)."""

    __slots__ = ("_n", "_load", "_columns", "_states", "_positions")
    FIELDS = ("vf", "mac", "vlan", "qos", "vlan_proto", "spoofchk", "trust", "link_state",
              "min_tx_rate", "max_tx_rate")
    """VfState's fields: the columns, and the order :meth:`column` reads them in for a VfState."""

    def __init__(self, n: int, load: Callable[[str], Iterable[Any]]) -> None:
        """``n`` VFs; ``load(name)`` gives field ``name`` of every VF in order (a column). It is
        called once per field, when the field is first needed."""
        self._n = n
        self._load = load
        self._columns: dict[str, tuple[Any, ...]] = {}
        self._states: tuple[VfState, ...] | None = None
        self._positions: dict[int, int] | None = None

    @classmethod
    def of(cls, states: Iterable[VfState]) -> VfStates:
        """The sequence of these VF states (kept as they are)."""
        built = tuple(states)
        out = cls(len(built), lambda name: map(attrgetter(name), built))
        out._states = built
        return out

    def column(self, name: str) -> tuple[Any, ...]:
        """Field ``name`` of every VF, in order (e.g. ``column("mac")``), no VfState built."""
        col = self._columns.get(name)
        if col is None:
            if name not in self.FIELDS:
                raise ValueError(f"VfStates: no field {name!r} (fields: {', '.join(self.FIELDS)})")
            col = tuple(self._load(name))
            if len(col) != self._n:
                raise ValueError(f"VfStates: column {name} has {len(col)} values, not {self._n}")
            self._columns[name] = col
        return col

    def position(self, vf: int) -> int | None:
        """Where VF ``vf`` (its index) is in this sequence, or None when it is not listed (the
        kernel lists VFs in index order, but nothing promises it)."""
        if self._positions is None:
            self._positions = {index: at for at, index in enumerate(self.column("vf"))}
        return self._positions.get(vf)

    def _all(self) -> tuple[VfState, ...]:
        if self._states is None:
            self._states = tuple(map(_make_vf_state, *map(self.column, self.FIELDS)))
        return self._states

    def __len__(self) -> int:
        return self._n

    if TYPE_CHECKING:
        @overload
        def __getitem__(self, i: int) -> VfState: ...

        @overload
        def __getitem__(self, i: slice) -> tuple[VfState, ...]: ...

    def __getitem__(self, i: int | slice) -> VfState | tuple[VfState, ...]:
        if isinstance(i, slice) or self._states is not None:
            return self._all()[i]
        return _make_vf_state(*(self.column(name)[i] for name in self.FIELDS))

    def __iter__(self) -> Iterator[VfState]:
        return iter(self._all())

    def __eq__(self, other: object) -> bool:
        if isinstance(other, VfStates):
            return self._n == other._n and all(
                self.column(name) == other.column(name) for name in self.FIELDS)
        if isinstance(other, tuple):
            return self._all() == other
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self._all())

    def __repr__(self) -> str:
        return repr(self._all())

    def __reduce__(self) -> tuple[Callable[[Iterable[VfState]], VfStates], tuple[Any, ...]]:
        return (VfStates.of, (self._all(),))


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
    vfs: VfStates  # given a tuple of VfState at run time (tests), it is kept as VfStates.of(it)
    missing_vfs: int = 0

    def __post_init__(self) -> None:
        if not isinstance(self.vfs, VfStates):
            object.__setattr__(self, "vfs", VfStates.of(self.vfs))

    def vf(self, index: int) -> VfState:
        """The VF with this index; ``LookupError`` naming the PF when it has none."""
        at = self.vfs.position(index)
        if at is not None:
            return self.vfs[at]
        from .errors import TopologyError

        raise TopologyError(f"{self.name}: no VF {index} (the PF has {len(self.vfs)} VFs)")


@dataclass(frozen=True, slots=True)
class VfResult:
    """What happened to one :class:`VfChange`: ``errno`` 0 when applied.

    A change of several settings that the kernel refused may be applied in part (it applies them
    in :data:`~pyvfmac.settings.KERNEL_ORDER` and stops at the refused one): ``refusal`` says,
    from a read-back, which one it refused and what of the rest the VF has (None: not read back,
    or not a change of several settings). ``kept``: after the settings applied were put back,
    those that could not be (empty: all were; None: no put-back tried); ``undo_errno`` why (or,
    without a ``refusal``, why the read-back failed)."""

    change: VfChange
    pf_name: str
    errno: int = 0
    ext_msg: str = ""
    attempts: int = 1
    refusal: Refusal | None = None
    kept: VfSettings | None = None
    undo_errno: int = 0

    @property
    def ok(self) -> bool:
        return self.errno == 0


@dataclass(frozen=True, slots=True, order=True)
class PciAddress:
    """A PCI function address; ``str()`` is the canonical ``0000:06:02.0``, as Linux names it.

    The domain is 32 bits, as in Linux and libvirt: a VMD domain (``10000:00:01.0``) is printed
    with as many digits as it needs, at least four (the kernel's ``%04x``)."""

    domain: int
    bus: int
    slot: int
    function: int

    def __post_init__(self) -> None:
        from .errors import PciAddressError

        for field, value, top in (
            ("domain", self.domain, 0xFFFFFFFF),
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
        """``0000:06:02.0`` or ``06:02.0`` (domain 0); hex, case-insensitive; a domain of up
        to 8 digits (``10000:00:01.0``)."""
        from .errors import PciAddressError

        m = re.fullmatch(_PCI_ADDRESS, text.strip()) if isinstance(text, str) else None
        if m is None:
            raise PciAddressError(
                f"PCI address {text!r}: expected DDDD:BB:SS.F or BB:SS.F (hexadecimal; the "
                "domain up to 8 digits)"
            )
        dom, bus, slot, fn = m.groups()
        return cls(int(dom or "0", 16), int(bus, 16), int(slot, 16), int(fn, 16))

    @classmethod
    def from_attrs(cls, attrs: dict[str, str], *, where: str = "<address>") -> PciAddress:
        """From XML attribute values: ``domain='0x0000' bus='0x06' slot='0x02' function='0x0'``
        (domain optional, default 0).

        Each number is read as libvirt reads it (virPCIDeviceAddressParseXML: strtoul with base
        0): ``0x`` hexadecimal, a leading ``0`` octal (``bus='010'`` is bus 8), else decimal;
        ``'08'`` is refused, as libvirt refuses it. Blanks around a number are ignored; a sign
        is refused (strtoul would take ``+1``)."""
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
            values[key] = _xml_number(raw, key, where)
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


# Patterns are compiled by re on first use (and kept in re's cache), not at import.
_PCI_ADDRESS = r"(?:([0-9a-fA-F]{1,8}):)?([0-9a-fA-F]{1,2}):([0-9a-fA-F]{1,2})\.([0-7])"

# libvirt's spelling of a PCI coordinate (strtoul, base 0): 0x-prefixed hexadecimal, octal
# after a leading 0, else decimal; ASCII only (Python's int() would also take "1_0" and
# non-ASCII digits; matched with re.ASCII).
_XML_NUMBER = r"0[xX]([0-9a-fA-F]+)|(0[0-7]*)|([1-9][0-9]*)"


def _xml_number(raw: str, key: str, where: str) -> int:
    """One PCI coordinate of an XML ``<address>``, read as libvirt reads it."""
    from .errors import PciAddressError

    m = re.fullmatch(_XML_NUMBER, raw, re.ASCII)
    if m is None:
        if raw.startswith("-"):
            what = "is negative"
        elif re.fullmatch(r"0[0-9]+", raw, re.ASCII):
            what = ("is not a number: a leading 0 makes it octal, as libvirt reads it, and 8 "
                    "and 9 are not octal digits (write it in hexadecimal, 0x..)")
        else:
            what = "is not a number"
        raise PciAddressError(f"{where}: {key}={raw!r} {what}")
    hexa, octal, decimal = m.groups()
    if hexa is not None:
        return int(hexa, 16)
    return int(octal, 8) if octal is not None else int(decimal, 10)

IFNAMSIZ = 16


_NAME_BAD = r"[/:\s\x00-\x1f\x7f]"  # what dev_valid_name refuses, in ASCII names


def validate_netdev_name(name: str, *, what: str = "network device name") -> str:
    """Check a netdev name against the kernel's rules (dev_valid_name): 1-15 bytes, not ``.`` or
    ``..``, no ``/``, ``:`` or whitespace. Returns it unchanged; raises NetdevNameError."""
    if (type(name) is str and 0 < len(name) < IFNAMSIZ and name.isascii()
            and re.search(_NAME_BAD, name) is None and name not in (".", "..")):
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


NETWORK_NAME_MAX = 64
"""The longest network name, in characters, for the XML and the state store alike.

libvirt refuses only ``/`` in a network name (virNetworkDefParseXML) and sets no length limit;
its persistent definition is the file ``<name>.xml``, so NAME_MAX (255 bytes) bounds it in
practice. 64 and not 255, because: 64 is what ``vfmac net-define`` (:func:`parse_network`) has
always enforced, and only it stores networks, so no existing state store holds a longer name;
a name is shown in tables, in keys (``network:<name>/<mac>``) and in messages; and 64
characters stay within libvirt's file-name bound unless they are 4-byte UTF-8 characters,
where 255 characters would not even in ASCII (``.xml`` is appended)."""

def validate_network_name(name: object, *, what: str = "network name") -> str:
    """1 to :data:`NETWORK_NAME_MAX` printable characters, no ``/``, no leading or trailing
    blank. Returns ``name``; raises :class:`~pyvfmac.errors.NetworkNameError` (an InputError)."""
    from .errors import NetworkNameError

    if not isinstance(name, str):
        raise NetworkNameError(f"{what} {name!r}: not a string")
    if not name:
        raise NetworkNameError(f"{what} {name!r}: empty")
    if len(name) > NETWORK_NAME_MAX:
        raise NetworkNameError(
            f"{what} {name[:57] + '...'!r}: longer than {NETWORK_NAME_MAX} characters"
        )
    if "/" in name:
        raise NetworkNameError(f"{what} {name!r}: contains '/'")
    if not name.isprintable():
        raise NetworkNameError(f"{what} {name!r}: contains a control character")
    if name != name.strip():
        raise NetworkNameError(f"{what} {name!r}: leading or trailing blank")
    return name


def bulk_constructor(cls: type[_T], order: Sequence[str] | None = None, *,
                     checked: bool = False) -> Callable[..., _T]:
    """A positional constructor for a frozen slotted dataclass that fills the slots directly:
    the one fast way pyvfmac builds values in bulk (VF states and results read from the kernel,
    the topology's values from the sysfs walk).

    The generated ``__init__`` of a frozen dataclass sets each field through
    ``object.__setattr__``; building thousands of values that way costs several times more than
    the kernel's answer. The constructor takes the fields in ``order`` (default: the fields'
    order; a field with a default may be left out, and gets it) and is equal in every way to
    ``cls(**dict(zip(order, args)))``. A class that checks
    its values in ``__post_init__`` is refused unless ``checked``: the caller vouches that the
    values are valid (they come from the C core, which checked them). The function is generated
    with ``exec``, as ``dataclasses`` generates ``__init__``.

    What it saves (``bench/bench_values.py``, 4096 VfStates, minimums on the 2-vCPU development
    host, 2026-12-07): 3.3 ms generated, 4.8 ms for the plain alternative (``object.__new__``
    and a loop over the slot setters), 8.2 ms through the dataclass's ``__init__``; under TCG
    building every VfState of 4096 VFs took about 100 ms (bench/README.md, "Reads")."""
    if hasattr(cls, "__post_init__") and not checked:
        raise TypeError(f"{cls.__name__} validates in __post_init__: use its constructor")
    default = {f.name: f.default for f in fields(cls)}  # type: ignore[arg-type]
    names = list(default)
    order = names if order is None else list(order)
    left = [n for n in names if n not in order]
    if (sorted(set(order)) != sorted(order) or not set(order) <= set(names)
            or any(default[n] is MISSING for n in left)):
        raise TypeError(f"{cls.__name__}: order {order} does not name each of its fields {names} "
                        "once (those with a default may be left out)")
    scope: dict[str, Any] = {"_new": object.__new__, "_cls": cls}
    scope.update({f"_set_{n}": getattr(cls, n).__set__ for n in names})
    scope.update({f"_default_{n}": default[n] for n in left})
    body = "".join(f"    _set_{n}(o, {n})\n" for n in order)
    body += "".join(f"    _set_{n}(o, _default_{n})\n" for n in left)
    exec(f"def make({', '.join(order)}):\n    o = _new(_cls)\n{body}    return o\n", scope)
    make: Callable[..., _T] = scope["make"]
    make.__qualname__ = make.__name__ = f"bulk_{cls.__name__}"
    return make


_make_vf_state = bulk_constructor(VfState, VfStates.FIELDS)


__all__ = [
    "IFNAMSIZ",
    "NETWORK_NAME_MAX",
    "LINK_STATES",
    "VLAN_PROTOS",
    "LinkInfo",
    "PciAddress",
    "VfChange",
    "VfResult",
    "VfState",
    "VfStates",
    "bulk_constructor",
    "validate_netdev_name",
    "validate_network_name",
]
