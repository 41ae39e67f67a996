"""`vfmac --help` and a bare `vfmac` without argparse (issue 15): the same text as the argparse
parser prints, at every width; what `import pyvfmac.cli` loads."""

from __future__ import annotations

import subprocess
import sys

import pytest

from pyvfmac.cli import UsageError, main, toplevel
from pyvfmac.cli.parser import _ARGUMENTS, build_parser

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
    usage = capsys.readouterr().err
    assert usage.startswith("usage: vfmac ")
    assert main([]) == 2
    assert capsys.readouterr() == ("", f"{usage}vfmac: usage error: {error.value}\n")


def _loaded(argv: list[str], env: dict[str, str] | None = None) -> tuple[int, str, set[str]]:
    """Run ``argv`` (a Python program) with -X importtime: exit status, stdout, modules."""
    proc = subprocess.run([sys.executable, "-X", "importtime", *argv], capture_output=True,
                          text=True, cwd="/", env=env, input="")
    modules = {line.rsplit("|", 1)[-1].strip() for line in proc.stderr.splitlines()
               if line.startswith("import time:")}
    return proc.returncode, proc.stdout, modules


def test_import_cli_loads_no_argparse() -> None:
    rc, _, modules = _loaded(["-P", "-c", "import pyvfmac.cli"])
    assert rc == 0 and "pyvfmac.cli" in modules
    assert not modules & HEAVY, sorted(modules & HEAVY)
    assert "pyvfmac.cli.parser" not in modules and "pyvfmac.errors" not in modules
