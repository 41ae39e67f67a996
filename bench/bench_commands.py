"""The commands users run, as whole processes, against the interpreter's own start (issue 15).

Runs inside the QEMU testbed with bench_vfset.py (``bench/run`` runs both in one boot, on the
same netdevsim PFs: ``1x4096`` and ``16x256``, bench/nsim.py). Every contender is a process,
started the same way (``/usr/bin/time -f %M``, which also gives its peak RSS; stdout to a file):

- ``python_pass``: ``python3 -c pass`` (the venv's interpreter), the yardstick;
- ``python_isolated``: ``python3 -I -S -c pass`` (no site, no user paths): the bare interpreter;
- ``import_cli``: ``python3 -c 'import pyvfmac.cli'``;
- ``help``: ``vfmac --help``;
- ``stdlib_apply`` / ``stdlib_list``: ``python3 -c 'import argparse, dataclasses, tomllib'`` and
  ``'import argparse, dataclasses, json'``: only the standard modules that ``vfmac apply`` and
  ``vfmac list --json`` are built on (the command line, the value classes, the config file, the
  output), none of pyvfmac. Their ratio is a floor under the command's own, whatever pyvfmac does;
- ``apply_changed``: ``vfmac apply CONFIG`` (``mac_policy = "derived"``, a new host key every
  round: every VF of the topology gets a new MAC; checked new beforehand and verified afterwards
  with the independent raw reader, untimed);
- ``apply_unchanged``: the same config again, nothing to change (the boot after the first);
- ``list_json``: ``vfmac list --json``, every link of the host listed (both topologies); checked
  untimed: every VF of every benchmark PF listed with the MAC the raw reader sees.

No timed assertions; ratios against ``python_pass`` and ``python_isolated`` and the targets go to
``$PYVFMAC_BENCH_OUT/commands.json`` and ``commands.md``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from nsim import NSIM_BUS, TOPOLOGIES, Pf

if not NSIM_BUS.is_dir() or os.geteuid() != 0:
    pytest.skip("needs netdevsim and root: run bench/run (the QEMU testbed)",
                allow_module_level=True)

from bench_vfset import (  # noqa: E402  (the MAC rounds and the independent reader)
    ROUNDS,
    Expected,
    Rounds,
    _ms,
    _next_round,
    _x,
    environment,
    raw_read_vfs,
)

from pyvfmac.apply.derive import derive_mac, pf_identity  # noqa: E402
from pyvfmac.netlink import Rtnl  # noqa: E402

HERE = Path(__file__).resolve().parent
SLOW_ROUNDS = max(1, min(ROUNDS, 5))  # apply and list: seconds each under TCG
PYTHON = sys.executable
VFMAC = str(Path(sys.prefix) / "bin" / "vfmac")
TIME = "/usr/bin/time"  # GNU time: a small C parent, so that the peak RSS is the child's own

RESULTS: dict[str, Any] = {}  # contender -> topology ("-" for none) -> figures

STARTUP = {
    "python_pass": ("`python3 -c pass`", [PYTHON, "-c", "pass"]),
    "python_isolated": ("`python3 -I -S -c pass`", [PYTHON, "-I", "-S", "-c", "pass"]),
    "import_cli": ("`python3 -c 'import pyvfmac.cli'`", [PYTHON, "-c", "import pyvfmac.cli"]),
    "help": ("`vfmac --help`", [VFMAC, "--help"]),
    "stdlib_apply": ("`python3 -c 'import argparse, dataclasses, tomllib'` (apply's floor)",
                     [PYTHON, "-c", "import argparse, dataclasses, tomllib"]),
    "stdlib_list": ("`python3 -c 'import argparse, dataclasses, json'` (list's floor)",
                    [PYTHON, "-c", "import argparse, dataclasses, json"]),
}
PER_TOPOLOGY = {
    "apply_changed": "`vfmac apply` (every VF changed)",
    "apply_unchanged": "`vfmac apply` (nothing to change)",
    "list_json": "`vfmac list --json` (every link of the host)",
}
TARGETS = {"import_cli": 1.5, "help": 1.5, "apply_changed": 2.5, "apply_unchanged": 2.0,
           "list_json": 3.0}
RSS_LIMIT_MB = 40


class Process:
    """Runs one command line the way every contender is run; keeps its output and peak RSS."""

    def __init__(self, tmp: Path, env: dict[str, str] | None = None) -> None:
        self.tmp = tmp
        self.env = env
        self.rss_kb: list[int] = []
        self.outputs: list[str] = []

    def __call__(self, argv: Sequence[str]) -> None:
        with open(self.tmp / "stdout", "w+b") as out:
            rc = subprocess.call([TIME, "-f", "%M", "-o", str(self.tmp / "rss"), *argv],
                                 stdout=out, stderr=subprocess.STDOUT, env=self.env)
            out.seek(0)
            text = out.read().decode(errors="replace")
        self.rss_kb.append(int((self.tmp / "rss").read_text().split()[-1]))
        self.outputs.append(text)
        if rc != 0:
            raise AssertionError(f"{argv[0]} exited {rc}:\n{text[-2000:]}")


def record(contender: str, topo: str, benchmark: Any, proc: Process, **extra: Any) -> None:
    stats = benchmark.stats.stats
    RESULTS.setdefault(contender, {})[topo] = {
        "median_s": stats.median, "min_s": stats.min, "max_s": stats.max,
        "rounds": stats.rounds, "peak_rss_mb": max(proc.rss_kb) / 1024, **extra}
    benchmark.extra_info.update(extra)


@pytest.fixture
def tmp() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="pyvfmac-bench-cmd-") as d:
        yield Path(d)


@pytest.fixture(autouse=True)
def _gnu_time() -> None:
    if not os.access(TIME, os.X_OK):
        pytest.skip(f"{TIME} (GNU time, Debian package 'time') runs every contender")


@pytest.mark.parametrize("contender", list(STARTUP))
def test_startup(benchmark: Any, contender: str, tmp: Path) -> None:
    proc = Process(tmp)
    argv = STARTUP[contender][1]
    benchmark.pedantic(proc, args=(argv,), rounds=ROUNDS, iterations=1)
    if contender == "help":
        assert "apply" in proc.outputs[-1], proc.outputs[-1][:500]
    record(contender, "-", benchmark, proc)


@pytest.fixture(params=list(TOPOLOGIES))
def topo(request: pytest.FixtureRequest, topologies: dict[str, tuple[Pf, ...]]
         ) -> tuple[str, tuple[Pf, ...]]:
    return request.param, topologies[request.param]


def _write_config(tmp: Path, pfs: Sequence[Pf], key: bytes) -> Path:
    (tmp / "host-key").write_bytes(key + b"\n")
    text = f'[defaults]\nhost_key = "{tmp / "host-key"}"\n'
    for pf in pfs:
        text += f'\n[[pf]]\nname = "{pf.name}"\nmac_policy = "derived"\n'
    (tmp / "vfmac.toml").write_text(text)
    return tmp / "vfmac.toml"


def _identities(pfs: Sequence[Pf]) -> dict[str, str]:
    out = {}
    with Rtnl() as nl:
        for pf in pfs:
            ident = pf_identity(None, nl.read_link(pf.name))
            assert ident is not None, f"{pf.name}: no identity to derive MACs from"
            out[pf.name] = ident
    return out


def test_apply_changed(benchmark: Any, topo: tuple[str, tuple[Pf, ...]], tmp: Path) -> None:
    name, pfs = topo
    rounds = Rounds(pfs, "vfmac apply")
    identities = _identities(pfs)
    proc = Process(tmp)

    def setup() -> tuple[tuple[list[str]], dict[str, Any]]:
        holder: list[Path] = []

        def plan() -> Expected:
            key = f"pyvfmac-bench-host-key-{_next_round()}-{os.getpid()}".encode()
            holder.append(_write_config(tmp, pfs, key))
            return {pf.name: [derive_mac(key, identities[pf.name], v)
                              for v in range(pf.num_vfs)] for pf in pfs}

        rounds.next(plan)
        return ([VFMAC, "apply", str(holder[0])],), {}

    benchmark.pedantic(proc, setup=setup, rounds=SLOW_ROUNDS, iterations=1)
    rounds.verify()
    assert rounds.done == SLOW_ROUNDS
    total = sum(pf.num_vfs for pf in pfs)
    assert f"{total} changes, 0 failed" in proc.outputs[-1], proc.outputs[-1][-2000:]
    record("apply_changed", name, benchmark, proc)


def test_apply_unchanged(benchmark: Any, topo: tuple[str, tuple[Pf, ...]], tmp: Path) -> None:
    name, pfs = topo
    key = f"pyvfmac-bench-host-key-{_next_round()}-{os.getpid()}".encode()
    config = _write_config(tmp, pfs, key)
    argv = [VFMAC, "apply", str(config)]
    Process(tmp)(argv)  # untimed: the first boot, every VF changed
    proc = Process(tmp)
    benchmark.pedantic(proc, args=(argv,), rounds=SLOW_ROUNDS, iterations=1)
    for out in proc.outputs:
        assert "0 changes: every VF is already as configured" in out, out[-2000:]
    record("apply_unchanged", name, benchmark, proc)


def test_list_json(benchmark: Any, topologies: dict[str, tuple[Pf, ...]], tmp: Path) -> None:
    """One contender for both topologies: ``vfmac list`` lists every PF of the host."""
    state = tmp / "state"  # an empty state directory: no store, nothing held
    state.mkdir()
    proc = Process(tmp, env=dict(os.environ, PYVFMAC_STATE_DIR=str(state)))
    benchmark.pedantic(proc, args=([VFMAC, "list", "--json"],), rounds=SLOW_ROUNDS, iterations=1)
    listed = {pf["pf"]: pf for pf in json.loads(proc.outputs[-1])}
    pfs = [pf for made in topologies.values() for pf in made]
    vfs = 0
    for pf in pfs:
        entry = listed[pf.name]
        raw = raw_read_vfs(pf.name)
        got = {vf["vf"]: vf["mac"] for vf in entry["vfs"]}
        assert len(got) == pf.num_vfs == entry["numvfs"], (pf.name, len(got), entry["numvfs"])
        assert got == {v: r.mac for v, r in raw.items()}, f"{pf.name}: list and raw reader differ"
        vfs += len(got)
    record("list_json", "all", benchmark, proc, vfs_listed=vfs,
           vfs_in_host=sum(len(pf["vfs"]) for pf in listed.values()))


# ------------------------------------------------------------------------------- the summary


def summarize(results: dict[str, Any], env: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    base = results.get("python_pass", {}).get("-", {})
    bare = results.get("python_isolated", {}).get("-", {})
    ratios: dict[str, Any] = {}
    targets: dict[str, bool | None] = {}
    md = [f"Commands as processes, {env['date']}: kernel {env['kernel']} in QEMU "
          f"({env['accel']}, {env['vcpus']} vCPUs), Python {env['python']}; each run under "
          f"GNU time (peak RSS), stdout to a file. Reproduce: `{env['command']}`.",
          "",
          "| command | topology | median (min, rounds) | / `python3 -c pass` (mins) | "
          "/ `python3 -I -S -c pass` | peak RSS | target |",
          "|---|---|---:|---:|---:|---:|---|"]
    rows = [(c, label, "-") for c, (label, _argv) in STARTUP.items()]
    rows += [(c, label, t) for c, label in PER_TOPOLOGY.items() if c != "list_json"
             for t in TOPOLOGIES]
    rows += [("list_json", PER_TOPOLOGY["list_json"], "all")]
    for c, label, topo in rows:
        e = results.get(c, {}).get(topo)
        if not e:
            continue
        r = _ratio(e["median_s"], base.get("median_s"))
        lo = _ratio(e["min_s"], base.get("min_s"))
        rb = _ratio(e["median_s"], bare.get("median_s"))
        key = f"{c} {topo}"
        ratios[f"{key} / python_pass"] = r
        ratios[f"{key} / python_pass (mins)"] = lo
        ratios[f"{key} / python_isolated"] = rb
        bound = TARGETS.get(c)
        target = f"<= {bound}x" if bound else "-"
        if bound:
            targets[f"{label} ({topo}) <= {bound}x python3 -c pass"] = (
                None if r is None else r <= bound)
        if c.startswith("apply"):
            target += f", RSS < {RSS_LIMIT_MB} MB"
            targets[f"{label} ({topo}) peak RSS < {RSS_LIMIT_MB} MB"] = (
                e["peak_rss_mb"] < RSS_LIMIT_MB)
        where = {"-": "-", "all": "1x4096 + 16x256"}.get(topo, topo)
        md.append(f"| {label} | {where} | {_ms(e['median_s'])} (min {_ms(e['min_s'])}, "
                  f"{e['rounds']}r) | {_x(r)} ({_x(lo)}) | {_x(rb)} | "
                  f"{e['peak_rss_mb']:.1f} MB | {target} |")
    md += ["", "Targets: " + "; ".join(
        f"{k}: {'met' if v else 'MISSED' if v is not None else 'not measured'}"
        for k, v in targets.items()) + "."]
    return {"ratios": ratios, "targets": targets}, md


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


class _Summary:
    def __init__(self, lines: list[str]) -> None:
        self.lines = lines

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if self.lines:
            terminalreporter.section("commands (bench_commands.py)")
            for line in self.lines:
                terminalreporter.write_line(line)


@pytest.fixture(scope="module", autouse=True)
def _write_summary(pytestconfig: pytest.Config) -> Iterator[None]:
    lines: list[str] = []
    pytestconfig.pluginmanager.register(_Summary(lines), "pyvfmac-commands-summary")
    yield
    if not RESULTS:
        return
    env = environment()
    extra, md = summarize(RESULTS, env)
    lines.extend(md)
    out = os.environ.get("PYVFMAC_BENCH_OUT") or os.environ.get("PYVFMAC_TESTBED_OUT")
    if out:
        Path(out).mkdir(parents=True, exist_ok=True)
        data = {"commands": RESULTS, "env": env, **extra}
        (Path(out) / "commands.json").write_text(json.dumps(data, indent=2) + "\n")
        (Path(out) / "commands.md").write_text("\n".join(md) + "\n")
