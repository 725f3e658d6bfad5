"""Gunicorn worker class for the Coffee Payments Server (placeholder, being fixed)."""

from uvicorn_worker import UvicornWorker as _StockUvicornWorker


class UvicornWorker(_StockUvicornWorker):
    """The maintained uvicorn_worker.UvicornWorker."""
