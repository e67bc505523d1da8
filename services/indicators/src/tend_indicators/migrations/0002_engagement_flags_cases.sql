-- Engagement from every source, the reference data the rules need, and the flags and cases the rules raise.
-- Students are known by pseudonym only: no name, e-mail, account name or student number is ever stored here, and
-- no idempotency key is built from one.

-- Module runs as indicators knows them: where their rule settings and calendar come from, and their dates.
CREATE TABLE module_runs (
    module_run_id text PRIMARY KEY,
    institution_id text,
    programme_id text,
    starts_on date,
    ends_on date,
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- What the rules need to know about a student beside their activity.
CREATE TABLE students (
    student_pseudonym text PRIMARY KEY,
    institution_id text,
    programme_id text,
    sponsored_visa boolean NOT NULL DEFAULT false,
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- Registrations on module runs; unregistered_on is the first day the student was no longer registered.
CREATE TABLE enrolments (
    module_run_id text NOT NULL,
    student_pseudonym text NOT NULL,
    registered_on date,
    unregistered_on date,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (module_run_id, student_pseudonym)
);
CREATE INDEX enrolments_by_student ON enrolments (student_pseudonym);

-- Expected assignments: each has a deadline on a module run.
CREATE TABLE assignments (
    assignment_id text PRIMARY KEY,
    module_run_id text NOT NULL,
    due_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX assignments_by_run ON assignments (module_run_id);

-- Expected contact points from a timetable. Sessions seen only in attendance events count as well.
CREATE TABLE scheduled_sessions (
    session_id text PRIMARY KEY,
    module_run_id text NOT NULL,
    starts_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX scheduled_sessions_by_run ON scheduled_sessions (module_run_id, starts_at);

-- Which module run an activity (an xAPI course, say) belongs to.
CREATE TABLE activity_module_runs (
    activity_id text PRIMARY KEY,
    module_run_id text NOT NULL
);

-- One row per engagement fact from any ingest path. event_key is the idempotency key, a UUID derived from a statement
-- id, a source's event id, or a natural key built from the pseudonym and the source's own fields (never from an
-- identifier); fixed-size keys keep bulk loads fast.
CREATE TABLE engagement_events (
    event_key uuid PRIMARY KEY,
    student_pseudonym text NOT NULL,
    module_run_id text NOT NULL DEFAULT '',
    source text NOT NULL,
    activity text NOT NULL,
    occurred_at timestamptz NOT NULL,
    amount integer NOT NULL DEFAULT 1 CHECK (amount >= 0),
    object_ref text NOT NULL DEFAULT '',
    stored_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX engagement_by_student ON engagement_events (student_pseudonym, occurred_at);

-- Engagement per student, module run and day in the institution's time zone, kept up to date as engagement is
-- stored (engagement is only ever added), so that recomputing reads one row per active day, not every event.
-- sources is a bit mask of the sources active that day.
CREATE TABLE daily_activity (
    student_pseudonym text NOT NULL,
    module_run_id text NOT NULL,
    day date NOT NULL,
    amount bigint NOT NULL,
    sources integer NOT NULL,
    PRIMARY KEY (student_pseudonym, module_run_id, day)
);

-- xAPI statements received, by id, for idempotency and conflict detection (a fingerprint of the content, never the
-- content). The actor is kept only as a pseudonym, and only when identity knew them as a student.
CREATE TABLE xapi_statements (
    statement_id uuid PRIMARY KEY,
    fingerprint bytea NOT NULL,
    source text NOT NULL,
    student_pseudonym text,
    verb_id text NOT NULL,
    stored_at timestamptz NOT NULL DEFAULT now()
);

-- Cases: a student who may need a supportive word. At most one open case per student.
CREATE TABLE cases (
    case_id uuid PRIMARY KEY,
    student_pseudonym text NOT NULL,
    status text NOT NULL CHECK (status IN ('open', 'closed')),
    routed boolean NOT NULL DEFAULT false,
    opened_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL
);
CREATE UNIQUE INDEX one_open_case_per_student ON cases (student_pseudonym) WHERE status = 'open';

-- The staff a case is routed to, in identity's order (personal tutor first).
CREATE TABLE case_staff (
    case_id uuid NOT NULL REFERENCES cases,
    position integer NOT NULL,
    person_id text NOT NULL,
    relationship text NOT NULL,
    PRIMARY KEY (case_id, position)
);
CREATE INDEX case_staff_by_person ON case_staff (person_id);

-- Flags and their evidence. (student, module run, rule, episode) names one occurrence of a rule.
CREATE TABLE flags (
    flag_id uuid PRIMARY KEY,
    case_id uuid NOT NULL REFERENCES cases,
    student_pseudonym text NOT NULL,
    module_run_id text NOT NULL,
    rule text NOT NULL,
    episode text NOT NULL,
    status text NOT NULL CHECK (status IN ('raised', 'withdrawn')),
    observed_on date NOT NULL,
    window_starts_on date NOT NULL,
    window_ends_on date NOT NULL,
    sentence text NOT NULL,
    evidence jsonb NOT NULL,
    raised_at timestamptz NOT NULL,
    withdrawn_at timestamptz,
    withdrawn_reason text,
    UNIQUE (student_pseudonym, module_run_id, rule, episode)
);
CREATE INDEX flags_by_case ON flags (case_id);
CREATE INDEX raised_flags ON flags (student_pseudonym) WHERE status = 'raised';

-- A case's history, in plain language.
CREATE TABLE case_entries (
    entry_id bigserial PRIMARY KEY,
    case_id uuid NOT NULL REFERENCES cases,
    at timestamptz NOT NULL,
    flag_id uuid,
    text text NOT NULL
);
CREATE INDEX case_entries_by_case ON case_entries (case_id, entry_id);

-- A module run's cohort week by week, as aggregates, written by each recompute. Rows exist only for cohorts of at
-- least the minimum size: smaller cohorts are suppressed at the source.
CREATE TABLE cohort_weeks (
    module_run_id text NOT NULL,
    week_starts_on date NOT NULL,
    students integer NOT NULL,
    active_share double precision NOT NULL,
    lower_quartile double precision NOT NULL,
    median double precision NOT NULL,
    upper_quartile double precision NOT NULL,
    in_break boolean NOT NULL,
    PRIMARY KEY (module_run_id, week_starts_on)
);

-- A module run's cohort as a whole; figures are NULL when the cohort is below the minimum size.
CREATE TABLE cohort_summaries (
    module_run_id text PRIMARY KEY,
    as_of date NOT NULL,
    cohort_size integer NOT NULL,
    median_attendance_rate double precision,
    submission_rate double precision,
    flagged_share double precision
);

-- Indicators' own events (flags raised and withdrawn, cases updated), written in the same transaction as the change
-- and relayed like the shared outbox. Kept apart so that, while no consumer has bound a queue for them yet, they wait
-- here without holding up the audit records in the shared outbox.
CREATE TABLE case_event_outbox (LIKE outbox INCLUDING ALL);

-- When features and flags were last recomputed, and for which day.
CREATE TABLE recompute_runs (
    run_id bigserial PRIMARY KEY,
    as_of date NOT NULL,
    started_at timestamptz NOT NULL,
    finished_at timestamptz NOT NULL,
    students integer NOT NULL,
    raised integer NOT NULL,
    withdrawn integer NOT NULL
);
