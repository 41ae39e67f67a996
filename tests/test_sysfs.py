"""pyvfmac.sysfs: sriov_numvfs writes (a file, a FIFO, a missing path)."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from pyvfmac.errors import SysfsError
from pyvfmac.sysfs import set_numvfs, write_attr


def test_set_numvfs_writes_target(tmp_path: Path) -> None:
    attr = tmp_path / "sriov_numvfs"
    attr.write_text("")
    set_numvfs(str(attr), 4, 8, device="eth0")
    assert attr.read_text() == "8"
    set_numvfs(str(attr), 8, 8, device="eth0")  # no write at all
    assert attr.read_text() == "8"


def test_set_numvfs_goes_through_zero(tmp_path: Path) -> None:
    """N -> M writes 0 first (the kernel refuses N -> M): the bytes written, seen in a FIFO."""
    fifo = tmp_path / "sriov_numvfs"
    os.mkfifo(fifo)
    reader = os.open(fifo, os.O_RDWR | os.O_NONBLOCK)  # held open: writers never block
    try:
        set_numvfs(str(fifo), 4, 8, device="eth0")
        assert os.read(reader, 100) == b"08"
        set_numvfs(str(fifo), 0, 3, device="eth0")
        set_numvfs(str(fifo), 3, 0, device="eth0")
        assert os.read(reader, 100) == b"30"
    finally:
        os.close(reader)


def test_set_numvfs_error_names_path_and_errno(tmp_path: Path) -> None:
    path = tmp_path / "missing" / "sriov_numvfs"
    with pytest.raises(SysfsError) as exc:
        set_numvfs(str(path), 0, 8, device="eth0")
    assert exc.value.errno == errno.ENOENT and exc.value.device == "eth0"
    assert str(exc.value) == f"eth0: cannot open {path}: No such file or directory (ENOENT)"
    with pytest.raises(SysfsError) as exc2:
        set_numvfs(str(tmp_path), 0, 8, device="eth0")  # a directory: EISDIR
    assert exc2.value.errno == errno.EISDIR


def test_write_error_shows_a_count_bare_and_a_word_quoted() -> None:
    """The texts `vfmac apply` (sriov_numvfs) and attach (driver_override) printed before both
    went through write_attr; /dev/full refuses every write (ENOSPC)."""
    with pytest.raises(SysfsError) as exc:
        set_numvfs("/dev/full", 0, 16, device="eth0")
    assert str(exc.value) == "eth0: cannot write 16 to /dev/full: No space left on device (ENOSPC)"
    with pytest.raises(SysfsError) as exc:
        write_attr("/dev/full", "vfio-pci\n", device="0000:03:10.0")
    assert str(exc.value).startswith("0000:03:10.0: cannot write 'vfio-pci' to /dev/full: ")
