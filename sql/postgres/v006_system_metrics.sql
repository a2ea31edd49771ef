-- sqltrack schema, version 6 (PostgreSQL): system metrics sampled while a run is tracked
-- (track(system_metrics=SECONDS)): one narrow row per sample and measure, so that the
-- wide metrics table stays one row per training step.
-- Never edit this file once released: add a new vNNN_*.sql script instead.

CREATE TABLE system_metrics (
    run_id BIGINT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    time TIMESTAMPTZ NOT NULL,
    name TEXT NOT NULL,
    value DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (run_id, name, time)
);

COMMENT ON TABLE system_metrics IS 'CPU, memory and GPU use sampled while a run was tracked, one row per sample and measure';
COMMENT ON COLUMN system_metrics.run_id IS 'The run';
COMMENT ON COLUMN system_metrics.time IS 'When the sample was taken';
COMMENT ON COLUMN system_metrics.name IS 'cpu_percent, rss_bytes, host_memory_used_bytes, gpuN.utilization_percent, gpuN.memory_used_bytes, gpuN.power_watts, gpuN.temperature_c';
COMMENT ON COLUMN system_metrics.value IS 'The measured value, in the unit its name says';
