"""Coffee API endpoints (menu, orders, payment webhook); unknown /api/ paths answer 404 JSON."""

from django.urls import path, re_path

from coffee import views

urlpatterns = [
    path("menu", views.menu_view, name="menu"),
    path("orders", views.create_order, name="orders"),
    path("orders/<str:order_id>", views.order_detail, name="order"),
    path("orders/<str:order_id>/pay", views.retry_payment, name="order-pay"),
    path("payments/webhook", views.payment_webhook, name="payment-webhook"),
    re_path(r"^(?P<path>.*)$", views.not_found),
]
