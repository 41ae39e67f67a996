"""Testbed tests: they run for real inside the QEMU SR-IOV guest (``tests/vm/testbed``).

Every test under ``tests/testbed/`` is marked ``testbed`` (automatically; ``-m "not testbed"``
leaves them out).

On the host
    When any testbed test is selected, the guest boots ONCE per pytest session, runs the selected
    testbed tests there with pytest (``python -P -m pytest -p no:cacheprovider``, the repo read-only),
    and each host item (a :class:`GuestItem` proxy that replaced the collected test; the host runs
    no test function and no fixture) reports the guest's outcome: passed, failed with the guest's
    traceback, skipped with the guest's reason. A test the guest never reported fails; a guest that
    does not boot fails every testbed item with the reason. The guest uses the venv running the host
    pytest (``sys.prefix``), which must be a regular (non-editable) install. The whole guest console
    is kept in ``.testbed/guest-console.log``. Env: ``PYVFMAC_TESTBED_TIMEOUT`` (seconds, whole guest
    run, default 1800), ``PYVFMAC_TESTBED_ACCEL`` (auto/kvm/tcg).

In the guest (``PYVFMAC_GUEST=1``, set by ``tests/vm/guest-init``) the fixtures below are real:

``nsim_pf(num_vfs, max_vfs=None) -> NsimPf``
    Factory, function-scoped: a new netdevsim device (fresh device id) with one port and
    ``num_vfs`` VFs (debugfs ``max_vfs`` raised to ``max_vfs`` or ``num_vfs`` when above 4).
    ``NsimPf.name`` is the PF netdev, ``.ifindex``, ``.dev_id``, ``.num_vfs``. Deleted at teardown.
``igb_pfs -> tuple[str, ...]``
    Session: the two emulated igb (82576) PF netdev names sorted by PCI address, each with its
    7 VFs created and bound to igbvf (bounded wait).
``igb_clean``
    Function: after the test, every igb VF is rebound to igbvf if it is on another driver and its
    admin state reset: mac 00:00:00:00:00:00 (igb's initial value; igb takes the all-zero MAC as
    "remove the administratively set MAC"), vlan 0, spoofchk on, trust off. (igb has no VF link
    state control -- EOPNOTSUPP, it stays "auto" -- and refuses TX rates, EINVAL, while its link
    is not at 1 Gb/s, which in the guest it never is: neither can change, neither is reset.)
``ip_link(name) -> dict``
    ``ip -j -d link show dev NAME`` parsed: an independent reader (iproute2). Beware: with many
    VFs the kernel's VF list outgrows a netlink attribute's 16-bit length and ip prints a truncated
    ``vfinfo_list`` (a few hundred VFs at most) -- use ``raw_vfs`` for big lists.
``raw_vfs(name) -> dict[int, RawVf]``
    A second independent reader: a small pure-Python RTM_GETLINK (no pyvfmac, no pyroute2) that
    walks the whole IFLA_VFINFO_LIST even when its length field has wrapped. ``RawVf`` has
    ``mac``, ``vlan``, ``qos``, ``vlan_proto`` (0x8100/0x88a8), ``spoofchk``, ``trust``,
    ``link_state`` (0 auto, 1 enable, 2 disable), ``min_tx_rate``, ``max_tx_rate`` (None: not sent).
"""

from __future__ import annotations

import importlib.metadata
import itertools
import json
import os
import shlex
import socket
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
TESTBED = REPO / "tests" / "vm" / "testbed"
IN_GUEST = os.environ.get("PYVFMAC_GUEST") == "1"
REPORT_ENV = "PYVFMAC_GUEST_REPORT"
CONSOLE_LOG = REPO / ".testbed" / "guest-console.log"
# Markers the guest evaluates; the host proxies must not evaluate them again.
GUEST_ONLY_MARKS = {"skip", "skipif", "xfail", "usefixtures", "parametrize", "filterwarnings"}


def _in_testbed_dir(item: pytest.Item) -> bool:
    return HERE in Path(item.path).resolve().parents


