"""The view ``metrics_long``: every metric value of both storages in long form.

``run_id, step, progress, metric, value, text``: one ``SELECT`` per wide column of
``metrics`` (a name is a column's name as a literal; value a number, text the text of a
str or datetime column), then the narrow ``metric_points`` (schema v010). A view cannot
follow new columns by itself, so :func:`refresh_long_view` rewrites it whenever the wide
table gains one, in the transaction that adds it, from the columns the database has then.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .._base.names import KEY_COLUMNS
from .engines.base import Engine, quote_identifier

_NARROW_PART = (
    "SELECT p.run_id, p.step, p.progress, n.name AS metric, p.value, "
    "CASE WHEN p.kind IN ('str', 'datetime') THEN p.exact END AS text "
    "FROM metric_points p JOIN metric_names n ON n.id = p.name_id"
)
# {metric}: a checked column name as a literal; {column} quoted; {value}, {text}: what
# the engine makes of a column of that kind (sqltrack's own expressions)
_WIDE_PART = (
    "SELECT run_id, step, progress, {metric} AS metric, {value} AS value, {text} AS text "
    "FROM metrics WHERE {column} IS NOT NULL"
)
_BRANCHES = 200  # per compound SELECT (SQLite allows 500)


def long_view_sql(engine: Engine, columns: Mapping[str, str | None]) -> str:
    """The ``SELECT`` of ``metrics_long``: each wide column, then the narrow table."""
    parts = []
    for name, kind in sorted(columns.items()):
        if name in KEY_COLUMNS or kind is None:
            continue
        column = quote_identifier(name)
        value, text = engine.long_value(column, kind)
        literal = "CAST('" + name.replace("'", "''") + "' AS TEXT)"  # (a column's name)
        parts.append(_WIDE_PART.format(metric=literal, value=value, text=text, column=column))
    selects = []
    for start in range(0, len(parts), _BRANCHES):
        union = " UNION ALL ".join(parts[start : start + _BRANCHES])
        selects.append(f"SELECT * FROM ({union}) AS w{start}")  # noqa: S608 (our own text)
    return " UNION ALL ".join([*selects, _NARROW_PART])


def refresh_long_view(
    engine: Engine, cursor: Any, columns: Mapping[str, str | None] | None = None
) -> None:
    """Rewrite ``metrics_long`` for the wide columns the database has now (in the
    current transaction: after the ``ALTER TABLE`` that added some, whose lock makes
    concurrent writers of the view take turns).

    :param columns: the columns, if the caller has just read them in this transaction
    """
    if columns is None:
        columns = engine.metric_columns(cursor)
    engine.replace_view(cursor, "metrics_long", long_view_sql(engine, columns))
