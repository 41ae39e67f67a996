"""Pool resolution and the free / held / in-use view, on a fake sysfs tree and a real store."""

from __future__ import annotations

from pathlib import Path

import pytest
from fakesysfs import FakeSysfs

from pyvfmac.network import parse_network
from pyvfmac.errors import PoolError
from pyvfmac.owners import held_outside, holders
from pyvfmac.pools import eligible, pool_view, resolve_pool
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
    assert "vfio-pci" in (held_outside(str(vfs[0].address), topo.sysfs_root) or "")
    assert "pci-stub" in (held_outside(str(vfs[1].address), topo.sysfs_root) or "")
    assert held_outside(str(vfs[2].address), topo.sysfs_root) is None
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


def test_owners_rule_by_pf(host: FakeSysfs) -> None:
    """The one rule, per PF (what apply and watch ask): a VF on vfio-pci, one with a
    driver_override, one on its kernel driver whose netdev left the host (a pod's), are held;
    the one on its kernel driver with its netdev on the host, and an unbound one, are free."""
    topo = scan(str(host.root))
    pf = topo.pf_by_netdev("eth0")
    vfs = pf.vfs
    assert len(vfs) >= 3 and holders(str(pf.address), str(host.root)) == {}
    host.bind_driver(str(vfs[0].address), "vfio-pci")
    host.write_raw(str(vfs[1].address), "driver_override", "pci-stub\n")
    netdir = host.root / "bus" / "pci" / "devices" / str(vfs[2].address) / "net"
    for child in netdir.iterdir():  # moved into a pod: the host's sysfs no longer lists it
        child.unlink() if child.is_symlink() else __import__("shutil").rmtree(child)
    got = holders(str(pf.address), str(host.root))
    assert got[vfs[0].index] == "bound to vfio-pci outside pyvfmac"
    assert got[vfs[1].index] == "driver_override pci-stub set outside pyvfmac"
    assert "its netdev not on the host" in got[vfs[2].index]
    assert set(got) == {vfs[0].index, vfs[1].index, vfs[2].index}
