"""A VF change the kernel refuses part-way (pyvfmac.results, Rtnl.apply, ``vfmac set``).

The kernel applies one change's settings in its order and stops at the refused one
(pyvfmac.settings.KERNEL_ORDER). Here a fake kernel models that, so that the reads, the
put-back and the messages are checked exactly; the same against igb, which refuses VF link
state for real, is in tests/testbed/test_partial.py."""

from __future__ import annotations

import dataclasses
import errno
import io
import pickle
from array import array
from collections.abc import Sequence
from typing import Any

import pytest

from pyvfmac import _lowlevel as ll
from pyvfmac.cli import main
from pyvfmac.errors import NetlinkError
from pyvfmac.netlink import Rtnl, check_results
from pyvfmac.results import read_back, result_error
from pyvfmac.settings import VfSettings
from pyvfmac.types import LINK_STATES, LinkInfo, VfChange, VfResult, VfState


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


# ------------------------------------------------------------------ a fake kernel under Rtnl

ORDER = ((ll.SET_MAC, "mac"), (ll.SET_VLAN, "vlan"), (ll.SET_RATE, "rate"),
         (ll.SET_SPOOFCHK, "spoofchk"), (ll.SET_LINK_STATE, "link_state"),
         (ll.SET_TRUST, "trust"))
"""do_setvfinfo's order, written out here (not taken from pyvfmac) so that the model is the
kernel's, not the code's under test."""


