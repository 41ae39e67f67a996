"""Run ``vfmac ARGS...`` and SIGKILL it right after an attach reaches PHASE:
``python crash_after.py PHASE ARGS...``.

The crash tests' fault injection, kept out of the package: this process wraps the state store's
two phase writers (``Store.save_original`` makes phase ``saved``, ``Store.set_phase`` the rest)
and kills itself once the named phase is committed, exactly where an attach killed by the
operator (or the OOM killer) would leave its record. Then it runs the real command line.
"""

from __future__ import annotations

import os
import signal
import sys
from typing import Any

from pyvfmac.cli import main
from pyvfmac.records import ATTACH_PHASES, Attachment
from pyvfmac.store import Store


def _die() -> None:
    sys.stdout.flush()
    os.kill(os.getpid(), signal.SIGKILL)


def arm(phase: str) -> None:
    """Make this process die right after its attach reaches ``phase``."""
    if phase not in ATTACH_PHASES:
        raise SystemExit(f"crash_after: unknown phase {phase!r} (one of {ATTACH_PHASES})")
    save_original, set_phase = Store.save_original, Store.set_phase

    def saved(self: Store, *args: Any, **kwargs: Any) -> Attachment:
        att = save_original(self, *args, **kwargs)
        if phase == "saved":
            _die()
        return att

    def moved(self: Store, key: str, new: str, **kwargs: Any) -> Attachment:
        att = set_phase(self, key, new, **kwargs)
        if new == phase:
            _die()
        return att

    Store.save_original = saved  # type: ignore[method-assign]
    Store.set_phase = moved  # type: ignore[method-assign]


if __name__ == "__main__":
    arm(sys.argv[1])
    sys.exit(main(sys.argv[2:]))
