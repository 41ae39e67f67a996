"""``vfmac``: the command line. All of pyvfmac's printing is in this package.

Exit status: 0 success, 1 an operational error (the kernel, the state store, a device, a file's
content), 2 a usage error (the command line itself). Errors are one line on stderr.

- :mod:`.common`: program name, usage errors, global options, progress at a terminal;
- :mod:`.parser`: the subcommands, their options and help;
- :mod:`.listing`: ``vfmac list``;
- :mod:`.commands`: the commands that change the host.

Subcommand modules of the package (netlink and its compiled core, topology, apply, attach,
pools, store, json, ...) are imported by the command that needs them: `vfmac apply` at boot and
every `--help` load only their own share.
"""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (mypy: always_true)

from ..errors import VfmacError
from .commands import parse_set_words
from .common import PROG, UsageError
from .listing import list_pfs
from .parser import build_parser, command_word, parse_args

if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import TextIO

__all__ = ["UsageError", "build_parser", "command_word", "list_pfs", "main", "parse_args",
           "parse_set_words"]


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    try:
        args = parse_args(argv)
        return int(args.func(args, out))
    except UsageError as exc:
        print(f"{PROG}: usage error: {exc}", file=sys.stderr)
        return 2
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

