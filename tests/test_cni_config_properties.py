"""Property tests of the CNI configuration and environment parsers (vfmac-cni, issue 16): no
input raises anything but a CniError with one of the spec's codes, and a configuration that
parses gives settings the one validator accepts."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from pyvfmac.cni.config import parse, read_env
from pyvfmac.errors import CniError
from pyvfmac.settings import check

ENV = read_env({"CNI_COMMAND": "ADD", "CNI_CONTAINERID": "c1", "CNI_NETNS": "/run/netns/p",
                "CNI_IFNAME": "net1", "CNI_PATH": "/usr/lib/cni", "CNI_ARGS": "MAC=x"})
CONFIG_CODES = {1, 6, 7}

scalars = st.one_of(st.none(), st.booleans(), st.integers(-5, 5000), st.text(max_size=20),
                    st.floats(allow_nan=False, allow_infinity=False))
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3)
                      | st.dictionaries(st.text(max_size=8), inner, max_size=3), max_leaves=8)
KEYS = ["cniVersion", "name", "type", "deviceID", "pciBusID", "mac", "vlan", "vlanQoS",
        "vlanProto", "spoofchk", "trust", "link_state", "min_tx_rate", "max_tx_rate", "ipam",
        "runtimeConfig", "logLevel", "logFile", "prevResult", "cni.dev/valid-attachments"]
GOOD: dict[str, Any] = {"cniVersion": "1.0.0", "name": "sriov-net", "type": "vfmac-cni",
                        "deviceID": "0000:01:10.0"}
likely = st.fixed_dictionaries({}, optional={
    "cniVersion": st.sampled_from(["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0", "2.0.0", ""]),
    "vlan": st.integers(-2, 5000), "vlanQoS": st.integers(-1, 9),
    "vlanProto": st.sampled_from(["802.1q", "802.1ad", "802.1Q", "x"]),
    "spoofchk": st.sampled_from(["on", "off", "yes", True]),
    "trust": st.sampled_from(["on", "off", 1]),
    "link_state": st.sampled_from(["auto", "enable", "disable", "up"]),
    "min_tx_rate": st.integers(-1, 1 << 33), "max_tx_rate": st.integers(-1, 1 << 33),
    "mac": st.sampled_from(["02:00:00:00:00:01", "01:00:5e:00:00:01", "zz", ""]),
    "deviceID": st.sampled_from(["0000:01:10.0", "01:10.0", "bad", ""]),
    "runtimeConfig": st.fixed_dictionaries({}, optional={"mac": st.text(max_size=20)}),
})


def outcome(raw: bytes) -> None:
    try:
        conf = parse(raw, ENV)
    except CniError as exc:
        assert exc.code in CONFIG_CODES, (exc.code, exc.msg)
        assert exc.msg and "\n" not in exc.msg
    else:
        assert check(conf.settings, "config") == conf.settings


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_any_bytes(raw: bytes) -> None:
    outcome(raw)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(KEYS), values, max_size=8))
def test_any_json_object_with_known_keys(doc: dict[str, Any]) -> None:
    outcome(json.dumps(doc).encode())


@settings(max_examples=300, deadline=None)
@given(likely)
def test_near_valid_configs(extra: dict[str, Any]) -> None:
    outcome(json.dumps({**GOOD, **extra}).encode())


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.sampled_from(["CNI_COMMAND", "CNI_CONTAINERID", "CNI_NETNS",
                                        "CNI_IFNAME", "CNI_PATH", "CNI_ARGS"]),
                       st.text(max_size=30), max_size=6))
def test_any_environment(environ: dict[str, str]) -> None:
    try:
        read_env(environ)
    except CniError as exc:
        assert exc.code == 4 and exc.msg
