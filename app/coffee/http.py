"""JSON responses and method checks for the API (Django's defaults answer errors in HTML)."""

from collections.abc import Awaitable, Callable
from functools import wraps
from typing import Any

from django.http import HttpRequest, HttpResponse, JsonResponse

AsyncView = Callable[..., Awaitable[HttpResponse]]


def error(status: int, message: str, field: str | None = None, **extra: Any) -> JsonResponse:
    body: dict[str, Any] = {"error": message}
    if field is not None:
        body["field"] = field
    body.update(extra)
    return JsonResponse(body, status=status)


def methods(*allowed: str) -> Callable[[AsyncView], AsyncView]:
    """Like require_http_methods, but answers 405 with a JSON body and keeps the view async."""

    def decorate(view: AsyncView) -> AsyncView:
        @wraps(view)
        async def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            if request.method not in allowed:
                response = error(
                    405, f"method {request.method} not allowed; use {', '.join(allowed)}"
                )
                response["Allow"] = ", ".join(allowed)
                return response
            return await view(request, *args, **kwargs)

        return wrapper

    return decorate
