"""Audit: the append-only, hash-linked log of accesses to personal data and privileged changes."""
