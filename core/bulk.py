"""Set-based writes of many model rows, for the hot paths (the journey tick, the batched sender,
the A/B evaluation).

Django's `bulk_update` builds one `CASE WHEN id = … THEN …` per field and row, whose Python cost
grows with rows × fields and came to a quarter of a send batch and more than a whole A/B look
(docs/BENCHMARKS.md). `update_rows` sends the new values as one array per column instead:

    UPDATE t SET f = v.f, … FROM unnest(%s::bigint[], %s::<type of f>[], …) AS v(id, f, …)
    WHERE t.id = v.id [AND t.workspace_id = %s]
"""

from __future__ import annotations

import json

from django.db import connection, models


def _array(field: models.Field, objs) -> tuple[str, list]:
    """The placeholder (cast to the column's array type) and the values of one field."""
    values = [getattr(obj, field.attname) for obj in objs]
    if isinstance(field, models.JSONField):  # a jsonb[] is sent as text[] of the documents
        return "%s::text[]::jsonb[]", [None if value is None else json.dumps(value, cls=field.encoder)
                                       for value in values]
    return f"%s::{field.db_type(connection)}[]", [field.get_db_prep_save(value, connection) for value in values]


def update_rows(model: type[models.Model], objs, fields, *, workspace_id: int | None = None) -> int:
    """Write `fields` (names) of the instances `objs` (saved rows of `model`) in one statement;
    with `workspace_id`, only rows of that workspace are touched. Returns the rows updated."""
    objs = list(objs)
    if not objs:
        return 0
    opts = model._meta
    columns, placeholders, params = [], [], [[obj.pk for obj in objs]]
    for name in fields:
        field = opts.get_field(name)
        placeholder, values = _array(field, objs)
        columns.append(field.column)
        placeholders.append(placeholder)
        params.append(values)
    quote = connection.ops.quote_name
    sql = (f"UPDATE {quote(opts.db_table)} AS t SET {', '.join(f'{quote(c)} = v.{quote(c)}' for c in columns)} "
           f"FROM unnest(%s::{opts.pk.db_type(connection)}[], {', '.join(placeholders)}) "
           f"AS v(id, {', '.join(quote(c) for c in columns)}) WHERE t.{quote(opts.pk.column)} = v.id")
    if workspace_id is not None:
        sql += " AND t.workspace_id = %s"
        params.append(workspace_id)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.rowcount
