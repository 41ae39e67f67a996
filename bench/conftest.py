"""Benchmark fixtures: fake sysfs trees on tmpfs, and a summary of the topology scan ratios;
the netdevsim PFs of the testbed benchmarks (``topologies``, made once per session)."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

import fakesysfs  # noqa: E402

# (PFs, VFs per PF): 4096 and 8192 VFs.
SIZES = {4096: (64, 64), 8192: (128, 64)}

# (min, median) seconds of each benchmark, by (implementation, VF count); filled by
# bench_topology.py. Both are printed: on a shared, busy machine the minimum is the steadier one.
TOPOLOGY_TIMES: dict[tuple[str, int], tuple[float, float]] = {}


@pytest.fixture(scope="session")
def topology_times() -> dict[tuple[str, int], tuple[float, float]]:
    return TOPOLOGY_TIMES


@pytest.fixture(scope="session")
def sysfs_trees() -> Iterator[dict[int, str]]:
    """One fake /sys per size, on /dev/shm (tmpfs) when it exists."""
    base = "/dev/shm" if os.path.isdir("/dev/shm") else None
    top = tempfile.mkdtemp(prefix="pyvfmac-bench-", dir=base)
    trees = {}
    try:
        for vfs, (pfs, per_pf) in SIZES.items():
            root = os.path.join(top, str(vfs))
            fakesysfs.build_scale(root, pfs, per_pf)
            trees[vfs] = root
        yield trees
    finally:
        shutil.rmtree(top, ignore_errors=True)


@pytest.fixture(scope="session")
def topologies() -> Iterator[dict[str, tuple[Any, ...]]]:
    """The netdevsim topologies of bench/nsim.py (``1x4096``, ``16x256``), shared by
    bench_vfset.py and bench_commands.py in one session (testbed only)."""
    from nsim import make_topologies

    yield from make_topologies()


IMPLS = ("c_raw", "c", "c_built", "pathlib")


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    times = TOPOLOGY_TIMES
    if not times:
        return
    w = terminalreporter
    w.section("topology scan: min / median")
    for vfs in sorted(SIZES):
        parts = [f"{impl} {lo * 1e3:.1f} / {mid * 1e3:.1f} ms"
                 for impl in IMPLS if (impl, vfs) in times for lo, mid in [times[(impl, vfs)]]]
        w.write_line(f"{vfs} VFs: " + ", ".join(parts))
        for impl, label in (("c", "scan()"), ("c_built", "scan() + first look")):
            if (impl, vfs) in times and ("pathlib", vfs) in times:
                c, p = times[(impl, vfs)], times[("pathlib", vfs)]
                w.write_line(f"  pathlib / {label}: {p[0] / c[0]:.1f}x (min), "
                             f"{p[1] / c[1]:.1f}x (median)")
    for impl in IMPLS:
        if (impl, 4096) in times and (impl, 8192) in times:
            a, b = times[(impl, 4096)], times[(impl, 8192)]
            w.write_line(f"{impl}: 8192 / 4096 VFs = {b[0] / a[0]:.2f}x (min), "
                         f"{b[1] / a[1]:.2f}x (median)")
