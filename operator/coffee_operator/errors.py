"""The one error type the pure core raises for bad input.

It carries the dotted field path so the CLI, the Degraded condition and
Kubernetes Events can all tell the user exactly which field to fix.
"""

from __future__ import annotations


class SpecError(ValueError):
    """A CoffeeServer that cannot be turned into objects.

    ``field`` is the dotted path from the object root (``spec.gunicorn.workers``,
    ``spec.env[2].name``); ``str(e) == f"{field}: {message}"``.
    """

    reason: str = "InvalidSpec"

    def __init__(self, field: str, message: str, *, reason: str | None = None) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message
        if reason is not None:
            self.reason = reason

    def __reduce__(self):  # keep picklable despite the keyword-only argument
        return (_rebuild, (self.field, self.message, self.reason))


def _rebuild(field: str, message: str, reason: str) -> SpecError:
    return SpecError(field, message, reason=reason)
