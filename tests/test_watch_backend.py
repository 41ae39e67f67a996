"""The daemon's backend: which VFs the store holds for guests, and which VLAN each gets back when
its PF re-created it (no kernel: a state store in a temporary directory)."""

from __future__ import annotations

from pathlib import Path

from originals import original

from pyvfmac.store import Store
from pyvfmac.watch.backend import ApplyBackend

NET = ("<network><name>{name}</name><forward mode='hostdev'><pf dev='eth3'/></forward>{extra}"
       "</network>")


def backend(tmp_path: Path, *records: tuple[str, int, str | None]) -> ApplyBackend:
    with Store(tmp_path) as store:
        for name, extra in (("tagged", "<vlan><tag id='42'/></vlan>"),
                            ("mixed", "<vlan><tag id='42'/></vlan><portgroup name='x'>"
                                      "<vlan><tag id='7'/></vlan></portgroup>")):
            store.define_network(name, NET.format(name=name, extra=extra))
        for name in ("tagged", "mixed"):
            store.start_network(name, [key for key, _vf, net in records if net == name])
        for key, vf, network in records:
            if network is not None:
                store.allocate(network, f"o{vf}", f"52:54:00:00:00:0{vf}", [key])
            att = store.save_original(original(key, pf=key.split("/")[0] if "/" in key else "eth3", vf=vf), owner=f"o{vf}",
                                      mac=f"52:54:00:00:00:0{vf}", managed=True, network=network)
            store.set_phase(att.vf_key, "attached")
    return ApplyBackend("unused.toml", sysfs_root=str(tmp_path / "sys"), state_dir=str(tmp_path))


def test_vlan_from_what_was_seen_else_the_network_else_unknown(tmp_path: Path) -> None:
    b = backend(tmp_path, ("eth3/vf1", 1, None), ("0000:06:10.2", 2, "tagged"),
                ("0000:06:10.3", 3, "mixed"), ("eth9/vf4", 4, None))
    held = {h.vf: h for h in b._held("eth3", None)}
    assert sorted(held) == [1, 2, 3]  # eth9's VF is another PF's
    assert held[1].vlan is None  # no network, nothing seen: not known
    assert (held[2].vlan, held[2].source) == (42, "of network tagged")
    assert held[3].vlan is None  # a portgroup gives another VLAN: the device's choice unknown
    b._seen_vlan["eth3/vf1"] = 5
    b._seen_vlan["0000:06:10.3"] = 7
    held = {h.vf: h for h in b._held("eth3", None)}
    assert (held[1].vlan, held[3].vlan) == (5, 7)
    assert held[1].source == "as read on the VF before"


def test_no_store_no_held_vfs(tmp_path: Path) -> None:
    b = ApplyBackend("unused.toml", state_dir=str(tmp_path / "none"))
    assert b._held("eth3", None) == []
    assert not (tmp_path / "none").exists()  # the daemon creates no store


def test_port_profile_from_the_record(tmp_path: Path) -> None:
    """A held VF has a port profile when its record names one (what attach associated), not
    when its network merely mentions one."""
    b = backend(tmp_path, ("eth3/vf1", 1, None), ("0000:06:10.2", 2, "tagged"))
    with Store(tmp_path) as store:
        store.set_port("eth3/vf1", "finance")
    held = {h.vf: h for h in b._held("eth3", None)}
    assert (held[1].profile, held[2].profile) == (True, False)
