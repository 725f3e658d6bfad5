"""Spec parsing: defaults applied, and every kind of bad input named by its field path."""

from __future__ import annotations

import copy
import dataclasses
import pickle
from typing import Any

import pytest
from coffee_operator.config import effective_config, gunicorn_env, status_fields
from coffee_operator.errors import SpecError
from coffee_operator.spec import CoffeeServerSpec, GunicornSpec, ServiceSpec, parse_spec

from .helpers import FULL_SPEC


def error_for(spec: Any) -> SpecError:
    with pytest.raises(SpecError) as err:
        parse_spec(spec)
    assert str(err.value) == f"{err.value.field}: {err.value.message}"
    return err.value


def test_minimal_spec_gets_every_default() -> None:
    parsed = parse_spec({"image": "coffee/app:1"})
    assert parsed == CoffeeServerSpec(
        image="coffee/app:1",
        image_pull_policy=None,
        image_pull_secrets=(),
        replicas=2,
        port=8000,
        resources=None,
        gunicorn=GunicornSpec(
            workers=None, timeout=30, graceful_timeout=None, max_requests=0, max_requests_jitter=0
        ),
        termination_grace_period_seconds=None,
        run_mode="production",
        env=(),
        env_from=(),
        service=ServiceSpec(enabled=True, type="ClusterIP", port=80),
    )


def test_minimal_spec_effective_values() -> None:
    cfg = effective_config(parse_spec({"image": "coffee/app:1"}))
    assert status_fields(cfg) == {
        "workers": 4,
        "workersSource": "Default",
        "timeout": 30,
        "gracefulTimeout": 30,
        "maxRequests": 0,
        "maxRequestsJitter": 0,
        "terminationGracePeriodSeconds": 40,
    }
    assert (cfg.port, cfg.run_mode, cfg.replicas, cfg.pre_stop_seconds) == (
        8000, "production", 2, 5,
    )


def test_full_spec_is_parsed_field_by_field() -> None:
    parsed = parse_spec(FULL_SPEC)
    assert parsed.image_pull_policy == "IfNotPresent"
    assert parsed.image_pull_secrets == ("regcred",)
    assert parsed.replicas == 3 and parsed.port == 8080
    assert parsed.gunicorn == GunicornSpec(None, 60, 20, 1000, 100)
    assert parsed.termination_grace_period_seconds == 45
    assert parsed.service == ServiceSpec(True, "LoadBalancer", 443)
    assert [e["name"] for e in parsed.env] == ["DJANGO_ALLOWED_HOSTS", "DJANGO_SECRET_KEY"]
    assert parsed.resources == FULL_SPEC["resources"]
    cfg = effective_config(parsed)
    assert (cfg.workers, cfg.workers_source) == (4, "CPULimit")  # 1500m -> 4
    assert (cfg.graceful_timeout, cfg.termination_grace_period_seconds) == (20, 45)
    env = {e["name"]: e["value"] for e in gunicorn_env(cfg)}
    assert env == {
        "GUNICORN_WORKERS": "4",
        "GUNICORN_PORT": "8080",
        "GUNICORN_TIMEOUT": "60",
        "GUNICORN_GRACEFUL_TIMEOUT": "20",
        "GUNICORN_MAX_REQUESTS": "1000",
        "GUNICORN_MAX_REQUESTS_JITTER": "100",
        "RUN_MODE": "production",
    }


def test_parsing_neither_mutates_nor_aliases_the_input() -> None:
    spec = copy.deepcopy(FULL_SPEC)
    parsed = parse_spec(spec)
    assert spec == FULL_SPEC
    spec["env"][0]["value"] = "changed"
    spec["resources"]["limits"]["cpu"] = "8"
    assert parsed.env[0]["value"] == "shop.example.com"
    assert parsed.resources is not None and parsed.resources["limits"]["cpu"] == "1500m"


def test_parsed_spec_is_frozen() -> None:
    parsed = parse_spec({"image": "x"})
    with pytest.raises(dataclasses.FrozenInstanceError):
        parsed.replicas = 5  # type: ignore[misc]


def test_integer_quantities_are_kept_as_quantity_strings() -> None:
    parsed = parse_spec({"image": "x", "resources": {"limits": {"cpu": 2, "memory": "1Gi"}}})
    assert parsed.resources == {"limits": {"cpu": "2", "memory": "1Gi"}}


