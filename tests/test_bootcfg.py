"""pyvfmac.bootcfg without a kernel: config validation, derived MACs, the plan, collisions, output.

The real runs against a kernel (numvfs, apply, read back) are in tests/testbed/test_apply.py.
"""

from __future__ import annotations

import errno
import io
import os
import re
import shutil
import subprocess
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from pyvfmac import bootcfg
from pyvfmac.bootcfg import (
    Config,
    HostView,
    VfSettings,
    build_plan,
    derive_mac,
    diff_vf,
    dry_run_lines,
    load_config,
    parse_config,
    pf_identity,
    plan_report,
    wait_for_vfs,
)
from pyvfmac.sysfs import set_numvfs
from pyvfmac.errors import ConfigError, InputError, SysfsError
from pyvfmac.mac import parse_mac
from pyvfmac.types import LinkInfo, PciAddress, VfChange, VfResult, VfState

KEY = b"0123456789abcdef0123456789abcdef"  # what /etc/machine-id holds: 32 hex digits
PCI0 = PciAddress.parse("0000:03:00.0")
PCI1 = PciAddress.parse("0000:04:00.0")


# ------------------------------------------------------------------------------------ helpers


def write_config(tmp_path: Path, text: str, *, key: bytes | None = KEY + b"\n") -> str:
    if key is not None:
        (tmp_path / "machine-id").write_bytes(key)
        line = f'host_key = "{tmp_path / "machine-id"}"'
        if "[defaults]" in text:
            text = text.replace("[defaults]", "[defaults]\n" + line, 1)
        else:
            text += "\n[defaults]\n" + line + "\n"
    path = tmp_path / "vfmac.toml"
    path.write_text(text)
    return str(path)


def cfg_of(doc: dict[str, Any], *, key: bytes | None = KEY) -> Config:
    cfg = parse_config(doc, path="/etc/pyvfmac/vfmac.toml")
    return Config(cfg.path, cfg.pfs, cfg.host_key_path, key)


def vf_states(n: int, **kw: Any) -> tuple[VfState, ...]:
    return tuple(VfState(vf=i, mac=kw.get("mac", "00:00:00:00:00:00"),
                         **{k: v for k, v in kw.items() if k != "mac"}) for i in range(n))


def pf_link(name: str, ifindex: int, vfs: tuple[VfState, ...], *, pci: PciAddress | None = None,
            mac: str = "52:54:00:12:34:56", perm_mac: str | None = None,
            parent: tuple[str, str] | None = None) -> LinkInfo:
    bus, dev = parent if parent else (("pci", str(pci)) if pci else (None, None))
    return LinkInfo(ifindex=ifindex, name=name, mac=mac, perm_mac=perm_mac, parent_bus=bus,
                    parent_dev=dev, num_vf=len(vfs), vfs=vfs)


def view_of(*links: LinkInfo, totalvfs: int = 64,
            vf_netdevs: dict[tuple[PciAddress, int], str] | None = None) -> HostView:
    pf_netdevs = {PciAddress.parse(l.parent_dev): (l.name,) for l in links
                  if l.parent_bus == "pci" and l.parent_dev}
    return HostView(
        links=tuple(links),
        pf_netdevs=pf_netdevs,
        netdev_pci={names[0]: a for a, names in pf_netdevs.items()},
        vf_netdevs=vf_netdevs or {},
        totalvfs={a: totalvfs for a in pf_netdevs},
    )


def config_error(tmp_path: Path, text: str) -> str:
    path = write_config(tmp_path, text)
    with pytest.raises(ConfigError) as exc:
        load_config(path)
    msg = str(exc.value)
    assert msg.startswith(path + ": "), msg
    assert isinstance(exc.value, InputError)
    return msg


# ------------------------------------------------------------------------- config: the errors

