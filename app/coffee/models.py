"""Drinks on the menu and orders paid through the external payment provider."""

import uuid
from decimal import Decimal

from django.core.validators import MinValueValidator
from django.db import models


class Drink(models.Model):
    """A drink on the menu; `slug` is what clients order by (stable, unlike the display name)."""

    slug = models.SlugField(max_length=50, unique=True)
    name = models.CharField(max_length=100)
    price = models.DecimalField(
        max_digits=8, decimal_places=2, validators=[MinValueValidator(Decimal("0.01"))]
    )
    available = models.BooleanField(default=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return f"{self.name} ({self.price})"


class OrderStatus(models.TextChoices):
    """Order lifecycle. Only the transitions in `coffee.orders.TRANSITIONS` are allowed."""

    NEW = "new", "new (payment not yet created)"
    PAYMENT_FAILED = "payment_failed", "payment failed (retry with POST /api/orders/<id>/pay)"
    AWAITING_PAYMENT = "awaiting_payment", "awaiting payment"
    PAID = "paid", "paid"
    CANCELLED = "cancelled", "cancelled"


class Order(models.Model):
    """One order of one drink. The UUID primary key is public (not guessable) and is also the
    payment's Idempotence-Key, so retrying the payment of an order never charges twice."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    drink = models.ForeignKey(Drink, on_delete=models.PROTECT, related_name="orders")
    quantity = models.PositiveIntegerField()
    total = models.DecimalField(max_digits=10, decimal_places=2)
    currency = models.CharField(max_length=3)
    status = models.CharField(max_length=20, choices=OrderStatus.choices, default=OrderStatus.NEW)
    payment_id = models.CharField(max_length=64, blank=True, default="", db_index=True)
    confirmation_url = models.URLField(max_length=500, blank=True, default="")
    payment_error = models.CharField(max_length=200, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.quantity} x {self.drink_id} [{self.status}]"
