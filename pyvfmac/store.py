"""The durable state store: saved originals, attach progress, networks (pools) and allocations.

:class:`Store` is the state database (:mod:`pyvfmac.statedb`: location, permissions, schema,
transactions) with the queries on its records (:mod:`pyvfmac.records`).

Attach progress: a record is created in phase ``saved`` by :meth:`Store.save_original` *before*
anything on the host changes; the attaching process moves it through ``mac-set``, ``unbound``,
``bound`` to ``attached`` with :meth:`Store.set_phase`; detach moves it to ``detaching`` and, after a
verified restore, :meth:`Store.delete` removes it. :meth:`Store.incomplete` lists the records not
in phase ``attached``. An 802.1Qbh port profile is recorded with :meth:`Store.set_port` before it
is associated and cleared when it is not (any longer), so that a restore disassociates exactly
what may be associated.

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
import sqlite3
import time
from collections.abc import Collection, Sequence

from .errors import InputError, PoolError, StateError, VfmacError
from .mac import parse_mac
from .records import (
    Allocation,
    Attachment,
    NetworkRecord,
    Original,
    PodLink,
    canonical_vf_key,
    check_phase,
    check_text,
    process_start_time,
)
from .statedb import Database
from .types import validate_network_name

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (mypy: always_true)
if TYPE_CHECKING:
    from typing import Any

__all__ = ["Store"]

_ATT_COLUMNS = (
    "vf_key, pf, vf, o_mac, o_vlan, o_qos, o_vlan_proto, o_spoofchk, o_trust, o_link_state, "
    "o_min_tx_rate, o_max_tx_rate, o_netdev, o_netdev_mac, o_driver, owner, mac, managed, network, "
    "phase, pid, pid_start, created, updated, port_profile, port_instance, port_known"
)
_ALLOC_COLUMNS = "network, vf_key, owner, mac, pid, pid_start, created"


def _opt_bool(value: bool | None) -> int | None:
    return None if value is None else int(value)


def _to_opt_bool(value: Any) -> bool | None:
    return None if value is None else bool(value)



class Store(Database):
    """The state database and the queries on its records. A context manager; not shared between
    threads or across ``fork``."""

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
            updated=row[23], port_profile=row[24], port_instance=row[25],
            port_known=bool(row[26]),
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
                      network: str | None = None, pod: PodLink | None = None) -> Attachment:
        """Record a VF's original configuration before anything on the host changes.

        A new record starts in phase ``saved``. If the VF already has a record (double attach),
        the FIRST original is kept and the existing record is returned unchanged; compare its
        ``owner`` / ``mac`` to decide. With ``network``, the VF must be allocated in that network;
        without, it must be allocated in none (a pool's VF is taken through its network only).
        ``pod``: where vfmac-cni is putting the VF's netdev, saved in the same transaction.
        """
        if not isinstance(original, Original):
            raise InputError(f"saved original {original!r}: not an Original")
        owner = check_text("owner", owner)
        # all-zero: no fixed MAC (a userspace VF of vfmac-cni's whose user sets its MAC)
        mac = parse_mac(mac, allow_zero=True, what=f"{original.vf_key}: fixed MAC")
        if network is not None:
            validate_network_name(network)
        o = original
        now = time.time()
        pid = os.getpid()
        with self._write("save original") as conn:
            row = self._get_att(conn, o.vf_key)
            if row is not None:
                return self._attachment(row)
            alloc = conn.execute("SELECT network, owner FROM allocations WHERE vf_key = ?",
                                 (o.vf_key,)).fetchone()
            if network is not None and (alloc is None or alloc[0] != network):
                raise StateError(f"{o.vf_key}: not allocated in network {network}; "
                                 "allocate it before saving its original")
            if network is None and alloc is not None:
                raise PoolError(f"{o.vf_key} ({o.pf} vf {o.vf}) is in use: allocated in "
                                f"pyvfmac network {alloc[0]} to {alloc[1]}")
            values = (
                o.vf_key, o.pf, o.vf, o.mac, o.vlan, o.qos, o.vlan_proto, _opt_bool(o.spoofchk),
                _opt_bool(o.trust), o.link_state, o.min_tx_rate, o.max_tx_rate, o.netdev,
                o.netdev_mac, o.driver, owner, mac, int(bool(managed)), network, "saved", pid,
                process_start_time(pid), now, now, None, None, 1,
            )
            conn.execute(f"INSERT INTO attachments ({_ATT_COLUMNS}) VALUES "
                         f"({', '.join('?' * len(values))})", values)
            if pod is not None:
                self._put_pod(conn, pod)
            row = self._get_att(conn, o.vf_key)
            assert row is not None
            return self._attachment(row)

    def set_phase(self, key: str, phase: str, *,
                  expected: str | Collection[str] | None = None) -> Attachment:
        """Move a record to ``phase`` and make this process its worker. With ``expected``, the
        record must currently be in that phase (or one of them), else :class:`StateError`."""
        key = canonical_vf_key(key)
        phase = check_phase(phase)
        allowed = None if expected is None else (
            {expected} if isinstance(expected, str) else set(expected))
        if allowed is not None:
            for p in allowed:
                check_phase(p)
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

    def set_port(self, key: str, profile: str | None, instance: str | None = None) -> Attachment:
        """Record the 802.1Qbh port profile (and instance UUID) the VF may have associated:
        before asking the driver to associate it (a crash after the request leaves it recorded
        for ``recover``); None once the driver refused it or it was disassociated."""
        key = canonical_vf_key(key)
        if profile is not None:
            check_text(f"{key}: port profile", profile, limit=64)
        elif instance is not None:
            raise InputError(f"{key}: a port instance {instance!r} without a profile")
        if instance is not None:
            check_text(f"{key}: port instance", instance, limit=64)
        with self._write("set port") as conn:
            if conn.execute("UPDATE attachments SET port_profile = ?, port_instance = ?, "
                            "port_known = 1, updated = ? WHERE vf_key = ?",
                            (profile, instance, time.time(), key)).rowcount != 1:
                raise StateError(f"{key}: no saved original (not attached by pyvfmac)")
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
            args.append(check_text("owner", owner))
        if mac is not None:
            clauses.append("mac = ?")
            args.append(parse_mac(mac))
        if network is not None:
            clauses.append("network = ?")
            args.append(validate_network_name(network))
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
            conn.execute("DELETE FROM cni_links WHERE vf_key = ?", (key,))
            if release and att.network is not None:
                conn.execute("DELETE FROM allocations WHERE vf_key = ? AND network = ?",
                             (key, att.network))
            return att

    # -- where vfmac-cni put a VF's netdev ---------------------------------------------------

    @staticmethod
    def _put_pod(conn: sqlite3.Connection, pod: PodLink) -> None:
        conn.execute("INSERT OR REPLACE INTO cni_links VALUES (?, ?, ?, ?, ?)",
                     (canonical_vf_key(pod.vf_key), check_text("netns", pod.netns), pod.mtu,
                      _opt_bool(pod.up), time.time()))

    def pod_link(self, key: str) -> PodLink | None:
        """Where vfmac-cni put the VF's netdev (None: it did not; a row left without an
        attachment by pyvfmac before schema 3 is not one either)."""
        key = canonical_vf_key(key)
        with self._read("read pod link") as conn:
            row = conn.execute("SELECT l.netns, l.mtu, l.up FROM cni_links l JOIN attachments a "
                               "ON a.vf_key = l.vf_key WHERE l.vf_key = ?", (key,)).fetchone()
        if row is None:
            return None
        return PodLink(vf_key=key, netns=row[0], mtu=row[1], up=_to_opt_bool(row[2]))

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
        name = validate_network_name(name)
        xml_text = check_text(f"network {name}: XML", xml_text, limit=1 << 20)
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
        name = validate_network_name(name)
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
        name = validate_network_name(name)
        with self._read("get network") as conn:
            row = self._network_row(conn, name)
            return None if row is None else self._record(conn, row)

    def start_network(self, name: str, resolved_pool: Sequence[str]) -> NetworkRecord:
        """Mark a network started with its pool resolved to VF keys, in pool order."""
        name = validate_network_name(name)
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
        name = validate_network_name(name)
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
        network = validate_network_name(network)
        owner = check_text("owner", owner)
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
        network = validate_network_name(network)
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
                                    "ORDER BY vf_key", (validate_network_name(network),))
            return [self._allocation(r) for r in rows]

    def find_allocation(self, network: str, mac: str) -> Allocation | None:
        """The allocation of a guest device identified by network and fixed MAC, or None."""
        network = validate_network_name(network)
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

