"""Operational counters of one service process, read on ``GET /metrics``.

What a process spends, counted where it is spent, for the benchmarks (``bench/run.py``
divides the change in each counter over a batch of transfers by the transfers) and for
any Prometheus-compatible monitoring:

- ``store_commands_total{command, work}``: every command the process sends to its store
  (``find``, ``insert``, ``update``, ``bulkWrite``, ``commitTransaction``, ...), counted
  by a pymongo command listener on the service's client, so no store call can be missed,
  by the work it served (``WORK_KINDS``): handling a message, an API request, the outbox
  relay publishing, the sweeps that run on a timer, the process's start;
- ``store_transactions_total{outcome}``: multi-document transactions ended, by the
  command that ended them: ``commit`` for ``commitTransaction`` (a commit retried after an
  unknown result counts twice); for ``abortTransaction``, ``abort`` when the store refused
  the transaction (a write conflict, retried by ``with_transaction``) and ``abandon`` when
  the work ended it on purpose by raising (a refused request, the rehearsal of an
  operation awaiting approval: ``shared.store.client.in_transaction``);
- ``store_write_conflicts_total{collection, command}``: commands the store refused with a
  write conflict (``WriteConflict``, code 112: another open transaction wrote the same
  document), by the collection the command named (``-`` for ``commitTransaction``); each
  one costs the retry of a whole store transaction (docs/adr/0026);
- ``store_turn_seconds_total{phase}``: real seconds the process's store transactions
  spent waiting for their turn (``wait``) and holding it (``held``: the transaction ran,
  retries included); ``held`` over a stretch of wall time is how busy the process's
  transactions kept it (``shared.store.client.in_transaction``);
- ``messages_published_total{message_type}``: envelopes this process published, each
  confirmed by the broker;
- ``messages_handled_total{message_type}``: envelopes this process took from its inbox
  and acknowledged after storing their effect (a redelivered duplicate counts again:
  its handling costs store commands too);
- ``message_handling_failures_total{outcome}``: failed attempts at handling an envelope,
  by what followed: ``retried`` in the process after a transient store failure,
  ``returned`` to the broker for a later delivery, ``dead_lettered`` with the reason at
  its last delivery (``shared.messaging.broker``, docs/adr/0027);
- ``outbox_rows_committed_total``, ``outbox_rows_published_total`` and
  ``outbox_rows_marked_total``: outbox rows handed to the relay (committed by this
  process, or found left over by its sweep), rows it has published (or set aside), and
  rows marked so in the store; the first two are equal when the relay has nothing left to
  publish, the last catches up when the marks are written;
- ``recording_captures_total{outcome}``: commands the API took and handed to the
  recording (docs/adr/0034): ``published`` to the broker, ``dropped`` (the queue in the
  process was full or the broker refused them; the request was answered regardless).

One process is one service, so the counters live in prometheus_client's default
registry; the text format is Prometheus's exposition format 0.0.4.
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from prometheus_client import CONTENT_TYPE_LATEST, Counter, generate_latest
from pymongo import monitoring

STORE_COMMANDS = Counter("store_commands", "Commands sent to the service's store",
                         ["command", "work"])
STORE_TRANSACTIONS = Counter("store_transactions",
                             "Store transactions ended, by outcome (commit, abort)",
                             ["outcome"])
STORE_TURNS = Counter("store_turn_seconds",
                      "Real seconds store transactions waited for their turn and held it",
                      ["phase"])
STORE_WRITE_CONFLICTS = Counter("store_write_conflicts",
                                "Store commands refused with a write conflict (code 112)",
                                ["collection", "command"])
MESSAGES_PUBLISHED = Counter("messages_published",
                             "Envelopes published and confirmed by the broker",
                             ["message_type"])
MESSAGES_HANDLED = Counter("messages_handled",
                           "Envelopes taken from the inbox and acknowledged",
                           ["message_type"])
MESSAGE_HANDLING_FAILURES = Counter(
    "message_handling_failures",
    "Failed attempts at handling an envelope, by what followed "
    "(retried, returned, dead_lettered)", ["outcome"])

OUTBOX_ROWS_COMMITTED = Counter("outbox_rows_committed",
                                "Outbox rows handed to the relay to publish")
OUTBOX_ROWS_PUBLISHED = Counter("outbox_rows_published",
                                "Outbox rows published by the relay (or set aside)")
RECORDING_CAPTURES = Counter("recording_captures",
                             "Commands handed to the recording, by outcome "
                             "(published, dropped)", ["outcome"])
OUTBOX_ROWS_MARKED = Counter("outbox_rows_marked",
                             "Outbox rows published (or set aside) and marked so")

#: What a store command is spent on: ``message`` (handling an incoming message),
#: ``request`` (an API request), ``relay`` (publishing the outbox and marking it),
#: ``sweep`` (work a timer starts: the due-work sweeps, the outbox's slow sweep for rows
#: left by a crash), ``start`` (indexes, the clock, fixed accounts at start-up).
WORK_KINDS = ("message", "request", "relay", "sweep", "start")
_WORK: contextvars.ContextVar[str] = contextvars.ContextVar("store_work", default="request")


@contextmanager
def doing(work: str) -> Iterator[None]:
    """Count the store commands sent within the block (in this task and the tasks it
    starts) under ``work``, one of ``WORK_KINDS``."""
    token = _WORK.set(work)
    try:
        yield
    finally:
        _WORK.reset(token)


#: The media type of ``GET /metrics``.
METRICS_CONTENT_TYPE = CONTENT_TYPE_LATEST

_TRANSACTION_ENDS = {"commitTransaction": "commit", "abortTransaction": "abort"}
#: Set while a transaction whose work raised is being ended (``abandoning``).
_ABANDONING: ContextVar[bool] = ContextVar("store_transaction_abandoning", default=False)


def abandoning() -> None:
    """The current task's store transaction is ending because its work raised: its
    ``abortTransaction`` counts as ``abandon``, not ``abort`` (until ``abandoned``)."""
    _ABANDONING.set(True)


def abandoned() -> None:
    """The current task's transaction has ended (``abandoning``)."""
    _ABANDONING.set(False)
#: The server's code of a write conflict (mongod's ``WriteConflict``).
WRITE_CONFLICT = 112


class StoreCommandListener(monitoring.CommandListener):
    """Counts each command pymongo starts on the client it is registered with
    (``make_client``); a retried command counts once per attempt. A command refused with
    a write conflict is counted again, by the collection it named."""

    def __init__(self) -> None:
        #: The collection of each command under way, by (connection, request id).
        self._collections: dict[tuple[object, int], str] = {}

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        STORE_COMMANDS.labels(command=event.command_name, work=_WORK.get()).inc()
        outcome = _TRANSACTION_ENDS.get(event.command_name)
        if outcome is not None:
            if outcome == "abort" and _ABANDONING.get():
                outcome = "abandon"
            STORE_TRANSACTIONS.labels(outcome=outcome).inc()
        target = event.command.get(event.command_name)
        self._collections[(event.connection_id, event.request_id)] = \
            target if isinstance(target, str) else "-"

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        """Nothing more: a command is counted when it starts."""
        self._collections.pop((event.connection_id, event.request_id), None)

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        """A write conflict is counted by the collection the command named."""
        collection = self._collections.pop((event.connection_id, event.request_id), "-")
        failure = event.failure if isinstance(event.failure, dict) else {}
        if failure.get("code") == WRITE_CONFLICT:
            STORE_WRITE_CONFLICTS.labels(collection=collection,
                                         command=event.command_name).inc()


def exposition() -> bytes:
    """Every counter of this process in Prometheus's text format."""
    return generate_latest()
