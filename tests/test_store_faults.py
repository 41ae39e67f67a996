"""The state store under faults, through the command line: a full disk, a read-only state
directory, a truncated or corrupted ``state.db``, the database locked by another process past the
busy timeout, a user who may not read it. Every command that needs the store fails with ONE line
naming the file (never a traceback), and the records are the same before and after (compared row
by row, read-only); once the fault is gone the store works again.

Needs root (tmpfs mounts, a setuid child), as the README's test command runs. Nothing here talks
to real VFs: commands get an empty fake sysfs root and documents naming VFs that do not exist,
and the store fails before any of that is reached.

Kill points between a record and the host change it covers are in tests/test_kill_points.py.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from originals import original

from pyvfmac.cli import main
from pyvfmac.statedb import Database
from pyvfmac.store import Store

NET_XML = ("<network><name>pool1</name><forward mode='hostdev' managed='no'>"
           "<address type='pci' domain='0' bus='6' slot='16' function='0'/>"
           "<address type='pci' domain='0' bus='6' slot='16' function='1'/>"
           "</forward></network>")
DOC = ("<hostdev mode='subsystem' type='pci' managed='no'><source><address domain='0x0000' "
       "bus='0x7e' slot='0x1f' function='0x7'/></source><mac address='52:54:00:00:00:99'/>"
       "</hostdev>")

pytestmark = pytest.mark.root  # mounts, setuid


# ----------------------------------------------------------------------------- helpers


def seed(state: Path) -> None:
    """Records of every kind: a started network with an allocation, attachments in two phases."""
    with Store(state) as s:
        s.define_network("pool1", NET_XML)
        s.start_network("pool1", ["0000:06:10.0", "0000:06:10.1"])
        key = s.allocate("pool1", "vm1#0", "52:54:00:00:00:01", ["0000:06:10.0", "0000:06:10.1"])
        s.save_original(original(key), owner="vm1#0", mac="52:54:00:00:00:01", managed=False,
                        network="pool1")
        s.set_phase(key, "attached")
        s.save_original(original("0000:06:11.0", vf=8, netdev=None, netdev_mac=None),
                        owner="vm2#0", mac="52:54:00:00:00:02", managed=True)
        s.set_phase("0000:06:11.0", "mac-set")
        s.define_network("pool3", NET_XML.replace("pool1", "pool3"))


def records(state: Path) -> dict[str, list[tuple[object, ...]]]:
    """Every row of every table, read-only (immutable: works on a read-only file system)."""
    db = state / "state.db"
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        names = [r[0] for r in conn.execute(
            "SELECT name FROM sqlite_schema WHERE type = 'table' ORDER BY name")]
        return {n: sorted(conn.execute(f"SELECT * FROM {n}").fetchall(), key=repr)
                for n in names}
    finally:
        conn.close()


SYSFS: list[Path] = []


@pytest.fixture(autouse=True)
def empty_sysfs(tmp_path: Path) -> Iterator[None]:
    """A sysfs root with no PCI devices at all: no command can reach a real VF."""
    root = tmp_path / "sys"
    (root / "bus" / "pci" / "devices").mkdir(parents=True)
    (root / "class" / "net").mkdir(parents=True)
    SYSFS[:] = [root]
    yield
    SYSFS.clear()


def cli(state: Path, *argv: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    """Run vfmac in this process; (exit status, stderr)."""
    capsys.readouterr()
    with open(os.devnull, "w") as out:
        rc = main(["--state-dir", str(state), "--sysfs-root", str(SYSFS[0]), *argv], out=out)
    return rc, capsys.readouterr().err


def commands(tmp: Path) -> list[list[str]]:
    """Every command that opens the store (the mutating ones and the readers)."""
    net = tmp / "net2.xml"
    net.write_text(NET_XML.replace("pool1", "pool2"))
    doc = tmp / "vm.xml"
    doc.write_text(DOC)
    return [["net-define", str(net)], ["net-undefine", "pool3"], ["net-start", "pool3"],
            ["net-stop", "pool1"], ["net-list"], ["net-show", "pool1"],
            ["attach", str(doc)], ["detach", str(doc)], ["restore", "--all"], ["recover"]]


def one_line_naming(err: str, *needles: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("vfmac: error: "), err
    assert "Traceback" not in err
    assert any(n in lines[0] for n in needles), (needles, err)
    return lines[0]


@contextlib.contextmanager
def tmpfs(path: Path, size: str) -> Iterator[Path]:
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(path)],
                   check=True)
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def fill(fs: Path) -> None:
    """Fill the file system to the last block."""
    fd = os.open(fs / "filler", os.O_WRONLY | os.O_CREAT, 0o600)
    with contextlib.suppress(OSError):
        for size in (65536, 4096, 512, 1):
            while True:
                os.write(fd, b"\0" * size)
    os.close(fd)


# ----------------------------------------------------------------------------- faults


def test_full_disk(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """state.db-wal and -shm exist (a process has the store open; here the read-only reader of
    records() left them): readers may work, writers fail saying the disk is full."""
    with tmpfs(tmp_path / "fs", "256k") as fs:
        state = fs / "state"
        seed(state)
        before = records(state)
        cmds = commands(tmp_path)
        fill(fs)
        for argv in cmds:
            rc, err = cli(state, *argv, capsys=capsys)
            if rc == 0:  # a reader may still work on a full disk
                assert argv[0] in ("net-list", "net-show", "recover"), (argv, err)
                continue
            if argv[0] in ("net-define", "net-undefine", "restore"):  # would work with room
                line = one_line_naming(err, str(state / "state.db"))
                assert "no space left on device" in line and "disk is full" in line, line
            else:  # the (empty) fake host may be refused first: one line too
                one_line_naming(err, "")
        assert records(state) == before
        os.unlink(fs / "filler")
        rc, err = cli(state, "net-define", str(tmp_path / "net2.xml"), capsys=capsys)
        assert rc == 0, err
        with Store(state) as s:
            s.check()
            assert {n.name for n in s.networks()} == {"pool1", "pool2", "pool3"}


def test_full_disk_store_closed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The usual case: no process has the store open, so state.db-wal and -shm do not exist and
    SQLite cannot create them: every command fails at open (SQLite says "disk I/O error"), with
    one line that says the disk is full; nothing is lost."""
    with tmpfs(tmp_path / "fs", "256k") as fs:
        state = fs / "state"
        seed(state)
        before = records(state)  # a read-only connection leaves -wal and -shm behind ...
        Store(state).close()  # ... the last read-write one removes them
        assert sorted(p.name for p in state.iterdir()) == ["state.db"]
        cmds = commands(tmp_path)
        fill(fs)
        assert os.statvfs(state).f_bfree == 0
        net2 = str(tmp_path / "net2.xml")
        for argv in (["net-list"], ["net-show", "pool1"], ["net-define", net2],
                     ["restore", "--all"]):
            rc, err = cli(state, *argv, capsys=capsys)
            assert rc == 1, (argv, err)
            line = one_line_naming(err, str(state / "state.db"))
            assert (f"state.db: open: no space left on device (the file system of {state} is "
                    f"full): ") in line, line
        for argv in cmds:  # every command: one line, and it says why when the store is the cause
            rc, err = cli(state, *argv, capsys=capsys)
            assert rc == 1, (argv, err)
            line = one_line_naming(err, "")
            assert "state.db" not in line or "no space left on device" in line, line
        os.unlink(fs / "filler")
        assert records(state) == before
        rc, err = cli(state, "net-define", str(tmp_path / "net2.xml"), capsys=capsys)
        assert rc == 0, err
        with Store(state) as s:
            s.check()
            assert {n.name for n in s.networks()} == {"pool1", "pool2", "pool3"}


