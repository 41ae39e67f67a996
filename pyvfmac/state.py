"""The durable state store: saved originals, attach progress, networks (pools) and allocations.

One SQLite database, ``state.db``, in the state directory:

- :func:`default_state_dir`: ``$PYVFMAC_STATE_DIR`` when set (must be absolute), otherwise
  ``/var/lib/pyvfmac``; :class:`Store` also takes a directory argument, which wins over both.
- The directory is created mode 0700. If it already exists with group or other access and belongs
  to us, it is *tightened* to 0700 (the state holds device configuration only, nothing secret, so a
  loose directory is a mistake to correct, not an attack to refuse). A directory (or database file)
  owned by another user, or a path that is not a directory / regular file, is *refused* with a
  :class:`StateError`: someone else could swap records under us.
- ``state.db`` is created with ``os.open(..., 0o600)`` (never briefly readable by others, whatever
  the umask) and tightened to 0600 if it exists looser. SQLite creates ``state.db-wal`` and
  ``state.db-shm`` with the database file's own mode.
- WAL journal, ``synchronous=FULL`` (a committed transaction survives power loss), foreign keys on,
  a busy timeout (default 30 s) so that many processes queue for the write lock instead of failing,
  and ``PRAGMA user_version`` as the schema version: a database from a newer pyvfmac is refused.
- Every mutation is one transaction, ``BEGIN IMMEDIATE`` (the write lock is taken before the first
  read, so a read-modify-write cannot interleave with another process). Every SQLite failure,
  including a damaged file, surfaces as a :class:`StateError` that names the database file.

VF keys: a VF is identified by ``vf_key``, a string. For a PCI VF it is its canonical PCI address
(``0000:06:10.0``); for a VF that is not a PCI device (netdevsim) it is ``<pf-netdev>/vf<N>``
(``eni0np1/vf3``). :func:`canonical_vf_key` checks and normalises both spellings; :func:`vf_key`
builds one.

Attach progress: a record is created in phase ``saved`` by :meth:`Store.save_original` *before*
anything on the host changes; the attaching process moves it through ``mac-set``, ``unbound``,
``bound`` to ``attached`` with :meth:`Store.set_phase`; detach moves it to ``detaching`` and, after a
verified restore, :meth:`Store.delete` removes it. A record not in phase ``attached`` is
*incomplete* (:meth:`Store.incomplete`); each record carries the pid (and the process start time,
to survive pid reuse) of the process working on it, so ``recover`` can tell a crash
(:meth:`Attachment.worker_alive` is False) from work in progress.

Allocations: :meth:`Store.allocate` picks a free VF of a started network in one ``BEGIN IMMEDIATE``
transaction and records the allocating pid. The attachment of an allocated VF names its network,
and a foreign key ties it to the allocation: an allocation cannot be released while its attachment
exists, and :meth:`Store.delete` of such an attachment releases the allocation in the same
transaction. Nothing leaks: a process killed before committing leaves nothing; killed between
:meth:`Store.allocate` and :meth:`Store.save_original` (nothing on the host changed yet), it leaves
an allocation without attachment, listed by :meth:`Store.orphan_allocations` once the process is
dead; killed later, its incomplete attachment is listed by :meth:`Store.incomplete`, and deleting
it after the restore releases the allocation.
"""

from __future__ import annotations

import os
import re
import sqlite3
import stat
import time
from collections.abc import Callable, Collection, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import InputError, PoolError, StateError, VfmacError
from .mac import parse_mac
from .types import LINK_STATES, VLAN_PROTOS, PciAddress, validate_netdev_name

__all__ = [
    "ATTACH_PHASES",
    "DEFAULT_STATE_DIR",
    "PHASES",
    "SCHEMA_VERSION",
    "STATE_DIR_ENV",
    "Allocation",
    "Attachment",
    "NetworkRecord",
    "Original",
    "Store",
    "canonical_vf_key",
    "default_state_dir",
    "process_alive",
    "process_start_time",
    "vf_key",
]

DEFAULT_STATE_DIR = Path("/var/lib/pyvfmac")
STATE_DIR_ENV = "PYVFMAC_STATE_DIR"
DB_NAME = "state.db"
SCHEMA_VERSION = 1
BUSY_TIMEOUT = 30.0

ATTACH_PHASES: tuple[str, ...] = ("saved", "mac-set", "unbound", "bound", "attached")
PHASES: tuple[str, ...] = ATTACH_PHASES + ("detaching",)

_NETDEV_KEY = re.compile(r"(?P<pf>[^\s/]+)/vf(?P<vf>[0-9]{1,5})")
_NETWORK_NAME_MAX = 255


def default_state_dir() -> Path:
    """``$PYVFMAC_STATE_DIR`` if set and non-empty (it must be absolute), else ``/var/lib/pyvfmac``."""
    value = os.environ.get(STATE_DIR_ENV, "")
    if not value:
        return DEFAULT_STATE_DIR
    path = Path(value)
    if not path.is_absolute():
        raise InputError(f"{STATE_DIR_ENV}={value!r}: the state directory must be an absolute path")
    return path


