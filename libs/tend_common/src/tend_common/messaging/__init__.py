"""RabbitMQ plumbing: topology, confirmed publishing, idempotent consuming, dead-lettering and the outbox."""
