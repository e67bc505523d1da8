-- Teaching sessions and the secret their rotating codes are derived from. No student data is kept here at all:
-- check-ins travel as events keyed by pseudonym.
CREATE TABLE teaching_sessions (
    id uuid PRIMARY KEY,
    -- An opaque id owned by identity.
    module_run_id text NOT NULL CHECK (module_run_id <> ''),
    room text NOT NULL CHECK (room <> '' AND length(room) <= 100),
    starts_at timestamptz NOT NULL,
    ends_at timestamptz NOT NULL CHECK (ends_at > starts_at),
    checkin_opens_at timestamptz NOT NULL,
    checkin_closes_at timestamptz NOT NULL CHECK (checkin_closes_at > checkin_opens_at),
    code_secret bytea NOT NULL CHECK (length(code_secret) = 32),
    -- The opaque person id of the member of staff who opened it, from their signed assertion.
    opened_by text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

-- Listing a module run's sessions in time order (presenter pages, later the timetable import).
CREATE INDEX teaching_sessions_by_module_run ON teaching_sessions (module_run_id, starts_at);
