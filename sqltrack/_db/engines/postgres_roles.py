"""What a lab's roles change for the PostgreSQL engine (schema v011: row-level security):
errors that name the rule or the missing grant, and whether the role may add metric
columns."""

from __future__ import annotations

from typing import Any

from psycopg import errors as pg_errors

from ...errors import DatabaseError, PermissionDenied

_SCHEMA_OWNER = "SELECT nspowner::regrole::text FROM pg_namespace WHERE nspname = %s"
_SCHEMA_USAGE = "SELECT has_schema_privilege(oid, 'USAGE') FROM pg_namespace WHERE nspname = %s"
# ALTER TABLE takes the table's owner, or a member of the owning role
_OWNS_METRICS = (
    "SELECT pg_has_role(current_user, relowner, 'USAGE') FROM pg_class "
    "WHERE oid = to_regclass('metrics')"
)


def refused(exc: BaseException, error: DatabaseError, user: str | None) -> DatabaseError:
    """``error`` (a refusal in one line) with what the role lacks, for a privilege error."""
    if not isinstance(exc, pg_errors.InsufficientPrivilege):
        return error
    role = user or "this role"
    if "row-level security" in str(exc):
        why = (
            f"role {role!r} may write only to its own runs and experiments (row-level "
            "security; a member of sqltrack_admin may write to any)"
        )
    else:
        why = (
            f"role {role!r} lacks a privilege: the database's administrator gives it "
            f"with `sqltrack grant {role} --writer` (or --reader)"
        )
    return PermissionDenied(f"{why}; {error}", error.sqlstate)


def schema_refused(conn: Any, schema: str | None, user: str | None, where: str) -> str | None:
    """Why no table was found, if the role may not use the schema (a schema of the
    search_path that the role may not use is skipped in silence); None otherwise."""
    schema = schema or "public"
    conn.rollback()  # (the failed statement ended the transaction)
    row = conn.execute(_SCHEMA_USAGE, (schema,)).fetchone()
    conn.rollback()
    if row is None or row[0]:
        return None
    role = user or "this role"
    return (
        f"role {role!r} may not use schema {schema!r} of {where}: the database's "
        f"administrator gives it with `sqltrack grant {role} --reader` (or --writer)"
    )


def schema_owner(cursor: Any, schema: str | None) -> str | None:
    """The role that owns ``schema`` (default ``public``), or None if there is none."""
    cursor.execute(_SCHEMA_OWNER, (schema or "public",))
    row = cursor.fetchone()
    return None if row is None else str(row[0])


def may_add_columns(cursor: Any) -> bool:
    """Whether the role may add columns to the metrics table (owns it)."""
    cursor.execute(_OWNS_METRICS)
    row = cursor.fetchone()
    return row is None or bool(row[0])
