"""Namespaces being deleted: no point re-creating children there.

While a namespace is being deleted, its namespace controller deletes every object in it,
and each deleted Deployment or Service wakes the reconcile of its CoffeeServer, which
would re-create it -- a request the API server must refuse (403, "being terminated"):
about three wasted requests per CoffeeServer. The first refusal marks the namespace;
creates there are skipped for a while (updates of objects that still exist are not: the
API server allows those). A namespace cannot stop terminating, but one of the same name
can be created again once it is gone: the mark expires after ``MEMORY_SECONDS``, and a
CoffeeServer created after the mark proves the namespace is a new, live one (the API
server refuses creates in a terminating namespace).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime

#: How long a refusal marks its namespace. A deletion that takes longer (pods with a long
#: grace period) costs one more refused create per namespace per this period.
MEMORY_SECONDS = 15.0


class TerminatingNamespaces:
    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._marked: dict[str, float] = {}  # namespace -> wall-clock time of the refusal

    def mark(self, namespace: str) -> None:
        """The API server refused a create in ``namespace``: it is being deleted."""
        self._marked[namespace] = self._clock()

    def skip_creates(self, namespace: str, cr_created: str | None) -> bool:
        """True while ``namespace`` is known to be terminating and the CoffeeServer (its
        metadata.creationTimestamp, RFC 3339, whole seconds) is no newer than that news."""
        marked = self._marked.get(namespace)
        if marked is None:
            return False
        if self._clock() - marked > MEMORY_SECONDS or _created_after(cr_created, marked):
            del self._marked[namespace]
            return False
        return True


def _created_after(timestamp: str | None, moment: float) -> bool:
    if not timestamp:
        return False
    try:
        created = datetime.fromisoformat(timestamp.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return False
    return created >= int(moment) + 1  # whole seconds: certainly after `moment`
