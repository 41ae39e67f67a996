"""The ``vfmac`` command line's parser: every subcommand, its options, help and examples.

The subcommands, their one-line help and the global options are the tables of
:mod:`.toplevel` (which prints `vfmac --help` without this module); the arguments of each
subcommand are here. `vfmac apply` at boot builds the parser of its own subcommand only (see
:func:`parse_args`)."""

from __future__ import annotations

import argparse
import sys

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (mypy: always_true)

from .commands import (
    cmd_apply,
    cmd_attach,
    cmd_detach,
    cmd_libvirt_hook,
    cmd_libvirt_xml,
    cmd_net,
    cmd_recover,
    cmd_restore,
    cmd_set,
    cmd_watch,
)
from ..errors import UsageError
from .common import PROG
from .listing import cmd_list
from .toplevel import (
    COMMANDS,
    DESCRIPTION,
    EPILOG,
    GLOBAL_OPTIONS,
    HELP_POSITION,
    command_word,
    text_width,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from typing import Any, NoReturn


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        # no usage printed first (argparse's way): every vfmac error is one line, and main
        # names the --help to read
        raise UsageError(message)


def _fmt(prog: str) -> argparse.HelpFormatter:
    return argparse.RawDescriptionHelpFormatter(prog, max_help_position=HELP_POSITION,
                                                width=text_width())


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
    "libvirt-xml": "vfmac libvirt-xml guest1.xml > guest1.libvirt.xml && virsh define "
                   "guest1.libvirt.xml",
    "libvirt-hook": "vfmac libvirt-hook guest1 prepare begin - < guest1.xml   # as libvirtd "
                    "runs it",
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
    s.add_argument("--boot", action="store_true",
                   help="at boot, before guests and pods: program every configured VF, "
                        "whoever holds it; a PF (by PCI address) whose driver has not bound "
                        "yet is left to vfmac watch or the udev rule (the boot unit's use)")
    s.set_defaults(func=cmd_apply)


def _add_watch(s: argparse.ArgumentParser) -> None:
    s.add_argument("config", nargs="?", default="/etc/pyvfmac/vfmac.toml")
    s.add_argument("--json", action="store_true", help="one JSON object per event on stdout")
    s.add_argument("--quiet-period", type=float, default=0.5, metavar="S",
                   help="act on a PF once its events pause this long (default 0.5)")
    s.add_argument("--max-delay", type=float, default=3.0, metavar="S",
                   help="... or this long after its first event (default 3)")
    s.add_argument("--cni-socket", metavar="PATH",
                   help="also answer vfmac-cni's calls on this unix socket (the unit's: "
                        "/run/pyvfmac/cni.sock)")
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


def _add_libvirt_xml(s: argparse.ArgumentParser) -> None:
    s.add_argument("file", help="a <domain> with pyvfmac's device forms")
    s.set_defaults(func=cmd_libvirt_xml)


def _add_libvirt_hook(s: argparse.ArgumentParser) -> None:
    s.add_argument("guest", help="the domain's name")
    s.add_argument("op", help="prepare, start, started, stopped, release, migrate, ...")
    s.add_argument("subop", help="begin or end")
    s.add_argument("extra", nargs="?", default="-", help="libvirt's extra argument")
    s.set_defaults(func=cmd_libvirt_hook)


# name -> its arguments; its help and place in `vfmac --help`: toplevel.COMMANDS
_ARGUMENTS: dict[str, Callable[[argparse.ArgumentParser], None]] = {
    "list": _add_list,
    "set": _add_set,
    "attach": _add_attach,
    "detach": _add_detach,
    "restore": _add_restore,
    "recover": _add_recover,
    "apply": _add_apply,
    "watch": _add_watch,
    "net-define": _add_net("file"),
    "net-undefine": _add_net("name"),
    "net-start": _add_net("name"),
    "net-stop": _add_net("name", force=True),
    "net-list": _add_net(None, json=True),
    "net-show": _add_net("name", json=True),
    "libvirt-xml": _add_libvirt_xml,
    "libvirt-hook": _add_libvirt_hook,
}


def build_parser(only: str | None = None, *,
                 parser_class: type[_Parser] | None = None) -> argparse.ArgumentParser:
    """The whole command line; with ``only``, the top level and that one subcommand (each
    ArgumentParser costs a few gettext look-ups, i.e. file-system probes: `vfmac apply` at
    boot builds two parsers, not fourteen)."""
    cls = parser_class or _Parser
    p = cls(prog=PROG, formatter_class=_fmt, description=DESCRIPTION, epilog=EPILOG)
    for spellings, metavar, text in GLOBAL_OPTIONS:
        if metavar:
            p.add_argument(*spellings, metavar=metavar, help=text)
        else:
            p.add_argument(*spellings, action="store_true", help=text)
    subs = p.add_subparsers(dest="command", required=True, parser_class=cls)
    for name, text in COMMANDS.items():
        if only is None or name == only:
            _ARGUMENTS[name](_sub(subs, name, text))
    return p


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