# ----------------------------------------------------------------------------- VF keys


def vf_key(address: PciAddress | str | None = None, *, pf: str | None = None,
           vf: int | None = None) -> str:
    """The key of a VF: its canonical PCI address, or ``<pf>/vf<N>`` when it has none."""
    if address is not None:
        return str(address) if isinstance(address, PciAddress) else str(PciAddress.parse(address))
    if pf is None or vf is None:
        raise InputError("VF key: give a PCI address, or both the PF netdev and the VF index")
    return canonical_vf_key(f"{pf}/vf{vf}")


def canonical_vf_key(key: str) -> str:
    """Check a VF key and return its canonical spelling (lowercase full PCI address, or
    ``<pf-netdev>/vf<N>`` without leading zeros); :class:`InputError` naming the value."""
    if not isinstance(key, str):
        raise InputError(f"VF key {key!r}: not a string")
    if "/" not in key:
        try:
            return str(PciAddress.parse(key))
        except InputError:
            pass
    else:
        m = _NETDEV_KEY.fullmatch(key)
        if m is not None:
            try:
                pf = validate_netdev_name(m["pf"], what="PF netdev name in VF key")
            except InputError as exc:
                raise InputError(f"VF key {key!r}: {exc}") from None
            return f"{pf}/vf{int(m['vf'])}"
    raise InputError(
        f"VF key {key!r}: expected a PCI address (0000:06:10.0) or <pf-netdev>/vf<N> (eth3/vf2)"
    )


# ----------------------------------------------------------------------------- records


def _check_int(what: str, value: object, low: int, high: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise InputError(f"{what} {value!r}: must be an integer in {low}..{high}")


def _check_opt_bool(what: str, value: object) -> None:
    if value is not None and not isinstance(value, bool):
        raise InputError(f"{what} {value!r}: must be True, False or None")


def _check_driver(value: object) -> None:
    if value is None:
        return
    if (not isinstance(value, str) or not value or len(value) > 255
            or any(c == "/" or c.isspace() or not c.isprintable() for c in value)):
        raise InputError(f"original driver {value!r}: not a driver name")


def _check_text(what: str, value: object, limit: int = 4096) -> str:
    if not isinstance(value, str) or not value or len(value) > limit or "\x00" in value:
        raise InputError(f"{what} {value!r}: must be a non-empty string of at most {limit} chars")
    return value


@dataclass(frozen=True, slots=True)
class Original:
    """Everything needed to put a VF back exactly as it was before pyvfmac touched it.

    ``vf_key`` is canonicalised (see :func:`canonical_vf_key`); ``mac`` (the admin MAC given
    through the PF, often all-zero) and ``netdev_mac`` are canonicalised MACs. ``netdev`` and
    ``netdev_mac`` describe the VF's own netdev when a host driver held it; ``driver`` is the driver
    bound at save time (None: unbound).
    """

    vf_key: str
    pf: str
    vf: int
    mac: str
    vlan: int = 0
    qos: int = 0
    vlan_proto: str = "802.1Q"
    spoofchk: bool | None = None
    trust: bool | None = None
    link_state: str | None = None
    min_tx_rate: int = 0
    max_tx_rate: int = 0
    netdev: str | None = None
    netdev_mac: str | None = None
    driver: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "vf_key", canonical_vf_key(self.vf_key))
        validate_netdev_name(self.pf, what=f"{self.vf_key}: original PF netdev name")
        where = f"{self.vf_key}: original"
        _check_int(f"{where} VF index", self.vf, 0, 65535)
        object.__setattr__(self, "mac", parse_mac(self.mac, allow_zero=True, what=f"{where} MAC"))
        _check_int(f"{where} VLAN", self.vlan, 0, 4095)
        _check_int(f"{where} qos", self.qos, 0, 7)
        if self.vlan_proto not in VLAN_PROTOS:
            raise InputError(f"{where} VLAN protocol {self.vlan_proto!r}: not one of "
                             f"{', '.join(VLAN_PROTOS)}")
        _check_opt_bool(f"{where} spoofchk", self.spoofchk)
        _check_opt_bool(f"{where} trust", self.trust)
        if self.link_state is not None and self.link_state not in LINK_STATES:
            raise InputError(f"{where} link state {self.link_state!r}: not one of "
                             f"{', '.join(LINK_STATES)}")
        _check_int(f"{where} min_tx_rate", self.min_tx_rate, 0, 0xFFFFFFFF)
        _check_int(f"{where} max_tx_rate", self.max_tx_rate, 0, 0xFFFFFFFF)
        if self.netdev is not None:
            validate_netdev_name(self.netdev, what=f"{where} VF netdev name")
        if self.netdev_mac is not None:
            object.__setattr__(self, "netdev_mac", parse_mac(
                self.netdev_mac, allow_zero=True, what=f"{where} VF netdev MAC"))
        _check_driver(self.driver)


