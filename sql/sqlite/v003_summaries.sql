-- sqltrack schema, version 3 (SQLite): run summaries and the run_overview view.
-- The same as sql/postgres/v003_summaries.sql, except: SQLite has no COMMENT ON (the
-- comments below and docs/schema.md describe the columns) and no GIN indexes; duration is
-- computed with julianday() and summaries is JSON text.
-- Never edit this file once released: add a new vNNN_*.sql script instead.

-- Per run and numeric metric: how many values, the last one (at the highest step and
-- progress), the smallest and largest and the first step of each (NaN left out).
-- Kept current by sqltrack while a run is tracked; `sqltrack refresh` rebuilds it for
-- runs written by other means.
CREATE TABLE run_summaries (
    run_id INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    metric TEXT NOT NULL,
    count INTEGER NOT NULL,
    last REAL NOT NULL,
    last_step INTEGER NOT NULL,
    last_progress REAL NOT NULL,
    min REAL NOT NULL,
    min_step INTEGER NOT NULL,
    max REAL NOT NULL,
    max_step INTEGER NOT NULL,
    PRIMARY KEY (run_id, metric)
);
CREATE INDEX run_summaries_metric_idx ON run_summaries (metric, min);

-- One row per run: what a question about runs usually starts from.
-- duration: seconds from time_started to time_updated; last_step, last_progress: the
-- highest with a summarized value (last_progress: at last_step); summaries: run_summaries as a JSON object.
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
FROM runs r JOIN experiments e ON e.id = r.experiment_id;
