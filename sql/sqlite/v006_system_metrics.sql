-- sqltrack schema, version 6 (SQLite): system metrics sampled while a run is tracked.
-- The same as sql/postgres/v006_system_metrics.sql (which describes each column).
-- Never edit this file once released: add a new vNNN_*.sql script instead.

CREATE TABLE system_metrics (
    run_id INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    time TEXT NOT NULL,
    name TEXT NOT NULL,
    value REAL NOT NULL,
    PRIMARY KEY (run_id, name, time)
);
