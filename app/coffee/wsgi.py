"""WSGI entry (`coffee.wsgi:application`) for Gunicorn's sync worker, used only to compare.

Production serves ASGI (coffee_payment.asgi). Under WSGI Django runs the async views through
its own async_to_sync adapter, one short-lived event loop per request (so the payment client
is per request there, see coffee.payments.provider_client); bench/app_payments.py measures it.
"""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "coffee_payment.settings")

application = get_wsgi_application()