@pytest.hookimpl(wrapper=True)
def pytest_collection_modifyitems(
    session: pytest.Session, config: pytest.Config, items: list[pytest.Item]
) -> Generator[None, None, None]:
    for item in items:
        if _in_testbed_dir(item):
            item.add_marker(pytest.mark.testbed)
    result = yield  # -m / -k deselection happens in here
    if not IN_GUEST:
        selected = [i for i in items if _in_testbed_dir(i)]
        if selected:
            runner = GuestRun(config, [i.nodeid for i in selected])
            items[:] = [
                GuestItem.from_parent(i.parent, name=i.name, runner=runner, original=i)
                if _in_testbed_dir(i) else i
                for i in items
            ]
    return result


# ------------------------------------------------------------------------------ host: the proxy

@dataclass
class GuestOutcome:
    kind: str  # passed, failed, skipped, xfailed
    text: str = ""


class GuestTestFailure(Exception):
    """A testbed test failed in the guest (or never ran there)."""


class GuestRun:
    """Boots the guest once, on the first proxy that needs a result, and keeps the outcomes."""

    def __init__(self, config: pytest.Config, nodeids: list[str]) -> None:
        self.config = config
        self.nodeids = nodeids
        self.outcomes: dict[str, GuestOutcome] | None = None
        self.problem = ""  # why a test may have no outcome (boot failure, guest exit code, ...)

    def outcome(self, nodeid: str) -> GuestOutcome:
        if self.outcomes is None:
            self.outcomes = {}
            self._run()
        found = self.outcomes.get(nodeid)
        if found is not None:
            return found
        return GuestOutcome("failed", "the testbed guest never reported a result for this test: "
                            + (self.problem or "(no reason known)"))

    def _run(self) -> None:
        bad = editable_install_problem()
        if bad:
            self.problem = bad
            return
        out = Path(tempfile.mkdtemp(prefix="pyvfmac-testbed-out-"))
        report = out / "report.jsonl"
        python = Path(sys.prefix) / "bin" / "python"
        color = "yes" if self.config.get_terminal_writer().hasmarkup else "no"
        guest_cmd = [str(python), "-P", "-m", "pytest", "-p", "no:cacheprovider", "-v",
                     f"--color={color}", "--rootdir", str(REPO), *self.nodeids]
        topology = os.environ.get("PYVFMAC_TESTBED_TOPOLOGY", "")
        cmd = [sys.executable, str(TESTBED), "run", "--venv", sys.prefix, "--out", str(out),
               *(["--topology", topology] if topology else []), "--", "env", f"{REPORT_ENV}=/run/pyvfmac-testbed/out/report.jsonl", *guest_cmd]
        timeout = float(os.environ.get("PYVFMAC_TESTBED_TIMEOUT", "1800")) + 300
        CONSOLE_LOG.parent.mkdir(exist_ok=True)
        capman = self.config.pluginmanager.getplugin("capturemanager")
        tail: list[str] = []
        t0 = time.monotonic()
        with CONSOLE_LOG.open("w") as log, (
            capman.global_and_fixture_disabled() if capman else _nullcontext()
        ):
            shown = shlex.join(cmd[:-len(self.nodeids)])
            print(f"\n---- testbed guest: {len(self.nodeids)} tests: {shown} NODEIDS...",
                  flush=True)
            proc = subprocess.Popen(cmd, cwd=REPO, stdin=subprocess.DEVNULL,
                                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                    errors="replace")
            assert proc.stdout is not None
            try:
                for line in proc.stdout:
                    log.write(line)
                    print("  guest| " + line, end="", flush=True)
                    tail = (tail + [line])[-40:]
                    if time.monotonic() - t0 > timeout:
                        proc.kill()
                        tail.append(f"host: killed the testbed after {timeout:.0f} s\n")
                        break
            finally:
                rc = proc.wait()
            print(f"---- testbed guest finished: exit code {rc}, "
                  f"{time.monotonic() - t0:.1f} s", flush=True)
        self.outcomes = parse_guest_report(report)
        self.problem = (f"testbed run exit code {rc} (console: {CONSOLE_LOG}); last lines:\n"
                        + "".join(tail))
        for child in out.iterdir():
            child.unlink()
        out.rmdir()


