"""Per-key batching: many events for one PF become one apply.

A key (a configured PF) is *due* once no event came for it during ``quiet`` seconds, or
``max_delay`` seconds after its first pending event, whichever is first: 4096 VFs appearing one
by one over several seconds give one apply per ``max_delay``, not 4096, and a lone event is acted
on after ``quiet``. Time is passed in (monotonic seconds), so the class is a pure value machine:
the daemon asks :meth:`Debouncer.timeout` how long it may sleep (None: nothing armed, sleep
until the next event) and :meth:`Debouncer.due` what to do now.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)


@dataclass(slots=True)
class _Pending:
    first: float
    last: float
    events: int
    reasons: list[str]


@dataclass(frozen=True, slots=True)
class Batch(Generic[K]):
    """What became due for one key: how many events, the first few reasons, since when."""

    key: K
    events: int
    reasons: tuple[str, ...]
    first: float


class Debouncer(Generic[K]):
    MAX_REASONS = 3

    def __init__(self, quiet: float = 0.5, max_delay: float = 3.0) -> None:
        if quiet < 0 or max_delay < quiet:
            raise ValueError(f"need 0 <= quiet <= max_delay (quiet {quiet}, max {max_delay})")
        self.quiet = quiet
        self.max_delay = max_delay
        self._pending: dict[K, _Pending] = {}

    def __len__(self) -> int:
        return len(self._pending)

    def __contains__(self, key: object) -> bool:
        return key in self._pending

    def add(self, key: K, now: float, reason: str = "") -> None:
        """Note one event for ``key`` at ``now``."""
        p = self._pending.get(key)
        if p is None:
            self._pending[key] = _Pending(now, now, 1, [reason] if reason else [])
            return
        p.last = max(p.last, now)
        p.events += 1
        if reason and len(p.reasons) < self.MAX_REASONS:
            p.reasons.append(reason)

    def discard(self, key: K) -> None:
        self._pending.pop(key, None)

    def _deadline(self, p: _Pending) -> float:
        return min(p.last + self.quiet, p.first + self.max_delay)

    def timeout(self, now: float) -> float | None:
        """Seconds until the next key is due (0 when one is due now); None when none is armed."""
        if not self._pending:
            return None
        return max(0.0, min(self._deadline(p) for p in self._pending.values()) - now)

    def due(self, now: float) -> list[Batch[K]]:
        """The keys due at ``now``, removed from the pending set, oldest first."""
        ready = [(p.first, k) for k, p in self._pending.items() if self._deadline(p) <= now]
        ready.sort(key=lambda item: item[0])
        out: list[Batch[K]] = []
        for _first, key in ready:
            p = self._pending.pop(key)
            out.append(Batch(key, p.events, tuple(p.reasons), p.first))
        return out
