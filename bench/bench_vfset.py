"""Programming and reading the MAC of every VF: pyvfmac against ip, pyroute2 and a C floor.

Runs inside the QEMU testbed (``bench/run`` boots it; needs netdevsim, i.e. ``/sys/bus/netdevsim``,
and root). Two topologies, netdevsim devices made once per session (bench/nsim.py, shared with
bench_commands.py): ``1x4096`` (one PF with 4096 VFs) and ``16x256`` (16 PFs with 256 VFs each). Every VF gets a NEW MAC in every round (the
MACs of the previous round are read back first and must all differ), and every round is
verified by reading every VF back with an independent pure-Python RTM_GETLINK reader
(``tests/testbed/conftest.py: raw_read_vfs``), untimed.

Contenders (``set``):

- ``pyvfmac_bulk``: the Python API for this job, ``Rtnl().set_macs_many({pf: [MAC of VF 0,
  ...]})``, one call for every PF, the socket opened untimed (the contender the targets are
  judged on);
- ``pyvfmac_bulk_map``: the same with ``{pf: {vf: MAC}}`` (the form for any subset of VFs);
- ``pyvfmac``: the general API, ``Rtnl().apply([VfChange(pf, vf, mac=...), ...])``: one
  change object in and one result object out per VF (for reference);
- ``pyvfmac_core``: the C core of the bulk path alone, ``_lowlevel.vf_set_macs`` with the MAC
  text joined untimed (what the Python around it costs);
- ``ip_batch``: ``ip -batch FILE``, one ``link set dev PF vf N mac M`` line per VF (one round);
- ``pyroute2``: one ``IPRoute.link('set', index=..., vf={'vf': N, 'mac': M})`` per VF (one round);
- ``floor``: ``bench/floor.c`` through ctypes: RTM_SETLINK messages pre-encoded (untimed) with up
  to 1489 IFLA_VF_INFO each, then sent and ACKed (timed) -- what the kernel itself costs.

Contenders (``read``): ``pyvfmac`` ``Rtnl.read_link`` of every PF against the C read floor
(``bench/floor.c`` ``floor_getlink``: the same RTM_GETLINK, its reply received whole, not parsed)
and ``ip -j link show dev PF`` (the command, output read, not parsed; how many VFs ip listed is
recorded: ip truncates a VF list whose 16-bit attribute length wrapped); ``Rtnl.dump_links``
against the C dump floor (one dump of every link, received to NLMSG_DONE). The whole commands
(``vfmac apply``, ``vfmac list --json``, start-up) are in bench_commands.py.

No timed assertions: the ratios and targets are printed at the end and written, with the
environment, to ``$PYVFMAC_BENCH_OUT`` (default ``$PYVFMAC_TESTBED_OUT``, else nowhere) as
``vfset.json`` and ``vfset.md``. Rounds of the fast contenders: ``PYVFMAC_BENCH_ROUNDS`` (10).
"""

from __future__ import annotations

import ctypes
import datetime
import json
import os
import platform
import re
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from nsim import NSIM_BUS, TOPOLOGIES, Pf

from pyvfmac.netlink import Rtnl
from pyvfmac.types import VfChange

HERE = Path(__file__).resolve().parent
ROUNDS = int(os.environ.get("PYVFMAC_BENCH_ROUNDS", "10"))

if not NSIM_BUS.is_dir() or os.geteuid() != 0:
    pytest.skip("needs netdevsim and root: run bench/run (the QEMU testbed)",
                allow_module_level=True)

from testbed.conftest import RawVf, raw_read_vfs  # noqa: E402  (the independent raw reader)

# ---------------------------------------------------------------------------------- the MACs

_round = int.from_bytes(os.urandom(2), "big")


def _next_round() -> int:
    global _round
    _round = (_round + 1) & 0xFFFF
    return _round


def mac_prefix(rnd: int, pf: Pf) -> bytes:
    """02:RR:RR:PP: locally administered unicast, the round and the PF's slot."""
    return bytes((0x02, rnd >> 8, rnd & 0xFF, pf.slot))


def mac_of(prefix: bytes, vf: int) -> str:
    return (prefix + bytes((vf >> 8, vf & 0xFF))).hex(":")


