"""app/gunicorn.conf.py loaded the way Gunicorn loads it (``-c`` file through its own
Config machinery), under each environment the operator may write."""

from __future__ import annotations

import logging

import pytest
from gunicorn.app.base import Application

from tests.support.servers import CONFIG_FILE, TEST_SECRET_KEY

GUNICORN_VARS = (
    "GUNICORN_WORKERS",
    "GUNICORN_PORT",
    "GUNICORN_TIMEOUT",
    "GUNICORN_GRACEFUL_TIMEOUT",
    "GUNICORN_MAX_REQUESTS",
    "GUNICORN_MAX_REQUESTS_JITTER",
)


class ConfigProbe(Application):
    """A Gunicorn application that only loads the real config file, as ``-c`` does."""

    def load_config(self) -> None:
        self.load_config_from_file(str(CONFIG_FILE))

    def load(self):  # pragma: no cover - never served
        raise AssertionError("not serving")


class ArbiterStub:
    """What the on_starting hook touches on Gunicorn's Arbiter: its log and handlers."""

    def __init__(self) -> None:
        self.log = logging.getLogger("test.gunicorn.arbiter")

    def handle_term(self) -> None:
        raise StopIteration

    def handle_int(self) -> None:  # stock Gunicorn: quick shutdown
        raise AssertionError("stock SIGINT handler")


@pytest.fixture
def load(monkeypatch: pytest.MonkeyPatch):
    """Load the config with exactly the given GUNICORN_* variables set."""

    def _load(**env: str):
        for name in (*GUNICORN_VARS, "LOG_LEVEL", "RUN_MODE", "DJANGO_DEBUG"):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("DJANGO_SECRET_KEY", TEST_SECRET_KEY)
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        return ConfigProbe().cfg

    return _load


def start_hook_warnings(cfg, caplog: pytest.LogCaptureFixture) -> list[str]:
    stub = ArbiterStub()
    with caplog.at_level(logging.WARNING, logger=stub.log.name):
        cfg.on_starting(stub)
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]


def test_defaults(load, caplog: pytest.LogCaptureFixture) -> None:
    cfg = load()
    assert cfg.workers == 4
    assert cfg.bind == ["0.0.0.0:8000"]
    assert cfg.timeout == 30
    assert cfg.graceful_timeout == 30
    assert cfg.max_requests == 0
    assert cfg.max_requests_jitter == 0
    assert start_hook_warnings(cfg, caplog) == []


def test_server_wiring(load) -> None:
    cfg = load()
    assert cfg.wsgi_app == "coffee_payment.asgi:application"
    worker = cfg.worker_class
    import uvicorn_worker

    assert cfg.worker_class_str == "coffee_payment.workers.UvicornWorker"
    assert issubclass(worker, uvicorn_worker.UvicornWorker)
    assert cfg.accesslog == "-"
    assert cfg.errorlog == "-"
    assert cfg.control_socket_disable is True


@pytest.mark.parametrize(
    ("name", "value", "attr", "expected"),
    [
        ("GUNICORN_WORKERS", "3", "workers", 3),
        ("GUNICORN_PORT", "9090", "bind", ["0.0.0.0:9090"]),
        ("GUNICORN_TIMEOUT", "45", "timeout", 45),
        ("GUNICORN_TIMEOUT", "0", "timeout", 0),
        ("GUNICORN_GRACEFUL_TIMEOUT", "12", "graceful_timeout", 12),
        ("GUNICORN_MAX_REQUESTS", "1000", "max_requests", 1000),
        ("GUNICORN_MAX_REQUESTS_JITTER", "50", "max_requests_jitter", 50),
        ("GUNICORN_WORKERS", " 5 ", "workers", 5),
    ],
)
def test_each_override(load, caplog, name: str, value: str, attr: str, expected) -> None:
    cfg = load(**{name: value})
    assert getattr(cfg, attr) == expected
    assert start_hook_warnings(cfg, caplog) == []


