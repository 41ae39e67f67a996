"""pyvfmac.apply.config: the ``vfmac apply`` configuration's validation, errors and cascade."""

from __future__ import annotations

from pathlib import Path

import pytest
from applyhelp import KEY, cfg_of, write_config

from pyvfmac.apply import load_config, parse_config
from pyvfmac.errors import ConfigError, FileError, InputError
from pyvfmac.settings import VfSettings
from pyvfmac.types import PciAddress


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
    with pytest.raises(FileError, match=r"nope\.toml: cannot read: No such file or directory$"):
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
