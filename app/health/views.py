"""Kubernetes probe endpoints.

``/health`` is liveness: answered in the event loop without touching the database,
so a slow or down database never gets a healthy pod restarted. ``/health/ready`` is
readiness: the database must answer and have no pending migration.
"""

from __future__ import annotations

from asgiref.sync import sync_to_async
from django.db import close_old_connections
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_safe

from health.checks import readiness


@csrf_exempt  # read-only probes: a POST gets 405 from require_safe, not a CSRF 403
@never_cache
@require_safe
async def live(request: HttpRequest) -> JsonResponse:
    """Liveness: 200 whenever this process can run a request."""
    return JsonResponse({"status": "ok"})


def _run_readiness() -> list:
    try:
        return readiness()
    finally:
        # A failed connect can leave a broken connection object in this thread.
        close_old_connections()


@csrf_exempt
@never_cache
@require_safe
async def ready(request: HttpRequest) -> JsonResponse:
    """Readiness: 200 with every check ok, else 503 naming the failing check(s)."""
    results = await sync_to_async(_run_readiness)()
    failing = [r for r in results if not r.ok]
    body = {
        "status": "ok" if not failing else "unavailable",
        "checks": {r.name: ("ok" if r.ok else r.detail) for r in results},
    }
    if failing:
        body["failing"] = [r.name for r in failing]
    return JsonResponse(body, status=503 if failing else 200)
