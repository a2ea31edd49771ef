-- sqltrack schema, version 11 (PostgreSQL): one server for a whole lab. Every experiment,
-- run, artifact and sample records the role that made it (created_by, set by the server:
-- what a client sends is ignored), and a deletion the role that deleted (deleted_by).
-- Row-level security lets every role with SELECT read every row, and lets a role change
-- or delete only the rows of its own runs and experiments; a member of the group role
-- sqltrack_admin may change anything. The schema's owner (who applies these scripts) is
-- not subject to the policies (they are not forced). Rows made before this script belong
-- to the role that applied it. `sqltrack grant` gives roles their privileges.
-- Never edit this file once released: add a new vNNN_*.sql script instead.

ALTER TABLE experiments ADD COLUMN created_by TEXT NOT NULL DEFAULT current_user;
ALTER TABLE experiments ADD COLUMN deleted_by TEXT;
ALTER TABLE runs ADD COLUMN created_by TEXT NOT NULL DEFAULT current_user;
ALTER TABLE runs ADD COLUMN deleted_by TEXT;
ALTER TABLE artifacts ADD COLUMN created_by TEXT NOT NULL DEFAULT current_user;
ALTER TABLE samples ADD COLUMN created_by TEXT NOT NULL DEFAULT current_user;
CREATE INDEX runs_created_by_idx ON runs (created_by);

-- Whether the current role is a member of sqltrack_admin (false while that role does not
-- exist: `sqltrack grant` makes it).
CREATE FUNCTION sqltrack_is_admin() RETURNS BOOLEAN LANGUAGE sql STABLE
    SET search_path FROM CURRENT AS $$
    SELECT EXISTS (
        SELECT 1 FROM pg_catalog.pg_roles
        WHERE rolname = 'sqltrack_admin' AND pg_catalog.pg_has_role(current_user, oid, 'MEMBER')
    )
$$;

-- Whether the current role may change a row that ``owner`` created: its own, an admin,
-- or the tables' owner (not subject to the policies). What sqltrack's bulk commands ask
-- before they change rows, so that they can say which they left alone.
CREATE FUNCTION sqltrack_may_change(owner TEXT) RETURNS BOOLEAN LANGUAGE sql STABLE
    SET search_path FROM CURRENT AS $$
    SELECT coalesce(owner = current_user, false) OR sqltrack_is_admin() OR EXISTS (
        SELECT 1 FROM pg_catalog.pg_class
        WHERE oid = to_regclass('runs') AND pg_catalog.pg_has_role(current_user, relowner, 'USAGE')
    )
$$;

-- created_by is the role that inserted the row, and stays so; deleted_by follows
-- time_deleted (where the table has one).
CREATE FUNCTION sqltrack_stamp_owner() RETURNS TRIGGER LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        NEW.created_by := current_user;
    ELSE
        NEW.created_by := OLD.created_by;
    END IF;
    RETURN NEW;
END
$$;

CREATE FUNCTION sqltrack_stamp_deleter() RETURNS TRIGGER LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.time_deleted IS NULL THEN
        NEW.deleted_by := NULL;
    ELSIF TG_OP = 'INSERT' OR OLD.time_deleted IS NULL THEN
        NEW.deleted_by := current_user;
    ELSE
        NEW.deleted_by := OLD.deleted_by;
    END IF;
    RETURN NEW;
END
$$;

CREATE TRIGGER sqltrack_owner BEFORE INSERT OR UPDATE ON experiments
    FOR EACH ROW EXECUTE FUNCTION sqltrack_stamp_owner();
CREATE TRIGGER sqltrack_owner BEFORE INSERT OR UPDATE ON runs
    FOR EACH ROW EXECUTE FUNCTION sqltrack_stamp_owner();
CREATE TRIGGER sqltrack_owner BEFORE INSERT OR UPDATE ON artifacts
    FOR EACH ROW EXECUTE FUNCTION sqltrack_stamp_owner();
CREATE TRIGGER sqltrack_owner BEFORE INSERT OR UPDATE ON samples
    FOR EACH ROW EXECUTE FUNCTION sqltrack_stamp_owner();
CREATE TRIGGER sqltrack_deleter BEFORE INSERT OR UPDATE ON experiments
    FOR EACH ROW EXECUTE FUNCTION sqltrack_stamp_deleter();
CREATE TRIGGER sqltrack_deleter BEFORE INSERT OR UPDATE ON runs
    FOR EACH ROW EXECUTE FUNCTION sqltrack_stamp_deleter();

-- Rows of their own: experiments, runs, artifacts (by created_by).
ALTER TABLE experiments ENABLE ROW LEVEL SECURITY;
CREATE POLICY sqltrack_read ON experiments FOR SELECT USING (true);
CREATE POLICY sqltrack_insert ON experiments FOR INSERT WITH CHECK (true);
CREATE POLICY sqltrack_update ON experiments FOR UPDATE
    USING (created_by = current_user OR sqltrack_is_admin());
