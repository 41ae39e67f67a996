"""vfmac-cni: the environment and sriov-cni's network configuration (no host access)."""

from __future__ import annotations

import json

import pytest

from pyvfmac.cni import codes
from pyvfmac.cni.config import Env, NetConf, owner, parse, parse_for_del, read_env, split_owner
from pyvfmac.errors import CniError
from pyvfmac.settings import VfSettings

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
    assert c.settings == VfSettings()  # nothing given: the VF is left as it is


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
    {"ipam": "host-local"}, {"ipam": {"type": "../evil"}}, {"name": ""},
    {"runtimeConfig": {"mac": "nope"}}, {"cni.dev/valid-attachments": [{"ifname": "x"}]},
])
def test_bad_values_are_code_7(doc: dict[str, object]) -> None:
    assert code(doc) == codes.INVALID_CONFIG


@pytest.mark.parametrize(("doc", "msg"), [
    ({"name": None}, "name: missing"),
    ({"name": 7}, "name 7: must be letters, digits"),
    ({"spoofchk": True}, "spoofchk true: must be a string"),
    ({"trust": None, "link_state": "up"}, 'link_state "up": use one of auto, enable, disable'),
    ({"vlan": "5"}, 'vlan "5": must be an integer'),
    ({"deviceID": 7}, "deviceID 7: must be a string"),
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


# ---------------------------------------------------------------------------- sriov-cni, key by key
# One test per row of docs/cni-sriov-compat.md: what sriov-cni v2.10 does with the key, and
# vfmac-cni's reading of it (the same, or a refusal where sriov-cni silently misreads it).


def settings_of(doc: dict[str, object]) -> VfSettings:
    return conf(doc).settings  # type: ignore[no-any-return]


def msg(doc: dict[str, object], e: Env | None = None) -> str:
    with pytest.raises(CniError) as info:
        conf(doc, e)
    return info.value.msg


def del_conf(doc: dict[str, object], command: str = "DEL", **over: str) -> NetConf:
    base = {"cniVersion": "1.1.0", "name": "sriov-a", "type": "vfmac-cni"}
    return parse_for_del(json.dumps({**base, **doc}).encode(),
                         env(CNI_COMMAND=command, CNI_NETNS="", **over))


def test_row_cni_version() -> None:
    """libcni reads no cniVersion as 0.1.0, which vfmac-cni (like anything below 0.3.0 or
    unknown) does not support: code 1, for ADD and DEL alike; VERSION answers anyway."""
    assert code({"cniVersion": None}) == codes.INCOMPATIBLE_VERSION
    assert "0.1.0" in msg({"cniVersion": ""})
    assert code({"cniVersion": "0.2.0"}) == codes.INCOMPATIBLE_VERSION
    with pytest.raises(CniError) as info:
        del_conf({"cniVersion": None})
    assert info.value.code == codes.INCOMPATIBLE_VERSION
    assert code({"cniVersion": 1}) == codes.DECODE  # libcni cannot decode it


@pytest.mark.parametrize(("command", "version", "ok"), [
    ("GC", "1.0.0", False), ("STATUS", "0.4.0", False), ("GC", "1.1.0", True),
    ("STATUS", "1.1.0", True), ("CHECK", "0.3.1", False), ("CHECK", "0.4.0", True),
    ("DEL", "0.3.0", True),
])
def test_row_cni_version_per_command(command: str, version: str, ok: bool) -> None:
    """libcni's skel: CHECK needs 0.4.0, GC and STATUS 1.1.0; below, code 1."""
    doc = {"cni.dev/valid-attachments": []}
    if command == "CHECK":
        call = lambda: conf({"cniVersion": version}, env(CNI_COMMAND="CHECK"))  # noqa: E731
    else:
        call = lambda: del_conf({**doc, "cniVersion": version}, command)  # noqa: E731
    if ok:
        assert call().version == version
    else:
        with pytest.raises(CniError) as info:
            call()
        assert info.value.code == codes.INCOMPATIBLE_VERSION
        assert f"does not allow {command}" in info.value.msg


@pytest.mark.parametrize("name", ["", "-lead", ".x", "a b", "a/b", "net:1", "é", "a\nb"])
def test_row_name_refused_as_the_spec_says(name: str) -> None:
    """SPEC.md: alphanumeric first, then alphanumerics, '_', '.', '-' (libcni's skel refuses
    any other with code 7, before the plugin runs): for ADD and for DEL."""
    assert code({"name": name}) == codes.INVALID_CONFIG
    with pytest.raises(CniError) as info:
        del_conf({"name": name})
    assert info.value.code == codes.INVALID_CONFIG


def test_row_name_accepted() -> None:
    assert conf({"name": "Sriov_net.1-a"}).name == "Sriov_net.1-a"


def test_row_type_is_not_read() -> None:
    assert conf({"type": "sriov"}).name == "sriov-a"
    assert code({"type": 5}) == codes.INVALID_CONFIG  # Go cannot decode it


def test_row_device_id() -> None:
    assert str(conf({"deviceID": "0000:af:0a.1"}).device) == "0000:af:0a.1"
    assert code({"deviceID": "0000:af:0a"}) == codes.INVALID_CONFIG
    assert conf({"deviceID": ""}).device is None  # ADD then says it is missing


def test_row_pci_bus_id_is_an_extension() -> None:
    """sriov-cni v2.10 has no pciBusID (it refuses a config without deviceID); vfmac-cni takes
    it when deviceID is absent."""
    assert str(conf({"deviceID": None, "pciBusID": "0000:06:10.3"}).device) == "0000:06:10.3"
    assert str(conf({"pciBusID": "0000:06:10.3"}).device) == "0000:06:10.2"


def test_row_vlan() -> None:
    """Absent: the VF's VLAN is left alone (sriov-cni 2.8, its issue 291). 0: untagged."""
    assert (settings_of({}).vlan, settings_of({}).qos, settings_of({}).vlan_proto) == (
        None, None, None)
    assert (settings_of({"vlan": None}).vlan) is None
    s = settings_of({"vlan": 0})
    assert (s.vlan, s.qos, s.vlan_proto) == (0, 0, "802.1Q")
    s = settings_of({"vlan": 4094})
    assert (s.vlan, s.qos, s.vlan_proto) == (4094, 0, "802.1Q")
    for bad in (4095, -1, 5.0, "5", True):
        assert code({"vlan": bad}) == codes.INVALID_CONFIG


def test_row_vlan_qos() -> None:
    """Without vlan, any vlanQoS (even 0) is refused, as sriov-cni's LoadConf does; a non-zero
    one needs a non-zero vlan."""
    assert "needs a vlan" in msg({"vlanQoS": 0})
    assert code({"vlanQoS": 3}) == codes.INVALID_CONFIG
    assert settings_of({"vlanQoS": None}).qos is None
    assert "needs a non-zero vlan" in msg({"vlan": 0, "vlanQoS": 3})
    assert settings_of({"vlan": 0, "vlanQoS": 0}).qos == 0
    assert settings_of({"vlan": 10, "vlanQoS": 7}).qos == 7
    assert code({"vlan": 10, "vlanQoS": 8}) == codes.INVALID_CONFIG


def test_row_vlan_proto() -> None:
    """Any case (sriov-cni lowercases it); without vlan refused; 802.1ad needs a non-zero vlan."""
    assert settings_of({"vlan": 5, "vlanProto": "802.1AD"}).vlan_proto == "802.1ad"
    assert settings_of({"vlan": 5, "vlanProto": "802.1q"}).vlan_proto == "802.1Q"
    assert settings_of({"vlan": 0, "vlanProto": "802.1Q"}).vlan_proto == "802.1Q"
    assert "needs a vlan" in msg({"vlanProto": "802.1Q"})
    assert "needs a non-zero vlan" in msg({"vlan": 0, "vlanProto": "802.1ad"})
    for bad in ("", "qinq", 8021):
        assert code({"vlan": 5, "vlanProto": bad}) == codes.INVALID_CONFIG


def test_row_mac() -> None:
    assert conf({"mac": "CA:FE:C0:FF:EE:00"}).mac == "ca:fe:c0:ff:ee:00"
    assert conf({"mac": ""}).mac is None
    for bad in ("01:00:5e:00:00:01", "ff:ff:ff:ff:ff:ff", "00:00:00:00:00:00",
                "02:00:00:00:00:00:00:01", 7):
        assert code({"mac": bad}) == codes.INVALID_CONFIG


@pytest.mark.parametrize("key", ["spoofchk", "trust"])
def test_row_on_off(key: str) -> None:
    """"on" / "off" / "" (not given), exactly: sriov-cni reads every other string as off
    ("ON", "yes", "true", "enable"), which vfmac-cni refuses instead."""
    assert getattr(settings_of({key: "on"}), key) is True
    assert getattr(settings_of({key: "off"}), key) is False
    assert getattr(settings_of({key: ""}), key) is None
    assert getattr(settings_of({key: None}), key) is None
    for bad in ("ON", "On", "yes", "true", "enable", "1", "OFF", "no"):
        text = msg({key: bad})
        assert text.startswith(f'{key} "{bad}": use "on" or "off"') and '"off"' in text
    assert code({key: True}) == codes.INVALID_CONFIG


def test_row_link_state() -> None:
    """auto / enable / disable exactly (sriov-cni refuses "Enable"); "" is not given."""
    for state in ("auto", "enable", "disable"):
        assert settings_of({"link_state": state}).link_state == state
    assert settings_of({"link_state": ""}).link_state is None
    for bad in ("Enable", "AUTO", "up", "on"):
        assert code({"link_state": bad}) == codes.INVALID_CONFIG


def test_row_min_tx_rate() -> None:
    """Alone, it sets max_tx_rate 0 (no limit), as sriov-cni sends both."""
    s = settings_of({"min_tx_rate": 100})
    assert (s.min_tx_rate, s.max_tx_rate) == (100, 0)
    s = settings_of({"min_tx_rate": 100, "max_tx_rate": 100})
    assert (s.min_tx_rate, s.max_tx_rate) == (100, 100)
    assert "above max_tx_rate" in msg({"min_tx_rate": 100, "max_tx_rate": 10})
    for bad in (-1, 1 << 32, 1.5, "10"):
        assert code({"min_tx_rate": bad}) == codes.INVALID_CONFIG


def test_row_max_tx_rate() -> None:
    s = settings_of({"max_tx_rate": 200})
    assert (s.min_tx_rate, s.max_tx_rate) == (0, 200)
    s = settings_of({"max_tx_rate": 0})
    assert (s.min_tx_rate, s.max_tx_rate) == (0, 0)  # no limit: the VF's limits go
    assert (settings_of({}).min_tx_rate, settings_of({}).max_tx_rate) == (None, None)
    assert code({"max_tx_rate": -5}) == codes.INVALID_CONFIG


def test_row_ipam() -> None:
    assert conf({"ipam": {"type": "whereabouts", "range": "x"}}).ipam_type == "whereabouts"
    assert conf({"ipam": {"Type": "host-local"}}).ipam_type == "host-local"
    assert conf({"ipam": {}}).ipam_type is None
    assert conf({"ipam": {"type": ""}}).ipam_type is None
    assert code({"ipam": []}) == codes.INVALID_CONFIG


def test_row_runtime_config_mac() -> None:
    e = env(CNI_ARGS="IgnoreUnknown=1;MAC=02:00:00:00:00:02")
    assert conf({"runtimeConfig": {"mac": "02:00:00:00:00:01"}}, e).mac == "02:00:00:00:00:01"
    assert conf({"runtimeConfig": {"MAC": "02:00:00:00:00:01"}}).mac == "02:00:00:00:00:01"
    assert conf({"runtimeConfig": {"mac": ""}, "mac": "02:00:00:00:00:03"}).mac == \
        "02:00:00:00:00:03"
    assert code({"runtimeConfig": "02:00:00:00:00:01"}) == codes.INVALID_CONFIG


def test_row_cni_args_mac() -> None:
    assert conf({}, env(CNI_ARGS="MAC=02:00:00:00:00:02")).mac == "02:00:00:00:00:02"
    assert conf({}, env(CNI_ARGS="MAC=")).mac is None
    assert code({}, env(CNI_ARGS="MAC=zz")) == codes.INVALID_CONFIG


def test_row_cni_args_other_keys() -> None:
    """libcni's LoadArgs, as sriov-cni's ADD calls it: keys other than MAC need IgnoreUnknown
    (1 or true, any case); they go on to IPAM (host-local reads IP=) untouched."""
    ok = "IgnoreUnknown=1;K8S_POD_NAME=p;IP=10.1.1.5/24"
    assert conf({}, env(CNI_ARGS=ok)).mac is None
    assert conf({}, env(CNI_ARGS="IgnoreUnknown=TRUE;IP=10.1.1.5")).mac is None
    for bad in ("K8S_POD_NAME=p", "IgnoreUnknown=0;IP=10.1.1.5", "IgnoreUnknown=yes",
                "IgnoreUnknown=1;A=b=c"):
        assert code({}, env(CNI_ARGS=bad)) == codes.BAD_ENV, bad


@pytest.mark.parametrize("key", ["logLevel", "logFile"])
def test_row_logging_keys_ignored(key: str) -> None:
    assert conf({key: "debug"}).name == "sriov-a"
    assert code({key: 3}) == codes.INVALID_CONFIG  # Go cannot decode it: sriov-cni fails


def test_row_capabilities_dns_prev_result() -> None:
    c = conf({"capabilities": {"mac": True}, "dns": {"nameservers": ["10.0.0.1"]},
              "prevResult": {"interfaces": []}})
    assert c.prev_result == {"interfaces": []}
    for key in ("capabilities", "dns", "prevResult"):
        assert code({key: "x"}) == codes.INVALID_CONFIG


def test_row_valid_attachments() -> None:
    c = del_conf({"cni.dev/valid-attachments": [{"containerID": "a", "ifname": "n"}]}, "GC")
    assert c.valid_attachments == (("a", "n"),)
    with pytest.raises(CniError) as info:  # a wrong list would release live VFs
        del_conf({"cni.dev/valid-attachments": [{"ifname": "n"}]}, "GC")
    assert info.value.code == codes.INVALID_CONFIG
    assert del_conf({"cni.dev/valid-attachments": 5}).valid_attachments is None  # DEL: unread


def test_row_mtu_and_sriov_cni_state_ignored() -> None:
    """sriov-cni decodes "mtu" (its MTU field) and its own cached state, then overwrites them:
    no effect. vfmac-cni ignores them too, refusing only what Go could not decode."""
    assert conf({"mtu": 9000, "Master": "eth0", "VFID": 3, "OrigVfState": {}}).name == "sriov-a"
    assert code({"mtu": "9000"}) == codes.INVALID_CONFIG
    assert code({"VFID": "3"}) == codes.INVALID_CONFIG


def test_row_key_spelling() -> None:
    """Go matches keys case-insensitively: "VLAN" is vlan, "SpoofChk" spoofchk. One key written
    twice in two spellings is refused (Go would silently take the last)."""
    s = settings_of({"VLAN": 7, "SpoofChk": "on", "Link_State": "enable", "MIN_TX_RATE": 5})
    assert (s.vlan, s.spoofchk, s.link_state, s.min_tx_rate) == (7, True, "enable", 5)
    assert conf({"MAC": "02:00:00:00:00:09"}).mac == "02:00:00:00:00:09"
    assert conf({"name": None, "Name": "other"}).name == "other"
    assert conf({"cniVersion": None, "CNIVERSION": "0.4.0"}).version == "0.4.0"
    assert "both given" in msg({"vlan": 5, "Vlan": 6})


@pytest.mark.parametrize("doc", [
    {"mac": "zz"}, {"vlan": 5000}, {"vlan": "5"}, {"spoofchk": ""}, {"spoofchk": "yes"},
    {"trust": 1}, {"link_state": "up"}, {"vlanQoS": 3}, {"min_tx_rate": -1},
    {"deviceID": "bogus"}, {"ipam": "host-local"}, {"ipam": {"type": "../x"}},
    {"runtimeConfig": 5}, {"logLevel": 3}, {"prevResult": []}, {"VLAN": 1, "vlan": 2},
])
def test_row_del_reads_only_what_it_needs(doc: dict[str, object]) -> None:
    """DEL (and GC, STATUS) never fails on a VF key: whatever ADD refuses stays deletable."""
    c = del_conf({"ipam": {"type": "host-local"}, **doc})
    assert (c.name, c.lenient, c.device, c.mac, c.settings) == (
        "sriov-a", True, None, None, VfSettings())
    if "ipam" not in doc:
        assert c.ipam_type == "host-local"
    else:
        assert c.ipam_type is None  # an unusable ipam: no delegate to DEL
    assert not conf({}).lenient


@pytest.mark.parametrize(("raw", "want"), [
    (b"{", codes.DECODE), (b"[]", codes.DECODE), (b'{"cniVersion": "1.0.0"}', codes.INVALID_CONFIG),
    (b'{"cniVersion": "1.0.0", "name": "a b"}', codes.INVALID_CONFIG),
    (b'{"cniVersion": "1.0.0", "name": "a", "Name": "b"}', codes.INVALID_CONFIG),
])
def test_row_del_fails_only_on_json_and_name(raw: bytes, want: int) -> None:
    with pytest.raises(CniError) as info:
        parse_for_del(raw, env(CNI_COMMAND="DEL"))
    assert info.value.code == want


def test_row_allow_duplicate_mac_is_vfmac_cnis_own() -> None:
    """allowDuplicateMac (vfmac-cni's own key): true lets ADD give a MAC another attachment or
    netdev has; absent or false refuses it (code 109); a non-boolean is refused at once."""
    from pyvfmac.cni.config import parse, read_env

    env = read_env({"CNI_COMMAND": "ADD", "CNI_CONTAINERID": "c1", "CNI_NETNS": "/run/netns/p",
                    "CNI_IFNAME": "net1", "CNI_PATH": "/usr/lib/cni"})
    base = {"cniVersion": "1.0.0", "name": "n", "type": "vfmac-cni",
            "deviceID": "0000:01:10.0"}
    assert parse(json.dumps(base).encode(), env).allow_duplicate_mac is False
    on = parse(json.dumps({**base, "allowDuplicateMac": True}).encode(), env)
    assert on.allow_duplicate_mac is True
    with pytest.raises(CniError) as info:
        parse(json.dumps({**base, "allowDuplicateMac": "yes"}).encode(), env)
    assert info.value.code == 7 and "allowDuplicateMac" in info.value.msg
