"""Test-only Django settings: the real settings plus tests.support.urls (slow view).

Selected by the tests with DJANGO_SETTINGS_MODULE=tests.support.django_settings so the
test-only endpoint can never be reached in a real deployment.
"""

from coffee_payment.settings import *  # noqa: F403

ROOT_URLCONF = "tests.support.urls"