def _worker_alive(pid: int, pid_start: int | None) -> bool:
    return process_alive(pid, pid_start)


@dataclass(frozen=True, slots=True)
class Attachment:
    """One VF pyvfmac holds: its saved original and the progress of its attach / detach.

    ``owner`` identifies the guest device holding it (e.g. network + MAC, or file + index);
    ``mac`` is the fixed MAC given; ``phase`` one of :data:`PHASES`; ``pid`` / ``pid_start`` the
    process working on it (the last one to change the phase) and its start time in clock ticks
    since boot (None when unknown).
    """

    vf_key: str
    original: Original
    owner: str
    mac: str
    managed: bool
    network: str | None
    phase: str
    pid: int
    created: float
    updated: float
    pid_start: int | None = None

    @property
    def complete(self) -> bool:
        return self.phase == "attached"

    def worker_alive(self) -> bool:
        """Whether the process that last worked on this record still runs (pid reuse checked)."""
        return _worker_alive(self.pid, self.pid_start)


@dataclass(frozen=True, slots=True)
class Allocation:
    """A VF of a network's pool given to a guest device (``owner``, fixed ``mac``)."""

    network: str
    vf_key: str
    owner: str
    mac: str
    pid: int
    created: float
    pid_start: int | None = None

    def worker_alive(self) -> bool:
        """Whether the allocating process still runs (pid reuse checked)."""
        return _worker_alive(self.pid, self.pid_start)


@dataclass(frozen=True, slots=True)
class NetworkRecord:
    """A defined network. ``pool`` holds the resolved VF keys, in pool order, while started."""

    name: str
    xml: str
    started: bool
    pool: tuple[str, ...]


# ----------------------------------------------------------------------------- processes


