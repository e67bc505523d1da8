"""Plumbing shared by Tend's services. Nothing here knows about students, modules or attendance."""
