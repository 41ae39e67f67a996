"""Reading and changing VF settings through their PF, over rtnetlink (the C core does the work).

>>> with Rtnl() as nl:
...     pf = nl.read_link("eth0")
...     results = nl.apply([VfChange(pf="eth0", vf=0, mac="02:00:00:00:00:01")])
...     check_results(results)
"""

from __future__ import annotations

import errno
from array import array
from dataclasses import dataclass, replace
from itertools import chain, groupby, repeat
from collections.abc import Iterable, Mapping, Sequence
from types import TracebackType

# The two C functions socket.py re-exports, without socket.py: its import builds several enums
# (AddressFamily, SocketKind, ...), a share of every command's start-up for two name look-ups.
# `python -X importtime -c 'import pyvfmac.netlink; import socket'` on the 2-vCPU development host
# (2026-12-07, 3 runs): socket +3.2 to 3.9 ms (with selectors), _socket 0.4 ms; `python3 -c
# pass` is 12.7 ms there (min of 30). Under TCG, module imports cost 10-20x that (bench/README.md).
from _socket import if_indextoname, if_nametoindex

from . import _lowlevel as ll
from .errors import InputError, NetlinkError, VfmacError
from .mac import ZERO_MAC, mac_bytes, parse_mac
from .settings import (
    DEFAULT_VLAN_PROTO,
    LINK_STATES,
    VF_MAX,
    VLAN_PROTOS,
    VfChange,
    VfSettings,
    VfState,
    check,
    int_problem,
    is_int_in,
    joined,
    parts,
    put_back,
    refusal,
)
from .results import check_results, outcome, read_back, result_error
from .types import LinkInfo, VfResult, bulk_constructor, validate_netdev_name

DEFAULT_BUFSIZE = 64 << 20
_make_result = bulk_constructor(VfResult, ("change", "pf_name", "errno", "ext_msg", "attempts"))


MacsArg = Mapping[int, str] | Sequence[str]

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (mypy: always_true)
if TYPE_CHECKING:  # for annotations (typing is not imported at run time)
    from typing import Protocol

    class VfIO(Protocol):
        """Reading links and changing VFs: what every user of an :class:`Rtnl` calls. Rtnl is the
        one implementation; the tests' fakes are checked against these protocols by mypy."""

        def read_link(self, dev: str | int, *, strict: bool = True) -> LinkInfo: ...

        def dump_links(self) -> list[LinkInfo]: ...

        def apply(self, changes: Sequence[VfChange], *, undo: bool = True,
                  before: Mapping[tuple[str | int, int], VfState] | None = None
                  ) -> list[VfResult]: ...

    class LinkIO(VfIO, Protocol):
        """What attach, detach, restore and the CNI plugin call on ``Host.nl``."""

        def set_link_mac(self, dev: str | int, mac: str) -> None: ...

        def set_vf_port(self, pf: str | int, vf: int, *, profile: str,
                        instance_uuid: str | None = None, host_uuid: str | None = None,
                        associate: bool = True) -> None: ...

        def close(self) -> None: ...

    class BulkIO(VfIO, Protocol):
        """What ``vfmac apply``'s run calls (``pyvfmac.apply.run``): the bulk MAC path too."""

        def set_macs(self, pf: int, macs: dict[int, str]) -> dict[int, NetlinkError]: ...


@dataclass(slots=True)
class _MacJob:
    """One PF's part of a bulk MAC call."""

    pf: str | int
    values: Sequence[str] | Iterable[str]
    vfs: array[int] | None  # None: VF i gets the i-th MAC
    count: int
    name: str = ""  # the PF's name, once the C core has resolved it

    def label(self) -> str:
        return self.name or str(self.pf)

    def order(self) -> Sequence[int]:
        return self.vfs.tolist() if self.vfs is not None else range(self.count)


def _vf_indices(keys: Iterable[int], pf: str) -> array[int]:
    """VF indices (integers) as one uint32 buffer for the C core; InputError naming a bad one
    (indices over the C core's limit are refused there)."""
    try:
        return array("I", keys)
    except (TypeError, OverflowError):
        bad = next(v for v in keys if not isinstance(v, int) or not 0 <= v <= VF_MAX)
        raise InputError(
            f"{pf}: VF index {bad!r}: must be an integer from 0 to {VF_MAX}") from None


