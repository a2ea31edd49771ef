-- sqltrack schema, version 4 (SQLite): artifacts, their uses (lineage), and generated
-- samples with their conditioning.
-- The same as sql/postgres/v004_artifacts.sql (which comments every column): kind is
-- checked with GLOB, sha256 with a length and GLOB check, metadata is JSON text.
-- Never edit this file once released: add a new vNNN_*.sql script instead.

CREATE TABLE artifacts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL CHECK (name <> ''),
    version INTEGER NOT NULL CHECK (version > 0),
    kind TEXT NOT NULL CHECK (kind GLOB '[a-z]*' AND kind NOT GLOB '*[^a-z0-9_]*'),
    run_id INTEGER REFERENCES runs (id) ON DELETE SET NULL,
    step INTEGER,
    uri TEXT NOT NULL,
    sha256 TEXT CHECK (sha256 IS NULL OR (length(sha256) = 64 AND sha256 NOT GLOB '*[^0-9a-f]*')),
    size INTEGER CHECK (size >= 0),
    metadata TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(metadata)),
    time_created TEXT NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f+00:00', 'now')),
    UNIQUE (name, version)
);
CREATE INDEX artifacts_run_id_idx ON artifacts (run_id, step);

CREATE TABLE artifact_uses (
    run_id INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    artifact_id INTEGER NOT NULL REFERENCES artifacts (id) ON DELETE CASCADE,
    time_used TEXT NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f+00:00', 'now')),
    PRIMARY KEY (run_id, artifact_id)
);
CREATE INDEX artifact_uses_artifact_id_idx ON artifact_uses (artifact_id);

-- Generated samples and what they were conditioned on, stored once per content.
CREATE TABLE conditionings (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    sha256 TEXT NOT NULL UNIQUE CHECK (length(sha256) = 64 AND sha256 NOT GLOB '*[^0-9a-f]*'),
    type TEXT NOT NULL CHECK (type IN ('text', 'number', 'boolean', 'object', 'array')),
    content TEXT NOT NULL CHECK (json_valid(content)),
    time_created TEXT NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f+00:00', 'now'))
);

CREATE TABLE samples (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    step INTEGER NOT NULL,
    conditioning_id INTEGER REFERENCES conditionings (id),
    kind TEXT CHECK (kind GLOB '[a-z]*' AND kind NOT GLOB '*[^a-z0-9_]*'),
    output TEXT CHECK (output IS NULL OR json_valid(output)),
    artifact_id INTEGER REFERENCES artifacts (id) ON DELETE SET NULL,
    time_created TEXT NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f+00:00', 'now'))
);
CREATE INDEX samples_run_id_idx ON samples (run_id, step);
CREATE INDEX samples_conditioning_id_idx ON samples (conditioning_id, run_id);
