-- sqltrack schema, version 12 (SQLite): metric_blocks, a rollup of each run's numeric
-- metrics per block of 128 steps. The same as sql/postgres/v012_metric_blocks.sql (whose
-- comments say what each column holds), without row-level security.
-- Never edit this file once released: add a new vNNN_*.sql script instead.

CREATE TABLE metric_blocks (
    run_id INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    metric TEXT NOT NULL,
    block INTEGER NOT NULL,
    count INTEGER NOT NULL,
    min REAL NOT NULL,
    min_step INTEGER NOT NULL,
    max REAL NOT NULL,
    max_step INTEGER NOT NULL,
    last REAL NOT NULL,
    last_step INTEGER NOT NULL,
    last_progress REAL NOT NULL,
    PRIMARY KEY (run_id, metric, block)
) WITHOUT ROWID;
