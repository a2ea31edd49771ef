"""Experiments, named groups of runs: the ``experiment_*`` functions.

The :class:`~sqltrack.Experiment` handle is built on these.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from .._base.values import check_text
from .._db.client import Client, operation
from .._db.schema import DELETION, applied
from ..errors import InvalidValue, NotFound, warn
from . import rows as _rows

_T = "experiments"

_NAME_OF = "SELECT name FROM experiments WHERE id = :id"
_ID_OF = "SELECT id FROM experiments WHERE name = :name"
_REVIVE = (
    "UPDATE experiments SET time_deleted = NULL WHERE id = :id AND time_deleted IS NOT NULL "
    "RETURNING name"
)
_CREATE = (
    "INSERT INTO experiments (name, time_created) VALUES (:name, :now) "
    "ON CONFLICT DO NOTHING RETURNING id"
)
_CREATE_WITH_ID = (
    "INSERT INTO experiments (id, name, time_created) VALUES (:id, :name, :now) "
    "ON CONFLICT DO NOTHING RETURNING id"
)


def check_name(name: Any) -> str:
    """A valid experiment name (or InvalidValue)."""
    if not isinstance(name, str) or not name.strip():
        raise InvalidValue(f"experiment name must be a non-empty string, got {name!r}")
    return check_text(name, "experiment name")


@operation
def get_or_create_experiment(
    client: Client, experiment_id: int | None = None, name: str | None = None
) -> int:
    """Return the id of an experiment, creating it if a name is given and it is missing.

    - name only: the experiment of that name; created if missing (safe when many jobs race).
    - id only: that experiment, which must exist.
    - id and name: the experiment with that id, which must have that name; if no
      experiment has that id, it is created with both.

    A deleted experiment (:func:`~sqltrack.delete_experiments`) used again is
    brought back, with a warning; its deleted runs stay deleted.

    :raises NotFound: only an id was given and no such experiment exists.
    :raises InvalidValue: id and name disagree with what is stored, or are invalid.
    """
    if experiment_id is None and name is None:
        raise InvalidValue("give an experiment_id or a name (or both)")
    if name is not None:
        check_name(name)
    if experiment_id is not None:
        _rows.check_id(experiment_id, "experiment")
    with client:
        if experiment_id is not None:
            rows = client.query(_NAME_OF, {"id": experiment_id})
            if rows:
                if name is not None and rows[0][0] != name:
                    raise InvalidValue(
                        f"experiment {experiment_id} is named {rows[0][0]!r}, not {name!r}"
                    )
                return _revived(client, experiment_id)
            if name is None:
                raise NotFound(
                    f"experiment {experiment_id} does not exist; give a name to create it"
                )
        if experiment_id is None:  # look up first: a failed insert burns an identity value
            rows = client.query(_ID_OF, {"name": name})
            if rows:
                return _revived(client, int(rows[0][0]))
        return _create(client, experiment_id, name)  # type: ignore[arg-type]


def _revived(client: Client, experiment_id: int) -> int:
    """``experiment_id``, no longer deleted if it was."""
    if applied(client, DELETION):
        rows = client.query(_REVIVE, {"id": experiment_id})
        if rows:
            warn(f"experiment {rows[0][0]!r} was deleted; used again, it is back "
                 "(its deleted runs stay deleted: see sqltrack restore)")  # fmt: skip
    return experiment_id


def _create(client: Client, experiment_id: int | None, name: str) -> int:
    params = {"id": experiment_id, "name": name, "now": _now(client)}
    insert = _CREATE if experiment_id is None else _CREATE_WITH_ID
    # A generated id may hit an experiment created with an explicit id: that burns one
    # identity value and the insert is tried again. A racing creator of the same name wins.
    for _ in range(100):
        rows = client.query(insert, params)
        if rows:
            return int(rows[0][0])
        rows = client.query(_ID_OF, params)
        if rows:
            if experiment_id is not None and rows[0][0] != experiment_id:
                raise InvalidValue(f"experiment name {name!r} is taken by experiment {rows[0][0]}")
            return int(rows[0][0])
        if experiment_id is not None:
            raise InvalidValue(f"experiment {experiment_id} exists with another name")
    raise InvalidValue(f"could not find a free id for experiment {name!r}")


def _now(client: Client) -> Any:
    return client.engine.adapt_datetime(datetime.now(timezone.utc))


@operation
def experiment_set_name(client: Client, experiment_id: int, name: str) -> None:
    """Set an experiment's name (names are unique).

    :raises InvalidValue: the name is taken by another experiment.
    :raises NotFound: the experiment does not exist.
    """
    try:
        _rows.set_column(client, _T, "name", experiment_id, check_name(name))
    except Exception as e:
        if client.engine.is_unique_violation(e):
            raise InvalidValue(f"experiment name {name!r} is taken") from None
        raise


@operation
def experiment_set_comment(client: Client, experiment_id: int, comment: str | None) -> None:
    """Set an experiment's comment (``None`` clears it)."""
    _rows.set_comment(client, _T, experiment_id, comment)


@operation
def experiment_set_tags(client: Client, experiment_id: int, *tags: str) -> None:
    """Replace an experiment's tags with ``tags``."""
    _rows.set_tags(client, _T, experiment_id, tags)


@operation
def experiment_add_tags(client: Client, experiment_id: int, *tags: str) -> None:
    """Add tags to an experiment (tags it has already are kept)."""
    _rows.add_tags(client, _T, experiment_id, tags)


@operation
def experiment_remove_tags(client: Client, experiment_id: int, *tags: str) -> None:
    """Remove tags from an experiment (tags it does not have are ignored)."""
    _rows.remove_tags(client, _T, experiment_id, tags)


@operation
def experiment_add_link(client: Client, from_id: int, kind: str, to_id: int) -> None:
    """Add a link of some ``kind`` (any text, e.g. ``"follows"``) between two experiments.

    Adding a link that exists already does nothing.

    :raises NotFound: one of the experiments does not exist.
    """
    _rows.add_link(client, _T, from_id, kind, to_id)


@operation
def experiment_remove_link(client: Client, from_id: int, kind: str, to_id: int) -> None:
    """Remove a link between two experiments (a missing link is ignored)."""
    _rows.remove_link(client, _T, from_id, kind, to_id)
