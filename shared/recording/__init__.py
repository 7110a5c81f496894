"""The recording of a stack's message flows (docs/adr/0034, docs/recording.md): capture
of API commands (``capture``), the journal stream and its export (``journal``), the
portable file (``format``) and sequence diagrams (``diagram``)."""