def _mac_job(pf: object, macs: object) -> _MacJob:
    if type(pf) is str and type(macs) is list:  # the boot-time case, without the ABC checks
        return _MacJob(validate_netdev_name(pf), macs, None, len(macs))
    if isinstance(pf, bool) or not isinstance(pf, (str, int)):
        raise InputError(f"network device {pf!r}: give a name or an ifindex")
    if isinstance(pf, str):
        validate_netdev_name(pf)
    elif not 0 < pf <= 0x7FFFFFFF:
        raise NetlinkError(errno.ENODEV, "no such network device", device=str(pf))
    if isinstance(macs, Mapping):
        return _MacJob(pf, macs.values(), _vf_indices(macs.keys(), str(pf)), len(macs))
    if isinstance(macs, (str, bytes, bytearray)) or not isinstance(macs, Sequence):
        raise InputError(f"{pf}: MACs: give a mapping of VF index to MAC or a sequence of "
                         f"MACs, not {type(macs).__name__}")
    return _MacJob(pf, macs, None, len(macs))


def _join_macs(jobs: Sequence[_MacJob]) -> bytes | None:
    """Every MAC, newline-joined ASCII; None when that is impossible (a non-string, non-ASCII)."""
    values = jobs[0].values if len(jobs) == 1 else chain.from_iterable(j.values for j in jobs)
    try:
        return "\n".join(values).encode("ascii")
    except (TypeError, UnicodeEncodeError):
        return None


def _canonical_macs(jobs: Sequence[_MacJob]) -> bytes:
    """The slow path for MACs the C parser refused: parse_mac names the bad one (InputError)
    or normalizes every spelling it accepts."""
    out: list[str] = []
    for job in jobs:
        out.extend(parse_mac(m, what=f"{job.label()} vf {v}: MAC")
                   for v, m in zip(job.order(), job.values))
    return "\n".join(out).encode("ascii")


def _check_options(max_per_msg: int, retries: int, backoff_us: int) -> None:
    for what, value, high in (("max_per_msg", max_per_msg, 1 << 20), ("retries", retries, 100),
                              ("backoff_us", backoff_us, 10_000_000)):
        if not is_int_in(value, 0, high):
            raise InputError(f"{what} {value!r}: {int_problem(value, 0, high)}")


def validate_change(change: VfChange) -> VfChange:
    """Check every field before anything is sent; canonicalise the MAC (the one validator,
    :func:`pyvfmac.settings.check`, with the VF index and PF name checked here)."""
    if not is_int_in(change.vf, 0, VF_MAX):
        raise InputError(f"{change.pf}: VF index {change.vf!r}: "
                         f"{int_problem(change.vf, 0, VF_MAX)}")
    return check(change, f"{change.pf} vf {change.vf}", allow_zero_mac=change.allow_zero_mac)


def _macs_only(changes: Sequence[VfChange]) -> bool:
    """Whether every change sets a MAC and nothing else (then the bulk path takes them)."""
    return all(map(VfSettings.mac_only, changes))


def _rates(change: VfChange, have: VfState | None) -> tuple[int, int] | None:
    """(min, max) TX rate to send: the kernel takes them together, a missing one comes from
    the VF's current state ``have`` (read for such a change)."""
    lo, hi = change.min_tx_rate, change.max_tx_rate
    if lo is None and hi is None:
        return None
    if have is not None:
        lo = lo if lo is not None else have.min_tx_rate
        hi = hi if hi is not None else have.max_tx_rate
    assert lo is not None and hi is not None
    return lo, hi


def _pack(change: VfChange, ifindex: int, rates: tuple[int, int] | None) -> ll.PackedChange:
    flags = 0
    if change.mac is not None:
        flags |= ll.SET_MAC
    if change.vlan is not None:
        flags |= ll.SET_VLAN
    if change.spoofchk is not None:
        flags |= ll.SET_SPOOFCHK
    if change.trust is not None:
        flags |= ll.SET_TRUST
    if change.link_state is not None:
        flags |= ll.SET_LINK_STATE
    if rates is not None:
        flags |= ll.SET_RATE
    return (
        ifindex,
        change.vf,
        flags,
        mac_bytes(change.mac) if change.mac is not None else b"\0" * 6,
        VLAN_PROTOS[change.vlan_proto or DEFAULT_VLAN_PROTO] if change.vlan is not None else 0,
        change.vlan or 0,
        (change.qos or 0) if change.vlan else 0,
        int(bool(change.spoofchk)),
        int(bool(change.trust)),
        LINK_STATES.index(change.link_state) if change.link_state is not None else 0,
        rates[0] if rates else 0,
        rates[1] if rates else 0,
    )


