"""The bulk MAC path (``Rtnl.set_macs``) on netdevsim, checked with the independent raw reader and
``ip -j link show``."""

from __future__ import annotations

import errno
from collections.abc import Callable
from typing import Any

from pyvfmac.netlink import Rtnl


def test_set_macs_every_vf_and_exactly_the_bad_one_fails(
        nsim_pf: Callable[..., Any], raw_vfs: Callable[[str], dict[int, Any]],
        ip_link: Callable[[str], dict[str, Any]]) -> None:
    pf = nsim_pf(1024)
    want = {vf: f"02:b0:00:00:{vf >> 8:02x}:{vf & 0xFF:02x}" for vf in range(1024)}
    bad = dict(want)
    bad[5000] = "02:b0:00:00:ff:ff"  # beyond the PF's VFs: netdevsim says EINVAL
    with Rtnl() as nl:
        failed = nl.set_macs(pf.name, bad)
    assert list(failed) == [5000]
    assert failed[5000].errno == errno.EINVAL
    assert f"{pf.name} vf 5000" in str(failed[5000])
    got = raw_vfs(pf.name)
    assert {vf: got[vf].mac for vf in range(1024)} == want
    listed = ip_link(pf.name).get("vfinfo_list", [])
    assert listed  # ip lists the first VFs only (truncated list), they must agree
    for entry in listed:
        assert entry["address"] == want[entry["vf"]]
