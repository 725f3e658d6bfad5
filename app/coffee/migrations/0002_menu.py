"""Data migration: the shop's starting menu (prices are then edited in the admin)."""

from decimal import Decimal

from django.db import migrations

MENU = [
    ("espresso", "Espresso", Decimal("150.00")),
    ("americano", "Americano", Decimal("180.00")),
    ("cappuccino", "Cappuccino", Decimal("250.00")),
    ("latte", "Latte", Decimal("270.00")),
    ("flat-white", "Flat White", Decimal("290.00")),
    ("hot-chocolate", "Hot Chocolate", Decimal("220.00")),
]


def add_menu(apps, schema_editor) -> None:
    drink = apps.get_model("coffee", "Drink")
    for slug, name, price in MENU:
        # get_or_create: never overwrite a price already changed in the admin.
        drink.objects.get_or_create(slug=slug, defaults={"name": name, "price": price})


def remove_menu(apps, schema_editor) -> None:
    drink = apps.get_model("coffee", "Drink")
    drink.objects.filter(slug__in=[slug for slug, _, _ in MENU], orders__isnull=True).delete()


class Migration(migrations.Migration):
    dependencies = [("coffee", "0001_initial")]
    operations = [migrations.RunPython(add_menu, remove_menu)]
