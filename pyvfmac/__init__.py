"""pyvfmac: fixed MAC addresses for SR-IOV virtual functions."""

from .errors import (
    InputError,
    KernelError,
    MacError,
    NetlinkError,
    PoolError,
    StateError,
    TopologyError,
    VfmacError,
)
from .mac import parse_mac
from .types import LinkInfo, VfChange, VfResult, VfState

__all__ = [
    "InputError",
    "KernelError",
    "LinkInfo",
    "MacError",
    "NetlinkError",
    "PoolError",
    "StateError",
    "TopologyError",
    "VfChange",
    "VfResult",
    "VfState",
    "VfmacError",
    "parse_mac",
]
__version__ = "0.1.0"
