"""Shared test helpers: real servers (Gunicorn, runserver, PostgreSQL) on 127.0.0.1."""
