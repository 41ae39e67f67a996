"""The C rtnetlink core through its Python layer: encoding, parsing, and (as root, in a network
namespace of the test's own) real kernel refusals on devices without VFs."""

from __future__ import annotations

import dataclasses
import errno
import json
import pickle
import random
import struct
import subprocess
import sys
import textwrap
import uuid

import nlmsg
import pytest
from pyroute2.netlink.rtnl.ifinfmsg import ifinfmsg

from pyvfmac import _lowlevel as ll
from pyvfmac.errors import InputError, NetlinkError
from pyvfmac.netlink import Rtnl
from pyvfmac.settings import describe
from pyvfmac.types import (
    LinkInfo,
    PciAddress,
    VfChange,
    VfResult,
    VfState,
    VfStates,
    bulk_constructor,
)

ALL = (ll.SET_MAC | ll.SET_VLAN | ll.SET_SPOOFCHK | ll.SET_TRUST | ll.SET_LINK_STATE
       | ll.SET_RATE)


def packed(ifindex: int, vf: int, flags: int = ll.SET_MAC, mac: bytes = b"\x02\0\0\0\0\x07",
           proto: int = 0x8100, vlan: int = 0, qos: int = 0, spoof: int = 0, trust: int = 0,
           state: int = 0, min_rate: int = 0, max_rate: int = 0) -> ll.PackedChange:
    return (ifindex, vf, flags, mac, proto, vlan, qos, spoof, trust, state, min_rate, max_rate)


def decode(msg: bytes) -> ifinfmsg:
    m = ifinfmsg(msg)
    m.decode()
    return m


def test_bulk_constructor_builds_equal_frozen_values() -> None:
    order = ("vf", "mac", "vlan", "qos", "vlan_proto", "spoofchk", "trust", "link_state",
             "min_tx_rate", "max_tx_rate")
    make = bulk_constructor(VfState, order)
    args = (3, "02:00:00:00:00:03", 42, 5, "802.1ad", True, None, "disable", 10, 20)
    built, plain = make(*args), VfState(**dict(zip(order, args)))  # type: ignore[arg-type]
    assert built == plain and hash(built) == hash(plain) and repr(built) == repr(plain)
    with pytest.raises(dataclasses.FrozenInstanceError):
        built.mac = "02:00:00:00:00:04"  # type: ignore[misc]
    with pytest.raises(TypeError):
        make(*args[:-1])
    change = VfChange(pf="eth0", vf=1)
    result = bulk_constructor(VfResult, ("change", "pf_name", "errno", "ext_msg", "attempts"))(
        change, "eth0", 0, "", 1)
    assert result == VfResult(change=change, pf_name="eth0") and result.ok
    assert result.refusal is None and result.kept is None and result.undo_errno == 0
    # fields left out of the order get their defaults
    mac_only = bulk_constructor(VfChange, ("pf", "vf", "mac"))(7, 3, "02:00:00:00:00:07")
    assert mac_only == VfChange(pf=7, vf=3, mac="02:00:00:00:00:07") and mac_only.mac_only()
    assert repr(mac_only) == repr(VfChange(pf=7, vf=3, mac="02:00:00:00:00:07"))
    for bad in (("vf", "mac"), ("pf", "vf", "mac", "mac"), ("pf", "vf", "speed")):
        with pytest.raises(TypeError, match="does not name each of its fields"):
            bulk_constructor(VfChange, bad)  # vf and pf have no default; twice; unknown


def test_bulk_constructor_refuses_validating_classes() -> None:
    with pytest.raises(TypeError, match="PciAddress validates"):
        bulk_constructor(PciAddress)


# ---------------------------------------------------------------- encoding


def test_every_setting_decodes_with_pyroute2() -> None:
    (msg,) = ll.vf_encode([packed(7, 3, ALL, b"\x02\0\0\0\0\x03", 0x88A8, 42, 3, 1, 0, 2, 10, 100)])
    m = decode(msg)
    assert m["header"]["type"] == 19  # RTM_SETLINK
    assert m["header"]["flags"] == 5  # NLM_F_REQUEST | NLM_F_ACK
    assert m["index"] == 7
    lists = [a for a in m["attrs"] if a[0] == "IFLA_VFINFO_LIST"]
    assert len(lists) == 1
    (info,) = lists[0][1].get_attrs("IFLA_VF_INFO")
    got = dict(info["attrs"])
    assert got["IFLA_VF_MAC"] == {"vf": 3, "mac": "02:00:00:00:00:03"}
    (vlan,) = got["IFLA_VF_VLAN_LIST"]["attrs"]
    assert vlan[1] == {"vf": 3, "vlan": 42, "qos": 3, "proto": 0x88A8}
    assert got["IFLA_VF_RATE"] == {"vf": 3, "min_tx_rate": 10, "max_tx_rate": 100}
    assert got["IFLA_VF_SPOOFCHK"] == {"vf": 3, "spoofchk": 1}
    assert got["IFLA_VF_LINK_STATE"] == {"vf": 3, "link_state": 2}
    assert got["IFLA_VF_TRUST"] == {"vf": 3, "trust": 0}


