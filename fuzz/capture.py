#!/usr/bin/env python3
"""Capture real kernel replies and sysfs contents in the testbed guest, as fuzzing seeds.

Run in the guest (see fuzz/README.md):
  flock /tmp/pyvfmac-qemu.lock tests/vm/testbed run --out /tmp/fuzz-capture \
      --topology igb=2,igb-vfs=7,nsim=1x4096 -- python3 fuzz/capture.py

Writes $PYVFMAC_TESTBED_OUT/capture/: raw/<name>.<i>.bin (every datagram the kernel sent, in
order) and sysfs.json (uevent files, attribute numbers and link targets of every PCI function).
fuzz/mkseeds.py turns them into fuzz/corpus/<target>/. Standard library only.
"""
import json
import os
import socket
import struct
import sys

RTM_NEWLINK, RTM_GETLINK, RTM_SETLINK = 16, 18, 19
NLMSG_ERROR, NLMSG_DONE = 2, 3
NLM_F_REQUEST, NLM_F_ACK, NLM_F_DUMP = 1, 4, 0x300
IFLA_IFNAME, IFLA_MTU, IFLA_EXT_MASK, IFLA_VFINFO_LIST = 3, 4, 29, 22
IFLA_VF_INFO, IFLA_VF_MAC, IFLA_VF_VLAN, IFLA_VF_LINK_STATE = 1, 1, 2, 5
IFLA_VF_VLAN_LIST, IFLA_VF_VLAN_INFO = 12, 1
RTEXT_FILTER_VF, RTEXT_FILTER_SKIP_STATS = 1, 8
SOL_NETLINK, NETLINK_CAP_ACK, NETLINK_EXT_ACK = 270, 10, 11

OUT = os.path.join(os.environ.get("PYVFMAC_TESTBED_OUT", "/tmp"), "capture")
RAW = os.path.join(OUT, "raw")


def nla(kind: int, payload: bytes) -> bytes:
    n = 4 + len(payload)
    return struct.pack("=HH", n, kind) + payload + b"\0" * (-n % 4)


def msg(kind: int, flags: int, seq: int, body: bytes) -> bytes:
    return struct.pack("=IHHII", 16 + len(body), kind, flags, seq, 0) + body


def ifinfo(ifindex: int) -> bytes:
    return struct.pack("=BxHiII", 0, 0, ifindex, 0, 0)


def vf_mac(vf: int, mac: bytes) -> bytes:
    return nla(IFLA_VF_INFO, nla(IFLA_VF_MAC, struct.pack("=I", vf) + mac + b"\0" * 26))


def sock(cap_ack: bool) -> socket.socket:
    s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE)
    s.setsockopt(SOL_NETLINK, NETLINK_EXT_ACK, 1)
    s.setsockopt(SOL_NETLINK, NETLINK_CAP_ACK, 1 if cap_ack else 0)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
    s.bind((0, 0))
    s.settimeout(5)
    return s


def walk(d: bytes):
    off = 0
    while off + 16 <= len(d):
        ln, kind = struct.unpack_from("=IH", d, off)
        if ln < 16:
            return
        yield kind
        off += (ln + 3) & ~3


def exchange(name: str, msgs: list[bytes], *, cap_ack: bool = True, dump: bool = False) -> None:
    """Send msgs, keep every datagram until each request is answered (an ACK / DONE / data)."""
    with sock(cap_ack) as s:
        for m in msgs:
            s.send(m)
        left, i = len(msgs), 0
        while left > 0:
            try:
                d = s.recv(16 << 20)
            except socket.timeout:
                print(f"capture: {name}: timeout, {left} unanswered", file=sys.stderr)
                return
            with open(os.path.join(RAW, f"{name}.{i:03d}.bin"), "wb") as f:
                f.write(d)
            i += 1
            for kind in walk(d):
                if kind == NLMSG_ERROR or kind == NLMSG_DONE or (not dump and kind == RTM_NEWLINK):
                    left -= 1


def getlink(ifindex: int, seq: int = 1, name: str | None = None) -> bytes:
    body = ifinfo(ifindex)
    if name:
        body += nla(IFLA_IFNAME, name.encode() + b"\0")
    body += nla(IFLA_EXT_MASK, struct.pack("=I", RTEXT_FILTER_VF | RTEXT_FILTER_SKIP_STATS))
    return msg(RTM_GETLINK, NLM_F_REQUEST | (NLM_F_DUMP if ifindex < 0 else 0), seq, body)


def setlink(ifindex: int, seq: int, attrs: bytes) -> bytes:
    return msg(RTM_SETLINK, NLM_F_REQUEST | NLM_F_ACK, seq, ifinfo(ifindex) + attrs)


def netdevs() -> dict[str, tuple[int, str]]:
    """name -> (ifindex, driver or bus)."""
    res = {}
    for n in sorted(os.listdir("/sys/class/net")):
        idx = int(open(f"/sys/class/net/{n}/ifindex").read())
        drv = os.path.basename(os.path.realpath(f"/sys/class/net/{n}/device/driver")) \
            if os.path.exists(f"/sys/class/net/{n}/device/driver") else ""
        res[n] = (idx, drv)
    return res


