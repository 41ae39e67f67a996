"""From ``sriov_numvfs`` written to the last of N VFs carrying its derived MAC (testbed guest).

    tests/vm/testbed run -- python bench/bench_watch.py --vfs 4096          # netdevsim
    tests/vm/testbed run -- python bench/bench_watch.py --igb               # igb, 7 VFs

Three ways, same PF, same config (mac_policy derived, no numvfs: the VFs are created by the
bench's own write, as a driver or an operator would):

- ``daemon``: ``vfmac watch`` running; the bench writes sriov_numvfs.
- ``udev``: what a udev rule running ``vfmac apply --pf`` per uevent does: every uevent
  concerning the PF (pci/net) starts one apply, one at a time, as udev would queue them.
- ``oneshot``: wait until the kernel lists all VFs, then one ``vfmac apply --pf``.

Prints one JSON line per way: seconds, and applies run (udev). Checked with the raw RTM_GETLINK
reader of tests/testbed/conftest.py (not pyvfmac).
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "testbed"))
from conftest import raw_read_vfs  # noqa: E402

from pyvfmac.watch.events import Uevent, UeventSocket  # noqa: E402

KEY = b"bench-watch-host-key-0123456789"
NSIM = Path("/sys/bus/netdevsim")


def derived(pf_id: str, vf: int) -> str:
    h = hmac.new(KEY, f"pyvfmac-derived-mac-v1\n{pf_id}\n{vf}".encode(), hashlib.sha256).digest()
    return ":".join(f"{b:02x}" for b in bytes([(h[0] & 0xFC) | 2]) + h[1:6])


def all_correct(name: str, want: dict[int, str]) -> bool:
    try:
        got = raw_read_vfs(name)
    except Exception:  # noqa: BLE001
        return False
    return len(got) >= len(want) and all(got[i].mac == m for i, m in want.items() if i in got)


def vfmac(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "pyvfmac.cli", "-q", *args], check=False,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def run_way(way: str, name: str, numvfs: Path, n: int, cfg: str, want: dict[int, str]) -> dict:
    numvfs.write_text("0")
    time.sleep(0.5)
    proc = None
    if way == "daemon":
        proc = subprocess.Popen([sys.executable, "-m", "pyvfmac.cli", "watch", cfg, "--json"],
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        while proc.stdout and json.loads(proc.stdout.readline())["event"] != "ready":
            pass
    events = UeventSocket() if way == "udev" else None
    t0 = time.monotonic()
    numvfs.write_text(str(n))
    applies = 0
    if way == "oneshot":
        while len(raw_read_vfs(name)) < n:
            time.sleep(0.01)
        vfmac("apply", cfg, "--pf", name)
        applies = 1
    while not all_correct(name, want):
        if events is not None:
            for ev in events.read():
                if isinstance(ev, Uevent):
                    vfmac("apply", cfg, "--pf", name)
                    applies += 1
        if time.monotonic() - t0 > 120:  # netdevsim sends no event for sriov_numvfs
            break
        time.sleep(0.01)
    took = time.monotonic() - t0
    if proc is not None:
        proc.send_signal(signal.SIGTERM)
        out = proc.communicate(timeout=60)[0]
        applies = sum(1 for x in out.splitlines() if '"event": "apply"' in x)
    if events is not None:
        events.close()
    return {"way": way, "vfs": n, "seconds": round(took, 3), "applies": applies,
            "correct": all_correct(name, want)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--vfs", type=int, default=4096)
    ap.add_argument("--igb", action="store_true")
    ap.add_argument("--ways", default="daemon,udev,oneshot")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp())
    (tmp / "key").write_bytes(KEY)
    created = None
    if args.igb:
        pci = sorted(p.name for p in Path("/sys/bus/pci/drivers/igb").glob("0000:*"))[0]
        name = next(Path(f"/sys/bus/pci/devices/{pci}/net").iterdir()).name
        numvfs, n, pf_id = Path(f"/sys/bus/pci/devices/{pci}/sriov_numvfs"), 7, f"pci:{pci}"
    else:
        created = 977
        (NSIM / "new_device").write_text(f"{created} 1")
        Path(f"/sys/kernel/debug/netdevsim/netdevsim{created}/max_vfs").write_text(str(args.vfs))
        dev = NSIM / "devices" / f"netdevsim{created}"
        while not any((dev / "net").glob("*")):
            time.sleep(0.02)
        name = next((dev / "net").iterdir()).name
        numvfs, n, pf_id = dev / "sriov_numvfs", args.vfs, f"dev:netdevsim:netdevsim{created}"
    cfg = tmp / "vfmac.toml"
    cfg.write_text(f'[defaults]\nhost_key = "{tmp / "key"}"\nmac_policy = "derived"\n'
                   f'[[pf]]\nname = "{name}"\n')
    want = {i: derived(pf_id, i) for i in range(n)}
    try:
        for way in args.ways.split(","):
            print(json.dumps(run_way(way, name, numvfs, n, str(cfg), want)), flush=True)
    finally:
        if created is not None:
            (NSIM / "del_device").write_text(str(created))


if __name__ == "__main__":
    os.environ.setdefault("PYVFMAC_STATE_DIR", tempfile.mkdtemp())
    main()
