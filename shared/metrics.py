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
  command that ended them (``commit`` for ``commitTransaction``, ``abort`` for
  ``abortTransaction``; an abort is usually a write conflict that ``with_transaction``
  retries, and a commit retried after an unknown result counts twice);
- ``messages_published_total{message_type}``: envelopes this process published, each
  confirmed by the broker;
- ``messages_handled_total{message_type}``: envelopes this process took from its inbox
  and acknowledged after storing their effect (a redelivered duplicate counts again:
  its handling costs store commands too);
- ``outbox_rows_committed_total``, ``outbox_rows_published_total`` and
  ``outbox_rows_marked_total``: outbox rows handed to the relay (committed by this
  process, or found left over by its sweep), rows it has published (or set aside), and
  rows marked so in the store; the first two are equal when the relay has nothing left to
  publish, the last catches up when the marks are written.

One process is one service, so the counters live in prometheus_client's default
registry; the text format is Prometheus's exposition format 0.0.4.
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterator
from contextlib import contextmanager

from prometheus_client import CONTENT_TYPE_LATEST, Counter, generate_latest
from pymongo import monitoring

STORE_COMMANDS = Counter("store_commands", "Commands sent to the service's store",
                         ["command", "work"])
STORE_TRANSACTIONS = Counter("store_transactions",
                             "Store transactions ended, by outcome (commit, abort)",
                             ["outcome"])
MESSAGES_PUBLISHED = Counter("messages_published",
                             "Envelopes published and confirmed by the broker",
                             ["message_type"])
MESSAGES_HANDLED = Counter("messages_handled",
                           "Envelopes taken from the inbox and acknowledged",
                           ["message_type"])

OUTBOX_ROWS_COMMITTED = Counter("outbox_rows_committed",
                                "Outbox rows handed to the relay to publish")
OUTBOX_ROWS_PUBLISHED = Counter("outbox_rows_published",
                                "Outbox rows published by the relay (or set aside)")
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


class StoreCommandListener(monitoring.CommandListener):
    """Counts each command pymongo starts on the client it is registered with
    (``make_client``); a retried command counts once per attempt."""

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        STORE_COMMANDS.labels(command=event.command_name, work=_WORK.get()).inc()
        outcome = _TRANSACTION_ENDS.get(event.command_name)
        if outcome is not None:
            STORE_TRANSACTIONS.labels(outcome=outcome).inc()

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        """Nothing: a command is counted when it starts."""

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        """Nothing: a command is counted when it starts."""


def exposition() -> bytes:
    """Every counter of this process in Prometheus's text format."""
    return generate_latest()