def process_start_time(pid: int) -> int | None:
    """Start time of ``pid`` in clock ticks since boot (``/proc/PID/stat`` field 22); None if the
    process does not exist (or is a zombie)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            text = f.read().decode("ascii", "replace")
    except OSError:
        return None
    fields = text[text.rindex(")") + 2:].split()
    if len(fields) < 20 or fields[0] in ("Z", "X"):
        return None
    return int(fields[19])


def process_alive(pid: int, start: int | None = None) -> bool:
    """True if ``pid`` runs and, when ``start`` is given, started at that time (not a reused pid)."""
    if pid <= 0:
        return False
    now = process_start_time(pid)
    if now is None:
        return False
    return start is None or now == start


# ----------------------------------------------------------------------------- schema

_SCHEMA = """
CREATE TABLE networks (
    name     TEXT PRIMARY KEY,
    xml      TEXT NOT NULL,
    started  INTEGER NOT NULL DEFAULT 0 CHECK (started IN (0, 1)),
    created  REAL NOT NULL,
    updated  REAL NOT NULL
);
CREATE TABLE pool (
    network  TEXT NOT NULL REFERENCES networks(name) ON DELETE CASCADE,
    position INTEGER NOT NULL,
    vf_key   TEXT NOT NULL,
    PRIMARY KEY (network, position),
    UNIQUE (network, vf_key)
);
CREATE TABLE allocations (
    vf_key    TEXT PRIMARY KEY,
    network   TEXT NOT NULL REFERENCES networks(name),
    owner     TEXT NOT NULL,
    mac       TEXT NOT NULL,
    pid       INTEGER NOT NULL,
    pid_start INTEGER,
    created   REAL NOT NULL,
    UNIQUE (vf_key, network),
    UNIQUE (network, mac)
);
CREATE TABLE attachments (
    vf_key        TEXT PRIMARY KEY,
    pf            TEXT NOT NULL,
    vf            INTEGER NOT NULL,
    o_mac         TEXT NOT NULL,
    o_vlan        INTEGER NOT NULL,
    o_qos         INTEGER NOT NULL,
    o_vlan_proto  TEXT NOT NULL,
    o_spoofchk    INTEGER,
    o_trust       INTEGER,
    o_link_state  TEXT,
    o_min_tx_rate INTEGER NOT NULL,
    o_max_tx_rate INTEGER NOT NULL,
    o_netdev      TEXT,
    o_netdev_mac  TEXT,
    o_driver      TEXT,
    owner         TEXT NOT NULL,
    mac           TEXT NOT NULL,
    managed       INTEGER NOT NULL,
    network       TEXT,
    phase         TEXT NOT NULL,
    pid           INTEGER NOT NULL,
    pid_start     INTEGER,
    created       REAL NOT NULL,
    updated       REAL NOT NULL,
    FOREIGN KEY (vf_key, network) REFERENCES allocations(vf_key, network)
);
CREATE INDEX attachments_owner ON attachments(owner);
CREATE INDEX attachments_mac ON attachments(mac);
"""

_ATT_COLUMNS = (
    "vf_key, pf, vf, o_mac, o_vlan, o_qos, o_vlan_proto, o_spoofchk, o_trust, o_link_state, "
    "o_min_tx_rate, o_max_tx_rate, o_netdev, o_netdev_mac, o_driver, owner, mac, managed, network, "
    "phase, pid, pid_start, created, updated"
)
_ALLOC_COLUMNS = "network, vf_key, owner, mac, pid, pid_start, created"


def _opt_bool(value: bool | None) -> int | None:
    return None if value is None else int(value)


def _to_opt_bool(value: Any) -> bool | None:
    return None if value is None else bool(value)


def _check_network_name(name: object) -> str:
    if (not isinstance(name, str) or not name or len(name) > _NETWORK_NAME_MAX or "/" in name
            or name != name.strip() or not name.isprintable()):
        raise InputError(f"network name {name!r}: must be 1 to {_NETWORK_NAME_MAX} printable "
                         "characters, no '/', no leading or trailing blanks")
    return name


def _check_phase(phase: object) -> str:
    if phase not in PHASES:
        raise InputError(f"attach phase {phase!r}: not one of {', '.join(PHASES)}")
    assert isinstance(phase, str)
    return phase


# ----------------------------------------------------------------------------- the store


class _Busy(StateError):
    """The database stayed locked by another process (a :class:`StateError`)."""



class Store:
    """The state database. A context manager; not shared between threads or across ``fork``.

    ``fault_hook`` (tests only) is called with ``"<operation>:before-commit"`` inside each write
    transaction just before COMMIT, and ``"<operation>:after-commit"`` right after it.
    """

    def __init__(self, state_dir: Path | str | None = None, *,
                 busy_timeout: float = BUSY_TIMEOUT) -> None:
        self.state_dir = Path(state_dir).absolute() if state_dir is not None \
            else default_state_dir()
        self.path = self.state_dir / DB_NAME
        self.busy_timeout = busy_timeout
        self.fault_hook: Callable[[str], None] | None = None
        self._conn: sqlite3.Connection | None = None
        _prepare_dir(self.state_dir)
        _prepare_file(self.path)
        try:
            self._conn = sqlite3.connect(str(self.path), timeout=busy_timeout,
                                         isolation_level=None)
        except sqlite3.Error as exc:
            raise self._error("open", exc) from None
        try:
            self._open_retrying()
        except BaseException:
            self.close()
            raise

    # -- plumbing ---------------------------------------------------------------------------

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the database (idempotent)."""
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

    def __repr__(self) -> str:
        return f"Store({str(self.state_dir)!r})"

    def _error(self, op: str, exc: sqlite3.Error) -> StateError:
        text = str(exc)
        if isinstance(exc, sqlite3.OperationalError) and ("locked" in text or "busy" in text):
            return _Busy(f"state database {self.path}: {op}: {text} (busy timeout "
                         f"{self.busy_timeout:g} s: another process holds the write lock)")
        elif isinstance(exc, sqlite3.DatabaseError) and (
                "not a database" in text or "malformed" in text):
            text = f"corrupted or not a pyvfmac state database ({text})"
        return StateError(f"state database {self.path}: {op}: {text}")

    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            raise StateError(f"state database {self.path}: the store is closed")
        return self._conn

    def _fire(self, point: str) -> None:
        if self.fault_hook is not None:
            self.fault_hook(point)

    @contextmanager
    def _write(self, op: str) -> Iterator[sqlite3.Connection]:
        """One ``BEGIN IMMEDIATE`` transaction; rolled back on any exception."""
        conn = self._db()
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise self._error(op, exc) from None
        try:
            yield conn
            self._fire(f"{op}:before-commit")
            conn.execute("COMMIT")
        except BaseException as exc:
            if conn.in_transaction:
                try:
                    conn.execute("ROLLBACK")
                except sqlite3.Error:
                    pass
            if isinstance(exc, sqlite3.Error):
                raise self._error(op, exc) from None
            raise
        self._fire(f"{op}:after-commit")

    @contextmanager
    def _read(self, op: str) -> Iterator[sqlite3.Connection]:
        """A read transaction: one consistent snapshot for several SELECTs."""
        conn = self._db()
        try:
            conn.execute("BEGIN")
            try:
                yield conn
            finally:
                if conn.in_transaction:
                    conn.execute("COMMIT")
        except sqlite3.Error as exc:
            raise self._error(op, exc) from None

    def _open_retrying(self) -> None:
        """Configure and create the schema. Switching a new file to WAL and the first reads of a
        WAL file can return SQLITE_BUSY at once, without SQLite's busy handler, while other
        processes do the same: retry those until the busy timeout."""
        deadline = time.monotonic() + self.busy_timeout
        pause = 0.002
        while True:
            try:
                self._configure()
                self._migrate()
                return
            except _Busy:
                if time.monotonic() + pause > deadline:
                    raise
                time.sleep(pause)
                pause = min(pause * 2, 0.1)

    def _configure(self) -> None:
        conn = self._db()
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout * 1000)}")
            conn.execute("PRAGMA foreign_keys = ON")
            mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
            if mode != "wal":
                mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
                if mode != "wal":
                    raise StateError(f"state database {self.path}: cannot use WAL (got {mode})")
            conn.execute("PRAGMA synchronous = FULL")
        except sqlite3.Error as exc:
            raise self._error("open", exc) from None

    def _version(self, conn: sqlite3.Connection) -> int:
        return int(conn.execute("PRAGMA user_version").fetchone()[0])

    def _migrate(self) -> None:
        with self._read("open") as conn:
            version = self._version(conn)
        if version == SCHEMA_VERSION:
            return
        if version > SCHEMA_VERSION:
            raise StateError(
                f"state database {self.path}: schema version {version} is newer than this "
                f"pyvfmac supports ({SCHEMA_VERSION}); use a newer pyvfmac"
            )
        with self._write("create schema") as conn:
            version = self._version(conn)  # another process may have won the race
            if version == SCHEMA_VERSION:
                return
            tables = conn.execute("SELECT count(*) FROM sqlite_schema").fetchone()[0]
            if version != 0 or tables:
                raise StateError(f"state database {self.path}: schema version {version} with "
                                 f"{tables} objects: not a pyvfmac state database")
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    def check(self) -> None:
        """Full integrity check of the database file; :class:`StateError` if damaged."""
        with self._read("integrity check") as conn:
            rows = [r[0] for r in conn.execute("PRAGMA integrity_check")]
            fk = conn.execute("PRAGMA foreign_key_check").fetchall()
        if rows != ["ok"]:
            raise StateError(f"state database {self.path}: damaged: {'; '.join(rows[:5])}")
        if fk:
            raise StateError(f"state database {self.path}: {len(fk)} broken references")

    # -- rows -> records --------------------------------------------------------------------

    def _attachment(self, row: Sequence[Any]) -> Attachment:
        try:
            original = Original(
                vf_key=row[0], pf=row[1], vf=row[2], mac=row[3], vlan=row[4], qos=row[5],
                vlan_proto=row[6], spoofchk=_to_opt_bool(row[7]), trust=_to_opt_bool(row[8]),
                link_state=row[9], min_tx_rate=row[10], max_tx_rate=row[11], netdev=row[12],
                netdev_mac=row[13], driver=row[14],
            )
        except VfmacError as exc:
            raise StateError(f"state database {self.path}: bad saved original: {exc}") from None
        return Attachment(
            vf_key=row[0], original=original, owner=row[15], mac=row[16], managed=bool(row[17]),
            network=row[18], phase=row[19], pid=row[20], pid_start=row[21], created=row[22],
            updated=row[23],
        )

    @staticmethod
    def _allocation(row: Sequence[Any]) -> Allocation:
        return Allocation(network=row[0], vf_key=row[1], owner=row[2], mac=row[3], pid=row[4],
                          pid_start=row[5], created=row[6])

    @staticmethod
    def _get_att(conn: sqlite3.Connection, key: str) -> Sequence[Any] | None:
        row: Sequence[Any] | None = conn.execute(
            f"SELECT {_ATT_COLUMNS} FROM attachments WHERE vf_key = ?", (key,)).fetchone()
        return row

    # -- attachments ------------------------------------------------------------------------

    def save_original(self, original: Original, *, owner: str, mac: str, managed: bool,
                      network: str | None = None) -> Attachment:
        """Record a VF's original configuration before anything on the host changes.

        A new record starts in phase ``saved``. If the VF already has a record (double attach),
        the FIRST original is kept and the existing record is returned unchanged; compare its
        ``owner`` / ``mac`` to decide. With ``network``, the VF must be allocated in that network.
        """
        if not isinstance(original, Original):
            raise InputError(f"saved original {original!r}: not an Original")
        owner = _check_text("owner", owner)
        mac = parse_mac(mac, what=f"{original.vf_key}: fixed MAC")
        if network is not None:
            _check_network_name(network)
        o = original
        now = time.time()
        pid = os.getpid()
        with self._write("save original") as conn:
            row = self._get_att(conn, o.vf_key)
            if row is not None:
                return self._attachment(row)
            if network is not None and conn.execute(
                    "SELECT 1 FROM allocations WHERE vf_key = ? AND network = ?",
                    (o.vf_key, network)).fetchone() is None:
                raise StateError(f"{o.vf_key}: not allocated in network {network}; "
                                 "allocate it before saving its original")
            values = (
                o.vf_key, o.pf, o.vf, o.mac, o.vlan, o.qos, o.vlan_proto, _opt_bool(o.spoofchk),
                _opt_bool(o.trust), o.link_state, o.min_tx_rate, o.max_tx_rate, o.netdev,
                o.netdev_mac, o.driver, owner, mac, int(bool(managed)), network, "saved", pid,
                process_start_time(pid), now, now,
            )
            conn.execute(f"INSERT INTO attachments ({_ATT_COLUMNS}) VALUES "
                         f"({', '.join('?' * len(values))})", values)
            row = self._get_att(conn, o.vf_key)
            assert row is not None
            return self._attachment(row)

    def set_phase(self, key: str, phase: str, *,
                  expected: str | Collection[str] | None = None) -> Attachment:
        """Move a record to ``phase`` and make this process its worker. With ``expected``, the
        record must currently be in that phase (or one of them), else :class:`StateError`."""
        key = canonical_vf_key(key)
        phase = _check_phase(phase)
        allowed = None if expected is None else (
            {expected} if isinstance(expected, str) else set(expected))
        if allowed is not None:
            for p in allowed:
                _check_phase(p)
        pid = os.getpid()
        with self._write("set phase") as conn:
            row = self._get_att(conn, key)
            if row is None:
                raise StateError(f"{key}: no saved original (not attached by pyvfmac)")
            if allowed is not None and row[19] not in allowed:
                raise StateError(f"{key}: phase is {row[19]!r}, expected "
                                 f"{' or '.join(sorted(map(repr, allowed)))}")
            conn.execute("UPDATE attachments SET phase = ?, pid = ?, pid_start = ?, updated = ? "
                         "WHERE vf_key = ?", (phase, pid, process_start_time(pid), time.time(),
                                              key))
            row = self._get_att(conn, key)
            assert row is not None
            return self._attachment(row)

    def get(self, key: str) -> Attachment | None:
        """The record of one VF, or None."""
        key = canonical_vf_key(key)
        with self._read("get") as conn:
            row = self._get_att(conn, key)
        return None if row is None else self._attachment(row)

    def all(self) -> list[Attachment]:
        """Every record, by VF key."""
        with self._read("list") as conn:
            rows = conn.execute(f"SELECT {_ATT_COLUMNS} FROM attachments ORDER BY vf_key")
            return [self._attachment(r) for r in rows]

    def incomplete(self) -> list[Attachment]:
        """Records whose attach did not complete, or that are being detached (phase not
        ``attached``). Check :meth:`Attachment.worker_alive` before recovering one."""
        with self._read("list incomplete") as conn:
            rows = conn.execute(f"SELECT {_ATT_COLUMNS} FROM attachments "
                                "WHERE phase != 'attached' ORDER BY vf_key")
            return [self._attachment(r) for r in rows]

    def find(self, *, owner: str | None = None, mac: str | None = None,
             network: str | None = None) -> list[Attachment]:
        """Records matching every criterion given (at least one)."""
        clauses: list[str] = []
        args: list[object] = []
        if owner is not None:
            clauses.append("owner = ?")
            args.append(_check_text("owner", owner))
        if mac is not None:
            clauses.append("mac = ?")
            args.append(parse_mac(mac))
        if network is not None:
            clauses.append("network = ?")
            args.append(_check_network_name(network))
        if not clauses:
            raise InputError("find: give owner, mac or network")
        with self._read("find") as conn:
            rows = conn.execute(f"SELECT {_ATT_COLUMNS} FROM attachments WHERE "
                                f"{' AND '.join(clauses)} ORDER BY vf_key", args)
            return [self._attachment(r) for r in rows]

    def delete(self, key: str, *, release: bool = True) -> Attachment:
        """Drop a record, only after a verified restore; returns what was deleted. A missing
        record is a :class:`StateError`. When the VF came from a network and ``release`` is true,
        its allocation is released in the same transaction."""
        key = canonical_vf_key(key)
        with self._write("delete") as conn:
            row = self._get_att(conn, key)
            if row is None:
                raise StateError(f"{key}: no saved original to delete (not attached by pyvfmac)")
            att = self._attachment(row)
            conn.execute("DELETE FROM attachments WHERE vf_key = ?", (key,))
            if release and att.network is not None:
                conn.execute("DELETE FROM allocations WHERE vf_key = ? AND network = ?",
                             (key, att.network))
            return att

    # -- networks ---------------------------------------------------------------------------

    def _network_row(self, conn: sqlite3.Connection, name: str) -> tuple[str, str, int] | None:
        row: tuple[str, str, int] | None = conn.execute(
            "SELECT name, xml, started FROM networks WHERE name = ?", (name,)).fetchone()
        return row

    def _require_network(self, conn: sqlite3.Connection, name: str) -> tuple[str, str, int]:
        row = self._network_row(conn, name)
        if row is None:
            raise PoolError(f"network {name}: not defined")
        return row

    def _record(self, conn: sqlite3.Connection, row: tuple[str, str, int]) -> NetworkRecord:
        pool = tuple(r[0] for r in conn.execute(
            "SELECT vf_key FROM pool WHERE network = ? ORDER BY position", (row[0],)))
        return NetworkRecord(name=row[0], xml=row[1], started=bool(row[2]), pool=pool)

    def define_network(self, name: str, xml_text: str) -> NetworkRecord:
        """Store a network definition (the caller has validated the XML). Replacing a definition
        is allowed only while the network is not started."""
        name = _check_network_name(name)
        xml_text = _check_text(f"network {name}: XML", xml_text, limit=1 << 20)
        now = time.time()
        with self._write("define network") as conn:
            row = self._network_row(conn, name)
            if row is None:
                conn.execute("INSERT INTO networks (name, xml, started, created, updated) "
                             "VALUES (?, ?, 0, ?, ?)", (name, xml_text, now, now))
            elif row[2]:
                raise PoolError(f"network {name}: is started; stop it before redefining it")
            else:
                conn.execute("UPDATE networks SET xml = ?, updated = ? WHERE name = ?",
                             (xml_text, now, name))
            return self._record(conn, self._require_network(conn, name))

    def undefine_network(self, name: str) -> None:
        """Remove a definition; refused while started or while allocations remain."""
        name = _check_network_name(name)
        with self._write("undefine network") as conn:
            row = self._require_network(conn, name)
            if row[2]:
                raise PoolError(f"network {name}: is started; stop it before undefining it")
            held = conn.execute("SELECT count(*) FROM allocations WHERE network = ?",
                                (name,)).fetchone()[0]
            if held:
                raise PoolError(f"network {name}: {held} device(s) still allocated; release them "
                                "first")
            conn.execute("DELETE FROM networks WHERE name = ?", (name,))

    def networks(self) -> list[NetworkRecord]:
        """Every defined network, by name."""
        with self._read("list networks") as conn:
            rows = conn.execute("SELECT name, xml, started FROM networks ORDER BY name").fetchall()
            return [self._record(conn, r) for r in rows]

    def get_network(self, name: str) -> NetworkRecord | None:
        """One network, or None."""
        name = _check_network_name(name)
        with self._read("get network") as conn:
            row = self._network_row(conn, name)
            return None if row is None else self._record(conn, row)

    def start_network(self, name: str, resolved_pool: Sequence[str]) -> NetworkRecord:
        """Mark a network started with its pool resolved to VF keys, in pool order."""
        name = _check_network_name(name)
        if isinstance(resolved_pool, str):
            raise InputError(f"network {name}: the pool must be a sequence of VF keys, not a str")
        pool = [canonical_vf_key(k) for k in resolved_pool]
        seen: set[str] = set()
        for key in pool:
            if key in seen:
                raise InputError(f"network {name}: VF {key} appears twice in the pool")
            seen.add(key)
        with self._write("start network") as conn:
            row = self._require_network(conn, name)
            if row[2]:
                raise PoolError(f"network {name}: already started")
            conn.executemany("INSERT INTO pool (network, position, vf_key) VALUES (?, ?, ?)",
                             [(name, i, key) for i, key in enumerate(pool)])
            conn.execute("UPDATE networks SET started = 1, updated = ? WHERE name = ?",
                         (time.time(), name))
            return self._record(conn, self._require_network(conn, name))

    def stop_network(self, name: str, force: bool = False) -> list[Allocation]:
        """Mark a network stopped. Refused while it has allocations unless ``force``; forced, the
        allocations stay recorded and are returned so the caller can restore and release them."""
        name = _check_network_name(name)
        with self._write("stop network") as conn:
            row = self._require_network(conn, name)
            if not row[2]:
                raise PoolError(f"network {name}: not started")
            held = [self._allocation(r) for r in conn.execute(
                f"SELECT {_ALLOC_COLUMNS} FROM allocations WHERE network = ? ORDER BY vf_key",
                (name,))]
            if held and not force:
                raise PoolError(f"network {name}: {len(held)} device(s) in use "
                                f"({', '.join(a.vf_key for a in held)}); detach them or force")
            conn.execute("DELETE FROM pool WHERE network = ?", (name,))
            conn.execute("UPDATE networks SET started = 0, updated = ? WHERE name = ?",
                         (time.time(), name))
            return held

    # -- allocations ------------------------------------------------------------------------

    def allocate(self, network: str, owner: str, mac: str, eligible: Sequence[str]) -> str:
        """Give the first VF of ``eligible`` that is free to ``owner`` (with fixed ``mac``), in
        one ``BEGIN IMMEDIATE`` transaction, and return its key.

        ``eligible`` is the pool in order, already without devices held outside pyvfmac; every
        entry must be in the network's pool. A VF is free when it has no allocation (in any
        network) and no attachment record. None free: :class:`PoolError`
        ``network NAME has no free device``. A MAC already allocated in this network is refused.
        """
        network = _check_network_name(network)
        owner = _check_text("owner", owner)
        mac = parse_mac(mac, what=f"network {network}: fixed MAC")
        if isinstance(eligible, str):
            raise InputError(f"network {network}: eligible must be a sequence of VF keys")
        wanted = [canonical_vf_key(k) for k in eligible]
        pid = os.getpid()
        start = process_start_time(pid)
        with self._write("allocate") as conn:
            row = self._require_network(conn, network)
            if not row[2]:
                raise PoolError(f"network {network}: not started")
            pool = {r[0] for r in conn.execute("SELECT vf_key FROM pool WHERE network = ?",
                                               (network,))}
            strangers = [k for k in wanted if k not in pool]
            if strangers:
                raise PoolError(f"network {network}: {', '.join(strangers)} not in its pool")
            dup = conn.execute("SELECT vf_key FROM allocations WHERE network = ? AND mac = ?",
                               (network, mac)).fetchone()
            if dup is not None:
                raise PoolError(f"network {network}: MAC {mac} already holds {dup[0]}")
            busy = {r[0] for r in conn.execute(
                "SELECT vf_key FROM allocations UNION SELECT vf_key FROM attachments")}
            for key in wanted:
                if key not in busy:
                    conn.execute(f"INSERT INTO allocations ({_ALLOC_COLUMNS}) "
                                 "VALUES (?, ?, ?, ?, ?, ?, ?)",
                                 (network, key, owner, mac, pid, start, time.time()))
                    return key
            raise PoolError(f"network {network} has no free device")

    def release(self, network: str, key: str) -> Allocation:
        """Give a VF back to its network's pool. Refused while the VF still has an attachment
        record (restore it and :meth:`delete` the record, which releases it)."""
        network = _check_network_name(network)
        key = canonical_vf_key(key)
        with self._write("release") as conn:
            row = conn.execute(f"SELECT {_ALLOC_COLUMNS} FROM allocations WHERE network = ? "
                               "AND vf_key = ?", (network, key)).fetchone()
            if row is None:
                raise PoolError(f"network {network}: {key} is not allocated")
            if conn.execute("SELECT 1 FROM attachments WHERE vf_key = ? AND network = ?",
                            (key, network)).fetchone() is not None:
                raise StateError(f"{key}: still has a saved original (network {network}); "
                                 "restore the VF and delete its record, which releases it")
            conn.execute("DELETE FROM allocations WHERE vf_key = ?", (key,))
            return self._allocation(row)

    def allocations(self, network: str | None = None) -> list[Allocation]:
        """Allocations of one network (or of all), by network then VF key."""
        with self._read("list allocations") as conn:
            if network is None:
                rows = conn.execute(f"SELECT {_ALLOC_COLUMNS} FROM allocations "
                                    "ORDER BY network, vf_key")
            else:
                rows = conn.execute(f"SELECT {_ALLOC_COLUMNS} FROM allocations WHERE network = ? "
                                    "ORDER BY vf_key", (_check_network_name(network),))
            return [self._allocation(r) for r in rows]

    def find_allocation(self, network: str, mac: str) -> Allocation | None:
        """The allocation of a guest device identified by network and fixed MAC, or None."""
        network = _check_network_name(network)
        with self._read("find allocation") as conn:
            row = conn.execute(f"SELECT {_ALLOC_COLUMNS} FROM allocations WHERE network = ? "
                               "AND mac = ?", (network, parse_mac(mac))).fetchone()
        return None if row is None else self._allocation(row)

    def orphan_allocations(self) -> list[Allocation]:
        """Allocations with no attachment record whose allocating process is gone: an attach
        that died before saving the original (nothing on the host changed). Release them."""
        with self._read("list orphan allocations") as conn:
            rows = conn.execute(
                f"SELECT {', '.join('a.' + c for c in _ALLOC_COLUMNS.split(', '))} "
                "FROM allocations a LEFT JOIN attachments t ON t.vf_key = a.vf_key "
                "WHERE t.vf_key IS NULL ORDER BY a.network, a.vf_key").fetchall()
        return [a for a in map(self._allocation, rows) if not a.worker_alive()]


