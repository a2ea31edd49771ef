-- sqltrack schema, version 2 (SQLite): a stable identity for every run.
-- The same as sql/postgres/v002_run_uid.sql: uid is 32 lowercase hex digits (PostgreSQL
-- reads it as a UUID). SQLite cannot add a column with a random default, so a trigger
-- gives each new run its uid.
-- Never edit this file once released: add a new vNNN_*.sql script instead.

ALTER TABLE runs ADD COLUMN uid TEXT;
UPDATE runs SET uid = lower(hex(randomblob(16))) WHERE uid IS NULL;
CREATE UNIQUE INDEX runs_uid_idx ON runs (uid);
CREATE TRIGGER runs_uid AFTER INSERT ON runs FOR EACH ROW WHEN NEW.uid IS NULL
BEGIN
    UPDATE runs SET uid = lower(hex(randomblob(16))) WHERE id = NEW.id;
END;
