"""The SQLite state store: permissions, durability, corruption, schema, records, pools, concurrency.

Multi-process tests use the ``spawn`` start method; their worker functions live at module level.
"""

from __future__ import annotations

import dataclasses
import multiprocessing as mp
import os
import queue
import signal
import sqlite3
import stat
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from originals import original

from pyvfmac.errors import InputError, MacError, PoolError, StateError
from pyvfmac.records import Original, process_start_time
from pyvfmac.statedb import DEFAULT_STATE_DIR, SCHEMA_VERSION, STATE_DIR_ENV, default_state_dir
from pyvfmac.store import Store

NET = "passthrough-net"
# 2 igb PFs x 7 VFs, as on the testbed: 0000:01:10.0 .. 0000:01:10.6 and 0000:02:10.0 .. 02:10.6
POOL = [f"0000:0{bus}:10.{fn}" for bus in (1, 2) for fn in range(7)]


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    return tmp_path / "state"


@pytest.fixture
def store(state_dir: Path) -> Iterator[Store]:
    with Store(state_dir) as s:
        yield s


@pytest.fixture
def started(store: Store) -> Store:
    store.define_network(NET, "<network><name>passthrough-net</name></network>")
    store.start_network(NET, POOL)
    return store


def mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def raw(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(str(path / "state.db"), isolation_level=None)


# ------------------------------------------------------------------------- state dir


def test_default_state_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv(STATE_DIR_ENV, raising=False)
    assert default_state_dir() == DEFAULT_STATE_DIR == "/var/lib/pyvfmac"
    monkeypatch.setenv(STATE_DIR_ENV, "")
    assert default_state_dir() == DEFAULT_STATE_DIR
    monkeypatch.setenv(STATE_DIR_ENV, str(tmp_path / "env-dir"))
    assert default_state_dir() == str(tmp_path / "env-dir")
    with Store() as s:
        assert s.path == str(tmp_path / "env-dir" / "state.db")
    assert (tmp_path / "env-dir" / "state.db").is_file()
    # an explicit argument wins over the environment
    with Store(tmp_path / "arg-dir") as s:
        assert s.path == str(tmp_path / "arg-dir" / "state.db")


def test_relative_env_dir_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(STATE_DIR_ENV, "relative/state")
    with pytest.raises(InputError, match=r"PYVFMAC_STATE_DIR='relative/state'.*absolute"):
        default_state_dir()


# ------------------------------------------------------------------------- permissions


@pytest.mark.parametrize("umask", [0o000, 0o022, 0o277])
def test_new_files_are_private_whatever_the_umask(state_dir: Path, umask: int) -> None:
    old = os.umask(umask)
    try:
        with Store(state_dir / "deeper") as s:
            s.save_original(original(), owner="dom.xml#0", mac="52:54:00:6d:90:02",
                            managed=True)
            db = Path(s.path)
            assert mode(db.parent) == 0o700
            assert mode(db) == 0o600
            # SQLite gives the WAL and shared-memory files the database file's mode
            for extra in ("state.db-wal", "state.db-shm"):
                assert (db.parent / extra).exists()
                assert mode(db.parent / extra) == 0o600, extra
    finally:
        os.umask(old)


def test_db_file_is_created_0600_not_chmodded_later(state_dir: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """No window where the file is readable by others: its creation mode is already 0600."""
    def no_chmod(*args: object) -> None:
        raise AssertionError(f"chmod {args} of a file that should have been created private")
    old = os.umask(0)
    try:
        monkeypatch.setattr(os, "fchmod", no_chmod)
        monkeypatch.setattr(os, "chmod", no_chmod)
        Store(state_dir).close()
    finally:
        os.umask(old)
    assert mode(state_dir) == 0o700 and mode(state_dir / "state.db") == 0o600


def test_loose_existing_dir_and_file_are_tightened(state_dir: Path) -> None:
    state_dir.mkdir(mode=0o755)
    os.chmod(state_dir, 0o777)
    fd = os.open(state_dir / "state.db", os.O_CREAT | os.O_WRONLY, 0o644)
    os.close(fd)
    os.chmod(state_dir / "state.db", 0o666)
    with Store(state_dir):
        assert mode(state_dir) == 0o700
        assert mode(state_dir / "state.db") == 0o600


@pytest.mark.root  # chown
def test_dir_or_file_of_another_user_refused(state_dir: Path) -> None:
    state_dir.mkdir(mode=0o700)
    os.chown(state_dir, 65534, 65534)
    with pytest.raises(StateError, match=rf"state directory {state_dir}: owned by uid 65534"):
        Store(state_dir)
    assert mode(state_dir) == 0o700 and os.stat(state_dir).st_uid == 65534  # untouched
    os.chown(state_dir, 0, 0)
    (state_dir / "state.db").touch()
    os.chown(state_dir / "state.db", 65534, 65534)
    with pytest.raises(StateError, match=r"state\.db: owned by uid 65534"):
        Store(state_dir)


def test_not_a_directory_or_symlinked_db_refused(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(StateError, match=r"state directory .*/file: exists and is not a directory"):
        Store(tmp_path / "file")
    d = tmp_path / "d"
    d.mkdir(mode=0o700)
    (d / "state.db").symlink_to(tmp_path / "elsewhere.db")
    with pytest.raises(StateError, match=r"state database .*/d/state\.db"):
        Store(d)
    assert not (tmp_path / "elsewhere.db").exists()


def test_unwritable_location_is_state_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(StateError, match=r"state directory .*/file/state"):
        Store(tmp_path / "file" / "state")


# ------------------------------------------------------------------------- database settings


def test_pragmas(store: Store) -> None:
    db = store._db()
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    assert db.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    assert db.execute("PRAGMA busy_timeout").fetchone()[0] == 30000
    assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION


def test_newer_schema_version_refused(state_dir: Path) -> None:
    Store(state_dir).close()
    with raw(state_dir) as conn:
        conn.execute("PRAGMA user_version = 99")
    with pytest.raises(StateError, match=rf"{state_dir}/state\.db: schema version 99 is newer "
                                         rf"than this pyvfmac supports \({SCHEMA_VERSION}\)"):
        Store(state_dir)


def test_schema_1_database_is_brought_up_to_date(state_dir: Path) -> None:
    """A state database of pyvfmac before schema 2 (no port profile columns), with a VF attached:
    opened, it gains the columns in place, the record survives, names no port profile and is
    marked as written before profiles were recorded (detach then asks its document)."""
    with Store(state_dir) as s:
        s.save_original(original(), owner="vm.xml#0", mac="52:54:00:00:00:01", managed=False)
        before = s.set_phase("0000:06:10.0", "attached")
    with raw(state_dir) as conn:
        conn.execute("ALTER TABLE attachments DROP COLUMN port_profile")
        conn.execute("ALTER TABLE attachments DROP COLUMN port_instance")
        conn.execute("ALTER TABLE attachments DROP COLUMN port_known")
        conn.execute("PRAGMA user_version = 1")
    with Store(state_dir) as s:
        assert before.port_known and before.port_profile is None
        assert s.all() == [dataclasses.replace(before, port_known=False)]
        assert s._db().execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 3
        assert s.set_port("0000:06:10.0", "finance").port_profile == "finance"
        assert s.get("0000:06:10.0").port_known  # type: ignore[union-attr]
        s.save_original(original("0000:06:10.1", vf=1), owner="vm.xml#1",
                        mac="52:54:00:00:00:02", managed=False)
        assert s.get("0000:06:10.1").port_known  # type: ignore[union-attr]  # a new record
        s.check()


def test_port_profile_is_recorded_and_forgotten(store: Store) -> None:
    key = "0000:06:10.0"
    store.save_original(original(), owner="vm.xml#0", mac="52:54:00:00:00:01", managed=False)
    uuid = "09b11c53-8b5c-4eeb-8f00-d84eaa0aaa4f"
    att = store.set_port(key, "finance", uuid)
    assert (att.port_profile, att.port_instance, att.phase) == ("finance", uuid, "saved")
    assert store.get(key) == att
    att = store.set_port(key, None)
    assert (att.port_profile, att.port_instance) == (None, None)
    with pytest.raises(InputError, match="port instance 'x' without a profile"):
        store.set_port(key, None, "x")
    with pytest.raises(InputError, match="port profile ''"):
        store.set_port(key, "")
    with pytest.raises(StateError, match=r"0000:06:10\.1: no saved original"):
        store.set_port("0000:06:10.1", "finance")


def test_foreign_database_refused(state_dir: Path) -> None:
    state_dir.mkdir(mode=0o700)
    with raw(state_dir) as conn:
        conn.execute("CREATE TABLE t (x)")
    with pytest.raises(StateError, match=r"schema version 0 with 1 objects: not a pyvfmac"):
        Store(state_dir)


def test_garbage_file_names_the_path(state_dir: Path) -> None:
    state_dir.mkdir(mode=0o700)
    (state_dir / "state.db").write_bytes(b"this is not SQLite at all\n" * 400)
    os.chmod(state_dir / "state.db", 0o600)
    with pytest.raises(StateError) as info:
        Store(state_dir)
    assert f"state database {state_dir}/state.db" in str(info.value)
    assert "corrupted or not a pyvfmac state database" in str(info.value)


def test_damaged_pages_name_the_path(state_dir: Path) -> None:
    with Store(state_dir) as s:
        for i in range(200):
            s.save_original(original(f"0000:07:{i // 8:02x}.{i % 8}", vf=i), owner=f"o{i}",
                            mac=f"02:00:00:00:{i // 256:02x}:{i % 256:02x}", managed=False)
        s._db().execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db = state_dir / "state.db"
    data = bytearray(db.read_bytes())
    page = 4096
    assert len(data) > 4 * page
    for off in range(page, len(data)):  # everything after the first page (header + schema)
        data[off] = (off * 7919) & 0xFF
    db.write_bytes(bytes(data))
    with pytest.raises(StateError, match=rf"state database {db}: .*(malformed|corrupted)"):
        with Store(state_dir) as s:
            s.all()
            s.check()


def test_closed_store(store: Store) -> None:
    store.close()
    store.close()
    with pytest.raises(StateError, match=r"state\.db: the store is closed"):
        store.all()


def test_busy_timeout_gives_state_error(state_dir: Path) -> None:
    Store(state_dir).close()
    holder = raw(state_dir)
    holder.execute("BEGIN IMMEDIATE")
    try:
        with Store(state_dir, busy_timeout=0.3) as s:
            t0 = time.monotonic()
            with pytest.raises(StateError, match=rf"{state_dir}/state\.db: save original: "
                                                 r"database is locked \(busy timeout 0\.3 s: "
                                                 r"another process holds the write lock\)"):
                s.save_original(original(), owner="x", mac="02:00:00:00:00:01", managed=False)
            assert time.monotonic() - t0 >= 0.25  # it waited
            assert s.get("0000:06:10.0") is None   # readers are not blocked in WAL mode
    finally:
        holder.execute("ROLLBACK")
        holder.close()


# ------------------------------------------------------------------------- records


def test_save_get_roundtrip(store: Store) -> None:
    o = original(vlan=42, qos=3, vlan_proto="802.1ad", spoofchk=None, trust=True,
                 link_state="disable", min_tx_rate=10, max_tx_rate=100, netdev=None,
                 netdev_mac=None, driver=None)
    before = time.time()
    att = store.save_original(o, owner="dom.xml#1", mac="52-54-00-6D-90-02", managed=True)
    assert att.original == o
    assert (att.vf_key, att.owner, att.mac, att.managed, att.network, att.phase) == (
        "0000:06:10.0", "dom.xml#1", "52:54:00:6d:90:02", True, None, "saved")
    assert att.pid == os.getpid() and att.pid_start == process_start_time(os.getpid())
    assert before <= att.created == att.updated <= time.time()
    assert store.get("06:10.0") == att
    assert store.get("0000:06:10.1") is None
    assert store.all() == [att]


def test_double_save_keeps_first(store: Store) -> None:
    first = store.save_original(original(mac="00:00:00:00:00:00"), owner="a.xml#0",
                                mac="52:54:00:00:00:01", managed=True)
    # second attach: the VF now has the fixed MAC; its "original" must not replace the true one
    again = store.save_original(original(mac="52:54:00:00:00:01", driver="vfio-pci"),
                                owner="b.xml#0", mac="52:54:00:00:00:02", managed=False)
    assert again == first
    got = store.get("0000:06:10.0")
    assert got is not None
    assert got.original.mac == "00:00:00:00:00:00" and got.original.driver == "igbvf"
    assert got.owner == "a.xml#0"


def test_save_rejects_bad_input_before_writing(store: Store) -> None:
    with pytest.raises(MacError, match=r"0000:06:10\.0: fixed MAC 'ff:ff:ff:ff:ff:ff'"):
        store.save_original(original(), owner="x", mac="ff:ff:ff:ff:ff:ff", managed=False)
    with pytest.raises(InputError, match="owner ''"):
        store.save_original(original(), owner="", mac="02:00:00:00:00:01", managed=False)
    with pytest.raises(InputError, match="not an Original"):
        store.save_original("0000:06:10.0", owner="x", mac="02:00:00:00:00:01",  # type: ignore
                            managed=False)
    assert store.all() == []


def test_phases_and_incomplete(store: Store) -> None:
    for i in range(3):
        store.save_original(original(f"0000:06:10.{i}", vf=i), owner=f"d#{i}",
                            mac=f"02:00:00:00:00:0{i + 1}", managed=True)
    a = store.set_phase("0000:06:10.0", "mac-set")
    assert a.phase == "mac-set" and a.updated >= a.created
    for phase in ("unbound", "bound", "attached"):
        store.set_phase("0000:06:10.0", phase)
    store.set_phase("0000:06:10.1", "attached")
    store.set_phase("0000:06:10.1", "detaching", expected="attached")
    assert [x.vf_key for x in store.incomplete()] == ["0000:06:10.1", "0000:06:10.2"]
    assert [x.phase for x in store.incomplete()] == ["detaching", "saved"]
    assert store.get("0000:06:10.0").complete  # type: ignore[union-attr]
    with pytest.raises(StateError, match=r"0000:06:10\.1: phase is 'detaching', expected "
                                         r"'attached'"):
        store.set_phase("0000:06:10.1", "detaching", expected="attached")
    with pytest.raises(InputError, match=r"attach phase 'frobbed'"):
        store.set_phase("0000:06:10.0", "frobbed")
    with pytest.raises(StateError, match=r"0000:06:10\.7: no saved original"):
        store.set_phase("0000:06:10.7", "attached")


def test_delete(store: Store) -> None:
    store.save_original(original(), owner="d#0", mac="02:00:00:00:00:01", managed=False)
    gone = store.delete("06:10.0")
    assert gone.vf_key == "0000:06:10.0"
    assert store.get("0000:06:10.0") is None
    with pytest.raises(StateError, match=r"0000:06:10\.0: no saved original to delete"):
        store.delete("0000:06:10.0")


def test_find(store: Store) -> None:
    store.save_original(original("0000:06:10.0"), owner="a.xml#0", mac="02:00:00:00:00:01",
                        managed=False)
    store.save_original(original("0000:06:10.1", vf=1), owner="a.xml#1",
                        mac="02:00:00:00:00:02", managed=False)
    assert [a.vf_key for a in store.find(owner="a.xml#1")] == ["0000:06:10.1"]
    assert [a.vf_key for a in store.find(mac="02-00-00-00-00-01")] == ["0000:06:10.0"]
    assert store.find(owner="a.xml#1", mac="02:00:00:00:00:01") == []
    with pytest.raises(InputError, match="give owner, mac or network"):
        store.find()


# ------------------------------------------------------------------------- durability


def _read_record(state_dir: str, key: str, out: Any) -> None:
    with Store(state_dir) as s:
        att = s.get(key)
        out.put(None if att is None else (att.phase, att.original.mac, att.owner))


def _save_then_die(state_dir: str) -> None:
    s = Store(state_dir)
    s.save_original(original(), owner="d#0", mac="02:00:00:00:00:01", managed=True)
    s.set_phase("0000:06:10.0", "mac-set")
    os.kill(os.getpid(), signal.SIGKILL)


def _run(target: Any, *args: Any) -> int | None:
    p = mp.get_context("spawn").Process(target=target, args=args)
    p.start()
    p.join(60)
    return p.exitcode


def test_reopen_sees_committed_records(state_dir: Path) -> None:
    with Store(state_dir) as s:
        s.save_original(original(), owner="d#0", mac="02:00:00:00:00:01", managed=True)
        s.set_phase("0000:06:10.0", "unbound")
    with Store(state_dir) as s:
        att = s.get("0000:06:10.0")
        assert att is not None and att.phase == "unbound"
    q = mp.get_context("spawn").Queue()
    assert _run(_read_record, str(state_dir), "0000:06:10.0", q) == 0
    assert q.get(timeout=10) == ("unbound", "00:00:00:00:00:00", "d#0")


def test_process_killed_after_commit_keeps_record(state_dir: Path) -> None:
    Store(state_dir).close()
    assert _run(_save_then_die, str(state_dir)) == -signal.SIGKILL
    with Store(state_dir) as s:
        s.check()
        att = s.get("0000:06:10.0")
        assert att is not None and att.phase == "mac-set"
        assert not att.worker_alive()
        assert [a.vf_key for a in s.incomplete()] == ["0000:06:10.0"]


# ------------------------------------------------------------------------- SIGKILL in a transaction


def _die_at(point: str) -> Any:
    def hook(where: str) -> None:
        if where == point:
            os.kill(os.getpid(), signal.SIGKILL)
    return hook


def _killed_in_allocate(state_dir: str) -> None:
    s = Store(state_dir)
    s.fault_hook = _die_at("allocate:before-commit")
    s.allocate(NET, "g#0", "02:00:00:00:00:01", POOL)


def _killed_in_save(state_dir: str) -> None:
    s = Store(state_dir)
    s.fault_hook = _die_at("save original:before-commit")
    s.save_original(original(POOL[0]), owner="g#0", mac="02:00:00:00:00:01", managed=True)


def _killed_in_delete(state_dir: str) -> None:
    s = Store(state_dir)
    s.fault_hook = _die_at("delete:before-commit")
    s.delete(POOL[0])


def _allocated_then_killed(state_dir: str) -> None:
    s = Store(state_dir)
    s.allocate(NET, "g#0", "02:00:00:00:00:01", POOL)
    os.kill(os.getpid(), signal.SIGKILL)  # before save_original


def test_killed_inside_transactions_leaves_nothing_partial(started: Store) -> None:
    d = str(started.state_dir)
    assert _run(_killed_in_allocate, d) == -signal.SIGKILL
    assert started.allocations(NET) == []
    # the write lock died with the process: the next writer does not wait
    t0 = time.monotonic()
    assert started.allocate(NET, "g#1", "02:00:00:00:00:02", POOL) == POOL[0]
    assert time.monotonic() - t0 < 5
    started.release(NET, POOL[0])

    assert _run(_killed_in_save, d) == -signal.SIGKILL
    assert started.get(POOL[0]) is None

    started.save_original(original(POOL[0]), owner="g#0", mac="02:00:00:00:00:01",
                          managed=True)
    assert _run(_killed_in_delete, d) == -signal.SIGKILL
    assert started.get(POOL[0]) is not None
    started.check()


def test_allocation_without_attachment_is_an_orphan_once_its_process_died(
        started: Store) -> None:
    mine = started.allocate(NET, "g#live", "02:00:00:00:00:09", POOL)
    assert _run(_allocated_then_killed, str(started.state_dir)) == -signal.SIGKILL
    allocs = started.allocations(NET)
    assert [a.vf_key for a in allocs] == [mine, POOL[1]]
    orphans = started.orphan_allocations()  # our own live allocation is not one
    assert [(a.vf_key, a.owner) for a in orphans] == [(POOL[1], "g#0")]
    started.release(NET, orphans[0].vf_key)
    assert [a.vf_key for a in started.allocations(NET)] == [mine]


# ------------------------------------------------------------------------- networks


def test_network_lifecycle(store: Store) -> None:
    assert store.networks() == [] and store.get_network(NET) is None
    rec = store.define_network(NET, "<network>v1</network>")
    assert (rec.name, rec.xml, rec.started, rec.pool) == (NET, "<network>v1</network>", False, ())
    store.define_network(NET, "<network>v2</network>")  # replace while stopped
    store.define_network("b-net", "<network>b</network>")
    rec = store.start_network(NET, ["01:10.1", "0000:01:10.0"])
    assert rec.started and rec.pool == ("0000:01:10.1", "0000:01:10.0")  # order kept
    assert [(n.name, n.started) for n in store.networks()] == [("b-net", False), (NET, True)]
    with pytest.raises(PoolError, match=f"network {NET}: is started; stop it before redefining"):
        store.define_network(NET, "<network>v3</network>")
    with pytest.raises(PoolError, match=f"network {NET}: is started; stop it before undefining"):
        store.undefine_network(NET)
    with pytest.raises(PoolError, match=f"network {NET}: already started"):
        store.start_network(NET, [])
    assert store.stop_network(NET) == []
    rec2 = store.get_network(NET)
    assert rec2 is not None and not rec2.started and rec2.pool == () and \
        rec2.xml == "<network>v2</network>"
    with pytest.raises(PoolError, match=f"network {NET}: not started"):
        store.stop_network(NET)
    store.undefine_network(NET)
    assert [n.name for n in store.networks()] == ["b-net"]
    with pytest.raises(PoolError, match=f"network {NET}: not defined"):
        store.undefine_network(NET)
    with pytest.raises(PoolError, match="network nope: not defined"):
        store.start_network("nope", POOL)


def test_network_input_errors(store: Store) -> None:
    store.define_network(NET, "<network/>")
    for bad in ("", "a/b", " lead", "tab\tin", "x" * 256):
        with pytest.raises(InputError, match="network name"):
            store.define_network(bad, "<network/>")
    with pytest.raises(InputError, match=f"network {NET}: XML ''"):
        store.define_network(NET, "")
    with pytest.raises(InputError, match=r"VF 0000:01:10\.0 appears twice in the pool"):
        store.start_network(NET, ["0000:01:10.0", "01:10.0"])
    with pytest.raises(InputError, match="VF key 'eth0'"):
        store.start_network(NET, ["eth0"])
    with pytest.raises(InputError, match="not a str"):
        store.start_network(NET, "0000:01:10.0")
    assert not store.get_network(NET).started  # type: ignore[union-attr]


def test_allocate_order_and_exhaustion(started: Store) -> None:
    got = [started.allocate(NET, f"g#{i}", f"02:00:00:00:01:{i:02x}", POOL) for i in range(14)]
    assert got == POOL
    with pytest.raises(PoolError, match=r"^network passthrough-net has no free device$"):
        started.allocate(NET, "g#14", "02:00:00:00:01:ff", POOL)
    started.release(NET, POOL[5])
    assert started.allocate(NET, "g#15", "02:00:00:00:02:00", POOL) == POOL[5]
    a = started.find_allocation(NET, "02-00-00-00-02-00")
    assert a is not None and (a.vf_key, a.owner, a.pid) == (POOL[5], "g#15", os.getpid())
    assert started.find_allocation(NET, "02:00:00:00:09:09") is None


def test_allocate_skips_held_vfs_and_checks_input(started: Store) -> None:
    # a VF attached directly (not through the network) is not free
    started.save_original(original(POOL[0]), owner="direct.xml#0", mac="02:00:00:00:00:aa",
                          managed=True)
    # the caller's filter: POOL[1] is held outside pyvfmac, so it is not eligible
    eligible = [POOL[0]] + POOL[2:]
    assert started.allocate(NET, "g#0", "02:00:00:00:00:01", eligible) == POOL[2]
    with pytest.raises(PoolError, match=r"MAC 02:00:00:00:00:01 already holds 0000:01:10\.2"):
        started.allocate(NET, "g#1", "02:00:00:00:00:01", eligible)
    with pytest.raises(PoolError, match=r"0000:09:00\.0 not in its pool"):
        started.allocate(NET, "g#1", "02:00:00:00:00:02", ["0000:09:00.0"])
    with pytest.raises(PoolError, match="network other: not defined"):
        started.allocate("other", "g#1", "02:00:00:00:00:02", POOL)
    started.define_network("other", "<network/>")
    with pytest.raises(PoolError, match="network other: not started"):
        started.allocate("other", "g#1", "02:00:00:00:00:02", POOL)
    with pytest.raises(MacError, match="network passthrough-net: fixed MAC '01:00:00:00:00:02'"):
        started.allocate(NET, "g#1", "01:00:00:00:00:02", POOL)
    with pytest.raises(PoolError, match=r"network passthrough-net: 0000:01:10\.0 is not allocated"):
        started.release(NET, POOL[0])
    assert [a.vf_key for a in started.allocations()] == [POOL[2]]


def test_allocation_tied_to_attachment(started: Store) -> None:
    with pytest.raises(StateError, match=r"0000:01:10\.0: not allocated in network "
                                         r"passthrough-net"):
        started.save_original(original(POOL[0]), owner="g#0", mac="02:00:00:00:00:01",
                              managed=True, network=NET)
    key = started.allocate(NET, "g#0", "02:00:00:00:00:01", POOL)
    att = started.save_original(original(key), owner="g#0", mac="02:00:00:00:00:01",
                                managed=True, network=NET)
    assert att.network == NET
    assert [a.vf_key for a in started.find(network=NET)] == [key]
    with pytest.raises(StateError, match="still has a saved original"):
        started.release(NET, key)
    # the foreign key holds even against a raw delete
    with pytest.raises(sqlite3.IntegrityError):
        started._db().execute("DELETE FROM allocations WHERE vf_key = ?", (key,))
    started.set_phase(key, "attached")
    started.delete(key)  # after a verified restore: record and allocation go together
    assert started.allocations(NET) == [] and started.get(key) is None


def test_delete_without_release_keeps_allocation(started: Store) -> None:
    key = started.allocate(NET, "g#0", "02:00:00:00:00:01", POOL)
    started.save_original(original(key), owner="g#0", mac="02:00:00:00:00:01", managed=True,
                          network=NET)
    started.delete(key, release=False)
    assert [a.vf_key for a in started.allocations(NET)] == [key]
    assert started.release(NET, key).owner == "g#0"


def test_stop_with_allocations(started: Store) -> None:
    k0 = started.allocate(NET, "g#0", "02:00:00:00:00:01", POOL)
    k1 = started.allocate(NET, "g#1", "02:00:00:00:00:02", POOL)
    with pytest.raises(PoolError, match=r"network passthrough-net: 2 device\(s\) in use "
                                        r"\(0000:01:10\.0, 0000:01:10\.1\)"):
        started.stop_network(NET)
    assert started.get_network(NET).started  # type: ignore[union-attr]
    held = started.stop_network(NET, force=True)
    assert [(a.vf_key, a.owner) for a in held] == [(k0, "g#0"), (k1, "g#1")]
    assert not started.get_network(NET).started  # type: ignore[union-attr]
    with pytest.raises(PoolError, match=r"2 device\(s\) still allocated"):
        started.undefine_network(NET)
    for a in held:
        started.release(NET, a.vf_key)
    started.undefine_network(NET)
    assert started.networks() == []


# ------------------------------------------------------------------------- 32 processes


def _allocate_worker(state_dir: str, index: int, barrier: Any, out: Any) -> None:
    try:
        with Store(state_dir) as s:
            barrier.wait(60)
            key: str | None = None
            try:
                key = s.allocate(NET, f"guest-{index}", f"02:00:00:00:00:{index:02x}", POOL)
            except PoolError as exc:
                out.put((index, "pool-error", str(exc)))
            except Exception as exc:  # reach the second barrier anyway: fail fast, not by timeout
                out.put((index, "crash", repr(exc)))
            else:
                out.put((index, "ok", key))
            barrier.wait(60)  # everyone has tried: now release, all at once
            if key is not None:
                s.release(NET, key)
            out.put((index, "released", key))
    except BaseException as exc:  # reported, so the parent's assertion says what went wrong
        out.put((index, "crash", repr(exc)))


def _open_fresh_and_save(state_dir: str, index: int, barrier: Any, out: Any) -> None:
    try:
        barrier.wait(60)
        with Store(state_dir) as s:  # all create the directory, file and schema at once
            s.save_original(Original(vf_key=f"0000:07:{index:02x}.0", pf="enp7s0", vf=index,
                                     mac="00:00:00:00:00:00"),
                            owner=f"d#{index}", mac=f"02:00:00:00:00:{index + 1:02x}",
                            managed=False)
        out.put((index, "ok"))
    except BaseException as exc:
        out.put((index, repr(exc)))


def test_concurrent_first_open(state_dir: Path) -> None:
    ctx = mp.get_context("spawn")
    n = 16
    barrier = ctx.Barrier(n)
    out = ctx.Queue()
    procs = [ctx.Process(target=_open_fresh_and_save, args=(str(state_dir), i, barrier, out))
             for i in range(n)]
    for p in procs:
        p.start()
    results = sorted(out.get(timeout=120) for _ in range(n))
    for p in procs:
        p.join(60)
    assert results == [(i, "ok") for i in range(n)]
    with Store(state_dir) as s:
        assert [a.vf_key for a in s.all()] == [f"0000:07:{i:02x}.0" for i in range(n)]
        s.check()


def test_32_processes_allocate_from_pool_of_14(started: Store) -> None:
    ctx = mp.get_context("spawn")
    n = 32
    barrier = ctx.Barrier(n)
    out = ctx.Queue()
    procs = [ctx.Process(target=_allocate_worker, args=(str(started.state_dir), i, barrier, out))
             for i in range(n)]
    for p in procs:
        p.start()
    results: list[tuple[int, str, str | None]] = []
    deadline = time.monotonic() + 300
    while len(results) < 2 * n and time.monotonic() < deadline:
        try:
            results.append(out.get(timeout=1))
        except queue.Empty:
            if not any(p.is_alive() for p in procs):
                break
    for p in procs:
        p.join(60)
    crashes = [r for r in results if r[1] == "crash"]
    assert crashes == []
    assert [p.exitcode for p in procs] == [0] * n
    ok = [str(r[2]) for r in results if r[1] == "ok"]
    refused = [r[2] for r in results if r[1] == "pool-error"]
    assert len(ok) == 14 and len(refused) == 18
    assert sorted(ok) == sorted(POOL)  # no VF given twice, every VF given
    assert set(refused) == {"network passthrough-net has no free device"}
    assert len([r for r in results if r[1] == "released"]) == n
    # the pool is whole again
    assert started.allocations(NET) == []
    assert [started.allocate(NET, f"again-{i}", f"02:00:00:00:01:{i:02x}", POOL)
            for i in range(14)] == POOL
    started.check()


@pytest.mark.parametrize("had_table", [True, False])
def test_schema_2_database_gains_the_pod_link_table(state_dir: Path, had_table: bool) -> None:
    """Up to schema 2, vfmac-cni created its pod table itself on its first call: a schema-2
    database with or without it is brought to schema 3, its rows and records kept."""
    from pyvfmac.records import PodLink

    with Store(state_dir) as s:
        s.save_original(original(), owner="cni:c:net1:n", mac="52:54:00:00:00:01",
                        managed=False)
    with raw(state_dir) as conn:
        conn.execute("DROP TABLE cni_links")
        if had_table:
            conn.execute("CREATE TABLE cni_links (vf_key TEXT PRIMARY KEY, netns TEXT NOT NULL, "
                         "mtu INTEGER, up INTEGER, created REAL NOT NULL)")
            conn.execute("INSERT INTO cni_links VALUES ('0000:06:10.0', '/run/netns/p', 1500, "
                         "1, 0)")
        conn.execute("PRAGMA user_version = 2")
    with Store(state_dir) as s:
        assert s._db().execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 3
        want = PodLink("0000:06:10.0", "/run/netns/p", 1500, True) if had_table else None
        assert s.pod_link("0000:06:10.0") == want
        assert [a.owner for a in s.all()] == ["cni:c:net1:n"]
        s.check()
