"""The streaming path's statements, written once instead of built on every call.

The ORM builds and compiles each query anew: 100–340 µs of Python for one of the small
reads and writes a reply makes (its conversation locked and read, two messages inserted,
a few updates), where SQLite or PostgreSQL take about 15 µs to run it. With a thousand
replies starting at once that was most of a start's work, all of it holding the GIL.

Here each statement's SQL is made once per model and database vendor from the model's
own metadata; values are prepared as the ORM's compilers prepare them
(`Field.get_db_prep_save` and `pre_save`), and reads give model instances loaded with
the fields read (any other field loads on first use, as with `.only()`). Statements are
written with `{table}` and `{attname}` placeholders, so no column name is spelled twice.
Only what a reply runs every time lives here; everything else uses the ORM.
"""

from __future__ import annotations

import functools

from django.db import connection
from django.db.models import Model


def fetch(model: type[Model], fields: tuple[str, ...], where: str, params, lock=False) -> list:
    """Instances of `model`, loaded with `fields` (attnames), from the rows `where` picks.

    `lock`: SELECT … FOR UPDATE where the database has it (in a transaction).
    """
    sql, order = _select(model, fields, where, lock, connection.vendor)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    return [model.from_db(connection.alias, order, row) for row in rows]


def rows(model: type[Model], statement: str, params) -> list[tuple]:
    """The rows a SELECT `statement` on `model`'s table gives, as tuples."""
    with connection.cursor() as cursor:
        cursor.execute(_sql(model, statement, connection.vendor), params)
        return cursor.fetchall()


def execute(model: type[Model], statement: str, params) -> int:
    """Run an UPDATE or DELETE `statement` on `model`'s table; how many rows it changed."""
    with connection.cursor() as cursor:
        cursor.execute(_sql(model, statement, connection.vendor), params)
        return cursor.rowcount


def execute_many(model: type[Model], statement: str, params: list) -> None:
    """Run an UPDATE `statement` on `model`'s table once for each set of `params`."""
    with connection.cursor() as cursor:
        cursor.executemany(_sql(model, statement, connection.vendor), params)


def insert(obj: Model) -> None:
    """Store the new `obj` as `save()` would, and give it the id the database chose."""
    model = type(obj)
    fields, sql, returns = _insert(model, connection.vendor)
    values = [field.get_db_prep_save(field.pre_save(obj, True), connection) for field in fields]
    with connection.cursor() as cursor:
        cursor.execute(sql, values)
        obj.pk = cursor.fetchone()[0] if returns else cursor.lastrowid
    obj._state.adding, obj._state.db = False, connection.alias


def update(obj: Model, *fields: str) -> int:
    """`save(update_fields=fields)` for a stored `obj`: its `auto_now` fields are stamped
    when named. How many rows changed (0: it is gone)."""
    model = type(obj)
    named = [model._meta.get_field(name) for name in fields]
    values = {field.attname: field.pre_save(obj, False) for field in named}
    return update_where(model, values, f"{{{model._meta.pk.attname}}} = %s", [obj.pk])


def update_where(model: type[Model], values: dict, where: str, params) -> int:
    """Set `values` (attname: Python value) on the rows of `model` that `where` picks, each
    value prepared as the ORM's update prepares it. How many rows changed."""
    sql, fields = _update(model, tuple(values), where, connection.vendor)
    prepared = [
        f.get_db_prep_save(v, connection) for f, v in zip(fields, values.values(), strict=True)
    ]
    with connection.cursor() as cursor:
        cursor.execute(sql, [*prepared, *params])
        return cursor.rowcount


def value(model: type[Model], attname: str, python_value):
    """`python_value` as the database takes it for a lookup on `model`'s field `attname`."""
    field = _fields(model)[attname]
    return field.get_db_prep_value(python_value, connection, prepared=False)


@functools.cache
def _fields(model: type[Model]) -> dict:
    return {field.attname: field for field in model._meta.concrete_fields}


@functools.cache
def _sql(model: type[Model], statement: str, vendor: str) -> str:
    quote = connection.ops.quote_name
    names = {attname: quote(field.column) for attname, field in _fields(model).items()}
    return statement.format(table=quote(model._meta.db_table), **names)


@functools.cache
def _select(model, fields: tuple[str, ...], where: str, lock: bool, vendor: str):
    # from_db() takes the values in the model's field order.
    order = tuple(name for name in _fields(model) if name in fields)
    if len(order) != len(fields):
        raise ValueError(f"not fields of {model.__name__}: {set(fields) - set(order)}")
    columns = ", ".join(f"{{{name}}}" for name in order)
    suffix = " FOR UPDATE" if lock and connection.features.has_select_for_update else ""
    return _sql(model, f"SELECT {columns} FROM {{table}} WHERE {where}{suffix}", vendor), order


@functools.cache
def _insert(model, vendor: str):
    meta = model._meta
    fields = [f for f in meta.local_concrete_fields if f is not meta.auto_field and not f.generated]
    columns = ", ".join(f"{{{f.attname}}}" for f in fields)
    marks = ", ".join(["%s"] * len(fields))
    returns = connection.features.can_return_columns_from_insert
    tail = f" RETURNING {{{meta.pk.attname}}}" if returns else ""
    return (
        fields,
        _sql(model, f"INSERT INTO {{table}} ({columns}) VALUES ({marks}){tail}", vendor),
        returns,
    )


@functools.cache
def _update(model, attnames: tuple[str, ...], where: str, vendor: str):
    fields = [_fields(model)[name] for name in attnames]
    sets = ", ".join(f"{{{name}}} = %s" for name in attnames)
    return _sql(model, f"UPDATE {{table}} SET {sets} WHERE {where}", vendor), fields
