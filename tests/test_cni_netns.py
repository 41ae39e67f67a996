"""vfmac-cni's namespace operations (csrc/vfm_ifconf.c through pyvfmac.netns) on a veth
pair between two namespaces of the test's own, checked with ``ip -n NS -j``."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest

from pyvfmac.netns import Netns, host_netdevs, open_pod
from pyvfmac.errors import NetlinkError

pytestmark = pytest.mark.root


def ip(ns: str, *args: str) -> list[dict[str, Any]]:
    out = subprocess.run(["ip", "-n", ns, "-j", *args], check=True, capture_output=True,
                         text=True).stdout
    return json.loads(out) if out.strip() else []


@pytest.fixture
def pod() -> Iterator[str]:
    name = f"pyvfmac-pod{os.getpid()}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)


def test_move_configure_and_bring_back(veth_netns: str, pod: str) -> None:
    with Netns(f"/run/netns/{veth_netns}") as home, Netns(f"/run/netns/{pod}") as inside:
        link = home.link("vx0")
        assert link is not None
        home.move(link, inside, "net1")
        moved = inside.link("net1") or inside.link("vx0")
        assert moved is not None and home.link("vx0") is None
        if moved.name != "net1":
            inside.rename(moved, "net1")
        moved = inside.link("net1")
        assert moved is not None
        inside.set_mtu(moved, 1400)
        inside.set_mac(moved, "02:11:22:33:44:55")
        inside.up(moved)
        inside.add_address(moved, "10.9.8.7/24")
        inside.add_address(moved, "fd00::7/64")
        inside.add_route(moved, "10.50.0.0/16", "10.9.8.1")
        (shown,) = ip(pod, "addr", "show", "dev", "net1")
        assert (shown["mtu"], shown["address"]) == (1400, "02:11:22:33:44:55")
        assert "UP" in shown["flags"]
        assert inside.addresses(moved) >= {"10.9.8.7/24", "fd00::7/64"}
        routes = ip(pod, "route", "show", "10.50.0.0/16")
        assert routes and routes[0]["gateway"] == "10.9.8.1"
        with pytest.raises(NetlinkError) as dup:  # NLM_F_EXCL: an address is added once
            inside.add_address(moved, "10.9.8.7/24")
        assert "10.9.8.7/24" in str(dup.value) and "net1" in str(dup.value)
        inside.down(moved)
        inside.move(moved, home, "vx0")
        back = home.link("vx0") or home.link("net1")
        assert back is not None and inside.link("net1") is None
        (shown,) = ip(veth_netns, "addr", "show", "dev", back.name)
        assert not [a for a in shown["addr_info"] if a["family"] == "inet"]


def test_missing_namespace_and_device() -> None:
    assert open_pod("/run/netns/pyvfmac-no-such-pod") is None
    assert host_netdevs("0000:ff:1f.7") == []
    with Netns(None) as host:
        assert host.link("pyvfmacnone0") is None


CAPTURE = r"""
import json, socket, sys, time
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))
s.bind((sys.argv[1], 0))
s.settimeout(0.2)
print("ready", flush=True)
got, end = [], time.monotonic() + float(sys.argv[2])
while time.monotonic() < end and len(got) < 50:
    try:
        got.append(s.recv(2048).hex())
    except TimeoutError:
        pass
print(json.dumps(got), flush=True)
"""


def test_announce_addresses(veth_netns: str) -> None:
    """After ADD sets the pod's addresses: arp_notify on the netdev, a gratuitous ARP per IPv4
    address, an unsolicited neighbour advertisement per IPv6 one, as sriov-cni sends them;
    seen on the veth's other end by a packet socket of another process, and the sysctl read
    back through `ip netns exec`."""
    ns = veth_netns
    mac = "02:11:22:33:44:07"
    with Netns(f"/run/netns/{ns}") as inside:
        for name in ("vx1", "vx0"):
            link = inside.link(name)
            assert link is not None
            inside.up(link)
        link = inside.link("vx0")
        assert link is not None
        inside.set_mac(link, mac)
        inside.add_address(link, "10.9.8.7/24")
        inside.add_address(link, "fd00::7/64")
        link = inside.link("vx0")
        assert link is not None
        cap = subprocess.Popen(["ip", "netns", "exec", ns, "python3", "-c", CAPTURE, "vx1", "3"],
                               stdout=subprocess.PIPE, text=True)
        assert cap.stdout is not None and cap.stdout.readline().strip() == "ready"
        inside.announce(link, ["10.9.8.7/24", "fd00::7/64"])
        frames = [bytes.fromhex(f) for f in json.loads(cap.stdout.readline())]
        cap.wait(10)
    macb = bytes.fromhex(mac.replace(":", ""))
    arps = [f for f in frames if f[12:14] == b"\x08\x06"]
    assert any(f[6:12] == macb and f[20:22] == b"\x00\x01" and f[22:28] == macb
               and f[28:32] == bytes([10, 9, 8, 7]) == f[38:42] for f in arps), frames
    ip6 = bytes.fromhex("fd000000000000000000000000000007")
    nas = [f for f in frames if f[12:14] == b"\x86\xdd" and f[20] == 58 and f[54] == 136]
    assert any(f[62:78] == ip6 and f[58] & 0x20 and f[80:86] == macb for f in nas), frames
    notify = subprocess.run(["ip", "netns", "exec", ns, "cat",
                             "/proc/sys/net/ipv4/conf/vx0/arp_notify"], check=True,
                            capture_output=True, text=True).stdout.strip()
    assert notify == "1"