BAD_CONFIGS = [
    # (config text, key path, value as shown, reason fragment)
    ('colour = "red"\n', "colour", '"red"', "unknown key"),
    ('[[pf]]\nname = "eth0"\nnumvf = 4\n', "pf[0].numvf", "4", "unknown key"),
    ('[[pf]]\nname = "eth0"\nmac = "02:00:00:00:00:01"\n', "pf[0].mac", '"02:00:00:00:00:01"',
     "a MAC is set per VF"),
    ('[[pf]]\nname = "eth0"\n[[pf.vf]]\nindex = 1\nmtu = 9000\n', "pf[0].vf[0].mtu", "9000",
     "unknown key"),
    ('[defaults]\nspoofchk = "on"\n', "defaults.spoofchk", '"on"', "true or false"),
    ('[defaults]\nbogus = 1\n', "defaults.bogus", "1", "unknown key"),
    ('[[pf]]\nname = "eth0"\nvlan = "42"\n', "pf[0].vlan", '"42"', "integer"),
    ('[[pf]]\nname = "eth0"\nvlan = 4096\n', "pf[0].vlan", "4096", "out of range 0..4095"),
    ('[[pf]]\nname = "eth0"\nvlan = true\n', "pf[0].vlan", "true", "integer"),
    ('[[pf]]\nname = "eth0"\nnumvfs = -1\n', "pf[0].numvfs", "-1", "out of range"),
    ('[[pf]]\nname = "eth0"\nqos = 8\nvlan = 1\n', "pf[0].qos", "8", "out of range 0..7"),
    ('[[pf]]\nname = "eth0"\nvlan_proto = "802.1x"\n', "pf[0].vlan_proto", '"802.1x"',
     "one of"),
    ('[[pf]]\nname = "eth0"\nlink_state = "up"\n', "pf[0].link_state", '"up"', "one of"),
    ('[[pf]]\nname = "eth0"\nmac_policy = "random"\n', "pf[0].mac_policy", '"random"', "one of"),
    ('[[pf]]\nname = "eth0"\n[[pf.vf]]\nindex = 2\nmac = "zz:00:00:00:00:01"\n',
     "pf[0].vf[0].mac", '"zz:00:00:00:00:01"', "not six hexadecimal octets"),
    ('[[pf]]\nname = "eth0"\n[[pf.vf]]\nindex = 2\nmac = "01:00:5e:00:00:01"\n',
     "pf[0].vf[0].mac", '"01:00:5e:00:00:01"', "multicast"),
    ('[[pf]]\nname = "eth0"\n[[pf.vf]]\nindex = 2\nmac = "00:00:00:00:00:00"\n',
     "pf[0].vf[0].mac", '"00:00:00:00:00:00"', "all-zero"),
    ('[[pf]]\nname = "eth0"\n[[pf.vf]]\nindex = 2\nmac = 5\n', "pf[0].vf[0].mac", "5",
     "string"),
    ('[[pf]]\nname = "eth0"\n[[pf.vf]]\nindex = 1\nmac = "02:00:00:00:00:01"\n'
     '[[pf]]\nname = "eth1"\n[[pf.vf]]\nindex = 0\nmac = "02-00-00-00-00-01"\n',
     "pf[1].vf[0].mac", '"02:00:00:00:00:01"', "also pf[0].vf[0].mac"),
    ('[[pf]]\nname = "eth0"\n[[pf]]\nname = "eth0"\n', "pf[1].name", '"eth0"',
     "configured twice (also pf[0])"),
    ('[[pf]]\npci = "0000:03:00.0"\n[[pf]]\npci = "03:00.0"\n', "pf[1].pci",
     '"0000:03:00.0"', "configured twice (also pf[0])"),
    ('[[pf]]\nname = "eth0"\npci = "0000:03:00.0"\n', "pf[0].pci", '"0000:03:00.0"',
     "not both"),
    ('[[pf]]\npci = "0000:03:00"\n', "pf[0].pci", '"0000:03:00"', "not a PCI address"),
    ('[[pf]]\nname = "eth0/1"\n', "pf[0].name", '"eth0/1"', "contains '/'"),
    ('[[pf]]\nname = "eth0"\nnumvfs = 4\n[[pf.vf]]\nindex = 4\n', "pf[0].vf[0].index", "4",
     "not below pf[0].numvfs = 4"),
    ('[[pf]]\nname = "eth0"\n[[pf.vf]]\nindex = 1\n[[pf.vf]]\nindex = 1\n',
     "pf[0].vf[1].index", "1", "listed twice (also pf[0].vf[0])"),
    ('[[pf]]\nname = "eth0"\n[[pf.vf]]\nindex = 1\nqos = 3\n', "pf[0].vf[0].qos", "3",
     "needs a vlan"),
    ('[[pf]]\nname = "eth0"\n[[pf.vf]]\nindex = 1\nmin_tx_rate = 100\nmax_tx_rate = 10\n',
     "pf[0].vf[0].min_tx_rate", "100", "above max_tx_rate 10"),
    ('[[pf]]\nname = "eth0"\nmac_prefix = "03:00"\n', "pf[0].mac_prefix", '"03:00"',
     "not a locally administered unicast prefix"),
    ('[[pf]]\nname = "eth0"\nmac_prefix = "00:1b:21"\n', "pf[0].mac_prefix", '"00:1b:21"',
     "not a locally administered unicast prefix"),
    ('[defaults]\nmac_prefix = "02:00:00:00"\n', "defaults.mac_prefix", '"02:00:00:00"',
     "1 to 3 hexadecimal octets"),
    ('pf = "eth0"\n', "pf", '"eth0"', "array of tables"),
    ('[[pf]]\nname = "eth0"\nvf = 3\n', "pf[0].vf", "3", "array of tables"),
]


