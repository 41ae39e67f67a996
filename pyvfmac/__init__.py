"""pyvfmac: fixed MAC addresses for SR-IOV virtual functions.

The names below are imported on first use (PEP 562): ``import pyvfmac.cli`` for ``vfmac --help``
loads no more than the command line needs.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (mypy: always_true)

if TYPE_CHECKING:
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

_WHERE = {
    "InputError": "errors", "KernelError": "errors", "MacError": "errors",
    "NetlinkError": "errors", "PoolError": "errors", "StateError": "errors",
    "TopologyError": "errors", "VfmacError": "errors", "parse_mac": "mac",
    "LinkInfo": "types", "VfChange": "types", "VfResult": "types", "VfState": "types",
}

__all__ = sorted(_WHERE)
__version__ = "0.1.0"


def __getattr__(name: str) -> object:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'pyvfmac' has no attribute {name!r}", name=name)
    # __import__ with a fromlist returns the submodule itself (importlib.import_module would
    # import the importlib package and warnings at every start, for this alone)
    value = getattr(__import__(f"{__name__}.{module}", fromlist=(name,)), name)
    globals()[name] = value
    return value
