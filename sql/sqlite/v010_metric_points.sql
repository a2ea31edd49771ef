-- sqltrack schema, version 10 (SQLite): the narrow storage of metrics, beside the wide
-- table. The same as sql/postgres/v010_metric_points.sql; metric_points is a WITHOUT
-- ROWID table (its primary key is the table: a value costs about 30 bytes).
-- Never edit this file once released: add a new vNNN_*.sql script instead.

CREATE TABLE metric_names (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE CHECK (length(name) BETWEEN 1 AND 250)
);

CREATE TABLE metric_points (
    run_id INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    name_id INTEGER NOT NULL REFERENCES metric_names (id),
    step INTEGER NOT NULL,
    progress REAL NOT NULL,
    value REAL,
    kind TEXT CHECK (kind IN ('int', 'bool', 'str', 'datetime')),
    exact TEXT,
    PRIMARY KEY (run_id, name_id, step, progress)
) WITHOUT ROWID;

CREATE VIEW metrics_long AS
SELECT p.run_id, p.step, p.progress, n.name AS metric, p.value,
    CASE WHEN p.kind IN ('str', 'datetime') THEN p.exact END AS text
FROM metric_points p JOIN metric_names n ON n.id = p.name_id;
