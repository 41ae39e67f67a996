"""The top level of the ``vfmac`` command line, without argparse: the table of subcommands and
their one-line help, the global options, and the text `vfmac --help` and a bare `vfmac` print.

argparse (with re, gettext and enum) costs more than the interpreter's own start, and
`vfmac --help` is the command a new user runs first; :func:`.parser.build_parser` builds its top
level from the same tables, and the texts here are laid out as argparse lays them out
(tests/test_cli_help.py compares the two at every width :func:`help_text` serves).

What it saves: under TCG, `vfmac --help` went from 858 ms (2.81x `python3 -c pass`) to 391 ms
(1.23x) with this and the lazy imports (bench/results/startup-tcg.md, bench/bench_commands.py;
target 1.5x); argparse alone +148 ms there (bench/README.md). On the 2-vCPU development host
(2026-12-07, minimums of 30 runs): `python3 -c pass` 12.7 ms, `vfmac --help` 16.7 ms (1.31x),
`python3 -c 'import pyvfmac.cli, argparse'` 27.5 ms (2.2x); `python -X importtime`: argparse
+7.4 to 7.8 ms after `import pyvfmac.cli`.
"""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (mypy: always_true)

from .common import ENV_STATE, ENV_SYSFS, PROG

if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Any

# name -> one-line help, in the order of `vfmac --help` (each one's arguments: parser.py)
COMMANDS = {
    "list": "list PFs and their VFs",
    "set": "change one VF's settings through its PF",
    "attach": "prepare the VFs of a <hostdev>/<interface>/<domain> document",
    "detach": "give back the VFs of a document attached before",
    "restore": "put back a VF's saved original configuration",
    "recover": "restore every VF whose attach did not complete",
    "apply": "program all VFs of all PFs from a TOML config (boot time)",
    "watch": "keep VFs as configured while the host runs (daemon)",
    "net-define": "store a <network> pool definition",
    "net-undefine": "remove a stopped network definition",
    "net-start": "resolve a network's pool and make it usable",
    "net-stop": "stop a network (refused while VFs are in use)",
    "net-list": "list networks",
    "net-show": "show a network's pool and each VF's state",
    "libvirt-xml": "turn a <domain>'s <hostdev><mac> into libvirt XML (pyvfmac metadata)",
    "libvirt-hook": "libvirt's qemu hook: attach at prepare, give back at release",
}

# the options before the subcommand: (spellings, metavar of the value or None for a flag, help)
GLOBAL_OPTIONS: tuple[tuple[tuple[str, ...], str | None, str], ...] = (
    (("--state-dir",), "STATE_DIR",
     f"state store directory (env {ENV_STATE}; default /var/lib/pyvfmac)"),
    (("--sysfs-root",), "SYSFS_ROOT", f"where sysfs is mounted (env {ENV_SYSFS}; default /sys)"),
    (("-q", "--quiet"), None, "no progress output"),
)
_VALUE_OPTIONS = tuple(s for spellings, metavar, _ in GLOBAL_OPTIONS if metavar for s in spellings)
_FLAGS = tuple(s for spellings, metavar, _ in GLOBAL_OPTIONS if not metavar for s in spellings)

DESCRIPTION = ("Fixed MAC addresses for SR-IOV VFs: set, attach/detach with saved originals, "
               "VF pools, boot-time bulk programming.")
EPILOG = "example:\n  vfmac list\n  vfmac apply /etc/pyvfmac/vfmac.toml"

HELP_POSITION = 30  # argparse's max_help_position: the column where help texts start
# argparse's own words (its help option, headings, the error of a missing subcommand)
_HELP_OPTION = ("-h, --help", "show this help message and exit")
NO_COMMAND = "the following arguments are required: command"


def command_word(argv: Sequence[str]) -> str | None:
    """The subcommand ``argv`` names, when that is plain to see (global options spelled out in
    full before it); None otherwise (help, abbreviations, an unknown word: the whole parser)."""
    it = iter(argv)
    for word in it:
        if word in _VALUE_OPTIONS:
            next(it, None)
        elif word in _FLAGS or word.startswith(tuple(o + "=" for o in _VALUE_OPTIONS)):
            continue
        else:
            return word if word in COMMANDS else None
    return None


