"""What became of VF changes: their errors, and what of a change the kernel refused part-way
was applied, put back or left.

The kernel applies the settings of one change (one IFLA_VF_INFO) in its own order and stops at
the first one the driver refuses (:data:`pyvfmac.settings.KERNEL_ORDER`): the ones before it stay
applied. ``Rtnl.apply`` (by default) reads such a VF back, tells which setting was refused
(:func:`pyvfmac.settings.refusal`) and puts back the others;
:func:`read_back` gives the same account to a caller that reads the PF back itself (``vfmac
apply``); :func:`result_error` says it.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import replace

from .errors import NetlinkError, errno_name
from .settings import VfState, describe, parts, refusal
from .types import VfResult


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


__all__ = ["check_results", "outcome", "read_back", "result_error"]