class Kernel:
    """VF states of PF eth0 (ifindex 10) behind Rtnl's socket: reads, and VF changes applied
    as do_setvfinfo applies them. ``refuse[(vf, setting)]``: that errno for that setting;
    ``reads``: every RTM_GETLINK; ``sent``: every packed change."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, *vfs: VfState) -> None:
        self.vfs = {s.vf: s for s in vfs}
        self.refuse: dict[tuple[int, str], int] = {}
        self.reads = 0
        self.sent: list[tuple[int, int, dict[str, Any]]] = []
        monkeypatch.setattr(Rtnl, "resolve", lambda _nl, dev: (10, "eth0"))
        monkeypatch.setattr(Rtnl, "read_link", lambda _nl, dev, strict=True: self.link())
        monkeypatch.setattr(ll, "vf_apply", self.vf_apply)
        monkeypatch.setattr(ll, "vf_set_macs", self.vf_set_macs)

    def link(self) -> LinkInfo:
        self.reads += 1
        return LinkInfo(10, "eth0", "52:54:00:00:00:10", None, "pci", "0000:01:00.0",
                        len(self.vfs), tuple(self.vfs[i] for i in sorted(self.vfs)))

    def setvfinfo(self, vf: int, values: dict[str, Any]) -> int:
        self.sent.append((10, vf, values))
        for _flag, name in ORDER:
            if name not in values:
                continue
            code = self.refuse.get((vf, name), 0)
            if code:
                return code
            new = values[name] if isinstance(values[name], dict) else {name: values[name]}
            self.vfs[vf] = dataclasses.replace(self.vfs[vf], **new)
        return 0

    def vf_apply(self, _sock: object, changes: Sequence[ll.PackedChange], **_opts: int
                 ) -> tuple[list[int], list[int], list[str]]:
        errs = []
        for ifindex, vf, flags, mac, proto, vlan, qos, spoof, trust, state, lo, hi in changes:
            assert ifindex == 10
            given = {"mac": mac.hex(":"),
                     "vlan": {"vlan": vlan, "qos": qos,
                              "vlan_proto": "802.1ad" if proto == 0x88A8 else "802.1Q"},
                     "rate": {"min_tx_rate": lo, "max_tx_rate": hi},
                     "spoofchk": bool(spoof), "link_state": LINK_STATES[state],
                     "trust": bool(trust)}
            errs.append(self.setvfinfo(vf, {n: given[n] for f, n in ORDER if flags & f}))
        return errs, [1] * len(errs), [""] * len(errs)

    def vf_set_macs(self, _sock: object, jobs: Sequence[ll.MacJob], vfs: array[int],
                    text: bytes, **_opts: int) -> tuple[int, int, list[Any], Any]:
        assert [j[0] for j in jobs] == [10]
        failures = []
        for pos, (vf, mac) in enumerate(zip(vfs, text.decode().split("\n"))):
            code = self.setvfinfo(vf, {"mac": mac})
            if code:
                failures.append((pos, code, 1, ""))
        return 0, 0, failures, None


IGB_VF = VfState(vf=3, mac="00:00:00:00:00:00", spoofchk=True, trust=False, link_state="auto")


def igb(monkeypatch: pytest.MonkeyPatch) -> Kernel:
    """eth0 as igb: VFs 0..4, link state refused (EOPNOTSUPP), TX rates refused (EINVAL)."""
    kernel = Kernel(monkeypatch, *(dataclasses.replace(IGB_VF, vf=i) for i in range(5)))
    for vf in range(5):
        kernel.refuse[(vf, "link_state")] = errno.EOPNOTSUPP
        kernel.refuse[(vf, "rate")] = errno.EINVAL
    return kernel


def vfmac_set(*words: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(["set", "eth0", *words], io.StringIO())
    return code, capsys.readouterr().err


def test_set_puts_back_what_applied_and_names_the_refused_setting_alone(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    kernel = igb(monkeypatch)
    before = dict(kernel.vfs)
    code, err = vfmac_set("3", "mac", "02:00:00:00:00:07", "state", "enable", capsys=capsys)
    assert (code, err) == (1, "vfmac: error: eth0 vf 3: cannot set link state enable: Operation "
                              "not supported (EOPNOTSUPP); nothing changed\n")
    assert kernel.vfs == before
    # vfmac set's own read gives the state before; one read back after the refusal; the MAC
    # put back alone
    assert kernel.reads == 2
    assert [values for _i, _vf, values in kernel.sent] == [
        {"mac": "02:00:00:00:00:07", "link_state": "enable"}, {"mac": "00:00:00:00:00:00"}]
    code, err = vfmac_set("4", "mac", "02:00:00:00:00:44", "vlan", "44", "spoofchk", "off",
                          "max_tx_rate", "100", capsys=capsys)
    assert (code, err) == (1, "vfmac: error: eth0 vf 4: cannot set TX rate max 100 Mbit/s: "
                              "Invalid argument (EINVAL); nothing changed\n")
    assert kernel.vfs == before


def test_set_that_cannot_put_back_says_what_is_left(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    kernel = igb(monkeypatch)
    kernel.refuse[(4, "spoofchk")] = errno.EPERM
    before = kernel.vfs[4]

    def no_vlan_0(vf: int, values: dict[str, Any], real: Any = kernel.setvfinfo) -> int:
        if values.get("vlan", {}).get("vlan") == 0:
            kernel.sent.append((10, vf, values))
            return errno.EBUSY
        return real(vf, values)

    kernel.setvfinfo = no_vlan_0  # type: ignore[method-assign]
    code, err = vfmac_set("4", "mac", "02:00:00:00:00:44", "vlan", "44", "spoofchk", "off",
                          "trust", "on", capsys=capsys)
    assert (code, err) == (1, "vfmac: error: eth0 vf 4: cannot set spoofchk off: Operation not "
                              "permitted (EPERM); set: VLAN 44 802.1Q (cannot put it back: "
                              "Device or resource busy (EBUSY)); not set: trust on\n")
    assert kernel.vfs[4] == dataclasses.replace(before, vlan=44)  # the MAC went back


def test_a_single_setting_is_neither_read_nor_put_back(
        monkeypatch: pytest.MonkeyPatch) -> None:
    kernel = igb(monkeypatch)
    with Rtnl() as nl:
        (r,) = nl.apply([VfChange(pf="eth0", vf=1, link_state="enable")])
    assert kernel.reads == 0 and r.refusal is None and r.kept is None
    assert r.errno == errno.EOPNOTSUPP
    with pytest.raises(NetlinkError) as exc:
        check_results([r])
    assert str(exc.value) == ("eth0 vf 1: cannot set link state enable: Operation not supported "
                              "(EOPNOTSUPP)")


def test_apply_reads_each_pf_once_before_and_once_after(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Without the caller's states: one read before (changes of several settings only), one
    after (refusals only), however many VFs; a change that applied is left alone."""
    kernel = igb(monkeypatch)
    changes = [VfChange(pf="eth0", vf=0, mac="02:00:00:00:00:10", trust=True),
               VfChange(pf="eth0", vf=1, mac="02:00:00:00:00:11", link_state="disable"),
               VfChange(pf="eth0", vf=2, vlan=5, link_state="enable", trust=True),
               VfChange(pf="eth0", vf=3, spoofchk=False)]
    with Rtnl() as nl:
        results = nl.apply(changes)
    assert kernel.reads == 2
    assert [r.errno for r in results] == [0, errno.EOPNOTSUPP, errno.EOPNOTSUPP, 0]
    assert [str(e) for e in map(_error, results) if e] == [
        "eth0 vf 1: cannot set link state disable: Operation not supported (EOPNOTSUPP); "
        "nothing changed",
        "eth0 vf 2: cannot set link state enable: Operation not supported (EOPNOTSUPP); "
        "nothing changed"]
    assert (kernel.vfs[0].mac, kernel.vfs[0].trust, kernel.vfs[3].spoofchk) == (
        "02:00:00:00:00:10", True, False)
    assert kernel.vfs[1] == dataclasses.replace(IGB_VF, vf=1)
    assert kernel.vfs[2] == dataclasses.replace(IGB_VF, vf=2)
    assert results[1].refusal is not None and results[1].kept is not None
    assert results[1].refusal.applied == VfSettings(mac="02:00:00:00:00:11")
    assert results[1].kept.empty() and results[1].undo_errno == 0


