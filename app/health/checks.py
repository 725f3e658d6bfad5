"""Readiness checks: does the database answer, and is its schema fully migrated?

Kept separate from the views so they are plain functions over a DB connection.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from django.db import DEFAULT_DB_ALIAS, connections
from django.db.migrations.executor import MigrationExecutor


@dataclass(frozen=True)
class CheckResult:
    """Outcome of one readiness check; ``detail`` says why it failed."""

    name: str
    ok: bool
    detail: str = ""


_migrated_lock = threading.Lock()
_migrated: set[str] = set()  # aliases whose migrations were all applied once


def check_database(alias: str = DEFAULT_DB_ALIAS) -> CheckResult:
    """Run ``SELECT 1``: proves the server answers and our credentials work."""
    try:
        with connections[alias].cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as exc:  # any driver error means "not ready"
        return CheckResult("database", False, f"{type(exc).__name__}: {exc}".strip())
    return CheckResult("database", True)


def pending_migrations(alias: str = DEFAULT_DB_ALIAS) -> list[str]:
    """Names of migrations not yet applied, as ``app.migration`` (Django's own plan)."""
    connection = connections[alias]
    executor = MigrationExecutor(connection)
    targets = executor.loader.graph.leaf_nodes()
    return [f"{m.app_label}.{m.name}" for m, _backwards in executor.migration_plan(targets)]


def check_migrations(alias: str = DEFAULT_DB_ALIAS) -> CheckResult:
    """Fail while any migration is pending.

    Once everything is applied the answer is cached for the life of the process:
    migrations are never un-applied under a running server, and building the
    migration graph on every probe would make readiness the most expensive request.
    """
    if alias in _migrated:
        return CheckResult("migrations", True)
    try:
        pending = pending_migrations(alias)
    except Exception as exc:
        return CheckResult("migrations", False, f"{type(exc).__name__}: {exc}".strip())
    if pending:
        shown = ", ".join(pending[:5]) + (" ..." if len(pending) > 5 else "")
        return CheckResult("migrations", False, f"{len(pending)} unapplied: {shown}")
    with _migrated_lock:
        _migrated.add(alias)
    return CheckResult("migrations", True)


def readiness(alias: str = DEFAULT_DB_ALIAS) -> list[CheckResult]:
    """All readiness checks in order; migrations are only checked once the DB answers."""
    db = check_database(alias)
    if not db.ok:
        return [db, CheckResult("migrations", False, "skipped: database unavailable")]
    return [db, check_migrations(alias)]
