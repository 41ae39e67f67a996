"""The plan of ``vfmac apply``: the configuration resolved against the host. Pure: no I/O.

:class:`HostView` is what the plan reads of the host (one link dump, one sysfs scan, read by
:mod:`pyvfmac.apply.run`); :func:`build_plan` resolves each configured PF, derives its MACs and
computes, per VF, what differs (:func:`pyvfmac.settings.diff`). MAC collisions (with each other,
with explicit MACs, with any netdev's MAC or any VF admin MAC on the host that stays) are found
here, so that they are refused before anything changes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, cast

from ..errors import PciAddressError
from ..mac import ZERO_MAC
from ..settings import VfChange, VfSettings, VfState, diff
from ..types import LinkInfo, PciAddress, VfStates, bulk_constructor
from .config import Config, ConfigCtx, PfEntry
from .derive import Deriver, pf_identity

if TYPE_CHECKING:
    from ..topology import Topology


@dataclass(frozen=True, slots=True)
class HostView:
    """Everything the plan reads from the host, gathered once (one dump, one sysfs scan)."""

    links: tuple[LinkInfo, ...]
    pf_netdevs: Mapping[PciAddress, tuple[str, ...]] = field(default_factory=dict)
    netdev_pci: Mapping[str, PciAddress] = field(default_factory=dict)
    vf_netdevs: Mapping[tuple[PciAddress, int], str] = field(default_factory=dict)
    totalvfs: Mapping[PciAddress, int] = field(default_factory=dict)


def host_view(links: Iterable[LinkInfo], topology: Topology | None = None) -> HostView:
    """A :class:`HostView` from a link dump and a ``pyvfmac.topology.Topology`` (or None)."""
    pf_netdevs: dict[PciAddress, tuple[str, ...]] = {}
    netdev_pci: dict[str, PciAddress] = {}
    vf_netdevs: dict[tuple[PciAddress, int], str] = {}
    totalvfs: dict[PciAddress, int] = {}
    if topology is not None:
        for pf in topology.pfs:
            pf_netdevs[pf.address] = tuple(pf.netdevs)
            totalvfs[pf.address] = int(pf.totalvfs)
            for name in pf.netdevs:
                netdev_pci[name] = pf.address
            for vf in pf.vfs:
                if vf.netdev:
                    vf_netdevs[(pf.address, vf.index)] = vf.netdev
    return HostView(tuple(links), pf_netdevs, netdev_pci, vf_netdevs, totalvfs)


@dataclass(frozen=True, slots=True)
class VfPlan:
    """One managed VF of a PF's plan: what it should have and the change that gets it there."""

    vf: int
    want: VfSettings  # merged settings (shared between VFs; see ``mac`` for the MAC)
    mac: str | None  # the wanted MAC: explicit or derived
    change: VfChange | None  # None: already as configured


@dataclass(frozen=True, slots=True)
class PfPlan:
    """One configured PF resolved on the host: its VF count now and wanted, and its VFs' plans."""

    entry: PfEntry
    link: LinkInfo
    pci: PciAddress | None
    numvfs_now: int
    numvfs_target: int
    numvfs_path: str  # relative to the sysfs root
    vfs: tuple[VfPlan, ...]  # managed VFs, by index
    missing: tuple[int, ...] = ()  # configured VFs that do not exist (after a numvfs change)
    compared: bool = True  # the VFs were compared with link.vfs (not: they are to be recreated)
    macs_only: bool = False  # every change sets the MAC alone (the bulk path takes them all)

    @property
    def name(self) -> str:
        return self.link.name

    def have(self, vf: int) -> VfState | None:
        """VF ``vf`` as the plan found it; None when it does not exist yet or is recreated."""
        at = self.link.vfs.position(vf) if self.compared else None
        return self.link.vfs[at] if at is not None else None

    @property
    def numvfs_change(self) -> bool:
        return self.numvfs_target != self.numvfs_now

    @property
    def changes(self) -> list[VfChange]:
        return [v.change for v in self.vfs if v.change is not None]