@pytest.mark.parametrize("text,key,value,reason", BAD_CONFIGS,
                         ids=[c[1] + ":" + c[3] for c in BAD_CONFIGS])
def test_bad_config_names_file_key_and_value(tmp_path: Path, text: str, key: str, value: str,
                                             reason: str) -> None:
    msg = config_error(tmp_path, text)
    assert f": {key} = {value}: " in msg, msg
    assert reason in msg, msg


@pytest.mark.parametrize("text,key,reason", [
    ('[[pf]]\nnumvfs = 4\n', "pf[0]", 'needs name = "<netdev>" or pci'),
    ('[[pf]]\nname = "eth0"\n[[pf.vf]]\nmac = "02:00:00:00:00:01"\n', "pf[0].vf[0]",
     "needs index"),
])
def test_missing_keys_are_named(tmp_path: Path, text: str, key: str, reason: str) -> None:
    msg = config_error(tmp_path, text)
    assert f": {key}: {reason}" in msg, msg


def test_toml_syntax_error_names_file_and_line(tmp_path: Path) -> None:
    msg = config_error(tmp_path, '[[pf]]\nname = "eth0\n')
    assert "not valid TOML" in msg and "line 2" in msg, msg


def test_missing_config_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"nope\.toml: cannot read: No such file"):
        load_config(str(tmp_path / "nope.toml"))


def test_host_key_read_only_when_deriving(tmp_path: Path) -> None:
    text = '[defaults]\nhost_key = "/nonexistent/machine-id"\n[[pf]]\nname = "eth0"\n'
    path = tmp_path / "c.toml"
    path.write_text(text)
    assert load_config(str(path)).host_key is None  # policy "keep": no key needed
    path.write_text(text + 'mac_policy = "derived"\n')
    with pytest.raises(ConfigError) as exc:
        load_config(str(path))
    assert str(exc.value) == (f'{path}: defaults.host_key = "/nonexistent/machine-id": '
                              "cannot read: No such file or directory")


def test_empty_host_key_is_refused(tmp_path: Path) -> None:
    path = write_config(tmp_path, '[[pf]]\nname = "eth0"\nmac_policy = "derived"\n',
                        key=b" \n\n")
    with pytest.raises(ConfigError, match=r"defaults\.host_key = .*the file is empty"):
        load_config(path)


# ------------------------------------------------------------------------ config: good files


def test_example_config_parses() -> None:
    example = Path(__file__).resolve().parent.parent / "contrib" / "vfmac.toml.example"
    cfg = parse_config(__import__("tomllib").loads(example.read_text()), path=str(example))
    assert cfg.pfs and all(pf.key.startswith("pf[") for pf in cfg.pfs)


