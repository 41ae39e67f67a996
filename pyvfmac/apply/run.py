"""The run of ``vfmac apply``: read the host, plan, set sriov_numvfs, program, verify.

:func:`run_apply` returns the report and its lines; it prints nothing (the CLI does). The I/O of
the run is here: the link dump and read-backs through ``pyvfmac.netlink``, the PCI scan through
``pyvfmac.topology`` (both imported when a run starts: ``vfmac apply --help`` loads neither),
sysfs writes through :mod:`pyvfmac.sysfs`.
"""

from __future__ import annotations

import errno
import os
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, cast

from .. import sysfs

from ..errors import ConfigError, NetlinkError, PciAddressError, SysfsError
from ..settings import VfChange, VfState, words
from ..types import LinkInfo, PciAddress, VfResult, VfStates
from .config import DEFAULT_CONFIG, Config, ConfigCtx, PfEntry, load_config
from .plan import Collision, HostView, PfPlan, Plan, VfPlan, build_plan, diff_vf, host_view
from .report import (
    ApplyReport,
    PfReport,
    VfFailure,
    VfHeld,
    dry_run_lines,
    pf_report,
    plan_report,
)

if TYPE_CHECKING:
    from ..netlink import BulkIO
    from ..topology import Topology

Progress = Callable[[str], None]


def _no_progress(text: str) -> None:
    """The progress callback when nobody watches."""


def _result_message(result: VfResult, state: VfState | None) -> str:
    """A refusal as the report says it: with the VF's read-back ``state``, a change of several
    settings names the one refused and what became of the others (set, or not)."""
    from ..results import read_back, result_error

    return str(result_error(read_back(result, state) if state is not None else result))


def _collision_error(collisions: Sequence[Collision]) -> ConfigError:
    shown = [c.message for c in collisions[:20]]
    if len(collisions) > 20:
        shown.append(f"... and {len(collisions) - 20} more MAC collisions")
    return ConfigError("\n".join(shown))


def _scan(sysfs_root: str) -> Topology | None:
    from ..topology import scan

    try:
        return scan(sysfs_root=sysfs_root)
    except SysfsError as exc:
        if exc.errno == errno.ENOENT:
            return None  # no PCI bus here (<root>/bus/pci missing): PFs by name still work
        raise


def needs_topology(cfg: Config, links: Iterable[LinkInfo]) -> bool:
    """Whether the plan needs the sysfs PCI scan: for PFs given by PCI address and for PCI PFs
    (their address, ``sriov_totalvfs``, their VFs' own netdevs). A config whose PFs are all named
    netdevs on another bus (netdevsim, ...) needs none; a PF whose parent bus the kernel did not
    say might be PCI, so it gets the scan. An unknown name needs none (the plan refuses it)."""
    bus = {link.name: link.parent_bus for link in links}
    for pf in cfg.pfs:
        if pf.name is None:
            return True
        if pf.name in bus and bus[pf.name] in (None, "pci"):
            return True
    return False


def _read_host(nl: BulkIO, cfg: Config, sysfs_root: str) -> HostView:
    """One dump of every link, and the PCI scan only when the plan needs it."""
    links = nl.dump_links()
    return host_view(links, _scan(sysfs_root) if needs_topology(cfg, links) else None)


def _check_numvfs_files(cfg: Config, plan: Plan, sysfs_root: str) -> None:
    """Every configured PF that has no VFs now, or is to get another count, must be able to
    create VFs (its sriov_numvfs exists): a PF named by netdev that is no PF (``lo``, a VF's own
    netdev) is an error of the config, not a PF with nothing to do."""
    for pf in plan.pfs:
        if not pf.numvfs_change and (pf.numvfs_now or pf.link.vfs):
            continue  # it has VFs: a PF (PFs by PCI address were checked in the plan)
        path = os.path.join(sysfs_root, pf.numvfs_path)
        if os.path.exists(path):
            continue
        kind = "name" if pf.entry.name is not None else "pci"
        key, value = ((f"{pf.entry.key}.numvfs", pf.numvfs_target) if pf.numvfs_change
                      else (f"{pf.entry.key}.{kind}", pf.entry.label))
        raise ConfigCtx(cfg.path).error(
            key, value, f"{pf.name} cannot create VFs ({path} does not exist: not an SR-IOV PF)")