def columns() -> int:
    """shutil.get_terminal_size().columns, without importing shutil (and its compression
    modules) on every run just to build a parser."""
    try:
        columns = int(os.environ["COLUMNS"])
    except (KeyError, ValueError):
        columns = 0
    if columns <= 0:
        stdout: Any = sys.__stdout__  # None without a stdout
        try:
            columns = os.get_terminal_size(stdout.fileno()).columns
        except (AttributeError, ValueError, OSError):
            columns = 0
    return columns or 80


def text_width() -> int:
    """The width argparse's help formatter is given: the terminal's, less 2 (as its default)."""
    return columns() - 2


def _wrap(words: Sequence[str], width: int, indent: int, first: int | None = None) -> list[str]:
    """``words`` joined by spaces into lines that end by column ``width``, greedily; each line
    after ``indent`` columns, the first after ``first``. The wrapping of argparse's usage parts,
    and textwrap's of help words (as long as no word is longer than a line)."""
    lines: list[str] = []
    line: list[str] = []
    end = (indent if first is None else first) - 1
    for word in words:
        if line and end + 1 + len(word) > width:
            lines.append(" ".join(line))
            line = []
            end = indent - 1
        line.append(word)
        end += len(word) + 1
    if line:
        lines.append(" ".join(line))
    return lines


def _choices() -> str:
    return "{" + ",".join(COMMANDS) + "}"


def _invocation(spellings: Sequence[str], metavar: str | None) -> str:
    """``--state-dir STATE_DIR``, ``-q, --quiet``: an option as its help lists it."""
    return ", ".join(f"{s} {metavar}" if metavar else s for s in spellings)


def _usage(width: int) -> str:
    prefix = "usage: "
    options = ["[-h]"] + [f"[{spellings[0]} {metavar}]" if metavar else f"[{spellings[0]}]"
                          for spellings, metavar, _ in GLOBAL_OPTIONS]
    positionals = [_choices(), "..."]
    usage = " ".join([PROG, *options, *positionals])
    if len(prefix) + len(usage) > width:  # options after the program, positionals below them
        indent = len(prefix) + len(PROG) + 1
        lines = (_wrap([PROG, *options], width, indent, first=len(prefix))
                 + _wrap(positionals, width, indent))
        usage = ("\n" + " " * indent).join(lines)
    return prefix + usage + "\n"


def _served(width: int) -> bool:
    """Whether the texts below are argparse's at this width: help texts start at column
    HELP_POSITION (a narrow terminal moves them left), no word of theirs is longer than a line
    (textwrap would break it), and the options follow the program name in the usage."""
    help_width = width - HELP_POSITION
    texts = [*COMMANDS.values(), _HELP_OPTION[1], *(text for _, _, text in GLOBAL_OPTIONS)]
    return width - 20 >= HELP_POSITION and all(len(word) <= help_width
                                                for text in texts for word in text.split())


def usage_text(width: int) -> str | None:
    """The usage lines `vfmac` without a subcommand prints on stderr; None where argparse is
    left to lay it out (a terminal too narrow for :func:`help_text`)."""
    return _usage(width) if _served(width) else None


def help_text(width: int) -> str | None:
    """What `vfmac --help` prints at this text width; None where argparse is left to lay it out
    (a narrow terminal: see :func:`_served`)."""
    if not _served(width):
        return None
    positional = [(2, _choices(), ""), *((4, name, text) for name, text in COMMANDS.items())]
    optional = [(2, *_HELP_OPTION), *((2, _invocation(spellings, metavar), text)
                                      for spellings, metavar, text in GLOBAL_OPTIONS)]
    longest = max(indent + len(inv) for indent, inv, _ in positional + optional)
    position = min(longest + 2, HELP_POSITION)
    sections = [_usage(width), DESCRIPTION + "\n",
                "positional arguments:\n" + _items(positional, position, width),
                "options:\n" + _items(optional, position, width), EPILOG + "\n"]
    return "\n".join(sections)


def _items(items: Sequence[tuple[int, str, str]], position: int, width: int) -> str:
    """Each (indent, invocation, help): the invocation, its help from column ``position`` on the
    same line when the invocation leaves room for it, else on the lines below."""
    out = []
    for indent, invocation, text in items:
        head = " " * indent + invocation
        if not text:
            out.append(head)
            continue
        lines = _wrap(text.split(), max(width - position, 11), 0)
        if len(invocation) <= position - indent - 2:
            out.append(head.ljust(position) + lines.pop(0))
        else:
            out.append(head)
        out.extend(" " * position + line for line in lines)
    return "".join(line + "\n" for line in out)
