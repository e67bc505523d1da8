-- Identity keeps the organisation facts that access decisions read (relationships, roles, enrolments, the
-- organisation, break-glass grants, pseudonyms) in a cache; every change to them tells each identity process to
-- drop its cache. pg_notify is sent on commit only, so a rolled-back change drops nothing, and duplicates within one
-- transaction are sent once.
CREATE FUNCTION notify_facts_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('tend_identity_facts', '');
    RETURN NULL;
END;
$$;

CREATE TRIGGER facts_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON faculties
    FOR EACH STATEMENT EXECUTE FUNCTION notify_facts_changed();
CREATE TRIGGER facts_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON schools
    FOR EACH STATEMENT EXECUTE FUNCTION notify_facts_changed();
CREATE TRIGGER facts_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON programmes
    FOR EACH STATEMENT EXECUTE FUNCTION notify_facts_changed();
CREATE TRIGGER facts_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON modules
    FOR EACH STATEMENT EXECUTE FUNCTION notify_facts_changed();
CREATE TRIGGER facts_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON module_runs
    FOR EACH STATEMENT EXECUTE FUNCTION notify_facts_changed();
CREATE TRIGGER facts_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON people
    FOR EACH STATEMENT EXECUTE FUNCTION notify_facts_changed();
CREATE TRIGGER facts_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON role_assignments
    FOR EACH STATEMENT EXECUTE FUNCTION notify_facts_changed();
CREATE TRIGGER facts_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON relationships
    FOR EACH STATEMENT EXECUTE FUNCTION notify_facts_changed();
CREATE TRIGGER facts_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON level_tutors
    FOR EACH STATEMENT EXECUTE FUNCTION notify_facts_changed();
CREATE TRIGGER facts_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON enrolments
    FOR EACH STATEMENT EXECUTE FUNCTION notify_facts_changed();
CREATE TRIGGER facts_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON break_glass_grants
    FOR EACH STATEMENT EXECUTE FUNCTION notify_facts_changed();
-- A new pseudonym changes no answer already cached (only known pseudonyms are cached); a changed or removed one does.
CREATE TRIGGER facts_changed AFTER UPDATE OR DELETE OR TRUNCATE ON pseudonyms
    FOR EACH STATEMENT EXECUTE FUNCTION notify_facts_changed();