def run_apply(
    config_path: str = DEFAULT_CONFIG,
    *,
    dry_run: bool = False,
    sysfs_root: str = "/sys",
    numvfs_timeout: float = 30.0,
    progress: Progress | None = None,
    pfs: Sequence[str] = (),
    boot: bool = False,
    state_dir: str | None = None,
) -> tuple[ApplyReport, list[str]]:
    """``vfmac apply``: program every configured PF and VF; return the report and its lines
    (a dry run's start with what it would change), for the caller to print.

    ``pfs`` (``--pf``, netdev names or PCI addresses): only the config's tables of those PFs,
    whichever way the config names them (:func:`select_pfs`); the same checks, plan,
    verification and report, for that part only. A value no table matches is a line
    ("nothing to do"), not an error: a udev rule runs it for every SR-IOV PF.

    VFs another owner holds, and those pyvfmac attached (its state store in ``state_dir``), are
    left alone and reported (:mod:`pyvfmac.owners`), unless the config's ``program_held`` asks
    for them; ``boot`` (``--boot``: before libvirtd, container runtimes and pods start, nothing
    holds a VF yet) programs every configured VF, and leaves out a PF whose driver has not bound
    yet (:func:`without_late_pfs`) with a line, instead of failing for all.

    ConfigError (nothing changed) for a bad config, an unknown PF or a MAC collision.
    KernelError when the host cannot be read at all. Everything else is a failure in the report;
    the CLI exits with ``report.exit_status`` (0: all applied and verified, 1: any failure).
    ``progress`` (e.g. a status line at a terminal) is told what is going on; ``""`` at the end.

    Memory stays flat in the VF count where it can: the host is read in one dump that is
    dropped once planned (the plan keeps the configured PFs only), MAC-only PFs go through the
    bulk ``Rtnl.set_macs`` path, and each changed PF is read back alone for the verification.
    """
    cfg = load_config(config_path)
    unknown: list[str] = []
    if pfs:
        cfg, unknown = select_pfs(cfg, pfs, sysfs_root)
    late: list[str] = []
    if boot:
        cfg, late = without_late_pfs(cfg, sysfs_root)
    held = None if boot else recorded_holders(state_dir)
    report, lines = apply_config(cfg, dry_run=dry_run, sysfs_root=sysfs_root,
                                 numvfs_timeout=numvfs_timeout, progress=progress, held=held,
                                 owners=not boot)
    return report, ([f"{name}: not in {cfg.path}: nothing to do" for name in unknown]
                    + [f"{pci}: no network device yet (its driver has not bound): left to "
                       "vfmac watch or the udev rule" for pci in late] + lines)


def without_late_pfs(cfg: Config, sysfs_root: str = "/sys") -> tuple[Config, list[str]]:
    """``--boot``: the config without its PFs given by PCI address that are SR-IOV PCI functions
    on this host but have no network device yet, and those PFs' addresses. Their driver binds
    later (a module loaded late, a device still resetting); ``vfmac watch`` or the udev rule
    programs them when their netdev appears (docs/boot-and-watch.md). Without this, one late PF
    failed the boot unit and left every other PF unprogrammed (seen in tests/test_systemd_boot.py).
    A PF given by name, or an address that is no SR-IOV function here, stays an error."""
    keep: list[PfEntry] = []
    late: list[str] = []
    for entry in cfg.pfs:
        if entry.pci is not None:
            dev = sysfs.pci_device_dir(sysfs_root, entry.pci)
            try:
                netdevs = os.listdir(os.path.join(dev, "net"))
            except OSError:
                netdevs = []
            if os.path.exists(os.path.join(dev, "sriov_totalvfs")) and not netdevs:
                late.append(str(entry.pci))
                continue
        keep.append(entry)
    return replace(cfg, pfs=tuple(keep)), late


def recorded_holders(state_dir: str | None = None) -> dict[str, dict[int, str]]:
    """The VFs pyvfmac attached, by PF netdev name and VF index, with for whom (empty when
    there is no state store yet: then SQLite is not even imported)."""
    from ..statepath import store_exists

    if not store_exists(state_dir):
        return {}
    from ..owners import record_holder
    from ..store import Store

    out: dict[str, dict[int, str]] = {}
    with Store(state_dir) as store:
        for att in store.all():
            out.setdefault(att.original.pf, {})[att.original.vf] = record_holder(att)
    return out


