"""Coffee API endpoints (menu, orders, payment webhook)."""

urlpatterns: list = []
