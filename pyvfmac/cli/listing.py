"""``vfmac list``: every PF and VF of the host, as text or JSON, with what holds each VF."""

from __future__ import annotations

import argparse
import sys

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (mypy: always_true)

from ..errors import VfmacError
from .common import PROG, state_dir, sysfs_root

if TYPE_CHECKING:
    from typing import Any, TextIO

    from ..types import LinkInfo


def _held(args: argparse.Namespace) -> dict[tuple[str, int], str]:
    """(PF name, VF index) -> "attached (owner)" / "pool NAME (owner)" (", PHASE" after the owner
    while an attach or detach is unfinished), from the state store;
    empty when there is no store yet (then neither the store nor SQLite is imported)."""
    from ..statepath import store_exists

    path = state_dir(args)
    if not store_exists(path):
        return {}
    from ..cni.config import split_owner
    from ..store import Store

    held: dict[tuple[str, int], str] = {}
    try:
        store = Store(path)
    except VfmacError as exc:  # a listing is a read: show the VFs, say why holders are missing
        print(f"{PROG}: warning: VFs held by pyvfmac not shown: {exc}", file=sys.stderr)
        return {}
    with store:
        for att in store.all():
            where = f"pool {att.network}" if att.network else "attached"
            phase = "" if att.phase == "attached" else f", {att.phase}"  # only while unfinished
            pod = split_owner(att.owner)
            if pod is not None:  # held by vfmac-cni for a pod
                held[(att.original.pf, att.original.vf)] = (
                    f"pod {pod[0]} {pod[1]} (network {pod[2]}{phase})")
                continue
            held[(att.original.pf, att.original.vf)] = f"{where} ({att.owner}{phase})"
    return held


def _listed(args: argparse.Namespace) -> tuple[list[tuple[LinkInfo, Any]], dict[tuple[str, int], str]]:
    """Every PF (netdev with VFs, PCI or not) with its sysfs PF (None when not a PCI PF), in one
    dump and at most one sysfs scan (only when a PF may be a PCI function); and the holders."""
    from ..netlink import Rtnl

    with Rtnl() as nl:
        links = [link for link in nl.dump_links() if link.num_vf or link.vfs]
    pfs: list[Any] = [None] * len(links)
    if any(link.parent_bus in (None, "pci") for link in links):  # others are in no PCI walk
        from ..topology import scan

        topo = scan(sysfs_root(args))
        for i, link in enumerate(links):
            try:
                pfs[i] = topo.pf_by_netdev(link.name)
            except VfmacError:
                pfs[i] = None
    held = _held(args)
    if any(pf is not None and pf.vfs for pf in pfs):  # held outside pyvfmac: the one rule
        from ..owners import holders

        for link, pf in zip(links, pfs):
            if pf is not None and pf.vfs:
                for vf, why in holders(str(pf.address), sysfs_root(args)).items():
                    held.setdefault((link.name, vf), f"held: {why}")
    return list(zip(links, pfs)), held