def test_settings_cascade_defaults_pf_vf(tmp_path: Path) -> None:
    path = write_config(tmp_path, """
[defaults]
spoofchk = true
trust = false
vlan_proto = "802.1AD"
mac_policy = "derived"

[[pf]]
name = "eth0"
trust = true
link_state = "Enable"
mac_prefix = "0a:bc"

[[pf.vf]]
index = 3
mac = "5254.0000.0003"
vlan = 42
spoofchk = false

[[pf]]
pci = "05:00.1"
mac_policy = "keep"
""")
    cfg = load_config(path)
    assert cfg.host_key == KEY  # whitespace stripped
    eth0, pci = cfg.pfs
    assert eth0.settings == VfSettings(vlan_proto="802.1ad", spoofchk=True, trust=True,
                                       link_state="enable")
    assert eth0.mac_policy == "derived" and eth0.mac_prefix == b"\x0a\xbc"
    (vf3,) = eth0.vfs
    assert vf3.key == "pf[0].vf[0]" and vf3.index == 3
    assert vf3.settings == VfSettings(mac="52:54:00:00:00:03", vlan=42, spoofchk=False)
    assert vf3.settings.over(eth0.settings) == VfSettings(
        mac="52:54:00:00:00:03", vlan=42, vlan_proto="802.1ad", spoofchk=False, trust=True,
        link_state="enable")
    assert pci.name is None and pci.pci == PciAddress(0, 5, 0, 1) and pci.label == "0000:05:00.1"
    assert pci.mac_policy == "keep" and pci.settings.spoofchk is True


def test_relative_host_key_is_beside_the_config(tmp_path: Path) -> None:
    (tmp_path / "key").write_bytes(b"k3y\n")
    (tmp_path / "c.toml").write_text(
        '[defaults]\nhost_key = "key"\nmac_policy = "derived"\n[[pf]]\nname = "eth0"\n')
    cfg = load_config(str(tmp_path / "c.toml"))
    assert cfg.host_key_path == str(tmp_path / "key") and cfg.host_key == b"k3y"


def test_host_key_not_in_repr() -> None:
    cfg = cfg_of({"pf": [{"name": "eth0", "mac_policy": "derived"}]}, key=b"secret-machine-id")
    assert "secret-machine-id" not in repr(cfg)


# ------------------------------------------------------------------------------- derived MACs


