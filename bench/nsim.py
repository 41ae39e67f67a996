"""The netdevsim PFs the testbed benchmarks program and read (bench_vfset.py, bench_commands.py):
``1x4096`` (one PF with 4096 VFs) and ``16x256`` (16 PFs with 256 VFs each), created once per
session by the ``topologies`` fixture (bench/conftest.py) and deleted afterwards."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from testbed.conftest import raw_read_vfs  # the independent raw reader

NSIM_BUS = Path("/sys/bus/netdevsim")
NSIM_DEBUGFS = Path("/sys/kernel/debug/netdevsim")
TOPOLOGIES = {"1x4096": (1, 4096), "16x256": (16, 256)}
FIRST_NSIM_ID = 3000  # away from tests/vm/guest-init (1000+) and the testbed fixtures (1+)


@dataclass(frozen=True, slots=True)
class Pf:
    name: str
    ifindex: int
    dev_id: int
    num_vfs: int
    slot: int  # the PF's octet in the benchmark's MACs (0: the 4096-VF PF, 1..16: the others)


def _wait(what: str, check: Callable[[], bool], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.05)


def _new_nsim(dev_id: int, num_vfs: int, slot: int) -> Pf:
    """A netdevsim device with one port and ``num_vfs`` VFs (the nsim_pf fixture's steps)."""
    (NSIM_BUS / "new_device").write_text(f"{dev_id} 1")
    dev = NSIM_BUS / "devices" / f"netdevsim{dev_id}"
    _wait(f"netdevsim{dev_id}'s netdev", lambda: any((dev / "net").glob("*")), 30)
    if num_vfs > 4:
        (NSIM_DEBUGFS / f"netdevsim{dev_id}" / "max_vfs").write_text(str(num_vfs))
    (dev / "sriov_numvfs").write_text(str(num_vfs))
    netdev = next((dev / "net").iterdir())
    return Pf(netdev.name, int((netdev / "ifindex").read_text()), dev_id, num_vfs, slot)


def _lists_all(pf: Pf) -> Callable[[], bool]:
    return lambda: len(raw_read_vfs(pf.name)) == pf.num_vfs


def make_topologies() -> Iterator[dict[str, tuple[Pf, ...]]]:
    """Create every topology, yield them by name, delete them."""
    created: list[int] = []
    out: dict[str, tuple[Pf, ...]] = {}
    dev_id = FIRST_NSIM_ID
    slot = 0
    try:
        for topo, (count, vfs) in TOPOLOGIES.items():
            pfs = []
            for _ in range(count):
                while (NSIM_BUS / "devices" / f"netdevsim{dev_id}").exists():
                    dev_id += 1
                created.append(dev_id)
                pfs.append(_new_nsim(dev_id, vfs, slot))
                dev_id += 1
                slot += 1
            out[topo] = tuple(pfs)
        for made in out.values():
            for pf in made:
                _wait(f"{pf.name}'s {pf.num_vfs} VFs", _lists_all(pf), 60)
        yield out
    finally:
        for i in created:
            (NSIM_BUS / "del_device").write_text(str(i))
