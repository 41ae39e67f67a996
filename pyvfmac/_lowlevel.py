"""The one module that touches the cffi ``ffi`` / ``lib`` objects of ``pyvfmac._native``.

Everything else in pyvfmac calls the plain-Python functions defined here.
"""

from __future__ import annotations

from ._native import ffi, lib

__all__ = ["ffi", "lib"]

# ---- netlink (lead) ----

# ---- sysfs walker (topology) ----
