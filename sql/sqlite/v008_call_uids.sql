-- sqltrack schema, version 8 (SQLite): an idempotency key for the rows that are
-- inserted, not upserted. The same as sql/postgres/v008_call_uids.sql.
-- Never edit this file once released: add a new vNNN_*.sql script instead.

ALTER TABLE artifacts ADD COLUMN uid TEXT;
CREATE UNIQUE INDEX artifacts_uid_idx ON artifacts (uid);
ALTER TABLE samples ADD COLUMN uid TEXT;
CREATE UNIQUE INDEX samples_uid_idx ON samples (uid);