def test_apply_without_undo_reads_nothing_and_leaves_what_applied(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """``vfmac apply``'s way: it converges as far as it can and reads back on its own;
    read_back() gives the account from that read."""
    kernel = igb(monkeypatch)
    with Rtnl() as nl:
        (r,) = nl.apply([VfChange(pf="eth0", vf=1, mac="02:00:00:00:00:11", vlan=200,
                                  link_state="enable", trust=True)], undo=False)
    assert kernel.reads == 0 and r.refusal is None
    assert str(_error(r)) == ("eth0 vf 1: cannot set MAC 02:00:00:00:00:11, VLAN 200 802.1Q, "
                              "trust on, link state enable: Operation not supported (EOPNOTSUPP)")
    told = read_back(r, kernel.vfs[1])
    assert str(_error(told)) == (
        "eth0 vf 1: cannot set link state enable: Operation not supported (EOPNOTSUPP); "
        "set: MAC 02:00:00:00:00:11, VLAN 200 802.1Q; not set: trust on")
    assert (kernel.vfs[1].mac, kernel.vfs[1].vlan, kernel.vfs[1].trust) == (
        "02:00:00:00:00:11", 200, False)


def test_refused_setting_the_vf_already_had_is_named_and_the_rest_put_back(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """igb reports link state "auto" and refuses to set it: the read-back shows every setting
    as asked; the state before tells which one the kernel refused."""
    kernel = igb(monkeypatch)
    before = kernel.vfs[2]
    code, err = vfmac_set("2", "mac", "02:00:00:00:00:22", "state", "auto", capsys=capsys)
    assert (code, err) == (1, "vfmac: error: eth0 vf 2: cannot set link state auto: Operation "
                              "not supported (EOPNOTSUPP); nothing changed\n")
    assert kernel.vfs[2] == before


def test_unreadable_pf_says_what_applied_is_not_known(monkeypatch: pytest.MonkeyPatch) -> None:
    kernel = igb(monkeypatch)
    calls = 0

    def read(_nl: Rtnl, dev: object, strict: bool = True) -> LinkInfo:
        nonlocal calls
        calls += 1
        if calls > 1:
            raise NetlinkError(errno.ENOBUFS, "cannot read link and VF state", device="eth0")
        return kernel.link()

    monkeypatch.setattr(Rtnl, "read_link", read)
    with Rtnl() as nl:
        (r,) = nl.apply([VfChange(pf="eth0", vf=1, mac="02:00:00:00:00:11",
                                  link_state="enable")])
    assert r.refusal is None and r.kept is None and calls == 2
    assert str(_error(r)) == (
        "eth0 vf 1: cannot set MAC 02:00:00:00:00:11, link state enable: Operation not supported "
        "(EOPNOTSUPP); what of it applied is not known (cannot read the VF back: No buffer space "
        "available (ENOBUFS))")


def _error(result: VfResult) -> NetlinkError | None:
    return result_error(result)


def test_a_put_back_refused_before_sending_still_tells_the_refusal(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The PF is gone by the time of the put-back (its lookup raises): the result still says
    which setting was refused, and what stays set and why, instead of the call raising."""
    kernel = igb(monkeypatch)
    looked_up: list[object] = []

    def resolve(_nl: Rtnl, dev: object) -> tuple[int, str]:
        looked_up.append(dev)
        if len(looked_up) > 1:
            raise NetlinkError(errno.ENODEV, "no such network device", device=str(dev))
        return 10, "eth0"

    monkeypatch.setattr(Rtnl, "resolve", resolve)
    with Rtnl() as nl:
        [r] = nl.apply([VfChange(pf="eth0", vf=3, mac="02:00:00:00:00:07", link_state="enable")])
    assert r.errno == errno.EOPNOTSUPP and r.refusal is not None
    assert r.refusal.failed == VfSettings(link_state="enable")
    assert (r.kept, r.undo_errno) == (VfSettings(mac="02:00:00:00:00:07"), errno.ENODEV)
    assert kernel.vfs[3].mac == "02:00:00:00:00:07" and len(looked_up) == 2
