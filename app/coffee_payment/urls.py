"""Top-level URL map: health probes, the coffee API and the admin."""

from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("", include("health.urls")),  # /health and /health/ready
    path("api/", include("coffee.urls")),
    path("admin/", admin.site.urls),
]