def test_only_requested_settings_are_sent() -> None:
    (msg,) = ll.vf_encode([packed(2, 1, ll.SET_TRUST, trust=1)])
    (info,) = decode(msg).get_attr("IFLA_VFINFO_LIST").get_attrs("IFLA_VF_INFO")
    assert [name for name, _ in info["attrs"]] == ["IFLA_VF_TRUST"]


def test_mac_only_message_golden_bytes() -> None:
    (msg,) = ll.vf_encode([packed(5, 9, ll.SET_MAC, b"\x52\x54\x00\x6d\x90\x02")], seq=77)
    vf_mac = struct.pack("=HHI", 40, 1, 9) + bytes.fromhex("5254006d9002") + bytes(26)
    vf_info = struct.pack("=HH", 4 + len(vf_mac), 1) + vf_mac
    vf_list = struct.pack("=HH", 4 + len(vf_info), 22) + vf_info
    ifi = struct.pack("=BxHiII", 0, 0, 5, 0, 0)
    body = ifi + vf_list
    expected = struct.pack("=IHHII", 16 + len(body), 19, 5, 77, 0) + body
    assert msg == expected


def test_vlan_list_golden_bytes() -> None:
    (msg,) = ll.vf_encode([packed(5, 2, ll.SET_VLAN, proto=0x8100, vlan=100, qos=5)])
    info = struct.pack("=IIIHxx", 2, 100, 5, 0x0081)  # vlan_proto is big-endian 0x8100
    vinfo = struct.pack("=HH", 4 + 16, 1) + info  # sizeof(struct ifla_vf_vlan_info), as the kernel checks
    vlist = struct.pack("=HH", 4 + len(vinfo), 12) + vinfo
    assert msg.endswith(vlist)


def test_large_batch_is_split_under_64k_one_list_per_message() -> None:
    changes = [packed(4, i, mac=nlmsg.vf_mac(i)) for i in range(4096)]
    msgs = ll.vf_encode(changes)
    assert len(msgs) > 1
    seen: list[tuple[int, str]] = []
    for msg in msgs:
        m = decode(msg)
        lists = [a for a in m["attrs"] if a[0] == "IFLA_VFINFO_LIST"]
        assert len(lists) == 1
        # the nest's own length field must be the true one (no wrap when sending)
        (declared,) = struct.unpack_from("=H", msg, 32)
        assert declared == len(msg) - 32 <= 65535
        for info in lists[0][1].get_attrs("IFLA_VF_INFO"):
            mac = info.get_attr("IFLA_VF_MAC")
            seen.append((mac["vf"], mac["mac"]))
    assert seen == [(i, nlmsg.vf_mac(i).hex(":")) for i in range(4096)]


def test_max_per_msg_and_one_pf_per_message() -> None:
    changes = [packed(4, i) for i in range(10)] + [packed(6, i) for i in range(3)]
    msgs = ll.vf_encode(changes, max_per_msg=4)
    sizes = [(decode(m)["index"], len(decode(m).get_attr("IFLA_VFINFO_LIST").get_attrs("IFLA_VF_INFO")))
             for m in msgs]
    assert sizes == [(4, 4), (4, 4), (4, 2), (6, 3)]


