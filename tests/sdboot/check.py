#!/usr/bin/python3
"""The check script of tests/test_systemd_boot.py: runs in the testbed guest under real systemd
(pyvfmac-testbed-check.service, after multi-user.target and the pyvfmac units), with the host's
/usr/bin/python3 and the standard library only. It judges nothing: it collects what systemd, the
journal, sysfs and `ip -j link show` say into results.json, and the test on the host compares
(the expected MACs are computed there, from the formula, not by pyvfmac's code).

PYVFMAC_SDBOOT_MODE: "daemon" (boot 1: pyvfmac-watch enabled, the second PF bound late, then
driver reload, reload, stop, systemd-analyze verify) or "udev" (boot 2: daemon disabled; the
udev rule linked after boot, then driver reload).
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

OUT = Path(os.environ.get("PYVFMAC_TESTBED_OUT", "/pyvfmac-testbed-out"))
MODE = os.environ.get("PYVFMAC_SDBOOT_MODE", "daemon")
PFS = ("0000:01:00.0", "0000:02:00.0")
NUMVFS = 7
ZERO = "00:00:00:00:00:00"
UNIT_PROPS = ("Id,ActiveState,SubState,Result,ExecMainStatus,ExecMainCode,NRestarts,UnitFileState,"
              "Before,After,InactiveExitTimestampMonotonic,ActiveEnterTimestampMonotonic,"
              "ExecMainStartTimestampMonotonic,ExecMainExitTimestampMonotonic,"
              "ExecMainPID,MainPID,Type")
UNITS = ("pyvfmac.service", "pyvfmac-watch.service", "network-pre.target", "libvirtd.service",
         "systemd-udev-trigger.service", "pyvfmac-testbed-late-pf.service", "multi-user.target",
         "systemd-udevd.service")
MANAGER_PROPS = ("KernelTimestampMonotonic,UserspaceTimestampMonotonic,Version,"
                 "FinishTimestampMonotonic")
RESULTS: dict[str, object] = {"mode": MODE}


def say(msg: str) -> None:
    print(f"sdboot check: {msg}", flush=True)


def sh(*cmd: str, timeout: float = 120) -> tuple[int, str]:
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    return r.returncode, (r.stdout + r.stderr).strip()


def show(unit: str | None = None, props: str = UNIT_PROPS) -> dict[str, str]:
    cmd = ["systemctl", "show", "-p", props] + ([unit] if unit else [])
    _, out = sh(*cmd)
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def uptime_us() -> int:
    return int(float(Path("/proc/uptime").read_text().split()[0]) * 1e6)


def journal(*args: str) -> list[dict[str, object]]:
    _, out = sh("journalctl", "-b", "--no-pager", "-o", "json", *args)
    lines = []
    for raw in out.splitlines():
        try:
            e = json.loads(raw)
        except ValueError:
            continue
        msg = e.get("MESSAGE")
        if isinstance(msg, list):  # non-UTF-8 messages come as byte lists
            msg = bytes(msg).decode("utf-8", "replace")
        lines.append({"mono": int(e.get("__MONOTONIC_TIMESTAMP", 0)), "msg": msg,
                      "unit": e.get("_SYSTEMD_UNIT") or e.get("UNIT"),
                      "job_type": e.get("JOB_TYPE"), "job_result": e.get("JOB_RESULT")})
    return lines


def pf_state(pci: str) -> dict[str, object]:
    dev = Path("/sys/bus/pci/devices") / pci
    st: dict[str, object] = {"driver": None, "netdev": None, "numvfs": None, "macs": []}
    if (dev / "driver").exists():
        st["driver"] = (dev / "driver").resolve().name
    try:
        st["numvfs"] = int((dev / "sriov_numvfs").read_text())
    except (OSError, ValueError):
        pass
    nets = sorted(p.name for p in (dev / "net").iterdir()) if (dev / "net").is_dir() else []
    if nets:
        st["netdev"] = nets[0]
        rc, out = sh("ip", "-j", "link", "show", "dev", nets[0])
        if rc == 0:
            link = json.loads(out)[0]
            vfs = sorted(link.get("vfinfo_list", []), key=lambda v: v.get("vf", 0))
            st["macs"] = [v.get("address") for v in vfs]
            st["operstate"] = link.get("operstate")
    return st


def snapshot() -> dict[str, dict[str, object]]:
    return {pci: pf_state(pci) for pci in PFS}


def complete(snap: dict[str, dict[str, object]]) -> bool:
    return all(s["numvfs"] == NUMVFS and len(s["macs"]) == NUMVFS  # type: ignore[arg-type]
               and ZERO not in s["macs"] for s in snap.values())  # type: ignore[operator]


def wait_macs(limit: float) -> dict[str, object]:
    """Poll until both PFs have 7 VFs, none with the all-zero MAC igb gives a new VF."""
    t0 = time.monotonic()
    while True:
        snap = snapshot()
        if complete(snap) or time.monotonic() - t0 > limit:
            return {"complete": complete(snap), "seconds": round(time.monotonic() - t0, 2),
                    "pfs": snap}
        time.sleep(0.2)


def driver_reload() -> dict[str, object]:
    """rmmod igb; modprobe igb: the PFs come back with 0 VFs; wait for them to be re-created."""
    t0 = time.monotonic()
    rm = sh("rmmod", "igb")
    gone = snapshot()
    mp = sh("modprobe", "igb")
    res = wait_macs(120)
    res.update(rmmod=rm, modprobe=mp, gone=gone, total_seconds=round(time.monotonic() - t0, 2))
    return res


def save() -> None:
    (OUT / "results.json").write_text(json.dumps(RESULTS, indent=1, sort_keys=True))


def main() -> None:
    RESULTS["check_start_us"] = uptime_us()
    RESULTS["manager"] = show(None, MANAGER_PROPS)
    RESULTS["units"] = {u: show(u) for u in UNITS}
    RESULTS["at_check"] = snapshot()
    save()
    say("boot state collected; waiting for every configured VF")
    RESULTS["settled"] = wait_macs(120)
    RESULTS["units_settled"] = {u: show(u) for u in UNITS}
    RESULTS["pyvfmac_journal"] = journal("-u", "pyvfmac.service")
    save()
    if MODE == "daemon":
        RESULTS["watch_before_reload"] = show("pyvfmac-watch.service")
        say("driver reload under the daemon")
        RESULTS["driver_reload"] = driver_reload()
        save()
        mark = uptime_us()
        RESULTS["reload"] = sh("systemctl", "reload", "pyvfmac-watch.service")
        time.sleep(3)
        RESULTS["reload_journal"] = [e for e in journal("-u", "pyvfmac-watch.service")
                                     if int(e["mono"]) >= mark]  # type: ignore[call-overload]
        RESULTS["watch_after_reload"] = show("pyvfmac-watch.service")
        RESULTS["stop"] = sh("systemctl", "stop", "pyvfmac-watch.service")
        RESULTS["watch_after_stop"] = show("pyvfmac-watch.service")
        RESULTS["watch_journal"] = journal("-u", "pyvfmac-watch.service")
        RESULTS["verify"] = sh("systemd-analyze", "verify", "/lib/systemd/system/pyvfmac.service",
                               "/lib/systemd/system/pyvfmac-watch.service", timeout=300)
    else:
        RESULTS["watch_enabled"] = sh("systemctl", "is-enabled", "pyvfmac-watch.service")
        RESULTS["watch_active"] = sh("systemctl", "is-active", "pyvfmac-watch.service")
        # The rule goes in now, as docs/install-debian.md says (ln -s, udevadm control -R): at
        # boot it would have programmed the PFs at coldplug, before pyvfmac.service, and this
        # second boot is also the proof that pyvfmac.service alone gives the same MACs.
        os.symlink("/usr/share/pyvfmac/udev/90-pyvfmac.rules", "/etc/udev/rules.d/90-pyvfmac.rules")
        RESULTS["rule"] = os.path.realpath("/etc/udev/rules.d/90-pyvfmac.rules")
        RESULTS["udev_reload"] = sh("udevadm", "control", "-R")
        say("driver reload with the udev rule")
        RESULTS["driver_reload"] = driver_reload()
        RESULTS["udevd_journal"] = [e for e in journal("-u", "systemd-udevd.service")
                                    if "vfmac" in str(e["msg"]) or "pyvfmac" in str(e["msg"])]
    RESULTS["check_end_us"] = uptime_us()
    save()
    say("done")


if __name__ == "__main__":
    main()
