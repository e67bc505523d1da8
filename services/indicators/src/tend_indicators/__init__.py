"""Indicators: engagement events, features and indicator flags. Knows students by pseudonym only."""
