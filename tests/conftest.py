"""Fixtures shared by the unit tests."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator

import pytest


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The one rule for tests that need root: they are marked ``root`` (pyproject.toml), and
    when the suite does not run as root they are skipped, each with the reason; as root they
    run, and fail on their own if something else is missing. Nothing else skips for want of
    root, and nothing fails for it."""
    if os.geteuid() == 0:
        return
    skip = pytest.mark.skip(reason="marked root: needs root (network namespaces, mounts, chown); "
                            "the README's test command runs as root")
    for item in items:
        if item.get_closest_marker("root") is not None:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _private_state_dir(tmp_path_factory: pytest.TempPathFactory,
                       monkeypatch: pytest.MonkeyPatch) -> None:
    """Every unit test (and every process it starts) gets a state directory of its own: no test
    reads or writes the host's /var/lib/pyvfmac. A test that wants another sets it again."""
    monkeypatch.setenv("PYVFMAC_STATE_DIR", str(tmp_path_factory.mktemp("state")))


@pytest.fixture
def veth_netns() -> Iterator[str]:
    """A network namespace of the test's own holding a veth pair vx0/vx1 (a netdev without VFs);
    deleted afterwards. Needs root (a test that uses it is marked ``root``) and iproute2."""
    if os.geteuid() != 0:
        pytest.fail("veth_netns needs root: mark the test root (it is then skipped when not root)")
    if shutil.which("ip") is None:
        pytest.fail("veth_netns needs iproute2 (ip)")
    name = f"pyvfmac-t{os.getpid()}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        subprocess.run(["ip", "-n", name, "link", "add", "vx0", "type", "veth", "peer", "name",
                        "vx1"], check=True)
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)
