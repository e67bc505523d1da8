"""Test fixtures for Tend, loaded as a pytest plugin (`-p tend_testing.plugin`)."""
