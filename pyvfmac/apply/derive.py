"""Derived MACs: the stable MAC ``mac_policy = "derived"`` gives each VF of ``vfmac apply``.

Derived MACs (a compatibility promise: the same inputs give the same MAC in every version)::

    key = content of the host_key file, leading and trailing ASCII whitespace removed
    pf  = "pci:" + PCI address, canonical (pci:0000:03:00.0)    when the PF is a PCI function
        | "perm:" + permanent MAC, lowercase (perm:aa:bb:cc:dd:ee:ff)   else, when it has one
        | "dev:" + parent bus + ":" + parent device (dev:netdevsim:netdevsim10)  else
      with derive_from = "permanent-mac" (in [defaults] or a [[pf]] table):
          "perm:" + the PF's permanent MAC (IFLA_PERM_ADDRESS), lowercase, always; a PF without
          one is a config error
    H   = HMAC-SHA256(key, "pyvfmac-derived-mac-v1\\n" + pf + "\\n" + decimal VF index)
    MAC = H[0:6] with the first octet's two low bits set to 10 (locally administered, unicast)
        | with mac_prefix P of n octets: P + H[0:6-n]

With ``/etc/machine-id`` as key, ``printf 'pyvfmac-derived-mac-v1\\npci:0000:03:00.0\\n3' |
openssl dgst -sha256 -hmac "$(cat /etc/machine-id)"`` shows H. Without a prefix 46 bits are
hashed; a 3-octet prefix leaves 24 bits, where 4096 VFs collide with probability about 0.4.

Which ``derive_from`` to choose: ``"pci"`` (the default, kept for compatibility) hangs the MACs on
the PF's PCI address, which changes when a card added elsewhere, a slot change or a firmware
setting renumbers the bus, and then every VF of the PF gets new MACs. ``"permanent-mac"`` hangs
them on the MAC burnt into the card: they move with the card, and a card swap (a new permanent
MAC) gives new ones. Both give the same MACs for a PF without a PCI address that has a permanent
MAC; a PF whose driver reports none (netdevsim, some virtual functions) can only use ``"pci"``.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (mypy: always_true)

from ..mac import ZERO_MAC
from ..types import LinkInfo, PciAddress

if TYPE_CHECKING:
    from .config import DeriveFrom

DERIVATION_TAG = "pyvfmac-derived-mac-v1"


def pf_identity(pci: PciAddress | None, link: LinkInfo,
                derive_from: DeriveFrom = "pci") -> str | None:
    """The stable identity a PF's derived MACs hang on (see the module docstring), or None."""
    if derive_from == "permanent-mac":
        if link.perm_mac and link.perm_mac != ZERO_MAC:
            return f"perm:{link.perm_mac.lower()}"
        return None
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


class Deriver:
    """The derived MACs of one PF's VFs (:func:`derive_mac` for many VFs): computed by the C
    core, one HMAC-SHA256 per VF with the key's pads and the common message head hashed once."""

    __slots__ = ("_key", "_head", "_prefix")

    def __init__(self, host_key: bytes, pf_id: str, prefix: bytes) -> None:
        self._key = host_key
        self._head = f"{DERIVATION_TAG}\n{pf_id}\n".encode()
        self._prefix = prefix

    def mac(self, vf: int) -> str:
        return self.macs(vf, 1)[0]

    def macs(self, first: int, count: int) -> list[str]:
        """The derived MACs of VFs ``first`` .. ``first + count - 1``."""
        from .. import _lowlevel  # the C core: loaded by a run, not by importing the package

        return _lowlevel.derive_macs(self._key, self._head, self._prefix, first, count)