def list_pfs(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Every PF (netdev with VFs, PCI or not) with every VF, in one dump and one sysfs scan."""
    listed, held = _listed(args)
    return [_pf_json(link, pf, held) for link, pf in listed]


def _pf_head(link: LinkInfo, pf: Any) -> dict[str, Any]:
    """A PF's entry in the listing, without its VFs."""
    return {
        "pf": link.name,
        "ifindex": link.ifindex,
        "pci": str(pf.address) if pf is not None else None,
        "driver": pf.driver if pf is not None else None,
        "parent": f"{link.parent_bus}:{link.parent_dev}" if link.parent_bus else None,
        "numvfs": link.num_vf,
        "totalvfs": pf.totalvfs if pf is not None else None,
        "missing_vfs": link.missing_vfs,
    }


def _vf_pci(pf: Any, link: LinkInfo) -> list[tuple[str | None, str | None, str | None]]:
    """(PCI address, netdev, driver) of each of the link's VFs, by position in ``link.vfs``."""
    none: tuple[str | None, str | None, str | None] = (None, None, None)
    if pf is None:
        return [none] * len(link.vfs)
    out: list[tuple[str | None, str | None, str | None]] = []
    for index in link.vfs.column("vf"):
        vf = pf.vf(index) if index < len(pf.vfs) else None
        out.append((str(vf.address), vf.netdev, vf.driver) if vf is not None else none)
    return out


def _pf_json(link: LinkInfo, pf: Any, held: dict[tuple[str, int], str]) -> dict[str, Any]:
    from ..settings import SETTINGS

    vfs = []
    for state, (pci, netdev, driver) in zip(link.vfs, _vf_pci(pf, link)):
        entry: dict[str, Any] = {"vf": state.vf, "pci": pci, "netdev": netdev, "driver": driver}
        entry.update((name, getattr(state, name)) for name in SETTINGS)
        entry["held"] = held.get((link.name, state.vf))
        vfs.append(entry)
    return {**_pf_head(link, pf), "vfs": vfs}


def _write_json(listed: list[tuple[LinkInfo, Any]], held: dict[tuple[str, int], str],
                out: TextIO) -> None:
    """``json.dump(list_pfs(args), out, indent=2)`` and a newline, the same text, written with
    one precomputed row format per VF (json's indenting encoder is pure Python: seconds for a
    few thousand VFs at boot) and each value encoded by json's own C encoder of strings."""
    from json import dumps
    from json.encoder import encode_basestring_ascii as string

    def opt(value: str | None) -> str:
        return "null" if value is None else string(value)

    flags = {None: "null", True: "true", False: "false"}
    if not listed:
        out.write("[]\n")
        return
    out.write("[\n")
    for k, (link, pf) in enumerate(listed):
        head = _pf_head(link, pf)
        out.write("  {\n" + "".join(f"    {dumps(key)}: {dumps(value)},\n"
                                   for key, value in head.items()))
        # column by column (C-level maps over thousands of VFs), then one row format per VF
        col = link.vfs.column
        n = len(link.vfs)
        pci, netdev, driver = zip(*_vf_pci(pf, link)) if n else ((), (), ())
        holders = ([opt(held.get((link.name, vf))) for vf in col("vf")] if held
                   else ["null"] * n)
        rows = list(map(_VF_ROW.__mod__, zip(
            col("vf"), map(opt, pci), map(opt, netdev), map(opt, driver),
            map(string, col("mac")), col("vlan"), col("qos"), map(string, col("vlan_proto")),
            map(flags.__getitem__, col("spoofchk")), map(flags.__getitem__, col("trust")),
            map(opt, col("link_state")), col("min_tx_rate"), col("max_tx_rate"), holders)))
        out.write('    "vfs": ' + ("[\n" + ",\n".join(rows) + "\n    ]" if rows else "[]")
                  + ("\n  },\n" if k + 1 < len(listed) else "\n  }\n"))
    out.write("]\n")


# One VF of `vfmac list --json`: the keys of _pf_json's entries, in order, as json.dump(indent=2)
# writes them at that depth; integers as %d, everything else already JSON text.
_VF_ROW = "      {\n" + ",\n".join(f'        "{key}": {fmt}' for key, fmt in (
    ("vf", "%d"), ("pci", "%s"), ("netdev", "%s"), ("driver", "%s"), ("mac", "%s"),
    ("vlan", "%d"), ("qos", "%d"), ("vlan_proto", "%s"), ("spoofchk", "%s"), ("trust", "%s"),
    ("link_state", "%s"), ("min_tx_rate", "%d"), ("max_tx_rate", "%d"), ("held", "%s"))
) + "\n      }"


def cmd_list(args: argparse.Namespace, out: TextIO) -> int:
    if args.json:
        _write_json(*_listed(args), out)
        return 0
    pfs = list_pfs(args)
    if not pfs:
        out.write("no SR-IOV physical functions with VFs\n")
        return 0
    from ..settings import show

    for pf in pfs:
        where = pf["pci"] or pf["parent"] or "-"
        out.write(f"{pf['pf']}  {where}  driver {pf['driver'] or '-'}  {pf['numvfs']} VFs"
                  + (f" (of {pf['totalvfs']})" if pf["totalvfs"] else "") + "\n")
        if pf["missing_vfs"]:
            out.write(f"  warning: the kernel listed {len(pf['vfs'])} of {pf['numvfs']} VFs\n")
        for vf in pf["vfs"]:
            vlan = f"vlan {vf['vlan']}" + (f" qos {vf['qos']}" if vf["qos"] else "") + (
                f" {vf['vlan_proto']}" if vf["vlan"] else "")
            out.write(
                f"  vf {vf['vf']:<4} {vf['pci'] or '-':<13} {vf['netdev'] or '-':<10} "
                f"{vf['driver'] or '-':<9} {vf['mac']}  {vlan}  spoofchk {show(vf['spoofchk'], '-')}"
                f"  trust {show(vf['trust'], '-')}  state {vf['link_state'] or '-'}"
                + (f"  {vf['held']}" if vf["held"] else "") + "\n"
            )
    return 0