class _nullcontext:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


def editable_install_problem() -> str:
    """Why the venv running pytest cannot serve the guest, or ''."""
    try:
        dist = importlib.metadata.distribution("pyvfmac")
    except importlib.metadata.PackageNotFoundError:
        return (f"pyvfmac is not installed in {sys.prefix}: run "
                f"{sys.prefix}/bin/pip install --no-build-isolation . -Cbuild-dir=build "
                f"(tests/run does it)")
    direct = dist.read_text("direct_url.json")
    if direct and json.loads(direct).get("dir_info", {}).get("editable"):
        return (f"pyvfmac is installed EDITABLE in {sys.prefix}; the testbed guest sees the repo "
                f"read-only and cannot rebuild it. Install it as a regular package: "
                f"{sys.prefix}/bin/pip install --no-build-isolation . -Cbuild-dir=build "
                f"(tests/run does it), or run the testbed tests from such a venv")
    return ""


def parse_guest_report(path: Path) -> dict[str, GuestOutcome]:
    """Fold the guest's per-phase JSON lines into one outcome per test."""
    outcomes: dict[str, GuestOutcome] = {}
    finished: set[str] = set()
    collect_errors: list[str] = []
    if not path.exists():
        return outcomes
    for line in path.read_text().splitlines():
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line cut short by a dying guest
        if rec.get("when") == "collect":
            collect_errors.append(f"{rec['nodeid']}:\n{rec['longrepr']}")
            continue
        nodeid, when, outcome = rec["nodeid"], rec["when"], rec["outcome"]
        if when == "teardown":
            finished.add(nodeid)
        current = outcomes.get(nodeid)
        if outcome == "failed":
            text = f"[guest, {when}] " + rec["longrepr"]
            if current is not None and current.kind == "failed":
                text = current.text + "\n\n" + text
            outcomes[nodeid] = GuestOutcome("failed", text)
        elif current is not None and current.kind == "failed":
            continue
        elif outcome == "skipped":
            if rec.get("wasxfail") is not None:
                outcomes[nodeid] = GuestOutcome("xfailed", rec["wasxfail"])
            else:
                outcomes[nodeid] = GuestOutcome("skipped", rec.get("reason") or "skipped in guest")
        elif when == "call" or current is None:
            outcomes[nodeid] = GuestOutcome("passed")
    for nodeid, res in outcomes.items():
        if nodeid not in finished:  # started, never torn down: the guest died in it
            outcomes[nodeid] = GuestOutcome(
                "failed", "the testbed guest started this test but never finished it "
                "(the guest pytest died or the guest was killed)"
                + (":\n" + res.text if res.kind == "failed" else ""))
    if collect_errors:
        outcomes["<collect>"] = GuestOutcome("failed", "\n".join(collect_errors))
    return outcomes


class GuestItem(pytest.Item):
    """Host-side stand-in for a testbed test: reports what the guest saw."""

    def __init__(self, *, runner: GuestRun, original: pytest.Item, **kw: Any) -> None:
        super().__init__(**kw)
        self.runner = runner
        self._location = original.location
        for mark in original.own_markers:
            if mark.name not in GUEST_ONLY_MARKS:
                self.own_markers.append(mark)
                self.keywords[mark.name] = mark

    def runtest(self) -> None:
        res = self.runner.outcome(self.nodeid)
        if res.kind == "failed" and self.runner.outcomes is not None:
            collect = self.runner.outcomes.get("<collect>")
            if collect is not None and not res.text.startswith("[guest"):
                res = GuestOutcome("failed", res.text + "\nguest collection errors:\n"
                                   + collect.text)
        if res.kind == "passed":
            return
        if res.kind == "skipped":
            raise pytest.skip.Exception(res.text, _use_item_location=True)
        if res.kind == "xfailed":
            pytest.xfail(res.text)
        if res.text.startswith("the testbed guest started") and self.runner.problem:
            raise GuestTestFailure(res.text + "\n" + self.runner.problem)
        raise GuestTestFailure(res.text)

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException],
                     style: Any = None) -> str:
        if isinstance(excinfo.value, GuestTestFailure):
            return str(excinfo.value)
        return str(super().repr_failure(excinfo))

    def reportinfo(self) -> tuple[Path, int | None, str]:
        return self.path, self._location[1], self._location[2] + " [testbed guest]"


