"""What every part of the binding shares: the compiled module's ``ffi`` / ``lib``, the layouts
of the C structs (for packing and unpacking in bulk), C strings, and return codes turned into
exceptions."""

from __future__ import annotations

import struct as _struct
from collections.abc import Sequence as _Sequence

from .._native import ffi, lib
from ..errors import NetlinkError as _NetlinkError

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (mypy: always_true)
if TYPE_CHECKING:
    from typing import Any as _Any

__all__ = ["Layout", "check", "columns", "ffi", "layout", "lib", "msg"]

# The C structs' layouts, read from the compiled module (its cdef mirrors the header): changes
# are packed and records unpacked in bulk with struct formats derived here, not one cffi
# attribute access at a time.
_CODES = {"int32_t": "i", "uint32_t": "I", "uint16_t": "H", "uint8_t": "B"}


class Layout:
    """A C struct as the bulk readers see it: its ``struct.Struct`` (``st``) and its
    ``fields`` as (C path, offset, struct code), nested structs flattened."""

    __slots__ = ("st", "fields")

    def __init__(self, st: _struct.Struct, fields: tuple[tuple[str, int, str], ...]) -> None:
        self.st = st
        self.fields = fields


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
    for path, off, code in fields:  # what columns() relies on: every number naturally aligned
        width = _struct.calcsize(code)
        if not code.endswith("s") and (off % width or size % width):  # pragma: no cover
            raise ImportError(f"pyvfmac._native: {cname}.{path} at {off} is not aligned")
    return Layout(st, tuple(fields))


def columns(lay: Layout, buf: bytes, names: _Sequence[str]) -> list[list[_Any]]:
    """Fields ``names`` (C paths) of the records packed back to back in ``buf`` (struct layout
    ``lay``), one list per field: numbers through a memoryview cast and a strided slice, byte
    strings sliced, no tuple per record."""
    size = lay.st.size
    where = {path: (off, code) for path, off, code in lay.fields}
    views: dict[str, memoryview] = {}
    out: list[list[_Any]] = []
    for name in names:
        off, code = where[name]
        width = _struct.calcsize(code)
        if code.endswith("s"):
            out.append([buf[o:o + width] for o in range(off, len(buf), size)])
            continue
        if code not in views:
            views[code] = memoryview(buf).cast(code)  # type: ignore[call-overload]  # i I H B
        out.append(views[code][off // width::size // width].tolist())
    return out


def msg(buf: _Any) -> str:
    return bytes(ffi.string(buf)).decode("utf-8", "replace")


def check(rc: int, what: str, *, device: str | None = None, vf: int | None = None,
          ext_msg: str = "") -> int:
    """Turn a C return code into a :class:`NetlinkError`; pass other values through."""
    if rc < 0:
        raise _NetlinkError(-rc, what, device=device, vf=vf, ext_msg=ext_msg)
    return rc
