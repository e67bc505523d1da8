-- Follow-ups stopped by the case (indicators' CaseUpdated): the student engaged again, or the case was closed.
-- A stopped follow-up sends no reminder and no escalation; the reason is kept so the enquiry's status can say why.
ALTER TABLE follow_ups
    ADD COLUMN stopped_at timestamptz,
    ADD COLUMN stopped_reason text CHECK (stopped_reason IN ('engagement_resumed', 'case_closed')),
    ADD CHECK ((stopped_at IS NULL) = (stopped_reason IS NULL));

DROP INDEX follow_ups_open;
CREATE INDEX follow_ups_open ON follow_ups (sent_at)
    WHERE answered_at IS NULL AND escalated_at IS NULL AND stopped_at IS NULL;
CREATE INDEX follow_ups_case ON follow_ups (case_id) WHERE answered_at IS NULL AND stopped_at IS NULL;

-- Cases indicators closed. An enquiry of such a case still in notify's hands when the case closed (deferred, say)
-- starts its follow-up already stopped once it is sent. A case id only; nothing about the student.
CREATE TABLE closed_cases (
    case_id text PRIMARY KEY,
    closed_at timestamptz NOT NULL
);