def test_port_profile_golden_bytes() -> None:
    inst = uuid.UUID("12345678-1234-5678-9abc-def012345678").bytes
    msg = ll.vf_port_encode(3, 2, ll.PORT_ASSOCIATE, "prof1", inst, None, seq=9)
    port = (
        struct.pack("=HHI", 8, 1, 2)                       # IFLA_PORT_VF
        + struct.pack("=HH", 4 + 6, 2) + b"prof1\0" + b"\0\0"  # IFLA_PORT_PROFILE, padded
        + struct.pack("=HH", 20, 4) + inst                 # IFLA_PORT_INSTANCE_UUID
        + struct.pack("=HHB", 5, 6, 2) + b"\0\0\0"         # IFLA_PORT_REQUEST = ASSOCIATE
    )
    vf_port = struct.pack("=HH", 4 + len(port), 1) + port
    vf_ports = struct.pack("=HH", 4 + len(vf_port), 24) + vf_port
    body = struct.pack("=BxHiII", 0, 0, 3, 0, 0) + vf_ports
    assert msg == struct.pack("=IHHII", 16 + len(body), 19, 5, 9, 0) + body


# ---------------------------------------------------------------- input checks


@pytest.mark.parametrize(
    ("change", "words"),
    [
        (VfChange(pf="lo", vf=0, mac="01:00:5e:00:00:01"), "multicast"),
        (VfChange(pf="lo", vf=0, mac="ff:ff:ff:ff:ff:ff"), "broadcast"),
        (VfChange(pf="lo", vf=0, mac="00:00:00:00:00:00"), "all-zero"),
        (VfChange(pf="lo", vf=0, mac="02:00:00:00:00"), "six"),
        (VfChange(pf="lo", vf=-1, mac="02:00:00:00:00:01"), "VF index"),
        (VfChange(pf="lo", vf=0, vlan=4096), "VLAN id"),
        (VfChange(pf="lo", vf=0, vlan=5, qos=8), "qos"),
        (VfChange(pf="lo", vf=0, vlan=5, vlan_proto="802.1X"), "802.1X"),  # type: ignore[arg-type]
        (VfChange(pf="lo", vf=0, link_state="up"), "link state"),  # type: ignore[arg-type]
        (VfChange(pf="lo", vf=0, max_tx_rate=-1), "max_tx_rate"),
        (VfChange(pf="bad/name", vf=0, trust=True), "bad/name"),
    ],
)
def test_bad_input_is_refused_before_sending(change: VfChange, words: str) -> None:
    with Rtnl() as nl, pytest.raises(InputError, match=words.replace(".", r"\.")):
        nl.apply([change])


def test_zero_mac_allowed_only_for_restores() -> None:
    change = VfChange(pf="lo", vf=0, mac="00-00-00-00-00-00", allow_zero_mac=True)
    (msg,) = ll.vf_encode([packed(1, 0, ll.SET_MAC, bytes(6))])
    assert decode(msg).get_attr("IFLA_VFINFO_LIST").get_attrs("IFLA_VF_INFO")[0].get_attr(
        "IFLA_VF_MAC")["mac"] == "00:00:00:00:00:00"
    assert "MAC 00-00-00-00-00-00" in describe(change)


def test_bulk_macs_are_checked_whole_before_sending() -> None:
    with Rtnl() as nl:
        with pytest.raises(InputError, match="lo vf 2: MAC '01:00:5e:00:00:01': multicast"):
            nl.set_macs("lo", {1: "02:00:00:00:00:01", 2: "01:00:5e:00:00:01"})
        with pytest.raises(InputError, match="VF index -3"):
            nl.set_macs("lo", {-3: "02:00:00:00:00:01"})
        with pytest.raises(InputError, match="all-zero"):
            nl.set_macs("lo", {0: "00:00:00:00:00:00"})


@pytest.mark.parametrize(
    ("text", "n", "bad"),
    [
        (b"02:00:00:00:00:01", 1, -1),
        (b"02:00:00:00:00:01\n02:00:00:00:00:02", 2, -1),
        (b"", 0, -1),
        (b"02:00:00:00:00:01\n", 1, 0),          # trailing newline
        (b"02:00:00:00:00:01\n02:00:00:00:00:02", 1, 0),  # more entries than n
        (b"02:00:00:00:00:01", 2, 0),            # fewer: entry 0 lacks its newline
        (b"02:00:00:00:00:0A", 1, 0),            # uppercase: not canonical
        (b"02-00-00-00-00-01", 1, 0),
        (b"02:00:00:00:00:01\n01:00:5e:00:00:01", 2, 1),  # multicast
        (b"02:00:00:00:00:01\n00:00:00:00:00:00", 2, 1),  # all-zero
        (b"02:00:00:00:00:01\n02:00:00:00:00:0g", 2, 1),
        (b"02:00:00:00:00:01\r02:00:00:00:00:02", 2, 0),
        (b"02:00:00:00:00:01\n02:00:00:00:00:2", 2, 1),   # short
        (b"02:00:00:00:00:01\x00", 1, 0),
        (b"x", 0, 0),
    ],
)
def test_bulk_mac_text_parser(text: bytes, n: int, bad: int) -> None:
    out, got = ll.macs_parse(text, n)
    assert got == bad
    if bad < 0:
        want = b"".join(bytes.fromhex(m.replace(":", "")) for m in text.decode().split("\n") if m)
        assert out == want


