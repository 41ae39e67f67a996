"""A VF change the kernel refuses part-way (pyvfmac.results, Rtnl.apply, ``vfmac set``).

The kernel applies one change's settings in its order and stops at the refused one
(pyvfmac.settings.KERNEL_ORDER). Here a fake kernel models that, so that the reads, the
put-back and the messages are checked exactly; the same against igb, which refuses VF link
state for real, is in tests/testbed/test_partial.py."""

from __future__ import annotations

import errno
import pickle

from pyvfmac.errors import NetlinkError


def test_kernel_error_says_what_became_of_the_rest() -> None:
    err = NetlinkError(errno.EOPNOTSUPP, "cannot set link state enable", device="eth0", vf=3,
                       outcome="nothing changed")
    assert str(err) == ("eth0 vf 3: cannot set link state enable: Operation not supported "
                        "(EOPNOTSUPP); nothing changed")
    again = pickle.loads(pickle.dumps(err))
    assert type(again) is NetlinkError and str(again) == str(err) and again.outcome == err.outcome
    with_msg = NetlinkError(errno.EINVAL, "cannot set TX rate max 100 Mbit/s", device="eth0",
                            vf=4, ext_msg="bad rate", outcome="set: VLAN 44 802.1Q")
    assert str(with_msg) == ("eth0 vf 4: cannot set TX rate max 100 Mbit/s: Invalid argument "
                             "(EINVAL): bad rate; set: VLAN 44 802.1Q")
    assert NetlinkError(errno.EINVAL, "x").outcome is None
