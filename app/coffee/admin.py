"""Admin for the menu (edit prices, take drinks off) and for looking into orders."""

from django.contrib import admin

from coffee.models import Drink, Order


@admin.register(Drink)
class DrinkAdmin(admin.ModelAdmin):
    list_display = ("name", "slug", "price", "available")
    list_editable = ("price", "available")
    prepopulated_fields = {"slug": ("name",)}
    search_fields = ("name", "slug")


@admin.register(Order)
class OrderAdmin(admin.ModelAdmin):
    list_display = ("id", "drink", "quantity", "total", "currency", "status", "created_at")
    list_filter = ("status", "drink")
    search_fields = ("id", "payment_id")
    list_select_related = ("drink",)
    date_hierarchy = "created_at"
    # Orders change state only through the payment flow; the admin shows them.
    readonly_fields = (
        "id",
        "drink",
        "quantity",
        "total",
        "currency",
        "status",
        "payment_id",
        "confirmation_url",
        "payment_error",
        "created_at",
        "updated_at",
    )

    def has_add_permission(self, request) -> bool:
        return False