@dataclass(frozen=True, slots=True)
class Collision:
    """A wanted MAC that another VF also wants, or that stays on another device."""

    pf_key: str
    pf_name: str
    vf: int
    mac: str
    message: str  # "<file>: <key> = <value>: ..." ready to print


@dataclass(frozen=True, slots=True)
class Plan:
    """What ``vfmac apply`` would change: every configured PF's plan, and the MAC collisions."""

    pfs: tuple[PfPlan, ...]
    collisions: tuple[Collision, ...] = ()

    @property
    def changes(self) -> list[VfChange]:
        return [c for pf in self.pfs for c in pf.changes]


def diff_vf(
    pf: str | int, vf: int, want: VfSettings, have: VfState | None, *, mac: str | None = None
) -> VfChange | None:
    """The :class:`VfChange` that takes ``have`` to ``want`` (only what differs), or None.

    ``mac`` (when given) is the wanted MAC instead of ``want.mac``. The comparison itself is
    :func:`pyvfmac.settings.diff`."""
    if mac is not None and mac != want.mac:
        want = replace(want, mac=mac)
    left = diff(want, have)
    return None if left is None else VfChange.of(pf, vf, left)


def build_plan(
    cfg: Config, view: HostView, *, after_numvfs: bool = False,
    exclude: frozenset[str] = frozenset(),
) -> Plan:
    """Resolve every PF of ``cfg`` in ``view`` and compute the changes. Pure: no I/O.

    Raises :class:`ConfigError` (file, key, value) for an unknown PF, a PF configured twice, a VF
    index the PF cannot have, a numvfs above sriov_totalvfs, a PF whose MACs cannot be derived.
    MAC collisions are returned in ``Plan.collisions`` (the caller refuses or reports them).
    ``after_numvfs``: the VF counts were already changed; a configured VF that does not exist is
    listed in ``PfPlan.missing`` instead of raising. PFs whose key is in ``exclude`` are skipped.
    """
    ctx = ConfigCtx(cfg.path)
    by_name = {link.name: link for link in view.links}
    pfs: list[PfPlan] = []
    owner_of_ifindex: dict[int, str] = {}
    for entry in cfg.pfs:
        if entry.key in exclude:
            continue
        link, pci = _resolve_pf(ctx, entry, view, by_name)
        if link.ifindex in owner_of_ifindex:
            kind = "name" if entry.name is not None else "pci"
            raise ctx.error(
                f"{entry.key}.{kind}", entry.label,
                f"the same PF as {owner_of_ifindex[link.ifindex]} ({link.name})",
            )
        owner_of_ifindex[link.ifindex] = entry.key
        pfs.append(_plan_pf(ctx, cfg, entry, link, pci, view, after_numvfs))
    return Plan(tuple(pfs), tuple(_collisions(ctx, pfs, view)))


def _resolve_pf(
    ctx: ConfigCtx, entry: PfEntry, view: HostView, by_name: Mapping[str, LinkInfo]
) -> tuple[LinkInfo, PciAddress | None]:
    if entry.name is not None:
        link = by_name.get(entry.name)
        if link is None:
            raise ctx.error(f"{entry.key}.name", entry.name, "no such network device")
        pci = view.netdev_pci.get(link.name)
        if pci is None and link.parent_bus == "pci" and link.parent_dev:
            try:
                pci = PciAddress.parse(link.parent_dev)
            except PciAddressError:
                pci = None
        return link, pci
    pci = cast(PciAddress, entry.pci)
    key = f"{entry.key}.pci"
    netdevs = view.pf_netdevs.get(pci)
    if netdevs is None:
        what = ("a network function without SR-IOV" if pci in view.netdev_pci.values()
                else "not an SR-IOV network PF on this host")
        raise ctx.error(key, str(pci), what)
    present = [by_name[n] for n in netdevs if n in by_name]
    if not present:
        raise ctx.error(key, str(pci), "the PF has no network device (is its driver bound?)")
    if len(present) > 1:
        names = ", ".join(link.name for link in present)
        raise ctx.error(key, str(pci), f"the PF has several network devices ({names}): use name")
    return present[0], pci


