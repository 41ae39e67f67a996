"""Fixtures shared by the unit tests."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator

import pytest


@pytest.fixture(autouse=True)
def _private_state_dir(tmp_path_factory: pytest.TempPathFactory,
                       monkeypatch: pytest.MonkeyPatch) -> None:
    """Every unit test (and every process it starts) gets a state directory of its own: no test
    reads or writes the host's /var/lib/pyvfmac. A test that wants another sets it again."""
    monkeypatch.setenv("PYVFMAC_STATE_DIR", str(tmp_path_factory.mktemp("state")))


@pytest.fixture
def veth_netns() -> Iterator[str]:
    """A network namespace of the test's own holding a veth pair vx0/vx1 (a netdev without VFs);
    deleted afterwards. Needs root and iproute2 (the README's test command runs as root)."""
    if os.geteuid() != 0 or shutil.which("ip") is None:
        pytest.fail("this test needs root and iproute2 (the README's test command runs as root)")
    name = f"pyvfmac-t{os.getpid()}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        subprocess.run(["ip", "-n", name, "link", "add", "vx0", "type", "veth", "peer", "name",
                        "vx1"], check=True)
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)
