-- The access policy's relationships and what sits around them: students' year of study (for level tutors), level
-- tutors, identifiers of students in source systems, withdrawn enrolments, server-side preferences, break-glass
-- grants and OpenID Connect sign-ins in progress.

-- A student's year of study; level tutors look after one level of one programme.
ALTER TABLE people ADD COLUMN level smallint CHECK (level BETWEEN 1 AND 8);
ALTER TABLE people ADD CONSTRAINT people_level_only_for_students CHECK (kind = 'student' OR level IS NULL);
CREATE INDEX people_programme_level_idx ON people (programme_id, level) WHERE kind = 'student';
CREATE INDEX people_sponsored_idx ON people (id) WHERE kind = 'student' AND sponsored_visa;
-- Source systems give e-mail addresses in any case.
CREATE INDEX people_email_lower_idx ON people (lower(email));

CREATE TABLE level_tutors (
    person_id uuid NOT NULL REFERENCES people (id),
    programme_id uuid NOT NULL REFERENCES programmes (id),
    level smallint NOT NULL CHECK (level BETWEEN 1 AND 8),
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (person_id, programme_id, level)
);
CREATE INDEX level_tutors_programme_idx ON level_tutors (programme_id, level);

-- Identifiers of a person in systems that are not Tend's own: OULAD's id_student ("oulad"), an OpenID provider's
-- subject ("oidc:" and the issuer). Kept only to map what those systems send to the person.
CREATE TABLE external_ids (
    source text NOT NULL,
    external_id text NOT NULL,
    person_id uuid NOT NULL REFERENCES people (id),
    PRIMARY KEY (source, external_id)
);
CREATE INDEX external_ids_person_idx ON external_ids (person_id);

-- A student who left a module run stays enrolled (for history) but is no longer one of its students.
ALTER TABLE enrolments ADD COLUMN withdrawn boolean NOT NULL DEFAULT false;
CREATE INDEX enrolments_student_idx ON enrolments (student_id);

CREATE INDEX relationships_person_idx ON relationships (person_id, relation);
CREATE INDEX role_assignments_scope_idx ON role_assignments (role, scope_kind, scope_id);

-- Server-side preferences: a fresh browser never falls back to a page with personal data.
CREATE TABLE preferences (
    person_id uuid PRIMARY KEY REFERENCES people (id),
    landing_page text NOT NULL CHECK (landing_page IN ('actions', 'overview')),
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- Emergency access to one student outside the staff member's scope, for a short time, with a written reason.
CREATE TABLE break_glass_grants (
    id uuid PRIMARY KEY,
    person_id uuid NOT NULL REFERENCES people (id),
    student_id uuid NOT NULL REFERENCES people (id),
    reason text NOT NULL CHECK (length(reason) > 0),
    granted_at timestamptz NOT NULL,
    expires_at timestamptz NOT NULL,
    CHECK (expires_at > granted_at)
);
CREATE INDEX break_glass_grants_active_idx ON break_glass_grants (person_id, student_id, expires_at);
CREATE INDEX break_glass_grants_granted_idx ON break_glass_grants (granted_at);

-- OpenID Connect sign-ins started and not yet finished. Only a SHA-256 of the state is stored; rows expire.
CREATE TABLE oidc_sign_ins (
    state_sha256 bytea PRIMARY KEY,
    nonce text NOT NULL,
    code_verifier text NOT NULL,
    redirect_uri text NOT NULL,
    expires_at timestamptz NOT NULL
);