def _numvfs_path(entry: PfEntry, link: LinkInfo, pci: PciAddress | None) -> str:
    if pci is not None:
        return f"bus/pci/devices/{pci}/sriov_numvfs"
    return f"class/net/{link.name}/device/sriov_numvfs"


def _plan_pf(
    ctx: ConfigCtx, cfg: Config, entry: PfEntry, link: LinkInfo, pci: PciAddress | None,
    view: HostView, after_numvfs: bool,
) -> PfPlan:
    now = link.num_vf or 0
    target = now if entry.numvfs is None or after_numvfs else entry.numvfs
    if entry.numvfs is not None and pci is not None and pci in view.totalvfs:
        total = view.totalvfs[pci]
        if entry.numvfs > total:
            raise ctx.error(
                f"{entry.key}.numvfs", entry.numvfs,
                f"{link.name} ({pci}) supports at most {total} VFs (sriov_totalvfs)",
            )
    wanted_count = entry.numvfs if entry.numvfs is not None else now
    missing: list[int] = []
    listed = {vf.index: vf for vf in entry.vfs}
    for vf in entry.vfs:
        if vf.index >= target:
            if after_numvfs:
                missing.append(vf.index)
                continue
            has = f"has {now} VFs (VF indexes 0..{now - 1})" if now else "has no VFs"
            raise ctx.error(f"{vf.key}.index", vf.index,
                            f"{link.name} {has}; set {entry.key}.numvfs")
    if after_numvfs and wanted_count > target:
        missing.extend(i for i in range(target, wanted_count) if i not in listed)
    derive = entry.mac_policy == "derived"
    identity = None
    if derive:
        identity = pf_identity(pci, link, entry.derive_from)
        if cfg.host_key is None:
            raise ctx.missing("defaults.host_key", "the host key was not read (use load_config)")
        if identity is None and entry.derive_from == "permanent-mac":
            raise ctx.error(f"{entry.key}.derive_from", "permanent-mac",
                            f"{link.name} has no permanent MAC (IFLA_PERM_ADDRESS)")
        if identity is None:
            raise ctx.error(
                f"{entry.key}.mac_policy", "derived",
                f"{link.name} has no PCI address, no permanent MAC and no parent device to "
                "derive stable MACs from; give each VF an explicit mac",
            )
    manage_all = derive or not entry.settings.empty()
    indexes: Iterable[int] = (range(target) if manage_all
                              else sorted(i for i in listed if i < target))
    compared = not (entry.numvfs is not None and entry.numvfs != now and not after_numvfs)
    # the VFs' MACs as a column: no VfState is built for a VF whose MAC is all the plan compares
    # (most of them, at boot)
    have = link.vfs if compared else VfStates.of(())
    mac_of = dict(zip(have.column("vf"), have.column("mac")))  # VF index -> its MAC now
    # derived MACs: every VF of the PF is managed (indexes is range(target)), all in one C call
    derived = (Deriver(cfg.host_key, identity, entry.mac_prefix).macs(0, target)
               if identity and cfg.host_key else None)
    pf_ref = link.ifindex
    plans: list[VfPlan] = []
    base = entry.settings
    base_empty = base.empty()  # then an unlisted VF wants at most its MAC: no full diff
    macs_only = base_empty and not listed
    for i in indexes:
        vf_entry = listed.get(i)
        want = vf_entry.settings.over(base) if vf_entry is not None else base
        mac = want.mac
        if mac is None and derived is not None:
            mac = derived[i]
        if vf_entry is None and base_empty:
            change = None if mac is None or mac_of.get(i) == mac else _mac_change(pf_ref, i, mac)
        else:
            at = have.position(i)
            change = diff_vf(pf_ref, i, want, have[at] if at is not None else None, mac=mac)
        plans.append(_new_vf_plan(i, want, mac, change))
    return PfPlan(
        entry=entry, link=link, pci=pci, numvfs_now=now, numvfs_target=target,
        numvfs_path=_numvfs_path(entry, link, pci), vfs=tuple(plans),
        missing=tuple(sorted(set(missing))), compared=compared, macs_only=macs_only,
    )


