"""ASGI entry point: `coffee_payment.asgi:application`, served by Gunicorn + UvicornWorker."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "coffee_payment.settings")

application = get_asgi_application()
