"""``vfmac``: the command line. All of pyvfmac's printing is in this package.

Exit status: 0 success, 1 an operational error (the kernel, the state store, a device, a file's
content), 2 a usage error (the command line itself). Errors are one line on stderr.

- :mod:`.common`: program name, usage errors, global options, progress at a terminal;
- :mod:`.toplevel`: the subcommands' table, the global options, `vfmac --help` without argparse;
- :mod:`.parser`: the subcommands' options and help (argparse);
- :mod:`.listing`: ``vfmac list``;
- :mod:`.commands`: the commands that change the host.

Importing this package loads no more than :func:`main` needs before it reads its arguments:
argparse (with re, gettext and enum) is imported when a command is parsed, not for
`vfmac --help` nor a bare `vfmac`. The parser's functions are in their modules
(``pyvfmac.cli.parser.build_parser``, ``parse_args``; ``pyvfmac.cli.toplevel.command_word``;
``pyvfmac.cli.commands.parse_set_words``; ``pyvfmac.cli.listing.list_pfs``).
Subcommand modules of the package (netlink and its compiled core, topology, apply, attach,
pools, store, json, ...) are imported by the command that needs them: `vfmac apply` at boot and
every `--help` load only their own share.
"""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (mypy: always_true)

from ..errors import UsageError
from .common import PROG
from .toplevel import NO_COMMAND, command_word, help_text, text_width, usage_text

if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import TextIO

__all__ = ["UsageError", "main"]


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    words = sys.argv[1:] if argv is None else argv
    # A bare `vfmac` and `vfmac --help` are answered without argparse, as argparse answers
    # them, except at a terminal too narrow for toplevel's layout (then argparse lays it out).
    # A bare `vfmac` is the one usage error that prints the usage.
    if not words:
        usage = usage_text(text_width())
        if usage is None:
            from .parser import build_parser

            usage = build_parser().format_usage()
        _write(sys.stderr, usage)
        return _usage_error(NO_COMMAND)
    elif list(words) in (["-h"], ["--help"]):
        text = help_text(text_width())
        if text is not None:
            _write(sys.stdout, text)
            sys.exit(0)  # as argparse's --help ends, main() called in-process included
    return _run(words, out or sys.stdout)


def _write(stream: TextIO, text: str) -> None:
    try:  # as argparse prints: no stream (None), or a closed one, is not an error
        stream.write(text)
    except (AttributeError, OSError):
        pass


def _usage_error(message: object) -> int:
    print(f"{PROG}: usage error: {message}", file=sys.stderr)
    return 2


def _run(words: Sequence[str], out: TextIO) -> int:
    from ..errors import VfmacError
    from .parser import parse_args

    try:
        args = parse_args(words)
        return int(args.func(args, out))
    except UsageError as exc:  # the parser's or a command's: one line, naming the --help
        command = command_word(words)
        return _usage_error(f"{exc} (see {PROG}{' ' + command if command else ''} --help)")
    except VfmacError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 1
    except BrokenPipeError:  # `vfmac list | head`: the reader left, nothing to complain about
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    except OSError as exc:  # a file the user named
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
