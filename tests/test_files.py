"""Files: atomic replacement, reading text, the errors naming the path."""

from __future__ import annotations

import errno
import os
import pickle
import stat
from pathlib import Path

import pytest
from xmlcases import domain_text

from pyvfmac.domain import DeviceDocument
from pyvfmac.errors import FileError, InputError, KernelError, VfmacError
from pyvfmac.files import read_text, write_atomic
from pyvfmac.types import PciAddress


# ------------------------------------------------------------------------------------------
# write_atomic
# ------------------------------------------------------------------------------------------


def test_write_atomic_replaces_and_keeps_mode(tmp_path: Path) -> None:
    target = tmp_path / "guest.xml"
    target.write_text("old")
    target.chmod(0o640)
    write_atomic(target, "new \u00e9")
    assert target.read_text(encoding="utf-8") == "new \u00e9"
    assert stat.S_IMODE(target.stat().st_mode) == 0o640
    assert sorted(os.listdir(tmp_path)) == ["guest.xml"]  # no temporary file left


def test_write_atomic_new_file_and_symlink(tmp_path: Path) -> None:
    real = tmp_path / "real.xml"
    write_atomic(real, "a")
    assert real.read_text() == "a" and stat.S_IMODE(real.stat().st_mode) == 0o644
    link = tmp_path / "link.xml"
    link.symlink_to(real)
    write_atomic(link, "b")
    assert link.is_symlink() and real.read_text() == "b"


def test_write_atomic_failure_leaves_old_file(tmp_path: Path) -> None:
    with pytest.raises(KernelError) as info:
        write_atomic(tmp_path / "missing-dir" / "x.xml", "text")
    assert "missing-dir" in str(info.value) and info.value.errno == 2
    # A directory in the way: rename fails, the temporary file is removed.
    (tmp_path / "d").mkdir()
    with pytest.raises(KernelError, match="rename"):
        write_atomic(tmp_path / "d", "text")
    assert sorted(os.listdir(tmp_path)) == ["d"]


def test_live_document_written_atomically_parses_back(tmp_path: Path) -> None:
    doc = DeviceDocument.parse(domain_text())
    doc.set_address(2, PciAddress(0, 6, 0x10, 6))
    path = tmp_path / "guest1.xml"
    write_atomic(path, doc.to_string())
    assert DeviceDocument.parse(path.read_bytes(), source=str(path)).devices == doc.devices


# ------------------------------------------------------------------------------------------
# FileError, read_text
# ------------------------------------------------------------------------------------------


def test_file_error_names_path_step_and_errno(tmp_path: Path) -> None:
    target = tmp_path / "missing-dir" / "x.xml"
    with pytest.raises(FileError) as info:
        write_atomic(target, "text")
    err = info.value
    assert isinstance(err, OSError) and isinstance(err, VfmacError)
    assert err.errno == errno.ENOENT and err.filename == str(target)
    assert str(err) == (f"{target}: cannot create a temporary file: "
                        "No such file or directory")
    again = pickle.loads(pickle.dumps(err))
    assert type(again) is FileError and str(again) == str(err)
    assert (again.errno, again.filename) == (err.errno, err.filename)


def test_read_text(tmp_path: Path) -> None:
    path = tmp_path / "net.xml"
    path.write_text("<network>\u00e9</network>", encoding="utf-8")
    assert read_text(path) == "<network>\u00e9</network>"
    assert read_text(str(path)) == "<network>\u00e9</network>"


def test_read_text_errors(tmp_path: Path) -> None:
    missing = tmp_path / "missing.xml"
    with pytest.raises(FileError) as info:
        read_text(missing)
    assert info.value.errno == errno.ENOENT and info.value.filename == str(missing)
    assert str(info.value) == f"{missing}: cannot read: No such file or directory"
    with pytest.raises(FileError, match=r"/[^/]+: cannot read: Is a directory$"):
        read_text(tmp_path)
    latin = tmp_path / "latin.xml"
    latin.write_bytes(b"<network>\xe9</network>")
    with pytest.raises(InputError, match=r"latin\.xml: not UTF-8 text \(invalid continuation"):
        read_text(latin)
