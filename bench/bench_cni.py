#!/usr/bin/env python3
"""ADD+DEL of vfmac-cni against Debian's host-device plugin (the reference plugin that moves a
PCI netdev into a network namespace), on the same igb VF, in the same boot: through the node's
daemon (`vfmac watch --cni-socket`: target 1.2x host-device), and run in the plugin's own
process (no daemon: target 1.3x its floor); then 7 pods at once, through the daemon and with
host-device.

Runs inside the QEMU testbed (the host's / read-only, containernetworking-plugins installed on
the host):

    tests/vm/testbed run --venv .venv -- .venv/bin/python bench/bench_cni.py [ROUNDS] [OUT.md]

Both plugins are exec'd as a runtime does (stdin config, CNI_* environment), without IPAM, on
the same VF and pod namespace, rounds alternating. Besides the totals (and ADD / DEL of each),
where vfmac-cni's time goes: interpreter start (``python -c pass``, as the plugin's script starts
it), the imports of a real ADD and a real DEL (``-X importtime``, summed over the top-level
imports, less those of ``python -c pass``, in extra rounds), and ADD / DEL in-process (netlink,
sysfs and the state store), with the time of each step and of each kernel call on the netdev
(``Netns.*``) per ADD or DEL. And a floor: two processes that only import the standard modules
the plugin is built on (dataclasses, json, sqlite3), added to host-device's own ADD+DEL (the same
kernel work), against host-device.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

PLUGIN = Path(sys.prefix) / "bin" / "vfmac-cni"  # the C forwarder (csrc/vfm_cni_forward.c)
RUN_HERE = "from pyvfmac.cni.main import main; main()"  # what it execs without a daemon
HOST_DEVICE = Path("/usr/lib/cni/host-device")
MAC = "02:5c:00:00:0b:01"
STDLIB_IMPORTS = "import dataclasses, json, sqlite3"


def igb_vf() -> tuple[str, str]:
    """(PF netdev, VF PCI address) of the first igb PF, VFs created if needed."""
    for dev in sorted(Path("/sys/bus/pci/devices").iterdir()):
        drv = dev / "driver"
        if drv.exists() and drv.resolve().name == "igb" and (dev / "sriov_numvfs").exists():
            if int((dev / "sriov_numvfs").read_text()) == 0:
                (dev / "sriov_numvfs").write_text("7")
            pci = os.path.basename(os.readlink(dev / "virtfn0"))
            for _ in range(600):
                if (Path("/sys/bus/pci/devices") / pci / "net").exists():
                    break
                time.sleep(0.1)
            return next((dev / "net").iterdir()).name, pci
    raise SystemExit("no igb PF: run inside the testbed (tests/vm/testbed run ...)")


def call(exe: Path, command: str, conf: dict[str, object], netns: str,
         env: dict[str, str], python_opts: list[str] | None = None) -> tuple[float, str]:
    """(wall time, stderr) of one plugin process; ``python_opts``: run the script with them."""
    full = {**os.environ, **env, "CNI_COMMAND": command, "CNI_CONTAINERID": "bench",
            "CNI_NETNS": netns, "CNI_IFNAME": "net1", "CNI_PATH": "/usr/lib/cni"}
    argv = [str(exe)] if python_opts is None else [sys.executable, *python_opts, "-c", RUN_HERE]
    t0 = time.perf_counter()
    done = subprocess.run(argv, input=json.dumps(conf).encode(), env=full,
                          capture_output=True)
    took = time.perf_counter() - t0
    if done.returncode != 0:
        raise SystemExit(f"{exe.name} {command}: {done.stdout!r} {done.stderr!r}")
    return took, done.stderr.decode()


def import_seconds(importtime: str) -> float:
    """The time of all imports from ``-X importtime`` output: the top-level imports' cumulative
    times (the imports inside them are in those)."""
    total = 0
    for line in importtime.splitlines():
        if line.startswith("import time:") and line.count("|") == 2:
            _, cumulative, name = line.split("|")
            if cumulative.strip().isdigit() and not name.startswith("  "):
                total += int(cumulative)
    return total / 1e6


def start_daemon(state: str) -> tuple[subprocess.Popen[bytes], str]:
    """`vfmac watch --cni-socket` with a config of no PFs: the CNI daemon alone."""
    conf = Path(state) / "empty.toml"
    conf.write_text("[defaults]\n")
    sock = str(Path(state) / "cni.sock")
    proc = subprocess.Popen([sys.executable, "-m", "pyvfmac.cli", "--state-dir", state, "watch",
                             str(conf), "--cni-socket", sock], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, cwd="/")  # not the checkout's pyvfmac/
    for _ in range(1200):
        if os.path.exists(sock):
            return proc, sock
        time.sleep(0.05)
    raise SystemExit("the daemon did not open its socket")


def seven_at_once(pf: str, exe: Path, env: dict[str, str], kind: str,
                  rounds: int) -> float:
    """Median seconds for 7 pods' ADDs at once, then their DELs at once (one VF each)."""
    dev = Path(f"/sys/class/net/{pf}/device")
    pcis = [os.path.basename(os.readlink(dev / f"virtfn{i}")) for i in range(7)]
    pods = [f"bench7-{os.getpid()}-{i}" for i in range(7)]
    for pod in pods:
        subprocess.run(["ip", "netns", "add", pod], check=True)
    times = []
    try:
        for r in range(rounds):
            confs = [{"cniVersion": "1.0.0", "name": "bench7", "type": kind,
                      **({"deviceID": pci, "mac": f"02:5c:00:00:0c:{i:02x}"}
                         if kind == "vfmac-cni" else {"pciBusID": pci})}
                     for i, pci in enumerate(pcis)]
            t0 = time.perf_counter()
            for command in ("ADD", "DEL"):
                procs = [subprocess.Popen([str(exe)], stdin=subprocess.PIPE,
                                          stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                          env={**os.environ, **env, "CNI_COMMAND": command,
                                               "CNI_CONTAINERID": f"b7-{i}",
                                               "CNI_NETNS": f"/run/netns/{pods[i]}",
                                               "CNI_IFNAME": "net1",
                                               "CNI_PATH": "/usr/lib/cni"})
                         for i in range(7)]
                for i, p in enumerate(procs):
                    out, err = p.communicate(json.dumps(confs[i]).encode(), timeout=600)
                    if p.returncode != 0:
                        raise SystemExit(f"{kind} {command} {i}: {out!r} {err!r}")
            times.append(time.perf_counter() - t0)
    finally:
        for pod in pods:
            subprocess.run(["ip", "netns", "del", pod], check=False)
    return statistics.median(times)


