"""`vfmac --help` and a bare `vfmac` without argparse (issue 15): the same text as the argparse
parser prints, at every width; what `import pyvfmac.cli` and the installed scripts load."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pyvfmac.cli import UsageError, main, toplevel
from pyvfmac.cli.toplevel import NO_COMMAND
from pyvfmac.cli.parser import _ARGUMENTS, build_parser

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"
# what the fast paths must not load: argparse and what it brings, and the heavy typing modules
HEAVY = {"argparse", "re", "gettext", "locale", "typing", "dataclasses", "enum"}


def _argparse_help(monkeypatch: pytest.MonkeyPatch, columns: int) -> str:
    monkeypatch.setenv("COLUMNS", str(columns))
    return build_parser().format_help()


def test_every_subcommand_has_arguments_and_help() -> None:
    assert list(_ARGUMENTS) == list(toplevel.COMMANDS)


def test_help_text_is_argparse_s_at_every_width(monkeypatch: pytest.MonkeyPatch) -> None:
    """The fast text, where it is offered, is byte for byte what the argparse parser built from
    the same tables prints: a subcommand, option or help text changed in one place only, or an
    argparse whose layout differs, fails here."""
    served = []
    for columns in range(10, 301):
        width = columns - 2
        monkeypatch.setenv("COLUMNS", str(columns))
        assert toplevel.text_width() == width
        text = toplevel.help_text(width)
        assert (toplevel.usage_text(width) is None) == (text is None), columns
        if text is None:
            continue
        served.append(columns)
        parser = build_parser()
        assert text == parser.format_help(), columns
        assert toplevel.usage_text(width) == parser.format_usage(), columns
    # every common terminal is served; only narrow ones are left to argparse
    assert served == list(range(served[0], 301)) and served[0] <= 70, served[:3]


@pytest.mark.parametrize("columns", [80, 200, 40])
@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_main_help(flag: str, columns: int, monkeypatch: pytest.MonkeyPatch,
                   capsys: pytest.CaptureFixture[str]) -> None:
    """`vfmac --help` ends as argparse's does (SystemExit 0, the help on stdout) at a terminal
    the fast text serves (80, 200) and one it leaves to argparse (40)."""
    want = _argparse_help(monkeypatch, columns)
    with pytest.raises(SystemExit) as done:
        main([flag])
    assert done.value.code == 0
    assert capsys.readouterr() == (want, "")


@pytest.mark.parametrize("columns", [80, 200, 40])
def test_main_without_a_subcommand(columns: int, monkeypatch: pytest.MonkeyPatch,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    """A bare `vfmac`: argparse's usage and its error message on stderr, exit status 2."""
    monkeypatch.setenv("COLUMNS", str(columns))
    with pytest.raises(UsageError) as error:
        build_parser().parse_args([])
    usage = build_parser().format_usage()
    assert usage.startswith("usage: vfmac ") and capsys.readouterr() == ("", "")
    assert str(error.value) == NO_COMMAND
    assert main([]) == 2
    assert capsys.readouterr() == ("", f"{usage}vfmac: usage error: {NO_COMMAND}\n")


def _loaded(argv: list[str], env: dict[str, str] | None = None) -> tuple[int, str, set[str]]:
    """Run ``argv`` (a Python program) with -X importtime: exit status, stdout, modules."""
    proc = subprocess.run([sys.executable, "-X", "importtime", *argv], capture_output=True,
                          text=True, cwd="/", env=env, input="")
    modules = {line.rsplit("|", 1)[-1].strip() for line in proc.stderr.splitlines()
               if line.startswith("import time:")}
    return proc.returncode, proc.stdout, modules


def _heavy(modules: set[str]) -> set[str]:
    """The heavy modules among ``modules`` that the interpreter's own start does not load here
    (``site`` and its .pth hooks: an editable install's loader imports some of them)."""
    return (modules - _loaded(["-P", "-c", "pass"])[2]) & HEAVY


def test_import_cli_loads_no_argparse() -> None:
    rc, _, modules = _loaded(["-P", "-c", "import pyvfmac.cli"])
    assert rc == 0 and "pyvfmac.cli" in modules
    assert not _heavy(modules), sorted(_heavy(modules))
    # pyvfmac.errors (UsageError, with every exception) imports errno and os only
    assert "pyvfmac.cli.parser" not in modules


def test_the_vfmac_script(monkeypatch: pytest.MonkeyPatch) -> None:
    """scripts/vfmac (installed as `vfmac`): `--help` loads nothing heavy and prints argparse's
    help; a subcommand still runs (its parser loads argparse then)."""
    env = dict(os.environ, COLUMNS="80")
    rc, out, modules = _loaded([str(SCRIPTS / "vfmac"), "--help"], env)
    assert rc == 0 and out == _argparse_help(monkeypatch, 80)
    assert "pyvfmac.cli" in modules and not _heavy(modules), sorted(_heavy(modules))
    rc, out, modules = _loaded([str(SCRIPTS / "vfmac"), "net-list", "--help"], env)
    assert rc == 0 and out.startswith("usage: vfmac net-list") and "argparse" in modules


def test_the_vfmac_cni_plugin_run_here() -> None:
    """What the vfmac-cni forwarder execs when no daemon answers (csrc/vfm_cni_forward.c)."""
    env = dict(os.environ, CNI_COMMAND="VERSION")
    rc, out, modules = _loaded(["-c", "from pyvfmac.cni.main import main; main()"], env)
    assert rc == 0 and "1.0.0" in json.loads(out)["supportedVersions"]
    assert "pyvfmac.cni.main" in modules


@pytest.mark.parametrize("name", ["vfmac"])
def test_installed_scripts_are_the_repo_s(name: str) -> None:
    """The venv's commands are scripts/ (meson.build), not pip's wrappers that import re; pip
    replaced only their `#!python` line."""
    installed = Path(sys.prefix) / "bin" / name
    if not installed.exists():
        pytest.skip(f"{installed}: not installed (an editable install has no scripts)")
    mine = (SCRIPTS / name).read_text().splitlines()
    theirs = installed.read_text().splitlines()
    assert mine[0] == "#!python" and theirs[0].startswith("#!/")
    assert theirs[1:] == mine[1:]
    assert os.access(installed, os.X_OK)
