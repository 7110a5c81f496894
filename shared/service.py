"""What every service process has in common: settings, store, broker, outbox relay,
clock, and the HTTP routes for health and the simulation clock."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import math
import os
import time
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager
from datetime import date, datetime, timedelta
from typing import Any, TypeVar

import uvicorn
from fastapi import Depends, FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse
from pydantic import BaseModel, Field
from pydantic_settings import SettingsConfigDict
from pymongo.errors import PyMongoError
from starlette.types import ASGIApp, Receive, Scope, Send
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    stop_after_delay,
    wait_fixed,
)

from shared import tracing
from shared.api_errors import document_errors, invalid_input
from shared.audit import AuditTrail, acting, message_actor, message_subject, service_actor
from shared.auth import (
    AUTH_RESPONSES,
    CLOCK,
    AuthSettings,
    PrincipalDep,
    install,
    require_role,
)
from shared.bounds import CLOCK_MAX, ClockStepSeconds, SimulatedTime
from shared.clock import SimulationClock
from shared.codes import ITL_CODE, MessageType, ResponseCode
from shared.contracts import Envelope, MessageAck, UndecodableMessage, make_envelope
from shared.contracts.validity import MessageRefusal, Receiver, canonical_form, message_refusal
from shared.errors import NotFound, RuleViolation
from shared.idempotency import (
    IdempotencyKeyReused,
    IdempotencyKeys,
    IdempotentReplay,
    key_reused_response,
    replay_response,
)
from shared.logs import configure_logging, handling_request, log_event
from shared.messaging import (
    Broker,
    EnvelopeHandler,
    PermanentFailure,
    TlsSettings,
    with_heartbeat,
)
from shared.messaging.broker import TRANSIENT_RETRY_SECONDS
from shared.messaging.clock import ClockSet
from shared.metrics import METRICS_CONTENT_TYPE, doing, exposition, instrument
from shared.recording.capture import CommandCapture, CommandRecorder
from shared.rules.periods import DEFAULT_TRUE_UP_PERIOD_ENDS
from shared.settings import comma_or_json_list as comma_or_json_list  # re-exported
from shared.store import (
    Database,
    Document,
    MessageIdReused,
    OutboxRelay,
    Session,
    database_name,
    enqueue,
    ensure_outbox_indexes,
    handle_once,
    in_transaction,
    make_client,
    urgent,
)
from shared.store.batching import KnownDocumentsMode, attempt_of, request_scope
from shared.store.transient import is_transient

T = TypeVar("T")
T2 = TypeVar("T2")
#: Wraps a store transaction's work so that it also marks published outbox rows.
Marked = Callable[[Callable[[Session], Awaitable[T2]]], Callable[[Session], Awaitable[T2]]]
log = logging.getLogger("shared.service")
#: Namespace of the ids of the answers to refused messages: one answer per refused
#: message, however often it is delivered.
REFUSAL_ANSWER_IDS = uuid.UUID("6f1d3c2a-8b4e-4f5a-9c7d-0e1f2a3b4c5d")
#: Reads of the stack's last clock setting while another service holds it, and the real
#: seconds between them.
CLOCK_READ_ATTEMPTS = 20
CLOCK_READ_PAUSE_SECONDS = 0.02
#: Real seconds a starting service waits for its store to answer (each attempt itself
#: waits up to the client's 10 s server selection) before it gives up and exits.
STORE_START_WAIT_SECONDS = 60.0

#: Correlation ids whose count of outbox rows a process keeps in memory (``send``).
SEQ_MEMORY = 10_000


class ServiceSettings(AuthSettings):
    """Settings every service reads from the environment (names are upper-case); the
    AUTH_* settings of the API's callers are ``shared.auth.AuthSettings``."""

    model_config = SettingsConfigDict(extra="ignore")

    mongo_url: str = Field(
        default="mongodb://127.0.0.1:27017/?directConnection=true",
        description="MongoDB-wire server; a database in the path overrides the default name",
    )
    known_documents: KnownDocumentsMode = Field(
        default="on", description="on: a store transaction uses the transactions, approvals, "
        "counters, share-of-proceeds ledger and unit summaries this process committed "
        "without reading them back, each use checked "
        "at its write (docs/adr/0046); off: read them (several processes writing one "
        "database); verify: use them and read them too, failing on any difference (tests)")
    amqp_url: str = Field(default="amqp://guest:guest@127.0.0.1:5672/",
                          description="the broker, logged in as this service's own user "
                                      "<AMQP_NAMESPACE><CODE>; amqps:// for TLS")
    amqp_namespace: str = Field(default="", description="prefix of exchange and queue names")
    amqp_ca_file: str | None = Field(default=None, description="PEM certificate authority "
                                     "of the broker's TLS certificate (amqps://)")
    amqp_cert_file: str | None = Field(default=None, description="PEM client certificate "
                                       "for mutual TLS")
    amqp_key_file: str | None = Field(default=None, description="PEM key of AMQP_CERT_FILE")
    amqp_check_publisher: bool = Field(
        default=True, description="refuse (1002, dead-lettered) an envelope whose sender is "
                                  "not the service whose broker user published it "
                                  "(docs/adr/0016); off only for development on one login")
    amqp_heartbeat_seconds: int | None = Field(
        default=None, ge=1, le=3600,
        description="real seconds between the broker's heartbeats on this service's "
                    "connection (the broker's proposal when unset): a service stopped "
                    "longer than about twice this loses its connection")
    http_host: str = "127.0.0.1"
    http_port: int = 8000
    log_level: str = "INFO"
    consumer_prefetch: int = Field(default=1, ge=1)
    message_retry_seconds: float = Field(
        default=TRANSIENT_RETRY_SECONDS, gt=0, le=86_400,
        description="real seconds a message's handling is retried in the process while "
                    "the store fails transiently, before the message goes back to the "
                    "broker (docs/adr/0027)")
    clock_start: SimulatedTime | None = Field(
        default=None, description="simulated time at start-up; real time when unset"
    )
    tick_seconds: float = Field(
        default=1.0, gt=0, le=3600, description="real seconds between runs of the due-work sweeps"
    )
    recording: bool = Field(
        default=True, description="hand every command the API takes (operation, actor, body, "
                                  "answer) to the stack's recording, rec.capture "
                                  "(docs/adr/0034); the messages are recorded by the broker "
                                  "whatever this says")
    tracing: bool | None = Field(
        default=None, description="export traces (OpenTelemetry, docs/adr/0044): true or "
                                  "false; when unset, on only when the standard OTEL_* "
                                  "variables name an exporter or an OTLP endpoint "
                                  "(shared.tracing.wanted)")
    true_up_period_ends: dict[int, date] = Field(
        default_factory=lambda: dict(DEFAULT_TRUE_UP_PERIOD_ENDS),
        description="last day of each period's additional period for fulfilling "
                    'commitments, JSON {"1": "2015-11-18", ...}: carry-over only after it; '
                    "every service of a stack must have the same (shared.rules.periods)")


