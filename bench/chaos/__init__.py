"""The chaos run (issue 9, docs/adr/0021-chaos-run.md): thousands of transfers across KZ,
CH and the CDM registry while services are killed with SIGKILL and restarted, the
stack's private RabbitMQ node is restarted and a registry is stopped (SIGSTOP) past the
ITL's time-out; then invariants across every book.

    python -m bench.chaos --transfers 2000 --kills 50 --broker-restarts 3   # make chaos

``workload`` drives the operations through the operator APIs (retried with the same
``Idempotency-Key``), ``faults`` injects the faults, ``invariants`` checks the books,
``report`` writes the JSON and Markdown report, ``run`` puts them together.
"""
