"""Which names a metric may have, and which of them may be columns of the wide table.

**A metric name** is what a user or a framework writes: 1 to 250 characters of letters,
digits (any script), ``_``, ``/``, ``.``, ``-`` and space, not starting or ending with a
space, not ``run_id``, ``step`` or ``progress``; case-sensitive (``Loss`` and ``loss``
are two metrics): ``train/loss``,
``eval/accuracy``, ``lr-Adam``, ``val.acc``, ``mmlu_task17_acc_norm``. Anything else (a
quote, a parenthesis, a semicolon, a control character) is refused with
:class:`~sqltrack.errors.InvalidMetricName`: :func:`check_metric_name`.

**A column name** is a metric name that can also be a column of the one wide ``metrics``
table (:func:`is_column_name`): the names that never need quoting on PostgreSQL or
SQLite, where they are the same name whatever the case:

- lowercase ASCII letters, digits and ``_``, not starting with a digit;
- at most 63 bytes (PostgreSQL silently truncates longer identifiers);
- not a reserved word of either engine (``order``, ``select``, ``user`` …);
- not a key or system column (``run_id``, ``step``, ``progress``, ``ctid``, ``rowid`` …).

Every other metric name is data, not an identifier: it is stored in the narrow table
(``metric_points``, its names in ``metric_names``). :func:`check_identifier` checks the
other identifiers sqltrack uses unquoted (a schema name).
"""

from __future__ import annotations

import re
import unicodedata

from ..errors import InvalidMetricName

MAX_IDENTIFIER_BYTES = 63

# PostgreSQL 18 keywords of category R (reserved) and T (type/function name): these need
# quotes as column names. From: SELECT word FROM pg_get_keywords() WHERE catcode IN ('R','T')
_POSTGRES_RESERVED = """
all analyse analyze and any array as asc asymmetric authorization binary both case cast check
collate collation column concurrently constraint create cross current_catalog current_date
current_role current_schema current_time current_timestamp current_user default deferrable desc
distinct do else end except false fetch for foreign freeze from full grant group having ilike in
initially inner intersect into is isnull join lateral leading left like limit localtime
localtimestamp natural not notnull null offset on only or order outer overlaps placing primary
references returning right select session_user similar some symmetric system_user table
tablesample then to trailing true union unique user using variadic verbose when where window with
"""
# SQLite keywords that fail as unquoted column names in ALTER/INSERT/UPSERT/SELECT
# (tested against SQLite 3.40 with each of its 147 keywords).
_SQLITE_RESERVED = """
add all alter and as autoincrement between case cast check collate commit constraint create
default deferrable delete distinct drop else escape except exists foreign from group having in
index insert intersect into is isnull join limit not nothing notnull null on or order primary
raise references returning select set table then to transaction union unique update using values
when where
"""
RESERVED_WORDS = frozenset(_POSTGRES_RESERVED.split()) | frozenset(_SQLITE_RESERVED.split())

#: columns of the metrics table that are not metrics
KEY_COLUMNS = frozenset({"run_id", "step", "progress"})
# PostgreSQL system columns and SQLite's rowid aliases
SYSTEM_COLUMNS = frozenset(
    {"tableoid", "xmin", "cmin", "xmax", "cmax", "ctid", "oid", "rowid", "_rowid_"}
)

_IDENTIFIER = re.compile(r"[a-z_][a-z0-9_]*\Z")
#: the longest metric name, in characters
MAX_METRIC_NAME = 250
# letters and digits of any script, _ / . - and space; no space at either end
_METRIC_NAME = re.compile(r"[\w/.\-]([\w/.\- ]*[\w/.\-])?\Z")


def suggest_name(name: str, *, taken: frozenset[str] = frozenset()) -> str:
    """Return a valid name close to ``name``: ``"Train/Loss"`` → ``"train_loss"``,
    ``"café"`` → ``"cafe"`` (accents are dropped, not the letters)."""
    ascii_name = unicodedata.normalize("NFKD", str(name)).encode("ascii", "ignore").decode()
    s = re.sub(r"[^a-z0-9_]+", "_", ascii_name.lower()).strip("_") or "metric"
    if s[0].isdigit():
        s = "m_" + s
    s = s[:MAX_IDENTIFIER_BYTES]
    if s in RESERVED_WORDS or s in KEY_COLUMNS or s in SYSTEM_COLUMNS or s in taken:
        s = s[: MAX_IDENTIFIER_BYTES - 1] + "_"
    return s


def _problem(name: object) -> str | None:
    if not isinstance(name, str):
        return f"must be a str, not {type(name).__name__}"
    if not name:
        return "must not be empty"
    size = len(name.encode("utf-8", "surrogatepass"))  # lone surrogates fail the pattern below
    if size > MAX_IDENTIFIER_BYTES:
        return f"is {size} bytes long, the limit is {MAX_IDENTIFIER_BYTES}"
    if not _IDENTIFIER.match(name):
        return "may only contain lowercase letters a-z, digits and _, and not start with a digit"
    if name in RESERVED_WORDS:
        return "is a reserved word in SQL"
    return None


def check_identifier(
    name: object, *, what: str = "identifier", error: type[Exception] = InvalidMetricName
) -> str:
    """Validate a name to be used unquoted in SQL (e.g. a schema name).

    :raises error: (by default :class:`InvalidMetricName`, a ``ValueError``) naming the
        problem and suggesting a valid name.
    """
    problem = _problem(name)
    if problem is not None:
        raise error(f"invalid {what} {name!r}: it {problem}; try {suggest_name(str(name))!r}")
    return name  # type: ignore[return-value]


def check_metric_name(name: object) -> str:
    """Validate a metric name (see the module doc for the rules).

    :raises InvalidMetricName: naming the problem (and suggesting a valid name).
    """
    if type(name) is not str:
        raise InvalidMetricName(
            f"invalid metric name {name!r}: it must be a str, not {type(name).__name__}"
        )
    if len(name) > MAX_METRIC_NAME:
        raise InvalidMetricName(
            f"invalid metric name {name[:40]!r}…: it is {len(name)} characters long, the "
            f"limit is {MAX_METRIC_NAME}; try {suggest_metric_name(name)[:40]!r}…"
        )
    if not _METRIC_NAME.match(name) or "\n" in name:
        raise InvalidMetricName(
            f"invalid metric name {name!r}: it may only contain letters, digits, _ / . - "
            f"and spaces (not at either end); try {suggest_metric_name(name)!r}"
        )
    if name in KEY_COLUMNS:
        raise InvalidMetricName(
            f"invalid metric name {name!r}: it is a key of every metric row "
            f"(run_id, step, progress); try {name + '_'!r}"
        )
    return name


def is_column_name(name: str) -> bool:
    """Whether a (valid) metric name can be a column of the wide ``metrics`` table."""
    return _problem(name) is None and name not in KEY_COLUMNS and name not in SYSTEM_COLUMNS


def suggest_metric_name(name: str) -> str:
    """A valid metric name close to ``name``: what is not allowed becomes ``_``."""
    cleaned = re.sub(r"[^\w/.\- ]+", "_", str(name)).strip()[:MAX_METRIC_NAME].strip()
    if cleaned in KEY_COLUMNS:
        return cleaned + "_"
    return cleaned or "metric"
