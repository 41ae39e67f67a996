"""`vfmac watch` pieces against real sockets: the uevent and link parsers fed through datagram
socketpairs, the debouncer with a test clock, sd_notify to a socket bound here, and the daemon
loop with a backend of the test's own (real signals, real selectors)."""

from __future__ import annotations

import os
import signal
import socket
import struct
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from pyvfmac.errors import ConfigError
from pyvfmac.watch.daemon import Daemon, Outcome
from pyvfmac.watch.debounce import Debouncer
from pyvfmac.watch.events import (
    OVERFLOW_LINK, LinkEvent, LinkSocket, Uevent, UeventSocket, parse_link_messages, parse_uevent,
)
from pyvfmac.watch.notify import Notifier, socket_address
from pyvfmac.watch.resolve import PfTarget, Resolver

from nlmsg import IFLA_IFNAME, IFLA_PARENT_DEV_BUS_NAME, IFLA_PARENT_DEV_NAME, nla

PF_PCI = "0000:01:00.0"
VF_PCI = "0000:01:10.2"


def uevent(action: str, devpath: str, subsystem: str, **env: str) -> bytes:
    fields = {"ACTION": action, "DEVPATH": devpath, "SUBSYSTEM": subsystem, "SEQNUM": "7", **env}
    return f"{action}@{devpath}\0".encode() + b"".join(
        f"{k}={v}\0".encode() for k, v in fields.items())


def link_msg(mtype: int, ifindex: int, name: str | None, parent: tuple[str, str] | None = None
             ) -> bytes:
    attrs = nla(IFLA_IFNAME, name.encode() + b"\0") if name else b""
    if parent:
        attrs += nla(IFLA_PARENT_DEV_BUS_NAME, parent[0].encode() + b"\0")
        attrs += nla(IFLA_PARENT_DEV_NAME, parent[1].encode() + b"\0")
    body = struct.pack("=BxHiII", 0, 1, ifindex, 0, 0) + attrs
    return struct.pack("=IHHII", 16 + len(body), mtype, 0, 0, 0) + body


@pytest.fixture
def dgram() -> Iterator[tuple[socket.socket, socket.socket]]:
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    a.setblocking(False)
    try:
        yield a, b
    finally:
        a.close()
        b.close()


# ---------------------------------------------------------------------------- events


def test_parse_uevent_fields() -> None:
    ev = parse_uevent(uevent("add", "/devices/pci0000:00/0000:00:02.0/0000:01:00.0/net/eth0",
                             "net", INTERFACE="eth0", IFINDEX="4"))
    assert ev == Uevent("add", "/devices/pci0000:00/0000:00:02.0/0000:01:00.0/net/eth0", "net")
    assert ev is not None and ev.interface == "eth0" and ev.ifindex == 4
    assert ev.describe() == "uevent net add eth0"


@pytest.mark.parametrize("data", [
    b"libudev\0\xfe\xed\xca\xfe" + b"\0" * 32,  # udev's re-broadcast
    b"add@\0SUBSYSTEM=pci\0",  # no devpath
    b"garbage",
    uevent("add", "/devices/virtual/block/loop0", "block"),  # not watched
])
def test_parse_uevent_rejects(data: bytes) -> None:
    assert parse_uevent(data) is None


def test_uevent_socket_reads_batch(dgram: tuple[socket.socket, socket.socket]) -> None:
    a, b = dgram
    sock = UeventSocket(sock=a)
    b.send(uevent("add", f"/devices/pci0000:00/0000:00:02.0/{VF_PCI}", "pci"))
    b.send(uevent("add", "/devices/virtual/block/loop0", "block"))
    b.send(uevent("remove", f"/devices/pci0000:00/0000:00:02.0/{VF_PCI}", "pci"))
    got = sock.read()
    assert [(e.action, e.subsystem) for e in got if isinstance(e, Uevent)] == [
        ("add", "pci"), ("remove", "pci")]
    assert sock.read() == []  # drained, and non-blocking


def test_link_messages_several_per_datagram(dgram: tuple[socket.socket, socket.socket]) -> None:
    a, b = dgram
    b.send(link_msg(16, 4, "eth0", ("pci", PF_PCI)) + link_msg(17, 9, "eth5")
           + link_msg(3, 0, None))  # NLMSG_DONE: skipped
    b.send(struct.pack("=IHHII", 16, 4, 0, 0, 0))  # NLMSG_OVERRUN
    got = LinkSocket(sock=a).read()
    assert got == [LinkEvent("new", 4, "eth0", "pci", PF_PCI), LinkEvent("del", 9, "eth5"),
                   OVERFLOW_LINK]