class Runtime:
    """The store, broker, relay and clock of one service instance.

    ``peer_codes`` are the services this instance sends to: their inboxes are declared at
    start. Messages it takes only from the ITL, if it is a registry, or from its peers,
    if it is the ITL (protocol.md 1.2; ``receiver``). With ``answer_refusals`` a message
    refused as a whole from one of them is answered with a ``MessageAck``
    (docs/adr/0005, 0010).
    """

    def __init__(
        self,
        settings: ServiceSettings,
        code: str,
        default_database: str,
        peer_codes: Iterable[str] = (),
        answer_refusals: bool = False,
    ) -> None:
        self.settings = settings
        self.code = code
        self.clock = SimulationClock(settings.clock_start)
        self.client = make_client(settings.mongo_url, settings.known_documents)
        self.db: Database = self.client[database_name(settings.mongo_url, default_database)]
        self.broker = Broker(
            with_heartbeat(settings.amqp_url, settings.amqp_heartbeat_seconds), code,
            settings.consumer_prefetch, settings.amqp_namespace,
            tls=TlsSettings(settings.amqp_ca_file, settings.amqp_cert_file,
                            settings.amqp_key_file),
            check_publisher=settings.amqp_check_publisher,
            transient=is_transient,
            transient_retry_seconds=settings.message_retry_seconds,
        )
        self.relay = OutboxRelay(self.db, self.broker, self.clock)
        #: The service's audit trail (shared.audit): every change is recorded with it.
        self.audit = AuditTrail(self.db, code, self.clock)
        self.peer_codes = tuple(peer_codes)
        self.receiver = (Receiver.itl(self.peer_codes) if code == ITL_CODE
                         else Receiver.registry(code))
        self.answer_refusals = answer_refusals
        self._due_work: list[Callable[[], Awaitable[None]]] = []
        #: Whether the stack's clock was ever set by a broadcast this instance saw: then
        #: ``sim.clock.last`` holds a setting, and an empty read means another service
        #: is reading it at that moment.
        self._stack_clock_set = False
        self._due_lock = asyncio.Lock()
        self._ticker: asyncio.Task[None] | None = None
        #: Outbox rows committed per correlation id, for the ids this process has
        #: counted or sent to lately (``send``): the next message's ``seq``.
        self._sent: OrderedDict[str, int] = OrderedDict()
        #: Publishes the commands the API takes to the recording, once started
        #: (``settings.recording``, docs/adr/0034).
        self.recorder: CommandRecorder | None = None

    def _remember_sent(self, correlation_id: str, committed: int) -> None:
        """Keep the count of outbox rows committed for ``correlation_id`` (``send``)."""
        self._sent[correlation_id] = committed
        self._sent.move_to_end(correlation_id)
        if len(self._sent) > SEQ_MEMORY:
            self._sent.popitem(last=False)

    def _committed(self, rows: list[Document]) -> None:
        """After a store transaction committed: keep, per correlation id, how many outbox
        rows are committed now (its last row's ``seq`` + 1: a row's ``seq`` counts the
        rows before it), and hand the rows to the relay. Nothing is kept for a
        transaction that did not commit."""
        for row in rows:
            self._remember_sent(row["correlation_id"], int(row["envelope"]["seq"]) + 1)
        self.relay.hand(rows)

    def on_due(self, work: Callable[[], Awaitable[None]]) -> None:
        """Run ``work`` every tick and whenever the simulation clock is set: it finds and
        does what has become due (time-outs, deadlines, expiries)."""
        self._due_work.append(work)

    async def run_due_work(self) -> None:
        async with self._due_lock:
            for work in self._due_work:
                try:
                    with acting(service_actor(self.code, work.__qualname__)):
                        await work()
                except Exception as exc:  # one failing sweep must not stop the others
                    log_event(log, "due_work_failed", logging.ERROR, work=work.__qualname__,
                              error=repr(exc))

    async def start(self, handler: EnvelopeHandler) -> None:
        await self._wait_for_store()
        await self._restore_clock()
        await ensure_outbox_indexes(self.db)
        await self.audit.ensure_indexes()
        await self.broker.connect(self.peer_codes)
        await self._catch_up_clock()
        self.relay.start()
        if self.settings.recording:
            self.recorder = CommandRecorder(self.broker)
            self.recorder.start()
        await self.broker.follow_clock(self._on_clock_set)
        await self.broker.consume(self.screened(handler))
        self._ticker = asyncio.create_task(self._tick(), name="due-work")

    async def _wait_for_store(self) -> None:
        """Return once the store answers a ``ping``: a service may start beside its
        store (the local stack, Docker Compose) and find it still starting. Retried for
        ``STORE_START_WAIT_SECONDS`` real seconds, each failure logged
        (``store_not_answering``); then the last ``PyMongoError`` is raised and the
        service exits."""

        def waiting(state: RetryCallState) -> None:
            error = state.outcome.exception() if state.outcome else None
            log_event(log, "store_not_answering", logging.WARNING, error=repr(error),
                      waited_s=round(state.seconds_since_start or 0.0, 1))

        async for attempt in AsyncRetrying(
                stop=stop_after_delay(STORE_START_WAIT_SECONDS), wait=wait_fixed(0.5),
                retry=retry_if_exception_type(PyMongoError), before_sleep=waiting,
                reraise=True):
            with attempt:
                await self.db.command("ping")

    async def set_clock(self, moment: datetime, broadcast: bool) -> datetime:
        """Set this service's clock (and, with ``broadcast``, the whole stack's); the
        setting is recorded in the audit trail (``clock_set``, by the caller)."""
        now = self.clock.set(moment)

        async def work(session: Session) -> None:
            await self._save_clock(now, session)
            await self.audit.record(session, "clock_set",
                                    details={"now": now, "broadcast": broadcast})

        await self.commit(work)
        log_event(log, "clock_set", now=now.isoformat(), set_by=self.code,
                  broadcast=broadcast)
        if broadcast:
            await self.broker.broadcast_clock(
                ClockSet(now=now, set_by=self.code, set_at_epoch=time.time()))
            self._stack_clock_set = True
        await self.run_due_work()
        return now

    async def _on_clock_set(self, clock_set: ClockSet) -> None:
        with doing("sweep"):
            await self._follow_clock(clock_set)

    async def _follow_clock(self, clock_set: ClockSet) -> None:
        self._stack_clock_set = True
        if clock_set.set_by == self.code:
            return
        now = self.clock.set(_running_on(clock_set))
        await self._save_clock(now)
        log_event(log, "clock_set", now=clock_set.now.isoformat(), set_by=clock_set.set_by)
        await self.run_due_work()

    async def _save_clock(self, now: datetime, session: Session | None = None) -> None:
        """Keep the last setting, so a restarted service is at the stack's time again."""
        await self.db.clock.replace_one(
            {"_id": "simulation"}, {"_id": "simulation", "now": now, "real_at": time.time()},
            upsert=True, session=session)

    async def catch_up_clock(self) -> datetime:
        """This service's simulated time, first moved up to the stack's latest setting
        (``sim.clock.last``) when that is later: a service that was stopped (SIGSTOP, a
        lost connection) while the clock was set acts on the stack's time, not on the
        time it had. Called before acting on a deadline (docs/adr/0017)."""
        await self._catch_up_clock()
        return self.clock.now()

    async def _catch_up_clock(self) -> None:
        """Join the stack's time if it was set while this service was away."""
        last = await self.broker.last_clock_setting()
        for _ in range(CLOCK_READ_ATTEMPTS):
            if last is not None or not self._stack_clock_set:
                break
            # another service holds the one message of sim.clock.last for a moment
            await asyncio.sleep(CLOCK_READ_PAUSE_SECONDS)
            last = await self.broker.last_clock_setting()
        if last is None:
            return
        self._stack_clock_set = True
        stack_now = _running_on(last)
        if stack_now > self.clock.now():
            self.clock.set(stack_now)
            await self._save_clock(stack_now)

    async def _restore_clock(self) -> None:
        saved = await self.db.clock.find_one({"_id": "simulation"})
        if saved is not None:
            elapsed = max(0.0, time.time() - float(saved["real_at"]))
            self.clock.set(saved["now"] + timedelta(seconds=elapsed))

    async def _tick(self) -> None:
        with doing("sweep"):
            while True:
                await asyncio.sleep(self.settings.tick_seconds)
                await self.run_due_work()

    async def stop(self) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
        if self.recorder is not None:
            await self.recorder.stop()
            self.recorder = None
        await self.relay.stop()
        await self.broker.close()
        await self.client.close()

    async def commit(self, work: Callable[[Session], Awaitable[T]]) -> T:
        """Run ``work`` in one store transaction, then let the relay publish its messages."""
        return await self._marking(lambda marked, committed: in_transaction(
            self.client, marked(work), committed))

    async def handle_once(
        self, envelope: Envelope, effect: Callable[[Session], Awaitable[None]]
    ) -> bool:
        """Apply the effect of an incoming message at most once (inbox + outbox).

        Raises ``MessageIdReused`` (1102) when the id was handled with other content.
        The sender is the actor of the changes the effect makes, and the message itself is
        recorded in the audit trail (``message_handled``) in the same transaction, once.
        """
        actor = message_actor(envelope)

        async def audited(session: Session) -> None:
            with acting(actor):
                await effect(session)
            await self.audit.record(
                session, "message_handled", actor=actor, **message_subject(envelope),
                details={"message_type": envelope.message_type.value,
                         "message_id": envelope.message_id,
                         "correlation_id": envelope.correlation_id,
                         "causation_id": envelope.causation_id})

        with urgent():  # it finishes what a request started: before new requests
            return await self._marking(lambda marked, committed: handle_once(
                self.client, self.db, envelope, marked(audited), self.clock.now(),
                committed))

    async def _marking(
        self, run: Callable[[Marked[Any], Callable[[list[Document]], None]], Awaitable[T]]
    ) -> T:
        """``run`` a store transaction whose work also marks the outbox rows the relay
        has published since the last mark (``OutboxRelay.take_marks``), in the same
        ``bulkWrite`` as its own writes: a mark costs no command of its own. ``run`` gets
        the wrapper of its work and what to call once it has committed; rows taken by an
        attempt that did not commit are given back to be marked later."""
        taken: list[str] = []
        done = False

        def marked(work: Callable[[Session], Awaitable[T2]]
                   ) -> Callable[[Session], Awaitable[T2]]:
            async def with_marks(session: Session) -> T2:
                self.relay.untake_marks(taken)  # an earlier attempt's, not committed
                taken.clear()
                result = await work(session)
                taken.extend(self.relay.take_marks())
                if taken:
                    await self.db.outbox.update_many(
                        {"_id": {"$in": list(taken)}}, {"$set": self.relay.mark_fields()},
                        session=session)
                return result

            return with_marks

        def committed(rows: list[Document]) -> None:
            nonlocal done
            done = True
            self.relay.marked(taken)
            self._committed(rows)

        try:
            return await run(marked, committed)
        finally:
            if not done:
                self.relay.untake_marks(taken)

    def screened(self, handler: EnvelopeHandler) -> EnvelopeHandler:
        """``handler`` behind the message-level checks (protocol.md 1.2, 3.2, 7.5).

        A message this instance does not take (version 1001; recipient or sender 1002,
        see ``message_refusal``) never reaches ``handler``, so nothing about it is
        recorded; nor does one whose payload breaks its contract (2002 a unit block
        whose start is after its end, 2005 more than 3000 blocks, else 1101:
        ``shared.contracts.payload_code``); a message id handled before with other
        content (1102, raised by ``handle_once`` before any write) is logged as an alert.
        All end in ``PermanentFailure`` with the code and reason, which the consumer
        dead-letters, after the answer to the sender when this instance answers refusals.
        """

        async def screened_handler(envelope: Envelope) -> None:
            try:
                refusal = message_refusal(envelope, self.receiver)
            except UndecodableMessage as undecodable:
                refusal = MessageRefusal(undecodable.code, str(undecodable))
            if refusal is None:
                try:
                    await handler(envelope)
                    return
                except MessageIdReused as reused:
                    refusal = reused.refusal
                    log_event(log, "duplicate_message_id_different_content", logging.ERROR,
                              alert=True, transaction_id=envelope.correlation_id,
                              message_id=envelope.message_id,
                              message_type=envelope.message_type.value,
                              sender=envelope.sender, response_code=int(refusal.code),
                              reason=refusal.reason)
            await self._refuse(envelope, refusal)

        return screened_handler

    async def _refuse(self, envelope: Envelope, refusal: MessageRefusal) -> None:
        answered = self.answer_refusals and envelope.sender in self.receiver.senders
        if answered:
            await self.commit(functools.partial(self._answer_refusal, envelope, refusal))
        log_event(log, "message_refused", logging.WARNING,
                  transaction_id=envelope.correlation_id, message_id=envelope.message_id,
                  message_type=envelope.message_type.value, sender=envelope.sender,
                  response_code=int(refusal.code), reason=refusal.reason, answered=answered)
        raise PermanentFailure(refusal.reason, code=int(refusal.code))

    async def _answer_refusal(self, envelope: Envelope, refusal: MessageRefusal,
                              session: Session) -> None:
        """``MessageAck(accepted=False)`` to the sender, once per refused message: a
        redelivery of the same message (dead-lettering failed after the commit) finds
        its answer already in the outbox."""
        answer_id = uuid.uuid5(REFUSAL_ANSWER_IDS, canonical_form(envelope)).hex
        if await self.db.outbox.find_one({"_id": answer_id}, session=session):
            return
        await self.answer_refused(session, envelope, refusal.code, refusal.reason,
                                  message_id=answer_id)

    async def answer_refused(self, session: Session, envelope: Envelope, code: ResponseCode,
                             reason: str, message_id: str | None = None) -> None:
        """Put in the outbox, in ``session``, the ``MessageAck(accepted=False)`` that
        answers ``envelope`` to its sender with ``code`` and ``reason`` (protocol.md 7.4:
        the DES's synchronous refusal); ``message_id``: the answer's id (default: new)."""
        await self.send(
            session,
            message_type=MessageType.MESSAGE_ACK,
            recipient=envelope.sender,
            correlation_id=envelope.correlation_id,
            payload=MessageAck(acked_message_id=envelope.message_id, accepted=False,
                               response_codes=[code], reason=reason),
            causation_id=envelope.message_id,
            message_id=message_id,
        )

    async def send(
        self,
        session: Session,
        *,
        message_type: MessageType,
        recipient: str,
        correlation_id: str,
        payload: BaseModel,
        causation_id: str | None = None,
        message_id: str | None = None,
        first: bool = False,
    ) -> Envelope:
        """Store an outgoing message in the outbox inside ``session``'s transaction
        (under a fresh message id unless ``message_id`` is given). Its ``seq`` is the
        number of messages stored for ``correlation_id`` before it: one more than the
        last one this transaction stored for it; else counted in the store the first
        time, then kept in memory (``_committed``), since this process alone writes its
        outbox. ``first``: the caller knows no message was stored for ``correlation_id``
        before (a transaction id it has just made), so the first ``seq`` is 0 without
        counting; the guess is kept only once the transaction has committed, so a
        caller whose guess the store proved wrong (its transaction failed) and that
        tries again without ``first`` gets the count."""
        attempt = attempt_of(session)
        earlier = [] if attempt is None else [
            row for row in attempt.outbox if row["correlation_id"] == correlation_id]
        committed = self._sent.get(correlation_id)
        if earlier:
            seq = int(earlier[-1]["envelope"]["seq"]) + 1
        elif first and attempt is not None:
            seq = 0
        elif committed is not None and attempt is not None:
            seq = committed
        else:
            seq = await self.db.outbox.count_documents(
                {"correlation_id": correlation_id}, session=session
            )
            if attempt is not None:
                self._remember_sent(correlation_id, seq)
        envelope = make_envelope(
            message_type=message_type,
            sender=self.code,
            recipient=recipient,
            correlation_id=correlation_id,
            payload=payload,
            sent_at=self.clock.now(),
            seq=seq,
            causation_id=causation_id,
            message_id=message_id,
        )
        await enqueue(self.db, envelope, session)
        return envelope


