-- Identity's first schema: the organisation, people and their relationships, sign-in sessions, signing keys and
-- pseudonyms. Organisation and people ids are UUIDs so that they can be handed to other services as opaque ids.

-- The organisation: faculty > school > programme, and modules run by a school in a given year and term.
CREATE TABLE faculties (
    id uuid PRIMARY KEY,
    code text NOT NULL UNIQUE,
    name text NOT NULL
);

CREATE TABLE schools (
    id uuid PRIMARY KEY,
    faculty_id uuid NOT NULL REFERENCES faculties (id),
    code text NOT NULL UNIQUE,
    name text NOT NULL
);
CREATE INDEX schools_faculty_idx ON schools (faculty_id);

CREATE TABLE programmes (
    id uuid PRIMARY KEY,
    school_id uuid NOT NULL REFERENCES schools (id),
    code text NOT NULL UNIQUE,
    title text NOT NULL
);
CREATE INDEX programmes_school_idx ON programmes (school_id);

CREATE TABLE modules (
    id uuid PRIMARY KEY,
    school_id uuid NOT NULL REFERENCES schools (id),
    code text NOT NULL UNIQUE,
    title text NOT NULL,
    -- Modules are withdrawn, not deleted: their runs keep their history (attendance, audit) meaningful.
    deleted_at timestamptz
);
CREATE INDEX modules_school_idx ON modules (school_id);

-- Which modules make up a programme's curriculum.
CREATE TABLE programme_modules (
    programme_id uuid NOT NULL REFERENCES programmes (id),
    module_id uuid NOT NULL REFERENCES modules (id),
    PRIMARY KEY (programme_id, module_id)
);

CREATE TABLE module_runs (
    id uuid PRIMARY KEY,
    module_id uuid NOT NULL REFERENCES modules (id),
    academic_year text NOT NULL CHECK (academic_year ~ '^[0-9]{4}/[0-9]{2}$'),
    term text NOT NULL,
    UNIQUE (module_id, academic_year, term)
);

-- People: students and staff. Only the fields the platform uses are kept (data minimisation).
CREATE TABLE people (
    id uuid PRIMARY KEY,
    kind text NOT NULL CHECK (kind IN ('student', 'staff')),
    username text NOT NULL UNIQUE,
    display_name text NOT NULL,
    given_name text NOT NULL,
    family_name text NOT NULL,
    email text NOT NULL,
    student_number text UNIQUE,
    -- Whether the student studies on a sponsored visa, which obliges the university to report attendance.
    sponsored_visa boolean NOT NULL DEFAULT false,
    -- The student's programme; staff have none.
    programme_id uuid REFERENCES programmes (id),
    -- An argon2 hash; NULL for a person who cannot sign in with a local password.
    password_hash text,
    created_at timestamptz NOT NULL DEFAULT now(),
    CHECK (kind = 'student' OR (student_number IS NULL AND NOT sponsored_visa AND programme_id IS NULL))
);

-- A role held within a scope, for example school_administrator of one school. Institution-wide roles have no
-- scope id.
CREATE TABLE role_assignments (
    person_id uuid NOT NULL REFERENCES people (id),
    role text NOT NULL,
    scope_kind text NOT NULL CHECK (scope_kind IN ('institution', 'faculty', 'school', 'programme', 'module_run')),
    scope_id uuid,
    created_at timestamptz NOT NULL DEFAULT now(),
    CHECK ((scope_kind = 'institution') = (scope_id IS NULL)),
    UNIQUE NULLS NOT DISTINCT (person_id, role, scope_kind, scope_id)
);

-- Relationships that grant access: a member of staff teaches or leads a module run, or is a student's personal
-- tutor. Each row names exactly one object, with a foreign key to it.
CREATE TABLE relationships (
    id bigserial PRIMARY KEY,
    person_id uuid NOT NULL REFERENCES people (id),
    relation text NOT NULL CHECK (relation IN ('teaches', 'leads', 'personal_tutor_of')),
    module_run_id uuid REFERENCES module_runs (id),
    student_id uuid REFERENCES people (id),
    created_at timestamptz NOT NULL DEFAULT now(),
    CHECK ((relation IN ('teaches', 'leads')) = (module_run_id IS NOT NULL)),
    CHECK ((relation = 'personal_tutor_of') = (student_id IS NOT NULL))
);
CREATE UNIQUE INDEX relationships_module_run_key ON relationships (person_id, relation, module_run_id)
    WHERE module_run_id IS NOT NULL;
CREATE UNIQUE INDEX relationships_student_key ON relationships (person_id, relation, student_id)
    WHERE student_id IS NOT NULL;
CREATE INDEX relationships_module_run_idx ON relationships (module_run_id) WHERE module_run_id IS NOT NULL;
CREATE INDEX relationships_student_idx ON relationships (student_id) WHERE student_id IS NOT NULL;

CREATE TABLE enrolments (
    student_id uuid NOT NULL REFERENCES people (id),
    module_run_id uuid NOT NULL REFERENCES module_runs (id),
    PRIMARY KEY (student_id, module_run_id)
);
CREATE INDEX enrolments_module_run_idx ON enrolments (module_run_id);

-- Sign-in sessions. Only a SHA-256 of the token is stored, so a copy of this table cannot be used to sign in.
CREATE TABLE sign_in_sessions (
    id bigserial PRIMARY KEY,
    token_sha256 bytea NOT NULL UNIQUE,
    person_id uuid NOT NULL REFERENCES people (id),
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    revoked_at timestamptz
);
CREATE INDEX sign_in_sessions_person_idx ON sign_in_sessions (person_id);

-- Ed25519 keys that sign tokens and assertions. At most one key is current (not retired) at a time; retired keys
-- are still published while tokens they signed may be valid.
CREATE TABLE signing_keys (
    kid text PRIMARY KEY,
    private_key bytea NOT NULL CHECK (length(private_key) = 32),
    created_at timestamptz NOT NULL DEFAULT now(),
    retired_at timestamptz
);
CREATE UNIQUE INDEX signing_keys_one_current ON signing_keys ((retired_at IS NULL)) WHERE retired_at IS NULL;

-- The secret that keys the pseudonyms of one academic year. Identity alone holds it.
CREATE TABLE pseudonym_keys (
    academic_year text PRIMARY KEY CHECK (academic_year ~ '^[0-9]{4}/[0-9]{2}$'),
    secret bytea NOT NULL CHECK (length(secret) >= 32),
    created_at timestamptz NOT NULL DEFAULT now()
);

-- Pseudonyms issued, so that identity can map one back to its person (for a permitted purpose) later.
CREATE TABLE pseudonyms (
    pseudonym text PRIMARY KEY,
    person_id uuid NOT NULL REFERENCES people (id),
    academic_year text NOT NULL REFERENCES pseudonym_keys (academic_year),
    created_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (person_id, academic_year)
);
