"""Statements shared by experiments and runs: one column, a JSON column, tags, links,
which runs count as deleted.

Tables and columns named here come from the fixed sets below, never from callers; the
statements are templates filled with those names only.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any

from .._base.values import check_text, json_dumps, json_value
from .._db.client import Client
from .._db.schema import DELETION, OWNERS, applied
from ..errors import InvalidValue, NotFound, PermissionDenied, SQLTrackError

_WHAT = {"experiments": "experiment", "runs": "run"}
_COLUMNS = frozenset(
    {
        "name",
        "comment",
        "tags",
        "status",
        "time_created",
        "time_started",
        "time_updated",
        "args",
        "env",
        "extras",
        "code",
        "packages",
        "hardware",
    }
)
_LINK_TABLES = {"experiments": "experiment_links", "runs": "run_links"}
_GONE = "(runs.time_deleted IS NOT NULL OR experiments.time_deleted IS NOT NULL)"

_OWNER_OF = "SELECT created_by, current_user FROM {table} WHERE id = :id"
# of the rows {ids} (the engine's "id is one of :ids"), those this role may change
_MINE = "SELECT id FROM {table} WHERE {ids} AND sqltrack_may_change(created_by)"
_SET_COLUMN = "UPDATE {table} SET {column} = :value WHERE id = :id RETURNING id"
_SET_JSON = "UPDATE {table} SET {column} = :value WHERE id = :id"
_ADD_LINK = (
    "INSERT INTO {links} (from_id, kind, to_id) VALUES (:from_id, :kind, :to_id) "
    "ON CONFLICT DO NOTHING"
)
_REMOVE_LINK = "DELETE FROM {links} WHERE from_id = :from_id AND kind = :kind AND to_id = :to_id"


def _check(table: str, column: str) -> None:
    if table not in _WHAT or column not in _COLUMNS:  # programming error, not user input
        raise AssertionError(f"unexpected column {table}.{column}")


def check_id(value: Any, what: str) -> int:
    """Validate an id: a positive int (not bool), or a string of ASCII digits (``"42"``, as
    a command line or an environment variable gives it; ``Run(client, exp, "42")`` means
    the same run)."""
    if isinstance(value, str) and value.isascii() and value.strip().isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value < 2**63:
        raise InvalidValue(f"{what} id must be a positive integer (of 64 bits), got {value!r}")
    return value


def set_column(client: Client, table: str, column: str, row_id: int, value: Any) -> None:
    """``UPDATE table SET column = value``; :class:`NotFound` if the row does not exist."""
    _check(table, column)
    check_id(row_id, _WHAT[table])
    rows = client.query(
        _SET_COLUMN.format(table=table, column=column), {"value": value, "id": row_id}
    )
    if not rows:
        raise absent(client, table, row_id)


def absent(client: Client, table: str, row_id: int) -> SQLTrackError:
    """The error of a change that found no row of ``table`` with this id: NotFound, or
    PermissionDenied where the row exists but belongs to another role (row-level
    security hid it from the change: schema v011 on PostgreSQL)."""
    what = f"{_WHAT[table]} {row_id}"
    if client.engine.has_roles and applied(client, OWNERS):
        rows = client.query(_OWNER_OF.format(table=table), {"id": row_id})
        if rows:
            owner, role = rows[0]
            return PermissionDenied(
                f"{what} belongs to role {owner!r}: role {role!r} may change only its own "
                "(or be a member of sqltrack_admin; see docs/lab.md)"
            )
    return NotFound(f"{what} does not exist")


def mine(client: Client, table: str, ids: list[int]) -> tuple[list[int], list[int]]:
    """Split the ids of rows of ``table`` into those this role may change and those of
    other roles (one server for a lab: schema v011 on PostgreSQL; else all are its own)."""
    if table not in _WHAT:
        raise ValueError(f"no owners in table {table!r}")
    if not ids or not (client.engine.has_roles and applied(client, OWNERS)):
        return list(ids), []
    engine = client.engine
    query = _MINE.format(table=table, ids=engine.in_array("id", "ids"))
    found = {int(r[0]) for r in client.query(query, {"ids": engine.adapt_array(ids)})}
    return [i for i in ids if i in found], [i for i in ids if i not in found]


def set_comment(client: Client, table: str, row_id: int, comment: str | None) -> None:
    """Set or clear (``None``) the comment of an experiment or run."""
    if comment is not None:
        if not isinstance(comment, str):
            raise InvalidValue(f"comment must be a str or None, got {comment!r}")
        check_text(comment, "comment")
    set_column(client, table, "comment", row_id, comment)


def change_json(
    client: Client,
    table: str,
    column: str,
    row_id: int,
    change: Callable[[dict[str, Any]], dict[str, Any]],
) -> None:
    """Read-modify-write a JSON object column with the row locked, so concurrent
    changes of other keys are never lost."""
    _check(table, column)
    check_id(row_id, _WHAT[table])
    with client:
        rows = client.query(client.engine.lock_row_sql(table, column), {"id": row_id})
        if not rows:
            raise absent(client, table, row_id)
        current = json_value(rows[0][0])
        new = change(dict(current) if isinstance(current, dict) else {})
        client.query(
            _SET_JSON.format(table=table, column=column),
            {"value": json.dumps(new, ensure_ascii=False), "id": row_id},
        )


def plain_json(value: Any, where: str) -> Any:
    """Validate and normalize a value for a JSON column (raises InvalidValue)."""
    return json.loads(json_dumps(value, where))


def check_object(value: Any, where: str) -> dict[str, Any]:
    """Validate a dict for a JSON object column."""
    if not isinstance(value, dict):
        raise InvalidValue(f"{where}: expected a dict, got {type(value).__name__}")
    result: dict[str, Any] = plain_json(value, where)
    return result


def check_tags(tags: Iterable[Any], where: str) -> list[str]:
    out = []
    for tag in tags:
        if not isinstance(tag, str) or not tag:
            raise InvalidValue(f"{where}: tags must be non-empty strings, got {tag!r}")
        out.append(check_text(tag, where))
    return out


def set_tags(client: Client, table: str, row_id: int, tags: Iterable[Any]) -> None:
    where = f"{_WHAT[table]} {row_id} tags"
    value = {tag: True for tag in check_tags(tags, where)}
    set_column(client, table, "tags", row_id, json.dumps(value, ensure_ascii=False))


def add_tags(client: Client, table: str, row_id: int, tags: Iterable[Any]) -> None:
    new = check_tags(tags, f"{_WHAT[table]} {row_id} tags")
    change_json(client, table, "tags", row_id, lambda cur: {**cur, **dict.fromkeys(new, True)})


def remove_tags(client: Client, table: str, row_id: int, tags: Iterable[Any]) -> None:
    gone = set(check_tags(tags, f"{_WHAT[table]} {row_id} tags"))
    change_json(
        client, table, "tags", row_id, lambda cur: {k: v for k, v in cur.items() if k not in gone}
    )


def _check_kind(kind: Any) -> str:
    if not isinstance(kind, str) or not kind:
        raise InvalidValue(f"link kind must be a non-empty string, got {kind!r}")
    return check_text(kind, "link kind")


def add_link(client: Client, table: str, from_id: int, kind: str, to_id: int) -> None:
    what = _WHAT[table]
    params = {
        "from_id": check_id(from_id, what),
        "kind": _check_kind(kind),
        "to_id": check_id(to_id, what),
    }
    try:
        client.query(_ADD_LINK.format(links=_LINK_TABLES[table]), params)
    except Exception as e:
        if client.engine.is_foreign_key_violation(e):
            raise NotFound(
                f"cannot link {what} {from_id} to {to_id}: "
                f"{what} {from_id} or {to_id} does not exist"
            ) from None
        raise


def remove_link(client: Client, table: str, from_id: int, kind: str, to_id: int) -> None:
    what = _WHAT[table]
    client.query(
        _REMOVE_LINK.format(links=_LINK_TABLES[table]),
        {
            "from_id": check_id(from_id, what),
            "kind": _check_kind(kind),
            "to_id": check_id(to_id, what),
        },
    )


def deleted_condition(client: Client, deleted: bool | None) -> str:
    """A condition on ``runs`` joined with ``experiments`` (those names) that keeps the
    runs not deleted (``deleted=False``: the read side's default), only the deleted ones
    (True: deleted runs and the runs of deleted experiments), or all (None).

    A database without deletion (schema before version 7) has no deleted runs.
    """
    if deleted is not None and not isinstance(deleted, bool):
        raise InvalidValue(f"deleted must be True, False or None, got {deleted!r}")
    if deleted is None:
        return "TRUE"
    if not applied(client, DELETION):
        return "FALSE" if deleted else "TRUE"
    return _GONE if deleted else f"NOT {_GONE}"


def check_experiment(client: Client, experiment: int | str) -> None:
    """Raise :class:`NotFound` unless the experiment (a name or an id) exists (a deleted
    one does)."""
    by_name = isinstance(experiment, str)
    value = experiment if by_name else check_id(experiment, "experiment")
    query = f"SELECT 1 FROM experiments WHERE {'name' if by_name else 'id'} = :e"  # noqa: S608
    if not client.query(query, {"e": value}):
        raise NotFound(f"experiment {experiment!r} does not exist")


def check_runs(client: Client, run_ids: Iterable[int]) -> list[int]:
    """The ids, checked: :class:`NotFound` names those that do not exist (deleted runs
    exist)."""
    ids = [check_id(i, "run") for i in run_ids]
    engine = client.engine
    query = f"SELECT id FROM runs WHERE {engine.in_array('id', 'ids')}"  # noqa: S608
    found = {int(r[0]) for r in client.query(query, {"ids": engine.adapt_array(ids)})}
    missing = [str(i) for i in dict.fromkeys(ids) if i not in found]
    if missing:
        raise NotFound(f"run {missing[0]} does not exist" if len(missing) == 1 else
                       f"runs {', '.join(missing)} do not exist")  # fmt: skip
    return ids
