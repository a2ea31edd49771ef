-- sqltrack schema, version 7 (PostgreSQL): deleted runs and experiments, kept until
-- `sqltrack gc` removes them. Deleting sets time_deleted; restoring clears it. The read
-- side (find_runs, summarize, runs_dataframe, sqltrack runs, the report, run_overview)
-- leaves deleted runs, and the runs of deleted experiments, out.
-- Never edit this file once released: add a new vNNN_*.sql script instead.

ALTER TABLE runs ADD COLUMN time_deleted TIMESTAMPTZ;
ALTER TABLE experiments ADD COLUMN time_deleted TIMESTAMPTZ;
CREATE INDEX runs_time_deleted_idx ON runs (time_deleted) WHERE time_deleted IS NOT NULL;

-- run_overview as in version 3, without deleted runs
CREATE OR REPLACE VIEW run_overview AS
SELECT
    r.id,
    r.experiment_id,
    e.name AS experiment,
    r.status,
    r.time_created,
    r.time_started,
    r.time_updated,
    extract(EPOCH FROM r.time_updated - r.time_started)::DOUBLE PRECISION AS duration,
    (SELECT max(s.last_step) FROM run_summaries s WHERE s.run_id = r.id) AS last_step,
    (SELECT s.last_progress FROM run_summaries s WHERE s.run_id = r.id
     ORDER BY s.last_step DESC, s.last_progress DESC LIMIT 1) AS last_progress,
    r.comment,
    r.tags,
    r.args,
    COALESCE((SELECT jsonb_object_agg(s.metric, jsonb_build_object(
        'count', s.count, 'last', s.last, 'last_step', s.last_step, 'min', s.min,
        'min_step', s.min_step, 'max', s.max, 'max_step', s.max_step))
     FROM run_summaries s WHERE s.run_id = r.id), '{}') AS summaries
FROM runs r JOIN experiments e ON e.id = r.experiment_id
WHERE r.time_deleted IS NULL AND e.time_deleted IS NULL;

COMMENT ON COLUMN runs.time_deleted IS 'When the run was deleted (sqltrack delete); NULL: not deleted';
COMMENT ON COLUMN experiments.time_deleted IS 'When the experiment was deleted; NULL: not deleted';
COMMENT ON VIEW run_overview IS 'One row per run that is not deleted, with its experiment name, duration, last step and summaries';
