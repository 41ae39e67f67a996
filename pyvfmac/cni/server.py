"""vfmac-cni's calls answered by the node's resident daemon (``vfmac watch --cni-socket``).

A pod start pays the interpreter twice (ADD, later DEL) when vfmac-cni runs as its own Python
process. The daemon is already running: it listens on a unix socket (``/run/pyvfmac/cni.sock``,
mode 0600, root only) and answers each call in-process, through :func:`.main.handle`, the same
code the plugin runs, with the state store and the rtnetlink socket kept open per worker thread.
``vfmac-cni`` (``csrc/vfm_cni_forward.c``) forwards its environment and stdin and relays the
answer and the exit status; when the socket is absent, refuses, is full or the daemon dies
before answering, it runs the call itself as before (the answer is the same either way).

Wire format, one call per connection (the forwarder's side is in C; both are short):

- request: the environment as ``KEY=VALUE`` strings, each NUL-terminated, then one more NUL;
  then stdin's bytes up to the end of the stream (the client shuts down its sending side);
- answer: one line ``<status> <stdout length> <log length>\\n``, then stdout's bytes, then the
  log's (lines for the runtime's log, which the forwarder writes to stderr).

Calls of different attachments run in parallel (a pool of worker threads); calls of one
attachment (container id and interface name) run in order. A peer that is not root (nor the
daemon's own user) is refused. A daemon that dies mid-call leaves the claim in the state store
to the call's retry, exactly as a killed plugin process does: nothing is run twice.
"""

from __future__ import annotations

import os
import queue
import socket
import struct
import threading
import time
from collections.abc import Callable

from .main import Answer, handle

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (mypy: always_true)
if TYPE_CHECKING:
    from ..host import Host

__all__ = ["DEFAULT_SOCKET", "SOCKET_ENV", "CniServer", "decode_request", "encode_answer"]

DEFAULT_SOCKET = "/run/pyvfmac/cni.sock"
SOCKET_ENV = "PYVFMAC_CNI_SOCKET"  # where the forwarder looks (tests); the daemon's option wins
MAX_REQUEST = 16 << 20
WORKERS = 8


def decode_request(data: bytes) -> tuple[dict[str, str], bytes]:
    """The environment and stdin of one request (ValueError: not one)."""
    if data.startswith(b"\0"):
        block, stdin = b"", data[1:]  # an empty environment
    else:
        end = data.find(b"\0\0")
        if end < 0:
            raise ValueError("the environment is not terminated")
        block, stdin = data[:end], data[end + 2:]
    environ: dict[str, str] = {}
    for item in block.split(b"\0") if block else ():
        key, sep, value = item.partition(b"=")
        if not sep or not key:
            raise ValueError(f"not KEY=VALUE: {item[:40]!r}")
        environ[key.decode("utf-8", "surrogateescape")] = value.decode("utf-8",
                                                                        "surrogateescape")
    return environ, stdin


def encode_answer(answer: Answer) -> bytes:
    out = answer.stdout.encode()
    log = "".join(line + "\n" for line in answer.log).encode()
    return f"{answer.status} {len(out)} {len(log)}\n".encode() + out + log


def _read_all(conn: socket.socket) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        chunk = conn.recv(65536)
        if not chunk:
            return b"".join(chunks)
        size += len(chunk)
        if size > MAX_REQUEST:
            raise ValueError(f"request larger than {MAX_REQUEST >> 20} MiB")
        chunks.append(chunk)


def _peer_uid(conn: socket.socket) -> int:
    creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    _pid, uid, _gid = struct.unpack("3i", creds)
    return int(uid)


class CniServer:
    """The daemon's CNI socket: :meth:`start` binds it and answers calls in worker threads until
    :meth:`stop`. ``open_host`` opens what a worker keeps open (store and rtnetlink)."""

    def __init__(self, path: str, open_host: Callable[[], Host],
                 log: Callable[[str], None] = lambda text: None) -> None:
        self.path = path
        self._open_host = open_host
        self._log = log
        self._locks: dict[tuple[str, str], threading.Lock] = {}
        self._guard = threading.Lock()
        self._calls: queue.SimpleQueue[socket.socket | None] = queue.SimpleQueue()
        self._workers: list[threading.Thread] = []
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self.served = 0

    # -- life -----------------------------------------------------------------------------

    def start(self) -> None:
        directory = os.path.dirname(self.path)
        os.makedirs(directory, mode=0o700, exist_ok=True)
        try:
            os.unlink(self.path)  # a previous daemon's
        except FileNotFoundError:
            pass
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        old = os.umask(0o177)
        try:
            sock.bind(self.path)  # created 0600: root (the daemon's user) only
        finally:
            os.umask(old)
        sock.listen(64)
        self._sock = sock
        self._workers = [threading.Thread(target=self._work, name=f"cni-{i}", daemon=True)
                         for i in range(WORKERS)]
        for worker in self._workers:
            worker.start()
        self._thread = threading.Thread(target=self._accept, name="cni-accept", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop accepting, finish the calls under way, close what the workers kept open."""
        sock, self._sock = self._sock, None
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()
            try:
                os.unlink(self.path)
            except FileNotFoundError:
                pass
        if self._thread is not None:
            self._thread.join(5)
        for _ in self._workers:
            self._calls.put(None)  # each worker finishes its call, closes its host, ends
        for worker in self._workers:
            worker.join()

    # -- calls ----------------------------------------------------------------------------

    def _accept(self) -> None:
        while self._sock is not None:
            try:
                conn, _ = self._sock.accept()  # blocks: an idle daemon uses no CPU
            except OSError:
                return  # closed by stop()
            self._calls.put(conn)

    def _work(self) -> None:
        """One worker: calls off the queue, with the host it opens on first need and keeps (a
        state store connection belongs to the thread that opened it)."""
        kept: list[Host] = []

        def host() -> Host:
            if not kept:
                kept.append(self._open_host())
            return kept[0]

        try:
            while (conn := self._calls.get()) is not None:
                self._serve(conn, host)
        finally:
            for h in kept:
                h.close()

    def _lock(self, environ: dict[str, str]) -> threading.Lock:
        key = (environ.get("CNI_CONTAINERID", ""), environ.get("CNI_IFNAME", ""))
        with self._guard:
            return self._locks.setdefault(key, threading.Lock())

    def _serve(self, conn: socket.socket, host: Callable[[], Host]) -> None:
        with conn:
            try:
                uid = _peer_uid(conn)
                data = _read_all(conn)  # all of it first: unread data would reset the answer
                if uid not in (0, os.geteuid()):
                    from ..errors import CniError
                    from .result import dumps, error
                    from . import codes

                    refused = CniError(codes.BAD_ENV, f"vfmac-cni daemon: uid {uid} may not "
                                       "call it (root only)")
                    conn.sendall(encode_answer(Answer(1, dumps(error(None, refused)), [])))
                    return
                environ, stdin = decode_request(data)
                t0 = time.monotonic()
                with self._lock(environ):
                    answer = handle(stdin, environ, host)
                self.served += 1
                conn.sendall(encode_answer(answer))
                self._log(f"cni: {environ.get('CNI_COMMAND', '?')} "
                          f"{environ.get('CNI_CONTAINERID', '-')} "
                          f"{environ.get('CNI_IFNAME', '-')}: exit {answer.status} "
                          f"({(time.monotonic() - t0) * 1000:.0f} ms)")
            except (OSError, ValueError) as exc:
                self._log(f"cni: a call failed on its socket: {exc}")
            except Exception as exc:  # a worker must outlive any call  # noqa: BLE001
                self._log(f"cni: a call failed: {type(exc).__name__}: {exc}")
