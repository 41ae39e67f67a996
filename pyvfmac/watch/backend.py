"""The daemon's :class:`~.daemon.Backend` on the real host: the config, the apply, the store.

- :meth:`ApplyBackend.load` reads and validates the config (and the host key) as ``vfmac apply``
  does; the daemon keeps the last good one.
- :meth:`ApplyBackend.reconcile` applies one PF's part of it in this process (sriov_numvfs
  included, the same plan and verification as ``vfmac apply --pf``), leaving alone the VFs the
  state store says are attached to a guest; then puts back those VFs' fixed MACs through the PF
  when they were lost (the PF re-created its VFs). What cannot be put back is reported.
"""

from __future__ import annotations

import io
import os
import re
from collections.abc import Sequence
from dataclasses import replace

from .. import bootcfg
from ..errors import StateError, VfmacError
from ..settings import VfChange
from .daemon import Outcome
from .resolve import PfTarget

_PCI = re.compile(r"^[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]$")


class ApplyBackend:
    def __init__(self, config_path: str, *, sysfs_root: str = "/sys",
                 state_dir: str | None = None, numvfs_timeout: float = 30.0) -> None:
        self.config_path = config_path
        self.sysfs_root = sysfs_root
        self.state_dir = state_dir
        self.numvfs_timeout = numvfs_timeout
        self.cfg: bootcfg.Config | None = None

    def load(self) -> Sequence[PfTarget]:
        cfg = bootcfg.load_config(self.config_path)
        self.cfg = cfg
        return [PfTarget(e.key, e.name, str(e.pci) if e.pci else None) for e in cfg.pfs]

    # ------------------------------------------------------------------ the PF on the host
    def _netdev_and_pci(self, entry: bootcfg.PfEntry) -> tuple[str | None, str | None]:
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
        try:
            device = os.path.basename(os.readlink(os.path.join(root, "class", "net", name,
                                                               "device")))
        except OSError:
            return name, None
        return name, (device if _PCI.match(device) else None)

    def _attached(self, netdev: str, pci: str | None) -> list[tuple[int, str]]:
        """(VF index, fixed MAC) of the PF's VFs the store holds for guests."""
        from ..state import Store, default_state_dir

        path = self.state_dir or str(default_state_dir())
        if not os.path.exists(os.path.join(path, "state.db")):
            return []
        with Store(path) as store:
            records = store.all()
        out = []
        for att in records:
            if att.vf_key.startswith(f"{netdev}/vf") or att.original.pf == netdev or (
                    pci is not None and self._physfn(att.vf_key) == pci):
                out.append((att.original.vf, att.mac))
        return out

    def _physfn(self, vf_key: str) -> str | None:
        try:
            return os.path.basename(os.readlink(
                os.path.join(self.sysfs_root, "bus", "pci", "devices", vf_key, "physfn")))
        except OSError:
            return None

    # ------------------------------------------------------------------ reconcile
    def reconcile(self, key: str) -> Outcome:
        if self.cfg is None:
            raise StateError("no config loaded")
        entry = next(e for e in self.cfg.pfs if e.key == key)
        netdev, pci = self._netdev_and_pci(entry)
        if netdev is None:
            return Outcome(pf=entry.label, absent=True)
        messages: list[str] = []
        try:
            attached = self._attached(netdev, pci)
        except VfmacError as exc:
            attached = []
            messages.append(f"cannot read the state store, attached VFs not protected: {exc}")
        held = {netdev: frozenset(vf for vf, _mac in attached)}
        report = bootcfg.apply_config(replace(self.cfg, pfs=(entry,)), sysfs_root=self.sysfs_root,
                                      out=io.StringIO(), numvfs_timeout=self.numvfs_timeout,
                                      held=held)
        messages.extend(f.message for f in report.failures)
        restored, failed = self._restore_attached(netdev, attached, messages)
        pf = report.pfs[0] if report.pfs else None
        numvfs = ((pf.numvfs_before, pf.numvfs_after)
                  if pf is not None and pf.numvfs_before != pf.numvfs_after else None)
        return Outcome(pf=netdev, changed=report.changed, failed=len(report.failures) + failed,
                       numvfs=numvfs, restored=restored, vfs=pf.vfs if pf else 0,
                       messages=tuple(messages), pf_pci=pci)

    def _restore_attached(self, netdev: str, attached: Sequence[tuple[int, str]],
                          messages: list[str]) -> tuple[int, int]:
        """Put back the fixed MAC of every attached VF that lost it; (restored, failed)."""
        if not attached:
            return 0, 0
        from ..netlink import Rtnl

        restored = failed = 0
        with Rtnl() as nl:
            link = nl.read_link(netdev, strict=False)
            have = {s.vf: s.mac for s in link.vfs}
            todo = [VfChange(pf=link.ifindex, vf=vf, mac=mac) for vf, mac in attached
                    if vf in have and have[vf] != mac]
            for vf, mac in attached:
                if vf not in have:
                    failed += 1
                    messages.append(f"attached vf {vf} (fixed MAC {mac}): the PF has no such VF "
                                    f"now ({len(have)} VFs); not restored")
            for r in nl.apply(todo) if todo else []:
                if r.ok:
                    restored += 1
                else:
                    failed += 1
                    messages.append(f"attached vf {r.change.vf}: cannot put back fixed MAC "
                                    f"{r.change.mac}: {bootcfg._result_message(r)}")
        if restored:
            messages.append(f"put back the fixed MAC of {restored} attached VF"
                            f"{'s' * (restored != 1)} (VLAN and port profile are not in the "
                            "store's records: not restored)")
        return restored, failed
