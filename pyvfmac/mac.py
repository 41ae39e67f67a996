"""MAC addresses: strict parsing to the canonical lowercase colon form."""

from __future__ import annotations

import re

from .errors import MacError

# The accepted spellings, as patterns: re compiles each on first use and keeps it (re's own
# cache), so that importing this module compiles nothing (every command imports it).
_HEX12 = r"[0-9a-fA-F]{12}"
_COLONS = r"(?:[0-9a-fA-F]{1,2}:){5}[0-9a-fA-F]{1,2}"
_DASHES = r"(?:[0-9a-fA-F]{2}-){5}[0-9a-fA-F]{2}"
_DOTS = r"(?:[0-9a-fA-F]{4}\.){2}[0-9a-fA-F]{4}"

ZERO_MAC = "00:00:00:00:00:00"
# Already canonical and unicast (second hex digit even): the common case, checked in one match.
_CANONICAL_UNICAST = r"[0-9a-f][02468ace](?::[0-9a-f]{2}){5}"


def is_canonical(text: object) -> bool:
    """Whether ``text`` is already what :func:`parse_mac` returns for a non-zero MAC."""
    return type(text) is str and re.fullmatch(_CANONICAL_UNICAST, text) is not None and (
        text != ZERO_MAC)


def parse_mac(text: str, *, allow_zero: bool = False, what: str = "MAC address") -> str:
    """Return ``text`` as ``aa:bb:cc:dd:ee:ff``; raise :class:`MacError` naming the value.

    Accepted spellings: ``52:54:00:6d:90:02`` (also single-digit octets ``2:0:0:0:0:1``),
    ``52-54-00-6D-90-02``, ``5254.006d.9002`` and ``5254006d9002``. Multicast and broadcast
    addresses are refused; all-zero only with ``allow_zero`` (restoring a VF whose original
    admin MAC was all-zero).
    """
    if type(text) is str and re.fullmatch(_CANONICAL_UNICAST, text) and text != ZERO_MAC:
        return text
    if not isinstance(text, str):
        raise MacError(f"{what} {text!r}: not a string")
    raw = text.strip()
    if re.fullmatch(_HEX12, raw):
        octets = [int(raw[i : i + 2], 16) for i in range(0, 12, 2)]
    elif re.fullmatch(_COLONS, raw):
        octets = [int(p, 16) for p in raw.split(":")]
    elif re.fullmatch(_DASHES, raw):
        octets = [int(p, 16) for p in raw.split("-")]
    elif re.fullmatch(_DOTS, raw):
        joined = raw.replace(".", "")
        octets = [int(joined[i : i + 2], 16) for i in range(0, 12, 2)]
    else:
        raise MacError(f"{what} {text!r}: not six hexadecimal octets")
    mac = ":".join(f"{o:02x}" for o in octets)
    if mac == "ff:ff:ff:ff:ff:ff":
        raise MacError(f"{what} {text!r}: broadcast address")
    if octets[0] & 1:
        raise MacError(f"{what} {text!r}: multicast address (lowest bit of first octet set)")
    if mac == ZERO_MAC and not allow_zero:
        raise MacError(f"{what} {text!r}: all-zero address")
    return mac


def mac_bytes(mac: str) -> bytes:
    """``bytes`` of a canonical MAC (as returned by :func:`parse_mac`)."""
    return bytes.fromhex(mac.replace(":", ""))


def format_mac(raw: bytes) -> str:
    """Canonical text of the first six bytes of ``raw``."""
    return ":".join(f"{b:02x}" for b in raw[:6])
