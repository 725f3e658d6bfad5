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
import contextlib
import functools
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
from .terminating import TerminatingNamespaces

logger = logging.getLogger(__name__)

#: Reconciles running at once. More would only queue inside the API server (2 cores shared
#: with etcd and the controllers here) and make every single one slower.
MAX_CONCURRENT_RECONCILES = 48
#: Status writes that only report rollout progress (replica counts, messages) are sent at
#: most this often per CoffeeServer; intermediate states are coalesced. A new
#: observedGeneration, a changed Ready/Degraded status or a child write is reported at once.
STATUS_MIN_INTERVAL = 1.0
STATUS_TRIGGER = "coalesced status"

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
    _slots: asyncio.Semaphore = field(
        default_factory=lambda: asyncio.Semaphore(MAX_CONCURRENT_RECONCILES)
    )
    _status_written_at: dict[CrKey, float] = field(default_factory=dict)
    _status_timers: dict[CrKey, asyncio.TimerHandle] = field(default_factory=dict)
    _tasks: set[asyncio.Future[Any]] = field(default_factory=set)
    _queued: set[CrKey] = field(default_factory=set)
    #: Last render per CoffeeServer, keyed by (uid, generation): the spec cannot have
    #: changed without a new generation, and child events re-reconcile far more often.
    _renders: dict[CrKey, tuple[Any, Any]] = field(default_factory=dict)
    #: Children found equal to their render, by a cheap signature of the live object: a
    #: Deployment status update does not change it, so no deep compare is needed then.
    _verified: dict[tuple[str, str, str], tuple[Any, ...]] = field(default_factory=dict)
    #: Namespaces that refused a create because they are being deleted (see terminating).
    terminating: TerminatingNamespaces = field(default_factory=TerminatingNamespaces)

    def current(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        """Freshest copy of an object: kopf's index or our last write, whichever is newer."""
        return self.live.freshest((kind, namespace, name), self.lookup(kind, namespace, name))

    def request(self, key: CrKey, trigger: str) -> None:
        """Reconcile ``key`` soon, in the background; coalesced with any already queued.

        Child events arrive in bursts (every Deployment status update is one). Handling
        each in kopf's per-object worker would block that worker on the CR's lock and the
        API, while kopf queues the following events -- each a full Deployment body -- in
        memory. Instead the handler returns at once; one queued reconcile per CR, which
        reads the freshest state when it runs, covers every event that came meanwhile.
        """
        if key in self._queued:
            return
        self._queued.add(key)
        self._spawn(key, trigger)

    def _spawn(self, key: CrKey, trigger: str) -> None:
        """Run a reconcile in the background, keeping a reference until it ends."""
        task = asyncio.ensure_future(self.reconcile(key, trigger=trigger))
        self._tasks.add(task)
        task.add_done_callback(functools.partial(self._finished, key))

    def _finished(self, key: CrKey, task: asyncio.Future[Any]) -> None:
        """A background reconcile ended; one that crashed is retried with back-off."""
        self._tasks.discard(task)
        if task.cancelled() or task.exception() is None:
            return
        logger.error(
            "%s/%s: reconcile crashed; retrying", key[0], key[1], exc_info=task.exception()
        )
        self.retrier.schedule(key, lambda: self._spawn(key, "retry"))

    def forget(self, key: CrKey) -> None:
        """The CoffeeServer is gone: drop its lock, retries and remembered writes."""
        self.retrier.cancel(key)
        self._queued.discard(key)
        self.failures.pop(key, None)
        self._locks.pop(key, None)
        self._status_written_at.pop(key, None)
        timer = self._status_timers.pop(key, None)
        if timer is not None:
            timer.cancel()
        self._renders.pop(key, None)
        for kind in ("Deployment", "Service"):
            self._verified.pop((kind, *key), None)
        for kind in ("CoffeeServer", "Deployment", "Service"):
            self.live.forget((kind, *key))

    async def reconcile(self, key: CrKey, *, trigger: str) -> Outcome | None:
        lock = self._locks.setdefault(key, asyncio.Lock())
        # A deferred status write is one small PATCH: it does not queue behind a burst of
        # creates for a slot, or a new CR's status would lag its Deployment by minutes.
        slot = contextlib.nullcontext() if trigger == STATUS_TRIGGER else self._slots
        async with lock, slot:
            self._queued.discard(key)  # events from now on need another pass
            cr = self.current("CoffeeServer", key[0], key[1])
            if cr is None or (cr.get("metadata") or {}).get("deletionTimestamp"):
                return None  # deleted: the garbage collector removes the children
            outcome = await self._reconcile(key, cr, trigger)
        if outcome.apply_error is not None:
            delay = self.retrier.schedule(key, lambda: self._spawn(key, "retry"))
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

        effective, children, outcome.spec_error, rendered = self._render(key, cr)

        if outcome.spec_error is None:
            await self._converge_children(cr, children, outcome, rendered)

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
        if (
            patch is not None
            and not outcome.writes
            and not self._status_due(key, patch, old_status)
        ):
            patch = None  # progress only, and reported less than a second ago: coalesce
        if patch is not None:
            try:
                self.live.wrote(await self.client.patch_status(namespace, name, patch))
                outcome.status_written = True
                self._status_written_at[key] = asyncio.get_running_loop().time()
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

    def _render(
        self, key: CrKey, cr: Mapping[str, Any]
    ) -> tuple[
        dict[str, Any] | None,
        list[tuple[str, str]],
        SpecError | None,
        dict[str, dict[str, Any]] | None,
    ]:
        """(effective status fields, [(child kind, fingerprint)], spec error, objects).

        Cached per (uid, generation): the spec cannot change without a new generation, and
        child events re-reconcile far more often. Only the fingerprints are kept; the
        stamped objects are returned only by the render that made them (a new generation,
        which is when they are written), and rendered again on the rare later occasions
        they are compared.
        """
        meta = cr.get("metadata") or {}
        version = (meta.get("uid"), meta.get("generation"))
        cached = self._renders.get(key)
        if cached is not None and cached[0] == version:
            return (*cached[1], None)
        objects: dict[str, dict[str, Any]] | None = None
        try:
            cfg, rendered = render(cr)
            objects = {o["kind"]: stamp(o) for o in rendered}
            result: tuple[Any, Any, Any] = (
                status_fields(cfg),
                [(kind, str(stamped_value(o))) for kind, o in objects.items()],
                None,
            )
        except SpecError as exc:
            result = (None, [], exc)
        self._renders[key] = (version, result)
        return (*result, objects)

    def _status_due(
        self, key: CrKey, patch: Mapping[str, Any], old_status: Mapping[str, Any]
    ) -> bool:
        """Write now, or (progress-only change, written recently) schedule a later write?"""
        if "observedGeneration" in patch:
            return True
        before = {c.get("type"): c.get("status") for c in old_status.get("conditions") or []}
        after = {c.get("type"): c.get("status") for c in patch.get("conditions") or []}
        if any(
            before.get(t) != after.get(t)
            for t in (conditions.READY, conditions.DEGRADED)
            if t in after
        ):
            return True
        loop = asyncio.get_running_loop()
        due = self._status_written_at.get(key, 0.0) + STATUS_MIN_INTERVAL
        if loop.time() >= due:
            return True
        if key not in self._status_timers:

            def fire() -> None:
                self._status_timers.pop(key, None)
                self._spawn(key, STATUS_TRIGGER)

            self._status_timers[key] = loop.call_at(due, fire)
        return False

    async def _converge_children(
        self,
        cr: Mapping[str, Any],
        children: list[tuple[str, str]],
        outcome: Outcome,
        rendered: dict[str, dict[str, Any]] | None = None,
    ) -> None:
        """Write each child that differs from its render (concurrently, one write each)."""
        meta = cr["metadata"]
        namespace, name = meta.get("namespace", ""), meta["name"]
        plans: list[tuple[str, dict[str, Any], list[str]]] = []  # (action, object, fields)
        objects: dict[str, dict[str, Any]] = rendered or {}
        for kind, stamp_value in children:
            child = (kind, namespace, name)
            live = self.current(*child)
            signature = _signature(stamp_value, live)
            if live is not None and self._verified.get(child) == signature:
                continue  # same generation/metadata as when it last matched the render
            if not objects:
                objects = {o["kind"]: stamp(o) for o in render(cr)[1]}
            obj = objects[kind]
            fields = differences(obj, live)
            if live is not None and not fields:
                self._verified[child] = signature
            if live is None:
                if self.terminating.skip_creates(namespace, meta.get("creationTimestamp")):
                    continue  # the namespace is being deleted: the API server would refuse
                plans.append((events.CREATED, obj, []))
            elif fields and stamped_value(live) != stamp_value:
                changed = [f for f in fields if "fingerprint" not in f] or ["spec"]
                plans.append((events.UPDATED, obj, changed))
            elif fields:
                plans.append((events.DRIFT_CORRECTED, obj, fields))

        results = await asyncio.gather(
            *(self.client.apply(obj) for _, obj, _ in plans), return_exceptions=True
        )
        done: list[tuple[str, str, list[str]]] = []
        for (action, obj, fields), result in zip(plans, results, strict=True):
            kind = obj["kind"]
            if isinstance(result, ApiError):
                if result.namespace_terminating:  # the CR is going away too
                    self.terminating.mark(namespace)
                else:
                    outcome.apply_error = f"{kind} {name}: {result}"
                continue
            if isinstance(result, BaseException):
                raise result
            self.live.wrote(result)
            outcome.writes.append((action, kind, name))
            done.append((action, kind, fields))

        wanted = {kind for kind, _ in children}
        service = self.current("Service", namespace, name)
        if "Service" not in wanted and service is not None and _owned_by(service, cr):
            try:
                await self.client.delete(
                    "v1", "Service", namespace, name, service["metadata"]["uid"]
                )
            except ApiError as exc:
                outcome.apply_error = f"Service {name}: {exc}"
            else:
                self.live.forget(("Service", namespace, name))
                outcome.writes.append((events.DELETED, "Service", name))
                done.append((events.DELETED, "Service", []))

        # One Event per kind of action (a create is "Created Deployment shop, Service shop").
        for action in dict.fromkeys(a for a, _, _ in done):
            message = events.actions_message(
                action, name, [(kind, fields) for a, kind, fields in done if a == action]
            )
            logger.info("%s/%s: %s", namespace, name, message)
            events.post(cr, events.NORMAL, action, message)

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


def _signature(desired_stamp: str, live: Mapping[str, Any] | None) -> tuple[Any, ...]:
    """What must stay the same for a child that matched its render to still match it.

    A Deployment's spec cannot change without ``metadata.generation`` changing; metadata
    edits do not bump it, so labels/annotations/owners are part of the signature. Kinds
    without a generation (Service) fall back to the resourceVersion.
    """
    meta = (live or {}).get("metadata") or {}
    version = meta.get("generation") or meta.get("resourceVersion")
    return (
        desired_stamp,
        meta.get("uid"),
        version,
        repr(meta.get("labels")),
        repr(meta.get("annotations")),
        repr(meta.get("ownerReferences")),
    )


def _owned_by(obj: Mapping[str, Any], cr: Mapping[str, Any]) -> bool:
    uid = (cr.get("metadata") or {}).get("uid")
    return any(
        ref.get("uid") == uid and ref.get("controller")
        for ref in (obj.get("metadata") or {}).get("ownerReferences") or []
    )
