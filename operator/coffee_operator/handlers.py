"""The kopf wiring: which watch events lead to a reconcile, and how kopf is configured.

- CoffeeServer create / update / resume -> reconcile it (kopf change handlers; the
  diff-base lives in memory, see :mod:`coffee_operator.storage`, so kopf itself writes
  nothing to the CR).
- Any event of a Deployment or Service labelled ``managed-by: coffee-operator`` ->
  reconcile its controller owner: a hand edit or a deletion of a child is put back,
  and the Deployment's rollout progress flows into the CR's status.
- Three kopf indices hold the watched objects, so a reconcile reads nothing from the
  API: it compares against the watch bodies (and our own last writes).
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import kopf

from . import GROUP, KIND, MANAGER, PLURAL, VERSION
from .kubeapi import KubeClient
from .livestate import pack, unpack
from .reconcile import Reconciler
from .storage import MemoryDiffBaseStorage

logger = logging.getLogger(__name__)

MANAGED_BY = "app.kubernetes.io/managed-by"
CHILD_LABELS = {MANAGED_BY: MANAGER}
CHILD_SELECTOR = f"{MANAGED_BY}={MANAGER}"
#: Objects per page of kopf's initial LIST of each watched resource.
LIST_CHUNK_SIZE = 100


@dataclass
class RunOptions:
    """What ``coffee-operator run`` decided; read by the startup handler."""

    exact_namespaces: bool = False  # only fixed namespace names: no cluster-wide scanning
    watch_timeout: float | None = None


OPTIONS = RunOptions()
_login_kwargs: dict[str, Any] = {}
_indices: dict[str, kopf.Index[Any, Any]] = {}


def _login() -> kopf.ConnectionInfo | None:
    """kopf's own login functions: in-cluster service account first, then kubeconfig."""
    kwargs = _login_kwargs
    return kopf.login_with_service_account(**kwargs) or kopf.login_with_kubeconfig(**kwargs)


def _lookup(kind: str, namespace: str, name: str) -> Mapping[str, Any] | None:
    index = _indices.get(kind)
    if index is None:
        return None
    store = index.get((namespace, name))
    return unpack(next(iter(store), None)) if store else None


CLIENT = KubeClient(_login)
RECONCILER = Reconciler(client=CLIENT, lookup=_lookup)
DIFFBASE = MemoryDiffBaseStorage()


def _bind(
    coffee_servers: kopf.Index, coffee_deployments: kopf.Index, coffee_services: kopf.Index
) -> None:
    if not _indices:
        _indices.update(
            {KIND: coffee_servers, "Deployment": coffee_deployments, "Service": coffee_services}
        )


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
    """kopf settings for a quiet, write-free steady state."""
    # The diff-base in memory: no last-handled-configuration annotation writes.
    settings.persistence.diffbase_storage = DIFFBASE
    # Events say who posted them.
    settings.posting.reporting_component = MANAGER
    settings.posting.reporting_instance = os.environ.get("POD_NAME") or socket.gethostname()
    # Only our own children are streamed (server-side filter): less traffic and memory.
    settings.watching.label_selectors["apps", "v1", "deployments"] = CHILD_SELECTOR
    settings.watching.label_selectors["v1", "services"] = CHILD_SELECTOR
    if OPTIONS.watch_timeout:
        # The API server takes whole seconds (timeoutSeconds=10.0 is a 400).
        settings.watching.server_timeout = max(1, round(OPTIONS.watch_timeout))
        settings.watching.client_timeout = settings.watching.server_timeout + 10
    # A Role-only install cannot list namespaces/CRDs cluster-wide: declare the static mode.
    if OPTIONS.exact_namespaces:
        settings.scanning.disabled = True
    # Initial listings in pages: a resume with 1,000 CoffeeServers would otherwise parse
    # every Deployment (managedFields and all) at once, and the heap keeps that peak.
    settings.watching.chunk_size = LIST_CHUNK_SIZE
    # kopf's per-object worker tasks exit after this idle time: fewer live tasks at scale.
    settings.queueing.idle_timeout = 2.0


@kopf.on.login()
def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
    """Log in once for kopf and for our own client (same credentials, same server)."""
    _login_kwargs.update(settings=kwargs["settings"])
    info = _login()
    if info is not None:
        CLIENT.use(info)
    return info