CREATE POLICY sqltrack_delete ON experiments FOR DELETE
    USING (created_by = current_user OR sqltrack_is_admin());

ALTER TABLE runs ENABLE ROW LEVEL SECURITY;
CREATE POLICY sqltrack_read ON runs FOR SELECT USING (true);
CREATE POLICY sqltrack_insert ON runs FOR INSERT WITH CHECK (true);
CREATE POLICY sqltrack_update ON runs FOR UPDATE
    USING (created_by = current_user OR sqltrack_is_admin());
CREATE POLICY sqltrack_delete ON runs FOR DELETE
    USING (created_by = current_user OR sqltrack_is_admin());

ALTER TABLE artifacts ENABLE ROW LEVEL SECURITY;
CREATE POLICY sqltrack_read ON artifacts FOR SELECT USING (true);
CREATE POLICY sqltrack_insert ON artifacts FOR INSERT WITH CHECK (
    run_id IS NULL
    OR EXISTS (SELECT 1 FROM runs r WHERE r.id = run_id AND r.created_by = current_user)
    OR sqltrack_is_admin());
CREATE POLICY sqltrack_update ON artifacts FOR UPDATE
    USING (created_by = current_user OR sqltrack_is_admin());
CREATE POLICY sqltrack_delete ON artifacts FOR DELETE
    USING (created_by = current_user OR sqltrack_is_admin());

-- Rows of a run: the run's owner writes them.
-- (Functions that read tables keep the search_path of setup: a caller's own would let
-- a table of its own named runs stand in for sqltrack's.)
-- The two tables of metric values take bulk writes (COPY), which PostgreSQL refuses
-- into a table with row-level security; so the same rule is kept there by triggers
-- that check each statement's rows at once (its transition tables): a statement that
-- writes a row of another role's run fails as a whole.
CREATE FUNCTION sqltrack_refuse_others() RETURNS VOID LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'new row violates row-level security policy: role % may write only to '
        'the values of its own runs', current_user USING ERRCODE = '42501';
END
$$;

CREATE FUNCTION sqltrack_check_inserted() RETURNS TRIGGER LANGUAGE plpgsql
    SET search_path FROM CURRENT AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM sqltrack_new n JOIN runs r ON r.id = n.run_id
               WHERE r.created_by <> current_user) AND NOT sqltrack_may_change(NULL) THEN
        PERFORM sqltrack_refuse_others();
    END IF;
    RETURN NULL;
END
$$;

CREATE FUNCTION sqltrack_check_updated() RETURNS TRIGGER LANGUAGE plpgsql
    SET search_path FROM CURRENT AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM sqltrack_new n JOIN runs r ON r.id = n.run_id
               WHERE r.created_by <> current_user
               UNION ALL
               SELECT 1 FROM sqltrack_old o JOIN runs r ON r.id = o.run_id
               WHERE r.created_by <> current_user) AND NOT sqltrack_may_change(NULL) THEN
        PERFORM sqltrack_refuse_others();
    END IF;
    RETURN NULL;
END
$$;

CREATE FUNCTION sqltrack_check_deleted() RETURNS TRIGGER LANGUAGE plpgsql
    SET search_path FROM CURRENT AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM sqltrack_old o JOIN runs r ON r.id = o.run_id
               WHERE r.created_by <> current_user) AND NOT sqltrack_may_change(NULL) THEN
        PERFORM sqltrack_refuse_others();
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER sqltrack_inserted AFTER INSERT ON metrics REFERENCING NEW TABLE AS sqltrack_new
    FOR EACH STATEMENT EXECUTE FUNCTION sqltrack_check_inserted();
CREATE TRIGGER sqltrack_updated AFTER UPDATE ON metrics
    REFERENCING OLD TABLE AS sqltrack_old NEW TABLE AS sqltrack_new
    FOR EACH STATEMENT EXECUTE FUNCTION sqltrack_check_updated();
CREATE TRIGGER sqltrack_deleted AFTER DELETE ON metrics REFERENCING OLD TABLE AS sqltrack_old
    FOR EACH STATEMENT EXECUTE FUNCTION sqltrack_check_deleted();
CREATE TRIGGER sqltrack_inserted AFTER INSERT ON metric_points
    REFERENCING NEW TABLE AS sqltrack_new
    FOR EACH STATEMENT EXECUTE FUNCTION sqltrack_check_inserted();
CREATE TRIGGER sqltrack_updated AFTER UPDATE ON metric_points
    REFERENCING OLD TABLE AS sqltrack_old NEW TABLE AS sqltrack_new
    FOR EACH STATEMENT EXECUTE FUNCTION sqltrack_check_updated();
CREATE TRIGGER sqltrack_deleted AFTER DELETE ON metric_points
    REFERENCING OLD TABLE AS sqltrack_old
    FOR EACH STATEMENT EXECUTE FUNCTION sqltrack_check_deleted();

