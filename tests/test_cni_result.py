"""vfmac-cni: results in every supported version, error objects, the entry point's lean imports."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys

import pytest

from pyvfmac.cni import codes
from pyvfmac.cni.result import (IpamResult, IpConfig, Route, code_of, error, parse_ipam,
                                success, version_info)
from pyvfmac.errors import CniError, NetlinkError, StateError, TopologyError

IPAM = IpamResult(ips=(IpConfig("10.1.2.3/24", "10.1.2.1"), IpConfig("fd00::3/64", None)),
                  routes=(Route("0.0.0.0/0", "10.1.2.1"),), dns={"nameservers": ["10.1.2.53"]})


@pytest.mark.parametrize("version", ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"])
def test_success_in_each_version(version: str) -> None:
    out = success(version, ifname="net1", mac="02:00:00:00:00:07", sandbox="/run/netns/p",
                  pci="0000:06:10.2", ipam=IPAM)
    assert out["cniVersion"] == version
    iface = out["interfaces"][0]
    assert (iface["name"], iface["mac"], iface["sandbox"]) == (
        "net1", "02:00:00:00:00:07", "/run/netns/p")
    assert ("pciID" in iface) == (version == "1.1.0")
    assert [ip["interface"] for ip in out["ips"]] == [0, 0]
    if version.startswith("0."):
        assert [ip["version"] for ip in out["ips"]] == ["4", "6"]
    else:
        assert all("version" not in ip for ip in out["ips"])
    assert out["routes"] == [{"dst": "0.0.0.0/0", "gw": "10.1.2.1"}]


@pytest.mark.parametrize("version", ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"])
def test_success_mtu_is_a_1_1_0_key(version: str) -> None:
    """SPEC.md 1.1.0 adds "mtu" (uint) to an interface: given there, omitted before, and
    omitted when not known."""
    out = success(version, ifname="net1", mac=None, sandbox="/run/netns/p", pci="0000:06:10.2",
                  ipam=IpamResult(), mtu=9000)
    assert out["interfaces"][0].get("mtu") == (9000 if version == "1.1.0" else None)
    out = success(version, ifname="net1", mac=None, sandbox="/run/netns/p", pci="0000:06:10.2",
                  ipam=IpamResult())
    assert "mtu" not in out["interfaces"][0]


def test_parse_ipam_of_old_and_new_results() -> None:
    old = {"cniVersion": "0.3.1", "ips": [{"version": "4", "address": "10.0.0.5/16",
                                           "gateway": "10.0.0.1"}], "routes": [{"dst": "::/0"}]}
    got = parse_ipam(old, "host-local")
    assert got.ips == (IpConfig("10.0.0.5/16", "10.0.0.1"),)
    assert got.routes == (Route("::/0", None),)
    with pytest.raises(CniError) as info:
        parse_ipam({"ips": [{"address": "banana"}]}, "static")
    assert info.value.code == codes.IPAM


def test_version_info() -> None:
    assert version_info("0.4.0")["cniVersion"] == "0.4.0"
    assert version_info("9.9.9")["cniVersion"] == "1.1.0"
    assert version_info(None)["supportedVersions"] == ["0.3.0", "0.3.1", "0.4.0", "1.0.0",
                                                       "1.1.0"]


def test_codes() -> None:
    assert code_of(NetlinkError(errno.EBUSY, "x", device="eth0")) == codes.TRY_AGAIN
    assert code_of(NetlinkError(errno.EAGAIN, "x")) == codes.TRY_AGAIN
    assert code_of(NetlinkError(errno.EPERM, "x")) == codes.KERNEL
    assert code_of(TopologyError("0000:06:00.0: not a VF (it is an SR-IOV PF)")) == \
        codes.NOT_A_VF
    assert code_of(TopologyError("0000:00:1f.3: not a network device (PCI class 0x040300)")) \
        == codes.NOT_NETWORK
    assert code_of(TopologyError("0000:aa:00.0: not a PCI device")) == codes.NO_DEVICE
    assert code_of(StateError("db")) == codes.STATE


def test_error_object_has_details_and_notes() -> None:
    exc = CniError(codes.RESTORE_INCOMPLETE, "eth0 vf 1 not restored", "MAC differs")
    exc.add_note("undo incomplete")
    doc = error("0.4.0", exc)
    assert doc == {"cniVersion": "0.4.0", "code": 106, "msg": "eth0 vf 1 not restored",
                   "details": "MAC differs; undo incomplete"}


def _plugin(env: dict[str, str], stdin: bytes) -> subprocess.CompletedProcess[bytes]:
    # a bare environment, as a runtime gives, but what the sanitizer run preloads
    keep = {k: v for k, v in os.environ.items()
            if k in ("PATH", "LD_PRELOAD", "ASAN_OPTIONS", "UBSAN_OPTIONS")}
    return subprocess.run([sys.executable, "-m", "pyvfmac.cni.main"], input=stdin,
                          env={**keep, **env}, capture_output=True, check=False, cwd="/")


def test_entry_point_version_and_errors() -> None:
    done = _plugin({"CNI_COMMAND": "VERSION"}, b'{"cniVersion":"0.4.0"}')
    assert done.returncode == 0
    assert json.loads(done.stdout) == version_info("0.4.0")
    done = _plugin({"CNI_COMMAND": "ADD", "CNI_CONTAINERID": "a", "CNI_IFNAME": "net1",
                    "CNI_NETNS": "/nonexistent"}, b"{not json")
    assert done.returncode == 1 and json.loads(done.stdout)["code"] == codes.DECODE
    done = _plugin({}, b"{}")
    assert done.returncode == 1 and json.loads(done.stdout)["code"] == codes.BAD_ENV


def test_entry_point_version_ignores_what_stdin_is() -> None:
    """libcni's skel answers VERSION without reading stdin: no JSON is no error."""
    for stdin in (b"", b"garbage", b"{}", b'{"cniVersion": 5}'):
        done = _plugin({"CNI_COMMAND": "VERSION"}, stdin)
        assert done.returncode == 0, stdin
        assert json.loads(done.stdout) == version_info(None)


