"""The binding of the C core: the only package that touches the cffi ``ffi`` / ``lib`` objects
of ``pyvfmac._native``. One module per concern of the core, all re-exported here, so that the
rest of pyvfmac calls ``_lowlevel.links_get(...)`` and never sees a C pointer.

- :mod:`.base`: ffi/lib, struct layouts read from the compiled module, C strings, return codes;
- :mod:`.netlink`: rtnetlink (socket, VF batches, bulk MACs, link reads, port profiles);
- :mod:`.sysfs`: the sysfs walker's packed records;
- :mod:`.ifconf`: network namespaces, link configuration, addresses and routes (CNI);
- :mod:`.derive`: derived VF MACs (HMAC-SHA256).
"""

from __future__ import annotations

from .base import check, ffi, lib
from .derive import *  # noqa: F403
from .ifconf import *  # noqa: F403
from .netlink import *  # noqa: F403
from .sysfs import *  # noqa: F403
