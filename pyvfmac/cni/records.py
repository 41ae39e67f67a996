"""What vfmac-cni keeps beside a VF's saved original: where it put the VF and what of the VF
netdev's own state the original does not hold (MTU, up).

The claim and the original are the state store's attachment record (owner
``cni:<container>:<ifname>:<network>``, see :func:`pyvfmac.cni.config.owner`), so `vfmac
attach`, pools and pods exclude each other on one table. This module keeps one row per pod VF in a
companion table ``cni_links`` of the same database (``state.db``), written right after the
original and before anything on the host changes; it is dropped after the attachment record. A
row without a record is stale and is replaced or ignored."""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass

from ..errors import StateError

_SCHEMA = """CREATE TABLE IF NOT EXISTS cni_links (
    vf_key   TEXT PRIMARY KEY,
    netns    TEXT NOT NULL,
    mtu      INTEGER,
    up       INTEGER,
    created  REAL NOT NULL
)"""


@dataclass(frozen=True, slots=True)
class PodLink:
    """A pod VF: its namespace path; the VF netdev's MTU and up flag before (None: no netdev)."""

    vf_key: str
    netns: str
    mtu: int | None
    up: bool | None


class PodLinks:
    """The ``cni_links`` table of the state database at ``path``."""

    def __init__(self, path: str, busy_timeout: float = 30.0) -> None:
        self.path = path
        try:
            self._conn = sqlite3.connect(path, timeout=busy_timeout, isolation_level=None)
            self._conn.execute("PRAGMA synchronous = FULL")
            self._conn.execute(_SCHEMA)
        except sqlite3.Error as exc:
            raise StateError(f"state database {path}: cni_links: {exc}") from None

    def close(self) -> None:
        self._conn.close()

    def _run(self, op: str, sql: str, args: tuple[object, ...]) -> list[tuple[object, ...]]:
        try:
            return self._conn.execute(sql, args).fetchall()
        except sqlite3.Error as exc:
            raise StateError(f"state database {self.path}: {op}: {exc}") from None

    def put(self, link: PodLink) -> None:
        self._run("save pod link", "INSERT OR REPLACE INTO cni_links VALUES (?, ?, ?, ?, ?)",
                  (link.vf_key, link.netns, link.mtu,
                   None if link.up is None else int(link.up), time.time()))

    def get(self, vf_key: str) -> PodLink | None:
        rows = self._run("read pod link", "SELECT vf_key, netns, mtu, up FROM cni_links "
                         "WHERE vf_key = ?", (vf_key,))
        if not rows:
            return None
        key, netns, mtu, up = rows[0]
        assert isinstance(key, str) and isinstance(netns, str)
        return PodLink(vf_key=key, netns=netns, mtu=mtu if isinstance(mtu, int) else None,
                       up=None if up is None else bool(up))

    def drop(self, vf_key: str) -> None:
        self._run("drop pod link", "DELETE FROM cni_links WHERE vf_key = ?", (vf_key,))
