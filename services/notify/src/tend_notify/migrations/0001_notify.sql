-- Notify: institutions and their templates, enquiry requests, outgoing messages with their delivery attempts, and
-- follow-ups. No address, no name and no engagement data is stored; a message's text is kept only while the
-- message may still need sending.

-- Who messages are from, where students find support, and the quiet hours in the institution's time zone.
CREATE TABLE institutions (
    id text PRIMARY KEY,
    name text NOT NULL,
    from_address text NOT NULL,
    support_name text NOT NULL,
    support_url text NOT NULL,
    time_zone text NOT NULL,
    quiet_hours_start time NOT NULL,
    quiet_hours_end time NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- Subject and plain-text body with placeholders, and the HTML layout the body is set in.
CREATE TABLE templates (
    institution_id text NOT NULL REFERENCES institutions (id),
    name text NOT NULL,
    kind text NOT NULL CHECK (kind IN ('enquiry', 'reminder', 'escalation')),
    subject text NOT NULL,
    body text NOT NULL,
    html_layout text NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (institution_id, name)
);

-- Each accepted request id, with a digest of what was asked, so a repeat is recognised and a reused id refused.
CREATE TABLE enquiry_requests (
    request_id uuid PRIMARY KEY,
    fingerprint text NOT NULL,
    sender_person_id text NOT NULL,
    student_pseudonym text NOT NULL,
    case_id text NOT NULL,
    requested_at timestamptz NOT NULL
);
CREATE INDEX enquiry_requests_sender ON enquiry_requests (sender_person_id, requested_at);

-- One row per e-mail to send, keyed by its request id (the idempotency key, and the source of its Message-ID).
-- Enquiries go to a student (by pseudonym); reminders and escalations are digests to a member of staff.
CREATE TABLE messages (
    request_id uuid PRIMARY KEY,
    kind text NOT NULL CHECK (kind IN ('enquiry', 'reminder', 'escalation')),
    institution_id text NOT NULL REFERENCES institutions (id),
    student_pseudonym text,
    recipient_person_id text,
    sender_person_id text,
    case_id text NOT NULL DEFAULT '',
    template_name text NOT NULL,
    -- With placeholders still to fill; set to NULL once the message no longer needs sending.
    subject text,
    body text,
    status text NOT NULL CHECK (status IN
        ('queued', 'sending', 'deferred', 'sent', 'bounced', 'failed', 'delivery_uncertain')),
    reason text NOT NULL DEFAULT '',
    -- Tries include those that never reached the mail server (identity unavailable, say); they pace the back-off.
    tries integer NOT NULL DEFAULT 0,
    smtp_attempts integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    CHECK ((kind = 'enquiry') = (student_pseudonym IS NOT NULL)),
    CHECK ((kind = 'enquiry') <> (recipient_person_id IS NOT NULL))
);
CREATE INDEX messages_due ON messages (next_attempt_at) WHERE status IN ('queued', 'deferred');

-- Each SMTP transaction, recorded before it starts and finished right after it. `phase` says how far it got:
-- 'started' (nothing the server could accept yet) or 'data_sent' (the whole message was handed over, the server's
-- answer not yet read). An attempt left without an outcome by a process that stopped is resolved by that phase:
-- 'started' is safe to retry, 'data_sent' is delivery uncertain. `owner_key` is the advisory lock the sending process
-- holds while it lives.
CREATE TABLE delivery_attempts (
    request_id uuid NOT NULL REFERENCES messages (request_id),
    attempt integer NOT NULL,
    owner_key bigint NOT NULL,
    phase text NOT NULL CHECK (phase IN ('started', 'data_sent')),
    started_at timestamptz NOT NULL DEFAULT now(),
    outcome text CHECK (outcome IN ('sent', 'deferred', 'bounced', 'failed', 'interrupted', 'uncertain')),
    smtp_code integer,
    enhanced_code text,
    finished_at timestamptz,
    PRIMARY KEY (request_id, attempt)
);
CREATE INDEX delivery_attempts_unfinished ON delivery_attempts (owner_key) WHERE outcome IS NULL;

-- Sent enquiries awaiting an answer, for reminders and escalation. Pseudonyms and person ids only.
CREATE TABLE follow_ups (
    request_id uuid PRIMARY KEY REFERENCES messages (request_id),
    institution_id text NOT NULL REFERENCES institutions (id),
    student_pseudonym text NOT NULL,
    case_id text NOT NULL,
    sender_person_id text NOT NULL,
    sent_at timestamptz NOT NULL,
    answered_at timestamptz,
    reminded_at timestamptz,
    escalated_at timestamptz
);
CREATE INDEX follow_ups_open ON follow_ups (sent_at) WHERE answered_at IS NULL AND escalated_at IS NULL;

-- The default institution and its templates; institutions load their own with `tend-notify load-templates`.
INSERT INTO institutions (id, name, from_address, support_name, support_url, time_zone, quiet_hours_start,
    quiet_hours_end)
VALUES ('default', 'the University', 'tend@example.ac.uk', 'Student Support and Wellbeing',
    'https://www.example.ac.uk/support', 'Europe/London', '21:00', '08:00');

INSERT INTO templates (institution_id, name, kind, subject, body, html_layout) VALUES
('default', 'supportive_enquiry', 'enquiry', $t$How are things going, {student_name}?$t$,
$t$Dear {student_name},

I hope you are well. I wanted to get in touch to ask how things are going for you at the moment.

If anything is making your studies harder, whether it is your course, money, health, or something else, I would be glad to help, or to put you in touch with someone who can. You are not in any trouble, and you do not need to explain anything unless you want to.

You can simply reply to this e-mail, and we can find a time to talk. If you would rather speak to someone else, {support_name} is there for every student: {support_url}

Best wishes,
{sender_name}
{sender_email}$t$,
$t$<!DOCTYPE html>
<html lang="en">
<head><meta charset="utf-8"><title>{institution_name}</title></head>
<body style="font-family: Arial, sans-serif; font-size: 16px; line-height: 1.5; color: #1b1b1b; max-width: 40em;">
{content}
<hr>
<p style="font-size: 14px; color: #4a4a4a;">Support for every student at {institution_name}: <a href="{support_url}">{support_name}</a></p>
</body>
</html>$t$),
('default', 'follow_up_reminder', 'reminder', $t$Follow-up: {count_words} of your students may need a word$t$,
$t$Dear {recipient_name},

You offered help to {count_words} of your students by e-mail, and they have not replied yet. A short follow-up, or a word after class, often makes the difference.

See who, and record any replies, in Tend: {portal_url}

If you are worried about a student, {support_name} can advise: {support_url}$t$,
$t$<!DOCTYPE html>
<html lang="en">
<head><meta charset="utf-8"><title>{institution_name}</title></head>
<body style="font-family: Arial, sans-serif; font-size: 16px; line-height: 1.5; color: #1b1b1b; max-width: 40em;">
{content}
</body>
</html>$t$),
('default', 'follow_up_escalation', 'escalation', $t$Follow-up: {count_words} of your students may need a further attempt to reach them$t$,
$t$Dear {recipient_name},

Some time ago a member of staff offered help by e-mail to {count_words} of the students you are responsible for, and there has been no reply. The policy asks for a further attempt to reach them, which may include a phone call or a word with {support_name}.

See who, in Tend: {portal_url}

{support_name}: {support_url}$t$,
$t$<!DOCTYPE html>
<html lang="en">
<head><meta charset="utf-8"><title>{institution_name}</title></head>
<body style="font-family: Arial, sans-serif; font-size: 16px; line-height: 1.5; color: #1b1b1b; max-width: 40em;">
{content}
</body>
</html>$t$);
