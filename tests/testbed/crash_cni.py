"""Run vfmac-cni and SIGKILL it right after ADD reaches STEP (``$PYVFMAC_CRASH_AFTER``):
``moved`` (the VF netdev is in the pod) or ``ipam`` (the delegate gave its addresses).

The CNI crash tests' fault injection, kept out of the package as ``crash_after.py`` is for
attach: this process wraps the two steps and kills itself once the named one is done, where a
runtime killed mid-ADD (or the OOM killer) would leave the VF. Then it runs the real plugin."""

from __future__ import annotations

import os
import signal
import sys
from typing import Any

from pyvfmac.cni import ipam
from pyvfmac.cni.main import main
from pyvfmac.netns import Netns


def _die() -> None:
    sys.stdout.flush()
    os.kill(os.getpid(), signal.SIGKILL)


def arm(step: str) -> None:
    if step == "moved":
        move = Netns.move

        def moved(self: Netns, link: Any, to: Netns, name: str) -> None:
            move(self, link, to, name)
            if to.path is not None:  # into the pod (a restore moves it home)
                _die()

        Netns.move = moved  # type: ignore[method-assign]
    elif step == "ipam":
        add = ipam.add

        def added(*args: Any, **kwargs: Any) -> Any:
            result = add(*args, **kwargs)
            _die()
            return result

        ipam.add = added
    else:
        raise SystemExit(f"crash_cni: unknown step {step!r} (moved or ipam)")


if __name__ == "__main__":
    arm(os.environ["PYVFMAC_CRASH_AFTER"])
    main()
