"""Code every service imports: wire contracts, code tables, messaging, store and clock."""
