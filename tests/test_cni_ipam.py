"""vfmac-cni: IPAM delegation with fake delegates (scripts on CNI_PATH)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pyvfmac.cni import codes, ipam
from pyvfmac.cni.config import Env
from pyvfmac.errors import CniError, IpamError

RESULT = {"cniVersion": "1.0.0", "ips": [{"address": "10.1.0.9/24", "gateway": "10.1.0.1"}],
          "routes": [{"dst": "0.0.0.0/0", "gw": "10.1.0.1"}], "dns": {"nameservers": ["1.1.1.1"]}}


def env(path: Path) -> Env:
    return Env(command="ADD", container_id="c1", netns="/run/netns/p", ifname="net1", args={},
               path=(str(path / "none"), str(path)))


def script(path: Path, name: str, body: str) -> None:
    exe = path / name
    exe.write_text("#!/bin/sh\n" + body)
    exe.chmod(0o755)


def test_delegate_gets_command_env_and_stdin(tmp_path: Path) -> None:
    log = tmp_path / "log"
    script(tmp_path, "fake", f'cat > {log}.in; env > {log}.env\n'
                             f"echo '{json.dumps(RESULT)}'\n")
    raw = b'{"cniVersion":"1.0.0","name":"n","ipam":{"type":"fake"}}'
    got = ipam.add("fake", raw, env(tmp_path))
    assert [ip.address for ip in got.ips] == ["10.1.0.9/24"]
    assert got.routes[0].gw == "10.1.0.1" and got.dns == {"nameservers": ["1.1.1.1"]}
    assert Path(f"{log}.in").read_bytes() == raw
    assert "CNI_COMMAND=ADD" in Path(f"{log}.env").read_text()
    ipam.delete("fake", raw, env(tmp_path), container_id="other", ifname="net7")
    seen = Path(f"{log}.env").read_text()
    assert "CNI_COMMAND=DEL" in seen and "CNI_CONTAINERID=other" in seen \
        and "CNI_IFNAME=net7" in seen


def test_delegate_error_passes_through(tmp_path: Path) -> None:
    script(tmp_path, "full", 'echo \'{"code": 11, "msg": "range full", "details": "d"}\'\n'
                             "exit 1\n")
    with pytest.raises(IpamError) as info:
        ipam.add("full", b"{}", env(tmp_path))
    assert (info.value.code, info.value.details) == (11, "d")
    assert "IPAM plugin full ADD: range full" in info.value.msg


def test_missing_and_garbled_delegates(tmp_path: Path) -> None:
    with pytest.raises(CniError) as info:
        ipam.add("absent", b"{}", env(tmp_path))
    assert info.value.code == codes.IPAM and "not found in CNI_PATH" in info.value.msg
    assert not isinstance(info.value, IpamError)  # pyvfmac's error, not the delegate's
    script(tmp_path, "crash", "echo oops >&2; exit 3\n")
    with pytest.raises(CniError) as crash:
        ipam.add("crash", b"{}", env(tmp_path))
    assert crash.value.code == codes.IPAM and "oops" in crash.value.details
    with pytest.raises(CniError) as nopath:
        ipam.add("x", b"{}", Env("ADD", "c", "/n", "eth0", {}, ()))
    assert nopath.value.code == codes.BAD_ENV


def test_old_delegate_asked_again_with_1_0_0(tmp_path: Path) -> None:
    """host-local before spec 1.1 refuses cniVersion 1.1.0 (code 1): IPAM results did not
    change in 1.1.0, so the delegate is asked again with 1.0.0."""
    script(tmp_path, "old", 'if grep -q \'"1.1.0"\'; then echo \'{"code":1,"msg":"incompatible"}\';'
                            " exit 1; fi\n"
                            f"echo '{json.dumps(RESULT)}'\n")
    got = ipam.add("old", b'{"cniVersion":"1.1.0","name":"n"}', env(tmp_path))
    assert got.ips[0].address == "10.1.0.9/24"
