"""``derive_from`` (config and identity) and ``--pf`` selection (apply.run.select_pfs)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pyvfmac.apply import derive_mac, parse_config, pf_identity, select_pfs
from pyvfmac.errors import ConfigError
from pyvfmac.types import LinkInfo, PciAddress

PCI = PciAddress.parse("0000:03:00.0")
MOVED = PciAddress.parse("0000:07:00.0")
PERM = "52:54:00:12:34:10"


def link(perm: str | None = PERM) -> LinkInfo:
    return LinkInfo(5, "eth0", "02:00:00:00:00:05", perm, "pci", str(PCI), 2, ())


def test_derive_from_default_and_override() -> None:
    cfg = parse_config({"defaults": {"derive_from": "permanent-mac"},
                        "pf": [{"name": "eth0"}, {"name": "eth1", "derive_from": "pci"}]},
                       path="c.toml")
    assert [p.derive_from for p in cfg.pfs] == ["permanent-mac", "pci"]
    assert parse_config({"pf": [{"name": "eth0"}]}, path="c.toml").pfs[0].derive_from == "pci"
    with pytest.raises(ConfigError, match="derive_from"):
        parse_config({"pf": [{"name": "eth0", "derive_from": "slot"}]}, path="c.toml")


def test_identity_pci_is_unchanged_and_permanent_mac_moves_with_the_card() -> None:
    assert pf_identity(PCI, link()) == "pci:0000:03:00.0"  # today's formula, byte for byte
    assert pf_identity(PCI, link(), "permanent-mac") == f"perm:{PERM}"
    assert pf_identity(MOVED, link(), "permanent-mac") == pf_identity(PCI, link(), "permanent-mac")
    assert pf_identity(PCI, link(None), "permanent-mac") is None
    assert pf_identity(PCI, link("00:00:00:00:00:00"), "permanent-mac") is None
    key = b"k" * 16
    assert derive_mac(key, "pci:0000:03:00.0", 3) != derive_mac(key, f"perm:{PERM}", 3)


def sysfs(root: Path) -> str:
    dev = root / "bus" / "pci" / "devices" / str(PCI)
    (dev / "net" / "eth0").mkdir(parents=True)
    (root / "class" / "net" / "eth0").mkdir(parents=True)
    (root / "class" / "net" / "eth0" / "device").symlink_to(dev)
    return str(root)


@pytest.mark.parametrize("wanted", ["eth0", str(PCI)])
def test_select_pfs_matches_name_or_pci(tmp_path: Path, wanted: str) -> None:
    root = sysfs(tmp_path)
    for pf in ({"name": "eth0"}, {"pci": str(PCI)}):
        cfg = parse_config({"pf": [{"name": "eth9"}, pf]}, path="c.toml")
        picked, unknown = select_pfs(cfg, [wanted], root)
        assert [p.key for p in picked.pfs] == ["pf[1]"] and unknown == []


def test_select_pfs_unknown(tmp_path: Path) -> None:
    cfg = parse_config({"pf": [{"name": "eth9"}]}, path="c.toml")
    picked, unknown = select_pfs(cfg, ["eth0", "eth9"], sysfs(tmp_path))
    assert [p.name for p in picked.pfs] == ["eth9"] and unknown == ["eth0"]
