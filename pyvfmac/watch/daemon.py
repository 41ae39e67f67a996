"""The ``vfmac watch`` loop.

One thread, one :mod:`selectors` loop over three file descriptors: the uevent socket, the
rtnetlink link socket and a wake-up socket that the signal handlers write to
(:func:`signal.set_wakeup_fd`). The loop sleeps without a timeout unless a debounce deadline is
armed, so an idle daemon uses no CPU.

An event is resolved to a configured PF (:class:`~.resolve.Resolver`) and noted in the
:class:`~.debounce.Debouncer`; a PF that falls due is reconciled through the :class:`Backend`
(re-apply that PF's part of the config, put back its attached VFs). The messages our own apply
causes are handled like any other: they give the PF one more reconcile, which finds it as
configured (a ``check``, no change, so no further message). They cannot be told apart from a
change someone made while the apply ran (measured: ``ip link set ... vf 3 mac`` during a 20 s
apply under emulation), and dropping them lost that change. A lost-events overflow schedules
every configured PF.

Signals: SIGHUP re-reads the config (a bad one keeps the old, and says why); SIGTERM and SIGINT
end the loop, exit status 0. Readiness, reloads and stopping go to systemd
(:class:`~.notify.Notifier`). Every action is one line on stderr; with ``json_out`` each is also
one JSON object per line on stdout. Nothing an event or an apply does ends the loop: errors are
logged and the loop goes on.
"""

from __future__ import annotations

import json
import selectors
import signal
import socket
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TextIO

from ..errors import VfmacError
from .debounce import Batch, Debouncer
from .events import Event, LinkEvent, LinkSocket, Overflow, Uevent, UeventSocket
from .notify import Notifier
from .resolve import PfTarget, Resolver

MAX_FAILURE_LINES = 20


@dataclass(frozen=True, slots=True)
class Outcome:
    """What reconciling one PF did: VFs ``changed`` and ``failed`` by the apply, ``numvfs``
    (before, after) when it wrote sriov_numvfs, attached VFs ``restored``, and one message per
    thing that could not be done."""

    pf: str
    changed: int = 0
    failed: int = 0
    numvfs: tuple[int, int] | None = None
    restored: int = 0
    vfs: int = 0
    messages: tuple[str, ...] = ()
    pf_pci: str | None = None
    absent: bool = False  # the PF is not on the host now: nothing to do until it appears

    @property
    def acted(self) -> bool:
        return bool(self.changed or self.restored or self.numvfs)


class Backend(Protocol):
    """The daemon's view of the config and the apply."""

    def load(self) -> Sequence[PfTarget]:
        """(Re-)read the config; VfmacError (the old one stays) when it is bad."""

    def reconcile(self, key: str) -> Outcome:
        """Bring the configured PF ``key`` to its configured state."""


@dataclass(slots=True)
class Counters:
    events: int = 0
    applies: int = 0  # reconciles that changed something
    checks: int = 0  # every reconcile
    errors: int = 0
    overflows: int = 0
    started: float = field(default_factory=time.monotonic)


