"""The report of ``vfmac apply``: what was (or, in a dry run, would be) changed, per PF and VF.

Values and their text (:meth:`ApplyReport.lines`, :func:`dry_run_lines`); printing them is the
caller's (the CLI's) business.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from ..settings import VfChange, describe_diff
from .config import Config
from .plan import PfPlan, Plan


@dataclass(frozen=True, slots=True)
class VfFailure:
    """A VF (or, with ``vf`` None, a whole PF) that did not end up as configured, and why."""

    pf: str
    vf: int | None  # None: the PF as a whole (sriov_numvfs)
    message: str


@dataclass(frozen=True, slots=True)
class VfHeld:
    """A configured VF left alone because someone holds it (:mod:`pyvfmac.owners`)."""

    pf: str
    vf: int
    holder: str


@dataclass(frozen=True, slots=True)
class PfReport:
    """One PF's line of the report: how many of its VFs changed, stayed and failed."""

    key: str
    name: str
    vfs: int
    changed: int  # applied and verified (dry run: would change)
    unchanged: int
    failed: int
    numvfs_before: int
    numvfs_after: int

    def line(self, dry_run: bool) -> str:
        numvfs = ""
        if self.numvfs_before != self.numvfs_after:
            verb = "would change" if dry_run else "changed"
            numvfs = f" (sriov_numvfs {verb} {self.numvfs_before} -> {self.numvfs_after})"
        if dry_run:
            return (f"{self.name}: {self.vfs} VFs, {self.changed} to change, "
                    f"{self.unchanged} unchanged{numvfs}")
        return (f"{self.name}: {self.vfs} VFs, {self.changed} changed, {self.unchanged} unchanged, "
                f"{self.failed} failed{numvfs}")


@dataclass(frozen=True, slots=True)
class ApplyReport:
    """What ``vfmac apply`` did. ``exit_status``: 0 when everything applied, 1 otherwise."""

    config_path: str
    dry_run: bool
    pfs: tuple[PfReport, ...]
    failures: tuple[VfFailure, ...]
    changes: tuple[VfChange, ...]  # planned (dry run) or sent
    held: tuple[VfHeld, ...] = ()  # left alone: someone holds them

    @property
    def changed(self) -> int:
        return sum(p.changed for p in self.pfs)

    @property
    def ok(self) -> bool:
        return not self.failures

    @property
    def exit_status(self) -> int:
        return 0 if self.ok else 1

    def lines(self) -> list[str]:
        out = [p.line(self.dry_run) for p in self.pfs]
        out += [f"  {h.pf} vf {h.vf}: held ({h.holder}): left alone" for h in self.held]
        out += [f"  {f.message}" for f in self.failures]
        n = self.changed
        if self.dry_run:
            out.append(f"dry run: {n} change{'s' * (n != 1)} would be made; nothing was changed")
        elif n == 0 and self.ok:
            out.append("0 changes: every VF is already as configured")
        else:
            out.append(f"{n} change{'s' * (n != 1)}, {len(self.failures)} failed")
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "config": self.config_path,
            "dry_run": self.dry_run,
            "ok": self.ok,
            "changed": self.changed,
            "pfs": [
                {f.name: getattr(p, f.name) for f in fields(PfReport)} for p in self.pfs
            ],
            "failures": [{"pf": f.pf, "vf": f.vf, "message": f.message} for f in self.failures],
            "held": [{"pf": h.pf, "vf": h.vf, "holder": h.holder} for h in self.held],
        }


def dry_run_lines(plan: Plan) -> list[str]:
    """``eth0 vf 3: mac 52:54:00:aa:bb:01 -> 02:1f:...; vlan 0 (qos 0, 802.1Q) -> 42 (...)``:
    one line per sriov_numvfs write and per VF change a plan would make."""
    lines: list[str] = []
    for pf in plan.pfs:
        if pf.numvfs_change:
            lines.append(f"{pf.name}: would write {pf.numvfs_target} to {pf.numvfs_path} "
                         f"(now {pf.numvfs_now})")
        lines.extend(f"{pf.name} vf {v.vf}: {describe_diff(pf.have(v.vf), v.change)}"
                     for v in pf.vfs if v.change is not None)
    return lines


def pf_report(pf: PfPlan, before: int, vfs: int, changed: int, failed: int) -> PfReport:
    """A PF's line of the report: ``before`` its sriov_numvfs before the run, ``vfs`` now."""
    return PfReport(pf.entry.key, pf.name, vfs, changed, max(0, vfs - changed - failed), failed,
                    before, pf.numvfs_target)


def plan_report(cfg: Config, plan: Plan) -> ApplyReport:
    """The dry-run report of a plan (nothing applied)."""
    pfs = tuple(
        pf_report(p, p.numvfs_now, p.numvfs_target, len(p.changes), 0) for p in plan.pfs
    )
    return ApplyReport(cfg.path, True, pfs, (), tuple(plan.changes))
