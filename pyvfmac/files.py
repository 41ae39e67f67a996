"""Files the user names: read as UTF-8 text, replaced atomically.

Errors are :class:`~pyvfmac.errors.FileError` (errno, the step, the path; ``PATH: cannot read:
No such file or directory``); text that is not UTF-8 is an :class:`~pyvfmac.errors.InputError`
(the file's content is the user's input).
"""

from __future__ import annotations

import os
import stat
import tempfile

from .errors import FileError, InputError

__all__ = ["read_text", "write_atomic"]


MAX_INPUT = 16 << 20
"""The largest document or configuration file read (16 MiB; a config naming 100 000 VFs is about
5 MiB): memory stays bounded whatever file is named."""


def read_text(path: str | os.PathLike[str], *, limit: int = MAX_INPUT) -> str:
    """The UTF-8 text of the file at ``path`` (at most ``limit`` bytes, else InputError)."""
    name = os.fspath(path)
    try:
        with open(name, "rb") as f:
            data = f.read(limit + 1)
        if len(data) > limit:
            raise InputError(f"{name}: larger than {limit >> 20} MiB: not a document pyvfmac "
                             "reads")
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(f"{name}: not UTF-8 text ({exc.reason})") from None
    except OSError as exc:
        raise FileError(exc.errno or 0, "cannot read", name) from None



def write_atomic(path: str | os.PathLike[str], text: str) -> None:
    """Replace the file at ``path`` with ``text`` (UTF-8) atomically: write a temporary file in
    the same directory, fsync it, rename it over ``path``, fsync the directory. A symlink is
    followed (its target is replaced); an existing file's permission bits and owner are kept, a
    new file gets 0644. On failure the temporary file is removed and the old file is untouched;
    the error is a :class:`~pyvfmac.errors.FileError` naming the path and the step."""
    target = os.path.realpath(os.fspath(path))
    directory = os.path.dirname(target) or "."
    step = "create a temporary file"
    tmp: str | None = None
    try:
        try:
            st: os.stat_result | None = os.stat(target)
        except FileNotFoundError:
            st = None
        fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(target)}.", suffix=".tmp",
                                   dir=directory)
        with os.fdopen(fd, "wb") as fh:
            step = "write"
            fh.write(text.encode("utf-8"))
            fh.flush()
            step = "fsync"
            os.fsync(fh.fileno())
            step = "set permissions"
            os.fchmod(fh.fileno(), stat.S_IMODE(st.st_mode) if st else 0o644)
            if st is not None and (st.st_uid, st.st_gid) != (os.getuid(), os.getgid()):
                os.fchown(fh.fileno(), st.st_uid, st.st_gid)
        step = "rename"
        os.replace(tmp, target)
        tmp = None
        step = "fsync the directory"
        dfd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError as exc:
        raise FileError(exc.errno or 0, f"cannot {step}", target) from exc
    finally:
        if tmp is not None:
            try:
                os.unlink(tmp)
            except OSError:
                pass

