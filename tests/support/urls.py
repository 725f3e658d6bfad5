"""Test-only URLs: the production URL map plus ``/test/slow`` for in-flight shutdown tests."""

import asyncio

from coffee_payment.urls import urlpatterns as production_urlpatterns
from django.http import HttpRequest, JsonResponse
from django.urls import path


async def slow(request: HttpRequest) -> JsonResponse:
    """Sleep ``?seconds=`` (default 2, max 60) then answer, so a request is really in flight."""
    seconds = min(float(request.GET.get("seconds", "2")), 60.0)
    await asyncio.sleep(seconds)
    return JsonResponse({"slept": seconds})


urlpatterns = [path("test/slow", slow), *production_urlpatterns]
