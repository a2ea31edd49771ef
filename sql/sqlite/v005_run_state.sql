-- sqltrack schema, version 5 (SQLite): a run's code, packages and hardware as JSON text.
-- The same as sql/postgres/v005_run_state.sql.
-- Never edit this file once released: add a new vNNN_*.sql script instead.

ALTER TABLE runs ADD COLUMN code TEXT CHECK (code IS NULL OR json_valid(code));
ALTER TABLE runs ADD COLUMN packages TEXT CHECK (packages IS NULL OR json_valid(packages));
ALTER TABLE runs ADD COLUMN hardware TEXT CHECK (hardware IS NULL OR json_valid(hardware));