Expected = dict[str, list[str]]  # PF name -> MAC of every VF, by index


def expected_macs(pfs: Sequence[Pf], rnd: int) -> Expected:
    return {pf.name: [mac_of(mac_prefix(rnd, pf), v) for v in range(pf.num_vfs)] for pf in pfs}


def plan_round(pfs: Sequence[Pf]) -> Expected:
    return expected_macs(pfs, _next_round())


def read_all(pfs: Sequence[Pf]) -> dict[str, dict[int, RawVf]]:
    return {pf.name: raw_read_vfs(pf.name) for pf in pfs}


def check_state(pfs: Sequence[Pf], want: Expected, *, what: str) -> dict[str, dict[int, RawVf]]:
    """Every VF of every PF reads back with the wanted MAC (the independent reader)."""
    state = read_all(pfs)
    for pf in pfs:
        vfs = state[pf.name]
        assert len(vfs) == pf.num_vfs, f"{what}: {pf.name} lists {len(vfs)} of {pf.num_vfs} VFs"
        wrong = [v for v in range(pf.num_vfs) if vfs[v].mac != want[pf.name][v]]
        assert not wrong, (f"{what}: {pf.name}: {len(wrong)} VFs read back wrong, e.g. vf "
                           f"{wrong[0]}: {vfs[wrong[0]].mac} != {want[pf.name][wrong[0]]}")
    return state


def check_all_new(pfs: Sequence[Pf], want: Expected, *, what: str) -> None:
    """No VF already has the MAC it is about to get (so every VF really changes)."""
    for pf in pfs:
        vfs = raw_read_vfs(pf.name)
        same = [v for v in range(pf.num_vfs) if v in vfs and vfs[v].mac == want[pf.name][v]]
        assert not same, f"{what}: {pf.name}: {len(same)} VFs already have their new MAC"


class Rounds:
    """Round bookkeeping for pedantic benchmarks: each setup verifies the previous round (read
    back untimed), then prepares new MACs that differ from every VF's current one."""

    def __init__(self, pfs: Sequence[Pf], what: str) -> None:
        self.pfs = pfs
        self.what = what
        self.pending: Expected | None = None
        self.done = 0

    def next(self, plan: Callable[[], Expected] | None = None) -> Expected:
        self.verify()
        want = plan() if plan is not None else plan_round(self.pfs)
        check_all_new(self.pfs, want, what=self.what)
        self.pending = want
        return want

    def verify(self) -> None:
        if self.pending is not None:
            check_state(self.pfs, self.pending, what=f"{self.what} round {self.done + 1}")
            self.pending = None
            self.done += 1


# ----------------------------------------------------------------------------- the summary

RESULTS: dict[str, Any] = {"set": {}, "read": {}, "notes": {}}


def record(kind: str, contender: str, topo: str, benchmark: Any, **extra: Any) -> None:
    stats = benchmark.stats.stats
    entry = {"median_s": stats.median, "min_s": stats.min, "max_s": stats.max,
             "rounds": stats.rounds, **extra}
    RESULTS[kind].setdefault(topo, {})[contender] = entry
    benchmark.extra_info.update(extra)


def _accel() -> str:
    src = Path("/sys/devices/system/clocksource/clocksource0/available_clocksource")
    detected = "kvm" if src.exists() and "kvm-clock" in src.read_text() else "tcg"
    told = os.environ.get("PYVFMAC_BENCH_ACCEL")
    return f"{detected} (run asked for {told})" if told and told != detected else detected


def _version(cmd: list[str]) -> str:
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
    except OSError as exc:
        return f"unavailable ({exc.strerror})"
    return (r.stdout or r.stderr).strip().splitlines()[0] if (r.stdout or r.stderr) else "?"


def environment() -> dict[str, Any]:
    import importlib.metadata as md

    cpu = ""
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "kernel": platform.release(),
        "accel": _accel(),
        "cpu": cpu,
        "vcpus": os.cpu_count(),
        "python": platform.python_version(),
        "iproute2": _version(["ip", "-V"]),
        "pyroute2": md.version("pyroute2"),
        "pyvfmac": md.version("pyvfmac"),
        "rounds": ROUNDS,
        "command": os.environ.get("PYVFMAC_BENCH_COMMAND", "bench/run"),
    }