def test_link_messages_truncated_stop() -> None:
    whole = link_msg(16, 4, "eth0")
    assert parse_link_messages(whole[:-3]) == []
    assert parse_link_messages(whole + whole[:10]) == [LinkEvent("new", 4, "eth0")]


# ---------------------------------------------------------------------------- debounce


def test_debounce_quiet_period() -> None:
    d: Debouncer[str] = Debouncer(quiet=0.5, max_delay=3.0)
    assert d.timeout(0.0) is None  # nothing armed: sleep without a timeout
    d.add("pf[0]", 10.0, "a")
    d.add("pf[0]", 10.2, "b")
    assert d.timeout(10.2) == pytest.approx(0.5)
    assert d.due(10.6) == []
    (batch,) = d.due(10.7)
    assert (batch.key, batch.events, batch.reasons, batch.first) == ("pf[0]", 2, ("a", "b"), 10.0)
    assert d.timeout(11.0) is None


def test_debounce_max_delay_bounds_a_storm() -> None:
    d: Debouncer[str] = Debouncer(quiet=0.5, max_delay=2.0)
    fired = []
    t = 0.0
    for _ in range(4096):  # one event every 2.5 ms for ~10 s: never quiet
        d.add("pf[0]", t, "vf")
        fired += [(b.key, t) for b in d.due(t)]
        t += 0.0025
    fired += [(b.key, t) for b in d.due(t + 1)]
    assert 5 <= len(fired) <= 7  # ~10 s / 2 s, not 4096


def test_debounce_keys_independent() -> None:
    d: Debouncer[str] = Debouncer(quiet=1.0, max_delay=5.0)
    d.add("a", 0.0)
    d.add("b", 0.5)
    assert [b.key for b in d.due(1.0)] == ["a"]
    assert [b.key for b in d.due(1.5)] == ["b"]
    with pytest.raises(ValueError):
        Debouncer(quiet=2.0, max_delay=1.0)


# ---------------------------------------------------------------------------- notify


def test_socket_address_forms() -> None:
    assert socket_address("@sd/notify") == b"\0sd/notify"
    assert socket_address("/run/systemd/notify") == "/run/systemd/notify"
    assert socket_address("") is None
    assert socket_address("vsock:2:1234") is None


def test_notify_path_socket(tmp_path: Path) -> None:
    path = str(tmp_path / "notify")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as server:
        server.bind(path)
        n = Notifier(path)
        assert n.ready("watching 2 PFs") is None
        assert server.recv(4096) == b"READY=1\nSTATUS=watching 2 PFs"
        assert n.reloading() is None
        fields = server.recv(4096).decode().split("\n")
        assert fields[0] == "RELOADING=1" and fields[1].startswith("MONOTONIC_USEC=")
        assert n.stopping() is None
        assert server.recv(4096) == b"STOPPING=1"
        n.close()


def test_notify_abstract_socket_and_env(monkeypatch: pytest.MonkeyPatch) -> None:
    name = f"pyvfmac-test-{os.getpid()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as server:
        server.bind(b"\0" + name.encode())
        monkeypatch.setenv("NOTIFY_SOCKET", "@" + name)
        n = Notifier()
        assert n.status("a\nb") is None
        assert server.recv(4096) == b"STATUS=a b"  # one line: a newline would start a field


def test_notify_failure_is_reported_not_raised(tmp_path: Path) -> None:
    n = Notifier(str(tmp_path / "nobody-listens"))
    assert "cannot notify" in (n.ready() or "")
    assert Notifier(from_env=False).ready() is None  # not under systemd: a no-op


# ---------------------------------------------------------------------------- resolve


def fake_sysfs(root: Path) -> None:
    devs = root / "bus" / "pci" / "devices"
    for addr in (PF_PCI, VF_PCI, "0000:02:00.0"):
        (devs / addr).mkdir(parents=True)
    (devs / PF_PCI / "net" / "eth0").mkdir(parents=True)
    (devs / VF_PCI / "physfn").symlink_to(f"../{PF_PCI}")
    (devs / PF_PCI / "virtfn1").symlink_to(f"../{VF_PCI}")
    net = root / "class" / "net"
    net.mkdir(parents=True)
    for name, addr in (("eth0", PF_PCI), ("eth5", VF_PCI), ("eth9", "0000:02:00.0")):
        (net / name).mkdir()
        (net / name / "device").symlink_to(devs / addr)


