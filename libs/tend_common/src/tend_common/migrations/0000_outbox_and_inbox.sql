-- Plumbing tables every service gets before its own migrations.

-- Events written in the same transaction as the change they describe, relayed to RabbitMQ with publisher confirms
-- and deleted once confirmed.
CREATE TABLE IF NOT EXISTS outbox (
    id bigserial PRIMARY KEY,
    event_id text NOT NULL UNIQUE,
    routing_key text NOT NULL,
    type_name text NOT NULL,
    schema_version integer NOT NULL,
    body bytea NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

-- Event ids a consumer has applied, recorded in the same transaction as the effect, so a redelivery changes nothing.
CREATE TABLE IF NOT EXISTS inbox_processed_events (
    consumer text NOT NULL,
    event_id text NOT NULL,
    processed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, event_id)
);