def _held_outside(plan: Plan, sysfs_root: str,
                  recreated: frozenset[str] = frozenset()) -> dict[str, dict[int, str]]:
    """The planned PFs' VFs another owner holds (:func:`pyvfmac.owners.holders`), but those
    the config programs anyway (``program_held``). Not of a PF whose VFs this apply creates
    (``numvfs``) or just created (``recreated``): nobody holds a VF that did not exist, and a new
    VF's netdev may not be registered yet, which the rule would take for one in a pod."""
    from ..owners import holders

    out: dict[str, dict[int, str]] = {}
    for pf in plan.pfs:
        if pf.link.parent_bus != "pci" or not pf.link.parent_dev:
            continue  # not a PCI PF (netdevsim): its VFs have no driver of their own
        if pf.numvfs_change or pf.name in recreated:
            continue
        held = {vf: why for vf, why in holders(pf.link.parent_dev, sysfs_root).items()
                if not pf.entry.programs_held(vf)}
        if held:
            out[pf.name] = held
    return out


def _pf_names_and_pci(value: str, sysfs_root: str) -> tuple[set[str], set[PciAddress]]:
    """A ``--pf`` value's netdev names and PCI address, as far as sysfs tells."""
    names: set[str] = set()
    pcis: set[PciAddress] = set()
    try:
        pcis.add(PciAddress.parse(value))
    except PciAddressError:
        names.add(value)
        try:
            pcis.add(PciAddress.parse(os.path.basename(os.readlink(
                os.path.join(sysfs_root, "class", "net", value, "device")))))
        except (OSError, PciAddressError):
            pass
    for pci in list(pcis):
        try:
            names.update(os.listdir(os.path.join(sysfs.pci_device_dir(sysfs_root, pci), "net")))
        except OSError:
            pass
    return names, pcis


def select_pfs(cfg: Config, wanted: Sequence[str], sysfs_root: str = "/sys"
               ) -> tuple[Config, list[str]]:
    """The config restricted to the PFs ``wanted`` names (netdev names or PCI addresses, matched
    against the config's ``name`` and ``pci`` keys through sysfs), in the config's order, and
    the wanted values that match no ``[[pf]]`` table."""
    keep: list[PfEntry] = []
    unknown: list[str] = []
    for value in wanted:
        names, pcis = _pf_names_and_pci(value, sysfs_root)
        hits = [e for e in cfg.pfs if (e.name is not None and e.name in names)
                or (e.pci is not None and e.pci in pcis)]
        if not hits:
            unknown.append(value)
        keep.extend(e for e in hits if e not in keep)
    return replace(cfg, pfs=tuple(e for e in cfg.pfs if e in keep)), unknown


def apply_config(
    cfg: Config,
    *,
    dry_run: bool = False,
    sysfs_root: str = "/sys",
    numvfs_timeout: float = 30.0,
    progress: Progress | None = None,
    held: Mapping[str, Mapping[int, str]] | None = None,
    owners: bool = True,
) -> tuple[ApplyReport, list[str]]:
    """:func:`run_apply` for a config already loaded (``vfmac watch`` keeps one in memory).
    ``held``: VFs by PF netdev name and index that the apply leaves alone, with who holds them
    (pyvfmac's records); ``owners``: leave alone the VFs another owner holds too."""
    from ..netlink import Rtnl

    say = progress if progress is not None else _no_progress
    if not cfg.pfs:
        return ApplyReport(cfg.path, dry_run, (), (), ()), []
    try:
        with Rtnl() as nl:
            say("reading the host's links")
            plan = build_plan(cfg, _read_host(nl, cfg, sysfs_root))
            if plan.collisions:
                raise _collision_error(plan.collisions)
            _check_numvfs_files(cfg, plan, sysfs_root)
            keep: dict[str, dict[int, str]] = {name: dict(vfs) for name, vfs in
                                               (held or {}).items()}
            if owners:
                for name, vfs in _held_outside(plan, sysfs_root).items():
                    keep.setdefault(name, {}).update(vfs)
            if dry_run:
                report = replace(plan_report(cfg, plan), held=_held_report(plan, keep))
                lines = dry_run_lines(plan) + report.lines()
            else:
                report = _apply_plan(nl, cfg, plan, sysfs_root, numvfs_timeout, say, keep,
                                     owners)
                lines = report.lines()
    finally:
        say("")
    return report, lines


def _held_report(plan: Plan, held: Mapping[str, Mapping[int, str]]) -> tuple[VfHeld, ...]:
    """The configured VFs left alone because someone holds them, as the report says them."""
    return tuple(VfHeld(pf.name, v.vf, held[pf.name][v.vf]) for pf in plan.pfs
                 for v in pf.vfs if v.vf in held.get(pf.name, {}))