def test_read_only_state_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with tmpfs(tmp_path / "fs", "1m") as fs:
        state = fs / "state"
        seed(state)
        before = records(state)
        cmds = commands(tmp_path)
        subprocess.run(["mount", "-o", "remount,ro", str(fs)], check=True)
        for argv in cmds:
            rc, err = cli(state, *argv, capsys=capsys)
            assert rc == 1, (argv, err)
            line = one_line_naming(err, str(state / "state.db"), str(state))
            assert "ead-only" in line, line
        assert records(state) == before
        subprocess.run(["mount", "-o", "remount,rw", str(fs)], check=True)
        with Store(state) as s:
            s.check()


@pytest.mark.parametrize("damage", ["truncated-half", "truncated-1000", "header", "pages",
                                    "garbage"])
def test_truncated_or_corrupted_db(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                   damage: str) -> None:
    state = tmp_path / "state"
    seed(state)
    db = state / "state.db"
    size = db.stat().st_size
    data = bytearray(db.read_bytes())
    if damage == "truncated-half":
        os.truncate(db, size // 2)
    elif damage == "truncated-1000":
        os.truncate(db, 1000)
    elif damage == "header":
        data[0:16] = b"not sqlite 3 ok\0"
        db.write_bytes(bytes(data))
    elif damage == "pages":  # every page after the first overwritten
        for off in range(4096, size, 4096):
            data[off:off + 4096] = bytes([0x5A]) * 4096
        db.write_bytes(bytes(data))
    else:
        db.write_bytes(os.urandom(size))
    damaged = db.read_bytes()
    for argv in commands(tmp_path):
        rc, err = cli(state, *argv, capsys=capsys)
        assert rc == 1, (argv, err)
        if argv[0] in ("attach", "detach", "net-start", "net-stop") and str(db) not in err:
            # the schema page was readable and the (empty) host refused first: no record read
            one_line_naming(err, "")
            continue
        line = one_line_naming(err, str(db))
        assert "corrupt" in line or "malformed" in line or "not a" in line, line
    # the damaged file is left as it was for a human (or a backup) to look at
    assert db.read_bytes() == damaged


def _hold_write_lock(db: Path, seconds: float) -> subprocess.Popen[str]:
    code = textwrap.dedent(f"""
        import sqlite3, sys, time
        c = sqlite3.connect({str(db)!r}, isolation_level=None)
        c.execute("BEGIN IMMEDIATE")
        print("locked", flush=True)
        time.sleep({seconds})
    """)
    p = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert p.stdout is not None and p.stdout.readline().strip() == "locked"
    return p


def test_locked_past_the_busy_timeout(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    state = tmp_path / "state"
    seed(state)
    before = records(state)
    # the command line's 30 s default, shortened for the test
    kw = dict(Database.__init__.__kwdefaults__ or {})
    monkeypatch.setattr(Database.__init__, "__kwdefaults__", {**kw, "busy_timeout": 0.3})
    holder = _hold_write_lock(state / "state.db", 60)
    try:
        for argv in commands(tmp_path):
            t0 = time.monotonic()
            rc, err = cli(state, *argv, capsys=capsys)
            if rc == 0:  # WAL: readers are not blocked by a writer
                assert argv[0] in ("net-list", "net-show", "restore", "recover"), (argv, err)
                continue
            if argv[0] in ("net-define", "net-undefine"):  # would succeed unlocked
                line = one_line_naming(err, str(state / "state.db"))
                assert "locked" in line and "busy timeout 0.3 s" in line, line
                assert time.monotonic() - t0 < 10
            else:
                one_line_naming(err, "")
    finally:
        holder.kill()
        holder.wait()
    assert records(state) == before


def _as_nobody(state: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    # Everything is imported first: this interpreter may live where user nobody cannot read
    # (pyenv under /root); what is tested is the store and the kernel, not the imports.
    code = textwrap.dedent("""
        import os, sys, json, sqlite3, uuid, encodings.idna
        import pyvfmac.cli, pyvfmac.attach, pyvfmac.restore, pyvfmac.pools, pyvfmac.store
        import pyvfmac.topology, pyvfmac.netlink, pyvfmac.statedb, pyvfmac.pcibind
        import pyvfmac.cli.parser, pyvfmac.errors
        pyvfmac.cli.parser.build_parser()
        os.setgroups([]); os.setgid(65534); os.setuid(65534)
        sys.exit(pyvfmac.cli.main(sys.argv[1:]))
    """)
    return subprocess.run([sys.executable, "-I", "-c", code, "--state-dir", str(state), *argv],
                          capture_output=True, text=True, timeout=60, cwd="/")


def test_not_root() -> None:
    """A user who may not open the root-owned store: one line naming it; a command that needs
    CAP_NET_ADMIN: one line naming that."""
    base = Path(tempfile.mkdtemp(prefix="pyvfmac-nonroot-"))
    try:
        os.chmod(base, 0o755)  # reachable by nobody; the state directory itself stays 0700
        state = base / "state"
        seed(state)
        before = records(state)
        cmds = commands(base)
        for f in base.glob("*.xml"):
            os.chmod(f, 0o644)
        for argv in cmds:
            r = _as_nobody(state, *argv)
            assert r.returncode == 1, (argv, r.stderr)
            line = one_line_naming(r.stderr, str(state))
            assert "uid 0" in line or "ermission denied" in line, line
        assert records(state) == before
        # its own state directory: the store opens and works
        own = base / "own"
        own.mkdir()
        os.chown(own, 65534, 65534)
        r = _as_nobody(own / "state", "net-list")
        assert r.returncode == 0 and r.stderr == "", r.stderr
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_not_root_kernel_change_names_the_capability() -> None:
    """RTM_SETLINK without CAP_NET_ADMIN: the message says what is missing."""
    code = textwrap.dedent("""
        import os, sys
        from pyvfmac.errors import NetlinkError
        from pyvfmac.netlink import Rtnl
        nl = Rtnl()
        os.setgroups([]); os.setgid(65534); os.setuid(65534)
        try:
            nl.set_link_mac("lo", "02:00:00:00:00:01")
        except NetlinkError as exc:
            print(exc)
    """)
    r = subprocess.run([sys.executable, "-I", "-c", code], capture_output=True, text=True,
                       timeout=60, cwd="/")
    assert r.stderr == ""
    assert "EPERM" in r.stdout and "lacks CAP_NET_ADMIN" in r.stdout, r.stdout