def pci_sysfs() -> dict:
    top = "/sys/bus/pci/devices"
    res = {}
    for dev in sorted(os.listdir(top)):
        d = os.path.join(top, dev)
        e: dict = {"files": {}, "links": {}, "net": []}
        for f in ("uevent", "vendor", "device", "class", "sriov_totalvfs", "sriov_numvfs"):
            try:
                e["files"][f] = open(os.path.join(d, f)).read()
            except OSError:
                pass
        for ln in sorted(os.listdir(d)):
            if ln in ("driver", "iommu_group", "physfn") or ln.startswith("virtfn"):
                e["links"][ln] = os.readlink(os.path.join(d, ln))
        if os.path.isdir(os.path.join(d, "net")):
            e["net"] = sorted(os.listdir(os.path.join(d, "net")))
        res[dev] = e
    return res


def main() -> int:
    os.makedirs(RAW, exist_ok=True)
    devs = netdevs()
    json.dump({"netdevs": devs, "pci": pci_sysfs()}, open(os.path.join(OUT, "sysfs.json"), "w"),
              indent=1)
    igb = [(n, i) for n, (i, drv) in devs.items() if drv == "igb"]
    igbvf = [(n, i) for n, (i, drv) in devs.items() if drv == "igbvf"]
    nsim = [(n, i) for n, (i, drv) in devs.items() if drv == "netdevsim" or n.startswith("eni")]
    if not nsim:
        nsim = [(n, i) for n, (i, drv) in devs.items()
                if os.path.realpath(f"/sys/class/net/{n}").find("netdevsim") >= 0]
    print("capture: igb", igb, "igbvf", igbvf[:2], "nsim", nsim, file=sys.stderr)

    exchange("dump", [getlink(-1)], dump=True)
    exchange("get_lo", [getlink(1)])
    for n, i in igb[:1] + igbvf[:1]:
        exchange(f"get_{n}", [getlink(i)])
    if igb:
        exchange("get_byname", [getlink(0, name=igb[0][0])])
    for n, i in nsim[:1]:
        exchange(f"get_nsim_{n}", [getlink(i)])
    exchange("get_enodev", [getlink(999999)])
    exchange("get_enodev_name", [getlink(0, name="nosuchdev0")])
    if igb:
        pf = igb[0][1]
        mtu = nla(IFLA_MTU, struct.pack("=I", 1000000))
        exchange("ack_mtu_capped", [setlink(pf, 1, mtu)], cap_ack=True)
        exchange("ack_mtu_echo", [setlink(pf, 1, mtu)], cap_ack=False)
        ls = nla(IFLA_VFINFO_LIST, nla(IFLA_VF_INFO, nla(IFLA_VF_LINK_STATE,
                                                         struct.pack("=II", 0, 1))))
        exchange("ack_igb_linkstate", [setlink(pf, 1, ls)], cap_ack=False)
        vl = nla(IFLA_VFINFO_LIST, nla(IFLA_VF_INFO, nla(IFLA_VF_VLAN_LIST, nla(
            IFLA_VF_VLAN_INFO, struct.pack("=IIIH2x", 0, 10, 0, 0xa888)))))
        exchange("ack_igb_8021ad", [setlink(pf, 1, vl)], cap_ack=True)
        macs = [setlink(pf, 1 + k, nla(IFLA_VFINFO_LIST, vf_mac(k, bytes([2, 0, 0, 0, 1, k]))))
                for k in range(7)]
        exchange("ack_igb_macs", macs, cap_ack=True)
        exchange("ack_igb_badvf", [setlink(pf, 1, nla(IFLA_VFINFO_LIST, vf_mac(
            100, bytes([2, 0, 0, 0, 1, 1]))))], cap_ack=False)
    for n, i in nsim[:1]:
        big = b"".join(vf_mac(k, bytes([2, 0, 0, 1, k >> 8, k & 255])) for k in range(1000))
        exchange("ack_nsim_1000", [setlink(i, 1, nla(IFLA_VFINFO_LIST, big))], cap_ack=True)
        bad = b"".join(vf_mac(k, bytes([2, 0, 0, 1, k >> 8, k & 255])) for k in range(300))
        bad += vf_mac(5000, bytes([2, 0, 0, 1, 0, 1]))
        exchange("ack_nsim_badvf_echo", [setlink(i, 1, nla(IFLA_VFINFO_LIST, bad))],
                 cap_ack=False)
        pipe = [setlink(i, 1 + k, nla(IFLA_VFINFO_LIST, b"".join(
            vf_mac(k * 8 + j, bytes([2, 0, 0, 2, k, j])) for j in range(8)))) for k in range(64)]
        exchange("ack_nsim_pipelined", pipe, cap_ack=True)
        # the PF read back after the changes: a second large reply
        exchange(f"get_nsim_after_{n}", [getlink(i)])
    print("capture: done", len(os.listdir(RAW)), "datagrams", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
