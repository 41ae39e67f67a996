"""Derived MACs: the stable MAC ``mac_policy = "derived"`` gives each VF of ``vfmac apply``.

Derived MACs (a compatibility promise: the same inputs give the same MAC in every version)::

    key = content of the host_key file, leading and trailing ASCII whitespace removed
    pf  = "pci:" + PCI address, canonical (pci:0000:03:00.0)    when the PF is a PCI function
        | "perm:" + permanent MAC, lowercase (perm:aa:bb:cc:dd:ee:ff)   else, when it has one
        | "dev:" + parent bus + ":" + parent device (dev:netdevsim:netdevsim10)  else
    H   = HMAC-SHA256(key, "pyvfmac-derived-mac-v1\\n" + pf + "\\n" + decimal VF index)
    MAC = H[0:6] with the first octet's two low bits set to 10 (locally administered, unicast)
        | with mac_prefix P of n octets: P + H[0:6-n]

With ``/etc/machine-id`` as key, ``printf 'pyvfmac-derived-mac-v1\\npci:0000:03:00.0\\n3' |
openssl dgst -sha256 -hmac "$(cat /etc/machine-id)"`` shows H. Without a prefix 46 bits are
hashed; a 3-octet prefix leaves 24 bits, where 4096 VFs collide with probability about 0.4.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

from ..mac import ZERO_MAC
from ..types import LinkInfo, PciAddress

DERIVATION_TAG = "pyvfmac-derived-mac-v1"


def pf_identity(pci: PciAddress | None, link: LinkInfo) -> str | None:
    """The stable identity a PF's derived MACs hang on (see the module docstring), or None."""
    if pci is not None:
        return f"pci:{pci}"
    if link.perm_mac and link.perm_mac != ZERO_MAC:
        return f"perm:{link.perm_mac.lower()}"
    if link.parent_bus and link.parent_dev:
        return f"dev:{link.parent_bus}:{link.parent_dev}"
    return None


def derive_mac(host_key: bytes, pf_id: str, vf: int, prefix: bytes = b"") -> str:
    """The derived MAC of VF ``vf`` of the PF with identity ``pf_id`` (formula in module doc)."""
    return Deriver(host_key, pf_id, prefix).mac(vf)


def _sha256_type() -> Callable[[bytes], Any]:
    """SHA-256 without loading OpenSSL when the interpreter has its own implementation:
    ``hashlib`` (and ``hmac``) load ``_hashlib``, i.e. libcrypto, about 3.6 MB of resident memory
    and a noticeable share of ``vfmac apply``'s start-up, for a few thousand tiny hashes."""
    from importlib import import_module

    for name in ("_sha256", "_sha2"):  # CPython's built-in module: 3.11, 3.12+
        try:
            return cast(Callable[[bytes], Any], import_module(name).sha256)
        except (ImportError, AttributeError):
            continue
    import hashlib  # pragma: no cover - an interpreter built without its own SHA-256

    return hashlib.sha256  # pragma: no cover


def _mac_of_digest(digest: bytes, prefix: bytes) -> str:
    if prefix:
        return (prefix + digest[: 6 - len(prefix)]).hex(":")
    raw = bytearray(digest[:6])
    raw[0] = (raw[0] & 0xFC) | 0x02
    return raw.hex(":")


class Deriver:
    """:func:`derive_mac` for many VFs of one PF: the HMAC (RFC 2104) pads and the common message
    head are hashed once, each VF costs two SHA-256 finishes (about 3x faster)."""

    __slots__ = ("_inner", "_outer", "_prefix")

    def __init__(self, host_key: bytes, pf_id: str, prefix: bytes) -> None:
        sha256 = _sha256_type()
        key = sha256(host_key).digest() if len(host_key) > 64 else host_key
        key = key.ljust(64, b"\0")
        self._inner = sha256(bytes(b ^ 0x36 for b in key))
        self._inner.update(f"{DERIVATION_TAG}\n{pf_id}\n".encode())
        self._outer = sha256(bytes(b ^ 0x5C for b in key))
        self._prefix = prefix

    def mac(self, vf: int) -> str:
        inner = self._inner.copy()
        inner.update(str(vf).encode())
        outer = self._outer.copy()
        outer.update(inner.digest())
        return _mac_of_digest(outer.digest(), self._prefix)
