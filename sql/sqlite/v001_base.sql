-- sqltrack base schema, version 1 (SQLite).
-- The same logical schema as sql/postgres/v001_base.sql:
--   timestamps are UTC ISO 8601 text ('YYYY-MM-DD HH:MM:SS.ffffff+00:00'),
--   JSON columns are text checked with json_valid(), the run status is a CHECK.
-- Never edit this file once released: add a new vNNN_*.sql script instead.

CREATE TABLE experiments (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    time_created TEXT NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f+00:00', 'now')),
    name TEXT NOT NULL UNIQUE,
    comment TEXT,
    tags TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(tags))
);

CREATE TABLE experiment_links (
    from_id INTEGER NOT NULL REFERENCES experiments (id) ON DELETE CASCADE,
    kind TEXT NOT NULL,
    to_id INTEGER NOT NULL REFERENCES experiments (id) ON DELETE CASCADE,
    PRIMARY KEY (from_id, kind, to_id)
);
CREATE INDEX experiment_links_to_id_idx ON experiment_links (to_id);

-- Explicit run ids (e.g. Slurm job ids) are 1 .. 9999999999; generated ids start
-- above that range (seeded below), so the two can never collide.
CREATE TABLE runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT CHECK (id > 0),
    experiment_id INTEGER NOT NULL REFERENCES experiments (id) ON DELETE CASCADE,
    status TEXT NOT NULL DEFAULT 'PENDING' CHECK (status IN (
        'BOOT_FAIL', 'CANCELLED', 'COMPLETED', 'CONFIGURING', 'COMPLETING',
        'DEADLINE', 'FAILED', 'NODE_FAIL', 'OUT_OF_MEMORY', 'PENDING',
        'PREEMPTED', 'RUNNING', 'RESV_DEL_HOLD', 'REQUEUE_FED', 'REQUEUE_HOLD',
        'REQUEUED', 'RESIZING', 'REVOKED', 'SIGNALING', 'SPECIAL_EXIT',
        'STAGE_OUT', 'STOPPED', 'SUSPENDED', 'TIMEOUT'
    )),
    time_created TEXT NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f+00:00', 'now')),
    time_started TEXT,
    time_updated TEXT,
    comment TEXT,
    tags TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(tags)),
    args TEXT CHECK (args IS NULL OR json_valid(args)),
    env TEXT CHECK (env IS NULL OR json_valid(env)),
    extras TEXT CHECK (extras IS NULL OR json_valid(extras))
);
CREATE INDEX runs_experiment_id_idx ON runs (experiment_id);
INSERT INTO sqlite_sequence (name, seq) VALUES ('runs', 9999999999);

CREATE TABLE run_links (
    from_id INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    kind TEXT NOT NULL,
    to_id INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    PRIMARY KEY (from_id, kind, to_id)
);
CREATE INDEX run_links_to_id_idx ON run_links (to_id);

-- One row per (run, step, progress); every metric is a column, added on demand.
CREATE TABLE metrics (
    run_id INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    step INTEGER NOT NULL DEFAULT 0,
    progress REAL NOT NULL DEFAULT 0,
    PRIMARY KEY (run_id, step, progress)
);