def test_entry_point_del_of_a_config_add_refuses(tmp_path: object) -> None:
    """DEL goes through parse_for_del: a VF key ADD refuses does not fail it."""
    doc = {"cniVersion": "1.0.0", "name": "sriov-a", "type": "vfmac-cni", "mac": "zz",
           "vlan": 5000, "spoofchk": "", "trust": "yes"}
    env = {"CNI_COMMAND": "DEL", "CNI_CONTAINERID": "c1", "CNI_IFNAME": "net1",
           "CNI_NETNS": "", "PYVFMAC_STATE_DIR": str(tmp_path)}
    done = _plugin(env, json.dumps(doc).encode())
    assert (done.returncode, done.stdout) == (0, b""), done.stdout
    done = _plugin({**env, "CNI_COMMAND": "ADD", "CNI_NETNS": "/nonexistent"},
                   json.dumps(doc).encode())
    assert done.returncode == 1 and json.loads(done.stdout)["code"] == codes.INVALID_CONFIG


@pytest.mark.parametrize("command", ["GC", "STATUS"])
def test_entry_point_gc_and_status_need_1_1_0(command: str, tmp_path: object) -> None:
    doc = {"cniVersion": "1.0.0", "name": "sriov-a", "type": "vfmac-cni",
           "cni.dev/valid-attachments": []}
    done = _plugin({"CNI_COMMAND": command, "PYVFMAC_STATE_DIR": str(tmp_path)},
                   json.dumps(doc).encode())
    assert done.returncode == 1
    assert json.loads(done.stdout)["code"] == codes.INCOMPATIBLE_VERSION


def test_entry_point_imports_stay_lean() -> None:
    """A VERSION call must not pull in the XML, pool or attach machinery."""
    code = ("import sys, io, os; os.environ['CNI_COMMAND']='VERSION';"
            "sys.stdin=io.TextIOWrapper(io.BytesIO(b'{}'));"
            "from pyvfmac.cni import main; main.main();"
            "heavy=[m for m in ('pyvfmac.domxml','pyvfmac.attach','pyvfmac.pools',"
            "'pyvfmac.bootcfg','defusedxml','pyvfmac.cni.plugin','sqlite3') if m in sys.modules];"
            "print(heavy, file=sys.stderr); sys.exit(1 if heavy else 0)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, check=False,
                          cwd="/")
    assert done.returncode == 0, done.stderr.decode()


def test_chained_after_another_plugin_keeps_its_result() -> None:
    """A plugin before vfmac-cni in the chain: its interfaces, addresses, routes and DNS stay,
    ours are added after them, our addresses pointing at our interface's index."""
    from pyvfmac.cni.result import chained

    prev = {"cniVersion": "1.0.0", "interfaces": [{"name": "eth0", "sandbox": "/run/netns/p"}],
            "ips": [{"address": "10.0.0.2/24", "interface": 0}],
            "routes": [{"dst": "0.0.0.0/0"}], "dns": {"nameservers": ["10.0.0.1"]}}
    ours = success("1.0.0", ifname="net1", mac="02:00:00:00:00:07", sandbox="/run/netns/p",
                   pci="0000:01:10.0", ipam=IpamResult(ips=(IpConfig("10.56.0.5/24", None),)))
    out = chained(prev, ours)
    assert [i["name"] for i in out["interfaces"]] == ["eth0", "net1"]
    assert out["ips"] == [{"address": "10.0.0.2/24", "interface": 0},
                          {"address": "10.56.0.5/24", "interface": 1}]
    assert out["routes"] == [{"dst": "0.0.0.0/0"}] and out["dns"] == prev["dns"]
    assert chained(None, ours) is ours
