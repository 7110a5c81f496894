"""The project's scripts (scripts/demo.py: make demo), importable by the tests that run
the demo's flows."""
