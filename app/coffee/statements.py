"""SQL for the order path's hot statements, built from the Django models (the source of truth).

coffee.pg runs these on asyncpg without the ORM's per-call query building (hence PostgreSQL's own
`$1, $2, ...` placeholders, not the DB-API `%s` the ORM's psycopg takes). They
are built once per process from `Model._meta` (table, columns, quoting) and the connection's
`ops`, and every value passes through the same field methods the ORM uses: `pre_save` and
`get_db_prep_save` for an INSERT (auto_now(_add) timestamps, UUIDs, decimals), the backend's and
fields' `from_db_value` converters for a row read back, `Model.from_db` for the instance. A
migration that renames a column or table changes these statements with it.

`connection` is a Django DatabaseWrapper used only for its `ops`/`features` (no query runs here).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from django.db.models import NOT_PROVIDED, Model
from django.db.models.fields import Field

Converter = Callable[[Any, Any, Any], Any]


@dataclass(frozen=True)
class Select:
    """`SELECT <every concrete column> FROM <table> WHERE <field> = $1 AND ...`."""

    model: type[Model]
    sql: str
    where: tuple[Field, ...]
    attnames: tuple[str, ...]
    converters: tuple[tuple[int, tuple[Converter, ...], Any], ...]  # (column, convs, expression)

    def params(self, values: Sequence[Any], connection: Any) -> list[Any]:
        return [f.get_db_prep_value(v, connection) for f, v in zip(self.where, values, strict=True)]

    def instance(self, row: Sequence[Any], connection: Any, using: str) -> Model:
        """The model instance for one row, as the ORM builds it (converters, then from_db)."""
        values = list(row)
        for i, convs, expression in self.converters:
            for convert in convs:
                values[i] = convert(values[i], expression, connection)
        return self.model.from_db(using, self.attnames, values)


@dataclass(frozen=True)
class Insert:
    """`INSERT INTO <table> (<every concrete column>) VALUES ($1, ...)`, primary key included."""

    model: type[Model]
    sql: str
    fields: tuple[Field, ...]

    def params(self, obj: Model, connection: Any) -> list[Any]:
        """Values as Model.save(force_insert=True) would send them (also sets auto_now fields)."""
        return [f.get_db_prep_save(f.pre_save(obj, True), connection) for f in self.fields]


def select(model: type[Model], where: Sequence[str], connection: Any) -> Select:
    meta, qn = model._meta, connection.ops.quote_name
    fields = meta.concrete_fields
    conditions = [meta.get_field(name) for name in where]
    converters = []
    for i, field in enumerate(fields):
        col = field.get_col(meta.db_table)
        convs = connection.ops.get_db_converters(col) + col.get_db_converters(connection)
        if convs:
            converters.append((i, tuple(convs), col))
    sql = "SELECT {} FROM {} WHERE {}".format(
        ", ".join(qn(f.column) for f in fields),
        qn(meta.db_table),
        " AND ".join(f"{qn(f.column)} = ${i}" for i, f in enumerate(conditions, 1)),
    )
    return Select(
        model, sql, tuple(conditions), tuple(f.attname for f in fields), tuple(converters)
    )


def insert(model: type[Model], connection: Any) -> Insert | None:
    """The INSERT, or None when the model needs what only the ORM does (a value the database
    computes: generated columns, db_default, RETURNING fields; or multi-table inheritance)."""
    meta, qn = model._meta, connection.ops.quote_name
    fields = meta.local_concrete_fields
    if meta.parents or any(
        f.generated or f.db_default is not NOT_PROVIDED or f.db_returning for f in fields
    ):
        return None
    sql = "INSERT INTO {} ({}) VALUES ({})".format(
        qn(meta.db_table),
        ", ".join(qn(f.column) for f in fields),
        ", ".join(f"${i}" for i in range(1, len(fields) + 1)),
    )
    return Insert(model, sql, tuple(fields))
