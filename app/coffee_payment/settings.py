"""Settings for the Coffee Payments Server, read from the environment (12-factor).

Two run modes (``RUN_MODE``): ``production`` (default) and ``development``.
Production refuses to start without ``DJANGO_SECRET_KEY`` and turns on Django's
security settings; development (or ``DJANGO_DEBUG=true``) gets a throwaway key so
tests and local work need no set-up. Every variable is documented in the module
docstring of ``app/gunicorn.conf.py`` (the operator writes the same names).
"""

from __future__ import annotations

import os
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

from coffee_payment.logconfig import logging_dict, resolve_level
from coffee_payment.runtime_env import debug_enabled, resolve_run_mode

BASE_DIR = Path(__file__).resolve().parent.parent
env = environ.Env()

# Invalid RUN_MODE/LOG_LEVEL fall back to their defaults here silently: the
# entrypoint (coffee_payment.preflight) and gunicorn.conf.py log the warning once.
RUN_MODE, _ = resolve_run_mode(os.environ)
DEBUG = debug_enabled(os.environ, RUN_MODE)
# Production is "not development and not debug": only then is a real secret mandatory
# and the HTTPS/cookie hardening switched on.
PRODUCTION = RUN_MODE == "production" and not DEBUG

SECRET_KEY = env.str("DJANGO_SECRET_KEY", default="")
if not SECRET_KEY:
    if PRODUCTION:
        raise ImproperlyConfigured(
            "DJANGO_SECRET_KEY is required in production (RUN_MODE=production): set it to a "
            "long random value, e.g. python -c 'import secrets; print(secrets.token_urlsafe(50))'"
        )
    SECRET_KEY = "development-only-insecure-key-never-use-in-production-" + "x" * 16

ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "coffee_payment",  # project-level management commands (ensure_superuser)
    "health",
    "coffee",
]

MIDDLEWARE = [
    # Kubelet probes carry Host: <pod IP>; answer them before host validation (see module).
    "health.middleware.ProbeMiddleware",
    "django.middleware.security.SecurityMiddleware",
    # WhiteNoise only for /static/: a thin async-capable wrapper keeps the other
    # requests off the thread-hop path that a sync-only middleware would force.
    "coffee_payment.middleware.StaticFilesMiddleware",
    # Performance (issue 6): sessions, auth and messages only under /admin/ (the JSON API
    # reads no session or user; CSRF-exempt machine API, see coffee.views), which keeps
    # their session I/O and thread hops off the API. The stock security/common/CSRF/
    # clickjacking classes stay named here (Django's deploy checks look for them); under
    # ASGI coffee.asgi_handler runs their same hooks without a thread hop per hook.
    "coffee.middleware.AdminSessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "coffee.middleware.AdminAuthenticationMiddleware",
    "coffee.middleware.AdminMessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "coffee_payment.urls"
ASGI_APPLICATION = "coffee_payment.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# SQLite file is the embedded default; production deployments point DATABASE_URL at
# PostgreSQL (postgres://user:pass@host:5432/name). django-environ parses the URL.
DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # Bound the connect time so a blackholed database makes readiness fail fast
    # instead of hanging the probe.
    DATABASES["default"].setdefault("OPTIONS", {}).setdefault("connect_timeout", 5)
    # Persistent connections (override with ?conn_max_age=N in DATABASE_URL): the API's
    # fixed DB thread pool (coffee.db) reuses them instead of connecting per query.
    # No CONN_HEALTH_CHECKS: it adds a SELECT 1 round trip to every DB call on the order
    # path (coffee.db closes stale connections per call); a connection the server dropped
    # fails one query and is then replaced by close_old_connections().
    DATABASES["default"].setdefault("CONN_MAX_AGE", 60)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

STATIC_URL = "static/"
# collectstatic's target; the image sets /app/staticfiles (the package itself lives
# in site-packages there).
STATIC_ROOT = env.path("DJANGO_STATIC_ROOT", default=str(BASE_DIR / "staticfiles"))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    # Compressed, content-hashed files served by WhiteNoise with far-future caching;
    # non-strict so a server started without collectstatic (tests) still renders.
    "staticfiles": {"BACKEND": "coffee_payment.storage.StaticFilesStorage"},
}

USE_TZ = True
TIME_ZONE = "UTC"
LANGUAGE_CODE = "en-us"

# --- security (production) ---
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
if PRODUCTION:
    # TLS ends at the ingress/load balancer, which sets X-Forwarded-Proto.
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = env.bool("DJANGO_SECURE_SSL_REDIRECT", default=True)
    # Kubelet probes and in-cluster health checks speak plain HTTP.
    SECURE_REDIRECT_EXEMPT = [r"^health(/ready)?$"]
    SECURE_HSTS_SECONDS = env.int("DJANGO_SECURE_HSTS_SECONDS", default=31_536_000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True

# --- logging ---
LOG_LEVEL, _ = resolve_level(os.environ.get("LOG_LEVEL"))
# JSON lines in production, the same layout gunicorn.conf.py gives Gunicorn's loggers.
LOGGING = logging_dict(LOG_LEVEL, json=PRODUCTION)

# --- payments --- (coffee API, issue 6: the external payment provider, YooKassa-style API)
# Read and validated by coffee.conf: a bad value stops start-up with an error naming it.
from coffee.conf import read_payment_settings  # noqa: E402

_payments = read_payment_settings(os.environ)
# Base URL of the provider's API (the client calls {URL}/v3/payments).
PAYMENT_PROVIDER_URL = _payments.provider_url
# Bound, in seconds, on each whole call to the provider (connect + send + answer); > 0.
PAYMENT_PROVIDER_TIMEOUT = _payments.provider_timeout
# Basic-auth credentials at the provider (YooKassa: shop id and secret key).
PAYMENT_SHOP_ID = _payments.shop_id
PAYMENT_SECRET_KEY = _payments.secret_key
PAYMENT_CURRENCY = _payments.currency
# Where the provider sends the customer after the payment page.
PAYMENT_RETURN_URL = _payments.return_url
# Optional source networks (comma-separated IPs/CIDRs) allowed to POST /api/payments/webhook;
# empty = any (notifications are verified with the provider either way, see coffee.webhook).
PAYMENT_WEBHOOK_ALLOWED_IPS = _payments.webhook_allowed_ips
# How long each worker reuses its rendered GET /api/menu before reading the database again.
MENU_CACHE_SECONDS = _payments.menu_cache_seconds
