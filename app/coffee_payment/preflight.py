"""Start-up checks the entrypoint runs first: ``python -m coffee_payment.preflight``.

Prints the resolved run mode on stdout (the entrypoint reads it), logs a warning for
an invalid RUN_MODE/LOG_LEVEL, and exits 78 (EX_CONFIG) with one clear line when the
settings cannot load, e.g. DJANGO_SECRET_KEY missing in production, instead of
letting a traceback scroll past in a crash-looping pod.
"""

from __future__ import annotations

import logging
import logging.config
import os
import sys

from django.core.exceptions import ImproperlyConfigured

from coffee_payment.logconfig import logging_dict, resolve_level
from coffee_payment.runtime_env import is_production, resolve_run_mode

EX_CONFIG = 78
log = logging.getLogger("coffee_payment.preflight")


def settings_error() -> str | None:
    """Load the Django settings module; return the configuration error, if any."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "coffee_payment.settings")
    from django.conf import settings

    try:
        settings.INSTALLED_APPS  # noqa: B018 - forces the settings module to import
    except ImproperlyConfigured as exc:
        return str(exc)
    return None


def main() -> int:
    level, level_warning = resolve_level(os.environ.get("LOG_LEVEL"))
    logging.config.dictConfig(logging_dict(level, json=is_production(os.environ)))
    mode, mode_warning = resolve_run_mode(os.environ)
    if mode_warning:
        log.warning(mode_warning)
    if level_warning and mode == "development":
        log.warning(level_warning)  # in production Gunicorn's start-up reports it

    error = settings_error()
    if error:
        log.error("configuration error: %s", error)
        return EX_CONFIG
    print(mode)
    return 0


if __name__ == "__main__":
    sys.exit(main())