def test_bulk_mac_text_parser_random_octets() -> None:
    rng = random.Random(7)
    macs = [bytes([rng.randrange(256) & 0xFE | 0x02]) + rng.randbytes(5) for _ in range(3000)]
    out, bad = ll.macs_parse("\n".join(m.hex(":") for m in macs).encode(), len(macs))
    assert bad == -1 and out == b"".join(macs)


@pytest.mark.parametrize(
    ("macs", "words"),
    [
        ({0: "02:00:00:00:00:01", -1: "02:00:00:00:00:02"}, "VF index -1"),
        ({0: "02:00:00:00:00:01", 2.0: "02:00:00:00:00:02"}, "VF index 2.0"),
        ({"3": "02:00:00:00:00:01"}, "VF index '3'"),
        ({0x7FFFFFFF: "02:00:00:00:00:01"}, "VF index 2147483647"),
        ({1 << 40: "02:00:00:00:00:01"}, "VF index 1099511627776"),
        ({0: "02:00:00:00:00:01", 1: 5}, "lo vf 1: MAC 5"),
        ({0: "02:00:00:00:00:01", 7: "02:00:00:00:00:01\n02:00:00:00:00:02"}, "lo vf 7: MAC"),
        ({4: "02:00:00:00:00:01", 9: "02:00:00:00:00:0é"}, "lo vf 9: MAC '02:00:00:00:00:0é'"),
        ({4: "02:00:00:00:00:01", 9: ""}, "lo vf 9: MAC ''"),
        (["02:00:00:00:00:01", "ff:ff:ff:ff:ff:ff"], "lo vf 1: MAC 'ff:ff:ff:ff:ff:ff'"),
        ("02:00:00:00:00:01", "sequence of MACs, not str"),
        ({"02:00:00:00:00:01"}, "sequence of MACs, not set"),
    ],
)
def test_bulk_bad_input_names_the_vf_and_value(macs: object, words: str) -> None:
    with Rtnl() as nl, pytest.raises(InputError) as exc:
        nl.set_macs("lo", macs)  # type: ignore[arg-type]
    assert words in str(exc.value)


@pytest.mark.parametrize(("n", "max_per_msg"), [(1, 0), (1489, 0), (1490, 0), (4096, 0),
                                                (100, 7), (5000, 2000)])
def test_bulk_path_sends_the_general_encoders_bytes(n: int, max_per_msg: int) -> None:
    """The bulk path's own encoder and the general one ask the kernel for the same work."""
    rng = random.Random(n)
    vfs = rng.sample(range(1 << 20), n)
    macs = [bytes([0x02]) + rng.randbytes(5) for _ in range(n)]
    bulk = ll.macs_encode(9, vfs, b"".join(macs), max_per_msg=max_per_msg)
    general = ll.vf_encode([packed(9, vf, ll.SET_MAC, mac) for vf, mac in zip(vfs, macs)],
                           max_per_msg=max_per_msg)
    assert bulk == general
    assert ll.macs_encode(9, None, b"".join(macs)) == ll.vf_encode(
        [packed(9, i, ll.SET_MAC, mac) for i, mac in enumerate(macs)])


