"""One level-triggered reconcile of one CoffeeServer.

Whatever woke it up (the CR changed, a child changed or vanished, a retry timer),
a reconcile does the same thing from the freshest known state:

1. render the children from the CR (pure; an invalid spec stops here and touches nothing);
2. for each child, compare rendered vs. live on the fields we render and write only
   if they differ -- one server-side apply per child at most;
3. compute status (effective values, replica counts, conditions) and patch only the
   keys that changed -- also when step 2 failed, so the failure is visible;
4. post Events for what was written or newly went wrong; schedule a retry on failure.

Reconciles of one CoffeeServer are serialised by a per-object lock, because kopf runs
the CR's and its children's event handlers concurrently.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from . import conditions, events
from .config import status_fields
from .drift import differences
from .errors import SpecError
from .fingerprint import stamp, stamped_value
from .kubeapi import ApiError, KubeClient
from .livestate import LiveState
from .manifests import render
from .retrying import Retrier
from .status import desired_status, status_patch

logger = logging.getLogger(__name__)

CrKey = tuple[str, str]  # (namespace, name)
#: Reads the watch-fed copy of an object: (kind, namespace, name) -> body or None.
Lookup = Callable[[str, str, str], Mapping[str, Any] | None]


@dataclass
class Outcome:
    """What one reconcile did (for logs and tests of the handlers)."""

    writes: list[tuple[str, str, str]] = field(default_factory=list)  # (action, kind, name)
    status_written: bool = False
    spec_error: SpecError | None = None
    apply_error: str | None = None


@dataclass
class Reconciler:
    client: KubeClient
    lookup: Lookup
    live: LiveState = field(default_factory=LiveState)
    retrier: Retrier = field(default_factory=Retrier)
    failures: dict[CrKey, int] = field(default_factory=dict)
    _locks: dict[CrKey, asyncio.Lock] = field(default_factory=dict)

    def current(
        self, kind: str, namespace: str, name: str, hint: Mapping[str, Any] | None = None
    ) -> dict[str, Any] | None:
        """Freshest copy of an object: the event body ``hint``, kopf's index, our last write."""
        return self.live.freshest((kind, namespace, name), hint, self.lookup(kind, namespace, name))

    def forget(self, key: CrKey) -> None:
        """The CoffeeServer is gone: drop its lock, retries and remembered writes."""
        self.retrier.cancel(key)
        self.failures.pop(key, None)
        self._locks.pop(key, None)
        for kind in ("CoffeeServer", "Deployment", "Service"):
            self.live.forget((kind, *key))

    async def reconcile(
        self, key: CrKey, hint: Mapping[str, Any] | None = None, *, trigger: str
    ) -> Outcome | None:
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            cr = self.current("CoffeeServer", key[0], key[1], hint)
            if cr is None or (cr.get("metadata") or {}).get("deletionTimestamp"):
                return None  # deleted: the garbage collector removes the children
            outcome = await self._reconcile(key, cr, trigger)
        if outcome.apply_error is not None:
            delay = self.retrier.schedule(
                key, lambda: asyncio.ensure_future(self.reconcile(key, trigger="retry"))
            )
            logger.warning(
                "%s/%s: reconcile failed (%s); retrying in %ss",
                key[0],
                key[1],
                outcome.apply_error,
                delay,
            )
        else:
            self.retrier.cancel(key)
        return outcome

    async def _reconcile(self, key: CrKey, cr: dict[str, Any], trigger: str) -> Outcome:
        namespace, name = key
        meta = cr.get("metadata") or {}
        generation = int(meta.get("generation") or 0)
        outcome = Outcome()

        effective: dict[str, Any] | None = None
        objects: list[dict[str, Any]] = []
        try:
            cfg, objects = render(cr)
            effective = status_fields(cfg)
        except SpecError as exc:
            outcome.spec_error = exc

        if outcome.spec_error is None:
            await self._converge_children(cr, objects, outcome)

        failures = self.failures.get(key, 0) + 1 if outcome.apply_error else 0
        if failures:
            self.failures[key] = failures
        else:
            self.failures.pop(key, None)

        deployment = self.current("Deployment", namespace, name)
        spec_error = outcome.spec_error
        observation = conditions.Observation(
            generation=generation,
            spec_error=(spec_error.reason, str(spec_error)) if spec_error else None,
            apply_error=outcome.apply_error,
            failures=failures,
            deployment=deployment,
            in_sync=spec_error is None and outcome.apply_error is None,
        )
        old_status = cr.get("status") or {}
        new_conditions = conditions.compute_conditions(
            observation, old_status.get("conditions"), conditions.utc_now()
        )
        wanted = desired_status(
            generation=generation,
            effective=effective,
            deployment=deployment,
            conditions=new_conditions,
        )
        patch = status_patch(old_status, wanted)
        if patch is not None:
            try:
                self.live.wrote(await self.client.patch_status(namespace, name, patch))
                outcome.status_written = True
            except ApiError as exc:
                if not exc.not_found:  # a CR deleted meanwhile needs no status
                    logger.warning("%s/%s: status write failed: %s", namespace, name, exc)
                    outcome.apply_error = outcome.apply_error or f"status: {exc}"

        self._post_events(cr, outcome, old_status.get("conditions"), new_conditions)
        logger.debug(
            "%s/%s reconciled (%s): writes=%s status=%s",
            namespace,
            name,
            trigger,
            outcome.writes,
            outcome.status_written,
        )
        return outcome

    async def _converge_children(
        self, cr: Mapping[str, Any], objects: list[dict[str, Any]], outcome: Outcome
    ) -> None:
        meta = cr["metadata"]
        namespace, name = meta.get("namespace", ""), meta["name"]
        wanted_kinds = set()
        for obj in objects:
            stamp(obj)
            kind = obj["kind"]
            wanted_kinds.add(kind)
            live = self.current(kind, namespace, name)
            fields = differences(obj, live)
            if live is None:
                action = events.CREATED
            elif not fields:
                continue
            elif stamped_value(live) != stamped_value(obj):
                action = events.UPDATED
                fields = [f for f in fields if "fingerprint" not in f] or ["spec"]
            else:
                action = events.DRIFT_CORRECTED
            try:
                self.live.wrote(await self.client.apply(obj))
            except ApiError as exc:
                if exc.namespace_terminating:
                    continue  # the namespace (and this CR with it) is going away
                outcome.apply_error = f"{kind} {name}: {exc}"
                continue
            outcome.writes.append((action, kind, name))
            events.post(
                cr, events.NORMAL, action, events.action_message(action, kind, name, fields)
            )

        service = self.current("Service", namespace, name)
        if "Service" not in wanted_kinds and service is not None and _owned_by(service, cr):
            try:
                await self.client.delete(
                    "v1", "Service", namespace, name, service["metadata"]["uid"]
                )
            except ApiError as exc:
                outcome.apply_error = f"Service {name}: {exc}"
            else:
                self.live.forget(("Service", namespace, name))
                outcome.writes.append((events.DELETED, "Service", name))
                events.post(
                    cr,
                    events.NORMAL,
                    events.DELETED,
                    events.action_message(events.DELETED, "Service", name, []),
                )

    def _post_events(
        self,
        cr: Mapping[str, Any],
        outcome: Outcome,
        before: list[Mapping[str, Any]] | None,
        after: list[Mapping[str, Any]],
    ) -> None:
        """Warnings when Degraded turns True or its message changes; a Normal event when
        Ready turns True. Computed from the condition change, so repeats stay silent."""
        old_degraded = conditions.find(before, conditions.DEGRADED) or {}
        new_degraded = conditions.find(after, conditions.DEGRADED) or {}
        if new_degraded.get("status") == "True" and (
            old_degraded.get("status") != "True"
            or old_degraded.get("message") != new_degraded.get("message")
        ):
            events.post(
                cr,
                events.WARNING,
                str(new_degraded.get("reason")),
                str(new_degraded.get("message")),
            )
        elif outcome.apply_error and not outcome.writes and new_degraded.get("status") != "True":
            events.post(cr, events.WARNING, conditions.RETRYING, outcome.apply_error)
        old_ready = conditions.find(before, conditions.READY) or {}
        new_ready = conditions.find(after, conditions.READY) or {}
        if new_ready.get("status") == "True" and old_ready.get("status") != "True":
            events.post(
                cr,
                events.NORMAL,
                events.READY,
                f"Ready at generation {new_ready.get('observedGeneration')}: "
                f"{new_ready.get('message')}",
            )


def _owned_by(obj: Mapping[str, Any], cr: Mapping[str, Any]) -> bool:
    uid = (cr.get("metadata") or {}).get("uid")
    return any(
        ref.get("uid") == uid and ref.get("controller")
        for ref in (obj.get("metadata") or {}).get("ownerReferences") or []
    )
