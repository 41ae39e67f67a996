"""Fixtures shared by the unit tests."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator

import pytest


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
