-- sqltrack schema, version 2 (PostgreSQL): a stable identity for every run.
-- Run ids generated in two databases collide; uids never do. `sqltrack sync` matches the
-- runs of a SQLite database it merges into this one by uid, so merging twice adds
-- nothing. Existing runs get a uid when this script is applied.
-- Never edit this file once released: add a new vNNN_*.sql script instead.

ALTER TABLE runs ADD COLUMN uid UUID NOT NULL DEFAULT gen_random_uuid();
CREATE UNIQUE INDEX runs_uid_idx ON runs (uid);
