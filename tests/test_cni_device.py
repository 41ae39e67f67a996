"""vfmac-cni: the VF of deviceID read from a fake sysfs (the kernel's layout, tests/fakesysfs)."""

from __future__ import annotations

from pathlib import Path

import pytest
from fakesysfs import NVME_CLASS, FakeSysfs, pci_name

from pyvfmac.cni import codes
from pyvfmac.topology import read_vf
from pyvfmac.cni.result import code_of
from pyvfmac.errors import TopologyError
from pyvfmac.types import PciAddress

PF = pci_name(0, 6, 0, 0)


@pytest.fixture
def sysfs(tmp_path: Path) -> FakeSysfs:
    fs = FakeSysfs(tmp_path)
    fs.add_pf(PF, totalvfs=4, numvfs=0, driver="igb", netdevs=["eth0"])
    fs.add_vf(PF, 0, driver="igbvf", netdevs=["eth5"])
    fs.add_vf(PF, 1, driver="vfio-pci")
    fs.add_function(pci_name(0, 7, 0, 0), class_code=NVME_CLASS, driver="nvme")
    return fs


def vf_addr(fs: FakeSysfs, index: int) -> PciAddress:
    return PciAddress.parse(Path(fs.root, "bus/pci/devices", PF, f"virtfn{index}").resolve().name)


def test_netdev_and_vfio_vfs(sysfs: FakeSysfs) -> None:
    vf = read_vf(vf_addr(sysfs, 0), str(sysfs.root))
    assert (str(vf.pf), vf.pf_netdevs, vf.index, vf.netdev, vf.driver) == (
        PF, ("eth0",), 0, "eth5", "igbvf")
    vfio = read_vf(vf_addr(sysfs, 1), str(sysfs.root))
    assert (vfio.index, vfio.netdev, vfio.driver) == (1, None, "vfio-pci")


@pytest.mark.parametrize(("address", "code", "text"), [
    (PF, codes.NOT_A_VF, "not a VF (it is an SR-IOV PF)"),
    (pci_name(0, 7, 0, 0), codes.NOT_NETWORK, "not a network device"),
    (pci_name(0, 9, 0, 0), codes.NO_DEVICE, "not a PCI device"),
])
def test_refusals_and_their_codes(sysfs: FakeSysfs, address: str, code: int, text: str) -> None:
    with pytest.raises(TopologyError) as info:
        read_vf(PciAddress.parse(address), str(sysfs.root))
    assert text in str(info.value) and code_of(info.value) == code