@pytest.mark.parametrize(
    ("pfs", "words", "kind"),
    [
        ({"nosuchdev9": ["02:00:00:00:00:01"]}, "nosuchdev9", NetlinkError),
        ({"lo": ["02:00:00:00:00:01"], "nosuchdev9": ["02:00:00:00:00:01"]}, "nosuchdev9",
         NetlinkError),
        ({0x7FFFFFF0: ["02:00:00:00:00:01"]}, "2147483632", NetlinkError),
        ({-1: ["02:00:00:00:00:01"]}, "-1", NetlinkError),
        ({"a" * 16: ["02:00:00:00:00:01"]}, "a" * 16, InputError),
        ({"a/b": ["02:00:00:00:00:01"]}, "a/b", InputError),
        ({True: ["02:00:00:00:00:01"]}, "True", InputError),
        ({"lo": ["02:00:00:00:00:01"], "lo ": ["02:00:00:00:00:01"]}, "lo ", InputError),
        ({"lo": {0: "02:00:00:00:00:01"}, 1: {1 << 31: "02:00:00:00:00:01"}}, "lo: VF index 2147483648",
         InputError),
        ({"lo": ["02:00:00:00:00:01"] * 3, 1: ["02:00:00:00:00:01", "x"]}, "lo vf 1: MAC 'x'",
         InputError),
    ],
)
def test_bulk_many_pfs_checked_whole(pfs: dict[object, object], words: str, kind: type) -> None:
    with Rtnl() as nl, pytest.raises(kind) as exc:
        nl.set_macs_many(pfs)  # type: ignore[arg-type]
    assert words in str(exc.value)
    if kind is NetlinkError:
        assert exc.value.errno == errno.ENODEV  # type: ignore[attr-defined]


def test_bulk_empty_input_sends_nothing() -> None:
    with Rtnl() as nl:
        assert nl.set_macs("lo", {}) == {}
        assert nl.set_macs("lo", []) == {}


def test_missing_device_is_enodev() -> None:
    with Rtnl() as nl, pytest.raises(NetlinkError) as exc:
        nl.apply([VfChange(pf="nosuchdev9", vf=0, mac="02:00:00:00:00:01")])
    assert exc.value.errno == errno.ENODEV
    assert "nosuchdev9" in str(exc.value) and "ENODEV" in str(exc.value)


# ---------------------------------------------------------------- parsing


def test_parse_one_vf_every_field() -> None:
    vf = nlmsg.vf_info(0, b"\x02\x11\x22\x33\x44\x55", vlan=42, qos=3, proto=0x88A8, spoofchk=0,
                       trust=1, link_state=2, min_rate=10, max_rate=100)
    (link,) = ll.links_parse(nlmsg.newlink(9, "eth9", vfs=[vf], num_vf=1,
                                           perm=b"\x02\0\0\0\0\x09"))
    assert (link.ifindex, link.name, link.mac, link.perm_mac) == (
        9, "eth9", "02:00:00:00:00:01", "02:00:00:00:00:09")
    assert (link.parent_bus, link.parent_dev, link.num_vf, link.missing_vfs) == (
        "pci", "0000:01:00.0", 1, 0)
    (state,) = link.vfs
    assert state.mac == "02:11:22:33:44:55"
    assert (state.vlan, state.qos, state.vlan_proto) == (42, 3, "802.1ad")
    assert (state.spoofchk, state.trust, state.link_state) == (False, True, "disable")
    assert (state.min_tx_rate, state.max_tx_rate) == (10, 100)


def test_unsupported_settings_read_as_none() -> None:
    vf = nlmsg.vf_info(0, b"\x02\0\0\0\0\x01", spoofchk=-1, trust=-1, link_state=7)
    (link,) = ll.links_parse(nlmsg.newlink(2, "x", vfs=[vf], num_vf=1))
    assert (link.vfs[0].spoofchk, link.vfs[0].trust, link.vfs[0].link_state) == (None, None, None)


@pytest.mark.parametrize("count", [1, 64, 1489, 1490, 4096, 5000])
def test_parse_lists_of_any_size(count: int) -> None:
    vfs = [nlmsg.vf_info(i, nlmsg.vf_mac(i), vlan=i % 4096) for i in range(count)]
    trailer = nlmsg.nla(nlmsg.IFLA_AF_SPEC, b"\0" * 8)
    msg = nlmsg.newlink(3, "pf0", vfs=vfs, num_vf=count, perm=b"\x02\0\0\0\0\x33",
                        after_list=trailer)
    (link,) = ll.links_parse(msg + nlmsg.done())
    assert len(link.vfs) == count and link.missing_vfs == 0
    assert [v.mac for v in link.vfs] == [nlmsg.vf_mac(i).hex(":") for i in range(count)]
    assert [v.vlan for v in link.vfs] == [i % 4096 for i in range(count)]
    # attributes after a wrapped list are still read
    assert link.perm_mac == "02:00:00:00:00:33"


