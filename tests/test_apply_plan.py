"""pyvfmac.apply.plan: the configuration resolved against a host view (no kernel), collisions."""

from __future__ import annotations

from typing import Any

import pytest
from applyhelp import KEY, PCI0, PCI1, cfg_of, derived_cfg, pf_link, vf_states, view_of

from pyvfmac.apply import HostView, build_plan, derive_mac, diff_vf, dry_run_lines, plan_report
from pyvfmac.errors import ConfigError
from pyvfmac.settings import VfSettings
from pyvfmac.types import LinkInfo, VfChange, VfState


# ------------------------------------------------------------------------------------- the plan


def test_diff_only_what_differs() -> None:
    have = VfState(vf=2, mac="02:00:00:00:00:02", vlan=42, qos=1, spoofchk=True, trust=False,
                   link_state="auto", min_tx_rate=0, max_tx_rate=100)
    same = VfSettings(mac="02:00:00:00:00:02", vlan=42, qos=1, vlan_proto="802.1Q",
                      spoofchk=True, trust=False, link_state="auto", max_tx_rate=100)
    assert diff_vf("eth0", 2, same, have) is None
    assert diff_vf("eth0", 2, VfSettings(), have) is None
    assert diff_vf("eth0", 2, VfSettings(spoofchk=False, vlan=42, qos=1), have) == \
        VfChange(pf="eth0", vf=2, spoofchk=False)
    assert diff_vf("eth0", 2, VfSettings(vlan=42, qos=1, vlan_proto="802.1ad"), have) == \
        VfChange(pf="eth0", vf=2, vlan=42, qos=1, vlan_proto="802.1ad")
    assert diff_vf("eth0", 2, VfSettings(min_tx_rate=10), have) == \
        VfChange(pf="eth0", vf=2, min_tx_rate=10, max_tx_rate=100)
    untagged = VfState(vf=0, mac="02:00:00:00:00:01", vlan=0, vlan_proto="802.1ad")
    assert diff_vf(1, 0, VfSettings(vlan=0, vlan_proto="802.1Q"), untagged) is None
    assert diff_vf(1, 0, VfSettings(mac="02:00:00:00:00:09", trust=True), None) == \
        VfChange(pf=1, vf=0, mac="02:00:00:00:00:09", trust=True)


def test_plan_derives_every_vf_then_nothing_to_do() -> None:
    cfg = derived_cfg(spoofchk=False)
    link = pf_link("eth0", 7, vf_states(16, spoofchk=True), pci=PCI0)
    plan = build_plan(cfg, view_of(link))
    assert [c.vf for c in plan.changes] == list(range(16))
    assert all(c.pf == 7 and c.spoofchk is False for c in plan.changes)
    assert [c.mac for c in plan.changes] == [derive_mac(KEY, "pci:0000:03:00.0", i)
                                             for i in range(16)]
    # the same host after the changes: the plan is empty
    done = pf_link("eth0", 7, tuple(VfState(vf=c.vf, mac=c.mac or "", spoofchk=False)
                                    for c in plan.changes), pci=PCI0)
    again = build_plan(cfg, view_of(done))
    assert again.changes == [] and not again.collisions
    report = plan_report(cfg, again)
    assert report.lines()[0] == "eth0: 16 VFs, 0 to change, 16 unchanged"


def test_plan_says_when_every_change_is_mac_only() -> None:
    """A PF whose only setting is the derived MAC plans MAC-only changes (the bulk path takes
    them without checking each); any other setting, or a listed VF, and it does not say so."""
    states = vf_states(8, spoofchk=True)
    derived_only = build_plan(derived_cfg(), view_of(pf_link("eth0", 7, states, pci=PCI0)))
    (pf,) = derived_only.pfs
    assert pf.macs_only and len(pf.changes) == 8
    assert all(c.mac_only() for c in pf.changes)
    assert pf.changes[3] == VfChange(pf=7, vf=3, mac=derive_mac(KEY, "pci:0000:03:00.0", 3))
    with_setting = build_plan(derived_cfg(spoofchk=False), view_of(pf_link("eth0", 7, states,
                                                                           pci=PCI0)))
    assert not with_setting.pfs[0].macs_only
    listed = cfg_of({"pf": [{"pci": "03:00.0", "mac_policy": "derived",
                             "vf": [{"index": 1, "mac": "52:54:00:00:00:01"}]}]})
    assert not build_plan(listed, view_of(pf_link("eth0", 7, states, pci=PCI0))).pfs[0].macs_only


def test_plan_pf_by_pci_address_and_explicit_vfs_only() -> None:
    cfg = cfg_of({"pf": [{"pci": "03:00.0", "vf": [
        {"index": 1, "mac": "52:54:00:00:00:01", "vlan": 5},
        {"index": 6, "trust": True}]}]})
    states = vf_states(8, trust=False)
    plan = build_plan(cfg, view_of(pf_link("enp3s0f0", 3, states, pci=PCI0)))
    assert plan.changes == [
        VfChange(pf=3, vf=1, mac="52:54:00:00:00:01", vlan=5, qos=0, vlan_proto="802.1Q"),
        VfChange(pf=3, vf=6, trust=True),
    ]
    assert [v.vf for v in plan.pfs[0].vfs] == [1, 6]  # the others are not managed
    assert plan.pfs[0].numvfs_path == "bus/pci/devices/0000:03:00.0/sriov_numvfs"


