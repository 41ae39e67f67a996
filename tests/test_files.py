"""Files: atomic replacement, reading text."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from xmlcases import domain_text

from pyvfmac.domain import DeviceDocument
from pyvfmac.errors import KernelError
from pyvfmac.files import write_atomic
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
