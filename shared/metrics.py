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
  process was full or the broker refused them; the request was answered regardless);
- ``http_requests_total{handler, method, status}`` and the histogram
  ``http_request_duration_seconds{handler, method}``: every HTTP request the API
  answered, by its route's template (``/transactions/{transaction_id}``; ``none`` for a
  path no route matches), method and status code, and its real seconds from the first
  middleware to the answer, by prometheus-fastapi-instrumentator (``instrument``);
- ``message_handling_seconds{message_type, outcome}`` (histogram): real seconds from
  taking an envelope off the inbox until its handling ended (in-process retries
  included), by the envelope's type (``undecodable`` for a body that is none) and how it
  ended: ``handled`` (acknowledged), ``refused`` (dead-lettered at once: undecodable, a
  message-level refusal), ``failed`` (returned to the broker, or dead-lettered at its
  last delivery);
- ``messages_dead_lettered_total{message_type, reason, response_code}``: envelopes this
  process dead-lettered, by type and the class of the reason: ``undecodable``,
  ``refused`` (a message-level refusal, with its response code: 1001, 1002, 1101, 1102,
  2002, 2005, ...) or ``failed`` (its handling failed on every delivery; no code);
- ``outbox_backlog`` (gauge): outbox rows in the relay's hands and not yet published;
  moved where the relay takes and publishes rows, never counted in the store;
- ``transaction_statuses_total{status}``: transactions of this service's register
  (a registry's own and inbound ones, the ITL's) that entered each status (protocol.md
  1.4: ``PROPOSED``, ``CHECKED_NO_DISCREPANCY``, ... by name), counted once the store
  transaction recording the status has committed (``shared.store.after_commit``): a
  rehearsal (docs/adr/0018) or a retried attempt counts nothing; how many are in a
  status now is not kept (that would need a count of the books at start);
- ``itl_proposals_checked_total{result}`` and
  ``itl_check_discrepancies_total{response_code}`` (the ITL only): proposals the ITL's
  check families (``services.itl.domain``) passed (``no_discrepancy``) or refused
  (``discrepancy``), and each discrepancy found, by its response code (3xxx-5xxx), once
  the check's outcome has committed.

One process is one service, so the counters live in prometheus_client's default
registry; the text format is Prometheus's exposition format 0.0.4. Nothing here reads
the store when ``/metrics`` is scraped: every counter and gauge moves where its event
happens (docs/adr/0043).
"""

from __future__ import annotations

import contextvars
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from fastapi import FastAPI
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, Histogram, generate_latest
from prometheus_fastapi_instrumentator import Instrumentator
from prometheus_fastapi_instrumentator import metrics as http_metrics
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
OUTBOX_BACKLOG = Gauge("outbox_backlog",
                       "Outbox rows in the relay's hands and not yet published")

#: Upper bounds (real seconds) of the latency histograms: a store transaction takes
#: milliseconds, a handling retried in the process after a transient failure minutes.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
                   5.0, 10.0, 30.0, 60.0, 300.0)
MESSAGE_HANDLING_SECONDS = Histogram(
    "message_handling_seconds",
    "Real seconds from taking an envelope off the inbox until its handling ended, by type "
    "and outcome (handled, refused, failed)", ["message_type", "outcome"],
    buckets=LATENCY_BUCKETS)
MESSAGES_DEAD_LETTERED = Counter(
    "messages_dead_lettered",
    "Envelopes dead-lettered, by type, reason class (undecodable, refused, failed) and "
    "response code", ["message_type", "reason", "response_code"])
#: ``message_type`` of a body that is no envelope.
UNDECODABLE = "undecodable"

TRANSACTION_STATUSES = Counter(
    "transaction_statuses",
    "Transactions of this register that entered each status (protocol.md 1.4), counted "
    "when the store transaction recording it committed", ["status"])
ITL_PROPOSALS_CHECKED = Counter(
    "itl_proposals_checked",
    "Proposals the ITL's check families passed (no_discrepancy) or refused (discrepancy)",
    ["result"])
ITL_CHECK_DISCREPANCIES = Counter(
    "itl_check_discrepancies",
    "Discrepancies the ITL's check families found, by response code", ["response_code"])

def statuses_entered(statuses: Iterable[str]) -> Callable[[], None]:
    """What counts transactions entering ``statuses`` (names, one per entry) in
    ``transaction_statuses_total``: for ``shared.store.after_commit``."""
    names = list(statuses)

    def count() -> None:
        for name in names:
            TRANSACTION_STATUSES.labels(status=name).inc()

    return count


def proposal_checked(response_codes: Iterable[int]) -> Callable[[], None]:
    """What counts one proposal the ITL's check families passed (no ``response_codes``)
    or refused with ``response_codes`` (``itl_proposals_checked_total``,
    ``itl_check_discrepancies_total``): for ``shared.store.after_commit``."""
    codes = [str(int(code)) for code in response_codes]

    def count() -> None:
        ITL_PROPOSALS_CHECKED.labels(result="discrepancy" if codes else "no_discrepancy").inc()
        for code in codes:
            ITL_CHECK_DISCREPANCIES.labels(response_code=code).inc()

    return count


#: The HTTP instrumentations every app shares (``instrument``): made once per process,
#: since prometheus_client refuses a second metric of the same name in its registry.
_HTTP_INSTRUMENTATIONS = (
    http_metrics.requests(),
    http_metrics.latency(should_include_status=False, buckets=LATENCY_BUCKETS),
)


def instrument(app: FastAPI) -> None:
    """Count every HTTP request ``app`` answers (``http_requests_total``) and observe its
    latency (``http_request_duration_seconds``), by route template, method and status
    code (not grouped: 201, 404 and 422 each count apart), with
    prometheus-fastapi-instrumentator's middleware. Call it after the app's other
    middleware is added, so that it is the outermost and times all of it."""
    instrumentator = Instrumentator(should_group_status_codes=False)
    for instrumentation in _HTTP_INSTRUMENTATIONS:
        if instrumentation is not None:
            instrumentator.add(instrumentation)
    instrumentator.instrument(app)


def dead_lettered(message_type: str, reason: str, response_code: int | None) -> None:
    """Count a dead letter (``messages_dead_lettered_total``); ``reason``: ``undecodable``,
    ``refused`` or ``failed``."""
    MESSAGES_DEAD_LETTERED.labels(
        message_type=message_type, reason=reason,
        response_code="" if response_code is None else str(response_code)).inc()


def handling_ended(message_type: str, outcome: str, started: float) -> None:
    """Observe in ``message_handling_seconds`` the real seconds since ``started`` (a
    ``time.perf_counter()`` reading) under ``message_type`` and ``outcome`` (``handled``,
    ``refused``, ``failed``)."""
    MESSAGE_HANDLING_SECONDS.labels(message_type=message_type, outcome=outcome).observe(
        time.perf_counter() - started)


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
