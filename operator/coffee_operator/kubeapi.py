"""A small async Kubernetes API client for the three calls the operator makes.

kopf has no public client, and the official ``kubernetes`` client is synchronous
(a thread per call) and builds model objects we do not need. The operator writes
only three ways -- server-side apply of a child, a merge patch of the CR's status,
a delete of a Service -- so a thin aiohttp session built from the very
``kopf.ConnectionInfo`` kopf logs in with does it with no extra threads or memory.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Mapping
from typing import Any

import aiohttp
import kopf

from . import API_VERSION, MANAGER, PLURAL

logger = logging.getLogger(__name__)

#: Plural (URL) names of the kinds the operator writes.
PLURALS = {"Deployment": "deployments", "Service": "services", "CoffeeServer": PLURAL}
USER_AGENT = "coffee-operator"
#: Concurrent connections to the API server; the apiserver shares 2 cores with etcd and the
#: controllers here, so more parallel requests only queue up there.
CONNECTION_LIMIT = 64
#: Per-read timeout: a request queued for a pooled connection is not failed for waiting.
READ_TIMEOUT = 30.0


class ApiError(Exception):
    """A non-2xx answer; ``str()`` is the API server's own message (for conditions/events)."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(f"{status} {reason}: {message}" if reason else f"{status}: {message}")
        self.status = status
        self.reason = reason
        self.message = message

    @property
    def not_found(self) -> bool:
        return self.status == 404

    @property
    def namespace_terminating(self) -> bool:
        """Creation refused because the namespace is being deleted (nothing to fix)."""
        return self.status == 403 and "being terminated" in self.message


def object_path(
    api_version: str, kind: str, namespace: str, name: str, subresource: str = ""
) -> str:
    """``/apis/apps/v1/namespaces/NS/deployments/NAME[/status]`` (core group under ``/api``)."""
    prefix = "/api" if "/" not in api_version else "/apis"
    path = f"{prefix}/{api_version}/namespaces/{namespace}/{PLURALS[kind]}/{name}"
    return f"{path}/{subresource}" if subresource else path


class KubeClient:
    """One aiohttp session; re-logs in (``login()``) once on 401 for rotated tokens."""

    def __init__(self, login: Callable[[], kopf.ConnectionInfo | None]) -> None:
        self._login = login
        self._info: kopf.ConnectionInfo | None = None
        self._session: aiohttp.ClientSession | None = None
        self._lock = asyncio.Lock()
        #: Writes sent, by (verb, kind): a self-check printed at shutdown; the benchmarks
        #: count writes from the API server's own metrics, not from this.
        self.writes: dict[tuple[str, str], int] = {}

    def use(self, info: kopf.ConnectionInfo) -> None:
        """Adopt the credentials kopf logged in with (called from the login handler)."""
        self._info = info

    async def _session_for_use(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            async with self._lock:
                if self._session is None or self._session.closed:
                    if self._info is None:
                        self._info = self._login()
                    if self._info is None:
                        raise ApiError(0, "NoCredentials", "no kubeconfig or service account found")
                    self._session = aiohttp.ClientSession(
                        base_url=self._info.server.rstrip("/") + "/",
                        connector=aiohttp.TCPConnector(
                            limit=CONNECTION_LIMIT, ssl=self._info.as_ssl_context()
                        ),
                        headers={**self._info.as_http_headers(), "User-Agent": USER_AGENT},
                        timeout=aiohttp.ClientTimeout(
                            total=None, sock_connect=10, sock_read=READ_TIMEOUT
                        ),
                        json_serialize=lambda o: json.dumps(o, separators=(",", ":")),
                    )
        return self._session

    async def _relogin(self) -> None:
        async with self._lock:
            if self._session is not None:
                await self._session.close()
            self._session = None
            self._info = self._login()

    async def request(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        content_type: str = "application/json",
        params: Mapping[str, str] | None = None,
        kind: str = "",
    ) -> dict[str, Any]:
        data = json.dumps(body, separators=(",", ":")).encode() if body is not None else None
        for attempt in (1, 2):
            session = await self._session_for_use()
            try:
                async with session.request(
                    method,
                    path.lstrip("/"),
                    data=data,
                    params=params,
                    headers={"Content-Type": content_type, "Accept": "application/json"},
                ) as resp:
                    payload = await resp.read()
                    status = resp.status
            except aiohttp.ServerDisconnectedError as exc:
                # A pooled keep-alive connection closed by the server just as we used it:
                # nothing was processed; our writes are idempotent (apply / merge patch).
                if attempt == 1:
                    continue
                raise ApiError(0, type(exc).__name__, str(exc) or "disconnected") from exc
            except (aiohttp.ClientError, TimeoutError) as exc:
                raise ApiError(0, type(exc).__name__, str(exc) or "connection failed") from exc
            if status == 401 and attempt == 1:
                await self._relogin()
                continue
            if method != "GET":
                self.writes[(method, kind)] = self.writes.get((method, kind), 0) + 1
            try:
                decoded = json.loads(payload) if payload else {}
            except ValueError:
                decoded = {"message": payload[:200].decode(errors="replace")}
            if status >= 400:
                raise ApiError(
                    status,
                    str(decoded.get("reason") or ""),
                    str(decoded.get("message") or payload[:200]),
                )
            return decoded
        raise AssertionError("unreachable")  # pragma: no cover

    async def apply(self, obj: Mapping[str, Any]) -> dict[str, Any]:
        """Server-side apply (create or update in one request) as field manager
        ``coffee-operator``, forcing conflicts: the operator is the authority on these fields."""
        meta = obj["metadata"]
        path = object_path(obj["apiVersion"], obj["kind"], meta["namespace"], meta["name"])
        return await self.request(
            "PATCH",
            path,
            body=obj,
            content_type="application/apply-patch+yaml",
            params={"fieldManager": MANAGER, "force": "true"},
            kind=obj["kind"],
        )

    async def patch_status(
        self, namespace: str, name: str, status: Mapping[str, Any]
    ) -> dict[str, Any]:
        """JSON merge patch of the CoffeeServer's status subresource (only changed keys)."""
        path = object_path(API_VERSION, "CoffeeServer", namespace, name, "status")
        return await self.request(
            "PATCH",
            path,
            body={"status": status},
            content_type="application/merge-patch+json",
            params={"fieldManager": MANAGER},
            kind="CoffeeServer/status",
        )

    async def delete(
        self, api_version: str, kind: str, namespace: str, name: str, uid: str
    ) -> None:
        """Delete exactly the object we saw (uid precondition), tolerating it being gone."""
        path = object_path(api_version, kind, namespace, name)
        body = {
            "apiVersion": "v1",
            "kind": "DeleteOptions",
            "preconditions": {"uid": uid},
            "propagationPolicy": "Background",
        }
        try:
            await self.request("DELETE", path, body=body, kind=kind)
        except ApiError as exc:
            if not exc.not_found:
                raise

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
