"""Probe endpoints: ``/health`` (liveness) and ``/health/ready`` (readiness).

Included at the site root (no trailing slash on either, as probes are configured).
"""

from django.urls import path

from health import views

urlpatterns = [
    path("health", views.live, name="health-live"),
    path("health/ready", views.ready, name="health-ready"),
]
