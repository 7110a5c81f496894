"""A national registry (Kazakhstan first; any Party from configuration)."""
