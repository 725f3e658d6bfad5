"""ASGI entry point: `coffee_payment.asgi:application`, served by Gunicorn + UvicornWorker.

The handler is Django's, minus per-request thread churn: see coffee.asgi_handler.
"""

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "coffee_payment.settings")

from coffee.asgi_handler import get_application

application = get_application()
