-- sqltrack schema, version 5 (PostgreSQL): what made a run, where psql reaches it:
-- its code (git commit, branch, remote, dirty flag, diff, untracked files), its Python
-- packages, and its hardware. JSON documents, NULL until set (Run.set_code etc.).
-- Never edit this file once released: add a new vNNN_*.sql script instead.

ALTER TABLE runs ADD COLUMN code JSONB;
ALTER TABLE runs ADD COLUMN packages JSONB;
ALTER TABLE runs ADD COLUMN hardware JSONB;

COMMENT ON COLUMN runs.code IS 'git state: commit, branch, remote (no credentials), dirty, diff (<= 1 MB, else its sha256), untracked files';
COMMENT ON COLUMN runs.packages IS 'Python version and installed distributions {name: version}';
COMMENT ON COLUMN runs.hardware IS 'CPU model and count, memory, GPUs (name, memory) from nvidia-smi';
