-- sqltrack schema, version 8 (PostgreSQL): an idempotency key for the rows that are
-- inserted, not upserted. A retried log_artifact or log_sample (after a connection lost
-- between its commit and the answer) finds the row it made by this key instead of making
-- a second version or sample.
-- Never edit this file once released: add a new vNNN_*.sql script instead.

ALTER TABLE artifacts ADD COLUMN uid TEXT;
CREATE UNIQUE INDEX artifacts_uid_idx ON artifacts (uid);
ALTER TABLE samples ADD COLUMN uid TEXT;
CREATE UNIQUE INDEX samples_uid_idx ON samples (uid);

COMMENT ON COLUMN artifacts.uid IS 'A random key of the call that logged it (a retry finds it by this); NULL before version 8';
COMMENT ON COLUMN samples.uid IS 'A random key of the call that logged it (a retry finds it by this); NULL before version 8';
