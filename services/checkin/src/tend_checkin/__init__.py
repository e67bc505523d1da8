"""Tend's check-in service: teaching sessions, rotating codes and check-ins, keyed by pseudonym only.

Checkin never holds a person's identity: students are known by the pseudonym in their check-in token, staff by the
opaque person id in their signed assertion.
"""
