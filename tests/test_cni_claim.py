"""vfmac-cni: claiming a VF in the shared state store (no host access)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pyvfmac.cni import codes
from pyvfmac.cni.config import owner
from pyvfmac.cni.config import describe_owner
from pyvfmac.cni.plugin import _claim, _Vf
from pyvfmac.errors import CniError
from pyvfmac.settings import VfState
from pyvfmac.records import Original, PodLink
from pyvfmac.store import Store

KEY = "0000:06:10.2"
VF = _Vf(key=KEY, pf="eth0", index=2, netdev="eth5", driver="igbvf",
         state=VfState(vf=2, mac="00:00:00:00:00:00"))
POD = PodLink(vf_key=KEY, netns="/run/netns/p", mtu=1500, up=False)
ORIG = Original(vf_key=KEY, pf="eth0", vf=2, mac="00:00:00:00:00:00", netdev="eth5",
                netdev_mac="52:54:00:00:00:05", driver="igbvf")


class _Node:
    def __init__(self, path: Path) -> None:
        self.store = Store(path)


def test_one_claim_wins(tmp_path: Path) -> None:
    a, b = _Node(tmp_path), _Node(tmp_path)
    me = owner("aaa", "net1", "sriov-a")
    _claim(a, VF, ORIG, me, "02:00:00:00:00:01", POD)  # type: ignore[arg-type]
    with pytest.raises(CniError) as info:
        _claim(b, VF, ORIG, owner("bbb", "net1", "sriov-a"),  # type: ignore[arg-type]
               "02:00:00:00:00:02", POD)
    assert info.value.code == codes.VF_IN_USE
    assert "pod container aaa interface net1 (network sriov-a)" in info.value.msg
    a.store.set_phase(KEY, "attached")
    with pytest.raises(CniError) as again:  # the same pod again: not a second claim
        _claim(b, VF, ORIG, me, "02:00:00:00:00:01", POD)  # type: ignore[arg-type]
    assert again.value.code == codes.VF_IN_USE and "already added" in again.value.msg


def test_vm_attachment_excludes_pods(tmp_path: Path) -> None:
    node = _Node(tmp_path)
    node.store.save_original(ORIG, owner="mac:02:00:00:00:00:09", mac="02:00:00:00:00:09",
                             managed=True)
    with pytest.raises(CniError) as info:
        _claim(node, VF, ORIG, owner("c", "net1", "n"), "02:00:00:00:00:01", POD)  # type: ignore[arg-type]
    assert info.value.code == codes.VF_IN_USE and "vfmac attach" in info.value.msg


def test_pod_link_saved_with_the_claim_and_dropped_with_the_record(tmp_path: Path) -> None:
    """The pod link is part of the one store: written in the claim's transaction, read back
    only while its attachment exists, and deleted with it."""
    node = _Node(tmp_path)
    _claim(node, VF, ORIG, owner("c", "net1", "n"), "02:00:00:00:00:01", POD)  # type: ignore[arg-type]
    assert node.store.pod_link(KEY) == POD
    node.store.delete(KEY)
    assert node.store.pod_link(KEY) is None
    rows = node.store._db().execute("SELECT count(*) FROM cni_links").fetchone()[0]
    assert rows == 0
    node.store.check()
    assert describe_owner("mac:02:00:00:00:00:09").startswith("`vfmac attach`")


def test_claim_of_a_pooled_vf_refused_in_its_transaction(tmp_path: Path) -> None:
    """A VF allocated in a pyvfmac network is refused by the claim itself (code 100)."""
    node = _Node(tmp_path)
    node.store.define_network("pool-a", "<network><name>pool-a</name><forward mode='hostdev'>"
                              f"<address type='pci' domain='0' bus='6' slot='16' function='2'/>"
                              "</forward></network>")
    node.store.start_network("pool-a", [KEY])
    node.store.allocate("pool-a", "guest", "02:00:00:00:00:07", [KEY])
    with pytest.raises(CniError) as info:
        _claim(node, VF, ORIG, owner("c", "net1", "n"), "02:00:00:00:00:01", POD)  # type: ignore[arg-type]
    assert info.value.code == codes.VF_IN_USE and "pool-a" in info.value.msg
    assert node.store.get(KEY) is None and node.store.pod_link(KEY) is None
