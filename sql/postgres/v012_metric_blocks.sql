-- sqltrack schema, version 12 (PostgreSQL): metric_blocks, a rollup of each run's numeric
-- metrics per block of 128 steps (block = floor(step / 128)): the count, the smallest and
-- largest value with their steps, and the last value. A chart of a long run reads these
-- (about 1/128 of the rows) instead of every value, and the rows after the last block
-- raw. Kept current like run_summaries: by a tracked run at its heartbeats, and by
-- `sqltrack refresh` for runs written by other means. Both storages (metrics and
-- metric_points) are rolled up; NaN is left out.
-- Never edit this file once released: add a new vNNN_*.sql script instead.

CREATE TABLE metric_blocks (
    run_id BIGINT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    metric TEXT NOT NULL,
    block BIGINT NOT NULL,
    count BIGINT NOT NULL,
    min DOUBLE PRECISION NOT NULL,
    min_step BIGINT NOT NULL,
    max DOUBLE PRECISION NOT NULL,
    max_step BIGINT NOT NULL,
    last DOUBLE PRECISION NOT NULL,
    last_step BIGINT NOT NULL,
    last_progress DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (run_id, metric, block)
);

ALTER TABLE metric_blocks ENABLE ROW LEVEL SECURITY;
CREATE POLICY sqltrack_read ON metric_blocks FOR SELECT USING (true);
CREATE POLICY sqltrack_write ON metric_blocks FOR ALL
    USING (EXISTS (SELECT 1 FROM runs r WHERE r.id = run_id AND r.created_by = current_user)
        OR sqltrack_is_admin())
    WITH CHECK (EXISTS (SELECT 1 FROM runs r WHERE r.id = run_id AND r.created_by = current_user)
        OR sqltrack_is_admin());

COMMENT ON TABLE metric_blocks IS 'Per run, numeric metric and block of 128 steps: what a chart of a long run reads (kept like run_summaries; sqltrack refresh rebuilds it)';
COMMENT ON COLUMN metric_blocks.run_id IS 'The run (deleting it deletes its blocks)';
COMMENT ON COLUMN metric_blocks.metric IS 'The metric name, in either storage';
COMMENT ON COLUMN metric_blocks.block IS 'floor(step / 128): the block holds steps 128 * block to 128 * block + 127';
COMMENT ON COLUMN metric_blocks.count IS 'How many values (NaN left out)';
COMMENT ON COLUMN metric_blocks.min IS 'The smallest value';
COMMENT ON COLUMN metric_blocks.min_step IS 'The first step of the smallest value';
COMMENT ON COLUMN metric_blocks.max IS 'The largest value';
COMMENT ON COLUMN metric_blocks.max_step IS 'The first step of the largest value';
COMMENT ON COLUMN metric_blocks.last IS 'The value at the highest (step, progress)';
COMMENT ON COLUMN metric_blocks.last_step IS 'The highest step rolled up: values after it are not in the block yet';
COMMENT ON COLUMN metric_blocks.last_progress IS 'The progress of the last value';
