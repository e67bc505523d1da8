-- The parts of an xAPI statement that identify no one, kept so that a source can read a statement back
-- (GET /xapi/statements?statementId=...): when it happened, and what its object was (an activity's id, or the id a
-- StatementRef points to, which is how a voiding statement names the statement it voids). Agents, names, results,
-- context and definitions are still not kept. Statements stored before this migration have these unset; their
-- engagement record (for students) still has the time and activity.
ALTER TABLE xapi_statements
    ADD COLUMN occurred_at timestamptz,
    ADD COLUMN object_type text,
    ADD COLUMN object_ref text;

CREATE INDEX xapi_statements_by_target ON xapi_statements (object_ref) WHERE object_type = 'StatementRef';
