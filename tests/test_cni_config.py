"""vfmac-cni: the environment and sriov-cni's network configuration (no host access)."""

from __future__ import annotations

import json

import pytest

from pyvfmac.cni import codes
from pyvfmac.cni.config import Env, owner, parse, read_env, split_owner
from pyvfmac.errors import CniError

ENV = {"CNI_COMMAND": "ADD", "CNI_CONTAINERID": "c0ffee", "CNI_IFNAME": "net1",
       "CNI_NETNS": "/run/netns/p1", "CNI_PATH": "/usr/lib/cni:/opt/cni/bin"}


def env(**over: str) -> Env:
    return read_env({**ENV, **over})


def conf(doc: dict[str, object], e: Env | None = None):  # type: ignore[no-untyped-def]
    base = {"cniVersion": "1.0.0", "name": "sriov-a", "type": "vfmac-cni",
            "deviceID": "0000:06:10.2"}
    return parse(json.dumps({**base, **doc}).encode(), e or env())


def code(doc: dict[str, object], e: Env | None = None) -> int:
    with pytest.raises(CniError) as info:
        conf(doc, e)
    return info.value.code


def test_env_parsed() -> None:
    e = env(CNI_ARGS="IgnoreUnknown=1;MAC=02:00:00:00:00:07")
    assert e.command == "ADD" and e.container_id == "c0ffee" and e.ifname == "net1"
    assert e.path == ("/usr/lib/cni", "/opt/cni/bin")
    assert e.args == {"IgnoreUnknown": "1", "MAC": "02:00:00:00:00:07"}


@pytest.mark.parametrize("over", [
    {"CNI_COMMAND": "FROB"}, {"CNI_COMMAND": ""}, {"CNI_CONTAINERID": ""},
    {"CNI_CONTAINERID": "-x"}, {"CNI_IFNAME": "a/b"}, {"CNI_IFNAME": "x" * 16},
    {"CNI_NETNS": ""}, {"CNI_ARGS": "novalue"},
])
def test_env_errors_are_code_4(over: dict[str, str]) -> None:
    with pytest.raises(CniError) as info:
        env(**over)
    assert info.value.code == codes.BAD_ENV


def test_del_without_netns_is_fine() -> None:
    assert env(CNI_COMMAND="DEL", CNI_NETNS="").netns == ""


def test_sriov_cni_config_accepted() -> None:
    c = conf({"vlan": 42, "vlanQoS": 3, "vlanProto": "802.1ad", "spoofchk": "off",
              "trust": "on", "link_state": "enable", "min_tx_rate": 10, "max_tx_rate": 100,
              "mac": "02-00-00-00-00-0A", "logLevel": "debug", "logFile": "/tmp/x",
              "somethingUnknown": {"a": 1}, "ipam": {"type": "host-local"}})
    s = c.settings
    assert (s.mac, s.vlan, s.qos, s.vlan_proto) == ("02:00:00:00:00:0a", 42, 3, "802.1ad")
    assert (s.spoofchk, s.trust, s.link_state) == (False, True, "enable")
    assert (s.min_tx_rate, s.max_tx_rate) == (10, 100)
    assert str(c.device) == "0000:06:10.2" and c.ipam_type == "host-local"


def test_pci_bus_id_and_defaults() -> None:
    c = conf({"deviceID": None, "pciBusID": "06:10.3", "ipam": {}})
    assert str(c.device) == "0000:06:10.3"
    assert c.ipam_type is None and c.mac is None
    assert (c.settings.vlan, c.settings.qos, c.settings.spoofchk) == (0, 0, None)


def test_mac_precedence() -> None:
    e = env(CNI_ARGS="MAC=02:00:00:00:00:02")
    both = {"mac": "02:00:00:00:00:03", "runtimeConfig": {"mac": "02:00:00:00:00:01"}}
    assert conf(both, e).mac == "02:00:00:00:00:01"
    assert conf({"mac": "02:00:00:00:00:03"}, e).mac == "02:00:00:00:00:02"
    assert conf({"mac": "02:00:00:00:00:03"}).mac == "02:00:00:00:00:03"


@pytest.mark.parametrize("doc", [
    {"vlan": 4095}, {"vlan": -1}, {"vlan": "5"}, {"vlan": True}, {"vlanQoS": 8, "vlan": 3},
    {"vlanQoS": 2}, {"vlanProto": "802.1ad"}, {"vlanProto": "qinq", "vlan": 3},
    {"spoofchk": "yes"}, {"trust": True}, {"link_state": "up"}, {"mac": "zz"},
    {"mac": "ff:ff:ff:ff:ff:ff"}, {"mac": "01:00:5e:00:00:01"},
    {"min_tx_rate": 100, "max_tx_rate": 10}, {"deviceID": "not-pci"}, {"deviceID": 7},
    {"ipam": "host-local"}, {"ipam": {"type": "../evil"}}, {"name": ""}, {"cniVersion": None},
    {"runtimeConfig": {"mac": "nope"}}, {"cni.dev/valid-attachments": [{"ifname": "x"}]},
])
def test_bad_values_are_code_7(doc: dict[str, object]) -> None:
    assert code(doc) == codes.INVALID_CONFIG


@pytest.mark.parametrize(("doc", "msg"), [
    ({"name": None}, "name: missing"),
    ({"name": 7}, "name 7: must be a non-empty string"),
    ({"spoofchk": True}, "spoofchk true: use one of on, off"),
    ({"trust": None, "link_state": "up"}, 'link_state "up": use one of auto, enable, disable'),
    ({"vlan": "5"}, 'vlan "5": must be an integer in 0..4094'),
    ({"deviceID": 7}, "deviceID 7: not a string"),
    ({"ipam": {"type": "../evil"}}, 'ipam.type "../evil": not a plugin name'),
])
def test_bad_values_are_named_as_json_spells_them(doc: dict[str, object], msg: str) -> None:
    """The user wrote JSON: a message shows the value as JSON, not as Python (True, None)."""
    with pytest.raises(CniError) as info:
        conf(doc)
    assert info.value.msg.startswith(msg), info.value.msg


def test_unsupported_version_is_code_1() -> None:
    assert code({"cniVersion": "0.2.0"}) == codes.INCOMPATIBLE_VERSION


@pytest.mark.parametrize("raw", [b"{", b"[1]", b"\xff", b""])
def test_undecodable_is_code_6(raw: bytes) -> None:
    with pytest.raises(CniError) as info:
        parse(raw, env())
    assert info.value.code == codes.DECODE


def test_valid_attachments() -> None:
    c = conf({"cniVersion": "1.1.0", "cni.dev/valid-attachments": [
        {"containerID": "a", "ifname": "net1"}, {"containerID": "b", "ifname": "net2"}]})
    assert c.valid_attachments == (("a", "net1"), ("b", "net2"))


def test_owner_round_trip() -> None:
    text = owner("c0ffee", "net1", "net:with:colons")
    assert split_owner(text) == ("c0ffee", "net1", "net:with:colons")
    assert split_owner("mac:02:00:00:00:00:01") is None
