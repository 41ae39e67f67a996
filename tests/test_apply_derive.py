"""pyvfmac.apply.derive: derived MACs (the documented formula, a compatibility promise)."""

from __future__ import annotations

import hashlib
import hmac
import shutil
import subprocess
from collections.abc import Callable

import pytest
from applyhelp import KEY, PCI0, pf_link

from pyvfmac.apply import derive_mac, pf_identity
from pyvfmac.apply.derive import Deriver
from pyvfmac.mac import parse_mac
from pyvfmac.types import LinkInfo


# ------------------------------------------------------------------------------- derived MACs


def hmac_module(key: bytes, msg: bytes) -> bytes:
    """HMAC-SHA256 by the standard library (always there)."""
    return hmac.new(key, msg, hashlib.sha256).digest()


def hmac_openssl(key: bytes, msg: bytes) -> bytes:
    """HMAC-SHA256 by the openssl command (where installed)."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl not installed")
    out = subprocess.run([openssl, "dgst", "-sha256", "-hmac", key.decode()], input=msg,
                         capture_output=True, check=True).stdout.decode()
    return bytes.fromhex(out.split("= ")[-1].strip())


LONG_KEY = KEY * 3  # above HMAC-SHA256's 64-byte block: the key itself is hashed first


@pytest.mark.parametrize("hmac_sha256", [hmac_module, hmac_openssl], ids=["hmac", "openssl"])
@pytest.mark.parametrize("key", [KEY, LONG_KEY], ids=["key", "long-key"])
def test_derived_mac_matches_an_independent_hmac(
        hmac_sha256: Callable[[bytes, bytes], bytes], key: bytes) -> None:
    """The documented formula, computed by independent implementations: Python's hmac module
    (always) and openssl (the command the formula's documentation shows, where installed)."""
    for pf_id, vf in (("pci:0000:03:00.0", 3), ("dev:netdevsim:netdevsim10", 4095),
                      ("perm:aa:bb:cc:dd:ee:ff", 0)):
        msg = f"pyvfmac-derived-mac-v1\n{pf_id}\n{vf}".encode()
        h = hmac_sha256(key, msg)
        expected = bytes([(h[0] & 0xFC) | 0x02]) + h[1:6]
        assert derive_mac(key, pf_id, vf) == expected.hex(":")
        assert derive_mac(key, pf_id, vf, b"\x02\x00") == (b"\x02\x00" + h[:4]).hex(":")


def test_derived_mac_pinned_vector() -> None:
    """The compatibility promise: this value must never change (HMAC-SHA256, see derive)."""
    key = b"0123456789abcdef0123456789abcdef"
    assert derive_mac(key, "pci:0000:03:00.0", 3) == "42:82:77:f9:6c:34"
    assert derive_mac(key, "pci:0000:03:00.0", 3, b"\x02\x00") == "02:00:40:82:77:f9"


def test_derived_macs_are_locally_administered_unicast_and_valid() -> None:
    macs = [derive_mac(KEY, "pci:0000:03:00.0", i) for i in range(4096)]
    for mac in macs:
        first = int(mac[:2], 16)
        assert first & 0x02 and not first & 0x01, mac
        assert parse_mac(mac) == mac  # canonical and accepted (not multicast, not zero)
    assert len(set(macs)) == 4096


def test_derived_macs_differ_across_vfs_pfs_and_hosts() -> None:
    a = derive_mac(KEY, "pci:0000:03:00.0", 0)
    assert derive_mac(KEY, "pci:0000:03:00.0", 0) == a  # stable
    assert derive_mac(KEY, "pci:0000:03:00.0", 1) != a
    assert derive_mac(KEY, "pci:0000:03:00.1", 0) != a
    assert derive_mac(KEY[:-1] + b"0", "pci:0000:03:00.0", 0) != a
    # "vf 1" of pf "...0" and "vf 11" of pf "...0\n1" cannot meet: fields are newline-separated
    assert derive_mac(KEY, "pci:0000:03:00.0", 11) != derive_mac(KEY, "pci:0000:03:00.01", 1)


def test_prefix_is_kept() -> None:
    assert derive_mac(KEY, "pci:0000:03:00.0", 7, b"\x02\xaa\xbb").startswith("02:aa:bb:")
    assert derive_mac(KEY, "pci:0000:03:00.0", 7, b"\x0e").startswith("0e:")


def test_pf_identity_order() -> None:
    nsim = pf_link("eth9", 9, (), parent=("netdevsim", "netdevsim10"))
    assert pf_identity(None, nsim) == "dev:netdevsim:netdevsim10"
    with_perm = pf_link("eth9", 9, (), perm_mac="AA:BB:CC:DD:EE:01",
                        parent=("netdevsim", "netdevsim10"))
    assert pf_identity(None, with_perm) == "perm:aa:bb:cc:dd:ee:01"
    assert pf_identity(PCI0, with_perm) == "pci:0000:03:00.0"
    bare = LinkInfo(5, "veth0", "02:00:00:00:00:05", None, None, None, None, ())
    assert pf_identity(None, bare) is None


def _by_hmac(key: bytes, pf_id: str, vf: int, prefix: bytes = b"") -> str:
    h = hmac_module(key, f"pyvfmac-derived-mac-v1\n{pf_id}\n{vf}".encode())
    if prefix:
        return (prefix + h[:6 - len(prefix)]).hex(":")
    return (bytes([(h[0] & 0xFC) | 0x02]) + h[1:6]).hex(":")


@pytest.mark.parametrize("pf_id", ["pci:0000:03:00.0", "dev:" + "x" * 27, "dev:" + "y" * 90],
                         ids=["pci", "head-fills-the-block", "head-spans-blocks"])
@pytest.mark.parametrize("key", [b"", b"k", KEY, b"x" * 64, LONG_KEY],
                         ids=["empty", "1", "key", "block", "long"])
def test_bulk_derivation_equals_the_hmac_of_each_vf(pf_id: str, key: bytes) -> None:
    """Deriver.macs (one C call) against Python's hmac VF by VF: message lengths that end on,
    before and after SHA-256 block boundaries; indexes of 1 to 4 digits; an offset start."""
    d = Deriver(key, pf_id, b"")
    assert d.macs(0, 1200) == [_by_hmac(key, pf_id, vf) for vf in range(1200)]
    assert d.macs(4090, 6) == [_by_hmac(key, pf_id, vf) for vf in range(4090, 4096)]
    top = 0xFFFFFFFF
    assert d.macs(top - 1, 2) == [_by_hmac(key, pf_id, top - 1), _by_hmac(key, pf_id, top)]
    p = Deriver(key, pf_id, b"\x02\x01\x02\x03\x04")
    assert p.macs(7, 3) == [_by_hmac(key, pf_id, vf, b"\x02\x01\x02\x03\x04") for vf in (7, 8, 9)]
    assert d.macs(5, 0) == []


def test_bulk_derivation_refuses_what_it_cannot_do() -> None:
    with pytest.raises(ValueError, match="6 octets, at most 5"):
        Deriver(KEY, "pci:0000:03:00.0", b"\x02" * 6).macs(0, 1)
    with pytest.raises(ValueError, match="outside 0..4294967295"):
        Deriver(KEY, "pci:0000:03:00.0", b"").macs(0xFFFFFFFF, 2)
    with pytest.raises(ValueError, match="outside"):
        Deriver(KEY, "pci:0000:03:00.0", b"").macs(-1, 1)
