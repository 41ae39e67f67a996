"""vfmac-cni through the node's daemon (issue 25): the C forwarder (the installed `vfmac-cni`)
and pyvfmac.cni.server on real unix sockets. Every answer is compared with the one the plugin
gives in its own process; the daemon's part is seen in its count of calls served."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pyvfmac.cni.main import Answer
from pyvfmac.cni.server import CniServer, decode_request, encode_answer

FORWARDER = Path(sys.executable).with_name("vfmac-cni")
VERSION_IN = b'{"cniVersion": "1.0.0"}'
FOREVER = threading.Event()


def call(sock: Path | None, env: dict[str, str], stdin: bytes,
         timeout: float = 60) -> subprocess.CompletedProcess[bytes]:
    full = {**os.environ, **env, "PYVFMAC_CNI_SOCKET": str(sock) if sock else "/nonexistent"}
    return subprocess.run([str(FORWARDER)], input=stdin, env=full, capture_output=True,
                          timeout=timeout)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[CniServer]:
    def no_host() -> Any:
        raise AssertionError("VERSION and refused calls open no host")

    srv = CniServer(str(tmp_path / "run" / "cni.sock"), no_host)
    srv.start()
    yield srv
    srv.stop()


def test_wire_format_round_trip() -> None:
    env = {"CNI_COMMAND": "ADD", "CNI_ARGS": "IgnoreUnknown=1;K=a=b", "EMPTY": ""}
    data = b"".join(f"{k}={v}".encode() + b"\0" for k, v in env.items()) + b"\0" + b"{\"x\": 1}"
    assert decode_request(data) == (env, b'{"x": 1}')
    assert decode_request(b"\0stdin") == ({}, b"stdin")
    for bad in (b"NOEQUALS\0\0", b"A=1\0B=2"):
        with pytest.raises(ValueError):
            decode_request(bad)
    assert encode_answer(Answer(1, "{}", ["a", "b"])) == b"1 2 4\n{}a\nb\n"


def test_the_forwarder_is_a_small_program() -> None:
    assert FORWARDER.read_bytes()[:4] == b"\x7fELF"


def test_through_the_daemon_and_without_it_the_answer_is_the_same(server: CniServer) -> None:
    here = call(None, {"CNI_COMMAND": "VERSION"}, VERSION_IN)
    there = call(Path(server.path), {"CNI_COMMAND": "VERSION"}, VERSION_IN)
    assert server.served == 1
    assert (there.returncode, there.stdout) == (here.returncode, here.stdout) == (
        0, here.stdout)
    assert json.loads(there.stdout)["cniVersion"] == "1.0.0"
    bad = call(Path(server.path), {"CNI_COMMAND": "NOPE"}, b"{}")
    assert server.served == 2 and bad.returncode == 1 and json.loads(bad.stdout)["code"] == 4
    assert os.stat(server.path).st_mode & 0o777 == 0o600


def _fake_daemon(path: Path, behaviour: str) -> tuple[socket.socket, threading.Thread]:
    """A socket that accepts and then dies (closes without an answer) or hangs."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(str(path))
    sock.listen(1)
    def run() -> None:
        conn, _ = sock.accept()
        conn.recv(65536)
        if behaviour == "hangs":
            FOREVER.wait(30)  # never answers while the test runs
        conn.close()

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return sock, t


def test_a_daemon_that_dies_mid_call_is_replaced_by_a_run_here(tmp_path: Path) -> None:
    sock, t = _fake_daemon(tmp_path / "s", "dies")
    done = call(tmp_path / "s", {"CNI_COMMAND": "VERSION"}, VERSION_IN)
    t.join(5)
    sock.close()
    assert done.returncode == 0 and json.loads(done.stdout)["cniVersion"] == "1.0.0"


def test_a_stuck_daemon_is_try_again_not_a_second_run(tmp_path: Path) -> None:
    sock, _t = _fake_daemon(tmp_path / "s", "hangs")
    done = call(tmp_path / "s", {"CNI_COMMAND": "VERSION", "PYVFMAC_CNI_TIMEOUT": "1"},
                VERSION_IN)
    sock.close()
    assert done.returncode == 1 and json.loads(done.stdout)["code"] == 11