def _running_on(clock_set: ClockSet) -> datetime:
    """The simulated time now, given a setting made ``set_at_epoch`` real seconds ago."""
    return clock_set.now + timedelta(seconds=max(0.0, time.time() - clock_set.set_at_epoch))


class ClockSetting(BaseModel):
    now: SimulatedTime | None = Field(
        default=None, description="jump to this UTC time (1990-01-01 to 2099-12-31)")
    advance_seconds: ClockStepSeconds | None = Field(
        default=None, description="or move forward by this many simulated seconds, up to "
                                  "the end of 2099")
    broadcast: bool = Field(
        default=True, description="move every service of the stack, not only this one")


class ClockReading(BaseModel):
    now: datetime


def build_app(
    title: str,
    description: str,
    runtime: Runtime,
    handler: EnvelopeHandler,
    on_start: Callable[[], Awaitable[None]] | None = None,
) -> FastAPI:
    """A FastAPI app whose lifespan starts and stops ``runtime`` with ``handler``."""

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        authenticator.log_mode()
        tracing.log_mode()
        with doing("start"):
            if on_start is not None:
                await on_start()
            await runtime.start(handler)
        try:
            yield
        finally:
            await runtime.stop()
            tracing.flush()

    tracing.start_tracing(runtime.code, runtime.settings.tracing,
                          namespace=runtime.settings.amqp_namespace)
    app = FastAPI(title=title, description=description, lifespan=lifespan,
                  telemetry=tracing.fastapi_telemetry())
    app.add_middleware(RequestScope)
    app.add_middleware(CommandCapture, code=runtime.code, recorder=lambda: runtime.recorder,
                       now=runtime.clock.now)
    app.state.runtime = runtime
    #: Idempotency keys of the requests that propose a transaction (shared/idempotency.py).
    app.state.idempotency = IdempotencyKeys(runtime.db, runtime.clock.now)
    app.add_exception_handler(IdempotentReplay, replay_response)
    app.add_exception_handler(IdempotencyKeyReused, key_reused_response)
    authenticator = install(app, runtime.settings, runtime.code)
    document_errors(app)

    @app.exception_handler(RuleViolation)
    async def rule_violation(_: Request, exc: RuleViolation) -> JSONResponse:
        return JSONResponse(
            status_code=exc.http_status,
            content={"detail": exc.reason, "response_code": int(exc.code)},
        )

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_: Request, exc: RequestValidationError) -> JSONResponse:
        """422 naming each invalid field, as FastAPI answers, with the inputs that JSON
        cannot carry (NaN, infinities) given as text instead of failing with 500."""
        return JSONResponse(status_code=422,
                            content={"detail": jsonable_encoder(_json_safe(exc.errors()))})

    @app.exception_handler(NotFound)
    async def not_found(_: Request, exc: NotFound) -> JSONResponse:
        return JSONResponse(status_code=404, content={"detail": f"{exc.what} not found"})

    @app.get("/health", tags=["admin"])
    async def health() -> dict[str, Any]:
        """Liveness and readiness: the store answers a ping."""
        await runtime.db.command("ping")
        return {"status": "ok", "service": title, "code": runtime.code,
                "now": runtime.clock.now()}

    @app.get("/metrics", tags=["admin"], response_class=PlainTextResponse,
             responses={200: {"content": {METRICS_CONTENT_TYPE: {}}}})
    async def metrics() -> PlainTextResponse:
        """This process's counters in Prometheus's text format (``shared.metrics``): store
        commands by name, store transactions by outcome, messages published and handled
        by type, handling latency and dead letters, HTTP requests by route and status and
        their latency, the outbox backlog, transactions by status entered, the ITL's
        check outcomes by response code, since the process started. Open like
        ``/health``: counts only, no business data (docs/adr/0015, 0043)."""
        return PlainTextResponse(exposition(), media_type=METRICS_CONTENT_TYPE)

    @app.get("/admin/clock", tags=["admin"], responses=AUTH_RESPONSES)
    async def read_clock(_: PrincipalDep) -> ClockReading:
        """The simulation clock of this process; any authenticated caller."""
        return ClockReading(now=runtime.clock.now())

    @app.put("/admin/clock", tags=["admin"], responses=AUTH_RESPONSES,
             dependencies=[Depends(require_role(CLOCK, "setting the simulation clock"))])
    async def set_clock(setting: ClockSetting) -> ClockReading:
        """Set or advance the simulation clock: of the whole stack by default, so that
        deadlines, expiries and time-outs everywhere follow; the work that became due
        runs before the answer. Needs the role ``<CODE>:clock`` of this service or
        ``*:clock`` (403 otherwise)."""
        if (setting.now is None) == (setting.advance_seconds is None):
            raise invalid_input(("body",), "give exactly one of 'now' and 'advance_seconds'",
                                setting.model_dump(mode="json"))
        moment = setting.now or runtime.clock.now() + timedelta(
            seconds=setting.advance_seconds or 0)
        if moment > CLOCK_MAX:
            raise invalid_input(
                ("body", "advance_seconds"), f"{setting.advance_seconds} seconds would move "
                f"the clock past {CLOCK_MAX.isoformat()}, the end of its range",
                setting.advance_seconds)
        return ClockReading(now=await runtime.set_clock(moment, setting.broadcast))

    instrument(app)  # the outermost middleware: times all the others
    return app


