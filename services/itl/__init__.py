"""The International Transaction Log: the hub that checks and routes every transaction."""
