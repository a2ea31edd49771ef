-- sqltrack schema, version 7 (SQLite): deleted runs and experiments, kept until
-- `sqltrack gc` removes them. The same as sql/postgres/v007_deleted.sql.
-- Never edit this file once released: add a new vNNN_*.sql script instead.

ALTER TABLE runs ADD COLUMN time_deleted TEXT;
ALTER TABLE experiments ADD COLUMN time_deleted TEXT;
CREATE INDEX runs_time_deleted_idx ON runs (time_deleted) WHERE time_deleted IS NOT NULL;

-- run_overview as in version 3, without deleted runs
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
    (julianday(r.time_updated) - julianday(r.time_started)) * 86400.0 AS duration,
    (SELECT max(s.last_step) FROM run_summaries s WHERE s.run_id = r.id) AS last_step,
    (SELECT s.last_progress FROM run_summaries s WHERE s.run_id = r.id
     ORDER BY s.last_step DESC, s.last_progress DESC LIMIT 1) AS last_progress,
    r.comment,
    r.tags,
    r.args,
    (SELECT json_group_object(s.metric, json_object(
        'count', s.count, 'last', s.last, 'last_step', s.last_step, 'min', s.min,
        'min_step', s.min_step, 'max', s.max, 'max_step', s.max_step))
     FROM run_summaries s WHERE s.run_id = r.id) AS summaries
FROM runs r JOIN experiments e ON e.id = r.experiment_id
WHERE r.time_deleted IS NULL AND e.time_deleted IS NULL;