def test_graceful_timeout_follows_timeout(load) -> None:
    cfg = load(GUNICORN_TIMEOUT="17")
    assert (cfg.timeout, cfg.graceful_timeout) == (17, 17)
    cfg = load(GUNICORN_TIMEOUT="17", GUNICORN_GRACEFUL_TIMEOUT="5")
    assert (cfg.timeout, cfg.graceful_timeout) == (17, 5)


@pytest.mark.parametrize(
    ("name", "value", "attr", "default"),
    [
        ("GUNICORN_WORKERS", "abc", "workers", 4),
        ("GUNICORN_WORKERS", "0", "workers", 4),
        ("GUNICORN_WORKERS", "-2", "workers", 4),
        ("GUNICORN_WORKERS", "2.5", "workers", 4),
        ("GUNICORN_PORT", "http", "bind", ["0.0.0.0:8000"]),
        ("GUNICORN_PORT", "0", "bind", ["0.0.0.0:8000"]),
        ("GUNICORN_PORT", "65536", "bind", ["0.0.0.0:8000"]),
        ("GUNICORN_PORT", "-80", "bind", ["0.0.0.0:8000"]),
        ("GUNICORN_TIMEOUT", "30s", "timeout", 30),
        ("GUNICORN_TIMEOUT", "-1", "timeout", 30),
        ("GUNICORN_GRACEFUL_TIMEOUT", "soon", "graceful_timeout", 30),
        ("GUNICORN_GRACEFUL_TIMEOUT", "-5", "graceful_timeout", 30),
        ("GUNICORN_MAX_REQUESTS", "many", "max_requests", 0),
        ("GUNICORN_MAX_REQUESTS", "-1", "max_requests", 0),
        ("GUNICORN_MAX_REQUESTS_JITTER", "x", "max_requests_jitter", 0),
        ("GUNICORN_MAX_REQUESTS_JITTER", "-10", "max_requests_jitter", 0),
    ],
)
def test_invalid_value_takes_default_and_warns_once(
    load, caplog, name: str, value: str, attr: str, default
) -> None:
    cfg = load(**{name: value})
    assert getattr(cfg, attr) == default
    warnings = start_hook_warnings(cfg, caplog)
    assert len(warnings) == 1, warnings
    assert name in warnings[0]
    assert repr(value) in warnings[0]


def test_invalid_graceful_timeout_falls_back_to_the_timeout(load) -> None:
    cfg = load(GUNICORN_TIMEOUT="20", GUNICORN_GRACEFUL_TIMEOUT="nope")
    assert cfg.graceful_timeout == 20


def test_several_invalid_values_each_warn(load, caplog) -> None:
    cfg = load(GUNICORN_WORKERS="none", GUNICORN_PORT="99999", LOG_LEVEL="LOUD")
    warnings = start_hook_warnings(cfg, caplog)
    assert sorted(w.split("=")[0] for w in warnings) == [
        "GUNICORN_PORT", "GUNICORN_WORKERS", "LOG_LEVEL",
    ]


def test_sigint_drains_like_sigterm(load) -> None:
    stub = ArbiterStub()
    load().on_starting(stub)
    # Gunicorn dispatches SIGINT to arbiter.handle_int: now the graceful TERM path.
    assert stub.handle_int == stub.handle_term
    with pytest.raises(StopIteration):
        stub.handle_int()


def test_json_logs_in_production_text_in_development(load) -> None:
    prod = load().logconfig_dict
    assert prod["handlers"]["stderr"]["formatter"] == "json"
    assert prod["loggers"]["gunicorn.access"]["handlers"] == ["stdout"]
    assert prod["loggers"]["gunicorn.error"]["handlers"] == ["stderr"]
    dev = load(RUN_MODE="development").logconfig_dict
    assert dev["handlers"]["stderr"]["formatter"] == "plain"


def test_log_level(load) -> None:
    assert load(LOG_LEVEL="debug").loglevel == "debug"
    assert load(LOG_LEVEL="nonsense").loglevel == "info"
