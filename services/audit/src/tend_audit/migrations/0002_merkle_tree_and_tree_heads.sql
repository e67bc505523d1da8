-- The Merkle tree over the log (RFC 9162), signed tree heads, and checkpoints left by pruning.

-- Every interior node of the tree (level >= 1) as it completes: the root of the perfect subtree over leaves
-- [idx * 2^level, (idx + 1) * 2^level). Leaf hashes (level 0) stay in audit_log.leaf_hash while their records exist
-- and are copied here when pruning removes the records, so proofs over the whole tree can still be served.
CREATE TABLE merkle_nodes (
    level smallint NOT NULL CHECK (level >= 0),
    idx bigint NOT NULL CHECK (idx >= 0),
    hash bytea NOT NULL,
    PRIMARY KEY (level, idx)
);

-- The head also keeps the tree's frontier (the perfect subtrees of the current size, largest first) and its root.
ALTER TABLE audit_log_head
    ADD COLUMN frontier bytea[] NOT NULL DEFAULT '{}',
    ADD COLUMN root_hash bytea NOT NULL DEFAULT sha256(''::bytea);

-- Audit's Ed25519 keys. The private key is kept here only when the service generated it (no signing key setting);
-- a key from the setting has its public half recorded so that tree heads it signed stay verifiable after rotation.
CREATE TABLE signing_keys (
    key_id text PRIMARY KEY,
    public_key bytea NOT NULL,
    private_key bytea,
    created_at timestamptz NOT NULL DEFAULT now()
);

-- Signed tree heads: the tree's size and root at a moment, signed by audit's key (see tend_audit.signing).
CREATE TABLE signed_tree_heads (
    tree_size bigint PRIMARY KEY,
    root_hash bytea NOT NULL,
    signed_at timestamptz NOT NULL,
    key_id text NOT NULL REFERENCES signing_keys (key_id),
    signature bytea NOT NULL
);

-- What pruning removed: the tree head and chain hash over records 1..tree_size and that tree's frontier, signed, so
-- that verification starts from here once the records themselves are gone.
CREATE TABLE audit_checkpoints (
    tree_size bigint PRIMARY KEY,
    root_hash bytea NOT NULL,
    chain_hash bytea NOT NULL,
    frontier bytea[] NOT NULL,
    -- Every record pruned under this checkpoint occurred before this moment.
    pruned_before timestamptz NOT NULL,
    signed_at timestamptz NOT NULL,
    key_id text NOT NULL REFERENCES signing_keys (key_id),
    signature bytea NOT NULL
);

-- The queries the data protection officer runs: refusals, break-glass grants, module changes.
CREATE INDEX audit_log_refused ON audit_log (seq) WHERE outcome = 'refused';
CREATE INDEX audit_log_by_action ON audit_log (action text_pattern_ops, seq);
