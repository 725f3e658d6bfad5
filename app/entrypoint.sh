#!/bin/sh
# Container entrypoint for the Coffee Payments Server.
#  1. preflight: resolve RUN_MODE, refuse to start on a broken configuration
#     (e.g. DJANGO_SECRET_KEY missing in production: exit 78 with one clear line);
#  2. apply migrations unless RUN_MIGRATIONS is false (the operator may run them
#     in a Job instead);
#  3. create the superuser when DJANGO_SUPERUSER_USERNAME/PASSWORD/EMAIL are all set
#     (idempotent: an existing user is left alone);
#  4. exec Gunicorn (production) or manage.py runserver (RUN_MODE=development), so the
#     server is PID 1's successor and receives SIGTERM/SIGINT directly.
set -eu

APP_DIR=$(CDPATH='' cd -- "$(dirname -- "$0")" && pwd)
cd "$APP_DIR"
PYTHON=${PYTHON:-python}

say() {
    # One line on stderr, JSON in production like every other log line of the pod.
    if [ "${MODE:-production}" = production ]; then
        printf '{"time": "%s", "level": "INFO", "logger": "entrypoint", "message": "%s"}\n' \
            "$(date -u '+%Y-%m-%d %H:%M:%S')" "$*" >&2
    else
        printf 'entrypoint: %s\n' "$*" >&2
    fi
}

MODE=$("$PYTHON" -m coffee_payment.preflight) || exit $?

case $(printf '%s' "${RUN_MIGRATIONS:-true}" | tr '[:upper:]' '[:lower:]') in
    false | 0 | no | off)
        say "RUN_MIGRATIONS=${RUN_MIGRATIONS}: not applying migrations" ;;
    *)
        say "applying migrations"
        "$PYTHON" manage.py migrate --noinput ;;
esac

"$PYTHON" manage.py ensure_superuser

if [ "$MODE" = development ]; then
    PORT=$("$PYTHON" -c 'import os; from coffee_payment.runtime_env import parse_gunicorn_env
print(parse_gunicorn_env(os.environ).values["GUNICORN_PORT"])')
    say "RUN_MODE=development: starting Django runserver on 0.0.0.0:${PORT}"
    exec "$PYTHON" manage.py runserver "0.0.0.0:${PORT}"
fi
say "RUN_MODE=production: starting Gunicorn with Uvicorn workers (gunicorn.conf.py)"
exec "$PYTHON" -m gunicorn -c "$APP_DIR/gunicorn.conf.py"