def test_derived_mac_matches_openssl_hmac() -> None:
    """The documented formula, computed by an independent implementation (openssl)."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl not installed")
    for pf_id, vf in (("pci:0000:03:00.0", 3), ("dev:netdevsim:netdevsim10", 4095),
                      ("perm:aa:bb:cc:dd:ee:ff", 0)):
        msg = f"pyvfmac-derived-mac-v1\n{pf_id}\n{vf}".encode()
        out = subprocess.run([openssl, "dgst", "-sha256", "-hmac", KEY.decode()], input=msg,
                             capture_output=True, check=True).stdout.decode()
        h = bytes.fromhex(out.split("= ")[-1].strip())
        expected = bytes([(h[0] & 0xFC) | 0x02]) + h[1:6]
        assert derive_mac(KEY, pf_id, vf) == expected.hex(":")
        assert derive_mac(KEY, pf_id, vf, b"\x02\x00") == (b"\x02\x00" + h[:4]).hex(":")


def test_derived_mac_pinned_vector() -> None:
    """The compatibility promise: this value must never change (HMAC-SHA256, see bootcfg)."""
    key = b"0123456789abcdef0123456789abcdef"
    assert derive_mac(key, "pci:0000:03:00.0", 3) == "42:82:77:f9:6c:34"
    assert derive_mac(key, "pci:0000:03:00.0", 3, b"\x02\x00") == "02:00:40:82:77:f9"


def test_derived_macs_are_locally_administered_unicast_and_valid() -> None:
    macs = [derive_mac(KEY, "pci:0000:03:00.0", i) for i in range(4096)]
    for mac in macs:
        first = int(mac[:2], 16)
        assert first & 0x02 and not first & 0x01, mac
        assert parse_mac(mac) == mac  # canonical and accepted (not multicast, not zero)
    assert len(set(macs)) == 4096


def test_derived_macs_differ_across_vfs_pfs_and_hosts() -> None:
    a = derive_mac(KEY, "pci:0000:03:00.0", 0)
    assert derive_mac(KEY, "pci:0000:03:00.0", 0) == a  # stable
    assert derive_mac(KEY, "pci:0000:03:00.0", 1) != a
    assert derive_mac(KEY, "pci:0000:03:00.1", 0) != a
    assert derive_mac(KEY[:-1] + b"0", "pci:0000:03:00.0", 0) != a
    # "vf 1" of pf "...0" and "vf 11" of pf "...0\n1" cannot meet: fields are newline-separated
    assert derive_mac(KEY, "pci:0000:03:00.0", 11) != derive_mac(KEY, "pci:0000:03:00.01", 1)


def test_prefix_is_kept() -> None:
    assert derive_mac(KEY, "pci:0000:03:00.0", 7, b"\x02\xaa\xbb").startswith("02:aa:bb:")
    assert derive_mac(KEY, "pci:0000:03:00.0", 7, b"\x0e").startswith("0e:")


def test_pf_identity_order() -> None:
    nsim = pf_link("eth9", 9, (), parent=("netdevsim", "netdevsim10"))
    assert pf_identity(None, nsim) == "dev:netdevsim:netdevsim10"
    with_perm = pf_link("eth9", 9, (), perm_mac="AA:BB:CC:DD:EE:01",
                        parent=("netdevsim", "netdevsim10"))
    assert pf_identity(None, with_perm) == "perm:aa:bb:cc:dd:ee:01"
    assert pf_identity(PCI0, with_perm) == "pci:0000:03:00.0"
    bare = LinkInfo(5, "veth0", "02:00:00:00:00:05", None, None, None, None, ())
    assert pf_identity(None, bare) is None


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


def derived_cfg(**pf: Any) -> Config:
    return cfg_of({"pf": [{"name": "eth0", "mac_policy": "derived", **pf}]})


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


# ------------------------------------------------------------------------------ sysfs numvfs


def test_set_numvfs_writes_target(tmp_path: Path) -> None:
    attr = tmp_path / "sriov_numvfs"
    attr.write_text("")
    set_numvfs(str(attr), 4, 8, device="eth0")
    assert attr.read_text() == "8"
    set_numvfs(str(attr), 8, 8, device="eth0")  # no write at all
    assert attr.read_text() == "8"


def test_set_numvfs_goes_through_zero(tmp_path: Path) -> None:
    """N -> M writes 0 first (the kernel refuses N -> M): the bytes written, seen in a FIFO."""
    fifo = tmp_path / "sriov_numvfs"
    os.mkfifo(fifo)
    reader = os.open(fifo, os.O_RDWR | os.O_NONBLOCK)  # held open: writers never block
    try:
        set_numvfs(str(fifo), 4, 8, device="eth0")
        assert os.read(reader, 100) == b"08"
        set_numvfs(str(fifo), 0, 3, device="eth0")
        set_numvfs(str(fifo), 3, 0, device="eth0")
        assert os.read(reader, 100) == b"30"
    finally:
        os.close(reader)


def test_set_numvfs_error_names_path_and_errno(tmp_path: Path) -> None:
    path = tmp_path / "missing" / "sriov_numvfs"
    with pytest.raises(SysfsError) as exc:
        set_numvfs(str(path), 0, 8, device="eth0")
    assert exc.value.errno == errno.ENOENT and exc.value.device == "eth0"
    assert str(exc.value) == f"eth0: cannot open {path}: No such file or directory (ENOENT)"
    with pytest.raises(SysfsError) as exc2:
        set_numvfs(str(tmp_path), 0, 8, device="eth0")  # a directory: EISDIR
    assert exc2.value.errno == errno.EISDIR


def test_wait_for_vfs_polls_until_the_vfs_are_there() -> None:
    seq = [pf_link("eth0", 3, vf_states(0)), pf_link("eth0", 3, vf_states(4)),
           pf_link("eth0", 3, vf_states(8))]
    calls: list[int] = []

    def read(dev: int) -> LinkInfo:
        calls.append(dev)
        return seq[min(len(calls) - 1, 2)]

    assert len(wait_for_vfs(read, 3, 8, 5.0).vfs) == 8 and calls == [3, 3, 3]
    t0 = time.monotonic()
    assert len(wait_for_vfs(lambda dev: seq[1], 3, 8, 0.2).vfs) == 4  # gives up, returns last
    assert 0.2 <= time.monotonic() - t0 < 1.5


# ---------------------------------------------------------------------- run_apply, host kernel


def test_run_apply_rejects_bad_config_before_reading_the_host(tmp_path: Path) -> None:
    path = write_config(tmp_path, '[[pf]]\nname = "eth0"\nvlan = 5000\n')
    out = io.StringIO()
    with pytest.raises(ConfigError, match=r"pf\[0\]\.vlan = 5000"):
        bootcfg.run_apply(path, dry_run=True, out=out)
    assert out.getvalue() == ""


def test_run_apply_dry_run_on_this_host(tmp_path: Path) -> None:
    """The real rtnetlink dump: ``lo`` exists and has no VFs."""
    pytest.importorskip("pyvfmac.topology")
    path = write_config(tmp_path, '[[pf]]\nname = "lo"\n')
    out = io.StringIO()
    report = bootcfg.run_apply(path, dry_run=True, out=out)
    assert out.getvalue().splitlines() == [
        "lo: 0 VFs, 0 to change, 0 unchanged",
        "dry run: 0 changes would be made; nothing was changed",
    ]
    assert report.exit_status == 0
    path = write_config(tmp_path, '[[pf]]\nname = "lo"\n[[pf.vf]]\nindex = 0\ntrust = true\n')
    with pytest.raises(ConfigError,
                       match=re.escape("pf[0].vf[0].index = 0: lo has no VFs; set pf[0].numvfs")):
        bootcfg.run_apply(path, dry_run=True, out=out)
    path = write_config(tmp_path, '[[pf]]\nname = "lo"\nnumvfs = 2\n')
    with pytest.raises(ConfigError, match=r"pf\[0\]\.numvfs = 2: lo cannot create VFs"):
        bootcfg.run_apply(path, dry_run=True, out=out)


# ----------------------------------------------------------- run_apply's steps, a fake kernel
# The kernel cannot be asked to refuse one VF, accept a change and read back another value, or
# fail a read-back on demand: this fake stands in for Rtnl so that run_apply's handling of each
# is checked. The same runs against the real kernel are in tests/testbed/test_apply.py.


class FakeKernel:
    """Rtnl's surface as run_apply uses it, over LinkInfo values; records every call."""

    def __init__(self, *links: LinkInfo) -> None:
        self.links = {link.ifindex: link for link in links}
        self.calls: list[tuple[str, Any]] = []
        self.refuse: dict[tuple[int, int], int] = {}  # (ifindex, vf) -> errno
        self.ignore: set[tuple[int, int]] = set()  # accepted, but the VF keeps its old state
        self.unreadable: set[int] = set()  # read_link fails (after the first dump)

    def __call__(self) -> FakeKernel:  # stands in for the Rtnl class
        return self

    def __enter__(self) -> FakeKernel:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def dump_links(self) -> list[LinkInfo]:
        self.calls.append(("dump_links", None))
        return list(self.links.values())

    def read_link(self, dev: int, *, strict: bool = True) -> LinkInfo:
        self.calls.append(("read_link", dev))
        if dev in self.unreadable:
            from pyvfmac.errors import NetlinkError

            raise NetlinkError(errno.ENODEV, "cannot read link and VF state",
                               device=self.links[dev].name)
        return self.links[dev]

    def _set(self, ifindex: int, vf: int, **changes: Any) -> None:
        link = self.links[ifindex]
        vfs = list(link.vfs)
        vfs[vf] = replace(vfs[vf], **changes)
        self.links[ifindex] = replace(link, vfs=tuple(vfs))

    def set_macs(self, pf: int, macs: dict[int, str]) -> dict[int, Any]:
        from pyvfmac.errors import NetlinkError

        self.calls.append(("set_macs", (pf, dict(macs))))
        failed = {}
        for vf, mac in macs.items():
            if (pf, vf) in self.refuse:
                failed[vf] = NetlinkError(self.refuse[(pf, vf)], f"cannot set MAC {mac}",
                                          device=self.links[pf].name, vf=vf)
            elif (pf, vf) not in self.ignore:
                self._set(pf, vf, mac=mac)
        return failed

    def apply(self, changes: list[VfChange]) -> list[VfResult]:
        self.calls.append(("apply", list(changes)))
        out = []
        for c in changes:
            key = (int(c.pf), c.vf)
            code = self.refuse.get(key, 0)
            if not code and key not in self.ignore:
                wanted = {k: getattr(c, k) for k in ("mac", "spoofchk", "trust", "link_state")
                          if getattr(c, k) is not None}
                if c.vlan is not None:
                    wanted.update(vlan=c.vlan, qos=c.qos, vlan_proto=c.vlan_proto)
                self._set(key[0], c.vf, **wanted)
            out.append(VfResult(change=c, pf_name=self.links[key[0]].name, errno=code))
        return out

    def names(self, kind: str) -> list[Any]:
        return [arg for name, arg in self.calls if name == kind]


