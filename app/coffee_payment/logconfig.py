"""One logging layout for Django and Gunicorn, so every line the pod writes agrees.

Production: one JSON object per line (python-json-logger) with the same keys from
Gunicorn's master, the Uvicorn workers and Django. Development: readable text.
Access lines go to stdout, everything else to stderr.
"""

from __future__ import annotations

import logging
from typing import Any

JSON_FORMATTER: dict[str, Any] = {
    "()": "pythonjsonlogger.json.JsonFormatter",
    "fmt": "%(asctime)s %(levelname)s %(name)s %(process)d %(message)s",
    "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger", "process": "pid"},
}
PLAIN_FORMATTER: dict[str, Any] = {
    "format": "%(asctime)s %(levelname)s %(name)s [%(process)d] %(message)s",
}
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


class DropTerminalExtras(logging.Filter):
    """Remove uvicorn's ``color_message`` extra: ANSI-coloured duplicates of the message."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.__dict__.pop("color_message", None)
        return True


def resolve_level(raw: str | None) -> tuple[str, str | None]:
    """LOG_LEVEL, upper-cased; an unknown level falls back to INFO with a warning."""
    if raw is None or raw.strip() == "":
        return "INFO", None
    level = raw.strip().upper()
    if level in LOG_LEVELS:
        return level, None
    allowed = ", ".join(LOG_LEVELS)
    return "INFO", f"LOG_LEVEL={raw!r} is invalid (must be one of {allowed}); using INFO"


def logging_dict(level: str, json: bool, *, gunicorn: bool = False) -> dict[str, Any]:
    """A ``logging.config.dictConfig`` dict; ``gunicorn=True`` adds its two loggers."""
    formatter = "json" if json else "plain"
    config: dict[str, Any] = {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": JSON_FORMATTER, "plain": PLAIN_FORMATTER},
        "filters": {"no_terminal_extras": {"()": DropTerminalExtras}},
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "stream": "ext://sys.stderr",
                "formatter": formatter,
                "filters": ["no_terminal_extras"],
            },
            "stdout": {
                "class": "logging.StreamHandler",
                "stream": "ext://sys.stdout",
                "formatter": formatter,
                "filters": ["no_terminal_extras"],
            },
        },
        "root": {"handlers": ["stderr"], "level": level},
        "loggers": {
            "django": {"handlers": ["stderr"], "level": level, "propagate": False},
        },
    }
    if gunicorn:
        config["loggers"].update(
            {
                # UvicornWorker copies these handlers onto uvicorn.error/uvicorn.access.
                "gunicorn.error": {"handlers": ["stderr"], "level": level, "propagate": False},
                "gunicorn.access": {"handlers": ["stdout"], "level": "INFO", "propagate": False},
            }
        )
    return config
