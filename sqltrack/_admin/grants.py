"""Roles of a lab on one PostgreSQL server (schema v011): who may read, write, and change
anything.

Three group roles, made the first time they are needed, each a member of the next:
``sqltrack_reader`` (SELECT on every table of the schema), ``sqltrack_writer`` (also
INSERT, UPDATE, DELETE: new experiments and runs, and rows of its own runs) and
``sqltrack_admin`` (row-level security lets it change and delete anyone's rows).
:func:`grant` makes a login role a member of one of them; row-level security (the
policies of ``sql/postgres/v011_owners.sql``) decides which rows each may change. Only
the schema's owner (or a superuser) grants, and it needs ``CREATEROLE`` for the
memberships.
"""

from __future__ import annotations

from collections.abc import Callable

from .._base.names import check_identifier
from .._db.client import Client
from .._db.engines.base import first_line, quote_identifier
from .._db.schema import OWNERS, require
from ..errors import InvalidValue, PermissionDenied, SQLTrackError

#: the group roles, the least first; each is a member of the next
GROUPS = {"reader": "sqltrack_reader", "writer": "sqltrack_writer", "admin": "sqltrack_admin"}

_EXISTS = "SELECT 1 FROM pg_roles WHERE rolname = :name"
_TABLES = (
    "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
    "WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'v', 'p') ORDER BY 1"
)
_SEQUENCES = (
    "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
    "WHERE n.nspname = current_schema() AND c.relkind = 'S' ORDER BY 1"
)
#: what no writer changes: the record of applied scripts
_OWNER_ONLY = {"sqltrack_scripts"}


def grant_groups(client: Client, say: Callable[[str], None] = print) -> None:
    """Make the group roles that are missing and give them their privileges on every
    table and sequence of the schema (again after ``setup`` added tables)."""
    if not client.engine.has_roles:
        raise SQLTrackError(f"{client.engine.label} has no roles: its file mode is its permission")
    require(client, OWNERS, "roles need")
    try:
        _grant_groups(client, say)
    except Exception as e:
        raise _refused(client, e) from e


def _grant_groups(client: Client, say: Callable[[str], None]) -> None:
    with client:
        for group in GROUPS.values():
            if not client.query(_EXISTS, {"name": group}):
                client.execute(f"CREATE ROLE {group} NOLOGIN")
                say(f"created group role {group}")
        client.execute("GRANT sqltrack_reader TO sqltrack_writer")
        client.execute("GRANT sqltrack_writer TO sqltrack_admin")
        schema = quote_identifier(str(client.query("SELECT current_schema()")[0][0]))
        client.execute(f"GRANT USAGE ON SCHEMA {schema} TO sqltrack_reader")
        tables = [str(row[0]) for row in client.query(_TABLES)]
        for table in tables:
            name = quote_identifier(table)
            client.execute(f"GRANT SELECT ON {name} TO sqltrack_reader")
            if table not in _OWNER_ONLY:
                client.execute(f"GRANT INSERT, UPDATE, DELETE ON {name} TO sqltrack_writer")
        for sequence in client.query(_SEQUENCES):
            client.execute(
                f"GRANT USAGE ON {quote_identifier(str(sequence[0]))} TO sqltrack_writer"
            )
    say(f"granted: {len(tables)} tables and views of schema {schema} to the group roles")


def grant(client: Client, role: str, level: str | None, say: Callable[[str], None] = print) -> None:
    """Make ``role`` a member of the group of ``level`` (``reader``, ``writer``,
    ``admin``) and of no other; ``level`` None revokes every membership."""
    if level is not None and level not in GROUPS:
        raise InvalidValue(f"level must be one of {', '.join(GROUPS)}, not {level!r}")
    check_identifier(role, what="role name")
    grant_groups(client, say)
    if not client.query(_EXISTS, {"name": role}):
        raise InvalidValue(f"there is no role {role!r} (CREATE ROLE {role} LOGIN makes one)")
    quoted = quote_identifier(role)
    try:
        with client:
            for group in GROUPS.values():
                if group != GROUPS.get(level or ""):
                    client.execute(f"REVOKE {group} FROM {quoted}")
            if level is not None:
                client.execute(f"GRANT {GROUPS[level]} TO {quoted}")
    except Exception as e:
        raise _refused(client, e) from e
    say(f"{role}: {level}" if level is not None else f"{role}: no sqltrack role")


def _refused(client: Client, exc: Exception) -> Exception:
    """``exc``, or for a missing privilege the one line that says who runs grant."""
    if not (isinstance(exc, PermissionDenied) or client.engine.is_permission_error(exc)):
        return exc
    role = client.engine.params.get("user") or "this role"
    return PermissionDenied(
        f"sqltrack grant is run by the schema's owner with CREATEROLE, or a superuser: "
        f"role {role!r} may not ({first_line(exc)})",
        getattr(exc, "sqlstate", None),
    )
