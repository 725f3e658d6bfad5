"""Probe endpoints (owned by the runtime work: liveness and readiness)."""

urlpatterns: list = []