def test_explicit_workers_and_graceful_timeout_flow_into_config() -> None:
    cfg = effective_config(parse_spec({
        "image": "x", "resources": {"limits": {"cpu": "4"}},
        "gunicorn": {"workers": 3, "timeout": 120},
    }))
    assert (cfg.workers, cfg.workers_source) == (3, "Spec")
    assert (cfg.timeout, cfg.graceful_timeout, cfg.termination_grace_period_seconds) == (
        120, 120, 130,
    )


def test_zero_replicas_is_valid() -> None:
    assert parse_spec({"image": "x", "replicas": 0}).replicas == 0


@pytest.mark.parametrize(
    ("spec", "field", "words"),
    [
        (None, "spec", "required"),
        ({}, "spec.image", "required"),
        ({"image": ""}, "spec.image", "empty"),
        ({"image": 5}, "spec.image", "string"),
        ({"image": "x", "replicas": -1}, "spec.replicas", ">= 0"),
        ({"image": "x", "replicas": "2"}, "spec.replicas", "integer"),
        ({"image": "x", "replicas": 2.0}, "spec.replicas", "integer"),
        ({"image": "x", "replicas": True}, "spec.replicas", "integer"),
        ({"image": "x", "port": 0}, "spec.port", ">= 1"),
        ({"image": "x", "port": 65536}, "spec.port", "<= 65535"),
        ({"image": "x", "gunicorn": {"workers": 0}}, "spec.gunicorn.workers", ">= 1"),
        ({"image": "x", "gunicorn": {"workers": 257}}, "spec.gunicorn.workers", "<= 256"),
        ({"image": "x", "gunicorn": {"timeout": 0}}, "spec.gunicorn.timeout", ">= 1"),
        ({"image": "x", "gunicorn": {"timeout": 3601}}, "spec.gunicorn.timeout", "<= 3600"),
        ({"image": "x", "gunicorn": {"gracefulTimeout": 0}},
         "spec.gunicorn.gracefulTimeout", ">= 1"),
        ({"image": "x", "gunicorn": {"maxRequests": -1}}, "spec.gunicorn.maxRequests", ">= 0"),
        ({"image": "x", "gunicorn": {"maxRequestsJitter": -1}},
         "spec.gunicorn.maxRequestsJitter", ">= 0"),
        ({"image": "x", "gunicorn": {"maxRequestsJitter": 10}},
         "spec.gunicorn.maxRequestsJitter", "maxRequests > 0"),
        ({"image": "x", "gunicorn": {"maxRequests": 0, "maxRequestsJitter": 1}},
         "spec.gunicorn.maxRequestsJitter", "maxRequests > 0"),
        ({"image": "x", "gunicorn": "fast"}, "spec.gunicorn", "object"),
        ({"image": "x", "gunicorn": {"wrokers": 2}}, "spec.gunicorn.wrokers", "unknown field"),
        ({"image": "x", "colour": "red"}, "spec.colour", "unknown field"),
        ({"image": "x", "runMode": "debug"}, "spec.runMode", "production, development"),
        ({"image": "x", "imagePullPolicy": "Sometimes"}, "spec.imagePullPolicy", "IfNotPresent"),
        ({"image": "x", "imagePullSecrets": [{}]}, "spec.imagePullSecrets[0].name", "required"),
        ({"image": "x", "imagePullSecrets": "regcred"}, "spec.imagePullSecrets", "list"),
        ({"image": "x", "service": {"type": "ExternalName"}}, "spec.service.type", "ClusterIP"),
        ({"image": "x", "service": {"port": 0}}, "spec.service.port", ">= 1"),
        ({"image": "x", "service": {"enabled": "yes"}}, "spec.service.enabled", "true or false"),
        ({"image": "x", "resources": {"limits": {"cpu": "1e3m"}}},
         "spec.resources.limits.cpu", "not a valid Kubernetes quantity"),
        ({"image": "x", "resources": {"limits": {"memory": "1GB"}}},
         "spec.resources.limits.memory", "not a valid Kubernetes quantity"),
        ({"image": "x", "resources": {"requests": {"cpu": 0.5}}},
         "spec.resources.requests.cpu", "quantity string"),
        ({"image": "x", "resources": {"requests": {"cpu": "-1"}}},
         "spec.resources.requests.cpu", "negative"),
        ({"image": "x", "resources": {"limits": {"cpu": "1"}, "requests": {"cpu": "1500m"}}},
         "spec.resources.requests.cpu", "less than or equal to spec.resources.limits.cpu"),
        ({"image": "x", "resources": {"claims": [{"name": "gpu"}]}},
         "spec.resources.claims", "unknown field"),
        ({"image": "x", "env": [{"value": "1"}]}, "spec.env[0].name", "required"),
        ({"image": "x", "env": [{"name": "A", "value": 1}]}, "spec.env[0].value", "string"),
        ({"image": "x", "env": [{"name": "A=B", "value": "1"}]}, "spec.env[0].name", "'='"),
        ({"image": "x", "env": [{"name": "A", "value": "1"}, {"name": "A", "value": "2"}]},
         "spec.env[1].name", "duplicate"),
        ({"image": "x", "env": [{"name": "A", "value": "1", "valueFrom": {}}]},
         "spec.env[0].valueFrom", "together with value"),
        ({"image": "x", "env": [{"name": "A", "valueFrom": "secret"}]},
         "spec.env[0].valueFrom", "object"),
        ({"image": "x", "envFrom": [{"prefix": "X_"}]}, "spec.envFrom[0]", "exactly one"),
        ({"image": "x", "envFrom": [{"configMapRef": {"name": "a"}, "secretRef": {"name": "b"}}]},
         "spec.envFrom[0]", "exactly one"),
        ({"image": "x", "envFrom": [{"secretRef": {}}]},
         "spec.envFrom[0].secretRef.name", "required"),
        ({"image": "x", "terminationGracePeriodSeconds": 0},
         "spec.terminationGracePeriodSeconds", ">= 1"),
    ],
)
def test_invalid_spec_names_the_field(spec: Any, field: str, words: str) -> None:
    err = error_for(spec)
    assert err.field == field
    assert words in err.message
    assert err.reason == "InvalidSpec"