def test_plan_unknown_pf_by_name() -> None:
    cfg = cfg_of({"pf": [{"name": "eth0"}, {"name": "eth5"}]})
    with pytest.raises(ConfigError) as exc:
        build_plan(cfg, view_of(pf_link("eth0", 2, ())))
    assert str(exc.value) == \
        '/etc/pyvfmac/vfmac.toml: pf[1].name = "eth5": no such network device'


@pytest.mark.parametrize("view,reason", [
    (HostView(links=()), "not an SR-IOV network PF on this host"),
    (HostView(links=(), netdev_pci={"eth0": PCI0}), "a network function without SR-IOV"),
    (HostView(links=(), pf_netdevs={PCI0: ("eth0",)}), "has no network device"),
    (HostView(links=(pf_link("p0", 2, (), pci=PCI0), pf_link("p1", 3, (), pci=PCI0)),
              pf_netdevs={PCI0: ("p0", "p1")}), "several network devices (p0, p1): use name"),
])
def test_plan_unknown_pf_by_pci(view: HostView, reason: str) -> None:
    cfg = cfg_of({"pf": [{"pci": "0000:03:00.0"}]})
    with pytest.raises(ConfigError) as exc:
        build_plan(cfg, view)
    assert str(exc.value).startswith('/etc/pyvfmac/vfmac.toml: pf[0].pci = "0000:03:00.0": ')
    assert reason in str(exc.value)


def test_plan_same_pf_by_name_and_by_pci_address() -> None:
    cfg = cfg_of({"pf": [{"name": "enp3s0f0"}, {"pci": "0000:03:00.0"}]})
    with pytest.raises(ConfigError) as exc:
        build_plan(cfg, view_of(pf_link("enp3s0f0", 3, vf_states(2), pci=PCI0)))
    assert str(exc.value) == ('/etc/pyvfmac/vfmac.toml: pf[1].pci = "0000:03:00.0": '
                              "the same PF as pf[0] (enp3s0f0)")


def test_plan_vf_index_beyond_the_pf() -> None:
    cfg = cfg_of({"pf": [{"name": "eth0", "vf": [{"index": 8, "trust": True}]}]})
    with pytest.raises(ConfigError) as exc:
        build_plan(cfg, view_of(pf_link("eth0", 3, vf_states(8), pci=PCI0)))
    assert str(exc.value) == ("/etc/pyvfmac/vfmac.toml: pf[0].vf[0].index = 8: eth0 has 8 VFs "
                              "(VF indexes 0..7); set pf[0].numvfs")


def test_plan_numvfs_above_totalvfs() -> None:
    cfg = cfg_of({"pf": [{"name": "eth0", "numvfs": 8}]})
    with pytest.raises(ConfigError) as exc:
        build_plan(cfg, view_of(pf_link("eth0", 3, vf_states(2), pci=PCI0), totalvfs=7))
    assert str(exc.value) == ("/etc/pyvfmac/vfmac.toml: pf[0].numvfs = 8: eth0 (0000:03:00.0) "
                              "supports at most 7 VFs (sriov_totalvfs)")


def test_plan_numvfs_change_treats_every_vf_as_new() -> None:
    cfg = derived_cfg(name="eth1", numvfs=8, trust=True)
    nsim = pf_link("eth1", 4, vf_states(4, trust=True), parent=("netdevsim", "netdevsim10"))
    plan = build_plan(cfg, view_of(nsim))
    (pf,) = plan.pfs
    assert pf.numvfs_change and (pf.numvfs_now, pf.numvfs_target) == (4, 8)
    assert pf.numvfs_path == "class/net/eth1/device/sriov_numvfs"
    assert [(c.vf, c.trust) for c in plan.changes] == [(i, True) for i in range(8)]
    assert plan.changes[5].mac == derive_mac(KEY, "dev:netdevsim:netdevsim10", 5)
    lines = dry_run_lines(plan)
    assert lines[0] == "eth1: would write 8 to class/net/eth1/device/sriov_numvfs (now 4)"
    assert lines[1] == f"eth1 vf 0: mac (new) -> {plan.changes[0].mac}; trust (new) -> on"


def test_plan_after_numvfs_reports_missing_vfs() -> None:
    cfg = cfg_of({"pf": [{"name": "eth1", "numvfs": 8, "vf": [{"index": 7, "trust": True}],
                          "spoofchk": True}]})
    short = pf_link("eth1", 4, vf_states(6, spoofchk=True), parent=("netdevsim", "netdevsim1"))
    plan = build_plan(cfg, view_of(short), after_numvfs=True)
    assert plan.pfs[0].missing == (6, 7)
    assert plan.changes == []  # the 6 that exist are already right


