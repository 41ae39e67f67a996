"""An independent, minimal rtnetlink message writer for tests: builds RTM_NEWLINK replies (with
VF lists of any size, lying lengths on request) byte by byte with ``struct``, not with pyvfmac."""

from __future__ import annotations

import struct

RTM_NEWLINK = 16
NLMSG_ERROR = 2
NLMSG_DONE = 3
NLA_F_NESTED = 0x8000
IFLA_ADDRESS, IFLA_IFNAME, IFLA_NUM_VF, IFLA_VFINFO_LIST = 1, 3, 21, 22
IFLA_AF_SPEC, IFLA_PERM_ADDRESS, IFLA_PARENT_DEV_NAME, IFLA_PARENT_DEV_BUS_NAME = 26, 54, 56, 57
IFLA_VF_INFO = 1
(IFLA_VF_MAC, IFLA_VF_VLAN, IFLA_VF_TX_RATE, IFLA_VF_SPOOFCHK, IFLA_VF_LINK_STATE, IFLA_VF_RATE,
 IFLA_VF_RSS_QUERY_EN) = range(1, 8)
IFLA_VF_TRUST, IFLA_VF_VLAN_LIST, IFLA_VF_VLAN_INFO = 9, 12, 1


def pad4(b: bytes) -> bytes:
    return b + b"\0" * (-len(b) % 4)


def nla(kind: int, payload: bytes, *, length: int | None = None) -> bytes:
    """One attribute; ``length`` overrides the header's length (which wraps at 16 bits)."""
    real = 4 + len(payload)
    return struct.pack("=HH", (real if length is None else length) & 0xFFFF, kind) + pad4(payload)


def vf_info(vf: int, mac: bytes, *, vlan: int = 0, qos: int = 0, proto: int = 0x8100,
            spoofchk: int = 1, trust: int = 0, link_state: int = 0, min_rate: int = 0,
            max_rate: int = 0, extra: bytes = b"") -> bytes:
    attrs = (
        nla(IFLA_VF_MAC, struct.pack("=I", vf) + mac.ljust(32, b"\0"))
        + nla(IFLA_VF_VLAN, struct.pack("=III", vf, vlan, qos))
        + nla(IFLA_VF_VLAN_LIST | NLA_F_NESTED,
              nla(IFLA_VF_VLAN_INFO, struct.pack("=III", vf, vlan, qos) + struct.pack(">H", proto)
                  + b"\0\0"))
        + nla(IFLA_VF_TX_RATE, struct.pack("=II", vf, max_rate))
        + nla(IFLA_VF_RATE, struct.pack("=III", vf, min_rate, max_rate))
        + nla(IFLA_VF_SPOOFCHK, struct.pack("=II", vf, spoofchk & 0xFFFFFFFF))
        + nla(IFLA_VF_LINK_STATE, struct.pack("=II", vf, link_state))
        + nla(IFLA_VF_RSS_QUERY_EN, struct.pack("=II", vf, 0))
        + nla(IFLA_VF_TRUST, struct.pack("=II", vf, trust & 0xFFFFFFFF))
        + extra
    )
    return nla(IFLA_VF_INFO | NLA_F_NESTED, attrs)


def vf_mac(vf: int) -> bytes:
    return bytes([0x02, 0x00, (vf >> 16) & 0xFF, (vf >> 8) & 0xFF, vf & 0xFF, 0x5A])


def newlink(ifindex: int, name: str, *, vfs: list[bytes] | None = None, num_vf: int | None = None,
            mac: bytes = b"\x02\x00\x00\x00\x00\x01", perm: bytes | None = None,
            list_length: int | None = None, after_list: bytes = b"", seq: int = 1, pid: int = 0,
            flags: int = 0) -> bytes:
    """An RTM_NEWLINK as the kernel fills it: name, address, num_vf, then the VF list."""
    body = struct.pack("=BxHiII", 0, 1, ifindex, 0x1043, 0)
    body += nla(IFLA_IFNAME, name.encode() + b"\0") + nla(IFLA_ADDRESS, mac)
    body += nla(IFLA_PARENT_DEV_BUS_NAME, b"pci\0") + nla(IFLA_PARENT_DEV_NAME, b"0000:01:00.0\0")
    if num_vf is not None:
        body += nla(IFLA_NUM_VF, struct.pack("=I", num_vf))
    if vfs is not None:
        body += nla(IFLA_VFINFO_LIST | NLA_F_NESTED, b"".join(vfs), length=list_length)
    if perm is not None:
        body += nla(IFLA_PERM_ADDRESS, perm)
    body += after_list
    return struct.pack("=IHHII", 16 + len(body), RTM_NEWLINK, flags, seq, pid) + body


def done(seq: int = 1, err: int = 0) -> bytes:
    return struct.pack("=IHHIIi", 20, NLMSG_DONE, 2, seq, 0, err)


def error(err: int, seq: int = 1) -> bytes:
    return struct.pack("=IHHIIiIHHII", 36, NLMSG_ERROR, 0, seq, 0, err, 16, 18, 0, seq, 0)
