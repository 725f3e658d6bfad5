"""``manage.py ensure_superuser``: create the admin account from the environment, once.

The entrypoint runs this on every start. Django's ``createsuperuser --noinput`` fails
when the user exists, which would crash-loop the second pod start; this creates the
user only when missing and leaves an existing one untouched (its password may have
been changed in the admin since).
"""

from __future__ import annotations

import os
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

VARS = ("DJANGO_SUPERUSER_USERNAME", "DJANGO_SUPERUSER_PASSWORD", "DJANGO_SUPERUSER_EMAIL")


class Command(BaseCommand):
    help = "Create the superuser named by DJANGO_SUPERUSER_USERNAME/PASSWORD/EMAIL if missing."

    def handle(self, *args: Any, **options: Any) -> None:
        values = {name: os.environ.get(name, "") for name in VARS}
        missing = [name for name, value in values.items() if not value]
        if len(missing) == len(VARS):
            self.stdout.write("superuser: DJANGO_SUPERUSER_* not set, skipping")
            return
        if missing:
            raise CommandError(
                f"superuser: set all of {', '.join(VARS)} or none; missing: {', '.join(missing)}"
            )
        username = values["DJANGO_SUPERUSER_USERNAME"]
        user_model = get_user_model()
        lookup = {user_model.USERNAME_FIELD: username}
        if user_model._default_manager.filter(**lookup).exists():
            self.stdout.write(f"superuser: {username!r} already exists, left unchanged")
            return
        user_model._default_manager.create_superuser(
            **lookup,
            email=values["DJANGO_SUPERUSER_EMAIL"],
            password=values["DJANGO_SUPERUSER_PASSWORD"],
        )
        self.stdout.write(f"superuser: created {username!r}")