def test_plan_refuses_to_derive_without_the_host_key() -> None:
    cfg = cfg_of({"pf": [{"name": "eth0", "mac_policy": "derived"}]}, key=None)
    with pytest.raises(ConfigError, match=r"defaults\.host_key: the host key was not read"):
        build_plan(cfg, view_of(pf_link("eth0", 3, vf_states(2), pci=PCI0)))


def test_plan_underivable_pf() -> None:
    cfg = derived_cfg()
    bare = LinkInfo(5, "eth0", "02:00:00:00:00:05", None, None, None, 2, vf_states(2))
    with pytest.raises(ConfigError, match=r'pf\[0\]\.mac_policy = "derived": eth0 has no PCI '
                       r"address, no permanent MAC and no parent device"):
        build_plan(cfg, view_of(bare))


# ---------------------------------------------------------------------------------- collisions


def test_collision_with_a_netdev_mac() -> None:
    target = derive_mac(KEY, "pci:0000:03:00.0", 2)
    other = LinkInfo(9, "br0", target, None, None, None, None, ())
    plan = build_plan(derived_cfg(), view_of(pf_link("eth0", 3, vf_states(4), pci=PCI0), other))
    (c,) = plan.collisions
    assert (c.pf_name, c.vf, c.mac) == ("eth0", 2, target)
    assert c.message == (f'/etc/pyvfmac/vfmac.toml: pf[0].mac_policy = "derived": eth0 vf 2 gets '
                         f"{target}, which is also the MAC of netdev br0")


def test_collision_explicit_mac_with_a_staying_vf_admin_mac() -> None:
    cfg = cfg_of({"pf": [{"name": "eth0", "vf": [{"index": 0, "mac": "02:00:00:00:00:07"}]}]})
    states = (VfState(vf=0, mac="00:00:00:00:00:00"), VfState(vf=1, mac="02:00:00:00:00:07"))
    plan = build_plan(cfg, view_of(pf_link("eth0", 3, states, pci=PCI0)))
    (c,) = plan.collisions
    assert c.message == ('/etc/pyvfmac/vfmac.toml: pf[0].vf[0].mac = "02:00:00:00:00:07": '
                         "eth0 vf 0: which is also the admin MAC of eth0 vf 1")
    # when vf 1 gets another MAC itself, its current one goes away: no collision
    cfg2 = cfg_of({"pf": [{"name": "eth0", "vf": [{"index": 0, "mac": "02:00:00:00:00:07"},
                                                 {"index": 1, "mac": "02:00:00:00:00:08"}]}]})
    assert build_plan(cfg2, view_of(pf_link("eth0", 3, states, pci=PCI0))).collisions == ()


def test_collision_explicit_with_derived() -> None:
    d5 = derive_mac(KEY, "pci:0000:03:00.0", 5)
    cfg = derived_cfg(vf=[{"index": 6, "mac": d5}])
    plan = build_plan(cfg, view_of(pf_link("eth0", 3, vf_states(8), pci=PCI0)))
    assert [(c.vf, c.mac) for c in plan.collisions] == [(6, d5)]
    assert "which is also wanted for eth0 vf 5" in plan.collisions[0].message


def test_collision_between_derived_macs_of_two_pfs() -> None:
    # Find two PF identities whose derived MACs meet under a 3-octet prefix (24 hashed bits).
    prefix = b"\x02\x00\x00"
    seen: dict[str, int] = {}
    for vf in range(20000):
        mac = derive_mac(KEY, "pci:0000:03:00.0", vf, prefix)
        seen.setdefault(mac, vf)
    hit = next((vf, seen[m]) for vf in range(20000)
               if (m := derive_mac(KEY, "pci:0000:04:00.0", vf, prefix)) in seen)
    n = max(hit) + 1
    cfg = cfg_of({"defaults": {"mac_policy": "derived", "mac_prefix": "02:00:00"},
                  "pf": [{"name": "a"}, {"name": "b"}]})
    view = view_of(pf_link("a", 3, vf_states(n), pci=PCI0), pf_link("b", 4, vf_states(n), pci=PCI1))
    plan = build_plan(cfg, view)
    assert any(c.pf_name == "b" and c.vf == hit[0] and f"wanted for a vf {hit[1]}" in c.message
               for c in plan.collisions)


def test_no_false_collision_with_own_state() -> None:
    """A VF's own admin MAC and its own VF netdev (which carries it) are not "other" MACs."""
    macs = [derive_mac(KEY, "pci:0000:03:00.0", i) for i in range(2)]
    pf = pf_link("eth0", 3, tuple(VfState(vf=i, mac=m) for i, m in enumerate(macs)), pci=PCI0)
    vf_netdev = LinkInfo(10, "eth0v1", macs[1], None, "pci", "0000:03:10.1", None, ())
    view = view_of(pf, vf_netdev, vf_netdevs={(PCI0, 1): "eth0v1"})
    plan = build_plan(derived_cfg(), view)
    assert plan.collisions == () and plan.changes == []
    # without the topology's word that eth0v1 is VF 1, it is another device
    plan = build_plan(derived_cfg(), view_of(pf, vf_netdev))
    assert [c.vf for c in plan.collisions] == [1]