class Daemon:
    def __init__(
        self,
        backend: Backend,
        *,
        sysfs_root: str = "/sys",
        quiet: float = 0.5,
        max_delay: float = 3.0,
        notifier: Notifier | None = None,
        log: TextIO | None = None,
        json_out: TextIO | None = None,
        clock: Callable[[], float] = time.monotonic,
        uevents: UeventSocket | None = None,
        links: LinkSocket | None = None,
    ) -> None:
        self.backend = backend
        self.sysfs_root = sysfs_root
        self.debouncer: Debouncer[str] = Debouncer(quiet, max_delay)
        self.notifier = notifier if notifier is not None else Notifier()
        self.log_stream = log if log is not None else sys.stderr
        self.json_out = json_out
        self.clock = clock
        self.counters = Counters()
        self._uevents = uevents
        self._links = links
        self.resolver = Resolver((), sysfs_root)
        self._stop = False
        self._wake_r, self._wake_w = socket.socketpair()
        for s in (self._wake_r, self._wake_w):
            s.setblocking(False)

    # ------------------------------------------------------------------ output
    def log(self, text: str) -> None:
        try:
            print(f"vfmac watch: {text}", file=self.log_stream, flush=True)
        except (OSError, ValueError):
            pass

    def emit(self, event: str, **fields: Any) -> None:
        if self.json_out is None:
            return
        record = {"ts": round(time.time(), 6), "event": event, **fields}
        try:
            self.json_out.write(json.dumps(record, sort_keys=False) + "\n")
            self.json_out.flush()
        except (OSError, ValueError):
            pass

    def _notify_result(self, error: str | None) -> None:
        if error:
            self.log(error)

    # ------------------------------------------------------------------ config
    def load(self, first: bool) -> bool:
        """Read the config; on failure keep the old one (or, the first time, report False)."""
        try:
            targets = tuple(self.backend.load())
        except (VfmacError, OSError) as exc:
            what = "cannot read the config" if first else "reload refused, keeping the old config"
            self.log(f"{what}: {exc}")
            self.emit("reload-failed" if not first else "config-error", error=str(exc))
            return False
        self.resolver = Resolver(targets, self.sysfs_root)
        for t in targets:
            if t.pci:
                self.resolver.learn_vfs(t.key, t.pci)
        labels = ", ".join(t.label for t in targets) or "none"
        self.log(f"config {'loaded' if first else 'reloaded'}: {len(targets)} PF"
                 f"{'s' * (len(targets) != 1)} ({labels})")
        self.emit("config", pfs=[t.label for t in targets], reload=not first)
        return True

    def schedule_all(self, reason: str) -> None:
        now = self.clock()
        for t in self.resolver.targets:
            self.debouncer.add(t.key, now, reason)

    # ------------------------------------------------------------------ events
    def _label(self, key: str) -> str:
        return next((t.label for t in self.resolver.targets if t.key == key), key)

    def handle(self, event: Event) -> str | None:
        """Note one event; the PF key it concerns (None: not ours, or an overflow)."""
        self.counters.events += 1
        if isinstance(event, Overflow):
            self.counters.overflows += 1
            self.log(f"{event.describe()}: re-checking every configured PF")
            self.emit("overflow", source=event.source)
            self.schedule_all(event.describe())
            return None
        try:
            key = (self.resolver.for_uevent(event) if isinstance(event, Uevent)
                   else self.resolver.for_link(event))
        except (OSError, ValueError) as exc:  # a sysfs surprise: one event lost, not the daemon
            self.log(f"{event.describe()}: ignored: {exc}")
            return None
        if key is not None:
            self.debouncer.add(key, self.clock(), event.describe())
        return key

    def _read(self, reader: UeventSocket | LinkSocket) -> list[Uevent | LinkEvent | Overflow]:
        try:
            return list(reader.read())
        except OSError as exc:
            self.counters.errors += 1
            self.log(f"reading {reader.source} events failed: {exc}")
            return []

    # ------------------------------------------------------------------ reconcile
    def reconcile(self, batch: Batch[str]) -> Outcome | None:
        label = self._label(batch.key)
        trigger = ", ".join(batch.reasons) + (
            f" (+{batch.events - len(batch.reasons)} more)" if batch.events > len(batch.reasons)
            else "")
        started = self.clock()
        try:
            outcome = self.backend.reconcile(batch.key)
        except Exception as exc:  # noqa: BLE001 -- the daemon outlives any one failure
            self.counters.errors += 1
            kind = "" if isinstance(exc, (VfmacError, OSError)) else f"{type(exc).__name__}: "
            self.log(f"{label}: apply failed: {kind}{exc} (trigger: {trigger})")
            self.emit("error", pf=label, error=f"{kind}{exc}", trigger=trigger)
            return None
        seconds = self.clock() - started
        self.counters.checks += 1
        if outcome.acted:
            self.counters.applies += 1
        if outcome.pf_pci:
            self.resolver.learn_vfs(batch.key, outcome.pf_pci)
        self._report(outcome, trigger, seconds, self.clock() - batch.first)
        return outcome

    def _report(self, o: Outcome, trigger: str, seconds: float, since_event: float) -> None:
        if o.absent:
            self.log(f"{o.pf}: not present, waiting for it to appear (trigger: {trigger})")
            self.emit("absent", pf=o.pf, trigger=trigger)
            return
        parts = []
        if o.numvfs:
            parts.append(f"sriov_numvfs {o.numvfs[0]} -> {o.numvfs[1]}")
        parts.append(f"{o.changed} VF{'s' * (o.changed != 1)} changed" if o.changed
                     else f"{o.vfs} VFs as configured" if not o.failed else "")
        if o.restored:
            parts.append(f"{o.restored} attached VF{'s' * (o.restored != 1)} restored")
        if o.failed:
            parts.append(f"{o.failed} failed")
        text = ", ".join(p for p in parts if p)
        self.log(f"{o.pf}: {'applied' if o.acted else 'checked'}: {text} in {seconds:.2f} s "
                 f"(trigger: {trigger})")
        for message in o.messages[:MAX_FAILURE_LINES]:
            self.log(f"{o.pf}: {message}")
        if len(o.messages) > MAX_FAILURE_LINES:
            self.log(f"{o.pf}: ... and {len(o.messages) - MAX_FAILURE_LINES} more")
        self.emit("apply" if o.acted else "check", pf=o.pf, changed=o.changed, failed=o.failed,
                  numvfs=list(o.numvfs) if o.numvfs else None, restored=o.restored, vfs=o.vfs,
                  messages=list(o.messages), seconds=round(seconds, 6),
                  since_event=round(since_event, 6), trigger=trigger,
                  applies=self.counters.applies)

    def run_due(self) -> int:
        """Reconcile every PF that is due now; how many."""
        batches = self.debouncer.due(self.clock())
        done = set()
        for batch in batches:
            if self.reconcile(batch) is not None:
                done.add(batch.key)
        if done:
            self._status()
        return len(batches)

    def initial_pass(self) -> None:
        """Every configured PF once, at start, without waiting for a quiet period."""
        now = self.clock()
        keys = {t.key for t in self.resolver.targets}
        for key in sorted(keys):
            self.debouncer.discard(key)
            self.reconcile(Batch(key, 1, ("start",), now))

    def _status(self) -> None:
        c = self.counters
        self._notify_result(self.notifier.status(
            f"watching {len(self.resolver.targets)} PFs; {c.applies} applies, {c.checks} checks, "
            f"{c.errors} errors"))

    # ------------------------------------------------------------------ signals
    def _install_signals(self) -> list[tuple[int, Any]]:
        old: list[tuple[int, Any]] = []
        for sig in (signal.SIGHUP, signal.SIGTERM, signal.SIGINT):
            old.append((sig, signal.signal(sig, lambda _s, _f: None)))
        self._old_wakeup = signal.set_wakeup_fd(self._wake_w.fileno(), warn_on_full_buffer=False)
        return old

    def _restore_signals(self, old: list[tuple[int, Any]]) -> None:
        signal.set_wakeup_fd(self._old_wakeup)
        for sig, handler in old:
            signal.signal(sig, handler)

    def _on_wake(self) -> None:
        try:
            data = self._wake_r.recv(256)
        except BlockingIOError:
            return
        for signum in data:
            if signum in (signal.SIGTERM, signal.SIGINT):
                self.log(f"{signal.Signals(signum).name}: stopping")
                self._stop = True
            elif signum == signal.SIGHUP:
                self.reload()

    def reload(self) -> None:
        self._notify_result(self.notifier.reloading("reloading the config"))
        self.log("SIGHUP: reloading the config")
        if self.load(first=False):
            self.schedule_all("config reloaded")
        self._notify_result(self.notifier.ready())
        self._status()

    def stop(self) -> None:
        self._stop = True

    # ------------------------------------------------------------------ the loop
    def _open_sockets(self) -> None:
        if self._uevents is None:
            self._uevents = UeventSocket()
        if self._links is None:
            self._links = LinkSocket()

    def run(self, *, initial: bool = True) -> int:
        """Until SIGTERM/SIGINT (0) or an unusable first config (1)."""
        old = self._install_signals()
        try:
            if not self.load(first=True):
                return 1
            self._open_sockets()
            assert self._uevents is not None and self._links is not None
            with selectors.DefaultSelector() as sel:
                sel.register(self._wake_r, selectors.EVENT_READ, "wake")
                sel.register(self._uevents, selectors.EVENT_READ, self._uevents)
                sel.register(self._links, selectors.EVENT_READ, self._links)
                if initial:
                    self.initial_pass()
                self._notify_result(self.notifier.ready())
                self._status()
                self.log("ready")
                self.emit("ready", pfs=[t.label for t in self.resolver.targets])
                while not self._stop:
                    self._step(sel)
            self._notify_result(self.notifier.stopping())
            self.emit("stop", applies=self.counters.applies, checks=self.counters.checks,
                      events=self.counters.events)
            return 0
        finally:
            self._restore_signals(old)
            self.close()

    def _step(self, sel: selectors.BaseSelector) -> None:
        timeout = self.debouncer.timeout(self.clock())
        for key, _mask in sel.select(timeout):
            if key.data == "wake":
                self._on_wake()
            else:
                for ev in self._read(key.data):
                    self.handle(ev)
        if not self._stop:
            self.run_due()

    def close(self) -> None:
        for reader in (self._uevents, self._links):
            if reader is not None:
                reader.close()
        self._uevents = self._links = None
        self._wake_r.close()
        self._wake_w.close()
        self.notifier.close()

