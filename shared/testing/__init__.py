"""Helpers for tests that run against the real broker, store and service processes."""
