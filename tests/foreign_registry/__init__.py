"""A deliberately small Party registry built apart from the simulator's services: it
speaks to the simulated ITL only over the broker, with raw aio-pika and JSON dicts made
from the published contracts (``shared/contracts/asyncapi.json`` and the JSON Schemas in
``shared/contracts/schemas/``), and imports nothing of ``services`` or ``shared``.

It is the conformance plan's stand-in for another registry (README "Put another registry
through it", docs/adr/0039): ``python -m tests.foreign_registry`` runs it, ``--fault``
plants a fault the plan must find, and ``tests.foreign_registry.tester`` is the tester
who instructs it through a control directory, outside the wire.
"""
