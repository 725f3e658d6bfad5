"""Top-level URL map: health probes, the coffee API and the admin."""

from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("health", include("health.urls")),
    path("api/", include("coffee.urls")),
    path("admin/", admin.site.urls),
]