def _parsed_vfs(count: int, *, order: list[int] | None = None) -> LinkInfo:
    vfs = [nlmsg.vf_info(i, nlmsg.vf_mac(i), vlan=i % 7, qos=i % 3, proto=0x88A8 if i % 2 else 0,
                         spoofchk=i % 2, trust=-1 if i % 5 else 1, link_state=i % 3,
                         min_rate=i % 11, max_rate=100 + i) for i in (order or range(count))]
    (link,) = ll.links_parse(nlmsg.newlink(3, "pf0", vfs=vfs, num_vf=count))
    return link


def test_vf_states_read_equal_the_same_values_built_one_by_one() -> None:
    """LinkInfo.vfs as read (columns, VfState built when looked at) against VfState values
    built by their constructor from the same fields: equal, hashed alike, in every access."""
    link = _parsed_vfs(300)
    columns = {name: link.vfs.column(name) for name in VfStates.FIELDS}  # before any VfState
    built = tuple(VfState(**{name: columns[name][i] for name in VfStates.FIELDS})
                  for i in range(300))
    assert [s.mac for s in built] == [nlmsg.vf_mac(i).hex(":") for i in range(300)]
    assert link.vfs[7] == built[7] and link.vfs[-1] == built[-1]  # one built, by position
    assert link.vfs[10:13] == built[10:13] and isinstance(link.vfs[10:13], tuple)
    assert len(link.vfs) == 300 and list(link.vfs) == list(built)
    assert link.vfs == built and built == link.vfs and hash(link.vfs) == hash(built)
    assert link.vfs != built[:-1] and link.vfs != list(built)  # a tuple's equality, not more
    assert repr(link.vfs) == repr(built)
    assert link.vf(299) == built[299] and link.vf(0) == built[0]
    assert pickle.loads(pickle.dumps(link)) == link
    by_tuple = dataclasses.replace(link, vfs=built)  # a tuple is taken, kept as VfStates
    assert isinstance(by_tuple.vfs, VfStates) and by_tuple == link and hash(by_tuple) == hash(link)
    assert by_tuple.vfs.column("max_tx_rate") == tuple(100 + i for i in range(300))
    with pytest.raises(IndexError):
        link.vfs[300]


def test_vf_states_listed_out_of_order_are_found_by_index() -> None:
    link = _parsed_vfs(5, order=[3, 0, 4, 1, 2])
    assert [link.vf(i).vf for i in range(5)] == list(range(5))
    assert link.vf(3).mac == nlmsg.vf_mac(3).hex(":") and link.vfs[0].vf == 3
    with pytest.raises(LookupError, match="pf0: no VF 5"):
        link.vf(5)
    with pytest.raises(LookupError, match="no VF -1"):
        link.vf(-1)


def test_vf_states_read_a_column_only_when_asked() -> None:
    """Each column is loaded once, when first needed: the MACs alone for a MAC comparison,
    every column for a VfState."""
    link = _parsed_vfs(50)
    asked: list[str] = []

    def load(name: str) -> tuple[object, ...]:
        asked.append(name)
        return link.vfs.column(name)

    loaded = VfStates(50, load)
    assert len(loaded) == 50 and asked == []
    assert loaded.column("mac") == link.vfs.column("mac") and asked == ["mac"]
    loaded.column("mac")
    assert asked == ["mac"]
    assert loaded[3] == link.vfs[3] and sorted(asked) == sorted(VfStates.FIELDS)
    assert loaded == link.vfs and len(asked) == len(VfStates.FIELDS)


def test_vf_states_refuse_bad_columns() -> None:
    with pytest.raises(ValueError, match="column vlan has 1 values, not 2"):
        VfStates(2, lambda name: [0] if name == "vlan" else [0, 1]).column("vlan")
    with pytest.raises(ValueError, match="no field 'speed'"):
        VfStates(0, lambda name: []).column("speed")
    assert len(VfStates.of(())) == 0 and VfStates.of(()) == ()


def test_wrapped_list_without_num_vf_stops_at_next_attribute() -> None:
    vfs = [nlmsg.vf_info(i, nlmsg.vf_mac(i)) for i in range(3000)]
    msg = nlmsg.newlink(3, "pf0", vfs=vfs, perm=b"\x02\0\0\0\0\x44")
    (link,) = ll.links_parse(msg)
    assert len(link.vfs) == 3000 and link.perm_mac == "02:00:00:00:00:44"


def test_short_list_is_reported_missing() -> None:
    vfs = [nlmsg.vf_info(i, nlmsg.vf_mac(i)) for i in range(5)]
    (link,) = ll.links_parse(nlmsg.newlink(3, "pf0", vfs=vfs, num_vf=8))
    assert len(link.vfs) == 5 and link.missing_vfs == 3


