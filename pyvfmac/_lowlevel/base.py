"""What every part of the binding shares: the compiled module's ``ffi`` / ``lib``, the layouts
of the C structs (for packing and unpacking in bulk), C strings, and return codes turned into
exceptions."""

from __future__ import annotations

import struct as _struct
from typing import Any as _Any
from typing import NamedTuple as _NamedTuple

from .._native import ffi, lib
from ..errors import NetlinkError as _NetlinkError

__all__ = ["Layout", "check", "ffi", "layout", "lib", "msg"]

# The C structs' layouts, read from the compiled module (its cdef mirrors the header): changes
# are packed and records unpacked in bulk with struct formats derived here, not one cffi
# attribute access at a time.
_CODES = {"int32_t": "i", "uint32_t": "I", "uint16_t": "H", "uint8_t": "B"}


class Layout(_NamedTuple):
    st: _struct.Struct
    fields: tuple[tuple[str, int, str], ...]  # (C path, offset, struct code), flattened


def _flat(ctype: _Any, prefix: str = "", base: int = 0) -> list[tuple[str, int, str]]:
    """Every field of a C struct as (path, offset, struct code), nested structs flattened."""
    out: list[tuple[str, int, str]] = []
    for name, f in ctype.fields:
        t, off = f.type, base + f.offset
        if t.kind == "struct":
            out += _flat(t, f"{prefix}{name}.", off)
        elif t.kind == "array" and t.item.cname in ("char", "uint8_t"):
            out.append((prefix + name, off, f"{t.length}s"))
        elif t.kind == "primitive" and t.cname in _CODES:
            out.append((prefix + name, off, _CODES[t.cname]))
        else:  # pragma: no cover - a field kind the bulk readers do not take
            raise ImportError(f"pyvfmac._native: {ctype.cname}.{prefix}{name}: {t.cname}")
    return out


def layout(cname: str) -> Layout:
    """The struct.Struct of a C struct of the core (padding where the compiler put it)."""
    fields = _flat(ffi.typeof(cname))
    fmt, at = "=", 0
    for _, off, code in fields:
        fmt += (f"{off - at}x" if off > at else "") + code
        at = off + _struct.calcsize("=" + code)
    size = ffi.sizeof(cname)
    st = _struct.Struct(fmt + (f"{size - at}x" if size > at else ""))
    if st.size != size:  # pragma: no cover - a build/ABI mismatch
        raise ImportError(f"pyvfmac._native: {cname} is {size} bytes, not {st.size}")
    return Layout(st, tuple(fields))


def msg(buf: _Any) -> str:
    return bytes(ffi.string(buf)).decode("utf-8", "replace")


def check(rc: int, what: str, *, device: str | None = None, vf: int | None = None,
          ext_msg: str = "") -> int:
    """Turn a C return code into a :class:`NetlinkError`; pass other values through."""
    if rc < 0:
        raise _NetlinkError(-rc, what, device=device, vf=vf, ext_msg=ext_msg)
    return rc
