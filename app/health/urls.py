"""Probe endpoints, mounted at ``/health`` (liveness) and ``/health/ready`` (readiness)."""

from django.urls import path

from health import views

urlpatterns = [
    path("", views.live, name="health-live"),
    path("/ready", views.ready, name="health-ready"),
]