def _ms(s: float | None) -> str:
    if s is None:
        return "-"
    return f"{s * 1e3:.1f} ms" if s < 10 else f"{s:.1f} s"


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def summarize(results: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """Ratios and targets; markdown lines of the results table."""
    env = results["env"]
    ratios: dict[str, Any] = {}
    md = [
        f"VF MAC benchmark, {env['date']}: kernel {env['kernel']} in QEMU ({env['accel']}, "
        f"{env['vcpus']} vCPUs, {env['cpu']}), netdevsim, Python {env['python']}, "
        f"{env['iproute2']}, pyroute2 {env['pyroute2']}. Reproduce: `{env['command']}`.",
        "",
        "| set the MAC of every VF | " + " | ".join(TOPOLOGIES) + " |",
        "|---|" + "---:|" * len(TOPOLOGIES),
    ]
    names = {"pyvfmac_bulk": "pyvfmac `set_macs_many({pf: [mac, ...]})` (Python API)",
             "pyvfmac_bulk_map": "pyvfmac `set_macs_many({pf: {vf: mac}})` (Python API)",
             "pyvfmac": "pyvfmac `Rtnl.apply` (general API, one VfChange per VF)",
             "pyvfmac_core": "pyvfmac C core alone (`_lowlevel.vf_set_macs`, text pre-joined)",
             "ip_batch": "`ip -batch`, one line per VF", "pyroute2": "pyroute2, one call per VF",
             "floor": "C floor (bench/floor.c), batched"}
    for c, label in names.items():
        cells = []
        for topo in TOPOLOGIES:
            e = results["set"].get(topo, {}).get(c)
            cells.append(f"{_ms(e['median_s'])} (min {_ms(e['min_s'])}, {e['rounds']}r)"
                         if e and e["rounds"] > 1 else f"{_ms(e['median_s'])} (1r)" if e else "-")
        md.append(f"| {label} | " + " | ".join(cells) + " |")
    md += ["", "| read every VF | " + " | ".join(TOPOLOGIES) + " |",
           "|---|" + "---:|" * len(TOPOLOGIES)]
    for c, label in (("pyvfmac", "pyvfmac `Rtnl.read_link`"),
                     ("floor", "C read floor (bench/floor.c: RTM_GETLINK, reply received)"),
                     ("ip", "`ip -j link show dev PF`")):
        cells = []
        for topo in TOPOLOGIES:
            e = results["read"].get(topo, {}).get(c)
            if not e:
                cells.append("-")
                continue
            cell = f"{_ms(e['median_s'])}"
            if c == "ip" and e.get("vfs_listed") != e.get("vfs_total"):
                cell += f" (lists {e['vfs_listed']} of {e['vfs_total']} VFs)"
            cells.append(cell)
        md.append(f"| {label} | " + " | ".join(cells) + " |")
    md += ["", "| ratio, same run: medians (mins) | " + " | ".join(TOPOLOGIES) + " | target |",
           "|---|" + "---:|" * len(TOPOLOGIES) + "---|"]
    rows = (("ip_batch", "pyvfmac_bulk", "`ip -batch` / pyvfmac", ">= 300x (1x4096)"),
            ("pyroute2", "pyvfmac_bulk", "pyroute2 / pyvfmac", ">= 300x (1x4096)"),
            ("pyvfmac_bulk", "floor", "pyvfmac / C floor", "<= 1.2x (1x4096), 1.3x (16x256)"),
            ("pyvfmac_bulk_map", "floor", "pyvfmac (mapping) / C floor", "-"),
            ("ip_batch", "pyvfmac", "`ip -batch` / pyvfmac `apply`", "-"),
            ("pyroute2", "pyvfmac", "pyroute2 / pyvfmac `apply`", "-"),
            ("pyvfmac", "floor", "pyvfmac `apply` / C floor", "-"),
            ("pyvfmac_core", "floor", "pyvfmac C core alone / C floor", "-"))
    for a, b, label, target in rows:
        cells = []
        for topo in TOPOLOGIES:
            s = results["set"].get(topo, {})
            r = _ratio(s.get(a, {}).get("median_s"), s.get(b, {}).get("median_s"))
            lo = _ratio(s.get(a, {}).get("min_s"), s.get(b, {}).get("min_s"))
            ratios[f"set {topo}: {a} / {b}"] = r
            ratios[f"set {topo}: {a} / {b} (mins)"] = lo
            cells.append(f"{_x(r)} ({_x(lo)})" if r is not None else "-")
        md.append(f"| {label} | " + " | ".join(cells) + f" | {target} |")
    cells = []
    for topo in TOPOLOGIES:
        rd = results["read"].get(topo, {})
        r = _ratio(rd.get("ip", {}).get("median_s"), rd.get("pyvfmac", {}).get("median_s"))
        lo = _ratio(rd.get("ip", {}).get("min_s"), rd.get("pyvfmac", {}).get("min_s"))
        ratios[f"read {topo}: ip / pyvfmac"] = r
        cells.append(f"{_x(r)} ({_x(lo)})" if r is not None else "-")
    md.append("| read: `ip -j link show` / pyvfmac | " + " | ".join(cells) + " | - |")
    cells = []
    for topo in TOPOLOGIES:
        rd = results["read"].get(topo, {})
        r = _ratio(rd.get("pyvfmac", {}).get("median_s"), rd.get("floor", {}).get("median_s"))
        lo = _ratio(rd.get("pyvfmac", {}).get("min_s"), rd.get("floor", {}).get("min_s"))
        ratios[f"read {topo}: pyvfmac / floor"] = r
        ratios[f"read {topo}: pyvfmac / floor (mins)"] = lo
        cells.append(f"{_x(r)} ({_x(lo)})" if r is not None else "-")
    md.append("| read: pyvfmac `read_link` / C read floor | " + " | ".join(cells) + " | <= 2x |")
    dump = results["read"].get("dump", {})
    r = _ratio(dump.get("pyvfmac", {}).get("median_s"), dump.get("floor", {}).get("median_s"))
    lo = _ratio(dump.get("pyvfmac", {}).get("min_s"), dump.get("floor", {}).get("min_s"))
    ratios["dump: pyvfmac / floor"] = r
    ratios["dump: pyvfmac / floor (mins)"] = lo
    md.append(f"| dump (every link, both topologies): pyvfmac `dump_links` "
              f"{_ms(dump.get('pyvfmac', {}).get('median_s'))} / C dump floor "
              f"{_ms(dump.get('floor', {}).get('median_s'))} | {_x(r)} ({_x(lo)}) | | <= 2x |")
    targets = {
        "ip -batch >= 300x pyvfmac (1x4096)": _ge(
            ratios.get("set 1x4096: ip_batch / pyvfmac_bulk"), 300),
        "pyroute2 >= 300x pyvfmac (1x4096)": _ge(
            ratios.get("set 1x4096: pyroute2 / pyvfmac_bulk"), 300),
        "pyvfmac <= 1.2x C floor (1x4096)": _le(
            ratios.get("set 1x4096: pyvfmac_bulk / floor"), 1.2),
        "pyvfmac <= 1.3x C floor (16x256)": _le(
            ratios.get("set 16x256: pyvfmac_bulk / floor"), 1.3),
        "read_link <= 2x C read floor (1x4096)": _le(
            ratios.get("read 1x4096: pyvfmac / floor"), 2),
        "read_link <= 2x C read floor (16x256)": _le(
            ratios.get("read 16x256: pyvfmac / floor"), 2),
        "dump_links <= 2x C dump floor": _le(ratios.get("dump: pyvfmac / floor"), 2),
    }
    md += ["", "Targets: " + "; ".join(
        f"{k}: {'met' if v else 'MISSED' if v is not None else 'not measured'}"
        for k, v in targets.items()) + "."]
    return {"ratios": ratios, "targets": targets}, md


def _x(r: float | None) -> str:
    if r is None:
        return "-"
    return f"{r:.0f}x" if r >= 10 else f"{r:.2f}x"


def _ge(x: float | None, bound: float) -> bool | None:
    return None if x is None else x >= bound


def _le(x: float | None, bound: float) -> bool | None:
    return None if x is None else x <= bound


class _Summary:
    """A plugin registered at run time: prints the table in pytest's terminal summary."""

    def __init__(self, lines: list[str]) -> None:
        self.lines = lines

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if self.lines:
            terminalreporter.section("VF MAC benchmark (bench_vfset.py)")
            for line in self.lines:
                terminalreporter.write_line(line)


@pytest.fixture(scope="module", autouse=True)
def _write_summary(pytestconfig: pytest.Config) -> Iterator[None]:
    lines: list[str] = []
    pytestconfig.pluginmanager.register(_Summary(lines), "pyvfmac-vfset-summary")
    yield
    if not RESULTS["set"] and not RESULTS["read"]:
        return
    RESULTS["env"] = environment()
    extra, md = summarize(RESULTS)
    RESULTS.update(extra)
    lines.extend(md)
    out = os.environ.get("PYVFMAC_BENCH_OUT") or os.environ.get("PYVFMAC_TESTBED_OUT")
    if out:
        Path(out).mkdir(parents=True, exist_ok=True)
        (Path(out) / "vfset.json").write_text(json.dumps(RESULTS, indent=2) + "\n")
        (Path(out) / "vfset.md").write_text("\n".join(md) + "\n")


# ---------------------------------------------------------------------------- the contenders


@pytest.fixture(params=list(TOPOLOGIES))
def topo(request: pytest.FixtureRequest, topologies: dict[str, tuple[Pf, ...]]
         ) -> tuple[str, tuple[Pf, ...]]:
    return request.param, topologies[request.param]


def test_set_pyvfmac(benchmark: Any, topo: tuple[str, tuple[Pf, ...]]) -> None:
    name, pfs = topo
    rounds = Rounds(pfs, "pyvfmac Rtnl.apply")
    failures: list[str] = []
    with Rtnl() as nl:

        def setup() -> tuple[tuple[list[VfChange]], dict[str, Any]]:
            want = rounds.next()
            return ([VfChange(pf=pf.name, vf=v, mac=want[pf.name][v])
                     for pf in pfs for v in range(pf.num_vfs)],), {}

        def run(changes: list[VfChange]) -> None:
            results = nl.apply(changes)
            failures.extend(f"{r.pf_name} vf {r.change.vf}: errno {r.errno}"
                            for r in results if not r.ok)

        benchmark.pedantic(run, setup=setup, rounds=ROUNDS, iterations=1)
    assert not failures, failures[:5]
    rounds.verify()
    assert rounds.done == ROUNDS
    record("set", "pyvfmac", name, benchmark)


def _bulk(name: str, pfs: Sequence[Pf], benchmark: Any, contender: str,
          form: Callable[[list[str]], Any]) -> None:
    """``Rtnl.set_macs_many({pf: macs})``: one call for every PF (``set_macs(pf, macs)`` for one),
    ``macs`` in the given form (built untimed)."""
    rounds = Rounds(pfs, f"pyvfmac Rtnl.set_macs ({contender})")
    failures: list[str] = []
    with Rtnl() as nl:

        def setup() -> tuple[tuple[dict[str, Any]], dict[str, Any]]:
            want = rounds.next()
            return ({pf.name: form(want[pf.name]) for pf in pfs},), {}

        def run(macs: dict[str, Any]) -> None:
            failures.extend(str(e) for e in nl.set_macs_many(macs).values())

        benchmark.pedantic(run, setup=setup, rounds=ROUNDS, iterations=1)
    assert not failures, failures[:5]
    rounds.verify()
    assert rounds.done == ROUNDS
    record("set", contender, name, benchmark)


def test_set_pyvfmac_bulk(benchmark: Any, topo: tuple[str, tuple[Pf, ...]]) -> None:
    """The bulk Python API for programming every VF: ``Rtnl.set_macs_many({pf: [MAC of VF 0,
    MAC of VF 1, ...]})``, input checked whole, only failures returned."""
    name, pfs = topo
    _bulk(name, pfs, benchmark, "pyvfmac_bulk", lambda macs: macs)


def test_set_pyvfmac_bulk_map(benchmark: Any, topo: tuple[str, tuple[Pf, ...]]) -> None:
    """The same with mappings: ``Rtnl.set_macs_many({pf: {vf: MAC}})`` (any subset of VFs)."""
    name, pfs = topo
    _bulk(name, pfs, benchmark, "pyvfmac_bulk_map", lambda macs: dict(enumerate(macs)))


def test_set_pyvfmac_core(benchmark: Any, topo: tuple[str, tuple[Pf, ...]]) -> None:
    """The C core of the bulk path alone (``_lowlevel.vf_set_macs``: parse, encode, send, ACKs),
    the MAC text joined untimed: what ``set_macs`` costs without its Python around it."""
    from pyvfmac import _lowlevel as ll

    name, pfs = topo
    rounds = Rounds(pfs, "pyvfmac core")
    failures: list[object] = []
    sock = ll.Socket(64 << 20)
    try:

        def setup() -> tuple[tuple[list[ll.MacJob], bytes], dict[str, Any]]:
            want = rounds.next()
            return ([(pf.ifindex, "", pf.num_vfs) for pf in pfs],
                    "\n".join(m for pf in pfs for m in want[pf.name]).encode()), {}

        def run(jobs: list[ll.MacJob], text: bytes) -> None:
            bad, _pos, failed, _pfs = ll.vf_set_macs(sock, jobs, None, text, max_per_msg=0,
                                                     retries=5, backoff_us=1000)
            failures.extend([bad] if bad else failed)

        benchmark.pedantic(run, setup=setup, rounds=ROUNDS, iterations=1)
    finally:
        sock.close()
    assert not failures, failures[:5]
    rounds.verify()
    assert rounds.done == ROUNDS
    record("set", "pyvfmac_core", name, benchmark)


def test_set_ip_batch(benchmark: Any, topo: tuple[str, tuple[Pf, ...]]) -> None:
    name, pfs = topo
    rounds = Rounds(pfs, "ip -batch")
    with tempfile.TemporaryDirectory(prefix="pyvfmac-bench-ip-") as tmpdir:
        batch = Path(tmpdir) / "batch"

        def setup() -> tuple[tuple[()], dict[str, Any]]:
            want = rounds.next()
            batch.write_text("".join(f"link set dev {pf.name} vf {v} mac {want[pf.name][v]}\n"
                                     for pf in pfs for v in range(pf.num_vfs)))
            return (), {}

        def run() -> None:
            r = subprocess.run(["ip", "-batch", str(batch)], capture_output=True, text=True)
            if r.returncode != 0:
                raise AssertionError(f"ip -batch exited {r.returncode}: {r.stderr[-2000:]}")

        benchmark.pedantic(run, setup=setup, rounds=1, iterations=1)
    rounds.verify()
    record("set", "ip_batch", name, benchmark)


def test_set_pyroute2(benchmark: Any, topo: tuple[str, tuple[Pf, ...]]) -> None:
    from pyroute2 import IPRoute

    name, pfs = topo
    rounds = Rounds(pfs, "pyroute2")
    with IPRoute() as ipr:

        def setup() -> tuple[tuple[Expected], dict[str, Any]]:
            return (rounds.next(),), {}

        def run(want: Expected) -> None:
            for pf in pfs:
                macs = want[pf.name]
                for v in range(pf.num_vfs):
                    ipr.link("set", index=pf.ifindex, vf={"vf": v, "mac": macs[v]})

        benchmark.pedantic(run, setup=setup, rounds=1, iterations=1)
    rounds.verify()
    record("set", "pyroute2", name, benchmark)


@pytest.fixture(scope="module")
def floor_lib() -> Iterator[ctypes.CDLL]:
    with tempfile.TemporaryDirectory(prefix="pyvfmac-bench-floor-") as tmp:
        so = Path(tmp) / "floor.so"
        r = subprocess.run(["gcc", "-O2", "-Wall", "-Wextra", "-Werror", "-shared", "-fPIC",
                            "-o", str(so), str(HERE / "floor.c")], capture_output=True, text=True)
        if r.returncode != 0:
            pytest.fail(f"cannot compile bench/floor.c: {r.stderr}")
        lib = ctypes.CDLL(str(so))
    lib.floor_new.restype = ctypes.c_void_p
    lib.floor_new.argtypes = []
    lib.floor_add.restype = ctypes.c_int
    lib.floor_add.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_uint32, ctypes.c_char_p]
    lib.floor_send.restype = ctypes.c_int
    lib.floor_send.argtypes = [ctypes.c_void_p]
    lib.floor_messages.restype = ctypes.c_size_t
    lib.floor_messages.argtypes = [ctypes.c_void_p]
    lib.floor_message.restype = ctypes.c_void_p
    lib.floor_message.argtypes = [ctypes.c_void_p, ctypes.c_size_t,
                                  ctypes.POINTER(ctypes.c_size_t)]
    lib.floor_free.restype = None
    lib.floor_free.argtypes = [ctypes.c_void_p]
    lib.floor_getlink.restype = ctypes.c_long
    lib.floor_getlink.argtypes = [ctypes.c_void_p, ctypes.c_int]
    yield lib


