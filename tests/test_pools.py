"""Pool resolution and the free / held / in-use view, on a fake sysfs tree and a real store."""

from __future__ import annotations

from pathlib import Path

import pytest
from fakesysfs import FakeSysfs

from pyvfmac.network import parse_network
from pyvfmac.errors import PoolError
from pyvfmac.pools import eligible, held_outside, pool_view, resolve_pool
from pyvfmac.store import Store
from pyvfmac.topology import scan


@pytest.fixture
def host(tmp_path: Path) -> FakeSysfs:
    fs = FakeSysfs(tmp_path / "sys")
    for n, pf in enumerate(("0000:01:00.0", "0000:02:00.0")):
        fs.add_pf(pf, totalvfs=7, vendor=0x8086, device=0x10C9, class_code=0x020000,
                  driver="igb", netdevs=(f"eth{n}",))
        fs.add_vfs(pf, 3, driver="igbvf", netdev_fmt=f"eth{n}v{{i}}")
    return fs


def net(xml_pool: str, name: str = "pn") -> str:
    return (f"<network><name>{name}</name><forward mode='hostdev'>{xml_pool}</forward>"
            "</network>")


def test_pool_entries_resolve_in_order_without_repeats(host: FakeSysfs) -> None:
    topo = scan(str(host.root))
    third = topo.pf_by_netdev("eth0").vfs[2].address
    attrs = " ".join(f"{k}='{v}'" for k, v in third.xml_attrs().items())
    spec = parse_network(net(f"<interface dev='eth1v2'/><pf dev='eth0'/>"
                             f"<address type='pci' {attrs}/>"))
    keys = resolve_pool(spec, topo)
    vf = [str(v.address) for v in topo.pf_by_netdev("eth0").vfs]
    assert keys == [str(topo.find_vf_by_netdev("eth1v2").address)] + vf


@pytest.mark.parametrize(("pool", "word"), [
    ("<pf dev='nosuch'/>", "nosuch"),
    ("<interface dev='eth0'/>", "eth0"),  # a PF, not a VF
])
def test_bad_pool_entries(host: FakeSysfs, pool: str, word: str) -> None:
    with pytest.raises(PoolError, match=word):
        resolve_pool(parse_network(net(pool)), scan(str(host.root)))


def test_held_outside_and_eligible(host: FakeSysfs, tmp_path: Path) -> None:
    topo = scan(str(host.root))
    vfs = topo.pf_by_netdev("eth0").vfs
    host.bind_driver(str(vfs[0].address), "vfio-pci")
    host.write_raw(str(vfs[1].address), "driver_override", "pci-stub\n")
    topo = scan(str(host.root))
    vfs = topo.pf_by_netdev("eth0").vfs
    assert "vfio-pci" in (held_outside(vfs[0], topo.sysfs_root) or "")
    assert "pci-stub" in (held_outside(vfs[1], topo.sysfs_root) or "")
    assert held_outside(vfs[2], topo.sysfs_root) is None
    with Store(tmp_path / "state") as store:
        store.define_network("pn", net("<pf dev='eth0'/>"))
        store.start_network("pn", resolve_pool(parse_network(net("<pf dev='eth0'/>")), topo))
        assert eligible(store, "pn", topo) == [str(vfs[2].address)]
        got = store.allocate("pn", "network:pn/52:54:00:00:00:01", "52:54:00:00:00:01",
                             eligible(store, "pn", topo))
        assert got == str(vfs[2].address)
        with pytest.raises(PoolError, match="network pn has no free device"):
            store.allocate("pn", "network:pn/52:54:00:00:00:02", "52:54:00:00:00:02",
                           eligible(store, "pn", topo))
        view = {s.key: s for s in pool_view(store, "pn", topo)}
        assert [view[str(v.address)].state for v in vfs] == ["held", "held", "in use"]
        assert "52:54:00:00:00:01" in view[str(vfs[2].address)].detail