def nsim_link(name: str, ifindex: int, n: int) -> LinkInfo:
    return pf_link(name, ifindex, vf_states(n, spoofchk=True, trust=False),
                   mac=f"52:54:00:00:00:{ifindex:02x}", parent=("netdevsim", f"netdevsim{ifindex}"))


def fake_kernel(monkeypatch: pytest.MonkeyPatch, *links: LinkInfo) -> FakeKernel:
    import pyvfmac.netlink

    kernel = FakeKernel(*links)
    monkeypatch.setattr(pyvfmac.netlink, "Rtnl", kernel)
    return kernel


TWO_PFS = """
[[pf]]
name = "eth0"
mac_policy = "derived"
[[pf]]
name = "eth1"
mac_policy = "derived"
[[pf.vf]]
index = 1
trust = true
"""


def run(path: str, **kw: Any) -> tuple[bootcfg.ApplyReport, list[str]]:
    out = io.StringIO()
    report = bootcfg.run_apply(path, out=out, **kw)
    return report, out.getvalue().splitlines()


def test_run_apply_bulk_path_for_mac_only_pfs_and_reads_back_only_changed_pfs(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    kernel = fake_kernel(monkeypatch, nsim_link("eth0", 10, 4), nsim_link("eth1", 11, 3),
                         nsim_link("eth2", 12, 5))  # eth2: not configured, never touched
    path = write_config(tmp_path, TWO_PFS)
    report, lines = run(path, sysfs_root=str(tmp_path))
    assert lines == ["eth0: 4 VFs, 4 changed, 0 unchanged, 0 failed",
                     "eth1: 3 VFs, 3 changed, 0 unchanged, 0 failed", "7 changes, 0 failed"]
    assert report.exit_status == 0 and len(report.changes) == 7
    eth0 = [derive_mac(KEY, "dev:netdevsim:netdevsim10", i) for i in range(4)]
    eth1 = [derive_mac(KEY, "dev:netdevsim:netdevsim11", i) for i in range(3)]
    # one dump; eth0 (MAC only) through set_macs, eth1 (a trust change too) through apply;
    # the verification reads back eth0 and eth1 alone, no second dump
    assert [name for name, _ in kernel.calls] == ["dump_links", "set_macs", "apply", "read_link",
                                                  "read_link"]
    assert kernel.names("set_macs") == [(10, dict(enumerate(eth0)))]
    (sent,) = kernel.names("apply")
    assert [(c.pf, c.vf, c.mac, c.trust) for c in sent] == [
        (11, 0, eth1[0], None), (11, 1, eth1[1], True), (11, 2, eth1[2], None)]
    assert kernel.names("read_link") == [10, 11]
    assert [s.mac for s in kernel.links[10].vfs] == eth0
    assert kernel.links[12] == nsim_link("eth2", 12, 5)
    # run twice: nothing sent, nothing read back, and it says so
    kernel.calls.clear()
    report2, lines2 = run(path, sysfs_root=str(tmp_path))
    assert kernel.calls == [("dump_links", None)]
    assert report2.changed == 0 and report2.changes == () and report2.exit_status == 0
    assert lines2[-1] == "0 changes: every VF is already as configured"


def test_run_apply_reports_refusals_and_wrong_read_backs(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    kernel = fake_kernel(monkeypatch, nsim_link("eth0", 10, 4), nsim_link("eth1", 11, 3))
    kernel.refuse = {(10, 2): errno.EOPNOTSUPP, (11, 1): errno.EPERM}
    kernel.ignore = {(10, 3)}
    path = write_config(tmp_path, TWO_PFS)
    report, lines = run(path, sysfs_root=str(tmp_path))
    want3 = derive_mac(KEY, "dev:netdevsim:netdevsim10", 3)
    assert lines == [
        "eth0: 4 VFs, 2 changed, 0 unchanged, 2 failed",
        "eth1: 3 VFs, 2 changed, 0 unchanged, 1 failed",
        f"  eth0 vf 2: cannot set MAC {derive_mac(KEY, 'dev:netdevsim:netdevsim10', 2)}: "
        "Operation not supported (EOPNOTSUPP)",
        "  eth0 vf 3: the kernel accepted the change but reads back differently "
        f"(still not: mac {want3})",
        f"  eth1 vf 1: cannot set MAC {derive_mac(KEY, 'dev:netdevsim:netdevsim11', 1)}, "
        "trust on: Operation not permitted (EPERM)",
        "4 changes, 3 failed",
    ]
    assert report.exit_status == 1
    assert [(f.pf, f.vf) for f in report.failures] == [("eth0", 2), ("eth0", 3), ("eth1", 1)]


def test_run_apply_read_back_failure_fails_that_pfs_vfs(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    kernel = fake_kernel(monkeypatch, nsim_link("eth0", 10, 2), nsim_link("eth1", 11, 3))
    kernel.unreadable = {10}
    path = write_config(tmp_path, TWO_PFS)
    report, lines = run(path, sysfs_root=str(tmp_path))
    assert lines[:4] == [
        "eth0: 2 VFs, 0 changed, 0 unchanged, 2 failed",
        "eth1: 3 VFs, 3 changed, 0 unchanged, 0 failed",
        "  eth0 vf 0: cannot read back: eth0: cannot read link and VF state: No such device "
        "(ENODEV)",
        "  eth0 vf 1: cannot read back: eth0: cannot read link and VF state: No such device "
        "(ENODEV)",
    ]
    assert report.exit_status == 1 and lines[-1] == "3 changes, 2 failed"


def test_run_apply_tells_its_progress(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_kernel(monkeypatch, nsim_link("eth0", 10, 4), nsim_link("eth1", 11, 3))
    path = write_config(tmp_path, TWO_PFS)
    said: list[str] = []
    run(path, sysfs_root=str(tmp_path), progress=said.append)
    assert said == ["reading the host's links", "programming 7 VFs on 2 PFs",
                    "eth0: reading back 4 VFs", "eth1: reading back 3 VFs", ""]
    said.clear()
    run(path, sysfs_root=str(tmp_path), dry_run=True, progress=said.append)
    assert said == ["reading the host's links", ""]
    said.clear()
    with pytest.raises(ConfigError):  # cleared on errors too (before the CLI prints one)
        run(write_config(tmp_path, '[[pf]]\nname = "eth9"\n'), progress=said.append)
    assert said == ["reading the host's links", ""]


def test_topology_scan_only_when_a_pf_may_be_pci() -> None:
    links = [nsim_link("eth0", 10, 2), pf_link("eth1", 11, (), pci=PCI0),
             pf_link("eth2", 12, ())]  # eth2: the kernel named no parent
    need = bootcfg.needs_topology

    def cfg(*pfs: dict[str, Any]) -> Config:
        return cfg_of({"pf": list(pfs)})

    assert not need(cfg({"name": "eth0"}), links)
    assert not need(cfg({"name": "eth0"}, {"name": "nosuch0"}), links)
    assert need(cfg({"name": "eth0"}, {"name": "eth1"}), links)
    assert need(cfg({"name": "eth2"}), links)
    assert need(cfg({"pci": str(PCI0)}), links)


def test_wait_for_vfs_tells_its_progress() -> None:
    seq = [pf_link("eth0", 3, vf_states(0)), pf_link("eth0", 3, vf_states(5)),
           pf_link("eth0", 3, vf_states(8))]
    calls: list[int] = []
    told: list[tuple[int, float]] = []

    def read(dev: int) -> LinkInfo:
        calls.append(dev)
        return seq[min(len(calls) - 1, 2)]

    wait_for_vfs(read, 3, 8, 5.0, progress=lambda n, t: told.append((n, t)))
    assert [n for n, _t in told] == [0, 5]  # not after the read that has them all
    assert 0 <= told[0][1] <= told[1][1] < 5.0