def test_a_full_backlog_is_a_run_here(tmp_path: Path) -> None:
    path = tmp_path / "s"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(str(path))
    sock.listen(0)  # never accepts: the backlog fills
    waiting = []
    for _ in range(4):
        c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        c.setblocking(False)
        try:
            c.connect(str(path))
        except BlockingIOError:
            pass
        waiting.append(c)
    done = call(path, {"CNI_COMMAND": "VERSION"}, VERSION_IN)
    for c in waiting:
        c.close()
    sock.close()
    assert done.returncode == 0 and json.loads(done.stdout)["cniVersion"] == "1.0.0"


@pytest.mark.root
def test_a_peer_that_is_not_root_is_refused() -> None:
    import shutil
    import tempfile

    top = tempfile.mkdtemp(dir="/tmp")  # pytest's tmp_path is not reachable by another user
    server = CniServer(os.path.join(top, "run", "cni.sock"), lambda: None)  # type: ignore
    server.start()
    try:
        _refused_as_nobody(top, server)
    finally:
        server.stop()
        shutil.rmtree(top)


def _refused_as_nobody(top: str, server: CniServer) -> None:
    for d in (top, os.path.dirname(server.path)):
        os.chmod(d, 0o755)
    os.chmod(server.path, 0o666)  # so that the refusal is the daemon's, not the file mode's
    env = {**os.environ, "CNI_COMMAND": "VERSION", "PYVFMAC_CNI_SOCKET": server.path}
    done = subprocess.run([str(FORWARDER)], input=VERSION_IN, env=env, capture_output=True,
                          user=65534, group=65534, timeout=60)
    assert done.returncode == 1 and json.loads(done.stdout)["code"] == 4
    assert "root only" in json.loads(done.stdout)["msg"] and server.served == 0


def _watch(tmp_path: Path, sock: Path) -> subprocess.Popen[bytes]:
    (tmp_path / "empty.toml").write_text("[defaults]\n")
    proc = subprocess.Popen([sys.executable, "-m", "pyvfmac.cli", "--state-dir",
                             str(tmp_path / "st"), "watch", str(tmp_path / "empty.toml"),
                             "--cni-socket", str(sock)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, cwd="/")  # not the checkout's pyvfmac/
    assert proc.stderr is not None
    for line in proc.stderr:  # ready: its signal handlers are in place too
        if line.strip() == b"vfmac watch: ready":
            assert sock.exists()
            return proc
    raise AssertionError(f"the daemon ended ({proc.wait()}) without being ready")


def _cpu_ticks(pid: int) -> int:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def test_the_daemon_restarts_and_stays_idle(tmp_path: Path) -> None:
    """`vfmac watch --cni-socket`: answers; uses no CPU while idle (the accept thread and the
    workers block); stops cleanly, removing its socket; a new daemon takes the path over, even
    from one killed without cleaning up."""
    import signal
    import time

    sock = tmp_path / "run" / "cni.sock"
    daemon = _watch(tmp_path, sock)
    try:
        assert call(sock, {"CNI_COMMAND": "VERSION"}, VERSION_IN).returncode == 0
        time.sleep(0.5)
        before = _cpu_ticks(daemon.pid)
        time.sleep(3)
        assert _cpu_ticks(daemon.pid) - before <= 1  # ticks are 10 ms: idle
    finally:
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(30) == 0
    assert not sock.exists()
    daemon = _watch(tmp_path, sock)
    daemon.kill()  # SIGKILL: its socket file stays behind
    daemon.wait(30)
    assert sock.exists()
    daemon = _watch(tmp_path, sock)  # the next one replaces it
    try:
        done = call(sock, {"CNI_COMMAND": "VERSION"}, VERSION_IN)
        assert done.returncode == 0 and json.loads(done.stdout)["cniVersion"] == "1.0.0"
    finally:
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(30) == 0
        assert daemon.stderr is not None
        assert b"cni: VERSION" in daemon.stderr.read()
