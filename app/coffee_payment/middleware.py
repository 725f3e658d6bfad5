"""Async-capable static file serving on top of WhiteNoise.

WhiteNoise's Django middleware is sync-only. Under ASGI, one sync-only middleware
makes Django adapt the whole chain and run it in a worker thread for *every*
request, which is most of the cost of a small JSON view. This wrapper keeps
WhiteNoise's file table, headers and compression but answers in the event loop:
the lookup is a dict hit (files are indexed at start-up in production) and every
non-static request goes straight to the next async handler.
"""

from __future__ import annotations

import warnings
from collections.abc import Awaitable, Callable

from asgiref.sync import iscoroutinefunction, markcoroutinefunction, sync_to_async
from django.http import HttpRequest, HttpResponseBase
from whitenoise.middleware import WhiteNoiseMiddleware

GetResponse = Callable[[HttpRequest], HttpResponseBase | Awaitable[HttpResponseBase]]


class StaticFilesMiddleware(WhiteNoiseMiddleware):
    """WhiteNoise that runs natively in both the sync and the async request path."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: GetResponse) -> None:
        with warnings.catch_warnings():
            # STATIC_ROOT only exists after collectstatic (always in the image); a
            # dev/test server without it just serves no collected files.
            warnings.filterwarnings("ignore", message="No directory at", category=UserWarning)
            super().__init__(get_response)
        self._async = iscoroutinefunction(get_response)
        if self._async:
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest):  # type: ignore[override]
        if self._async:
            return self.__acall__(request)
        return super().__call__(request)

    async def __acall__(self, request: HttpRequest) -> HttpResponseBase:
        path = request.path_info
        if not path.startswith(self.static_prefix):
            return await self.get_response(request)  # type: ignore[misc]
        if self.autorefresh:
            # Development: files are looked up on disk per request; keep that off the loop.
            static_file = await sync_to_async(self.find_file)(path)
        else:
            static_file = self.files.get(path)
        if static_file is None:
            return await self.get_response(request)  # type: ignore[misc]
        return self.serve(static_file, request)
