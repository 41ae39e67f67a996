"""Value types shared by the netlink layer and everything above it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

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
