"""What became of VF changes: their errors, and what of a change the kernel refused part-way
was applied, put back or left.

The kernel applies the settings of one change (one IFLA_VF_INFO) in its own order and stops at
the first one the driver refuses (:data:`pyvfmac.settings.KERNEL_ORDER`): the ones before it stay
applied. :func:`undo_refused` (what ``Rtnl.apply`` does by default) reads such a VF back, tells
which setting was refused (:func:`pyvfmac.settings.refusal`) and puts back the others;
:func:`read_back` gives the same account to a caller that reads the PF back itself (``vfmac
apply``); :func:`result_error` says it.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterable, Mapping
from dataclasses import replace

from .errors import NetlinkError, errno_name
from .settings import VfChange, VfSettings, VfState, describe, joined, parts, put_back, refusal
from .types import LinkInfo, VfResult

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (mypy: always_true)
if TYPE_CHECKING:
    from .netlink import Rtnl


def result_error(result: VfResult) -> NetlinkError | None:
    """The failure of one result as an exception (None when it applied). A change of several
    settings that was read back names the refused setting alone and says what became of the
    others (:func:`outcome`)."""
    if result.ok:
        return None
    failed = result.refusal.failed if result.refusal is not None else None
    return NetlinkError(
        result.errno,
        f"cannot set {describe(failed or result.change)}",
        device=result.pf_name,
        vf=result.change.vf,
        ext_msg=result.ext_msg,
        outcome=outcome(result),
    )


def check_results(results: Iterable[VfResult]) -> None:
    """Raise the first failure among ``results`` as a :class:`NetlinkError`."""
    for result in results:
        err = result_error(result)
        if err is not None:
            raise err


def outcome(result: VfResult) -> str | None:
    """What became of the settings sent with a refused one (None: not read back): ``nothing
    changed`` (none applied, or all put back); ``set: MAC 02:00:00:00:00:07`` (applied, and not
    put back, or, with ``(cannot put it back: ...)``, not puttable back); ``not set: trust on``
    (after the refused one, not tried)."""
    r = result.refusal
    if r is None:
        if not result.undo_errno:
            return None
        code = result.undo_errno
        return (f"what of it applied is not known (cannot read the VF back: {os.strerror(code)} "
                f"({errno_name(code)}))")
    kept = r.applied if result.kept is None else result.kept
    if kept.empty():
        return "nothing changed"
    if r.failed is None and result.kept is None:
        return "every setting reads back as asked"
    text = f"set: {describe(kept)}"
    if result.undo_errno:
        code = result.undo_errno
        text += f" (cannot put it back: {os.strerror(code)} ({errno_name(code)}))"
    if not r.not_set.empty():
        text += f"; not set: {describe(r.not_set)}"
    return text


def read_back(result: VfResult, after: VfState) -> VfResult:
    """``result`` with its :attr:`~pyvfmac.types.VfResult.refusal` told by ``after``, the VF's
    state read after the change: for a refused change of several settings (any other result is
    returned as it is). For callers of ``Rtnl.apply(..., undo=False)`` that read the PF back."""
    if result.ok or result.refusal is not None or len(parts(result.change)) < 2:
        return result
    return replace(result, refusal=refusal(result.change, after))


def undo_refused(nl: Rtnl, results: list[VfResult], refused: Mapping[int, int],
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
                links[ifindex] = nl.read_link(ifindex, strict=False)
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
    for (i, part, _step), res in zip(steps, nl.apply([s for _i, _p, s in steps], undo=False)):
        if not res.ok:
            kept.setdefault(i, []).append(part)
            codes.setdefault(i, res.errno)
    for i, left in kept.items():
        results[i] = replace(results[i], kept=joined(left), undo_errno=codes[i])


__all__ = ["check_results", "outcome", "read_back", "result_error", "undo_refused"]
