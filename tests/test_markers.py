"""The suite's own rule for tests that need root (tests/conftest.py): marked ``root``, skipped
with the reason when not root, run when root. Checked by running a small suite under the
project's conftest with ``os.geteuid`` answering both ways."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

INNER = """
import pytest

@pytest.mark.root
def test_needs_root():
    assert False, "ran"

def test_plain():
    pass
"""


@pytest.fixture
def inner(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makeconftest(Path(__file__).with_name("conftest.py").read_text())
    pytester.makeini("[pytest]\naddopts = --strict-markers\nmarkers =\n    root: needs root\n")
    pytester.makepyfile(INNER)
    return pytester


def test_a_root_test_is_skipped_with_its_reason_when_not_root(
        inner: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    result = inner.runpytest_inprocess("-rs")
    result.assert_outcomes(passed=1, skipped=1)
    result.stdout.fnmatch_lines(["*SKIPPED*marked root: needs root*"])


def test_a_root_test_runs_as_root(inner: pytest.Pytester,
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    result = inner.runpytest_inprocess()
    result.assert_outcomes(passed=1, failed=1)  # it ran: its own assertion failed


def test_no_test_module_decides_on_root_by_itself() -> None:
    """One rule: no skipif on the euid, no importorskip that hides a broken build."""
    here = Path(__file__).parent
    for path in sorted(here.glob("test_*.py")):
        if path.name == "test_markers.py":
            continue
        text = path.read_text()
        assert "geteuid" not in text, path.name
        assert "importorskip" not in text, path.name
