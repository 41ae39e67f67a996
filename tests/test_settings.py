"""The one model of a VF's settings: validation, comparison, description (pyvfmac.settings)."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pyvfmac.errors import InputError, MacError
from pyvfmac.settings import (
    LINK_STATES,
    SETTINGS,
    VLAN_PROTOS,
    Refusal,
    VfChange,
    VfSettings,
    VfState,
    check,
    describe,
    describe_diff,
    diff,
    joined,
    parts,
    problem,
    put_back,
    refusal,
    restore_steps,
)

macs = st.binary(min_size=6, max_size=6).map(
    lambda b: bytes([b[0] & 0xFE | 0x02]) + b[1:]).map(lambda b: b.hex(":"))
states = st.builds(
    VfState, vf=st.integers(0, 4095), mac=macs, vlan=st.integers(0, 4095),
    qos=st.integers(0, 7), vlan_proto=st.sampled_from(tuple(VLAN_PROTOS)),
    spoofchk=st.none() | st.booleans(), trust=st.none() | st.booleans(),
    link_state=st.none() | st.sampled_from(LINK_STATES),
    min_tx_rate=st.integers(0, 10_000), max_tx_rate=st.integers(0, 10_000)).map(
        # the kernel reports no qos for an untagged VF
        lambda s: dataclasses.replace(s, qos=0) if s.vlan == 0 else s)
wants = st.builds(
    VfSettings, mac=st.none() | macs, vlan=st.none() | st.integers(0, 4095),
    qos=st.none() | st.integers(0, 7), vlan_proto=st.none() | st.sampled_from(tuple(VLAN_PROTOS)),
    spoofchk=st.none() | st.booleans(), trust=st.none() | st.booleans(),
    link_state=st.none() | st.sampled_from(LINK_STATES),
    min_tx_rate=st.none() | st.integers(0, 10_000), max_tx_rate=st.none() | st.integers(0, 10_000))


def applied(have: VfState, change: VfSettings) -> VfState:
    """What a VF reads back after the kernel applied ``change`` (as rtnetlink does)."""
    values = {n: getattr(change, n) for n in SETTINGS if getattr(change, n) is not None}
    if change.vlan is not None:
        values["qos"] = change.qos or 0
        values["vlan_proto"] = change.vlan_proto or "802.1Q"
    return dataclasses.replace(have, **values)


def test_one_declaration_of_the_settings() -> None:
    """VfState and VfChange are the settings model plus what they add: no setting of their own."""
    base = {f.name for f in dataclasses.fields(VfSettings)}
    assert set(SETTINGS) == base
    assert {f.name for f in dataclasses.fields(VfState)} - base == {"vf"}
    assert {f.name for f in dataclasses.fields(VfChange)} - base == {"pf", "vf", "allow_zero_mac"}
    assert issubclass(VfState, VfSettings) and issubclass(VfChange, VfSettings)


@pytest.mark.parametrize(("name", "value", "reason"), [
    ("vlan", 4096, "out of range 0..4095"),
    ("vlan", True, "must be an integer"),
    ("qos", 8, "out of range 0..7"),
    ("vlan_proto", "802.1X", "use one of 802.1Q, 802.1ad"),
    ("link_state", "up", "use one of auto, enable, disable"),
    ("spoofchk", "on", "must be on/off"),
    ("max_tx_rate", -1, "out of range"),
    ("min_tx_rate", 1 << 32, "out of range"),
])
def test_problem_names_the_reason(name: str, value: object, reason: str) -> None:
    assert reason in (problem(name, value) or "")
    with pytest.raises(InputError, match=f"eth0 vf 1: .*{value!r}"):
        check(VfSettings(**{name: value}), "eth0 vf 1")  # type: ignore[arg-type]


def test_check_canonicalises_the_mac_and_keeps_the_type() -> None:
    change = VfChange(pf="eth0", vf=1, mac="52-54-00-6D-90-02", vlan=3)
    out = check(change, "eth0 vf 1")
    assert type(out) is VfChange and out.mac == "52:54:00:6d:90:02" and out.vlan == 3
    same = VfChange(pf="eth0", vf=1, mac="52:54:00:6d:90:02")
    assert check(same, "x") is same
    with pytest.raises(MacError, match="all-zero"):
        check(VfSettings(mac="00:00:00:00:00:00"), "x")
    assert check(VfSettings(mac="00-00-00-00-00-00"), "x", allow_zero_mac=True).mac == (
        "00:00:00:00:00:00")
    with pytest.raises(InputError, match="qos 3 given without a VLAN"):
        check(VfSettings(qos=3), "x")


@given(wants, states)
def test_diff_then_apply_reaches_what_is_wanted(want: VfSettings, have: VfState) -> None:
    """Whatever is wanted and whatever the VF has: applying the difference gives a VF with no
    difference left, and a VF already as wanted gets no change at all."""
    if want.vlan is None:
        want = dataclasses.replace(want, qos=None, vlan_proto=None)
    change = diff(want, have)
    after = have if change is None else applied(have, change)
    assert diff(want, after) is None
    if change is not None:
        assert describe(change) != "nothing" and describe_diff(have, change)


@given(states, states)
def test_restore_steps_put_back_the_original(original: VfState, have: VfState) -> None:
    after = have
    for step in restore_steps(original, have):
        assert describe(step) != "nothing"
        after = applied(after, step)
    for name in ("mac", "min_tx_rate", "max_tx_rate"):
        assert getattr(after, name) == getattr(original, name)
    assert restore_steps(original, after) == []


def test_diff_of_unknown_state_sends_every_wanted_setting() -> None:
    want = VfSettings(mac="02:00:00:00:00:01", vlan=5, trust=True, max_tx_rate=100)
    assert diff(want, None) == VfSettings(mac="02:00:00:00:00:01", vlan=5, qos=0,
                                          vlan_proto="802.1Q", trust=True, min_tx_rate=0,
                                          max_tx_rate=100)
    assert diff(VfSettings(), None) is None


def test_describe_texts() -> None:
    assert describe(VfSettings(mac="02:00:00:00:00:07", vlan=42, qos=3)) == (
        "MAC 02:00:00:00:00:07, VLAN 42 qos 3 802.1Q")
    assert describe(VfSettings()) == "nothing"
    have = VfState(vf=0, mac="52:54:00:aa:bb:01")
    assert describe_diff(have, VfSettings(mac="02:00:00:00:00:01", spoofchk=False)) == (
        "mac 52:54:00:aa:bb:01 -> 02:00:00:00:00:01; spoofchk ? -> off")
    assert describe_diff(None, VfSettings(trust=True)) == "trust (new) -> on"


def test_describe_says_only_the_rates_given() -> None:
    assert describe(VfSettings(max_tx_rate=100)) == "TX rate max 100 Mbit/s"
    assert describe(VfSettings(min_tx_rate=10)) == "TX rate min 10 Mbit/s"
    assert describe(VfSettings(min_tx_rate=0, max_tx_rate=100)) == "TX rate min 0 max 100 Mbit/s"
    assert describe(VfChange(pf="eth0", vf=4, mac="02:00:00:00:00:44", vlan=44, spoofchk=False,
                             max_tx_rate=100)) == (
        "MAC 02:00:00:00:00:44, VLAN 44 802.1Q, spoofchk off, TX rate max 100 Mbit/s")


@given(wants)
def test_describe_never_prints_none(want: VfSettings) -> None:
    assert "None" not in describe(want)


# ------------------------------------------------- a change the kernel refused part-way


def test_parts_follow_the_kernels_order() -> None:
    """net/core/rtnetlink.c do_setvfinfo: MAC, VLAN, rate, spoofchk, link state, trust."""
    change = VfSettings(trust=True, link_state="enable", spoofchk=False, max_tx_rate=100,
                        vlan=44, qos=1, mac="02:00:00:00:00:44")
    assert parts(change) == [VfSettings(mac="02:00:00:00:00:44"), VfSettings(vlan=44, qos=1),
                             VfSettings(max_tx_rate=100), VfSettings(spoofchk=False),
                             VfSettings(link_state="enable"), VfSettings(trust=True)]
    assert joined(parts(change)) == change
    assert parts(VfSettings(vlan_proto="802.1ad")) == []  # a protocol without a VLAN: not sent
    assert parts(VfSettings()) == []


IGB_VF = VfState(vf=3, mac="00:00:00:00:00:00", spoofchk=True, trust=False, link_state="auto")


def test_refused_link_state_after_the_mac() -> None:
    """`vfmac set eth0 3 mac 02:00:00:00:00:07 state enable` on igb: the MAC applied, link
    state refused (EOPNOTSUPP)."""
    change = VfSettings(mac="02:00:00:00:00:07", link_state="enable")
    after = dataclasses.replace(IGB_VF, mac="02:00:00:00:00:07")
    assert refusal(change, after) == Refusal(
        VfSettings(link_state="enable"), VfSettings(mac="02:00:00:00:00:07"), VfSettings())
    assert refusal(change, after, IGB_VF) == refusal(change, after)
    assert put_back(VfSettings(mac="02:00:00:00:00:07"), IGB_VF, after) == [
        (VfSettings(mac="02:00:00:00:00:07"), VfSettings(mac="00:00:00:00:00:00"))]


def test_refused_rate_after_mac_and_vlan_leaves_spoofchk_untried() -> None:
    """`vfmac set eth0 4 mac 02:00:00:00:00:44 vlan 44 spoofchk off max_tx_rate 100` on igb
    (rates: EINVAL): MAC and VLAN applied, the rate refused, spoofchk not tried."""
    change = VfSettings(mac="02:00:00:00:00:44", vlan=44, qos=0, vlan_proto="802.1Q",
                        spoofchk=False, max_tx_rate=100)
    after = dataclasses.replace(IGB_VF, mac="02:00:00:00:00:44", vlan=44)
    told = refusal(change, after)
    assert told == Refusal(VfSettings(max_tx_rate=100),
                           VfSettings(mac="02:00:00:00:00:44", vlan=44, qos=0,
                                      vlan_proto="802.1Q"),
                           VfSettings(spoofchk=False))
    assert [step for _part, step in put_back(told.applied, IGB_VF, after)] == [
        VfSettings(mac="00:00:00:00:00:00"), VfSettings(vlan=0, qos=0, vlan_proto="802.1Q")]


def test_refused_setting_the_vf_already_had() -> None:
    """Every setting reads back as asked: the refused one was in effect already (igb refuses
    link state "auto", which it reports). Without the state before, that cannot be told; with
    it, the one setting after those that changed is the refused one."""
    change = VfSettings(mac="02:00:00:00:00:07", link_state="auto")
    after = dataclasses.replace(IGB_VF, mac="02:00:00:00:00:07")
    assert refusal(change, after) == Refusal(None, change, VfSettings())
    assert refusal(change, after, IGB_VF) == Refusal(
        VfSettings(link_state="auto"), VfSettings(mac="02:00:00:00:00:07"), VfSettings())
    three = VfSettings(mac="02:00:00:00:00:07", spoofchk=True, link_state="auto")
    assert refusal(three, after, IGB_VF).failed is None  # spoofchk or link state: cannot tell


def test_refused_setting_already_in_effect_ahead_of_a_missing_one() -> None:
    """spoofchk on was in effect and is sent again (attach sends it); the driver refuses it, so
    trust is not tried: trust is missing, but it is not the refused setting. With the state
    before, which one was refused cannot be told (not: trust)."""
    change = VfSettings(mac="02:00:00:00:00:07", spoofchk=True, trust=True)
    after = dataclasses.replace(IGB_VF, mac="02:00:00:00:00:07")
    told = refusal(change, after, IGB_VF)
    assert told == Refusal(None, VfSettings(mac="02:00:00:00:00:07", spoofchk=True),
                           VfSettings(trust=True))
    assert put_back(told.applied, IGB_VF, after) == [
        (VfSettings(mac="02:00:00:00:00:07"), VfSettings(mac="00:00:00:00:00:00"))]


def test_a_setting_the_vf_does_not_report_is_not_counted_as_applied() -> None:
    change = VfSettings(mac="02:00:00:00:00:07", trust=True)
    after = dataclasses.replace(IGB_VF, mac="02:00:00:00:00:07", trust=None)
    assert refusal(change, after).failed == VfSettings(trust=True)


@given(wants, states, st.integers(0, 5))
def test_refusal_finds_the_setting_the_kernel_stopped_at(want: VfSettings, have: VfState,
                                                         stop: int) -> None:
    """A model of do_setvfinfo: the settings of a change applied in the kernel's order up to a
    refused one. Told from the read-back, the refused one is that one, those before it applied,
    those after it not set; putting back the applied ones gives the VF what it had."""
    if want.vlan is None:
        want = dataclasses.replace(want, qos=None, vlan_proto=None)
    change = diff(want, have)
    steps = parts(change) if change is not None else []
    if len(steps) < 2:
        return
    stop %= len(steps)
    after = have
    for part in steps[:stop]:
        after = applied(after, part)
    told = refusal(change, after, have)  # type: ignore[arg-type]
    assert told == Refusal(steps[stop], joined(steps[:stop]), joined(steps[stop + 1:]))
    assert refusal(change, after) == told  # type: ignore[arg-type]
    back = after
    for _part, step in put_back(told.applied, have, after):
        back = applied(back, step)
    assert put_back(told.applied, have, back) == []
    assert restore_steps(have, back) == []


def test_over_and_mac_only() -> None:
    pf = VfSettings(vlan=5, spoofchk=True)
    vf = VfSettings(mac="02:00:00:00:00:01", spoofchk=False)
    assert vf.over(pf) == VfSettings(mac="02:00:00:00:00:01", vlan=5, spoofchk=False)
    assert VfSettings(mac="02:00:00:00:00:01").mac_only() and not vf.mac_only()
    assert not VfSettings().mac_only() and VfSettings().empty()
    assert VfChange(pf="e", vf=1, mac="02:00:00:00:00:01").only() == VfSettings(
        mac="02:00:00:00:00:01")


def test_words_of_a_change_name_only_what_it_gives() -> None:
    """``vfmac apply``'s "still not" list: the same words as ``vfmac set``'s, values as set."""
    from pyvfmac.settings import words

    assert words(VfSettings(mac="02:00:00:00:00:01")) == "mac 02:00:00:00:00:01"
    assert words(VfSettings(vlan=5, spoofchk=False, link_state="enable", max_tx_rate=100)) == (
        "vlan 5 qos 0 proto 802.1Q spoofchk off state enable max_tx_rate 100")


@given(states, wants)
def test_a_change_of_a_vf_that_exists_is_never_new(have: VfState, want: VfSettings) -> None:
    assert "(new)" not in describe_diff(have, want) and "None" not in describe_diff(have, want)
