"""The vfmac command line: argument handling, exit statuses, one-line errors (no VFs needed)."""

from __future__ import annotations

import io
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from pyvfmac.cli import UsageError, build_parser, main, parse_set_words
from pyvfmac.types import VfChange


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


def test_list_json_is_a_list_of_pfs() -> None:
    code, out = run("list", "--json")
    assert code == 0
    pfs = json.loads(out)
    assert isinstance(pfs, list)
    for pf in pfs:  # a host with VFs: every PF object has its vfs list
        assert isinstance(pf["vfs"], list)


def test_attach_malformed_xml(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    doc = tmp_path / "bad.xml"
    doc.write_text("<hostdev mode='subsystem' type='pci'><source>")
    code, _ = run("--state-dir", str(tmp_path / "st"), "attach", str(doc))
    assert code == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "bad.xml" in err


def test_state_dir_from_environment_is_private(tmp_path: Path) -> None:
    state = tmp_path / "state"
    env = dict(os.environ, PYVFMAC_STATE_DIR=str(state))
    proc = subprocess.run([sys.executable, "-P", "-m", "pyvfmac.cli", "net-list", "--json"],
                          env=env, capture_output=True, text=True, cwd="/")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == []
    assert stat.S_IMODE(state.stat().st_mode) == 0o700
    assert stat.S_IMODE((state / "state.db").stat().st_mode) == 0o600


def test_detach_unknown_device_is_clear(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    doc = tmp_path / "d.xml"
    doc.write_text("<hostdev mode='subsystem' type='pci'><source><address bus='0x06' slot='0x02'"
                   " function='0x0'/></source><mac address='52:54:00:6d:90:02'/></hostdev>")
    code, _ = run("--state-dir", str(tmp_path / "st"), "detach", str(doc))
    assert code == 1
    assert "0000:06:02.0 was never attached by pyvfmac" in capsys.readouterr().err