@kopf.on.cleanup()
async def close_client(**_: Any) -> None:
    await CLIENT.close()
    if CLIENT.writes:
        logger.info(
            "API writes sent by this process: %s",
            ", ".join(f"{verb} {kind}: {n}" for (verb, kind), n in sorted(CLIENT.writes.items())),
        )


@kopf.on.probe(id="failingCoffeeServers")
async def failing(**_: Any) -> int:
    """Liveness endpoint payload: how many CoffeeServers are currently failing to reconcile."""
    return len(RECONCILER.failures)


# --- indices: the watched objects, so reconciles never GET ------------------------------
# (async: kopf runs sync callbacks in a thread pool, one thread hop per watch event)


@kopf.index(GROUP, VERSION, PLURAL)
async def coffee_servers(namespace: str, name: str, body: kopf.Body, **_: Any) -> dict[Any, Any]:
    return {(namespace, name): pack(body)}


@kopf.index("apps", "v1", "deployments", labels=CHILD_LABELS)
async def coffee_deployments(
    namespace: str, name: str, body: kopf.Body, **_: Any
) -> dict[Any, Any]:
    return {(namespace, name): pack(body)}


@kopf.index("v1", "services", labels=CHILD_LABELS)
async def coffee_services(namespace: str, name: str, body: kopf.Body, **_: Any) -> dict[Any, Any]:
    return {(namespace, name): pack(body)}


# --- reconcile triggers -----------------------------------------------------------------


@kopf.on.resume(GROUP, VERSION, PLURAL)
@kopf.on.create(GROUP, VERSION, PLURAL)
@kopf.on.update(GROUP, VERSION, PLURAL)
async def coffee_server_changed(
    namespace: str,
    name: str,
    reason: str,
    coffee_servers: kopf.Index,
    coffee_deployments: kopf.Index,
    coffee_services: kopf.Index,
    **_: Any,
) -> None:
    """A CoffeeServer was created, changed (spec/labels/annotations) or found at startup.

    The reconcile runs in the background (queued, coalesced, retried by the reconciler,
    reading the CR from the index kopf has just updated): kopf's worker for the CR is
    released at once instead of waiting for a reconcile slot while holding the event. In
    a burst of 1,000 new CoffeeServers those waiting workers were most of the peak RSS.
    """
    _bind(coffee_servers, coffee_deployments, coffee_services)
    RECONCILER.request((namespace, name), f"{KIND} {reason}")


def _deleted(event: Mapping[str, Any], **_: Any) -> bool:
    return event.get("type") == "DELETED"


@kopf.on.event(GROUP, VERSION, PLURAL, when=_deleted)
async def coffee_server_event(
    event: Mapping[str, Any], body: kopf.Body, namespace: str, name: str, **_: Any
) -> None:
    """Forget a deleted CoffeeServer (its children go by garbage collection)."""
    RECONCILER.forget((namespace, name))
    DIFFBASE.forget(body.metadata.uid or "")


def controller_owner(body: Mapping[str, Any]) -> str | None:
    """Name of the CoffeeServer that controls this object, if any."""
    for ref in (body.get("metadata") or {}).get("ownerReferences") or []:
        if (
            ref.get("controller")
            and ref.get("kind") == KIND
            and str(ref.get("apiVersion", "")).split("/")[0] == GROUP
        ):
            return str(ref.get("name"))
    return None


@kopf.on.event("apps", "v1", "deployments", labels=CHILD_LABELS)
@kopf.on.event("v1", "services", labels=CHILD_LABELS)
async def child_changed(
    event: Mapping[str, Any],
    body: kopf.Body,
    namespace: str,
    name: str,
    coffee_servers: kopf.Index,
    coffee_deployments: kopf.Index,
    coffee_services: kopf.Index,
    **_: Any,
) -> None:
    """A Deployment/Service we manage changed or vanished: converge its owner again."""
    _bind(coffee_servers, coffee_deployments, coffee_services)
    owner = controller_owner(body)
    if owner is None:
        return
    kind = str(
        body.get("kind") or ("Deployment" if "replicas" in (body.get("spec") or {}) else "Service")
    )
    if event.get("type") == "DELETED":
        RECONCILER.live.forget((kind, namespace, name))
    RECONCILER.request((namespace, owner), f"{kind} {event.get('type') or 'listed'}")
