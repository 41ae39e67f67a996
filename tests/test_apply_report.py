"""pyvfmac.apply.report: the dry-run lines and the report of a plan."""

from __future__ import annotations

from applyhelp import PCI0, cfg_of, pf_link, vf_states, view_of

from pyvfmac.apply import build_plan, dry_run_lines, plan_report


# ------------------------------------------------------------------------------- dry-run output


def test_dry_run_output() -> None:
    cfg = cfg_of({"pf": [{"name": "eth0", "vf": [
        {"index": 0, "mac": "02:00:00:00:00:10", "spoofchk": False},
        {"index": 2, "vlan": 42, "qos": 3, "link_state": "disable"},
        {"index": 3, "max_tx_rate": 100}]}]})
    states = vf_states(4, mac="02:00:00:00:00:aa", spoofchk=True, link_state="auto")
    plan = build_plan(cfg, view_of(pf_link("eth0", 3, states, pci=PCI0)))
    report = plan_report(cfg, plan)
    out = dry_run_lines(plan) + report.lines()
    assert out == [
        "eth0 vf 0: mac 02:00:00:00:00:aa -> 02:00:00:00:00:10; spoofchk on -> off",
        "eth0 vf 2: vlan 0 (qos 0, 802.1Q) -> 42 (qos 3, 802.1Q); state auto -> disable",
        "eth0 vf 3: rate 0/0 -> 0/100 Mbit/s (min/max)",
        "eth0: 4 VFs, 3 to change, 1 unchanged",
        "dry run: 3 changes would be made; nothing was changed",
    ]
    assert report.exit_status == 0 and report.to_dict()["pfs"][0]["changed"] == 3