@pytest.mark.parametrize("target", [PfTarget("pf[0]", name="eth0"), PfTarget("pf[0]", pci=PF_PCI)])
def test_resolver(tmp_path: Path, target: PfTarget) -> None:
    fake_sysfs(tmp_path)
    r = Resolver([target], str(tmp_path))
    vf_path = f"/devices/pci0000:00/0000:00:02.0/{VF_PCI}"
    assert r.for_uevent(Uevent("add", vf_path, "pci")) == "pf[0]"
    assert r.for_uevent(Uevent("change", f"/devices/x/{PF_PCI}", "pci")) == "pf[0]"
    assert r.for_uevent(Uevent("add", f"/devices/x/{PF_PCI}/net/eth0", "net",
                               {"INTERFACE": "eth0"})) == "pf[0]"
    assert r.for_uevent(Uevent("add", "/devices/x/0000:02:00.0", "pci")) is None
    assert r.for_link(LinkEvent("new", 4, "eth0")) == "pf[0]"
    assert r.for_link(LinkEvent("new", 7, "eth5")) == "pf[0]"  # a VF netdev: its PF
    assert r.for_link(LinkEvent("new", 9, "eth9")) is None
    # the VF is gone from sysfs by the time its remove event is read: still known
    (tmp_path / "bus" / "pci" / "devices" / VF_PCI / "physfn").unlink()
    assert r.for_uevent(Uevent("remove", vf_path, "pci")) == "pf[0]"
    assert r.for_link(LinkEvent("del", 7, None)) == "pf[0]"


def test_resolver_knows_pci_names_of_a_vmd_domain(tmp_path: Path) -> None:
    """The kernel names a function of a 32-bit (VMD) domain 10000:01:00.0."""
    pf, vf = "10000:01:00.0", "10000:01:01.0"
    devs = tmp_path / "bus" / "pci" / "devices"
    for addr in (pf, vf):
        (devs / addr).mkdir(parents=True)
    (devs / vf / "physfn").symlink_to(f"../{pf}")
    r = Resolver([PfTarget("pf[0]", pci=pf)], str(tmp_path))
    assert r.for_uevent(Uevent("add", f"/devices/pci10000:00/{vf}", "pci")) == "pf[0]"
    assert r.for_uevent(Uevent("add", f"/devices/pci10000:00/{pf}", "pci")) == "pf[0]"
    assert r.for_uevent(Uevent("add", "/devices/x/010000:01:00.0", "pci")) is None


def test_resolver_learns_vfs_before_remove(tmp_path: Path) -> None:
    fake_sysfs(tmp_path)
    r = Resolver([PfTarget("pf[0]", pci=PF_PCI)], str(tmp_path))
    r.learn_vfs("pf[0]", PF_PCI)
    (tmp_path / "bus" / "pci" / "devices" / VF_PCI / "physfn").unlink()
    assert r.for_uevent(Uevent("remove", f"/devices/p/{VF_PCI}", "pci")) == "pf[0]"


# ---------------------------------------------------------------------------- daemon


class Backend:
    """A backend of the test's: records reconciles; ``bad`` makes the next load fail."""

    def __init__(self) -> None:
        self.targets = [PfTarget("pf[0]", name="eth0"), PfTarget("pf[1]", name="eth1")]
        self.calls: list[str] = []
        self.loads = 0
        self.bad = False
        self.explode = False

    def load(self) -> Sequence[PfTarget]:
        self.loads += 1
        if self.bad:
            raise ConfigError("bad.toml: pf[0].numvfs: 'x': not an integer")
        return self.targets

    def reconcile(self, key: str) -> Outcome:
        self.calls.append(key)
        if self.explode:
            raise RuntimeError("boom")
        return Outcome(pf=key, changed=1, vfs=4)


