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
