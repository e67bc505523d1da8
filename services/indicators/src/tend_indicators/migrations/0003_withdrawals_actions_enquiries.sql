-- Attendance staff withdrew in checkin (a mark in error, a check-in for someone who was not there): the latest
-- withdrawal per student and session, so that a mark and its withdrawal apply in either order. A mark recorded
-- before the withdrawal is removed (or never stored); a mark recorded after it (a later correction) stands. The
-- session still counts as an expected contact point.
CREATE TABLE attendance_withdrawals (
    session_id uuid NOT NULL,
    student_pseudonym text NOT NULL,
    module_run_id text NOT NULL,
    session_starts_at timestamptz NOT NULL,
    withdrawn_at timestamptz NOT NULL,
    event_id text NOT NULL,
    PRIMARY KEY (session_id, student_pseudonym)
);

-- Who wrote a line of a case's history (a member of staff's person id; NULL for lines indicators or notify wrote),
-- and the supportive enquiry a line is about (notify's request id).
ALTER TABLE case_entries ADD COLUMN person_id text;
ALTER TABLE case_entries ADD COLUMN enquiry_request_id text;

-- The outcome a member of staff gave when closing a case.
ALTER TABLE cases ADD COLUMN outcome text;

-- What staff recorded about cases, by the caller's request id (the idempotency key).
CREATE TABLE case_actions (
    request_id uuid PRIMARY KEY,
    case_id uuid NOT NULL REFERENCES cases,
    person_id text NOT NULL,
    kind text NOT NULL CHECK (kind IN ('note', 'contacted', 'referred', 'close')),
    note text NOT NULL,
    at timestamptz NOT NULL
);
CREATE INDEX case_actions_by_case ON case_actions (case_id);

-- Supportive enquiries sent for a case (notify's delivery status "sent"), and when the student first engaged again
-- after the send: set once, when engagement dated after the send arrives from any source.
CREATE TABLE case_enquiries (
    request_id text PRIMARY KEY,
    case_id uuid NOT NULL REFERENCES cases,
    student_pseudonym text NOT NULL,
    sent_at timestamptz NOT NULL,
    resumed_at timestamptz
);
-- Ingest asks, per batch, whether any enquiry still waits for engagement: this keeps that question cheap.
CREATE INDEX enquiries_awaiting_engagement ON case_enquiries (student_pseudonym) WHERE resumed_at IS NULL;
