-- sqltrack schema, version 9 (SQLite): run_overview with column types that other readers
-- of the file see (DuckDB's sqlite extension, above all). The same columns, names, order
-- and values as in version 7 (sql/sqlite/v007_deleted.sql).
--
-- A view of SQLite has no declared column types. DuckDB reads a view of an attached SQLite
-- file by binding the view's own SQL in DuckDB: where that SQL uses a function DuckDB lacks
-- (julianday) it runs the view in SQLite instead and types every column VARCHAR, so that
-- avg(duration) failed there. Now run_overview is SQL that DuckDB binds too, with the
-- types of its tables, and takes the two values that only SQLite computes (duration,
-- summaries) from the view run_overview_untyped, cast to DOUBLE and TEXT. SQLite's CASTs
-- to these names change nothing in SQLite (duration is REAL, summaries JSON text).
-- sql/postgres/v009_typed_overview.sql changes nothing: that view is typed already.
-- Never edit this file once released: add a new vNNN_*.sql script instead.

-- What only SQLite's functions compute, for run_overview (not a view to query itself):
-- per run (deleted ones too), duration in seconds from time_started to time_updated and
-- summaries, run_summaries as a JSON object.
CREATE VIEW run_overview_untyped AS
SELECT
    r.id,
    (julianday(r.time_updated) - julianday(r.time_started)) * 86400.0 AS duration,
    (SELECT json_group_object(s.metric, json_object(
        'count', s.count, 'last', s.last, 'last_step', s.last_step, 'min', s.min,
        'min_step', s.min_step, 'max', s.max, 'max_step', s.max_step))
     FROM run_summaries s WHERE s.run_id = r.id) AS summaries
FROM runs r;

-- run_overview as in version 7: runs not deleted, of experiments not deleted
DROP VIEW run_overview;
CREATE VIEW run_overview AS
SELECT
    r.id,
    r.experiment_id,
    e.name AS experiment,
    r.status,
    r.time_created,
    r.time_started,
    r.time_updated,
    CAST(u.duration AS DOUBLE) AS duration,
    (SELECT max(s.last_step) FROM run_summaries s WHERE s.run_id = r.id) AS last_step,
    (SELECT s.last_progress FROM run_summaries s WHERE s.run_id = r.id
     ORDER BY s.last_step DESC, s.last_progress DESC LIMIT 1) AS last_progress,
    r.comment,
    r.tags,
    r.args,
    CAST(u.summaries AS TEXT) AS summaries
FROM runs r
JOIN experiments e ON e.id = r.experiment_id
JOIN run_overview_untyped u ON u.id = r.id
WHERE r.time_deleted IS NULL AND e.time_deleted IS NULL;
