"""The records of the state store: VF keys, saved originals (validated, canonical), process
liveness."""

from __future__ import annotations

import multiprocessing as mp
import os
import time
from typing import Any

import pytest
from originals import original

from pyvfmac.errors import InputError
from pyvfmac.records import canonical_vf_key, process_alive, process_start_time, vf_key


# ------------------------------------------------------------------------- keys and records


def test_vf_keys() -> None:
    assert canonical_vf_key("06:10.0") == "0000:06:10.0"
    assert canonical_vf_key("0000:0A:1F.7") == "0000:0a:1f.7"
    assert canonical_vf_key("eni0np1/vf003") == "eni0np1/vf3"
    assert vf_key("0000:06:10.1") == "0000:06:10.1"
    assert vf_key(pf="eth3", vf=12) == "eth3/vf12"
    for bad in ("", "06:10", "0000:06:20.0", "eth3/vf", "eth3/3", "a b/vf1",
                "averyveryverylongname/vf1", "/vf1"):
        with pytest.raises(InputError, match="VF key"):
            canonical_vf_key(bad)
    with pytest.raises(InputError, match="both the PF netdev and the VF index"):
        vf_key(pf="eth3")


def test_original_is_validated_and_canonical() -> None:
    o = original("06:10.0", mac="00-00-00-00-00-00", netdev_mac="AABB.CC00.1122")
    assert o.vf_key == "0000:06:10.0"
    assert o.mac == "00:00:00:00:00:00"
    assert o.netdev_mac == "aa:bb:cc:00:11:22"
    cases: list[tuple[dict[str, Any], str]] = [
        ({"mac": "01:00:5e:00:00:01"}, "0000:06:10.0: original MAC '01:00:5e:00:00:01'"),
        ({"vlan": 4096}, "original VLAN 4096"),
        ({"qos": 8}, "original qos 8"),
        ({"vlan_proto": "802.1X"}, "original VLAN protocol '802.1X'"),
        ({"spoofchk": 1}, "original spoofchk 1"),
        ({"link_state": "up"}, "original link state 'up'"),
        ({"max_tx_rate": -1}, "original max_tx_rate -1"),
        ({"vf": True}, "original VF index True"),
        ({"pf": "a/b"}, "original PF netdev name 'a/b'"),
        ({"netdev": ""}, "original VF netdev name ''"),
        ({"driver": "igb vf"}, "original driver 'igb vf'"),
    ]
    for change, message in cases:
        with pytest.raises(InputError) as info:
            original(**change)
        assert message in str(info.value), (change, str(info.value))

def test_process_alive() -> None:
    me = os.getpid()
    assert process_alive(me) and process_alive(me, process_start_time(me))
    assert not process_alive(me, (process_start_time(me) or 0) + 1)  # a reused pid
    assert not process_alive(0) and not process_alive(-5)
    p = mp.get_context("spawn").Process(target=time.sleep, args=(0,))
    p.start()
    p.join()
    assert p.pid is not None and not process_alive(p.pid)
