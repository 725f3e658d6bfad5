"""The env vars the operator writes are exactly the ones the app's gunicorn.conf.py reads.

The operator (operator/coffee_operator) and the app (app/coffee_payment) each name the
GUNICORN_*/RUN_MODE contract of SPEC section 5; this proves the two lists agree, so a
renamed or added variable cannot silently stop reaching Gunicorn.
"""

from __future__ import annotations

from coffee_operator.config import effective_config, gunicorn_env
from coffee_operator.spec import RESERVED_ENV, parse_spec
from coffee_payment.runtime_env import GUNICORN_VARS

APP_READS = {var.name for var in GUNICORN_VARS} | {"RUN_MODE"}


def test_operator_sets_every_variable_the_app_reads_and_no_other() -> None:
    cfg = effective_config(parse_spec({"image": "example/coffee:1"}))
    assert {item["name"] for item in gunicorn_env(cfg)} == APP_READS


def test_user_env_may_not_shadow_any_variable_the_app_reads() -> None:
    assert set(RESERVED_ENV) == APP_READS
