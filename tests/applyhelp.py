"""Helpers of the ``vfmac apply`` unit tests (tests/test_apply_*.py): configs, links, views."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pyvfmac.apply import Config, HostView, parse_config
from pyvfmac.types import LinkInfo, PciAddress, VfState, VfStates

KEY = b"0123456789abcdef0123456789abcdef"  # what /etc/machine-id holds: 32 hex digits
PCI0 = PciAddress.parse("0000:03:00.0")
PCI1 = PciAddress.parse("0000:04:00.0")


def write_config(tmp_path: Path, text: str, *, key: bytes | None = KEY + b"\n") -> str:
    if key is not None:
        (tmp_path / "machine-id").write_bytes(key)
        line = f'host_key = "{tmp_path / "machine-id"}"'
        if "[defaults]" in text:
            text = text.replace("[defaults]", "[defaults]\n" + line, 1)
        else:
            text += "\n[defaults]\n" + line + "\n"
    path = tmp_path / "vfmac.toml"
    path.write_text(text)
    return str(path)


def cfg_of(doc: dict[str, Any], *, key: bytes | None = KEY) -> Config:
    cfg = parse_config(doc, path="/etc/pyvfmac/vfmac.toml")
    return Config(cfg.path, cfg.pfs, cfg.host_key_path, key)


def vf_states(n: int, **kw: Any) -> tuple[VfState, ...]:
    return tuple(VfState(vf=i, mac=kw.get("mac", "00:00:00:00:00:00"),
                         **{k: v for k, v in kw.items() if k != "mac"}) for i in range(n))


def pf_link(name: str, ifindex: int, vfs: tuple[VfState, ...], *, pci: PciAddress | None = None,
            mac: str = "52:54:00:12:34:56", perm_mac: str | None = None,
            parent: tuple[str, str] | None = None) -> LinkInfo:
    bus, dev = parent if parent else (("pci", str(pci)) if pci else (None, None))
    return LinkInfo(ifindex=ifindex, name=name, mac=mac, perm_mac=perm_mac, parent_bus=bus,
                    parent_dev=dev, num_vf=len(vfs), vfs=VfStates.of(vfs))


def view_of(*links: LinkInfo, totalvfs: int = 64,
            vf_netdevs: dict[tuple[PciAddress, int], str] | None = None) -> HostView:
    pf_netdevs = {PciAddress.parse(l.parent_dev): (l.name,) for l in links
                  if l.parent_bus == "pci" and l.parent_dev}
    return HostView(
        links=tuple(links),
        pf_netdevs=pf_netdevs,
        netdev_pci={names[0]: a for a, names in pf_netdevs.items()},
        vf_netdevs=vf_netdevs or {},
        totalvfs={a: totalvfs for a in pf_netdevs},
    )


def derived_cfg(**pf: Any) -> Config:
    return cfg_of({"pf": [{"name": "eth0", "mac_policy": "derived", **pf}]})