# ------------------------------------------------------------------- guest: reporting to the host

def _append_report(rec: dict[str, Any]) -> None:
    path = os.environ.get(REPORT_ENV)
    if not path:
        return
    with open(path, "a") as f:
        f.write(json.dumps(rec) + "\n")
        f.flush()
        os.fsync(f.fileno())


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if not IN_GUEST:
        return
    reason = ""
    if report.skipped and isinstance(report.longrepr, tuple):
        reason = str(report.longrepr[2]).removeprefix("Skipped: ")
    _append_report({
        "nodeid": report.nodeid, "when": report.when, "outcome": report.outcome,
        "longrepr": report.longreprtext if report.failed else "",
        "reason": reason, "wasxfail": getattr(report, "wasxfail", None),
        "duration": report.duration,
    })


def pytest_collectreport(report: pytest.CollectReport) -> None:
    if IN_GUEST and report.failed:
        _append_report({"nodeid": report.nodeid, "when": "collect", "outcome": "failed",
                        "longrepr": report.longreprtext})


# ------------------------------------------------------------------------- guest: the fixtures

def _guest_only() -> None:
    if not IN_GUEST:
        pytest.fail("testbed fixtures only work inside the testbed guest (PYVFMAC_GUEST=1)")


def wait_until(what: str, check: Callable[[], bool], timeout: float = 60.0) -> None:
    """Poll ``check`` until it is true; fail the test naming ``what`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.05)


@dataclass(frozen=True, slots=True)
class NsimPf:
    name: str
    ifindex: int
    dev_id: int
    num_vfs: int


NSIM_BUS = Path("/sys/bus/netdevsim")
NSIM_DEBUGFS = Path("/sys/kernel/debug/netdevsim")
_nsim_ids = itertools.count(1)


def _fresh_nsim_id() -> int:
    while True:
        dev_id = next(_nsim_ids)
        if not (NSIM_BUS / "devices" / f"netdevsim{dev_id}").exists():
            return dev_id


@pytest.fixture
def nsim_pf() -> Iterator[Callable[..., NsimPf]]:
    _guest_only()
    created: list[int] = []

    def make(num_vfs: int, max_vfs: int | None = None) -> NsimPf:
        dev_id = _fresh_nsim_id()
        (NSIM_BUS / "new_device").write_text(f"{dev_id} 1")
        created.append(dev_id)
        dev = NSIM_BUS / "devices" / f"netdevsim{dev_id}"
        wait_until(f"netdevsim{dev_id}'s netdev", lambda: any((dev / "net").glob("*")), 20)
        limit = num_vfs if max_vfs is None else max_vfs
        if limit > 4:
            (NSIM_DEBUGFS / f"netdevsim{dev_id}" / "max_vfs").write_text(str(limit))
        if num_vfs:
            (dev / "sriov_numvfs").write_text(str(num_vfs))
        netdev = next((dev / "net").iterdir())
        return NsimPf(netdev.name, int((netdev / "ifindex").read_text()), dev_id, num_vfs)

    yield make
    for dev_id in created:
        (NSIM_BUS / "del_device").write_text(str(dev_id))


IGB_DRIVER = Path("/sys/bus/pci/drivers/igb")
IGB_VFS = 7


def _pci_sort_key(path: Path) -> tuple[int, int, int, int]:
    from pyvfmac.types import PciAddress

    a = PciAddress.parse(path.name)
    return (a.domain, a.bus, a.slot, a.function)


def _igb_pf_devices() -> list[Path]:
    return sorted((p for p in IGB_DRIVER.glob("0000:*") if (p / "sriov_totalvfs").exists()),
                  key=_pci_sort_key)


def _vf_devices(pf_dev: Path) -> list[Path]:
    return [(pf_dev / f"virtfn{i}").resolve() for i in range(int(
        (pf_dev / "sriov_numvfs").read_text()))]


def _vf_ready(vf: Path) -> bool:
    drv = vf / "driver"
    return drv.exists() and drv.resolve().name == "igbvf" and any((vf / "net").glob("*"))


@pytest.fixture(scope="session")
def igb_pfs() -> tuple[str, ...]:
    _guest_only()
    devs = _igb_pf_devices()
    if len(devs) < 2:
        pytest.fail(f"expected 2 igb PFs in the guest, found {[d.name for d in devs]}")
    names = []
    for dev in devs:
        if int((dev / "sriov_numvfs").read_text()) != IGB_VFS:
            (dev / "sriov_numvfs").write_text("0")
            (dev / "sriov_numvfs").write_text(str(IGB_VFS))
        names.append(next((dev / "net").iterdir()).name)
    for dev in devs:
        for vf in _vf_devices(dev):
            wait_until(f"igb VF {vf.name} on igbvf with a netdev", lambda: _vf_ready(vf), 60)
    return tuple(names)


def _rebind_igbvf(vf: Path) -> None:
    (vf / "driver_override").write_text("\n")
    drv = vf / "driver"
    if drv.exists():
        if drv.resolve().name == "igbvf":
            return
        (drv / "unbind").write_text(vf.name)
    Path("/sys/bus/pci/drivers_probe").write_text(vf.name)


@pytest.fixture
def igb_clean(igb_pfs: tuple[str, ...]) -> Iterator[None]:
    yield
    problems = []
    for dev, name in zip(_igb_pf_devices(), igb_pfs):
        for i, vf in enumerate(_vf_devices(dev)):
            _rebind_igbvf(vf)
            # igb has no VF link-state control and rates need a 1 Gb/s link: only these.
            cmd = ["ip", "link", "set", "dev", name, "vf", str(i), "mac", "00:00:00:00:00:00",
                   "vlan", "0", "spoofchk", "on", "trust", "off"]
            r = subprocess.run(cmd, capture_output=True, text=True)
            if r.returncode != 0:
                problems.append(f"{shlex.join(cmd)}: {r.stderr.strip()}")
    for dev in _igb_pf_devices():
        for vf in _vf_devices(dev):
            wait_until(f"igb VF {vf.name} back on igbvf", lambda: _vf_ready(vf), 60)
    if problems:
        pytest.fail("igb_clean could not reset: " + "; ".join(problems))


@pytest.fixture
def ip_link() -> Callable[[str], dict[str, Any]]:
    _guest_only()

    def show(name: str) -> dict[str, Any]:
        r = subprocess.run(["ip", "-j", "-d", "link", "show", "dev", name],
                           capture_output=True, text=True)
        if r.returncode != 0:
            pytest.fail(f"ip -j -d link show dev {name}: {r.stderr.strip()}")
        data = json.loads(r.stdout)
        assert isinstance(data, list) and len(data) == 1, r.stdout[:200]
        return dict(data[0])

    return show


# ---------------------------------------------------- guest: a raw, independent RTM_GETLINK reader

@dataclass(frozen=True, slots=True)
class RawVf:
    vf: int
    mac: str
    vlan: int = 0
    qos: int = 0
    vlan_proto: int = 0x8100
    spoofchk: bool | None = None
    trust: bool | None = None
    link_state: int | None = None
    min_tx_rate: int | None = None
    max_tx_rate: int | None = None


RTM_GETLINK, NLMSG_ERROR, NLM_F_REQUEST = 18, 2, 1
IFLA_VFINFO_LIST, IFLA_EXT_MASK, IFLA_VF_INFO = 22, 29, 1
RTEXT_FILTER_VF, RTEXT_FILTER_SKIP_STATS = 1, 8


def _attrs(buf: bytes, start: int, end: int) -> Iterator[tuple[int, int, int]]:
    """(type, payload start, payload end) of the netlink attributes in buf[start:end]."""
    pos = start
    while pos + 4 <= end:
        length, kind = struct.unpack_from("=HH", buf, pos)
        if length < 4:
            return
        yield kind & 0x3FFF, pos + 4, min(pos + length, end)
        pos += (length + 3) & ~3


def _parse_vf(buf: bytes, start: int, end: int) -> RawVf:
    f: dict[str, Any] = {}
    for kind, a, b in _attrs(buf, start, end):
        if kind == 1:  # IFLA_VF_MAC: u32 vf, u8 mac[32]
            f["vf"] = struct.unpack_from("=I", buf, a)[0]
            f["mac"] = ":".join(f"{x:02x}" for x in buf[a + 4:a + 10])
        elif kind == 2:  # IFLA_VF_VLAN: vf, vlan, qos
            _, f["vlan"], f["qos"] = struct.unpack_from("=III", buf, a)
        elif kind == 12:  # IFLA_VF_VLAN_LIST / IFLA_VF_VLAN_INFO: vf, vlan, qos, __be16 proto
            for _k, c, _d in _attrs(buf, a, b):
                _, f["vlan"], f["qos"] = struct.unpack_from("=III", buf, c)
                f["vlan_proto"] = struct.unpack_from("!H", buf, c + 12)[0]
                break
        elif kind == 4:  # IFLA_VF_SPOOFCHK
            f["spoofchk"] = bool(struct.unpack_from("=II", buf, a)[1])
        elif kind == 5:  # IFLA_VF_LINK_STATE
            f["link_state"] = struct.unpack_from("=II", buf, a)[1]
        elif kind == 6:  # IFLA_VF_RATE: vf, min, max
            _, f["min_tx_rate"], f["max_tx_rate"] = struct.unpack_from("=III", buf, a)
        elif kind == 9:  # IFLA_VF_TRUST
            f["trust"] = bool(struct.unpack_from("=II", buf, a)[1])
    return RawVf(**f)


def raw_read_vfs(name: str) -> dict[int, RawVf]:
    """Every VF of PF ``name`` from one RTM_GETLINK, walking past a wrapped list length."""
    ifindex = socket.if_nametoindex(name)
    with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32 << 20)
        body = struct.pack("=BxHiII", 0, 0, ifindex, 0, 0)
        body += struct.pack("=HHI", 8, IFLA_EXT_MASK, RTEXT_FILTER_VF | RTEXT_FILTER_SKIP_STATS)
        s.send(struct.pack("=IHHII", 16 + len(body), RTM_GETLINK, NLM_F_REQUEST, 1, 0) + body)
        size = s.recv_into(bytearray(16), 16, socket.MSG_PEEK | socket.MSG_TRUNC)
        buf = s.recv(max(size, 1 << 16))
    msg_len, msg_type = struct.unpack_from("=IH", buf, 0)
    if msg_type == NLMSG_ERROR:
        code = -struct.unpack_from("=i", buf, 16)[0]
        raise OSError(code, f"RTM_GETLINK {name}: {os.strerror(code)}")
    end = len(buf)  # nlmsg_len is 32-bit: fine, but be robust to a short read
    vfs: dict[int, RawVf] = {}
    for kind, a, _b in _attrs(buf, 16 + 16, min(msg_len, end)):
        if kind != IFLA_VFINFO_LIST:
            continue
        # The list's own 16-bit length may have wrapped: walk IFLA_VF_INFO entries from its start
        # until the first attribute that is not one.
        pos = a
        while pos + 4 <= end:
            length, vkind = struct.unpack_from("=HH", buf, pos)
            if vkind & 0x3FFF != IFLA_VF_INFO or length < 4:
                break
            vf = _parse_vf(buf, pos + 4, pos + length)
            vfs[vf.vf] = vf
            pos += (length + 3) & ~3
        break
    return vfs


@pytest.fixture
def raw_vfs() -> Callable[[str], dict[int, RawVf]]:
    _guest_only()
    return raw_read_vfs