def test_floor_encodes_like_pyvfmac(floor_lib: ctypes.CDLL) -> None:
    """The floor sends the same bytes as pyvfmac's encoder (apart from sequence numbers): it
    does the same kernel work, only without the Python around it."""
    from pyvfmac import _lowlevel as ll

    prefix = bytes((0x02, 0xAB, 0xCD, 0x00))
    n, ifindex = 4096, 7
    h = floor_lib.floor_new()
    assert h, "floor_new: cannot open an rtnetlink socket"
    try:
        assert floor_lib.floor_add(h, ifindex, n, prefix) == 0
        ours = []
        size = ctypes.c_size_t()
        for i in range(floor_lib.floor_messages(h)):
            ptr = floor_lib.floor_message(h, i, ctypes.byref(size))
            ours.append(ctypes.string_at(ptr, size.value))
    finally:
        floor_lib.floor_free(h)
    packed = [(ifindex, v, ll.SET_MAC, prefix + bytes((v >> 8, v & 0xFF)), 0, 0, 0, 0, 0, 0,
               0, 0) for v in range(n)]
    theirs = ll.vf_encode(packed)
    assert len(ours) == len(theirs) == 3, (len(ours), len(theirs))
    for a, b in zip(ours, theirs):
        assert a[:8] + a[12:] == b[:8] + b[12:]  # nlmsg_seq (bytes 8-11) differs


