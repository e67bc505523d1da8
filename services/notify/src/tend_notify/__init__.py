"""Notify: supportive e-mails to students. Resolves an address through identity at send time; keeps no profile."""