def timed(cmd: list[str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True)
    return time.perf_counter() - t0


def in_process(pci: str, netns: str, state: str, rounds: int) -> dict[str, float]:
    """ADD and DEL inside this interpreter (no start, imports done): netlink, sysfs, store."""
    from pyvfmac import restore
    from pyvfmac.cni import plugin
    from pyvfmac.cni.config import parse, read_env
    from pyvfmac.host import open_host
    from pyvfmac.netns import Netns

    steps: dict[str, list[float]] = {}
    command = "ADD"

    def timing(name: str, fn: Any) -> Any:
        def wrapped(*a: Any, **k: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return fn(*a, **k)
            finally:
                steps.setdefault(f"{command} {name}", []).append(time.perf_counter() - t0)
        return wrapped

    for name in ("_find_vf", "_claim", "_still_as_read", "_set_admin", "_netdev_with_mac",
                 "_into_pod", "_release_untouched"):
        setattr(plugin, name, timing(name, getattr(plugin, name)))
    for name in ("_restore_driver", "_bring_home", "_disassociate", "_restore_admin",
                 "_restore_netdev", "_netdev_state"):  # the one restore path (DEL's)
        setattr(restore, name, timing(name, getattr(restore, name)))
    for name in ("link", "find_pci", "down", "up", "move", "rename", "set_mac", "set_mtu"):
        setattr(Netns, name, timing(f"Netns.{name}", getattr(Netns, name)))
    conf_doc = {"cniVersion": "1.0.0", "name": "bench", "type": "vfmac-cni", "deviceID": pci,
                "mac": MAC}
    env = {"CNI_CONTAINERID": "bench-in", "CNI_NETNS": netns, "CNI_IFNAME": "net1"}
    adds, dels, opens = [], [], []
    for _ in range(rounds):
        for command, out in (("ADD", adds), ("DEL", dels)):
            e = read_env({**env, "CNI_COMMAND": command})
            conf = parse(json.dumps(conf_doc).encode(), e)
            t0 = time.perf_counter()
            host = open_host(state_dir=state)
            t1 = time.perf_counter()
            try:
                (plugin.add if command == "ADD" else plugin.delete)(e, conf, host)
            finally:
                host.close()
            out.append(time.perf_counter() - t0)
            opens.append(t1 - t0)
    out = {"add": statistics.median(adds), "del": statistics.median(dels),
           "open": statistics.median(opens)}
    for name, values in steps.items():
        out[name] = sum(values) / rounds  # per ADD or DEL
    return out


def main() -> None:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    out_md = Path(sys.argv[2]) if len(sys.argv) > 2 else None
    pf, pci = igb_vf()
    state = tempfile.mkdtemp(prefix="bench-cni-state-")
    pod = f"bench-{os.getpid()}"
    subprocess.run(["ip", "netns", "add", pod], check=True)
    netns = f"/run/netns/{pod}"
    env = {"PYVFMAC_STATE_DIR": state, "PYVFMAC_CNI_SOCKET": "/nonexistent"}  # no daemon
    ours = {"cniVersion": "1.0.0", "name": "bench", "type": "vfmac-cni", "deviceID": pci,
            "mac": MAC}
    ref = {"cniVersion": "1.0.0", "name": "bench", "type": "host-device", "pciBusID": pci}
    daemon, sock = start_daemon(state)
    there = {**env, "PYVFMAC_CNI_SOCKET": sock}
    kinds = (("vfmac-cni", PLUGIN, ours, env), ("daemon", PLUGIN, ours, there),
             ("host-device", HOST_DEVICE, ref, env))
    got: dict[str, list[float]] = {f"{name} {command}": [] for name, *_ in kinds
                                   for command in ("ADD", "DEL", "ADD+DEL")}
    imports: dict[str, list[float]] = {"ADD": [], "DEL": []}
    try:
        for _ in range(rounds):
            for name, exe, conf, how in kinds:
                add = call(exe, "ADD", conf, netns, how)[0]
                delete = call(exe, "DEL", conf, netns, how)[0]
                got[f"{name} ADD"].append(add)
                got[f"{name} DEL"].append(delete)
                got[f"{name} ADD+DEL"].append(add + delete)
        for _ in range(rounds):
            for command in ("ADD", "DEL"):
                err = call(PLUGIN, command, ours, netns, env, ["-X", "importtime"])[1]
                imports[command].append(import_seconds(err))
        py = str(Path(sys.prefix) / "bin" / "python")
        start = statistics.median(timed([py, "-c", "pass"]) for _ in range(rounds))
        # the standard modules the plugin is built on (its value classes, the CNI JSON, the
        # state store), imported by a process that does nothing else: a floor under each call
        stdlib = statistics.median(timed([py, "-c", STDLIB_IMPORTS]) for _ in range(rounds))
        # -X importtime also lists the interpreter's own start-up imports (site, encodings...):
        # those are in the start, not in the plugin's imports
        own = statistics.median(import_seconds(subprocess.run(
            [py, "-X", "importtime", "-c", "pass"], capture_output=True, text=True).stderr)
            for _ in range(rounds))
        work = in_process(pci, netns, state, rounds)
        seven = {"daemon": seven_at_once(pf, PLUGIN, there, "vfmac-cni", max(1, rounds // 2)),
                 "host-device": seven_at_once(pf, HOST_DEVICE, env, "host-device",
                                              max(1, rounds // 2))}
    finally:
        subprocess.run(["ip", "netns", "del", pod], check=False)
        daemon.terminate()
        daemon.wait(60)
    med = {key: statistics.median(values) for key, values in got.items()}
    ours_t, ref_t = med["vfmac-cni ADD+DEL"], med["host-device ADD+DEL"]
    imp = {command: statistics.median(values) - own for command, values in imports.items()}
    accel = "kvm" if "kvm" in Path(
        "/sys/devices/system/clocksource/clocksource0/current_clocksource").read_text() else "tcg"
    lines = [
        f"ADD+DEL of one igb VF ({pci} of {pf}), medians of {rounds} rounds, {accel}:",
        "",
        "| | ms |",
        "|---|---:|",
        f"| host-device ADD+DEL (2 processes) | {ref_t * 1e3:.0f} |",
        f"| host-device ADD / DEL | {med['host-device ADD'] * 1e3:.0f} / "
        f"{med['host-device DEL'] * 1e3:.0f} |",
        f"| vfmac-cni ADD+DEL (2 processes) | {ours_t * 1e3:.0f} |",
        f"| vfmac-cni ADD / DEL | {med['vfmac-cni ADD'] * 1e3:.0f} / "
        f"{med['vfmac-cni DEL'] * 1e3:.0f} |",
        f"| ratio vfmac-cni / host-device | {ours_t / ref_t:.2f}x |",
        f"| through the daemon: ADD+DEL (2 forwarder processes) | "
        f"{med['daemon ADD+DEL'] * 1e3:.0f} |",
        f"| through the daemon: ADD / DEL | {med['daemon ADD'] * 1e3:.0f} / "
        f"{med['daemon DEL'] * 1e3:.0f} |",
        f"| **ratio through the daemon / host-device** | "
        f"**{med['daemon ADD+DEL'] / ref_t:.2f}x** (target <= 1.2x) |",
        f"| floor: 2 x `python3 -c '{STDLIB_IMPORTS}'` | {2 * stdlib * 1e3:.0f} |",
        f"| floor + host-device ADD+DEL (the same kernel work), / host-device | "
        f"{(2 * stdlib + ref_t) / ref_t:.2f}x |",
        f"| **in its own process (no daemon) / its floor** | "
        f"**{ours_t / (2 * stdlib + ref_t):.2f}x** (target <= 1.3x) |",
        f"| 7 pods at once, ADDs then DELs: through the daemon / host-device | "
        f"{seven['daemon'] * 1e3:.0f} / {seven['host-device'] * 1e3:.0f} ms = "
        f"{seven['daemon'] / seven['host-device']:.2f}x |",
        f"| of which: 2 interpreter starts (python -c pass) | {2 * start * 1e3:.0f} |",
        f"| of which: imports of ADD + DEL (-X importtime) | "
        f"{(imp['ADD'] + imp['DEL']) * 1e3:.0f} ({imp['ADD'] * 1e3:.0f} + "
        f"{imp['DEL'] * 1e3:.0f}) |",
        f"| of which: ADD in-process (store, sysfs, netlink, MAC) | {work['add'] * 1e3:.0f} |",
        f"| of which: DEL in-process (restore, verify, store) | {work['del'] * 1e3:.0f} |",
        f"| of which: opening store + rtnetlink, per call | {work['open'] * 1e3:.0f} |",
    ]
    lines += [f"| in-process {name} (per {name.split()[0]}) | {work[name] * 1e3:.1f} |"
              for name in sorted(work, key=lambda n: (n.split()[0], "." in n, n))
              if name.startswith(("ADD ", "DEL "))]
    text = "\n".join(lines) + "\n"
    print(text)
    if out_md is not None:
        out_md.write_text(text)


if __name__ == "__main__":
    main()
