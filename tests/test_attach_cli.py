"""``vfmac attach --pci/--network ... --owner`` and ``vfmac detach --owner`` (issue 14): usage,
input checked before the host is touched, and a domain whose networks are all libvirt's."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from fakehost import VFS, FakeNl, World, pci_attrs

from pyvfmac.attach import attach_devices, owner_key, vf_request
from pyvfmac.cli import main
from pyvfmac.errors import InputError
from pyvfmac.portsettings import Vlan
from pyvfmac.store import Store
from pyvfmac.types import PciAddress

MAC = "52:54:00:12:34:56"


def run(tmp: Path, *argv: str) -> tuple[int, str]:
    out = io.StringIO()
    return main(["--state-dir", str(tmp / "st"), *argv], out=out), out.getvalue()


@pytest.mark.parametrize("argv", [
    ["attach"],
    ["attach", "f.xml", "--pci", "0000:03:10.0", "--mac", MAC, "--owner", "vm1"],
    ["attach", "--pci", "0000:03:10.0", "--mac", MAC],           # no --owner
    ["attach", "--pci", "0000:03:10.0", "--owner", "vm1"],        # no --mac
    ["attach", "--pci", "0000:03:10.0", "--network", "pn", "--mac", MAC, "--owner", "vm1"],
    ["attach", "--pci", "0000:03:10.0", "--mac", MAC, "--owner", "vm1", "--trust", "yes"],
    ["detach"],
    ["detach", "f.xml", "--owner", "vm1"],
])
def test_usage(tmp_path: Path, argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert run(tmp_path, *argv)[0] == 2
    assert "vfmac: usage error:" in capsys.readouterr().err


@pytest.mark.parametrize("extra, needle", [
    (["--pci", "0000:03:10.0", "--mac", "01:00:5e:00:00:01"], "multicast"),
    (["--pci", "0000:03:10.9", "--mac", MAC], "0000:03:10.9"),
    (["--pci", "0000:03:10.0", "--mac", MAC, "--qos", "3"], "--qos needs --vlan"),
    (["--pci", "0000:03:10.0", "--mac", MAC, "--vlan", "4096"], "4096"),
    (["--pci", "0000:03:10.0", "--mac", MAC, "--vlan", "5", "--qos", "8"], "qos 8"),
    (["--network", "a/b", "--mac", MAC], "'/'"),
])
def test_bad_input_is_refused_before_the_host(tmp_path: Path, extra: list[str], needle: str,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    code, out = run(tmp_path, "attach", *extra, "--owner", "vm1")
    assert code == 2 and out == ""
    assert needle in capsys.readouterr().err
    assert not (tmp_path / "st").exists()  # not even the state store was opened


def test_request_is_a_device_spec() -> None:
    spec = vf_request(pci="03:10.2", network=None, mac="52-54-00-12-34-56", vlan=10, qos=2,
                      trust=True, spoofchk=False, managed=True)
    assert spec.address == PciAddress(0, 3, 0x10, 2) and spec.mac == MAC
    assert spec.vlan == Vlan(10, 2) and (spec.trust, spec.spoofchk, spec.managed) == (
        True, False, True)
    assert spec.key == "pci:0000:03:10.2"
    pool = vf_request(pci=None, network="pn", mac=MAC)
    assert pool.network == "pn" and pool.key == f"network:pn/{MAC}"


@pytest.mark.parametrize("name", ["", " vm", "a\nb", "x" * 129])
def test_owner_names(name: str) -> None:
    with pytest.raises(InputError, match="owner"):
        owner_key(name)


def test_unknown_vf_is_an_error_and_leaves_no_record(tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    sysfs = tmp_path / "sys"
    (sysfs / "bus" / "pci" / "devices").mkdir(parents=True)
    (sysfs / "class" / "net").mkdir(parents=True)
    code, _ = run(tmp_path, "--sysfs-root", str(sysfs), "attach", "--pci", "0000:03:10.0",
                  "--mac", MAC, "--owner", "vm1")
    assert code == 1 and "0000:03:10.0" in capsys.readouterr().err
    with Store(tmp_path / "st") as store:
        assert store.all() == []


def test_detach_owner_with_nothing_attached(tmp_path: Path) -> None:
    code, out = run(tmp_path, "detach", "--owner", "vm1")
    assert code == 0 and out == "owner vm1: nothing attached\n"


@pytest.mark.parametrize("command", ["attach", "detach"])
def test_lone_interface_of_libvirts_network_is_refused(
        tmp_path: Path, command: str, capsys: pytest.CaptureFixture[str]) -> None:
    """Given alone, a device is given to be attached: one pyvfmac cannot attach is an error."""
    doc = tmp_path / "i.xml"
    doc.write_text("<interface type='network'><source network='default'/>"
                   f"<mac address='{MAC}'/></interface>")
    assert run(tmp_path, command, str(doc)) == (1, "")
    err = capsys.readouterr().err
    assert err == (f"vfmac: error: {doc}: no device with a fixed <mac> to {command} (interfaces "
                   "of network(s) default are libvirt's, not pyvfmac's: pyvfmac's networks are "
                   "those of `vfmac net-list`)\n")


def test_a_refused_request_names_the_device_as_given(tmp_path: Path) -> None:
    """A request from the command line is no document's "device 0": its error names it by the
    words that asked for it."""
    w = World(tmp_path, FakeNl(others={"eth3": MAC}))
    host = w.host()
    try:
        pool = ("<network><name>pool1</name><forward mode='hostdev' managed='no'>"
                f"<address type='pci' {pci_attrs(VFS[3])}/></forward></network>")
        host.store.define_network("pool1", pool)
        host.store.start_network("pool1", [VFS[3]])
        for spec, name in ((vf_request(pci="06:02.2", network=None, mac=MAC), "--pci 06:02.2"),
                           (vf_request(pci=None, network="pool1", mac=MAC), "--network pool1")):
            with pytest.raises(InputError) as info:
                attach_devices([spec], host, source=spec.name, owner=owner_key("vm1"))
            assert str(info.value) == f"{name}: MAC {MAC} is already used by netdev eth3"
        assert host.store.all() == [] and host.store.allocations() == []
        assert w.nl.states[2].mac == w.nl.states[3].mac == "00:00:00:00:00:00"
    finally:
        host.close()
