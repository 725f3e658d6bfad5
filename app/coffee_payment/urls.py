"""Top-level URL map: health probes, the coffee API and the admin."""

from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    # The API first: Django tries patterns in order, and the health include (prefix "") failing
    # for every API request costs a Resolver404 raised and caught (profiled, bench/README.md).
    path("api/", include("coffee.urls")),
    path("", include("health.urls")),  # /health and /health/ready
    path("admin/", admin.site.urls),
]
