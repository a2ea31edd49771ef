"""Reading metrics back: rows, or a pandas DataFrame (``pip install 'sqltrack[pandas]'``).

Plain SQL works as well (the schema is public); these functions are the fast, safe way
to load whole runs: one query, binary transfer on PostgreSQL, columns checked against the
table and quoted.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from ._rows import check_id
from .client import Client, operation
from .engines import quote_identifier
from .errors import InvalidValue
from .metrics import _known_columns
from .names import KEY_COLUMNS

if TYPE_CHECKING:
    import pandas

__all__ = ["metrics_dataframe", "read_metrics"]


def _run_ids(run_ids: int | Iterable[int]) -> list[int]:
    ids = [run_ids] if isinstance(run_ids, int) else list(run_ids)
    if not ids:
        raise InvalidValue("give at least one run id")
    return [check_id(i, "run") for i in ids]


@operation
def read_metrics(
    client: Client, run_ids: int | Iterable[int], columns: Sequence[str] | None = None
) -> tuple[list[str], list[tuple[Any, ...]]]:
    """Return the metrics of one or several runs as ``(column_names, rows)``.

    Rows are ordered by run, step and progress. The first columns are always
    ``run_id, step, progress``.

    Example::

        names, rows = read_metrics(client, run.id, ["train_loss"])

    :param run_ids: a run id or several
    :param columns: metric columns to read (default: all)
    :raises InvalidValue: a column that the metrics table does not have
    """
    ids = _run_ids(run_ids)
    engine = client.engine
    with client as conn:
        known = _known_columns(client, conn, tuple(columns or ()))
        if columns is None:
            wanted = [c for c in known if c not in KEY_COLUMNS]
        else:
            wanted = [c for c in columns if c not in KEY_COLUMNS]
            unknown = [c for c in wanted if c not in known]
            if unknown:
                raise InvalidValue(f"no such metric column: {', '.join(map(repr, unknown))}")
        names = ["run_id", "step", "progress", *wanted]
        select = ", ".join(quote_identifier(n) for n in names)
        if engine.name == "postgres":
            query = f"SELECT {select} FROM metrics WHERE run_id = ANY(%s) ORDER BY 1, 2, 3"  # noqa: S608
            cur = conn.cursor(binary=True)
            params: Any = (ids,)
        else:
            marks = ", ".join("?" * len(ids))
            query = f"SELECT {select} FROM metrics WHERE run_id IN ({marks}) ORDER BY 1, 2, 3"  # noqa: S608
            cur = conn.cursor()
            params = ids
        try:
            cur.execute(query, params)
            return names, cur.fetchall()
        finally:
            cur.close()


def metrics_dataframe(
    client: Client, run_ids: int | Iterable[int], columns: Sequence[str] | None = None
) -> pandas.DataFrame:
    """Like :func:`read_metrics`, as a ``pandas.DataFrame`` (pandas is an optional extra).

    Example::

        df = metrics_dataframe(client, [run_a, run_b], ["val_loss"])
        df.pivot(index="step", columns="run_id", values="val_loss").plot()
    """
    try:
        import pandas
    except ImportError:
        raise ImportError(
            "metrics_dataframe needs pandas: pip install 'sqltrack[pandas]'"
        ) from None
    names, rows = read_metrics(client, run_ids, columns)
    return pandas.DataFrame.from_records(rows, columns=names)
