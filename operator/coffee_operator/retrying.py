"""Backoff retries for a CoffeeServer whose reconcile failed.

kopf retries only its change handlers, by persisting progress in annotations on the
CR (a write per attempt) and by default 60 s apart, and it never retries
``on.event`` handlers -- which is where a deleted or edited child is put back. A failed
reconcile here has already written its status (Degraded/Retrying); this only
schedules the next attempt, one pending timer per CoffeeServer, and forgets it on
success or deletion.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Hashable, Sequence

DELAYS: Sequence[float] = (1, 2, 5, 10, 20, 30, 60)


class Retrier:
    def __init__(self, delays: Sequence[float] = DELAYS) -> None:
        self.delays = tuple(delays)
        self._handles: dict[Hashable, asyncio.TimerHandle] = {}
        self._attempts: dict[Hashable, int] = {}

    def schedule(self, key: Hashable, callback: Callable[[], object]) -> float:
        """Call ``callback`` after the next backoff delay for ``key``; returns the delay."""
        self.cancel(key, reset=False)
        attempt = self._attempts.get(key, 0)
        delay = self.delays[min(attempt, len(self.delays) - 1)]
        self._attempts[key] = attempt + 1
        loop = asyncio.get_running_loop()
        self._handles[key] = loop.call_later(delay, self._fire, key, callback)
        return delay

    def _fire(self, key: Hashable, callback: Callable[[], object]) -> None:
        self._handles.pop(key, None)
        callback()

    def cancel(self, key: Hashable, *, reset: bool = True) -> None:
        handle = self._handles.pop(key, None)
        if handle is not None:
            handle.cancel()
        if reset:
            self._attempts.pop(key, None)

    def pending(self, key: Hashable) -> bool:
        return key in self._handles
