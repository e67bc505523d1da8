-- The audit log. Each record keeps the event exactly as received (event_body, a deterministic protobuf
-- serialisation) and a chain hash over every record before it, so that a changed, removed, inserted or reordered
-- record is found by recomputing the chain. The other columns are copies of the body's fields, for queries; the
-- verifier checks they still match the body.
CREATE TABLE audit_log (
    seq bigint PRIMARY KEY,
    event_id text NOT NULL UNIQUE,
    event_body bytea NOT NULL,
    occurred_at timestamptz NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now(),
    actor_kind text NOT NULL,
    actor_id text NOT NULL,
    action text NOT NULL,
    subject_kind text NOT NULL,
    subject_id text NOT NULL,
    purpose text NOT NULL,
    outcome text NOT NULL,
    origin_service text NOT NULL,
    request_id text NOT NULL,
    leaf_hash bytea NOT NULL,
    chain_hash bytea NOT NULL
);

CREATE INDEX audit_log_by_subject ON audit_log (subject_kind, subject_id, seq);
CREATE INDEX audit_log_by_actor ON audit_log (actor_kind, actor_id, seq);

-- The head of the chain, one row, locked by each append so records are numbered and linked one at a time.
CREATE TABLE audit_log_head (
    id smallint PRIMARY KEY CHECK (id = 1),
    seq bigint NOT NULL,
    chain_hash bytea NOT NULL
);

INSERT INTO audit_log_head (id, seq, chain_hash) VALUES (1, 0, '\x0000000000000000000000000000000000000000000000000000000000000000');
