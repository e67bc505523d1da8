-- The UID of the timetable event a session was imported from, so a re-import updates it instead of adding another.
ALTER TABLE teaching_sessions ADD COLUMN timetable_uid text UNIQUE
    CHECK (timetable_uid IS NULL OR (timetable_uid <> '' AND length(timetable_uid) <= 255));

-- One request of staff corrections (a tick list, a CSV or a single student). Its id is the caller's idempotency key,
-- so a retried request is applied once.
CREATE TABLE correction_batches (
    id uuid PRIMARY KEY,
    session_id uuid NOT NULL REFERENCES teaching_sessions (id),
    -- The opaque person id of the member of staff, from their signed assertion.
    corrected_by text NOT NULL,
    -- A CorrectionReason name: a fixed list, never free text.
    reason text NOT NULL,
    entries integer NOT NULL CHECK (entries > 0),
    created_at timestamptz NOT NULL DEFAULT now()
);

-- Each student's corrected attendance, by pseudonym only. The latest row for a student and session is what holds.
CREATE TABLE attendance_corrections (
    id uuid PRIMARY KEY,
    batch_id uuid NOT NULL REFERENCES correction_batches (id),
    session_id uuid NOT NULL REFERENCES teaching_sessions (id),
    student_pseudonym text NOT NULL CHECK (student_pseudonym <> ''),
    present boolean NOT NULL,
    corrected_at timestamptz NOT NULL
);

CREATE INDEX attendance_corrections_by_session ON attendance_corrections (session_id, student_pseudonym, corrected_at);