def test_set_floor(benchmark: Any, topo: tuple[str, tuple[Pf, ...]], floor_lib: ctypes.CDLL
                   ) -> None:
    name, pfs = topo
    lib = floor_lib
    rounds = Rounds(pfs, "C floor")
    handles: list[int] = []
    errors: list[int] = []
    messages: list[int] = []
    try:

        def setup() -> tuple[tuple[int], dict[str, Any]]:
            taken: list[int] = []

            def plan() -> Expected:
                taken.append(_next_round())
                return expected_macs(pfs, taken[0])

            rounds.next(plan)
            rnd = taken[0]
            h = lib.floor_new()
            assert h, "floor_new: cannot open an rtnetlink socket"
            handles.append(h)
            for pf in pfs:
                err = lib.floor_add(h, pf.ifindex, pf.num_vfs, mac_prefix(rnd, pf))
                assert err == 0, f"floor_add {pf.name}: {os.strerror(-err)}"
            messages.append(lib.floor_messages(h))
            return (h,), {}

        def run(h: int) -> None:
            errors.append(lib.floor_send(h))

        benchmark.pedantic(run, setup=setup, rounds=ROUNDS, iterations=1)
    finally:
        for h in handles:
            lib.floor_free(h)
    assert all(e == 0 for e in errors), [os.strerror(-e) for e in errors if e]
    rounds.verify()
    assert rounds.done == ROUNDS
    record("set", "floor", name, benchmark, messages=messages[-1])


