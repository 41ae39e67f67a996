"""Derived VF MACs (csrc/vfm_derive.c): one HMAC-SHA256 per VF in C."""

from __future__ import annotations

from .base import ffi, lib

_MAX_INDEX = 0xFFFFFFFF


def derive_macs(key: bytes, head: bytes, prefix: bytes, first: int, count: int) -> list[str]:
    """The derived MACs of VFs ``first`` .. ``first + count - 1``: HMAC-SHA256(key, head + the
    VF index in decimal), after ``prefix`` (0 to 5 octets) or made locally administered unicast
    without one; canonical text (``aa:bb:cc:dd:ee:ff``)."""
    if count <= 0:
        return []
    if not 0 <= first <= _MAX_INDEX - (count - 1):
        raise ValueError(f"VF indexes {first}..{first + count - 1}: outside 0..{_MAX_INDEX}")
    size = lib.VFM_MAC_TEXT_LEN * count
    out = ffi.new("char[]", size)
    if lib.vfm_derive_macs(key, len(key), head, len(head), prefix, len(prefix), first, count,
                           out) < 0:
        raise ValueError(f"MAC prefix {prefix.hex(':')!r}: {len(prefix)} octets, at most 5")
    text: str = ffi.string(out, size).decode("ascii")
    return text.split("\n")


__all__ = ["derive_macs"]
