# syntax=docker/dockerfile:1
# Coffee Payments Server: Django 5.2 (ASGI) under Gunicorn with Uvicorn workers.
# Build from the repository root:  docker build -f Dockerfile.app -t coffee-payments-server .
# Configuration is environment only (table in app/gunicorn.conf.py); no secret is baked
# in: DJANGO_SECRET_KEY must come from the Deployment (a Secret), or the server refuses
# to start. tests/app/test_dockerfile.py replays these build and start steps in a clean
# virtualenv, since CI has no Docker engine.

# --- build: wheels for the app and its runtime dependencies only -----------------
FROM python:3.11-slim AS build
WORKDIR /src
COPY app/ ./app/
RUN pip install --no-cache-dir --upgrade "pip>=24" \
    && pip wheel --no-cache-dir --wheel-dir /wheels ./app

# --- runtime ----------------------------------------------------------------------
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    DJANGO_STATIC_ROOT=/app/staticfiles \
    DATABASE_URL=sqlite:////tmp/db.sqlite3
RUN groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid app --home-dir /app --no-create-home \
       --shell /usr/sbin/nologin app
# Wheels are bind-mounted from the build stage, so none of them stays in a layer.
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-cache-dir --no-index --find-links=/wheels /wheels/*.whl
WORKDIR /app
COPY app/manage.py app/gunicorn.conf.py app/entrypoint.sh ./
# Static files are collected at build time (hashed + compressed, served by WhiteNoise);
# development mode only supplies a throwaway key for this one command. Nothing under
# /app is writable at run time: the pod runs with a read-only root filesystem and a
# writable /tmp, where the (per-pod, throwaway) default SQLite database lives; real
# deployments set DATABASE_URL to PostgreSQL.
RUN RUN_MODE=development python manage.py collectstatic --noinput --verbosity 0
USER 10001:10001
EXPOSE 8000
ENTRYPOINT ["/app/entrypoint.sh"]