# Thousands of VFs per PF at boot: their plans, and MAC-only changes (whose MAC the config
# parser or the C core, for derived MACs, already made canonical), are built without the
# frozen dataclasses' per-field object.__setattr__ calls (see bulk_constructor).
_new_vf_plan = bulk_constructor(VfPlan)
_mac_change = bulk_constructor(VfChange, ("pf", "vf", "mac"))  # VfChange(pf=, vf=, mac=)


def _collisions(ctx: ConfigCtx, pfs: Sequence[PfPlan], view: HostView) -> list[Collision]:
    """Wanted MACs that another VF also wants, or that stay on another device of the host."""
    # MACs that stay: every netdev's, every VF admin MAC not being replaced. A managed VF's own
    # admin MAC and its own VF netdev are not "other"; VFs about to be recreated vanish.
    # Owners are kept as (PF or netdev name, VF index or -1) and put in words only on a hit.
    replaced: dict[int, set[int]] = {}
    own_netdevs: set[str] = set()
    recreated: set[int] = set()
    for pf in pfs:
        if pf.numvfs_change:
            recreated.add(pf.link.ifindex)
        mine = replaced.setdefault(pf.link.ifindex, set())
        mine.update(v.vf for v in pf.vfs if v.mac is not None)
        if pf.pci is not None and view.vf_netdevs:
            for (pci, index), name in view.vf_netdevs.items():
                if pci == pf.pci and (index in mine or pf.numvfs_change):
                    own_netdevs.add(name)
    # Only MACs somebody wants can collide: the host's other MACs (thousands of VFs) are looked
    # up, not collected.
    wanted_macs = {v.mac for pf in pfs for v in pf.vfs if v.mac is not None}
    staying: dict[str, tuple[str, int]] = {}
    for link in view.links:
        if link.mac and link.mac != ZERO_MAC and link.name not in own_netdevs:
            netdev_mac = link.mac.lower()
            if netdev_mac in wanted_macs:
                staying.setdefault(netdev_mac, (link.name, -1))
        if link.ifindex in recreated:
            continue
        skip = replaced.get(link.ifindex, ())
        for vf, mac in zip(link.vfs.column("vf"), link.vfs.column("mac")):
            if mac in wanted_macs and vf not in skip and mac != ZERO_MAC:
                staying.setdefault(mac, (link.name, vf))
    out: list[Collision] = []
    wanted: dict[str, tuple[str, int]] = {}
    for pf in pfs:
        name = pf.name
        for v in pf.vfs:
            mac = v.mac
            if mac is None:
                continue
            if mac in wanted or mac in staying:
                out.append(_collision(ctx, pf, v.vf, mac, wanted.get(mac), staying.get(mac)))
            else:
                wanted[mac] = (name, v.vf)
    return out


def _collision(
    ctx: ConfigCtx, pf: PfPlan, vf: int, mac: str, wanted: tuple[str, int] | None,
    staying: tuple[str, int] | None,
) -> Collision:
    who = f"{pf.name} vf {vf}"
    explicit = next((e.key for e in pf.entry.vfs if e.index == vf and e.settings.mac), None)
    if explicit is not None:
        key, value, lead = f"{explicit}.mac", mac, f"{who}: "
    else:
        key, value, lead = f"{pf.entry.key}.mac_policy", "derived", f"{who} gets {mac}, "
    if wanted is not None:
        other = f"wanted for {wanted[0]} vf {wanted[1]}"
    else:
        owner, index = cast(tuple[str, int], staying)
        other = (f"the MAC of netdev {owner}" if index < 0
                 else f"the admin MAC of {owner} vf {index}")
    return Collision(pf.entry.key, pf.name, vf, mac,
                     str(ctx.error(key, value, f"{lead}which is also {other}")))