def test_list_length_that_lies_is_refused() -> None:
    vfs = [nlmsg.vf_info(i, nlmsg.vf_mac(i)) for i in range(4)]
    real = 4 + len(b"".join(vfs))
    for length in (real - 8, real + 4, 3, 0):
        msg = nlmsg.newlink(3, "pf0", vfs=vfs, num_vf=4, list_length=length)
        with pytest.raises(NetlinkError) as exc:
            ll.links_parse(msg)
        assert exc.value.errno == errno.EBADMSG


def test_dump_of_several_links() -> None:
    data = (nlmsg.newlink(1, "lo") + nlmsg.newlink(
        2, "pf", vfs=[nlmsg.vf_info(0, nlmsg.vf_mac(0))], num_vf=1) + nlmsg.done())
    links = ll.links_parse(data)
    assert [(x.name, x.num_vf, len(x.vfs)) for x in links] == [("lo", None, 0), ("pf", 1, 1)]


def test_error_reply_becomes_its_errno() -> None:
    with pytest.raises(NetlinkError) as exc:
        ll.links_parse(nlmsg.error(-errno.ENODEV))
    assert exc.value.errno == errno.ENODEV


def test_every_truncation_is_a_clean_error() -> None:
    vfs = [nlmsg.vf_info(i, nlmsg.vf_mac(i)) for i in range(20)]
    msg = nlmsg.newlink(3, "pf0", vfs=vfs, num_vf=20)
    for cut in range(len(msg)):
        try:
            links = ll.links_parse(msg[:cut])
        except NetlinkError as exc:
            assert exc.errno == errno.EBADMSG
        else:
            assert links == []  # only a cut at 0 leaves nothing to parse
            assert cut == 0


def test_random_corruption_never_crashes() -> None:
    rng = random.Random(20261125)
    vfs = [nlmsg.vf_info(i, nlmsg.vf_mac(i), vlan=i) for i in range(40)]
    msg = bytearray(nlmsg.newlink(3, "pf0", vfs=vfs, num_vf=40) + nlmsg.done())
    parsed = failed = 0
    for _ in range(3000):
        bad = bytearray(msg)
        for _ in range(rng.randint(1, 6)):
            pos = rng.randrange(len(bad))
            bad[pos] = rng.randrange(256)
        try:
            links = ll.links_parse(bytes(bad))
            parsed += 1
            for link in links:
                assert len(link.vfs) <= 40
        except NetlinkError:
            failed += 1
    assert parsed and failed  # both paths were exercised


# ---------------------------------------------------------------- real kernel, no VFs (root)

NETNS_SCRIPT = textwrap.dedent(
    """
    import json, sys
    from pyvfmac.netlink import Rtnl, check_results
    from pyvfmac.types import VfChange
    out = {}
    with Rtnl() as nl:
        changes = [
            VfChange(pf="vx0", vf=0, mac="02:00:00:00:00:01"),
            VfChange(pf="vx0", vf=1, vlan=42, qos=2),
            VfChange(pf="vx0", vf=2, vlan=42, vlan_proto="802.1ad"),
            VfChange(pf="vx0", vf=3, spoofchk=False),
            VfChange(pf="vx0", vf=4, trust=True),
            VfChange(pf="vx0", vf=5, link_state="disable"),
            VfChange(pf="vx0", vf=6, min_tx_rate=0, max_tx_rate=100),
            VfChange(pf="vx1", vf=0, mac="02:00:00:00:00:02"),
        ]
        out["results"] = [(r.pf_name, r.change.vf, r.errno) for r in nl.apply(changes)]
        try:
            check_results(nl.apply(changes[:1]))
        except OSError as exc:
            out["first"] = [exc.errno, str(exc)]
        try:
            nl.set_vf_port("vx0", 0, profile="prof")
        except OSError as exc:
            out["port"] = [exc.errno, str(exc)]
        bulk = nl.set_macs("vx0", {0: "02:00:00:00:00:0a", 3: "02:00:00:00:00:0b"})
        out["bulk"] = {str(k): [v.errno, str(v)] for k, v in bulk.items()}
        seq = nl.set_macs("vx0", ["02-00-00-00-00-0A", "0200.0000.000b", "02:00:00:00:00:0c"],
                          max_per_msg=2)
        out["seq"] = {str(k): [v.errno, str(v)] for k, v in seq.items()}
        import socket
        many = nl.set_macs_many({socket.if_nametoindex("vx1"): ["02:00:00:00:00:0d"],
                                 "vx0": {7: "02:00:00:00:00:0e"}})
        out["many"] = sorted([k[0], k[1], v.errno, str(v)] for k, v in many.items())
        try:
            nl.set_macs_many({"vx0": ["02:00:00:00:00:0f"], "nosuch0": ["02:00:00:00:00:10"]})
        except OSError as exc:
            out["nodev"] = [exc.errno, str(exc)]
        link = nl.read_link("vx0")
        out["link"] = [link.name, link.num_vf, len(link.vfs)]
        nl.set_link_mac("vx1", "02:aa:bb:cc:dd:ee")
    json.dump(out, sys.stdout)
    """
)


