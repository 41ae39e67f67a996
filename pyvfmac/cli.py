"""``vfmac``: the command line.

Exit status: 0 success, 1 an operational error (the kernel, the state store, a device, a file's
content), 2 a usage error (the command line itself). Errors are one line on stderr.
"""

from __future__ import annotations

import argparse
import os
import sys
TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (mypy: always_true)

from .errors import InputError, VfmacError

if TYPE_CHECKING:  # annotations only: `vfmac --help` imports no dataclasses, typing, re, ...
    from collections.abc import Callable, Sequence
    from typing import Any, NoReturn, TextIO

    from .types import LinkInfo, VfChange

# Subcommand modules (netlink and its compiled core, topology, apply, attach, pools, store,
# json, ...) are imported by the command that needs them: `vfmac apply` at boot and every
# `--help` load only their own share.

PROG = "vfmac"
ENV_STATE = "PYVFMAC_STATE_DIR"
ENV_SYSFS = "PYVFMAC_SYSFS_ROOT"


class UsageError(Exception):
    """A malformed command line (exit status 2)."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        raise UsageError(message)


def _columns() -> int:
    """shutil.get_terminal_size().columns, without importing shutil (and its compression
    modules) on every run just to build a parser."""
    try:
        columns = int(os.environ["COLUMNS"])
    except (KeyError, ValueError):
        columns = 0
    if columns <= 0:
        stdout: Any = sys.__stdout__  # None without a stdout
        try:
            columns = os.get_terminal_size(stdout.fileno()).columns
        except (AttributeError, ValueError, OSError):
            columns = 0
    return columns or 80


def _fmt(prog: str) -> argparse.HelpFormatter:
    return argparse.RawDescriptionHelpFormatter(prog, max_help_position=30,
                                                width=_columns() - 2)  # as argparse's default


# --------------------------------------------------------------------------- options


def _sysfs_root(args: argparse.Namespace) -> str:
    return str(args.sysfs_root or os.environ.get(ENV_SYSFS) or "/sys")


def _state_dir(args: argparse.Namespace) -> str | None:
    return args.state_dir or os.environ.get(ENV_STATE) or None


def _progress(args: argparse.Namespace) -> Callable[[str], None] | None:
    """A progress printer for long work, only at a terminal."""
    if args.quiet or not sys.stderr.isatty():
        return None

    def show(text: str) -> None:
        print(f"{PROG}: {text}", file=sys.stderr, flush=True)

    return show


def _status_line(args: argparse.Namespace) -> Callable[[str], None] | None:
    """One status line for long work, rewritten in place on stderr and cleared by ``""``; only
    when stderr is a terminal (never in pipes, files or journals) and not ``--quiet``."""
    if args.quiet or not sys.stderr.isatty():
        return None
    stream = sys.stderr
    try:
        width = os.get_terminal_size(stream.fileno()).columns or 80  # 0: a serial console
    except (OSError, ValueError):
        width = 80
    shown = False

    def show(text: str) -> None:
        nonlocal shown
        if not text and not shown:
            return
        line = f"{PROG}: {text}" if text else ""
        stream.write("\r\x1b[K" + line[: max(width - 1, 10)])
        stream.flush()
        shown = bool(text)

    return show


# --------------------------------------------------------------------------- list


def _held(args: argparse.Namespace) -> dict[tuple[str, int], str]:
    """(PF name, VF index) -> "attached (owner)" / "pool NAME (owner)", from the state store;
    empty when there is no store yet (then neither the store nor SQLite is imported)."""
    path = _state_dir(args)
    if path is None:
        from .statedb import default_state_dir

        path = str(default_state_dir())
    if not os.path.exists(os.path.join(path, "state.db")):
        return {}
    from .cni.config import split_owner
    from .store import Store

    held: dict[tuple[str, int], str] = {}
    with Store(path) as store:
        for att in store.all():
            where = f"pool {att.network}" if att.network else "attached"
            pod = split_owner(att.owner)
            if pod is not None:  # held by vfmac-cni for a pod
                held[(att.original.pf, att.original.vf)] = (
                    f"pod {pod[0]} {pod[1]} (network {pod[2]}, {att.phase})")
                continue
            held[(att.original.pf, att.original.vf)] = f"{where} ({att.owner}, {att.phase})"
    return held


def _listed(args: argparse.Namespace) -> tuple[list[tuple[LinkInfo, Any]], dict[tuple[str, int], str]]:
    """Every PF (netdev with VFs, PCI or not) with its sysfs PF (None when not a PCI PF), in one
    dump and at most one sysfs scan (only when a PF may be a PCI function); and the holders."""
    from .netlink import Rtnl

    with Rtnl() as nl:
        links = [link for link in nl.dump_links() if link.num_vf or link.vfs]
    pfs: list[Any] = [None] * len(links)
    if any(link.parent_bus in (None, "pci") for link in links):  # others are in no PCI walk
        from .topology import scan

        topo = scan(_sysfs_root(args))
        for i, link in enumerate(links):
            try:
                pfs[i] = topo.pf_by_netdev(link.name)
            except VfmacError:
                pfs[i] = None
    return list(zip(links, pfs)), _held(args)


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
    for state in link.vfs:
        vf = pf.vf(state.vf) if state.vf < len(pf.vfs) else None
        out.append((str(vf.address), vf.netdev, vf.driver) if vf is not None else none)
    return out


def _pf_json(link: LinkInfo, pf: Any, held: dict[tuple[str, int], str]) -> dict[str, Any]:
    from .settings import SETTINGS

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
        rows = [
            _VF_ROW % (s.vf, opt(pci), opt(netdev), opt(driver), string(s.mac), s.vlan, s.qos,
                       string(s.vlan_proto), flags[s.spoofchk], flags[s.trust],
                       opt(s.link_state), s.min_tx_rate, s.max_tx_rate,
                       opt(held.get((link.name, s.vf))))
            for s, (pci, netdev, driver) in zip(link.vfs, _vf_pci(pf, link))
        ]
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


def _onoff(value: object) -> str:
    return "-" if value is None else ("on" if value else "off")


def cmd_list(args: argparse.Namespace, out: TextIO) -> int:
    if args.json:
        _write_json(*_listed(args), out)
        return 0
    pfs = list_pfs(args)
    if not pfs:
        out.write("no SR-IOV physical functions with VFs\n")
        return 0
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
                f"{vf['driver'] or '-':<9} {vf['mac']}  {vlan}  spoofchk {_onoff(vf['spoofchk'])}"
                f"  trust {_onoff(vf['trust'])}  state {vf['link_state'] or '-'}"
                + (f"  {vf['held']}" if vf["held"] else "") + "\n"
            )
    return 0


# --------------------------------------------------------------------------- set

_SET_WORDS = ("mac", "vlan", "qos", "proto", "spoofchk", "trust", "state", "min_tx_rate",
              "max_tx_rate")


def _int_word(word: str, value: str) -> int:
    try:
        return int(value, 0)
    except ValueError:
        raise UsageError(f"{word} {value!r}: not a number") from None


def _onoff_word(word: str, value: str) -> bool:
    if value not in ("on", "off"):
        raise UsageError(f"{word} {value!r}: use on or off")
    return value == "on"


def parse_set_words(pf: str, vf_text: str, words: Sequence[str]) -> VfChange:
    """``mac M vlan N qos Q proto P spoofchk on trust off state auto`` -> a VfChange."""
    vf = _int_word("VF", vf_text)
    if len(words) % 2:
        raise UsageError(f"{words[-1]!r} needs a value")
    seen: dict[str, str] = {}
    for key, value in zip(words[::2], words[1::2]):
        if key not in _SET_WORDS:
            raise UsageError(f"unknown setting {key!r} (use: {', '.join(_SET_WORDS)})")
        if key in seen:
            raise UsageError(f"{key} given twice")
        seen[key] = value
    if not seen:
        raise UsageError("nothing to set")
    if ("qos" in seen or "proto" in seen) and "vlan" not in seen:
        raise UsageError("qos and proto go with a vlan")
    fields: dict[str, Any] = {}
    if "mac" in seen:
        fields["mac"] = seen["mac"]
    if "vlan" in seen:
        fields["vlan"] = _int_word("vlan", seen["vlan"])
        fields["qos"] = _int_word("qos", seen.get("qos", "0"))
        fields["vlan_proto"] = seen.get("proto", "802.1Q")
    for key in ("spoofchk", "trust"):
        if key in seen:
            fields[key] = _onoff_word(key, seen[key])
    if "state" in seen:
        fields["link_state"] = seen["state"]
    for key in ("min_tx_rate", "max_tx_rate"):
        if key in seen:
            fields[key] = _int_word(key, seen[key])
    from .netlink import validate_change
    from .settings import VfChange

    try:
        return validate_change(VfChange(pf=pf, vf=vf, **fields))
    except InputError as exc:
        raise UsageError(str(exc)) from None


def cmd_set(args: argparse.Namespace, out: TextIO) -> int:
    from .netlink import Rtnl, check_results

    change = parse_set_words(args.pf, args.vf, args.settings)
    with Rtnl() as nl:
        link = nl.read_link(change.pf)
        link.vf(change.vf)  # a clear error for a VF the PF does not have
        results = nl.apply([change])
        check_results(results)
        state = nl.read_link(change.pf).vf(change.vf)
    if args.json:
        import json
        from dataclasses import asdict

        json.dump(asdict(state), out, indent=2)
        out.write("\n")
    else:
        out.write(f"{link.name} vf {change.vf}: mac {state.mac} vlan {state.vlan} "
                  f"spoofchk {_onoff(state.spoofchk)} trust {_onoff(state.trust)} "
                  f"state {state.link_state or '-'}\n")
    return 0


# --------------------------------------------------------------------------- the rest


def cmd_apply(args: argparse.Namespace, out: TextIO) -> int:
    from .apply.run import run_apply

    report, lines = run_apply(args.config, dry_run=args.dry_run, sysfs_root=_sysfs_root(args),
                              progress=_status_line(args),  # cleared before it returns
                              pfs=args.pf or ())
    for line in lines:
        print(line, file=out)
    return int(report.exit_status)


def cmd_watch(args: argparse.Namespace, out: TextIO) -> int:
    from .watch.backend import ApplyBackend
    from .watch.daemon import Daemon

    if not 0 <= args.quiet_period <= args.max_delay:
        raise UsageError("need 0 <= --quiet-period <= --max-delay")
    backend = ApplyBackend(args.config, sysfs_root=_sysfs_root(args), state_dir=_state_dir(args))
    return Daemon(backend, sysfs_root=_sysfs_root(args), quiet=args.quiet_period,
                  max_delay=args.max_delay, json_out=out if args.json else None).run()


def cmd_attach(args: argparse.Namespace, out: TextIO) -> int:
    from .attach import attach_file, attach_vf, vf_request

    vf_form = args.pci or args.network or args.owner or args.mac
    if bool(args.file) == bool(vf_form) or (vf_form and not (args.mac and args.owner)):
        raise UsageError("give a FILE, or --pci ADDR | --network NAME with --mac and --owner")
    if not args.file:
        try:  # values given on the command line: a bad one is a usage error, as for `set`
            spec = vf_request(pci=args.pci, network=args.network, mac=args.mac, vlan=args.vlan,
                              qos=args.qos, managed=args.managed,
                              spoofchk=_onoff_word("--spoofchk", args.spoofchk)
                              if args.spoofchk else None,
                              trust=_onoff_word("--trust", args.trust) if args.trust else None)
        except InputError as exc:
            raise UsageError(str(exc)) from None
        attach_vf(spec, owner=args.owner, out=out, as_json=args.json, state_dir=_state_dir(args),
                  sysfs_root=_sysfs_root(args), progress=_progress(args))
        return 0
    attach_file(args.file, live_xml=args.live_xml, out=out, state_dir=_state_dir(args),
                sysfs_root=_sysfs_root(args), progress=_progress(args))
    return 0


def cmd_detach(args: argparse.Namespace, out: TextIO) -> int:
    from .attach import detach_file, detach_owner

    if bool(args.file) == bool(args.owner):
        raise UsageError("give a FILE or --owner NAME")
    if args.owner:
        detach_owner(args.owner, out=out, state_dir=_state_dir(args),
                     sysfs_root=_sysfs_root(args), force=args.force)
        return 0
    detach_file(args.file, out=out, state_dir=_state_dir(args), sysfs_root=_sysfs_root(args),
                force=args.force)
    return 0


def cmd_restore(args: argparse.Namespace, out: TextIO) -> int:
    from .restore import restore

    if args.all == bool(args.pf):
        raise UsageError("give PF VF, or --all")
    if args.pf and args.vf is None:
        raise UsageError("give the VF index after the PF")
    vf = _int_word("VF", args.vf) if args.vf is not None else None
    restore(pf=args.pf, vf=vf, everything=args.all, force=args.force, out=out,
            state_dir=_state_dir(args), sysfs_root=_sysfs_root(args))
    return 0


def cmd_recover(args: argparse.Namespace, out: TextIO) -> int:
    from .restore import recover

    recover(out=out, state_dir=_state_dir(args), sysfs_root=_sysfs_root(args))
    return 0


def cmd_net(args: argparse.Namespace, out: TextIO) -> int:
    import json

    from . import pools
    from .store import Store
    from .topology import scan

    command, sysfs_root = args.command, _sysfs_root(args)
    if command == "net-stop":
        pools.net_stop(args.name, force=args.force, state_dir=_state_dir(args),
                       sysfs_root=sysfs_root, restored=lambda a: out.write(
                           f"network {args.name}: {a.vf_key} restored and released "
                           f"(was {a.owner})\n"))
        out.write(f"network {args.name} stopped\n")
        return 0
    with Store(_state_dir(args)) as store:
        if command == "net-define":
            spec = pools.net_define(store, args.file)
            out.write(f"network {spec.name} defined ({len(spec.pool)} pool entries)\n")
        elif command == "net-undefine":
            store.undefine_network(args.name)
            out.write(f"network {args.name} undefined\n")
        elif command == "net-start":
            keys = pools.net_start(store, args.name, scan(sysfs_root))
            out.write(f"network {args.name} started: {len(keys)} VFs\n")
        elif command == "net-list" and args.json:
            json.dump([{"name": r.name, "started": r.started, "vfs": len(r.pool)}
                       for r in store.networks()], out, indent=2)
            out.write("\n")
        elif command == "net-list":
            for r in store.networks():
                out.write(f"{r.name:<24} {'active' if r.started else 'inactive':<9} "
                          f"{len(r.pool)} VFs\n")
        else:  # net-show
            slots = pools.pool_view(store, args.name, scan(sysfs_root))
            rec = store.get_network(args.name)
            assert rec is not None
            if args.json:
                json.dump({"name": rec.name, "started": rec.started, "pool": [
                    {"pci": s.key, "pf": s.pf, "vf": s.vf, "netdev": s.netdev,
                     "driver": s.driver, "state": s.state, "detail": s.detail} for s in slots]},
                    out, indent=2)
                out.write("\n")
                return 0
            out.write(f"network {rec.name}: {'active' if rec.started else 'inactive'}\n")
            for s in slots:
                where = f"{s.pf} vf {s.vf}" if s.pf is not None else "-"
                out.write(f"  {s.key:<13} {where:<14} {s.netdev or '-':<10} "
                          f"{s.driver or '-':<9} {s.state}"
                          + (f" ({s.detail})" if s.detail else "") + "\n")
    return 0


# --------------------------------------------------------------------------- parser

_EXAMPLES = {
    "list": "vfmac list\n  vfmac list --json | jq '.[].vfs[].mac'",
    "set": "vfmac set eth0 3 mac 52:54:00:6d:90:02 vlan 42 qos 3 spoofchk on trust off\n"
           "  vfmac set eth0 3 vlan 100 proto 802.1ad state disable",
    "attach": "vfmac attach guest-nic.xml --live-xml guest-nic.live.xml\n"
              "  vfmac attach /etc/libvirt/qemu/guest1.xml > guest1.live.xml\n"
              "  vfmac attach --pci 0000:03:10.2 --mac 52:54:00:12:34:56 --owner vm100 --json",
    "detach": "vfmac detach guest-nic.live.xml\n  vfmac detach --owner vm100",
    "restore": "vfmac restore eth0 3\n  vfmac restore --all",
    "recover": "vfmac recover     # after a crash: put back every VF left half-attached",
    "apply": "vfmac apply /etc/pyvfmac/vfmac.toml --dry-run\n"
             "  vfmac apply   # the default config, as the systemd unit runs it",
    "watch": "vfmac watch /etc/pyvfmac/vfmac.toml   # as pyvfmac-watch.service runs it\n"
             "  vfmac watch --json | jq -c 'select(.event == \"apply\")'",
    "net-define": "vfmac net-define passthrough-net.xml",
    "net-undefine": "vfmac net-undefine passthrough-net",
    "net-start": "vfmac net-start passthrough-net",
    "net-stop": "vfmac net-stop passthrough-net --force",
    "net-list": "vfmac net-list --json",
    "net-show": "vfmac net-show passthrough-net",
}


def _sub(subs: Any, name: str, help_text: str) -> argparse.ArgumentParser:
    p: argparse.ArgumentParser = subs.add_parser(
        name, help=help_text, description=help_text, formatter_class=_fmt,
        epilog="example:\n  " + _EXAMPLES[name])
    return p


def _add_list(s: argparse.ArgumentParser) -> None:
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_list)


def _add_set(s: argparse.ArgumentParser) -> None:
    s.add_argument("pf")
    s.add_argument("vf")
    s.add_argument("settings", nargs=argparse.REMAINDER,
                   help="mac M | vlan N [qos Q] [proto 802.1Q|802.1ad] | spoofchk on|off | "
                        "trust on|off | state auto|enable|disable | min_tx_rate N | max_tx_rate N")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_set)


def _add_attach(s: argparse.ArgumentParser) -> None:
    s.add_argument("file", nargs="?")
    s.add_argument("--live-xml", metavar="OUT", help="write the live XML here (default stdout)")
    g = s.add_argument_group("without XML (Proxmox VE, QEMU, cloud-hypervisor, Firecracker)")
    g.add_argument("--pci", metavar="ADDR", help="the VF by PCI address")
    g.add_argument("--network", metavar="NAME", help="a free VF of this pool instead of --pci")
    g.add_argument("--mac", metavar="MAC")
    g.add_argument("--vlan", metavar="N", type=int)
    g.add_argument("--qos", metavar="Q", type=int)
    g.add_argument("--spoofchk", metavar="on|off")
    g.add_argument("--trust", metavar="on|off")
    g.add_argument("--managed", action="store_true", help="bind the VF to vfio-pci")
    g.add_argument("--owner", metavar="NAME", help="who holds the VF (vfmac detach --owner)")
    g.add_argument("--json", action="store_true", help="print what was attached as JSON")
    s.set_defaults(func=cmd_attach)


def _add_force(s: argparse.ArgumentParser) -> None:
    s.add_argument("--force", action="store_true",
                   help="drop the saved record even where a setting could not be restored")


def _add_detach(s: argparse.ArgumentParser) -> None:
    s.add_argument("file", nargs="?")
    s.add_argument("--owner", metavar="NAME", help="every VF attached with --owner NAME")
    _add_force(s)
    s.set_defaults(func=cmd_detach)


def _add_restore(s: argparse.ArgumentParser) -> None:
    s.add_argument("pf", nargs="?")
    s.add_argument("vf", nargs="?")
    s.add_argument("--all", action="store_true")
    _add_force(s)
    s.set_defaults(func=cmd_restore)


def _add_recover(s: argparse.ArgumentParser) -> None:
    s.set_defaults(func=cmd_recover)


def _add_apply(s: argparse.ArgumentParser) -> None:
    s.add_argument("config", nargs="?", default="/etc/pyvfmac/vfmac.toml")
    s.add_argument("--dry-run", action="store_true", help="print the changes, change nothing")
    s.add_argument("--pf", action="append", metavar="NAME|PCI",
                   help="only this PF's part of the config (repeatable; a udev rule's use)")
    s.set_defaults(func=cmd_apply)


def _add_watch(s: argparse.ArgumentParser) -> None:
    s.add_argument("config", nargs="?", default="/etc/pyvfmac/vfmac.toml")
    s.add_argument("--json", action="store_true", help="one JSON object per event on stdout")
    s.add_argument("--quiet-period", type=float, default=0.5, metavar="S",
                   help="act on a PF once its events pause this long (default 0.5)")
    s.add_argument("--max-delay", type=float, default=3.0, metavar="S",
                   help="... or this long after its first event (default 3)")
    s.set_defaults(func=cmd_watch)


def _add_net(arg: str | None, *, force: bool = False,
             json: bool = False) -> Callable[[argparse.ArgumentParser], None]:
    def add(s: argparse.ArgumentParser) -> None:
        if arg:
            s.add_argument(arg)
        if force:
            s.add_argument("--force", action="store_true",
                           help="stop even with VFs in use (they are restored and released)")
        if json:
            s.add_argument("--json", action="store_true")
        s.set_defaults(func=cmd_net)

    return add


# name -> (help, arguments), in the order of `vfmac --help`
_COMMANDS: dict[str, tuple[str, Callable[[argparse.ArgumentParser], None]]] = {
    "list": ("list PFs and their VFs", _add_list),
    "set": ("change one VF's settings through its PF", _add_set),
    "attach": ("prepare the VFs of a <hostdev>/<interface>/<domain> document", _add_attach),
    "detach": ("give back the VFs of a document attached before", _add_detach),
    "restore": ("put back a VF's saved original configuration", _add_restore),
    "recover": ("restore every VF whose attach did not complete", _add_recover),
    "apply": ("program all VFs of all PFs from a TOML config (boot time)", _add_apply),
    "watch": ("keep VFs as configured while the host runs (daemon)", _add_watch),
    "net-define": ("store a <network> pool definition", _add_net("file")),
    "net-undefine": ("remove a stopped network definition", _add_net("name")),
    "net-start": ("resolve a network's pool and make it usable", _add_net("name")),
    "net-stop": ("stop a network (refused while VFs are in use)", _add_net("name", force=True)),
    "net-list": ("list networks", _add_net(None, json=True)),
    "net-show": ("show a network's pool and each VF's state", _add_net("name", json=True)),
}
_VALUE_OPTIONS = ("--state-dir", "--sysfs-root")


def build_parser(only: str | None = None, *,
                 parser_class: type[_Parser] | None = None) -> argparse.ArgumentParser:
    """The whole command line; with ``only``, the top level and that one subcommand (each
    ArgumentParser costs a few gettext look-ups, i.e. file-system probes: `vfmac apply` at
    boot builds two parsers, not fourteen)."""
    cls = parser_class or _Parser
    p = cls(prog=PROG, formatter_class=_fmt,
            description="Fixed MAC addresses for SR-IOV VFs: set, attach/detach with saved "
                        "originals, VF pools, boot-time bulk programming.",
            epilog="example:\n  vfmac list\n  vfmac apply /etc/pyvfmac/vfmac.toml")
    p.add_argument("--state-dir", help=f"state store directory (env {ENV_STATE}; "
                                       "default /var/lib/pyvfmac)")
    p.add_argument("--sysfs-root", help=f"where sysfs is mounted (env {ENV_SYSFS}; default /sys)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress output")
    subs = p.add_subparsers(dest="command", required=True, parser_class=cls)
    for name, (text, add) in _COMMANDS.items():
        if only is None or name == only:
            add(_sub(subs, name, text))
    return p


def command_word(argv: Sequence[str]) -> str | None:
    """The subcommand ``argv`` names, when that is plain to see (global options spelled out in
    full before it); None otherwise (help, abbreviations, an unknown word: the whole parser)."""
    it = iter(argv)
    for word in it:
        if word in _VALUE_OPTIONS:
            next(it, None)
        elif word in ("-q", "--quiet") or word.startswith(tuple(o + "=" for o in _VALUE_OPTIONS)):
            continue
        else:
            return word if word in _COMMANDS else None
    return None


class _Retry(Exception):
    """The one-subcommand parser met an error: the whole parser reports it."""


class _QuietParser(_Parser):
    def error(self, message: str) -> NoReturn:
        raise _Retry(message)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse with the parser of the named subcommand only; anything unusual (an error, help at
    the top level) goes through the whole parser, so its messages are the whole parser's."""
    words = list(sys.argv[1:] if argv is None else argv)
    only = command_word(words)
    if only is not None:
        try:
            return build_parser(only, parser_class=_QuietParser).parse_args(words)
        except _Retry:
            pass
    return build_parser().parse_args(words)


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    try:
        args = parse_args(argv)
        return int(args.func(args, out))
    except UsageError as exc:
        print(f"{PROG}: usage error: {exc}", file=sys.stderr)
        return 2
    except VfmacError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 1
    except BrokenPipeError:  # `vfmac list | head`: the reader left, nothing to complain about
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    except OSError as exc:  # a file the user named
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
