-- sqltrack schema, version 11 (SQLite): the owner columns of sql/postgres/v011_owners.sql,
-- so that queries read the same columns on both engines. SQLite has no roles: the
-- database file's mode is its permission, and these columns stay NULL.
-- Never edit this file once released: add a new vNNN_*.sql script instead.

ALTER TABLE experiments ADD COLUMN created_by TEXT;
ALTER TABLE experiments ADD COLUMN deleted_by TEXT;
ALTER TABLE runs ADD COLUMN created_by TEXT;
ALTER TABLE runs ADD COLUMN deleted_by TEXT;
ALTER TABLE artifacts ADD COLUMN created_by TEXT;
ALTER TABLE samples ADD COLUMN created_by TEXT;
