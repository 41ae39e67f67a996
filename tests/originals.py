"""A saved original to store and check: the test helper shared by the record and store tests."""

from __future__ import annotations

from typing import Any

from pyvfmac.records import Original


def original(key: str = "0000:06:10.0", **kw: Any) -> Original:
    values: dict[str, Any] = dict(vf_key=key, pf="enp6s0", vf=0, mac="00:00:00:00:00:00",
                                  vlan=0, qos=0, vlan_proto="802.1Q", spoofchk=True, trust=False,
                                  link_state="auto", min_tx_rate=0, max_tx_rate=0,
                                  netdev="enp6s0v0", netdev_mac="aa:bb:cc:00:11:22",
                                  driver="igbvf")
    values.update(kw)
    return Original(**values)
