"""Run a command with its stderr on a pseudo-terminal (what a user at a terminal sees) or on a
pipe (what a log or a script gets). Shared by the unit and the testbed tests."""

from __future__ import annotations

import os
import pty
import subprocess
import tempfile
from collections.abc import Sequence


def run_with_stderr(argv: Sequence[str], *, tty: bool,
                    cwd: str | None = None) -> tuple[int, str, str]:
    """(exit status, stdout, stderr as the terminal or pipe received it)."""
    if not tty:
        proc = subprocess.run(list(argv), capture_output=True, text=True, cwd=cwd)
        return proc.returncode, proc.stdout, proc.stderr
    master, slave = pty.openpty()
    chunks: list[bytes] = []
    with tempfile.TemporaryFile() as out:
        try:
            proc = subprocess.Popen(list(argv), stdout=out, stderr=slave, cwd=cwd)
            os.close(slave)
            slave = -1
            while True:  # read while it runs: a full terminal buffer would block it
                try:
                    chunk = os.read(master, 65536)
                except OSError:  # EIO: every writer is gone and everything was read
                    break
                if not chunk:
                    break
                chunks.append(chunk)
            status = proc.wait()
        finally:
            os.close(master)
            if slave >= 0:
                os.close(slave)
        out.seek(0)
        return status, out.read().decode(), b"".join(chunks).decode()
