-- Attendance as reported by checkin, keyed by pseudonym. One row per student per teaching session.
CREATE TABLE attendance (
    session_id uuid NOT NULL,
    student_pseudonym text NOT NULL,
    module_run_id text NOT NULL,
    session_starts_at timestamptz NOT NULL,
    recorded_at timestamptz NOT NULL,
    source text NOT NULL CHECK (source IN ('code', 'staff_correction')),
    event_id text NOT NULL,
    stored_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (session_id, student_pseudonym)
);

CREATE INDEX attendance_by_student ON attendance (student_pseudonym, session_starts_at);
