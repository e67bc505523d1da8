"""Checkin's forward-only SQL migrations, applied in name order by `tend-checkin migrate`."""
