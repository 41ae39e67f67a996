"""What every ``vfmac`` command shares: the program name, usage errors, the global options,
progress output at a terminal, and the on/off and number words of the command line."""

from __future__ import annotations

import os
import sys

from ..errors import UsageError

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (mypy: always_true)

if TYPE_CHECKING:  # argparse only for annotations: `vfmac --help` runs without it
    import argparse
    from collections.abc import Callable

PROG = "vfmac"
ENV_STATE = "PYVFMAC_STATE_DIR"
ENV_SYSFS = "PYVFMAC_SYSFS_ROOT"


def sysfs_root(args: argparse.Namespace) -> str:
    return str(args.sysfs_root or os.environ.get(ENV_SYSFS) or "/sys")


def state_dir(args: argparse.Namespace) -> str | None:
    return args.state_dir or os.environ.get(ENV_STATE) or None


def progress(args: argparse.Namespace) -> Callable[[str], None] | None:
    """A progress printer for long work, only at a terminal."""
    if args.quiet or not sys.stderr.isatty():
        return None

    def show(text: str) -> None:
        print(f"{PROG}: {text}", file=sys.stderr, flush=True)

    return show


def status_line(args: argparse.Namespace) -> Callable[[str], None] | None:
    """One status line for long work, rewritten in place on stderr and cleared by ``""``; only
    when stderr is a terminal (never in pipes, files or journals) and not ``--quiet``."""
    if args.quiet or not sys.stderr.isatty():
        return None
    stream = sys.stderr
    try:
        width = os.get_terminal_size(stream.fileno()).columns or 80  # 0: a serial console
    except (OSError, ValueError):
        width = 80
    shown = False

    def show(text: str) -> None:
        nonlocal shown
        if not text and not shown:
            return
        line = f"{PROG}: {text}" if text else ""
        stream.write("\r\x1b[K" + line[: max(width - 1, 10)])
        stream.flush()
        shown = bool(text)

    return show


def int_word(word: str, value: str) -> int:
    try:
        return int(value, 0)
    except ValueError:
        raise UsageError(f"{word} {value!r}: not a number") from None


def onoff_word(word: str, value: str) -> bool:
    if value not in ("on", "off"):
        raise UsageError(f"{word} {value!r}: use on or off")
    return value == "on"
