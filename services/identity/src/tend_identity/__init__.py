"""Identity: people, the organisation, sign-in, pseudonyms, signed tokens and access decisions."""

SERVICE = "identity"