def test_read_pyvfmac(benchmark: Any, topo: tuple[str, tuple[Pf, ...]]) -> None:
    name, pfs = topo
    reference = read_all(pfs)
    with Rtnl() as nl:
        links = benchmark.pedantic(lambda: [nl.read_link(pf.name) for pf in pfs],
                                   rounds=ROUNDS, iterations=1)
    for pf, link in zip(pfs, links):
        assert len(link.vfs) == pf.num_vfs and link.missing_vfs == 0, (pf.name, len(link.vfs))
        got = {s.vf: s.mac for s in link.vfs}
        want = {v: r.mac for v, r in reference[pf.name].items()}
        assert got == want, f"{pf.name}: pyvfmac and the raw reader disagree"
    record("read", "pyvfmac", name, benchmark)


def test_read_ip(benchmark: Any, topo: tuple[str, tuple[Pf, ...]]) -> None:
    name, pfs = topo
    reference = read_all(pfs)

    def run() -> list[tuple[str, str]]:
        out = []
        for pf in pfs:
            r = subprocess.run(["ip", "-j", "link", "show", "dev", pf.name],
                               capture_output=True, text=True)
            if r.returncode != 0:
                raise AssertionError(f"ip -j link show dev {pf.name}: {r.stderr}")
            out.append((r.stdout, r.stderr))
        return out

    outputs = benchmark.pedantic(run, rounds=ROUNDS, iterations=1)
    listed = 0
    stderr = ""
    for pf, (text, err) in zip(pfs, outputs):
        data = json.loads(text)
        vfs = data[0].get("vfinfo_list", [])
        listed += len(vfs)
        for entry in vfs:
            assert entry["address"] == reference[pf.name][entry["vf"]].mac, (pf.name, entry)
        stderr = stderr or err.strip()
    total = sum(pf.num_vfs for pf in pfs)
    record("read", "ip", name, benchmark, vfs_listed=listed, vfs_total=total,
           ip_stderr=re.sub(r"\s+", " ", stderr)[:200])


