# ruff: noqa: E501  (the env-var table below is copied into the README as is)
"""Gunicorn configuration for the Coffee Payments Server, driven by environment variables.

Gunicorn reads this file with ``-c``; the entrypoint passes it. Every value comes
from the environment the operator writes into the Deployment:

| Variable | Default | Meaning | Invalid value |
| --- | --- | --- | --- |
| `GUNICORN_WORKERS` | `4` | Worker processes (Uvicorn workers under one master) | not an integer, or < 1: default + warning |
| `GUNICORN_PORT` | `8000` | Port to bind on `0.0.0.0` | not an integer, or outside 1-65535: default + warning |
| `GUNICORN_TIMEOUT` | `30` | Worker heartbeat timeout, seconds (0 disables). With Uvicorn workers it does not bound a request | not an integer, or < 0: default + warning |
| `GUNICORN_GRACEFUL_TIMEOUT` | = `GUNICORN_TIMEOUT` | Drain time on SIGTERM/SIGINT and on worker recycling, seconds | not an integer, or < 0: the timeout + warning |
| `GUNICORN_MAX_REQUESTS` | `0` | Recycle a worker after this many requests (0 = never) | not an integer, or < 0: default + warning |
| `GUNICORN_MAX_REQUESTS_JITTER` | `0` | Random 0..N added per worker to that limit, so workers do not recycle together | not an integer, or < 0: default + warning |
| `RUN_MODE` | `production` | `production`: the entrypoint runs Gunicorn, Django's production hardening is on; `development`: `manage.py runserver` on the same port, DEBUG on | anything else: production + warning (entrypoint) |
| `LOG_LEVEL` | `INFO` | Level for Gunicorn, Uvicorn and Django logs | unknown level: INFO + warning |
| `DJANGO_SECRET_KEY` | none (development: a throwaway key) | Django's signing key | missing in production: refuses to start, exit 78 |
| `DJANGO_ALLOWED_HOSTS` | `localhost,127.0.0.1,[::1]` | Comma-separated Host names Django answers | - |
| `DJANGO_DEBUG` | `false` (`true` in development) | Django debug mode; also lifts the production hardening | - |
| `DATABASE_URL` | SQLite file `db.sqlite3` next to the code (image: `sqlite:////tmp/db.sqlite3`, per pod) | Database URL, parsed by django-environ (`postgres://user:pass@host:5432/db` in production) | unknown scheme: refuses to start, naming it |
| `DJANGO_SECURE_SSL_REDIRECT` | `true` in production | Redirect plain HTTP to HTTPS (probes under `/health` are exempt) | - |
| `DJANGO_SECURE_HSTS_SECONDS` | `31536000` in production | HSTS max-age | - |
| `DJANGO_STATIC_ROOT` | `staticfiles` next to the code (image: `/app/staticfiles`) | Where `collectstatic` puts the files WhiteNoise serves | - |
| `DJANGO_CSRF_TRUSTED_ORIGINS` | empty | Comma-separated origins trusted for CSRF (e.g. `https://coffee.example.com`) | - |
| `RUN_MIGRATIONS` | `true` | Entrypoint applies migrations before starting (`false`/`0`/`no`/`off` skip them) | - |
| `DJANGO_SUPERUSER_USERNAME` / `_PASSWORD` / `_EMAIL` | unset | All three set: entrypoint creates that superuser once | - |

An invalid value never stops the server: it takes the default and Gunicorn logs one
warning naming the variable and the rejected value at start-up.

Signals: SIGTERM and SIGINT both shut down gracefully (stock Gunicorn treats SIGINT
as a quick shutdown): the listening socket closes, requests already received run to
completion within the graceful timeout, then the master exits 0.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from coffee_payment.logconfig import logging_dict, resolve_level
from coffee_payment.preflight import settings_error
from coffee_payment.runtime_env import is_production, parse_gunicorn_env

_parsed = parse_gunicorn_env(os.environ)
_level, _level_warning = resolve_level(os.environ.get("LOG_LEVEL"))
config_warnings: list[str] = _parsed.warnings + ([_level_warning] if _level_warning else [])

wsgi_app = "coffee_payment.asgi:application"
# Keeps UvicornWorker's own recycling and shutdown fixes (see coffee_payment.workers).
worker_class = "coffee_payment.workers.UvicornWorker"
workers = _parsed.values["GUNICORN_WORKERS"]
bind = [f"0.0.0.0:{_parsed.values['GUNICORN_PORT']}"]
timeout = _parsed.values["GUNICORN_TIMEOUT"]
graceful_timeout = _parsed.values["GUNICORN_GRACEFUL_TIMEOUT"]
max_requests = _parsed.values["GUNICORN_MAX_REQUESTS"]
max_requests_jitter = _parsed.values["GUNICORN_MAX_REQUESTS_JITTER"]

# Logs: access lines to stdout, the rest to stderr; JSON in production.
accesslog = "-"
errorlog = "-"
loglevel = _level.lower()
logconfig_dict = logging_dict(_level, json=is_production(os.environ), gunicorn=True)

# The runtime control socket would live in $HOME, which a read-only, non-root
# container may not have, and two servers on one host would fight over it.
control_socket_disable = True
# Containers: no pidfile, temp files in memory-backed /dev/shm when present.
worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") else None


def on_starting(server: Any) -> None:
    """Before any worker: report rejected env values and refuse a broken Django config.

    Also makes SIGINT drain like SIGTERM. Gunicorn dispatches signals to
    ``handle_<name>`` on the arbiter instance, and its stock SIGINT handler is a
    quick shutdown that kills in-flight requests; Ctrl-C and orchestrators that send
    SIGINT must get the same graceful stop as SIGTERM.
    """
    for warning in config_warnings:
        server.log.warning(warning)
    error = settings_error()
    if error:
        server.log.error("configuration error: %s", error)
        sys.exit(78)
    server.handle_int = server.handle_term
