"""Answer the Kubernetes probes before host validation.

The kubelet sends probes with ``Host: <pod IP>:<port>``, which is never in
``DJANGO_ALLOWED_HOSTS``: through the normal chain CommonMiddleware would answer
400 and a correctly configured pod would never become Ready. The probes carry no
user input and return no host-dependent content, so they are served here, first
in the chain, straight to their views. Every other path goes through the full
chain with host validation untouched.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from asgiref.sync import async_to_sync, iscoroutinefunction, markcoroutinefunction
from django.http import HttpRequest, HttpResponseBase

from health.urls import urlpatterns

#: Path -> view, taken from health/urls.py so the probe paths are named in one place.
PROBES: dict[str, Callable[[HttpRequest], Awaitable[HttpResponseBase]]] = {
    f"/{pattern.pattern}": pattern.callback for pattern in urlpatterns
}


class ProbeMiddleware:
    """Route /health and /health/ready to their views, skipping host checks."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable) -> None:
        self.get_response = get_response
        self._async = iscoroutinefunction(get_response)
        if self._async:
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest):
        if self._async:
            return self.__acall__(request)
        probe = PROBES.get(request.path_info)
        if probe is not None:
            return _with_length(async_to_sync(probe)(request))
        return self.get_response(request)

    async def __acall__(self, request: HttpRequest) -> HttpResponseBase:
        probe = PROBES.get(request.path_info)
        if probe is not None:
            return _with_length(await probe(request))
        return await self.get_response(request)


def _with_length(response: HttpResponseBase) -> HttpResponseBase:
    """Set Content-Length as CommonMiddleware would: drain and keep-alive rely on it."""
    if not response.streaming and "Content-Length" not in response:
        response.headers["Content-Length"] = str(len(response.content))
    return response