class Harness:
    def __init__(self, tmp_path: Path, quiet: float = 0.05, max_delay: float = 0.3) -> None:
        self.backend = Backend()
        self.ua, self.ub = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.la, self.lb = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
        for s in (self.ua, self.la):
            s.setblocking(False)
        self.log_path = tmp_path / "log"
        self.json_path = tmp_path / "json"
        self.notify_path = str(tmp_path / "notify")
        self.notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.notify.bind(self.notify_path)
        self.notify.settimeout(10)
        self.log = open(self.log_path, "w")
        self.json = open(self.json_path, "w")
        self.daemon = Daemon(self.backend, sysfs_root=str(tmp_path), quiet=quiet,
                             max_delay=max_delay, notifier=Notifier(self.notify_path),
                             log=self.log, json_out=self.json, uevents=UeventSocket(sock=self.ua),
                             links=LinkSocket(sock=self.la))

    def run_with(self, script: callable) -> int:  # type: ignore[valid-type]
        errors: list[BaseException] = []

        def drive() -> None:
            try:
                assert self.notify.recv(4096).startswith(b"READY=1")
                script(self)
            except BaseException as exc:  # noqa: BLE001
                errors.append(exc)
            finally:
                os.kill(os.getpid(), signal.SIGTERM)

        t = threading.Thread(target=drive)
        t.start()
        rc = self.daemon.run()
        t.join()
        self.log.close()
        self.json.close()
        self.notify.close()
        if errors:
            raise errors[0]
        return rc

    def notes(self) -> list[bytes]:
        out = []
        self.notify.settimeout(0.5)
        try:
            while True:
                out.append(self.notify.recv(4096))
        except TimeoutError:
            return out

    def link(self, ifindex: int, name: str) -> None:
        self.lb.send(link_msg(16, ifindex, name))


def test_daemon_start_events_debounce_and_sigterm(tmp_path: Path) -> None:
    h = Harness(tmp_path)

    def script(h: Harness) -> None:
        for _ in range(50):  # a burst on eth0: one reconcile
            h.link(4, "eth0")
        h.link(8, "eth7")  # not configured: nothing
        time.sleep(0.6)

    assert h.run_with(script) == 0
    assert sorted(h.backend.calls[:2]) == ["pf[0]", "pf[1]"]  # the start-up pass
    assert h.backend.calls[2:] == ["pf[0]"]
    log = h.log_path.read_text()
    assert "pf[0]: applied: 1 VF changed" in log and "SIGTERM: stopping" in log
    assert '"event": "stop"' in h.json_path.read_text()


def test_daemon_sighup_good_and_bad_config(tmp_path: Path) -> None:
    h = Harness(tmp_path)

    def script(h: Harness) -> None:
        h.backend.bad = True
        os.kill(os.getpid(), signal.SIGHUP)
        notes = [n for n in h.notes() if not n.startswith(b"STATUS=")]
        assert notes[0].startswith(b"RELOADING=1\nMONOTONIC_USEC=") and notes[1] == b"READY=1"
        h.backend.bad = False
        h.backend.targets = [PfTarget("pf[0]", name="eth3")]
        os.kill(os.getpid(), signal.SIGHUP)
        time.sleep(0.6)
        h.link(4, "eth3")  # the new config's PF
        h.link(5, "eth0")  # the old one: no longer ours
        time.sleep(0.6)

    assert h.run_with(script) == 0
    log = h.log_path.read_text()
    assert "reload refused, keeping the old config: bad.toml: pf[0].numvfs" in log
    assert "config reloaded: 1 PF (eth3)" in log
    assert h.backend.calls[2:] == ["pf[0]", "pf[0]"]  # the reload's pass, then eth3's event


def test_daemon_survives_backend_errors_and_garbage(tmp_path: Path) -> None:
    h = Harness(tmp_path)

    def script(h: Harness) -> None:
        h.backend.explode = True
        h.ub.send(b"\xff\xfe garbage")
        h.lb.send(b"\x01\x02")
        h.link(4, "eth0")
        time.sleep(0.4)
        h.backend.explode = False
        h.link(4, "eth0")
        time.sleep(0.4)

    assert h.run_with(script) == 0
    assert "eth0: apply failed: RuntimeError: boom" in h.log_path.read_text()
    assert h.backend.calls.count("pf[0]") == 3


def test_daemon_idle_uses_no_cpu(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    used: list[float] = []

    def script(h: Harness) -> None:
        time.sleep(0.2)
        before = time.process_time()
        time.sleep(2.0)
        used.append(time.process_time() - before)

    assert h.run_with(script) == 0
    assert used[0] < 0.05, f"{used[0]:.3f} s of CPU in 2 s idle"


def test_daemon_storm_bounded_applies(tmp_path: Path) -> None:
    h = Harness(tmp_path, quiet=0.2, max_delay=1.0)

    def script(h: Harness) -> None:
        for i in range(4096):  # 4096 VF uevents over ~2 s
            h.link(100 + i, "eth0")
            if i % 64 == 0:
                time.sleep(0.03)
        time.sleep(0.5)

    assert h.run_with(script) == 0
    storm = h.backend.calls[2:]
    assert 1 <= len(storm) <= 5, storm


def test_daemon_bad_first_config_exits_1(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    h.backend.bad = True
    assert h.daemon.run() == 1
    assert "cannot read the config" in (h.log.close() or h.log_path.read_text())