@pytest.mark.parametrize("name", [
    "GUNICORN_WORKERS", "GUNICORN_PORT", "GUNICORN_TIMEOUT", "GUNICORN_GRACEFUL_TIMEOUT",
    "GUNICORN_MAX_REQUESTS", "GUNICORN_MAX_REQUESTS_JITTER", "RUN_MODE",
])
def test_user_env_may_not_override_operator_env(name: str) -> None:
    env = [{"name": "OK", "value": "1"}, {"name": name, "value": "9"}]
    err = error_for({"image": "x", "env": env})
    assert err.field == "spec.env[1].name"
    assert name in err.message and "spec.gunicorn" in err.message


def test_other_gunicorn_variables_pass_through() -> None:
    parsed = parse_spec({"image": "x", "env": [{"name": "GUNICORN_CMD_ARGS", "value": "--x"}]})
    assert parsed.env == ({"name": "GUNICORN_CMD_ARGS", "value": "--x"},)


@pytest.mark.parametrize(
    ("gunicorn", "grace", "minimum"),
    [({}, 35, 36), ({"timeout": 10}, 15, 16), ({"timeout": 10, "gracefulTimeout": 60}, 65, 66),
     ({"timeout": 60, "gracefulTimeout": 5}, 1, 11)],
)
def test_grace_period_at_or_below_drain_time_is_refused(
    gunicorn: dict[str, int], grace: int, minimum: int
) -> None:
    err = error_for({"image": "x", "gunicorn": gunicorn, "terminationGracePeriodSeconds": grace})
    assert err.field == "spec.terminationGracePeriodSeconds"
    assert f"minimum is {minimum}" in err.message
    ok = parse_spec({"image": "x", "gunicorn": gunicorn, "terminationGracePeriodSeconds": minimum})
    assert effective_config(ok).termination_grace_period_seconds == minimum


def test_spec_error_survives_pickling() -> None:
    err = SpecError("spec.port", "must be >= 1")
    clone = pickle.loads(pickle.dumps(err))
    assert (clone.field, clone.message, clone.reason, str(clone)) == (
        "spec.port", "must be >= 1", "InvalidSpec", "spec.port: must be >= 1",
    )
    assert isinstance(clone, ValueError)
