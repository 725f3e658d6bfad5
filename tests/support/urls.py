"""Test-only URLs: the production URL map plus ``/test/slow`` for in-flight shutdown tests."""

import asyncio
import os
import time

from coffee_payment.urls import urlpatterns as production_urlpatterns
from django.http import HttpRequest, JsonResponse
from django.urls import path


async def slow(request: HttpRequest) -> JsonResponse:
    """Sleep ``?seconds=`` (default 2, max 60) then answer with the worker's pid.

    ``&block=1`` sleeps without yielding, which stalls the worker's event loop so
    that concurrent connections must be accepted by other workers.
    """
    seconds = min(float(request.GET.get("seconds", "2")), 60.0)
    if request.GET.get("block"):
        time.sleep(seconds)
    else:
        await asyncio.sleep(seconds)
    return JsonResponse({"slept": seconds, "pid": os.getpid()})


urlpatterns = [path("test/slow", slow), *production_urlpatterns]
