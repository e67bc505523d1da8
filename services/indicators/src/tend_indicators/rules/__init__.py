"""The indicator rules. Each reads a student's history as of a day and returns findings, each with its evidence.

A finding names its episode (for example the first day without engagement, or the assignment missed), so that
evaluating again on a later day finds the same flag instead of raising a new one, and so that evaluating again as of
the day a flag was raised tells whether a correction has since removed its evidence.
"""