def test_read_floor(benchmark: Any, topo: tuple[str, tuple[Pf, ...]], floor_lib: ctypes.CDLL
                    ) -> None:
    """The read floor: one RTM_GETLINK per PF (the request pyvfmac sends), each reply received
    whole, not parsed."""
    name, pfs = topo
    h = floor_lib.floor_new()
    assert h, "floor_new: cannot open an rtnetlink socket"
    try:
        sizes = benchmark.pedantic(lambda: [floor_lib.floor_getlink(h, pf.ifindex) for pf in pfs],
                                   rounds=ROUNDS, iterations=1)
    finally:
        floor_lib.floor_free(h)
    assert all(n > 0 for n in sizes), [os.strerror(-n) for n in sizes if n < 0]
    record("read", "floor", name, benchmark, reply_bytes=sum(sizes))


def test_dump_pyvfmac(benchmark: Any, topologies: dict[str, tuple[Pf, ...]]) -> None:
    """``Rtnl.dump_links``: every link of the host (both topologies' PFs and their VFs)."""
    pfs = [pf for made in topologies.values() for pf in made]
    with Rtnl() as nl:
        links = benchmark.pedantic(nl.dump_links, rounds=ROUNDS, iterations=1)
    by_name = {link.name: link for link in links}
    for pf in pfs:
        link = by_name[pf.name]
        assert len(link.vfs) == pf.num_vfs and link.missing_vfs == 0, (pf.name, len(link.vfs))
    record("read", "pyvfmac", "dump", benchmark, links=len(links),
           vfs=sum(len(link.vfs) for link in links))


def test_dump_floor(benchmark: Any, topologies: dict[str, tuple[Pf, ...]],
                    floor_lib: ctypes.CDLL) -> None:
    """The dump floor: one RTM_GETLINK dump with VF lists, received to NLMSG_DONE, not parsed."""
    h = floor_lib.floor_new()
    assert h, "floor_new: cannot open an rtnetlink socket"
    try:
        size = benchmark.pedantic(lambda: floor_lib.floor_getlink(h, 0), rounds=ROUNDS,
                                  iterations=1)
    finally:
        floor_lib.floor_free(h)
    assert size > 0, os.strerror(-size)
    record("read", "floor", "dump", benchmark, reply_bytes=size)