ALTER TABLE run_summaries ENABLE ROW LEVEL SECURITY;
CREATE POLICY sqltrack_read ON run_summaries FOR SELECT USING (true);
CREATE POLICY sqltrack_write ON run_summaries FOR ALL
    USING (EXISTS (SELECT 1 FROM runs r WHERE r.id = run_id AND r.created_by = current_user)
        OR sqltrack_is_admin())
    WITH CHECK (EXISTS (SELECT 1 FROM runs r WHERE r.id = run_id AND r.created_by = current_user)
        OR sqltrack_is_admin());

ALTER TABLE system_metrics ENABLE ROW LEVEL SECURITY;
CREATE POLICY sqltrack_read ON system_metrics FOR SELECT USING (true);
CREATE POLICY sqltrack_write ON system_metrics FOR ALL
    USING (EXISTS (SELECT 1 FROM runs r WHERE r.id = run_id AND r.created_by = current_user)
        OR sqltrack_is_admin())
    WITH CHECK (EXISTS (SELECT 1 FROM runs r WHERE r.id = run_id AND r.created_by = current_user)
        OR sqltrack_is_admin());

ALTER TABLE samples ENABLE ROW LEVEL SECURITY;
CREATE POLICY sqltrack_read ON samples FOR SELECT USING (true);
CREATE POLICY sqltrack_write ON samples FOR ALL
    USING (EXISTS (SELECT 1 FROM runs r WHERE r.id = run_id AND r.created_by = current_user)
        OR sqltrack_is_admin())
    WITH CHECK (EXISTS (SELECT 1 FROM runs r WHERE r.id = run_id AND r.created_by = current_user)
        OR sqltrack_is_admin());

ALTER TABLE artifact_uses ENABLE ROW LEVEL SECURITY;
CREATE POLICY sqltrack_read ON artifact_uses FOR SELECT USING (true);
CREATE POLICY sqltrack_write ON artifact_uses FOR ALL
    USING (EXISTS (SELECT 1 FROM runs r WHERE r.id = run_id AND r.created_by = current_user)
        OR sqltrack_is_admin())
    WITH CHECK (EXISTS (SELECT 1 FROM runs r WHERE r.id = run_id AND r.created_by = current_user)
        OR sqltrack_is_admin());

ALTER TABLE run_links ENABLE ROW LEVEL SECURITY;
CREATE POLICY sqltrack_read ON run_links FOR SELECT USING (true);
CREATE POLICY sqltrack_write ON run_links FOR ALL
    USING (EXISTS (SELECT 1 FROM runs r WHERE r.id = from_id AND r.created_by = current_user)
        OR sqltrack_is_admin())
    WITH CHECK (EXISTS (SELECT 1 FROM runs r WHERE r.id = from_id AND r.created_by = current_user)
        OR sqltrack_is_admin());

ALTER TABLE experiment_links ENABLE ROW LEVEL SECURITY;
CREATE POLICY sqltrack_read ON experiment_links FOR SELECT USING (true);
CREATE POLICY sqltrack_write ON experiment_links FOR ALL
    USING (EXISTS (SELECT 1 FROM experiments e WHERE e.id = from_id AND e.created_by = current_user)
        OR sqltrack_is_admin())
    WITH CHECK (EXISTS (SELECT 1 FROM experiments e WHERE e.id = from_id
        AND e.created_by = current_user) OR sqltrack_is_admin());

-- Shared by everyone: a writer adds names and conditionings; only an admin changes them.
ALTER TABLE metric_names ENABLE ROW LEVEL SECURITY;
CREATE POLICY sqltrack_read ON metric_names FOR SELECT USING (true);
CREATE POLICY sqltrack_insert ON metric_names FOR INSERT WITH CHECK (true);
CREATE POLICY sqltrack_admin ON metric_names FOR ALL USING (sqltrack_is_admin());

ALTER TABLE conditionings ENABLE ROW LEVEL SECURITY;
CREATE POLICY sqltrack_read ON conditionings FOR SELECT USING (true);
CREATE POLICY sqltrack_insert ON conditionings FOR INSERT WITH CHECK (true);
CREATE POLICY sqltrack_admin ON conditionings FOR ALL USING (sqltrack_is_admin());

COMMENT ON COLUMN experiments.created_by IS 'The database role that created it (set by the server)';
COMMENT ON COLUMN experiments.deleted_by IS 'The role that deleted it (moved it to the trash); NULL while not deleted';
COMMENT ON COLUMN runs.created_by IS 'The database role that created it (set by the server): only it, or a member of sqltrack_admin, may change the run and its rows';
COMMENT ON COLUMN runs.deleted_by IS 'The role that deleted it (moved it to the trash); NULL while not deleted';
COMMENT ON COLUMN artifacts.created_by IS 'The database role that logged it (set by the server)';
COMMENT ON COLUMN samples.created_by IS 'The database role that logged it (set by the server)';
