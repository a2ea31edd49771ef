-- sqltrack schema, version 3 (PostgreSQL): run summaries, the run_overview view, a comment
-- on every table and column (\d+ in psql shows them), and GIN indexes on runs.tags and
-- runs.args for the tag and argument filters.
-- Never edit this file once released: add a new vNNN_*.sql script instead.

-- Per run and numeric metric: how many values, the last one, the smallest and largest.
-- Kept current by sqltrack while a run is tracked; `sqltrack refresh` rebuilds it for
-- runs written by other means.
CREATE TABLE run_summaries (
    run_id BIGINT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    metric TEXT NOT NULL,
    count BIGINT NOT NULL,
    last DOUBLE PRECISION NOT NULL,
    last_step BIGINT NOT NULL,
    last_progress DOUBLE PRECISION NOT NULL,
    min DOUBLE PRECISION NOT NULL,
    min_step BIGINT NOT NULL,
    max DOUBLE PRECISION NOT NULL,
    max_step BIGINT NOT NULL,
    PRIMARY KEY (run_id, metric)
);
CREATE INDEX run_summaries_metric_idx ON run_summaries (metric, min);

CREATE INDEX runs_tags_idx ON runs USING GIN (tags);
CREATE INDEX runs_args_idx ON runs USING GIN (args jsonb_path_ops);

-- One row per run: what a question about runs usually starts from.
CREATE VIEW run_overview AS
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
FROM runs r JOIN experiments e ON e.id = r.experiment_id;

COMMENT ON TYPE runstatus IS 'The Slurm job states (man squeue, JOB STATE CODES)';

COMMENT ON TABLE experiments IS 'A named group of runs (one study, one sweep)';
COMMENT ON COLUMN experiments.id IS 'Generated id';
COMMENT ON COLUMN experiments.time_created IS 'When the experiment was created';
COMMENT ON COLUMN experiments.name IS 'Unique name, how code and the CLI refer to it';
COMMENT ON COLUMN experiments.comment IS 'Free text';
COMMENT ON COLUMN experiments.tags IS 'Tags as a JSON object {"tag": true, ...}';

COMMENT ON TABLE experiment_links IS 'Directed, named links between experiments';
COMMENT ON COLUMN experiment_links.from_id IS 'The experiment the link starts from';
COMMENT ON COLUMN experiment_links.kind IS 'What the link means, e.g. "continues"';
COMMENT ON COLUMN experiment_links.to_id IS 'The experiment the link points to';

COMMENT ON TABLE runs IS 'One execution of a training script (a Slurm job, usually)';
COMMENT ON COLUMN runs.id IS 'Run id: a Slurm job id (1..9999999999) or generated (above)';
COMMENT ON COLUMN runs.experiment_id IS 'The experiment the run belongs to';
COMMENT ON COLUMN runs.status IS 'Slurm job state; RUNNING while tracked, then the final one';
COMMENT ON COLUMN runs.time_created IS 'When the run was created';
COMMENT ON COLUMN runs.time_started IS 'When the run (last) started';
COMMENT ON COLUMN runs.time_updated IS 'Last sign of life: a heartbeat while running, the end after';
COMMENT ON COLUMN runs.comment IS 'Free text';
COMMENT ON COLUMN runs.tags IS 'Tags as a JSON object {"tag": true, ...}';
COMMENT ON COLUMN runs.args IS 'The run''s arguments (hyperparameters) as a JSON object';
COMMENT ON COLUMN runs.env IS 'Environment variables the run saw (secrets redacted)';
COMMENT ON COLUMN runs.extras IS 'Anything else as a JSON object';
COMMENT ON COLUMN runs.uid IS 'Globally unique identity, used to merge databases';

COMMENT ON TABLE run_links IS 'Directed, named links between runs';
COMMENT ON COLUMN run_links.from_id IS 'The run the link starts from';
COMMENT ON COLUMN run_links.kind IS 'What the link means, e.g. "resumes"';
COMMENT ON COLUMN run_links.to_id IS 'The run the link points to';

COMMENT ON TABLE metrics IS 'One row per (run, step, progress); one column per metric, added when first logged';
COMMENT ON COLUMN metrics.run_id IS 'The run the values belong to';
COMMENT ON COLUMN metrics.step IS 'Training step (or epoch), 0 if not given';
COMMENT ON COLUMN metrics.progress IS 'Progress within the step (e.g. fraction of an epoch), 0 if not given';

COMMENT ON TABLE run_summaries IS 'Per run and numeric metric: count, last, min and max values and their steps (NaN left out)';
COMMENT ON COLUMN run_summaries.run_id IS 'The run';
COMMENT ON COLUMN run_summaries.metric IS 'The metric (a column of metrics)';
COMMENT ON COLUMN run_summaries.count IS 'How many values the run has of this metric';
COMMENT ON COLUMN run_summaries.last IS 'The value at the highest (step, progress)';
COMMENT ON COLUMN run_summaries.last_step IS 'The step of the last value';
COMMENT ON COLUMN run_summaries.last_progress IS 'The progress of the last value';
COMMENT ON COLUMN run_summaries.min IS 'The smallest value';
COMMENT ON COLUMN run_summaries.min_step IS 'The first step with the smallest value';
COMMENT ON COLUMN run_summaries.max IS 'The largest value';
COMMENT ON COLUMN run_summaries.max_step IS 'The first step with the largest value';

COMMENT ON VIEW run_overview IS 'One row per run with its experiment name, duration, last step and summaries';
COMMENT ON COLUMN run_overview.id IS 'runs.id';
COMMENT ON COLUMN run_overview.experiment_id IS 'runs.experiment_id';
COMMENT ON COLUMN run_overview.experiment IS 'The experiment''s name';
COMMENT ON COLUMN run_overview.status IS 'runs.status';
COMMENT ON COLUMN run_overview.time_created IS 'runs.time_created';
COMMENT ON COLUMN run_overview.time_started IS 'runs.time_started';
COMMENT ON COLUMN run_overview.time_updated IS 'runs.time_updated';
COMMENT ON COLUMN run_overview.comment IS 'runs.comment';
COMMENT ON COLUMN run_overview.tags IS 'runs.tags';
COMMENT ON COLUMN run_overview.args IS 'runs.args';
COMMENT ON COLUMN run_overview.duration IS 'Seconds from time_started to time_updated';
COMMENT ON COLUMN run_overview.last_step IS 'The highest step with a summarized value';
COMMENT ON COLUMN run_overview.last_progress IS 'The progress of the last step (its highest with a summarized value)';
COMMENT ON COLUMN run_overview.summaries IS 'run_summaries as JSON: {"metric": {"count", "last", "min", ...}}';

COMMENT ON TABLE sqltrack_scripts IS 'Schema scripts applied to this database (sqltrack setup)';
COMMENT ON COLUMN sqltrack_scripts.name IS 'sqltrack/vNNN_<what>.sql, or the file name of a script of your own';
COMMENT ON COLUMN sqltrack_scripts.checksum IS 'SHA-256 of the script''s text when it was applied';
COMMENT ON COLUMN sqltrack_scripts.time_applied IS 'When it was applied (UTC, ISO 8601)';
