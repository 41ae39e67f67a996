"""The vfmac command line: argument handling, exit statuses, one-line errors (no VFs needed)."""

from __future__ import annotations

import io
import json
import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from fakesysfs import FakeSysfs
from ttyrun import run_with_stderr

from pyvfmac.cli import UsageError, main
from pyvfmac.cli.commands import parse_set_words
from pyvfmac.cli.parser import build_parser, parse_args
from pyvfmac.cli.toplevel import command_word
from pyvfmac.records import Original
from pyvfmac.settings import SETTINGS
from pyvfmac.store import Store
from pyvfmac.types import LinkInfo, VfChange, VfState


def run(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    return main(list(argv), out=out), out.getvalue()


def test_set_words_become_a_change() -> None:
    got = parse_set_words("eth0", "3", ["mac", "52:54:00:6d:90:02", "vlan", "42", "qos", "3",
                                        "proto", "802.1ad", "spoofchk", "off", "trust", "on",
                                        "state", "disable", "max_tx_rate", "100"])
    assert got == VfChange(pf="eth0", vf=3, mac="52:54:00:6d:90:02", vlan=42, qos=3,
                           vlan_proto="802.1ad", spoofchk=False, trust=True,
                           link_state="disable", max_tx_rate=100)


@pytest.mark.parametrize(("words", "message"), [
    ([], "nothing to set"),
    (["mac"], "needs a value"),
    (["colour", "red"], "unknown setting 'colour'"),
    (["qos", "3"], "qos and proto go with a vlan"),
    (["vlan", "x"], "vlan 'x'"),
    (["trust", "yes"], "use on or off"),
    (["mac", "02:00:00:00:00:01", "mac", "02:00:00:00:00:02"], "mac given twice"),
])
def test_bad_set_words(words: list[str], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        parse_set_words("eth0", "1", words)


def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert run("set", "eth0", "1")[0] == 2
    assert run("frobnicate")[0] == 2
    assert run("restore")[0] == 2
    assert run("restore", "eth0")[0] == 2
    err = capsys.readouterr().err
    assert "vfmac: usage error:" in err


def test_operational_errors_exit_1_with_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert run("set", "lo", "0", "mac", "02:00:00:00:00:01")[0] == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["vfmac: error: lo: no VF 0 (the PF has 0 VFs)"]
    assert run("set", "nosuchdev7", "0", "trust", "on")[0] == 1
    assert "nosuchdev7: no such network device" in capsys.readouterr().err


def test_invalid_mac_on_the_command_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert run("set", "lo", "0", "mac", "01:00:5e:00:00:01")[0] == 2
    assert "multicast" in capsys.readouterr().err


def test_every_command_has_an_example() -> None:
    parser = build_parser()
    subs = next(a for a in parser._actions if a.dest == "command")
    for name, sub in subs.choices.items():  # type: ignore[union-attr]
        assert "example:" in sub.format_help(), name


PF_KEYS = {"pf", "ifindex", "pci", "driver", "parent", "numvfs", "totalvfs", "missing_vfs", "vfs"}
VF_KEYS = {"vf", "pci", "netdev", "driver", "held"} | set(SETTINGS)


class FakeRtnl:
    """``pyvfmac.netlink.Rtnl`` over a fixed dump of links (the test's own)."""

    links: list[LinkInfo] = []

    def __enter__(self) -> FakeRtnl:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def dump_links(self) -> list[LinkInfo]:
        return self.links


def pf_link(ifindex: int, name: str, pci: str | None, vfs: int, *,
            bus: str | None = "pci") -> LinkInfo:
    states = tuple(VfState(vf=i, mac=f"02:00:00:00:00:{i:02x}") for i in range(vfs))
    return LinkInfo(ifindex=ifindex, name=name, mac=None, perm_mac=None, parent_bus=bus,
                    parent_dev=pci, num_vf=vfs, vfs=states)


def test_list_names_every_pf_with_vfs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`vfmac list` on a fake host with VFs, checked against what the test itself built (not
    against the same sysfs walk the command uses): two PCI PFs with VFs, a PCI PF without, a
    netdevsim PF (no PCI function) and lo. Each PF with VFs is listed once, with its own PCI
    address and VFs; the others are not."""
    fs = FakeSysfs(tmp_path / "sys")
    fs.add_pf("0000:01:00.0", totalvfs=8, driver="igb", netdevs=("eth0",))
    for i, vf in enumerate(("0000:01:10.0", "0000:01:10.2")):
        fs.add_vf("0000:01:00.0", i, vf, driver="igbvf", netdevs=(f"eth0v{i}",))
    fs.add_pf("0000:02:00.0", totalvfs=4, driver="ice", netdevs=("eth1",))
    for i, vf in enumerate(("0000:02:01.0", "0000:02:01.1", "0000:02:01.2")):
        fs.add_vf("0000:02:00.0", i, vf, driver="iavf")
    fs.add_pf("0000:03:00.0", totalvfs=4, driver="ice", netdevs=("eth2",))  # no VFs
    monkeypatch.setattr(FakeRtnl, "links", [
        LinkInfo(ifindex=1, name="lo", mac=None, perm_mac=None, parent_bus=None,
                 parent_dev=None, num_vf=None, vfs=()),
        pf_link(2, "eth0", "0000:01:00.0", 2),
        pf_link(3, "eth1", "0000:02:00.0", 3),
        pf_link(4, "eth2", "0000:03:00.0", 0),
        pf_link(5, "eni0", "netdevsim1", 2, bus="netdevsim"),
    ])
    monkeypatch.setattr("pyvfmac.netlink.Rtnl", FakeRtnl)
    common = ("--sysfs-root", str(fs.root), "--state-dir", str(tmp_path / "st"), "list")
    code, out = run(*common, "--json")
    assert code == 0
    pfs = json.loads(out)
    assert all(set(pf) == PF_KEYS and all(set(vf) == VF_KEYS for vf in pf["vfs"]) for pf in pfs)
    assert [(pf["pf"], pf["pci"], pf["numvfs"], [vf["pci"] for vf in pf["vfs"]])
            for pf in pfs] == [
        ("eth0", "0000:01:00.0", 2, ["0000:01:10.0", "0000:01:10.2"]),
        ("eth1", "0000:02:00.0", 3, ["0000:02:01.0", "0000:02:01.1", "0000:02:01.2"]),
        ("eni0", None, 2, [None, None]),
    ]
    code, text = run(*common)
    assert code == 0
    assert [line.split("  ")[:3] for line in text.splitlines() if not line.startswith(" ")] == [
        ["eth0", "0000:01:00.0", "driver igb"], ["eth1", "0000:02:00.0", "driver ice"],
        ["eni0", "netdevsim:netdevsim1", "driver -"]]
    # a host without VFs says so, in both forms
    monkeypatch.setattr(FakeRtnl, "links", FakeRtnl.links[:1] + FakeRtnl.links[3:4])
    assert run(*common) == (0, "no SR-IOV physical functions with VFs\n")
    assert run(*common, "--json") == (0, "[]\n")


def test_list_json_on_a_fake_host(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Links from a fake rtnetlink dump, PCI facts from a fake sysfs tree, holders from the
    store: every field of the listing checked."""
    fs = FakeSysfs(tmp_path / "sys")
    fs.add_pf("0000:01:00.0", totalvfs=7, vendor=0x8086, device=0x10C9, class_code=0x020000,
              driver="igb", netdevs=("eth0",))
    vfs = fs.add_vfs("0000:01:00.0", 2, driver="igbvf", netdev_fmt="eth0v{i}")
    links = [
        LinkInfo(ifindex=2, name="eth0", mac="52:54:00:00:00:01", perm_mac=None,
                 parent_bus="pci", parent_dev="0000:01:00.0", num_vf=2,
                 vfs=(VfState(vf=0, mac="02:00:00:00:00:10", vlan=42, spoofchk=True),
                      VfState(vf=1, mac="00:00:00:00:00:00", qos=0, vlan_proto="802.1ad",
                              trust=False, link_state="disable", min_tx_rate=5,
                              max_tx_rate=50))),
        LinkInfo(ifindex=1, name="lo", mac=None, perm_mac=None, parent_bus=None,
                 parent_dev=None, num_vf=None, vfs=()),
    ]

    class FakeRtnl:
        def __enter__(self) -> FakeRtnl:
            return self

        def __exit__(self, *exc: object) -> None:
            pass

        def dump_links(self) -> list[LinkInfo]:
            return links

    monkeypatch.setattr("pyvfmac.netlink.Rtnl", FakeRtnl)
    with Store(tmp_path / "st") as store:
        store.save_original(Original(vf_key=vfs[0].name, pf="eth0", vf=0, mac="00:00:00:00:00:00"),
                            owner="mac:02:00:00:00:00:10", mac="02:00:00:00:00:10", managed=False)
    code, out = run("--sysfs-root", str(fs.root), "--state-dir", str(tmp_path / "st"), "list",
                    "--json")
    assert code == 0
    (pf,) = json.loads(out)
    assert {k: v for k, v in pf.items() if k != "vfs"} == {
        "pf": "eth0", "ifindex": 2, "pci": "0000:01:00.0", "driver": "igb",
        "parent": "pci:0000:01:00.0", "numvfs": 2, "totalvfs": 7, "missing_vfs": 0}
    assert [(v["vf"], v["pci"], v["netdev"], v["driver"], v["mac"], v["vlan"], v["held"])
            for v in pf["vfs"]] == [
        (0, vfs[0].name, "eth0v0", "igbvf", "02:00:00:00:00:10", 42,
         "attached (mac:02:00:00:00:00:10, saved)"),
        (1, vfs[1].name, "eth0v1", "igbvf", "00:00:00:00:00:00", 0, None)]
    for listed, state in zip(pf["vfs"], links[0].vfs):  # every setting, as read
        assert {k: listed[k] for k in SETTINGS} == {k: getattr(state, k) for k in SETTINGS}
    with Store(tmp_path / "st") as store:  # attached: the phase is no longer said
        store.set_phase(vfs[0].name, "attached")
    code, out = run("--sysfs-root", str(fs.root), "--state-dir", str(tmp_path / "st"), "list",
                    "--json")
    assert json.loads(out)[0]["vfs"][0]["held"] == "attached (mac:02:00:00:00:00:10)"
    assert out == json.dumps(json.loads(out), indent=2) + "\n"  # json.dump's own layout


def test_attach_malformed_xml(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    doc = tmp_path / "bad.xml"
    doc.write_text("<hostdev mode='subsystem' type='pci'><source>")
    code, _ = run("--state-dir", str(tmp_path / "st"), "attach", str(doc))
    assert code == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "bad.xml" in err


@pytest.mark.parametrize("command", ["apply", "attach", "detach", "net-define"])
def test_a_file_that_cannot_be_read_is_one_line_in_one_form(
        command: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Every command that reads a file the user named says so alike: `PATH: cannot read: REASON`
    (not Python's `[Errno 2] ...`), exit 1, and nothing is left in the state store."""
    state = tmp_path / "st"
    for path, reason in ((tmp_path / "nonexistent.xml", "No such file or directory"),
                         (tmp_path, "Is a directory")):
        code, out = run("--state-dir", str(state), command, str(path))
        assert (code, out) == (1, "")
        assert capsys.readouterr().err == f"vfmac: error: {path}: cannot read: {reason}\n"
    if state.exists():
        with Store(state) as store:
            assert store.all() == [] and store.networks() == []


def test_state_dir_from_environment_is_private(tmp_path: Path) -> None:
    state = tmp_path / "state"
    env = dict(os.environ, PYVFMAC_STATE_DIR=str(state))
    proc = subprocess.run([sys.executable, "-P", "-m", "pyvfmac.cli", "net-list", "--json"],
                          env=env, capture_output=True, text=True, cwd="/")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == []
    assert stat.S_IMODE(state.stat().st_mode) == 0o700
    assert stat.S_IMODE((state / "state.db").stat().st_mode) == 0o600


def test_list_with_an_unusable_store_still_lists(tmp_path: Path) -> None:
    """A listing is a read: a state store that cannot be opened (here: read-only, as in a
    container with the host's /var/lib mounted read-only) costs the holders column, not the
    listing; stderr says why."""
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    (state / "state.db").mkdir()  # not a database file: Store() refuses it
    env = dict(os.environ, PYVFMAC_STATE_DIR=str(state))
    proc = subprocess.run([sys.executable, "-P", "-m", "pyvfmac.cli", "list", "--json"],
                          env=env, capture_output=True, text=True, cwd="/")
    assert proc.returncode == 0, proc.stderr
    assert isinstance(json.loads(proc.stdout), list)
    assert "warning: VFs held by pyvfmac not shown" in proc.stderr
    assert str(state / "state.db") in proc.stderr


def test_detach_unknown_device_is_clear(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    doc = tmp_path / "d.xml"
    doc.write_text("<hostdev mode='subsystem' type='pci'><source><address bus='0x06' slot='0x02'"
                   " function='0x0'/></source><mac address='52:54:00:6d:90:02'/></hostdev>")
    code, _ = run("--state-dir", str(tmp_path / "st"), "detach", str(doc))
    assert code == 1
    assert "0000:06:02.0 was never attached by pyvfmac" in capsys.readouterr().err


# ------------------------------------------------------------- one subcommand's parser only


@pytest.mark.parametrize(("argv", "word"), [
    (["apply", "x.toml"], "apply"),
    (["-q", "--state-dir", "/s", "--sysfs-root=/h", "apply"], "apply"),
    (["--sysfs-root", "apply", "list"], "list"),  # "apply" is the option's value here
    (["--help"], None),
    (["--state", "/s", "apply"], None),  # an abbreviation: the whole parser decides
    (["frobnicate"], None),
    ([], None),
])
def test_command_word(argv: list[str], word: str | None) -> None:
    assert command_word(argv) == word


@pytest.mark.parametrize("argv", [
    ["apply"], ["-q", "apply", "/tmp/x.toml", "--dry-run"], ["--state-dir", "/s", "list", "--json"],
    ["set", "eth0", "3", "mac", "02:00:00:00:00:01"], ["restore", "--all", "--force"],
    ["net-stop", "pool", "--force"], ["net-show", "pool", "--json"], ["recover"],
])
def test_one_subcommand_parser_parses_like_the_whole(argv: list[str]) -> None:
    whole = build_parser().parse_args(argv)
    assert vars(parse_args(argv)) == vars(whole)
    only = build_parser(command_word(argv))
    (action,) = [a for a in only._actions if a.dest == "command"]
    assert list(action.choices or ()) == [whole.command]
    assert vars(only.parse_args(argv)) == vars(whole)


def test_one_subcommand_help_is_the_whole_parsers() -> None:
    def subs(p: Any) -> dict[str, Any]:
        return dict(next(a for a in p._actions if a.dest == "command").choices)

    whole = subs(build_parser())
    for name, sub in whole.items():
        assert subs(build_parser(name))[name].format_help() == sub.format_help(), name


def test_errors_come_from_the_whole_parser(capsys: pytest.CaptureFixture[str]) -> None:
    """A usage error seen by the one-subcommand parser is reported by the whole parser: the
    same usage line and message as before."""
    for argv in (["apply", "a.toml", "b.toml"], ["--quiet", "apply", "--frob"]):
        with pytest.raises(UsageError) as got:
            parse_args(argv)
        mine = capsys.readouterr().err
        with pytest.raises(UsageError) as want:
            build_parser().parse_args(argv)
        assert str(got.value) == str(want.value)
        assert mine == capsys.readouterr().err == ""  # one line, printed by main


@pytest.mark.parametrize(("argv", "line"), [
    (["attach", "--pci", "0000:01:10.4", "--mac", "52:54:00:12:34:59", "--vlan", "x",
      "--owner", "vm1"], "argument --vlan: invalid int value: 'x' (see vfmac attach --help)"),
    (["apply", "a.toml", "b.toml"], "unrecognized arguments: b.toml (see vfmac apply --help)"),
    (["--frob"], "the following arguments are required: command (see vfmac --help)"),
    (["set", "eth16", "2", "qos", "3"], "qos and proto go with a vlan (see vfmac set --help)"),
    (["restore"], "give PF VF, or --all (see vfmac restore --help)"),
])
def test_usage_errors_are_one_line(argv: list[str], line: str,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    assert capsys.readouterr() == ("", f"vfmac: usage error: {line}\n")


# ---------------------------------------------------------------- vfmac apply: imports, TTY


def _lo_config(tmp_path: Path) -> Path:
    """A config of PF ``lo``, which this sysfs root (``--sysfs-root tmp_path/sys``) makes an
    SR-IOV PF with no VFs (``lo`` itself is no PF: apply refuses it)."""
    dev = tmp_path / "sys" / "class" / "net" / "lo" / "device"
    dev.mkdir(parents=True, exist_ok=True)
    (dev / "sriov_numvfs").write_text("0\n")
    cfg = tmp_path / "vfmac.toml"
    cfg.write_text('[[pf]]\nname = "lo"\n')
    return cfg


def test_apply_imports_only_what_it_needs(tmp_path: Path) -> None:
    """`vfmac apply` loads no OpenSSL, SQLite, XML, json or attach/pool modules; `vfmac apply
    --help` not even the netlink core."""
    code = (
        "import sys\n"
        "before = set(sys.modules)\n"
        "from pyvfmac.cli import main\n"
        "try:\n"
        "    rc = main(sys.argv[1:])\n"
        "except SystemExit as exc:\n"
        "    rc = exc.code\n"
        "print(rc, ' '.join(sorted(set(sys.modules) - before)), file=sys.stderr)\n"
    )
    never = {"hashlib", "_hashlib", "hmac", "json", "sqlite3", "_sqlite3", "xml", "defusedxml",
             "shutil", "pyvfmac.attach", "pyvfmac.pools", "pyvfmac.store", "pyvfmac.statedb",
             "pyvfmac.records", "pyvfmac.host", "pyvfmac.restore", "pyvfmac.xmltree",
             "pyvfmac.portsettings", "pyvfmac.network", "pyvfmac.domain", "pyvfmac.files",
             "pyvfmac.pcibind"}
    for argv, also_never in (
        (["--sysfs-root", str(tmp_path / "sys"), "apply", "--dry-run",
          str(_lo_config(tmp_path))], {"uuid", "platform"}),
        (["apply", "--help"], {"pyvfmac.netlink", "pyvfmac._native", "pyvfmac.apply",
                               "pyvfmac.topology", "tomllib", "uuid", "socket"}),
    ):
        proc = subprocess.run([sys.executable, "-P", "-c", code, *argv], capture_output=True,
                              text=True, cwd="/")
        rc, _, loaded = proc.stderr.strip().splitlines()[-1].partition(" ")
        assert rc == "0", proc.stderr
        modules = set(loaded.split())
        assert "pyvfmac.cli" in modules
        if "--dry-run" in argv:
            assert {"pyvfmac.apply.run", "pyvfmac.netlink", "tomllib"} <= modules
        bad = {m for m in modules if m in never | also_never or m.split(".")[0] in never}
        assert not bad, (argv, sorted(bad))


def _apply_with_stderr(tmp_path: Path, *extra: str, tty: bool) -> tuple[int, str, str]:
    """`vfmac apply --dry-run` on `lo`; stderr a pty (a terminal) or a pipe."""
    cfg = _lo_config(tmp_path)
    argv = [sys.executable, "-P", "-m", "pyvfmac.cli", *extra, "--sysfs-root",
            str(tmp_path / "sys"), "apply", "--dry-run", str(cfg)]
    return run_with_stderr(argv, tty=tty, cwd="/")


def test_apply_progress_line_only_at_a_terminal(tmp_path: Path) -> None:
    report = ["lo: 0 VFs, 0 to change, 0 unchanged",
              "dry run: 0 changes would be made; nothing was changed"]
    rc, out, err = _apply_with_stderr(tmp_path, tty=True)
    assert rc == 0 and out.splitlines() == report
    # one status line, rewritten in place and cleared before the report: nothing left behind
    assert err == "\r\x1b[Kvfmac: reading the host's links\r\x1b[K", repr(err)
    rc, out, err = _apply_with_stderr(tmp_path, tty=False)
    assert (rc, out.splitlines(), err) == (0, report, "")
    rc, out, err = _apply_with_stderr(tmp_path, "--quiet", tty=True)
    assert (rc, out.splitlines(), err) == (0, report, "")


def test_set_says_what_the_vf_has_in_its_own_words() -> None:
    """The line `vfmac set` prints after a change: qos and proto with a VLAN, rates when set
    (a user trial missed them: they were applied and not shown)."""
    from pyvfmac.settings import VfState
    from pyvfmac.settings import words as set_words

    plain = VfState(vf=2, mac="02:11:22:33:44:55", spoofchk=True, trust=False, link_state="auto")
    assert set_words(plain) == ("mac 02:11:22:33:44:55 vlan 0 spoofchk on trust off state auto")
    tagged = VfState(vf=2, mac="02:11:22:33:44:55", vlan=10, qos=3, vlan_proto="802.1ad",
                     spoofchk=True, trust=False, link_state="disable", min_tx_rate=10,
                     max_tx_rate=100)
    assert set_words(tagged) == ("mac 02:11:22:33:44:55 vlan 10 qos 3 proto 802.1ad spoofchk on "
                                 "trust off state disable min_tx_rate 10 max_tx_rate 100")
