"""The state database file: where it is, who may read it, how it is opened, its schema and its
transactions. :class:`pyvfmac.store.Store` builds the records' queries on :class:`Database`.

One SQLite database, ``state.db``, in the state directory:

- :func:`default_state_dir`: ``$PYVFMAC_STATE_DIR`` when set (must be absolute), otherwise
  ``/var/lib/pyvfmac``; :class:`Database` also takes a directory argument, which wins over both.
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
  and ``PRAGMA user_version`` as the schema version: a database from a newer pyvfmac is refused,
  one from an older pyvfmac is brought up to date in one transaction (:data:`_MIGRATIONS`).
- Every mutation is one transaction, ``BEGIN IMMEDIATE`` (the write lock is taken before the first
  read, so a read-modify-write cannot interleave with another process). Every SQLite failure,
  including a damaged file, surfaces as a :class:`StateError` that names the database file, and
  says so when the state directory's file system has no free block left (SQLite itself may say
  only "disk I/O error").
"""

from __future__ import annotations

import os
import sqlite3
import stat
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from .errors import StateError
from .statepath import DB_NAME, DEFAULT_STATE_DIR, STATE_DIR_ENV, default_state_dir

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (mypy: always_true)
if TYPE_CHECKING:
    from typing import Self

__all__ = [
    "BUSY_TIMEOUT",
    "DB_NAME",
    "DEFAULT_STATE_DIR",
    "SCHEMA_VERSION",
    "STATE_DIR_ENV",
    "Database",
    "default_state_dir",
]

SCHEMA_VERSION = 3
BUSY_TIMEOUT = 30.0


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
    port_profile  TEXT,
    port_instance TEXT,
    port_known    INTEGER NOT NULL DEFAULT 1,
    FOREIGN KEY (vf_key, network) REFERENCES allocations(vf_key, network)
);
CREATE INDEX attachments_owner ON attachments(owner);
CREATE INDEX attachments_mac ON attachments(mac);
CREATE TABLE cni_links (
    vf_key   TEXT PRIMARY KEY,
    netns    TEXT NOT NULL,
    mtu      INTEGER,
    up       INTEGER,
    created  REAL NOT NULL
);
"""

_MIGRATIONS = {
    # 2: the 802.1Qbh port profile a record's VF may have associated (restore disassociates
    # that, and only that). pyvfmac before schema 2 kept the profile in the document only: its
    # records are marked port_known = 0, and detaching their document still disassociates the
    # document's profile.
    1: """
ALTER TABLE attachments ADD COLUMN port_profile TEXT;
ALTER TABLE attachments ADD COLUMN port_instance TEXT;
ALTER TABLE attachments ADD COLUMN port_known INTEGER NOT NULL DEFAULT 0;
""",
    # 3: where vfmac-cni put a pod's VF netdev (namespace, MTU, up flag), in the one schema. Up
    # to schema 2 vfmac-cni created this table itself, with these columns, on its first call.
    2: """