def _apply_plan(
    nl: BulkIO, cfg: Config, plan: Plan, sysfs_root: str, timeout: float, say: Progress,
    held: dict[str, dict[int, str]], owners: bool,
) -> ApplyReport:
    failures: list[VfFailure] = []
    # what the report needs of each PF as it was (not its VF list): key, name, ifindex, numvfs
    before = [(p.entry.key, p.name, p.link.ifindex, p.numvfs_now) for p in plan.pfs]
    now_of_failed: dict[str, int] = {}
    if any(p.numvfs_change for p in plan.pfs):
        recreated = frozenset(p.name for p in plan.pfs if p.numvfs_change)
        failed_pfs = _apply_numvfs(nl, plan, sysfs_root, timeout, failures, say)
        say("reading the host's links again")
        view = _read_host(nl, cfg, sysfs_root)
        plan = build_plan(cfg, view, after_numvfs=True, exclude=failed_pfs)
        if failed_pfs:
            nums = {link.ifindex: link.num_vf or 0 for link in view.links}
            now_of_failed = {key: nums.get(ifindex, 0) for key, _name, ifindex, _n in before
                             if key in failed_pfs}
        del view  # the plan keeps what it needs of the second snapshot
        if owners:  # the other PFs' VFs: who holds them now
            for pf_name, others in _held_outside(plan, sysfs_root, recreated).items():
                held.setdefault(pf_name, {}).update(others)
        for pf in plan.pfs:
            failures.extend(
                VfFailure(pf.name, i, f"{pf.name} vf {i}: missing: the PF has "
                          f"{pf.link.num_vf or 0} VFs after {timeout:g} s")
                for i in pf.missing
            )
    blocked = {(c.pf_key, c.vf) for c in plan.collisions}
    failures.extend(VfFailure(c.pf_name, c.vf, c.message) for c in plan.collisions)
    sent: list[VfChange] = []
    reports: list[PfReport] = []
    numvfs_before = {key: numvfs for key, _name, _ifindex, numvfs in before}
    todo: list[tuple[PfPlan, list[VfPlan], bool]] = []
    for pf in plan.pfs:
        keep = held.get(pf.name, {})
        vfs = [v for v in pf.vfs if v.change is not None and (pf.entry.key, v.vf) not in blocked
               and v.vf not in keep]
        bulk = pf.macs_only or all(cast(VfChange, v.change).mac_only() for v in vfs)
        todo.append((pf, vfs, bulk))
    refused = _program(nl, todo, say)
    for pf, vfs, bulk in todo:
        sent.extend([v.change for v in vfs if v.change is not None])
        reports.append(_verify_pf(nl, pf, vfs, bulk, refused, failures,
                                  numvfs_before[pf.entry.key], say))
    done = {r.key for r in reports}
    for key, name, _ifindex, numvfs in before:  # PFs whose sriov_numvfs write failed
        if key not in done:  # (left out of the re-plan)
            now = now_of_failed.get(key, 0)
            reports.append(PfReport(key, name, now, 0, now, 1, numvfs, now))
    order = {key: i for i, (key, *_rest) in enumerate(before)}
    reports.sort(key=lambda r: order[r.key])
    return ApplyReport(cfg.path, False, tuple(reports), tuple(failures), tuple(sent),
                       _held_report(plan, held))


def _program(
    nl: BulkIO, todo: Sequence[tuple[PfPlan, Sequence[VfPlan], bool]], say: Progress
) -> dict[tuple[int, int], str | VfResult]:
    """Send every change: a PF whose changes are all MAC-only (``bulk``) through the bulk
    ``set_macs`` path, everything else in one batched ``apply``. Returns the kernel's refusals
    by (PF ifindex, VF): messages (bulk), or results, whose message needs the read-back."""
    total = sum(len(vfs) for _pf, vfs, _bulk in todo)
    if total:
        pfs = sum(1 for _pf, vfs, _bulk in todo if vfs)
        say(f"programming {total} VF{'s' * (total != 1)} on {pfs} PF{'s' * (pfs != 1)}")
    refused: dict[tuple[int, int], str | VfResult] = {}
    general: list[VfChange] = []
    for pf, vfs, bulk in todo:
        if not vfs:
            continue
        if bulk:
            macs = {v.vf: cast(str, v.mac) for v in vfs}
            for vf, err in nl.set_macs(pf.link.ifindex, macs).items():
                refused[(pf.link.ifindex, vf)] = str(err)
        else:
            general.extend(cast(VfChange, v.change) for v in vfs)
    if general:  # apply converges as far as it can: what the kernel took stays (no undo)
        for r in nl.apply(general, undo=False):
            if not r.ok:
                refused[(cast(int, r.change.pf), r.change.vf)] = r
    return refused