class Rtnl:
    """One rtnetlink socket of the C core. Use as a context manager, or call :meth:`close`."""

    def __init__(self, bufsize: int = DEFAULT_BUFSIZE, *, sock: ll.Socket | None = None) -> None:
        """A new socket in this process's network namespace, or ``sock``, one the C core opened
        in another (:class:`pyvfmac.netns.Netns`)."""
        self._sock = sock if sock is not None else ll.Socket(bufsize)
        self._names: dict[int, str] = {}

    @property
    def sock(self) -> ll.Socket:
        """The C core's socket, for the namespace operations of :mod:`pyvfmac.netns`."""
        return self._sock

    def close(self) -> None:
        self._sock.close()

    def __enter__(self) -> Rtnl:
        return self

    def __exit__(
        self, t: type[BaseException] | None, v: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # -- names --

    def resolve(self, dev: str | int) -> tuple[int, str]:
        """(ifindex, name) of a netdev given by name or ifindex; ENODEV when it does not exist."""
        if isinstance(dev, bool) or not isinstance(dev, (str, int)):
            raise InputError(f"network device {dev!r}: give a name or an ifindex")
        try:
            if isinstance(dev, int):
                return dev, if_indextoname(dev)
            validate_netdev_name(dev)
            return if_nametoindex(dev), dev
        except OSError:
            raise NetlinkError(errno.ENODEV, "no such network device", device=str(dev)) from None

    # -- reading --

    def read_link(self, dev: str | int, *, strict: bool = True) -> LinkInfo:
        """One netdev with its VFs, in one request. With ``strict``, a VF list shorter than the
        kernel's ``IFLA_NUM_VF`` raises instead of returning a partial answer."""
        if type(dev) is str:  # by name: the kernel looks it up within the request itself
            name = validate_netdev_name(dev)
            try:
                links = ll.links_get(self._sock, 0, name, device=name)
            except NetlinkError as exc:
                if exc.errno != errno.ENODEV:
                    raise
                raise NetlinkError(errno.ENODEV, "no such network device", device=name) from None
        else:
            ifindex, name = self.resolve(dev)
            links = ll.links_get(self._sock, ifindex, None, device=name)
        if len(links) != 1:
            raise NetlinkError(errno.EBADMSG, f"expected one link, the kernel sent {len(links)}",
                               device=name)
        link = links[0]
        if strict and link.missing_vfs:
            raise NetlinkError(
                errno.EMSGSIZE,
                f"VF list incomplete: the kernel announced {link.num_vf} VFs and listed "
                f"{len(link.vfs)}",
                device=link.name,
            )
        return link

    def dump_links(self) -> list[LinkInfo]:
        """Every netdev, with VFs for PFs, in one dump (``missing_vfs`` says where lists are short)."""
        return ll.links_get(self._sock, -1, None, device="all links")

    # -- changing --

    def apply(
        self,
        changes: Sequence[VfChange],
        *,
        undo: bool = True,
        before: Mapping[tuple[str | int, int], VfState] | None = None,
        max_per_msg: int = 0,
        retries: int = 5,
        backoff_us: int = 1000,
    ) -> list[VfResult]:
        """Apply VF changes in batches; one :class:`VfResult` per change, in order.

        Input is checked whole before anything is sent (``InputError``); a PF that does not exist
        raises ``NetlinkError`` (ENODEV) before anything is sent. Kernel refusals are per VF in the
        results: use :func:`check_results` to raise the first.

        The kernel applies the settings of one change in its own order and stops at the first
        it refuses, keeping those before it. With ``undo`` (the default) nothing is left
        half-done: the PFs of changes of more than one setting are read before (once each;
        ``before``: VF states the caller has just read, by ``(pf, vf)`` as the changes give
        them, are not read again), and after a refusal read back (once each, failures only);
        the result's ``refusal`` says which setting was refused, and the settings applied are
        put back (``kept``: those that could not be). Without ``undo``: no reads for that; a
        caller that reads the PF back anyway gets the same account from :func:`read_back`.
        """
        checked = [validate_change(c) for c in changes]
        _check_options(max_per_msg, retries, backoff_us)
        pfs: dict[str | int, tuple[int, str]] = {}
        for c in checked:
            if c.pf not in pfs:
                pfs[c.pf] = self.resolve(c.pf)
        opts = {"max_per_msg": max_per_msg, "retries": retries, "backoff_us": backoff_us}
        if checked and _macs_only(checked):
            fast = self._apply_macs(checked, pfs, opts)
            if fast is not None:
                return fast
        several = [i for i, c in enumerate(checked) if undo and len(parts(c)) > 1]
        half_rate = [i for i, c in enumerate(checked)
                     if (c.min_tx_rate is None) != (c.max_tx_rate is None)]
        had = self._states(checked, pfs, several + half_rate, half_rate, before or {})
        packed = [_pack(c, pfs[c.pf][0], _rates(c, had.get(i))) for i, c in enumerate(checked)]
        errs, attempts, msgs = ll.vf_apply(self._sock, packed, max_per_msg=max_per_msg,
                                           retries=retries, backoff_us=backoff_us)
        names = [pfs[c.pf][1] for c in checked] if len(pfs) > 1 else repeat(
            next(iter(pfs.values()))[1] if pfs else "")
        results = list(map(_make_result, checked, names, errs, msgs, attempts))
        refused = [i for i in several if errs[i]]
        if refused:
            self._undo_refused(results, {i: pfs[checked[i].pf][0] for i in refused}, had)
        return results

    def _states(self, changes: Sequence[VfChange], pfs: Mapping[str | int, tuple[int, str]],
                which: Iterable[int], needed: Sequence[int],
                known: Mapping[tuple[str | int, int], VfState]) -> dict[int, VfState]:
        """The current state of the VF of each change in ``which`` (by position), each PF read
        once unless ``known`` has the VF. A VF the PF does not list is left out, or, for a
        change in ``needed``, raises TopologyError."""
        out: dict[int, VfState] = {}
        links: dict[int, LinkInfo] = {}
        for i in which:
            c = changes[i]
            state = known.get((c.pf, c.vf))
            if state is None:
                ifindex = pfs[c.pf][0]
                if ifindex not in links:
                    links[ifindex] = self.read_link(ifindex, strict=False)
                at = links[ifindex].vfs.position(c.vf)
                if at is None:
                    if i in needed:
                        links[ifindex].vf(c.vf)  # raises, naming the PF and its VF count
                    continue
                state = links[ifindex].vfs[at]
            out[i] = state
        return out

    def _undo_refused(self, results: list[VfResult], refused: Mapping[int, int],
                      had: Mapping[int, VfState]) -> None:
        """For each refused change of several settings (``results[i]`` for ``i`` in ``refused``,
        which gives its PF's ifindex): read the VF back (each PF once), tell what applied and put
        that back to the state ``had[i]`` it had before (each setting alone), and record both in
        ``results[i]``. When the PF cannot be read back, what applied is not known: nothing is put
        back, ``undo_errno`` says why; a VF whose state before is not known is told, not put
        back."""
        links: dict[int, LinkInfo | NetlinkError] = {}
        steps: list[tuple[int, VfSettings, VfChange]] = []  # (result, setting, its put-back)
        for i, ifindex in refused.items():
            c = results[i].change
            if ifindex not in links:
                try:
                    links[ifindex] = self.read_link(ifindex, strict=False)
                except NetlinkError as exc:
                    links[ifindex] = exc
            link = links[ifindex]
            if isinstance(link, NetlinkError):
                results[i] = replace(results[i], undo_errno=link.errno or errno.EIO)
                continue
            at = link.vfs.position(c.vf)
            if at is None:
                continue
            after, prior = link.vfs[at], had.get(i)
            told = refusal(c, after, prior)
            results[i] = replace(results[i], refusal=told,
                                 kept=VfSettings() if prior is not None else None)
            if prior is not None:
                steps.extend((i, part, VfChange.of(ifindex, c.vf, step, allow_zero_mac=True))
                             for part, step in put_back(told.applied, prior, after))
        if not steps:
            return
        kept: dict[int, list[VfSettings]] = {}
        codes: dict[int, int] = {}
        try:
            done: list[VfResult | None] = list(self.apply([s for _i, _p, s in steps],
                                                          undo=False))
        except VfmacError as exc:  # refused before anything was sent (the PF gone, ...):
            # the refusal itself is still told, with nothing put back
            failure = getattr(exc, "errno", None) or errno.EIO
            done = [None] * len(steps)
        for (i, part, _step), res in zip(steps, done):
            if res is None or not res.ok:
                kept.setdefault(i, []).append(part)
                codes.setdefault(i, res.errno if res is not None else failure)
        for i, left in kept.items():
            results[i] = replace(results[i], kept=joined(left), undo_errno=codes[i])

    def _apply_macs(self, checked: Sequence[VfChange], pfs: Mapping[str | int, tuple[int, str]],
                    opts: Mapping[str, int]) -> list[VfResult] | None:
        """:meth:`apply` for changes that set only MACs: the bulk path (one job per PF, in
        input order within each), one result per change. None when a MAC is one the bulk
        path does not take (all-zero, for a restore): the general path does it then."""
        ifindex = [pfs[c.pf][0] for c in checked]
        order = sorted(range(len(checked)), key=ifindex.__getitem__)
        jobs: list[ll.MacJob] = []
        for index, group in groupby(order, key=ifindex.__getitem__):
            jobs.append((index, "", sum(1 for _ in group)))
        vfs = array("I", [checked[i].vf for i in order])
        text = "\n".join([checked[i].mac for i in order]).encode("ascii")  # type: ignore[misc]
        bad, _pos, failures, _resolved = ll.vf_set_macs(self._sock, jobs, vfs, text, **opts)
        if bad:
            return None
        names = [pfs[c.pf][1] for c in checked] if len(pfs) > 1 else repeat(
            next(iter(pfs.values()))[1])
        results = list(map(_make_result, checked, names, repeat(0), repeat(""), repeat(1)))
        for pos, code, attempts, msg in failures:
            i = order[pos]
            results[i] = _make_result(checked[i], results[i].pf_name, code, msg, attempts)
        return results

    def set_macs(
        self,
        pf: str | int,
        macs: MacsArg,
        *,
        max_per_msg: int = 0,
        retries: int = 5,
        backoff_us: int = 1000,
    ) -> dict[int, NetlinkError]:
        """Bulk fast path: give VFs of one PF their admin MACs, ``{vf index: MAC}`` or a
        sequence whose i-th MAC goes to VF i, in as few messages as fit. The input is checked
        whole first (``InputError`` naming the VF and value; ``NetlinkError`` ENODEV for a PF
        that does not exist; nothing sent). Returns the VFs that failed, each with its error; an
        empty dict means every MAC was applied."""
        failed = self.set_macs_many({pf: macs}, max_per_msg=max_per_msg, retries=retries,
                                    backoff_us=backoff_us)
        return {vf: err for (_pf, vf), err in failed.items()}

    def set_macs_many(
        self,
        macs: Mapping[str | int, MacsArg],
        *,
        max_per_msg: int = 0,
        retries: int = 5,
        backoff_us: int = 1000,
    ) -> dict[tuple[str, int], NetlinkError]:
        """:meth:`set_macs` for several PFs in one go (``{pf: MACs}``): every PF's messages are
        sent pipelined. Checked whole first, nothing sent on bad input or a missing PF. Returns
        ``{(PF name, vf): error}`` for the VFs that failed."""
        _check_options(max_per_msg, retries, backoff_us)
        jobs = [j for j in [_mac_job(pf, m) for pf, m in macs.items()] if j.count]
        if not jobs:
            return {}
        vfs: array[int] | None = None
        if any([j.vfs is not None for j in jobs]):
            vfs = array("I")
            for j in jobs:
                vfs.extend(j.vfs if j.vfs is not None else range(j.count))
        cjobs = [(j.pf, "", j.count) if isinstance(j.pf, int) else (0, j.pf, j.count)
                 for j in jobs]
        opts = {"max_per_msg": max_per_msg, "retries": retries, "backoff_us": backoff_us}
        text = _join_macs(jobs)
        if text is not None:
            bad, pos, failures, resolved = ll.vf_set_macs(self._sock, cjobs, vfs, text, **opts)
            if not bad and not failures:
                return {}
        if text is None or bad == errno.EINVAL:  # names for the slow path's messages
            if text is not None:
                for job, name in zip(jobs, ll.mac_job_names(resolved)):
                    job.name = name
            bad, pos, failures, resolved = ll.vf_set_macs(self._sock, cjobs, vfs,
                                                          _canonical_macs(jobs), **opts)
        if bad == errno.ENODEV:
            raise NetlinkError(errno.ENODEV, "no such network device", device=jobs[pos].label())
        for job, name in zip(jobs, ll.mac_job_names(resolved)):
            job.name = name
        if bad:
            self._bad_entry(jobs, bad, pos)
        if not failures:
            return {}
        return self._mac_failures(jobs, failures)

    @staticmethod
    def _owners(jobs: Sequence[_MacJob]) -> list[tuple[int, int]]:
        """(job, VF index) of every entry position, built once (failure paths only)."""
        return [(k, vf) for k, job in enumerate(jobs) for vf in job.order()]

    def _bad_entry(self, jobs: Sequence[_MacJob], bad: int, pos: int) -> None:
        k, vf = self._owners(jobs)[pos]
        if bad == errno.ERANGE:
            raise InputError(f"{jobs[k].label()}: VF index {vf!r}: must be an integer from 0 "
                             f"to {VF_MAX}")
        raise InputError(  # pragma: no cover - parse_mac and the C parser disagree
            f"{jobs[k].label()} vf {vf}: MAC refused by the C parser")

    def _mac_failures(self, jobs: Sequence[_MacJob], failures: Sequence[tuple[int, int, int, str]]
                      ) -> dict[tuple[str, int], NetlinkError]:
        texts = list(chain.from_iterable(j.values for j in jobs))
        owners = self._owners(jobs)
        out: dict[tuple[str, int], NetlinkError] = {}
        for pos, code, _attempts, msg in failures:
            k, vf = owners[pos]
            name = jobs[k].label()
            out[(name, vf)] = NetlinkError(code, f"cannot set MAC {parse_mac(texts[pos])}",
                                           device=name, vf=vf, ext_msg=msg)
        return out

    def set_link_mac(self, dev: str | int, mac: str) -> None:
        """A netdev's own MAC (RTM_SETLINK IFLA_ADDRESS), e.g. a VF netdev held by a host driver."""
        canonical = parse_mac(mac, allow_zero=False)
        ifindex, name = self.resolve(dev)
        ll.link_set_addr(self._sock, ifindex, mac_bytes(canonical), device=name)

    def set_vf_port(
        self,
        pf: str | int,
        vf: int,
        *,
        profile: str,
        instance_uuid: str | None = None,
        host_uuid: str | None = None,
        associate: bool = True,
    ) -> None:
        """802.1Qbh: associate (or disassociate) a port profile with a VF (IFLA_VF_PORTS)."""
        if not is_int_in(vf, 0, VF_MAX):
            raise InputError(f"VF index {vf!r}: {int_problem(vf, 0, VF_MAX)}")
        ifindex, name = self.resolve(pf)
        try:
            from uuid import UUID  # only here: it imports platform, costly at boot

            inst = UUID(instance_uuid).bytes if instance_uuid else None
            host = UUID(host_uuid).bytes if host_uuid else None
            ll.vf_port_set(
                self._sock, ifindex, vf,
                ll.PORT_ASSOCIATE if associate else ll.PORT_DISASSOCIATE,
                profile, inst, host, device=name,
            )
        except ValueError as exc:
            raise InputError(f"{name} vf {vf}: port profile: {exc}") from None


def find_link(nl: VfIO, name: str) -> LinkInfo | None:
    """The netdev ``name`` as ``nl`` reads it (its VF list may be short), or None when there is
    no such netdev."""
    try:
        return nl.read_link(name, strict=False)
    except NetlinkError as exc:
        if exc.errno == errno.ENODEV:
            return None
        raise


def read_link(dev: str | int, *, strict: bool = True) -> LinkInfo:
    with Rtnl() as nl:
        return nl.read_link(dev, strict=strict)


def dump_links() -> list[LinkInfo]:
    with Rtnl() as nl:
        return nl.dump_links()


def apply_changes(changes: Sequence[VfChange], *, undo: bool = True,
                  before: Mapping[tuple[str | int, int], VfState] | None = None,
                  max_per_msg: int = 0, retries: int = 5, backoff_us: int = 1000
                  ) -> list[VfResult]:
    with Rtnl() as nl:
        return nl.apply(changes, undo=undo, before=before, max_per_msg=max_per_msg,
                        retries=retries, backoff_us=backoff_us)


__all__ = [
    "ZERO_MAC",
    "Rtnl",
    "apply_changes",
    "check_results",
    "dump_links",
    "find_link",
    "outcome",
    "read_back",
    "read_link",
    "result_error",
    "validate_change",
]