CREATE TABLE IF NOT EXISTS cni_links (
    vf_key   TEXT PRIMARY KEY,
    netns    TEXT NOT NULL,
    mtu      INTEGER,
    up       INTEGER,
    created  REAL NOT NULL
);
""",
}
"""Schema version -> the statements that bring it to the next version."""


# ----------------------------------------------------------------------------- the database


class _Busy(StateError):
    """The database stayed locked by another process (a :class:`StateError`)."""


class Database:
    """The state database file, open. A context manager; not shared between threads or across
    ``fork``.

    ``fault_hook`` (tests only) is called with ``"<operation>:before-commit"`` inside each write
    transaction just before COMMIT, and ``"<operation>:after-commit"`` right after it.
    """

    def __init__(self, state_dir: str | os.PathLike[str] | None = None, *,
                 busy_timeout: float = BUSY_TIMEOUT) -> None:
        # paths as str (os.path): every CNI call opens the store, and pathlib costs an import
        self.state_dir = (os.path.abspath(state_dir) if state_dir is not None
                          else default_state_dir())
        self.path = os.path.join(self.state_dir, DB_NAME)
        self.busy_timeout = busy_timeout
        self.fault_hook: Callable[[str], None] | None = None
        self._conn: sqlite3.Connection | None = None
        prepare_dir(self.state_dir)
        prepare_file(self.path)
        try:
            self._conn = sqlite3.connect(self.path, timeout=busy_timeout,
                                         isolation_level=None)
        except sqlite3.Error as exc:
            raise self._error("open", exc) from None
        try:
            self._open_retrying()
        except BaseException:
            self.close()
            raise

    # -- plumbing ---------------------------------------------------------------------------

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the database (idempotent)."""
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.state_dir)!r})"

    def _error(self, op: str, exc: sqlite3.Error) -> StateError:
        text = str(exc)
        if isinstance(exc, sqlite3.OperationalError) and ("locked" in text or "busy" in text):
            return _Busy(f"state database {self.path}: {op}: {text} (busy timeout "
                         f"{self.busy_timeout:g} s: another process holds the write lock)")
        elif isinstance(exc, sqlite3.DatabaseError) and (
                "not a database" in text or "malformed" in text):
            text = f"corrupted or not a pyvfmac state database ({text})"
        # on a full disk SQLite may say only "disk I/O error" (it could not create state.db-wal
        # and -shm beside the file): say what is wrong
        try:
            fs = os.statvfs(self.state_dir)
            full = (fs.f_bfree if os.geteuid() == 0 else fs.f_bavail) == 0
        except OSError:
            full = False
        if full:
            text = f"no space left on device (the file system of {self.state_dir} is full): {text}"
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

    def _newer(self, version: int) -> StateError:
        return StateError(f"state database {self.path}: schema version {version} is newer than "
                          f"this pyvfmac supports ({SCHEMA_VERSION}); use a newer pyvfmac")

    def _migrate(self) -> None:
        with self._read("open") as conn:
            version = self._version(conn)
        if version == SCHEMA_VERSION:
            return
        if version > SCHEMA_VERSION:
            raise self._newer(version)
        with self._write("create schema") as conn:
            version = self._version(conn)  # another process may have won the race
            if version == SCHEMA_VERSION:
                return
            if version > SCHEMA_VERSION:  # ... a newer pyvfmac, even
                raise self._newer(version)
            tables = conn.execute("SELECT count(*) FROM sqlite_schema").fetchone()[0]
            if version == 0 and not tables:
                script, version = _SCHEMA, SCHEMA_VERSION
            elif version in _MIGRATIONS:
                script = ""
                while version < SCHEMA_VERSION:
                    script += _MIGRATIONS[version]
                    version += 1
            else:
                raise StateError(f"state database {self.path}: schema version {version} with "
                                 f"{tables} objects: not a pyvfmac state database")
            for statement in script.split(";"):
                if statement.strip():
                    conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {version}")

    def check(self) -> None:
        """Full integrity check of the database file; :class:`StateError` if damaged."""
        with self._read("integrity check") as conn:
            rows = [r[0] for r in conn.execute("PRAGMA integrity_check")]
            fk = conn.execute("PRAGMA foreign_key_check").fetchall()
        if rows != ["ok"]:
            raise StateError(f"state database {self.path}: damaged: {'; '.join(rows[:5])}")
        if fk:
            raise StateError(f"state database {self.path}: {len(fk)} broken references")


# ----------------------------------------------------------------------------- files


def _refuse_foreign(what: str, path: str, st: os.stat_result) -> None:
    """Another user's directory or file could have our records swapped under us."""
    if st.st_uid != os.geteuid():
        raise StateError(f"{what} {path}: owned by uid {st.st_uid}, not by this user "
                         f"(uid {os.geteuid()}); refusing to use it")


def prepare_dir(path: str) -> None:
    """Create the state directory 0700, or check an existing one (tighten if ours)."""
    try:
        parent = os.path.dirname(path)
        if not os.path.exists(parent):
            os.makedirs(parent, exist_ok=True)
        try:
            os.mkdir(path, 0o700)
        except FileExistsError:
            pass
        st = os.stat(path)
    except OSError as exc:
        raise StateError(f"state directory {path}: {exc.strerror or exc}") from None
    if not stat.S_ISDIR(st.st_mode):
        raise StateError(f"state directory {path}: exists and is not a directory")
    _refuse_foreign("state directory", path, st)
    if stat.S_IMODE(st.st_mode) != 0o700:
        try:
            os.chmod(path, 0o700)
        except OSError as exc:
            raise StateError(f"state directory {path}: cannot set mode 0700: "
                             f"{exc.strerror}") from None


def prepare_file(path: str) -> None:
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
        _refuse_foreign("state database", path, st)
        if stat.S_IMODE(st.st_mode) != 0o600:
            os.fchmod(fd, 0o600)
    except OSError as exc:
        raise StateError(f"state database {path}: {exc.strerror or exc}") from None
    finally:
        os.close(fd)