# ----------------------------------------------------------------------------- files


def _prepare_dir(path: Path) -> None:
    """Create the state directory 0700, or check an existing one (tighten if ours)."""
    try:
        if not path.parent.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.mkdir(path, 0o700)
        except FileExistsError:
            pass
        st = os.stat(path)
    except OSError as exc:
        raise StateError(f"state directory {path}: {exc.strerror or exc}") from None
    if not stat.S_ISDIR(st.st_mode):
        raise StateError(f"state directory {path}: exists and is not a directory")
    if st.st_uid != os.geteuid():
        raise StateError(f"state directory {path}: owned by uid {st.st_uid}, not by this user "
                         f"(uid {os.geteuid()}); refusing to use it")
    if stat.S_IMODE(st.st_mode) != 0o700:
        try:
            os.chmod(path, 0o700)
        except OSError as exc:
            raise StateError(f"state directory {path}: cannot set mode 0700: "
                             f"{exc.strerror}") from None


def _prepare_file(path: Path) -> None:
    """Create ``state.db`` 0600 without a window of wider access; tighten an existing one."""
    flags = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
    try:
        fd = os.open(path, flags, 0o600)
    except OSError as exc:
        raise StateError(f"state database {path}: {exc.strerror or exc}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise StateError(f"state database {path}: not a regular file")
        if st.st_uid != os.geteuid():
            raise StateError(f"state database {path}: owned by uid {st.st_uid}, not by this user "
                             f"(uid {os.geteuid()}); refusing to use it")
        if stat.S_IMODE(st.st_mode) != 0o600:
            os.fchmod(fd, 0o600)
    except OSError as exc:
        raise StateError(f"state database {path}: {exc.strerror or exc}") from None
    finally:
        os.close(fd)