def _verify_pf(
    nl: BulkIO, pf: PfPlan, vfs: Sequence[VfPlan], bulk: bool,
    refused: Mapping[tuple[int, int], str | VfResult], failures: list[VfFailure],
    numvfs_before: int, say: Progress,
) -> PfReport:
    """Read one PF back (only when something was sent to it) and count its VFs. ``bulk``: every
    change of ``vfs`` is MAC-only, so the MAC is all there is to compare. The read-back also
    tells what of a refused change of several settings was applied."""
    ifindex = pf.link.ifindex
    failed_keys = {f.vf for f in failures if f.pf == pf.name}
    failed = len(pf.missing) + sum(1 for v in pf.vfs if v.vf in failed_keys)
    changed = 0
    num_vf = pf.link.num_vf or 0
    if vfs:
        say(f"{pf.name}: reading back {len(vfs)} VF{'s' * (len(vfs) != 1)}")
        unread = ""
        try:
            link = nl.read_link(ifindex, strict=False)
        except NetlinkError as exc:
            link = None
            unread = f"cannot read back: {exc}"
        read = link.vfs if link is not None else VfStates.of(())
        mac_of = dict(zip(read.column("vf"), read.column("mac")))  # all a bulk PF compares
        if link is not None:
            num_vf = link.num_vf or 0
        for v in vfs:
            message = refused.get((ifindex, v.vf))
            if isinstance(message, VfResult):
                message = _result_message(message, _state(read, v.vf))
            if message is None and link is None:
                message = f"{pf.name} vf {v.vf}: {unread}"
            if message is None:
                if bulk and v.vf in mac_of:
                    left = (None if mac_of[v.vf] == v.mac
                            else VfChange(pf=ifindex, vf=v.vf, mac=v.mac))
                else:
                    left = diff_vf(ifindex, v.vf, v.want, _state(read, v.vf), mac=v.mac)
                if left is None:
                    changed += 1
                    continue
                message = _verify_message(pf.name, v.vf, left)
            failures.append(VfFailure(pf.name, v.vf, message))
            failed += 1
    return pf_report(pf, numvfs_before, num_vf, changed, failed)


def _state(read: VfStates, vf: int) -> VfState | None:
    at = read.position(vf)
    return read[at] if at is not None else None


def _apply_numvfs(
    nl: BulkIO, plan: Plan, sysfs_root: str, timeout: float, failures: list[VfFailure],
    say: Progress = _no_progress,
) -> frozenset[str]:
    """Change sriov_numvfs where needed; returns the keys of PFs that failed."""
    failed: set[str] = set()
    for pf in plan.pfs:
        if not pf.numvfs_change:
            continue
        say(f"{pf.name}: sriov_numvfs {pf.numvfs_now} -> {pf.numvfs_target}")
        try:
            sysfs.set_numvfs(os.path.join(sysfs_root, pf.numvfs_path), pf.numvfs_now,
                       pf.numvfs_target, device=pf.name)
        except SysfsError as exc:
            failures.append(VfFailure(pf.name, None, str(exc)))
            failed.add(pf.entry.key)
            continue
        name, target = pf.name, pf.numvfs_target
        wait_for_vfs(lambda dev: nl.read_link(dev, strict=False), pf.link.ifindex, target,
                     timeout, progress=lambda n, t: say(
                         f"{name}: waiting for {target} VFs ({n} so far, {t:.1f} s)"))
    return frozenset(failed)


def _verify_message(pf: str, vf: int, left: VfChange) -> str:
    return (f"{pf} vf {vf}: the kernel accepted the change but reads back differently "
            f"(still not: {words(left)})")


def wait_for_vfs(
    read: Callable[[int], LinkInfo], pf: int, target: int, timeout: float, *,
    progress: Callable[[int, float], None] | None = None,
) -> LinkInfo:
    """Poll ``read(pf)`` (e.g. ``Rtnl.read_link``) until the PF lists ``target`` VFs or the
    ``timeout`` (seconds) is over; returns the last read. ``progress(listed, seconds)`` is
    called after every read that does not list them all yet."""
    start = time.monotonic()
    deadline = start + timeout
    pause = 0.02
    while True:
        link = read(pf)
        if (link.num_vf or 0) == target and len(link.vfs) >= target:
            return link
        if progress is not None:
            progress(len(link.vfs), time.monotonic() - start)
        if time.monotonic() >= deadline:
            return link
        time.sleep(min(pause, max(0.0, deadline - time.monotonic())))
        pause = min(pause * 2, 0.5)
