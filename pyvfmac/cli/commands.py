"""The ``vfmac`` commands that change the host: set, apply, watch, attach, detach, restore,
recover and the network (pool) commands. Each imports what it needs when it runs."""

from __future__ import annotations

import argparse

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (mypy: always_true)

from ..errors import InputError, UsageError
from .common import (
    int_word,
    onoff_word,
    progress,
    state_dir,
    status_line,
    sysfs_root,
)

if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Any, TextIO

    from ..restore import Report
    from ..settings import VfChange

def parse_set_words(pf: str, vf_text: str, words: Sequence[str]) -> VfChange:
    """``mac M vlan N qos Q proto P spoofchk on trust off state auto`` -> a VfChange."""
    from ..settings import WORDS

    vf = int_word("VF", vf_text)
    if len(words) % 2:
        raise UsageError(f"{words[-1]!r} needs a value")
    seen: dict[str, str] = {}
    for key, value in zip(words[::2], words[1::2]):
        if key not in WORDS.values():
            raise UsageError(f"unknown setting {key!r} (use: {', '.join(WORDS.values())})")
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
        fields["vlan"] = int_word("vlan", seen["vlan"])
        fields["qos"] = int_word("qos", seen.get("qos", "0"))
        fields["vlan_proto"] = seen.get("proto", "802.1Q")
    for key in ("spoofchk", "trust"):
        if key in seen:
            fields[key] = onoff_word(key, seen[key])
    if "state" in seen:
        fields["link_state"] = seen["state"]
    for key in ("min_tx_rate", "max_tx_rate"):
        if key in seen:
            fields[key] = int_word(key, seen[key])
    from ..netlink import validate_change
    from ..settings import VfChange

    try:
        return validate_change(VfChange(pf=pf, vf=vf, **fields))
    except InputError as exc:
        raise UsageError(str(exc)) from None


def cmd_set(args: argparse.Namespace, out: TextIO) -> int:
    from ..netlink import Rtnl, check_results

    # --json is taken after the settings too (argparse hands everything after VF to settings)
    as_json = args.json or "--json" in args.settings
    words = [word for word in args.settings if word != "--json"]
    change = parse_set_words(args.pf, args.vf, words)
    with Rtnl() as nl:
        link = nl.read_link(change.pf)
        had = link.vf(change.vf)  # a clear error for a VF the PF does not have
        # a refusal part-way is put back to what the VF had: nothing is left half-done
        check_results(nl.apply([change], before={(change.pf, change.vf): had}))
        state = nl.read_link(change.pf).vf(change.vf)
    if as_json:
        import json
        from dataclasses import asdict

        json.dump(asdict(state), out, indent=2)
        out.write("\n")
    else:
        from ..settings import words as set_words

        out.write(f"{link.name} vf {change.vf}: {set_words(state)}\n")
    return 0


# --------------------------------------------------------------------------- the rest


def cmd_apply(args: argparse.Namespace, out: TextIO) -> int:
    from ..apply.run import run_apply

    report, lines = run_apply(args.config, dry_run=args.dry_run, sysfs_root=sysfs_root(args),
                              progress=status_line(args),  # cleared before it returns
                              pfs=args.pf or (), boot=args.boot, state_dir=state_dir(args))
    for line in lines:
        print(line, file=out)
    return int(report.exit_status)


def cmd_watch(args: argparse.Namespace, out: TextIO) -> int:
    from ..watch.backend import ApplyBackend
    from ..watch.daemon import Daemon

    if not 0 <= args.quiet_period <= args.max_delay:
        raise UsageError("need 0 <= --quiet-period <= --max-delay")
    backend = ApplyBackend(args.config, sysfs_root=sysfs_root(args), state_dir=state_dir(args))
    server = None
    if args.cni_socket:  # vfmac-cni's calls answered here: the plugin forwards them
        import sys

        from ..cni.server import CniServer
        from ..host import open_host

        root, store = sysfs_root(args), state_dir(args)
        server = CniServer(args.cni_socket,
                           lambda: open_host(state_dir=store, sysfs_root=root),
                           log=lambda text: print(f"vfmac watch: {text}", file=sys.stderr))
        server.start()
    try:
        return Daemon(backend, sysfs_root=sysfs_root(args), quiet=args.quiet_period,
                      max_delay=args.max_delay, json_out=out if args.json else None).run()
    finally:
        if server is not None:
            server.stop()


def cmd_attach(args: argparse.Namespace, out: TextIO) -> int:
    from ..attach import attach_file, attach_vf, vf_request

    vf_form = args.pci or args.network or args.owner or args.mac
    if bool(args.file) == bool(vf_form) or (vf_form and not (args.mac and args.owner)):
        raise UsageError("give a FILE, or --pci ADDR | --network NAME with --mac and --owner")
    if not args.file:
        try:  # values given on the command line: a bad one is a usage error, as for `set`
            spec = vf_request(pci=args.pci, network=args.network, mac=args.mac, vlan=args.vlan,
                              qos=args.qos, managed=args.managed,
                              spoofchk=onoff_word("--spoofchk", args.spoofchk)
                              if args.spoofchk else None,
                              trust=onoff_word("--trust", args.trust) if args.trust else None)
        except InputError as exc:
            raise UsageError(str(exc)) from None
        t = attach_vf(spec, owner=args.owner, state_dir=state_dir(args),
                      sysfs_root=sysfs_root(args), progress=progress(args))
        if args.json:
            import json

            json.dump({"owner": args.owner, "pci": t.key, "mac": t.spec.mac, "pf": t.pf,
                       "vf": t.vf.index, "network": t.network, "managed": t.managed,
                       "vlan": t.vlan.vid if t.vlan else None}, out)
            out.write("\n")
        else:
            out.write(f"{t.pf} vf {t.vf.index} ({t.key}): MAC {t.spec.mac} attached for "
                      f"{args.owner}" + (f" (network {t.network})" if t.network else "") + "\n")
        return 0
    _targets, live = attach_file(args.file, live_xml=args.live_xml, state_dir=state_dir(args),
                                 sysfs_root=sysfs_root(args), progress=progress(args))
    if not args.live_xml:
        out.write(live if live.endswith("\n") else live + "\n")
    return 0


