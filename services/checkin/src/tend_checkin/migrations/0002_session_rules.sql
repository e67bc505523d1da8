-- Optional campus network ranges a session accepts check-ins from (empty: any network).
ALTER TABLE teaching_sessions ADD COLUMN allowed_networks cidr[] NOT NULL DEFAULT '{}';

-- Finding the class before a session in the same room, to name a back-to-back mix-up of codes.
CREATE INDEX teaching_sessions_by_room ON teaching_sessions (lower(room), starts_at);
