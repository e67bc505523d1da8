"""Ingest: every path maps a source's student identifiers to pseudonyms at the door (through identity) and stores
engagement keyed by pseudonym only, idempotently, by the source's event ids or by natural keys."""