def _restored(report: Report, out: TextIO) -> None:
    """One line per VF put back; then the errors of the others, as one error."""
    from ..cni.config import describe_owner

    for r in report.done:
        o = r.att.original
        if r.gone:
            out.write(f"{o.pf} vf {o.vf} ({r.att.vf_key}): record dropped: {r.notes[0]}\n")
            continue
        out.write(f"{o.pf} vf {o.vf} ({r.att.vf_key}): restored"
                  + (f" (network {r.att.network})" if r.att.network else "")
                  + (f" ({describe_owner(r.att.owner)})" if r.att.owner.startswith("cni:")
                     else "")
                  + ("; accepted: " + "; ".join(r.notes) if r.notes else "") + "\n")
    report.check()


def cmd_detach(args: argparse.Namespace, out: TextIO) -> int:
    from ..attach import detach_file, detach_owner

    if bool(args.file) == bool(args.owner):
        raise UsageError("give a FILE or --owner NAME")
    if args.owner:
        report = detach_owner(args.owner, state_dir=state_dir(args),
                              sysfs_root=sysfs_root(args), force=args.force)
        if not report.done and not report.errors:
            out.write(f"owner {args.owner}: nothing attached\n")
        _restored(report, out)
        return 0
    found = detach_file(args.file, state_dir=state_dir(args), sysfs_root=sysfs_root(args),
                        force=args.force)
    if found is None:
        out.write(f"{args.file}: no device of pyvfmac's, nothing to detach\n")
    else:
        _restored(found, out)
    return 0


def cmd_restore(args: argparse.Namespace, out: TextIO) -> int:
    from ..restore import restore

    if args.all == bool(args.pf):
        raise UsageError("give PF VF, or --all")
    if args.pf and args.vf is None:
        raise UsageError("give the VF index after the PF")
    vf = int_word("VF", args.vf) if args.vf is not None else None
    _restored(restore(pf=args.pf, vf=vf, everything=args.all, force=args.force,
                      state_dir=state_dir(args), sysfs_root=sysfs_root(args)), out)
    return 0


def cmd_recover(args: argparse.Namespace, out: TextIO) -> int:
    from ..restore import recover

    done = recover(state_dir=state_dir(args), sysfs_root=sysfs_root(args))
    for network, key in done.released:
        out.write(f"network {network}: released {key} (attach never saved)\n")
    if not (done.done or done.errors or done.released):
        out.write("nothing to recover\n")
    _restored(done, out)
    return 0


def cmd_net(args: argparse.Namespace, out: TextIO) -> int:
    import json

    from .. import pools
    from ..store import Store
    from ..topology import scan

    command, root = args.command, sysfs_root(args)
    if command == "net-stop":
        pools.net_stop(args.name, force=args.force, state_dir=state_dir(args),
                       sysfs_root=root, restored=lambda a: out.write(
                           f"network {args.name}: {a.vf_key} restored and released "
                           f"(was {a.owner})\n"))
        out.write(f"network {args.name} stopped\n")
        return 0
    with Store(state_dir(args)) as store:
        if command == "net-define":
            spec = pools.net_define(store, args.file)
            out.write(f"network {spec.name} defined ({len(spec.pool)} pool entries)\n")
        elif command == "net-undefine":
            store.undefine_network(args.name)
            out.write(f"network {args.name} undefined\n")
        elif command == "net-start":
            keys = pools.net_start(store, args.name, scan(root))
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
            slots = pools.pool_view(store, args.name, scan(root))
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


def cmd_libvirt_xml(args: argparse.Namespace, out: TextIO) -> int:
    from ..files import read_text
    from ..libvirthook import to_libvirt

    out.write(to_libvirt(read_text(args.file), source=args.file, sysfs_root=sysfs_root(args),
                         state_dir=state_dir(args)))
    return 0


def cmd_libvirt_hook(args: argparse.Namespace, out: TextIO) -> int:
    """libvirt's hook: the domain XML on stdin; nothing on stdout (libvirt would take it as a
    new domain XML for some events); what was done on stderr, which libvirt logs."""
    import sys

    from ..libvirthook import run_hook

    text = sys.stdin.buffer.read().decode("utf-8", "replace")
    done = run_hook(args.guest, args.op, args.subop, text, state_dir=state_dir(args),
                    sysfs_root=sysfs_root(args))
    for line in done.lines:
        print(f"vfmac libvirt-hook: {line}", file=sys.stderr)
    return 0