class RequestScope:
    """ASGI middleware: each HTTP request is one ``request_scope`` (reads outside a
    store transaction that may be kept for the request are made once), and its log
    lines name its method and path (``shared.logs.handling_request``)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        with request_scope(), handling_request(scope["method"], scope["path"]):
            await self.app(scope, receive, send)


def _json_safe(value: Any) -> Any:
    """``value`` with every non-finite float replaced by its text ("nan", "inf")."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {key: _json_safe(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(item) for item in value]
    return value


S = TypeVar("S", bound="ServiceSettings")


def run_service(service: str, settings_class: type[S],
                create_app: Callable[[S], FastAPI]) -> None:
    """Run a service process: its log lines first (JSON on stderr, ``LOG_LEVEL``), then
    its settings (``settings_class()``, from the environment) and its app, then
    ``serve``. What stops it before it serves (a setting it refuses, tracing asked of
    gRPC) is one JSON log line, ``service_not_started`` with the ``reason`` and the
    exception, and exit status 1, like every other line of its log."""
    level = os.environ.get("LOG_LEVEL", "INFO").upper()
    configure_logging(service, level if level in logging.getLevelNamesMapping() else "INFO")
    try:
        settings = settings_class()
        app = create_app(settings)
    except Exception as exc:  # any: logged as one line, then the exit
        logging.getLogger(service).error(
            "service_not_started", exc_info=True,
            extra={"fields": {"reason": f"{exc.__class__.__name__}: {exc}"}})
        raise SystemExit(1) from None
    serve(app, settings, service)


def serve(app: FastAPI, settings: ServiceSettings, service: str) -> None:
    """Run the service process until SIGINT or SIGTERM."""
    configure_logging(service, settings.log_level)
    log_event(logging.getLogger(service), "service_starting", port=settings.http_port)
    config = uvicorn.Config(
        app,
        host=settings.http_host,
        port=settings.http_port,
        log_config=None,
        access_log=False,
        lifespan="on",
    )
    asyncio.run(uvicorn.Server(config).serve())
