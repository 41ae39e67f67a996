"""vfmac-cni: claiming a VF in the shared state store (no host access)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pyvfmac.cni import codes
from pyvfmac.cni.config import owner
from pyvfmac.cni.plugin import _claim, _Vf, describe_owner
from pyvfmac.cni.records import PodLink, PodLinks
from pyvfmac.errors import CniError
from pyvfmac.settings import VfState
from pyvfmac.records import Original
from pyvfmac.store import Store

KEY = "0000:06:10.2"
VF = _Vf(key=KEY, pf="eth0", index=2, netdev="eth5", driver="igbvf",
         state=VfState(vf=2, mac="00:00:00:00:00:00"))
ORIG = Original(vf_key=KEY, pf="eth0", vf=2, mac="00:00:00:00:00:00", netdev="eth5",
                netdev_mac="52:54:00:00:00:05", driver="igbvf")


class _Node:
    def __init__(self, path: Path) -> None:
        self.store = Store(path)


def test_one_claim_wins(tmp_path: Path) -> None:
    a, b = _Node(tmp_path), _Node(tmp_path)
    me = owner("aaa", "net1", "sriov-a")
    _claim(a, VF, ORIG, me, "02:00:00:00:00:01")  # type: ignore[arg-type]
    with pytest.raises(CniError) as info:
        _claim(b, VF, ORIG, owner("bbb", "net1", "sriov-a"),  # type: ignore[arg-type]
               "02:00:00:00:00:02")
    assert info.value.code == codes.VF_IN_USE
    assert "pod container aaa interface net1 (network sriov-a)" in info.value.msg
    a.store.set_phase(KEY, "attached")
    with pytest.raises(CniError) as again:  # the same pod again: not a second claim
        _claim(b, VF, ORIG, me, "02:00:00:00:00:01")  # type: ignore[arg-type]
    assert again.value.code == codes.VF_IN_USE and "already added" in again.value.msg


def test_vm_attachment_excludes_pods(tmp_path: Path) -> None:
    node = _Node(tmp_path)
    node.store.save_original(ORIG, owner="mac:02:00:00:00:00:09", mac="02:00:00:00:00:09",
                             managed=True)
    with pytest.raises(CniError) as info:
        _claim(node, VF, ORIG, owner("c", "net1", "n"), "02:00:00:00:00:01")  # type: ignore[arg-type]
    assert info.value.code == codes.VF_IN_USE and "vfmac attach" in info.value.msg


def test_pod_links_round_trip(tmp_path: Path) -> None:
    store = Store(tmp_path)
    links = PodLinks(store.path)
    links.put(PodLink(vf_key=KEY, netns="/run/netns/p", mtu=1500, up=False))
    assert links.get(KEY) == PodLink(vf_key=KEY, netns="/run/netns/p", mtu=1500, up=False)
    links.drop(KEY)
    assert links.get(KEY) is None
    store.check()  # the companion table leaves the store's own schema intact
    assert describe_owner("mac:02:00:00:00:00:09").startswith("`vfmac attach`")
