"""Django's middleware, minus the thread hops on the async path.

Under ASGI, every `MiddlewareMixin` middleware runs `process_request`/`process_response` (and
Django runs `process_view`) through `sync_to_async`: a thread hop each, eight per request for
the stock security/common/CSRF/clickjacking set, which the profile of GET /api/menu showed as
the largest cost after the handler's own hops (bench/README.md). Those hooks only look at
headers, cookies and the URL (no I/O), so the `Inline*` subclasses run them directly in the
event loop; the checks and headers are Django's own code, unchanged. Under WSGI nothing changes.

Sessions, authentication and messages do I/O (session store) and are needed only by the admin,
so the `Admin*` subclasses apply them under the admin's URL prefix only and pass every other
request straight through (the JSON API reads no session, user or message).

settings.MIDDLEWARE names the stock classes (Django's deploy checks look for them by dotted
path); coffee.asgi_handler swaps in the `Inline*` equivalents when it builds the ASGI chain.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.middleware import AuthenticationMiddleware
from django.contrib.messages.middleware import MessageMiddleware
from django.contrib.sessions.middleware import SessionMiddleware
from django.http import HttpRequest, HttpResponseBase
from django.middleware.clickjacking import XFrameOptionsMiddleware
from django.middleware.common import CommonMiddleware
from django.middleware.csrf import CsrfViewMiddleware
from django.middleware.security import SecurityMiddleware
from django.urls import reverse


class InlineHooksMixin:
    """Run a MiddlewareMixin's hooks in the event loop (only for hooks that do no I/O)."""

    async_mode: bool
    get_response: Any

    def __init__(self, get_response: Any) -> None:
        super().__init__(get_response)  # type: ignore[call-arg]
        if self.async_mode and hasattr(self, "process_view"):
            # Django wraps a sync process_view in sync_to_async; an async one it awaits.
            sync_process_view = self.process_view

            async def process_view(*args: Any) -> HttpResponseBase | None:
                return sync_process_view(*args)

            self.process_view = process_view

    def __call__(self, request: HttpRequest) -> Any:
        if self.async_mode:
            return self._inline_acall(request)
        return super().__call__(request)  # type: ignore[misc]

    async def _inline_acall(self, request: HttpRequest) -> HttpResponseBase:
        response = None
        if hasattr(self, "process_request"):
            response = self.process_request(request)
        response = response or await self.get_response(request)
        if hasattr(self, "process_response"):
            response = self.process_response(request, response)
        return response


class InlineSecurityMiddleware(InlineHooksMixin, SecurityMiddleware):
    pass


class InlineCommonMiddleware(InlineHooksMixin, CommonMiddleware):
    pass


class InlineCsrfViewMiddleware(InlineHooksMixin, CsrfViewMiddleware):
    pass


class InlineXFrameOptionsMiddleware(InlineHooksMixin, XFrameOptionsMiddleware):
    pass


_admin_prefix: str | None = None


def admin_prefix() -> str:
    global _admin_prefix
    if _admin_prefix is None:
        _admin_prefix = reverse("admin:index")
    return _admin_prefix


class AdminOnlyMixin:
    """Apply the middleware only under the admin's URL prefix."""

    get_response: Any

    def __call__(self, request: HttpRequest) -> Any:
        if not request.path_info.startswith(admin_prefix()):
            return self.get_response(request)
        return super().__call__(request)  # type: ignore[misc]


class AdminSessionMiddleware(AdminOnlyMixin, SessionMiddleware):
    pass


class AdminAuthenticationMiddleware(AdminOnlyMixin, AuthenticationMiddleware):
    pass


class AdminMessageMiddleware(AdminOnlyMixin, MessageMiddleware):
    pass


# Stock class -> its hop-free equivalent; coffee.asgi_handler loads these in place of the stock
# classes named in settings.MIDDLEWARE (which keeps the stock names, so Django's deploy checks
# for security, CSRF and clickjacking middleware see exactly what they look for).
INLINE_EQUIVALENT = {
    f"{base.__module__}.{base.__name__}": f"{__name__}.{cls.__name__}"
    for cls, base in [
        (InlineSecurityMiddleware, SecurityMiddleware),
        (InlineCommonMiddleware, CommonMiddleware),
        (InlineCsrfViewMiddleware, CsrfViewMiddleware),
        (InlineXFrameOptionsMiddleware, XFrameOptionsMiddleware),
    ]
}
