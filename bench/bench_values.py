"""Building pyvfmac's values in bulk, on the micro level (runs anywhere, no kernel, no VFs).

Run: ``pytest bench/bench_values.py`` (pytest-benchmark). 4096 :class:`VfState` values (one
PF's worth, as ``list(link.vfs)`` builds them from the C core's columns), three ways:

- ``exec``: ``types.bulk_constructor``'s generated function (slots set directly, one call);
- ``setters``: the plain alternative: ``object.__new__`` and a loop over the slot setters;
- ``init``: the dataclass's own ``__init__`` (``VfState(vf=..., mac=..., ...)``).

And what ``VfStates`` saves a reader that needs one field of every VF (``vfmac apply``'s plan:
the MACs): ``column("mac")`` against building every VfState (``list(vfs)``).

Figures on the development host (2 vCPUs, busy: load 8; minimums of 15 x 3 x 5 runs, Python
3.11.7), 2026-12-07: exec 3.1 ms, setters 4.6 ms, init 7.8 ms per 4096 VfStates.
"""

from __future__ import annotations

from typing import Any

import pytest

from pyvfmac.settings import VfState
from pyvfmac.types import VfStates, _make_vf_state

N = 4096
FIELDS = VfStates.FIELDS
ROWS = [(i, f"02:00:00:00:{i >> 8:02x}:{i & 255:02x}", 0, 0, "802.1Q", True, False, "auto", 0, 0)
        for i in range(N)]
COLUMNS = [tuple(col) for col in zip(*ROWS)]
_SETTERS = tuple(getattr(VfState, name).__set__ for name in FIELDS)
_new = object.__new__


def _by_setters(*values: Any) -> VfState:
    out = _new(VfState)
    for put, value in zip(_SETTERS, values):
        put(out, value)
    return out


def _by_init(vf: int, mac: str, vlan: int, qos: int, vlan_proto: Any, spoofchk: bool | None,
             trust: bool | None, link_state: Any, min_tx_rate: int, max_tx_rate: int) -> VfState:
    return VfState(vf=vf, mac=mac, vlan=vlan, qos=qos, vlan_proto=vlan_proto, spoofchk=spoofchk,
                   trust=trust, link_state=link_state, min_tx_rate=min_tx_rate,
                   max_tx_rate=max_tx_rate)


WAYS = {"exec": _make_vf_state, "setters": _by_setters, "init": _by_init}


@pytest.mark.parametrize("way", list(WAYS))
def test_build_4096_vf_states(benchmark: Any, way: str) -> None:
    make = WAYS[way]
    built = benchmark(lambda: list(map(make, *COLUMNS)))
    assert built == [_by_init(*row) for row in ROWS]


def _vfs() -> VfStates:
    return VfStates(N, lambda name: COLUMNS[FIELDS.index(name)])


def test_vf_states_one_column(benchmark: Any) -> None:
    macs = benchmark(lambda: _vfs().column("mac"))
    assert len(macs) == N


def test_vf_states_every_state(benchmark: Any) -> None:
    states = benchmark(lambda: list(_vfs()))
    assert len(states) == N