def ip_links(ns: str) -> dict[str, dict[str, object]]:
    out = subprocess.run(["ip", "-n", ns, "-j", "-d", "link", "show"], check=True,
                         capture_output=True, text=True).stdout
    return {link["ifname"]: link for link in json.loads(out)}


@pytest.mark.root
def test_veth_refuses_every_vf_setting_and_nothing_changes(veth_netns: str) -> None:
    netns = veth_netns
    before = ip_links(netns)
    run = subprocess.run(["ip", "netns", "exec", netns, sys.executable, "-P", "-c", NETNS_SCRIPT],
                         check=True, capture_output=True, text=True)
    out = json.loads(run.stdout)
    assert out["results"] == [["vx0", i, errno.EOPNOTSUPP] for i in range(7)] + [
        ["vx1", 0, errno.EOPNOTSUPP]]
    code, text = out["first"]
    assert code == errno.EOPNOTSUPP
    assert text == ("vx0 vf 0: cannot set MAC 02:00:00:00:00:01: Operation not supported "
                    "(EOPNOTSUPP)")
    assert out["port"][0] == errno.EOPNOTSUPP and "vx0 vf 0" in out["port"][1]
    assert out["link"] == ["vx0", None, 0]
    assert out["bulk"] == {
        "0": [errno.EOPNOTSUPP, "vx0 vf 0: cannot set MAC 02:00:00:00:00:0a: Operation not "
              "supported (EOPNOTSUPP)"],
        "3": [errno.EOPNOTSUPP, "vx0 vf 3: cannot set MAC 02:00:00:00:00:0b: Operation not "
              "supported (EOPNOTSUPP)"],
    }
    assert out["seq"] == {
        str(i): [errno.EOPNOTSUPP, f"vx0 vf {i}: cannot set MAC 02:00:00:00:00:0{c}: Operation "
                 "not supported (EOPNOTSUPP)"] for i, c in enumerate("abc")}
    assert out["many"] == [
        ["vx0", 7, errno.EOPNOTSUPP, "vx0 vf 7: cannot set MAC 02:00:00:00:00:0e: Operation not "
         "supported (EOPNOTSUPP)"],
        ["vx1", 0, errno.EOPNOTSUPP, "vx1 vf 0: cannot set MAC 02:00:00:00:00:0d: Operation not "
         "supported (EOPNOTSUPP)"]]
    assert out["nodev"][0] == errno.ENODEV and "nosuch0" in out["nodev"][1]
    after = ip_links(netns)
    assert after["vx1"]["address"] == "02:aa:bb:cc:dd:ee"  # the one real change made
    after["vx1"]["address"] = before["vx1"]["address"]
    for name in before:
        assert after[name] == before[name]


def test_reading_links_imports_no_typing() -> None:
    """The read path (every `vfmac` command) and the CNI plugin's leave `typing` unimported: its
    import is a noticeable share of a short command's start under emulation (issue 15)."""
    code = ("import sys\nbefore = set(sys.modules)  # site's own (an editable install's loader)\n"
            "from pyvfmac.netlink import Rtnl\nfrom pyvfmac import topology\n"
            "import pyvfmac.store, pyvfmac.cni.main, pyvfmac.cni.plugin\n"
            "with Rtnl() as nl:\n    vfs = list(nl.read_link('lo').vfs)\n"
            "print(sorted(m for m in set(sys.modules) - before if m.split('.')[0] == 'typing'))")
    out = subprocess.run([sys.executable, "-P", "-c", code], capture_output=True, text=True,
                         cwd="/", check=True).stdout
    assert out.strip() == "[]", out
