"""The daemon's :class:`~.daemon.Backend` on the real host: the config, the apply, the store.

- :meth:`ApplyBackend.load` reads and validates the config (and the host key) as ``vfmac apply``
  does; the daemon keeps the last good one.
- :meth:`ApplyBackend.reconcile` applies one PF's part of it in this process
  (:func:`pyvfmac.apply.run.apply_config`: sriov_numvfs included, the same plan and verification
  as ``vfmac apply --pf``), leaving alone the VFs the state store holds for guests; then gives
  those VFs back what a re-creation of the PF's VFs took from them.

What an attached VF gets back: its fixed MAC (``Attachment.mac``, in the store), and its VLAN
when one is known: the VLAN this daemon last read on the VF while it still had its fixed MAC,
else the VLAN of the attachment's network definition (network, else default portgroup) when no
portgroup of it gives another one. The guest device's own ``<vlan>`` and ``portgroup`` are not
in the store: a VLAN known from neither is not restored, and said so. A port profile (802.1Qbh)
is never re-associated (said so too). The saved original is not touched: the VF stays attached.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, replace

from ..apply.config import Config, PfEntry, load_config
from ..apply.run import apply_config
from ..errors import StateError, VfmacError
from ..mac import ZERO_MAC
from ..owners import record_holder
from ..records import Attachment
from ..settings import VfChange
from ..statepath import store_exists
from .daemon import Outcome
from .resolve import PCI_NAME, PfTarget


@dataclass(frozen=True, slots=True)
class Held:
    """An attached VF of the PF being reconciled: index, fixed MAC, and the VLAN to give it back
    (None: not known) with where that VLAN comes from."""

    vf: int
    att: Attachment
    vlan: int | None = None
    source: str = ""
    profile: bool = False  # its record names an 802.1Qbh port profile (not re-associated)


class ApplyBackend:
    def __init__(self, config_path: str, *, sysfs_root: str = "/sys",
                 state_dir: str | None = None, numvfs_timeout: float = 30.0) -> None:
        self.config_path = config_path
        self.sysfs_root = sysfs_root
        self.state_dir = state_dir
        self.numvfs_timeout = numvfs_timeout
        self.cfg: Config | None = None
        self._seen_vlan: dict[str, int] = {}  # attached VF key -> VLAN read while it had its MAC

    def load(self) -> Sequence[PfTarget]:
        cfg = load_config(self.config_path)
        self.cfg = cfg
        return [PfTarget(e.key, e.name, str(e.pci) if e.pci else None) for e in cfg.pfs]

    # ------------------------------------------------------------------ the PF on the host
    def _netdev_and_pci(self, entry: PfEntry) -> tuple[str | None, str | None]:
        """The PF's netdev name and PCI address now (None: not there)."""
        root = self.sysfs_root
        if entry.pci is not None:
            pci = str(entry.pci)
            try:
                names = sorted(os.listdir(os.path.join(root, "bus", "pci", "devices", pci, "net")))
            except OSError:
                return None, pci
            return (names[0] if len(names) == 1 else None), pci
        name = entry.name
        assert name is not None
        if not os.path.exists(os.path.join(root, "class", "net", name)):
            return None, None
        device = self._link_name("class", "net", name, "device")
        return name, (device if device and PCI_NAME.fullmatch(device) else None)

    def _link_name(self, *parts: str) -> str | None:
        try:
            return os.path.basename(os.readlink(os.path.join(self.sysfs_root, *parts)))
        except OSError:
            return None

    def _settle(self, pci: str) -> None:
        """Wait for a ``sriov_numvfs`` write in flight on the PF to finish: reading the file takes
        the device lock its writer holds (Linux 5.0+). The VFs' remove uevents come before the
        write ends (the PCI core then waits 1 s for the VFs to quiesce, still counting them), and
        its end sends no event: an apply started in between would see the old VF count."""
        try:
            with open(os.path.join(self.sysfs_root, "bus", "pci", "devices", pci,
                                   "sriov_numvfs"), "rb") as f:
                f.read()
        except OSError:
            pass  # not an SR-IOV PF: the apply says so

    def _held(self, netdev: str, pci: str | None) -> list[Held]:
        """The PF's VFs the store holds for guests (any phase), with the VLAN to give back."""
        from ..network import parse_network
        from ..store import Store

        if not store_exists(self.state_dir):
            return []  # nothing ever attached: no store to create
        out: list[Held] = []
        with Store(self.state_dir) as store:
            for att in store.all():
                if not (att.vf_key.startswith(f"{netdev}/vf") or att.original.pf == netdev or (
                        pci is not None and self._link_name(
                            "bus", "pci", "devices", att.vf_key, "physfn") == pci)):
                    continue
                held = Held(att.original.vf, att, profile=att.port_profile is not None)
                if att.vf_key in self._seen_vlan:
                    held = replace(held, vlan=self._seen_vlan[att.vf_key],
                                   source="as read on the VF before")
                elif att.network is not None and (rec := store.get_network(att.network)):
                    net = parse_network(rec.xml, source=f"network {att.network}")
                    vlan, _vport = net.settings_for(None)
                    others = {pg.vlan.vid for pg in net.portgroups if pg.vlan is not None}
                    vid = vlan.vid if vlan is not None else 0
                    if others <= {vid}:
                        held = replace(held, vlan=vid, source=f"of network {att.network}")
                out.append(held)
        return out

    # ------------------------------------------------------------------ reconcile
    def reconcile(self, key: str) -> Outcome:
        if self.cfg is None:
            raise StateError("no config loaded")
        entry = next(e for e in self.cfg.pfs if e.key == key)
        netdev, pci = self._netdev_and_pci(entry)
        if netdev is None:
            return Outcome(pf=entry.label, absent=True)
        if pci is not None:
            self._settle(pci)
        messages: list[str] = []
        try:
            held = self._held(netdev, pci)
        except VfmacError as exc:
            held = []
            messages.append(f"cannot read the state store, attached VFs not protected: {exc}")
        report, _lines = apply_config(
            replace(self.cfg, pfs=(entry,)), sysfs_root=self.sysfs_root,
            numvfs_timeout=self.numvfs_timeout,
            held={netdev: {h.vf: record_holder(h.att) for h in held}})
        messages.extend(f"vf {h.vf}: held ({h.holder}): left alone" for h in report.held
                        if h.vf not in {x.vf for x in held})
        messages.extend(f.message for f in report.failures)
        stale = [h for h in held if not h.att.complete and not h.att.worker_alive()]
        if stale:  # a DEL, detach or attach that died or gave up: finish putting them back
            self._finish(stale, messages)
            held = [h for h in held if h not in stale]
        restored, failed = self._restore_held(netdev, held, messages) if held else (0, 0)
        pf = report.pfs[0] if report.pfs else None
        numvfs = ((pf.numvfs_before, pf.numvfs_after)
                  if pf is not None and pf.numvfs_before != pf.numvfs_after else None)
        return Outcome(pf=netdev, changed=report.changed, failed=len(report.failures) + failed,
                       numvfs=numvfs, restored=restored, vfs=pf.vfs if pf else 0,
                       messages=tuple(messages), pf_pci=pci)

    def _finish(self, stale: Sequence[Held], messages: list[str]) -> None:
        """Put back the VFs whose attach, detach, ADD or DEL was left unfinished by a process
        that is gone (a DEL keeps the record of a VF it could not put back then), through the
        one restore path, as ``vfmac recover`` does."""
        from ..host import open_host
        from ..restore import restore_all

        host = open_host(state_dir=self.state_dir, sysfs_root=self.sysfs_root)
        try:
            report = restore_all([h.att for h in stale], host)
        finally:
            host.close()
        messages.extend(f"vf {r.att.original.vf} ({r.att.vf_key}): left unfinished "
                        f"({r.att.phase}), put back" + (f": {r.notes[0]}" if r.notes else "")
                        for r in report.done)
        messages.extend(f"left unfinished, not put back yet: {e}" for e in report.errors)

    def _restore_held(self, netdev: str, held: Sequence[Held],
                      messages: list[str]) -> tuple[int, int]:
        """Give every attached VF that lost them its fixed MAC (and VLAN, when known); remember
        the VLAN of those that still have their MAC. Returns (restored, failed)."""
        from ..netlink import Rtnl, read_back, result_error

        restored = failed = 0
        with Rtnl() as nl:
            link = nl.read_link(netdev, strict=False)
            have = {s.vf: s for s in link.vfs}
            todo: list[tuple[Held, VfChange]] = []
            for h in held:
                state = have.get(h.vf)
                if state is None:
                    failed += 1
                    messages.append(f"attached vf {h.vf} ({h.att.vf_key}, fixed MAC {h.att.mac}): "
                                    f"the PF has no such VF now ({len(have)} VFs); not restored")
                elif state.mac == h.att.mac or h.att.mac == ZERO_MAC:  # (ZERO: none fixed)
                    if state.vlan is not None:
                        self._seen_vlan[h.att.vf_key] = state.vlan
                elif not h.att.complete:
                    messages.append(f"attached vf {h.vf} ({h.att.vf_key}): lost its fixed MAC "
                                    f"{h.att.mac} while {h.att.phase}: left to that process "
                                    "(or vfmac recover)")
                else:
                    vlan = h.vlan if h.vlan is not None and h.vlan != state.vlan else None
                    todo.append((h, VfChange(pf=link.ifindex, vf=h.vf, mac=h.att.mac, vlan=vlan)))
            # as close as the kernel lets: a fixed MAC taken stays even if the VLAN is refused
            results = nl.apply([change for _h, change in todo], undo=False) if todo else []
            if any(not r.ok and r.change.vlan is not None for r in results):
                # what of a refused MAC + VLAN change the kernel took: read back, as apply does
                after = {s.vf: s for s in nl.read_link(netdev, strict=False).vfs}
                results = [read_back(r, after[r.change.vf]) if r.change.vf in after else r
                           for r in results]
            for (h, change), r in zip(todo, results):
                err = result_error(r)
                if err is not None:
                    failed += 1
                    messages.append(f"attached vf {h.vf} ({h.att.vf_key}): fixed MAC {h.att.mac} "
                                    f"not fully put back: {err}")
                    continue
                restored += 1
                if h.vlan is None:
                    messages.append(f"attached vf {h.vf} ({h.att.vf_key}): fixed MAC {h.att.mac} "
                                    "put back; its VLAN is not known (the guest device's own "
                                    "<vlan> is not in the store): not restored")
                elif change.vlan is not None:
                    messages.append(f"attached vf {h.vf} ({h.att.vf_key}): fixed MAC {h.att.mac} "
                                    f"and VLAN {h.vlan} ({h.source}) put back")
                if h.profile:
                    messages.append(f"attached vf {h.vf} ({h.att.vf_key}): its 802.1Qbh port "
                                    f"profile {h.att.port_profile} is not re-associated")
        return restored, failed
