"""Thin plumbing over aio-pika: robust connection (TLS when the URL is ``amqps://``),
confirmed mandatory publishing under the broker-validated ``user_id``, and a consumer
that refuses an envelope whose sender is not its publisher, acknowledges only after
the handler has stored its effect, retries a transient failure in the process and
dead-letters with the reason a message that can never be handled.

No business rules live here.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

import aio_pika
from aio_pika.abc import (
    AbstractChannel,
    AbstractExchange,
    AbstractIncomingMessage,
    AbstractQueue,
    AbstractRobustConnection,
    HeadersType,
)
from aio_pika.exceptions import ChannelClosed, ChannelNotFoundEntity
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_delay,
    wait_exponential_jitter,
)

from shared import tracing
from shared.contracts import Envelope, UndecodableMessage, decode_envelope
from shared.logs import handling_message, log_event
from shared.messaging.clock import LAST_CLOCK_QUEUE, ClockSet
from shared.messaging.identities import publisher_refusal, service_user
from shared.messaging.topology import (
    DELIVERY_LIMIT,
    Exchanges,
    Topology,
    check_topology,
    clock_follower_queue_name,
    declare_topology,
    inbox_queue_name,
    open_exchanges,
)
from shared.metrics import (
    MESSAGE_HANDLING_FAILURES,
    MESSAGES_HANDLED,
    MESSAGES_PUBLISHED,
    UNDECODABLE,
    dead_lettered,
    doing,
    handling_ended,
)

log = logging.getLogger("shared.messaging")

EnvelopeHandler = Callable[[Envelope], Awaitable[None]]
#: Real seconds between attempts to reconnect after the broker went away (a node restart).
RECONNECT_SECONDS = 1.0
#: Real seconds a stopping service waits for the broker to cancel its consumer; longer
#: only when the broker cannot be reached, and then the connection is closed anyway.
CANCEL_SECONDS = 2.0
#: Real seconds a message's handling is retried in the process while it fails
#: transiently, before the message goes back to the broker (docs/adr/0027).
TRANSIENT_RETRY_SECONDS = 300.0
#: First and longest real pause between two of those attempts (exponential, jittered).
TRANSIENT_RETRY_FIRST_PAUSE = 0.1
TRANSIENT_RETRY_LONGEST_PAUSE = 5.0
#: Real seconds before a message whose handling failed goes back to the broker.
RETURN_PAUSE_SECONDS = 0.5


def never_transient(exc: BaseException) -> bool:
    """The default ``Broker.transient``: no failure is retried in the process."""
    return False


def delivery_count(message: AbstractIncomingMessage) -> int | None:
    """How many times the broker delivered ``message`` before this delivery and had it
    back (a quorum queue's ``x-delivery-count`` header; None without one). The queue
    dead-letters a message returned once more after ``DELIVERY_LIMIT`` such deliveries:
    the delivery with ``x-delivery-count`` equal to ``DELIVERY_LIMIT`` is its last."""
    count = (message.headers or {}).get("x-delivery-count")
    return count if isinstance(count, int) else None


def with_heartbeat(url: str, seconds: int | None) -> str:
    """``url`` asking the broker for a heartbeat every ``seconds`` real seconds (as the
    ``heartbeat`` query parameter aio-pika reads); ``url`` itself when None."""
    if seconds is None:
        return url
    return f"{url}{'&' if '?' in url else '?'}heartbeat={seconds}"


class PermanentFailure(Exception):
    """A message that can never be handled (refused at message level, impossible content).

    The consumer dead-letters it with this reason (header ``x-dead-reason``) and, when
    the refusal has a response code, that code (header ``x-dead-code``) instead of
    retrying.
    """

    def __init__(self, reason: str, code: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.code = code


class RecipientNotPermitted(Exception):
    """This instance's broker user may not publish to the envelope's recipient (its topic
    permission on ``des.msg``, docs/adr/0016): a registry addresses only the ITL, the
    ITL only the registries of its namespace. Retrying cannot help."""


class BrokerNotProvisioned(RuntimeError):
    """The namespace's exchanges or queues do not exist and this user may not declare them."""


@dataclass(frozen=True)
class TlsSettings:
    """TLS to the broker, used with an ``amqps://`` URL: the certificate authority that
    signed the broker's certificate (``AMQP_CA_FILE``; the system's authorities when
    unset) and, for mutual TLS, this service's certificate and private key
    (``AMQP_CERT_FILE``, ``AMQP_KEY_FILE``), all PEM files."""

    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None

    def context(self, amqp_url: str) -> ssl.SSLContext | None:
        """The client TLS context for ``amqp_url``; None for a plain ``amqp://`` URL.

        Raises ``ValueError`` when files are set for a plain URL (they would be ignored).
        """
        if urlsplit(amqp_url).scheme != "amqps":
            if self.ca_file or self.cert_file or self.key_file:
                raise ValueError("AMQP_CA_FILE, AMQP_CERT_FILE or AMQP_KEY_FILE is set but "
                                 "AMQP_URL is not an amqps:// URL")
            return None
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=self.ca_file)
        if self.cert_file:
            context.load_cert_chain(self.cert_file, self.key_file)
        return context


def url_user(amqp_url: str) -> str:
    """The user an AMQP URL logs in as (``guest`` when it names none, as aio-pika)."""
    return unquote(urlsplit(amqp_url).username or "guest")


class Broker:
    """One service instance's connection to RabbitMQ.

    Every message it publishes carries its user as ``user_id``, which RabbitMQ checks
    against the connection's login. With ``check_publisher`` (the default) its consumer
    dead-letters, with 1002 and the reason, an envelope whose ``sender`` is not the
    service whose user published it (``publisher_refusal``), before the handler sees it.

    A handler that fails transiently (``transient``) is retried in the process
    (``_handle_retrying``); a message whose handling keeps failing is returned to the
    broker and, at its last delivery, dead-lettered with the reason (``_failed``), so the
    queue's own delivery limit, which dead-letters without one, is never what ends it.
    """

    def __init__(self, amqp_url: str, code: str, prefetch: int = 1, namespace: str = "",
                 *, tls: TlsSettings | None = None, check_publisher: bool = True,
                 transient: Callable[[BaseException], bool] = never_transient,
                 transient_retry_seconds: float = TRANSIENT_RETRY_SECONDS) -> None:
        self.amqp_url = amqp_url
        self.transient = transient
        self.transient_retry_seconds = transient_retry_seconds
        self.code = code
        self.namespace = namespace
        self.prefetch = prefetch
        self.user = url_user(amqp_url)
        self.ssl_context = (tls or TlsSettings()).context(amqp_url)
        self.check_publisher = check_publisher
        self._connection: AbstractRobustConnection | None = None
        self._publish_channel: AbstractChannel | None = None
        self._consume_channel: AbstractChannel | None = None
        self._exchanges: Exchanges | None = None
        self._inbox: AbstractQueue | None = None
        self._last_clock: AbstractQueue | None = None
        self._consumer_tag: str | None = None
        self._publish_lock = asyncio.Lock()
        self._capture_channel: AbstractChannel | None = None
        self._capture_exchange: AbstractExchange | None = None

    async def connect(self, peer_codes: Iterable[str] = ()) -> None:
        """Connect and open the topology: this instance's inbox and the inboxes of
        ``peer_codes``, so that messages to a peer that has not started yet wait in its
        queue. The provisioning step declares them (docs/adr/0016); when they are missing
        and this user has configure rights everywhere (guest), they are declared here,
        otherwise ``BrokerNotProvisioned`` is raised."""
        expected = service_user(self.code, self.namespace)
        if self.user != expected:
            log_event(log, "broker_user_is_not_the_service_identity", logging.WARNING,
                      user=self.user, service_user=expected,
                      consequence="receivers that check publishers refuse its messages "
                                  "with 1002")
        if not self.check_publisher:
            log_event(log, "publisher_check_off", logging.WARNING, service=self.code,
                      consequence="any broker user may send this instance messages in "
                                  "any service's name")
        topology = Topology(self.namespace, tuple(dict.fromkeys((self.code, *peer_codes))))
        await self._ensure_topology(topology)
        self._connection = await aio_pika.connect_robust(
            self.amqp_url, ssl_context=self.ssl_context,
            reconnect_interval=RECONNECT_SECONDS,
            client_properties={"connection_name": f"{self.namespace}{self.code}"})
        self._publish_channel = await self._connection.channel(
            publisher_confirms=True, on_return_raises=True
        )
        self._consume_channel = await self._connection.channel()
        await self._consume_channel.set_qos(prefetch_count=self.prefetch)
        self._exchanges = await open_exchanges(self._publish_channel, self.namespace)
        self._inbox = await self._consume_channel.get_queue(
            inbox_queue_name(self.code, self.namespace))
        self._last_clock = await self._consume_channel.get_queue(
            f"{self.namespace}{LAST_CLOCK_QUEUE}")

    async def _ensure_topology(self, topology: Topology) -> None:
        connection = await aio_pika.connect(self.amqp_url, ssl_context=self.ssl_context)
        try:
            try:
                await check_topology(await connection.channel(), topology)
                return
            except ChannelNotFoundEntity as exc:
                missing = str(exc)
            try:
                await declare_topology(await connection.channel(), topology)
            except ChannelClosed as exc:  # ACCESS_REFUSED, or a conflicting declaration
                raise BrokerNotProvisioned(
                    f"the broker topology of namespace {self.namespace!r} is not provisioned "
                    f"({missing}) and user {self.user} may not declare it; provision it "
                    f"first (shared.messaging.provisioning, docs/adr/0016)") from exc
            log_event(log, "broker_topology_declared", user=self.user,
                      namespace=self.namespace, codes=list(topology.codes))
        finally:
            await connection.close()

    async def close(self) -> None:
        """Cancel the consumer and close the connection. While the broker cannot be
        reached, a robust channel's cancel waits for the connection to come back: it is
        given ``CANCEL_SECONDS`` (real seconds) and then left, so that a service asked to
        stop (SIGTERM) stops even with its broker gone."""
        if self._inbox is not None and self._consumer_tag is not None:
            # The connection may already be gone (TimeoutError is an Exception).
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._inbox.cancel(self._consumer_tag), CANCEL_SECONDS)
        if self._connection is not None:
            await self._connection.close()
        self._connection = None

    @property
    def exchanges(self) -> Exchanges:
        if self._exchanges is None:
            raise RuntimeError("broker not connected")
        return self._exchanges

    async def publish(self, envelope: Envelope,
                      headers: Mapping[str, str] | None = None) -> None:
        """Publish persistently, under this instance's ``user_id``, and wait for the
        broker's confirm. ``headers``: AMQP headers to send with it (the trace context,
        ``shared.tracing.publishing``); none by default.

        Mandatory: a message that no queue would take raises ``DeliveryError`` instead of
        vanishing; one to a recipient this user may not address raises
        ``RecipientNotPermitted`` (the broker closes the channel; aio-pika reopens it).
        """
        message = aio_pika.Message(
            body=envelope.model_dump_json().encode(),
            content_type="application/json",
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            message_id=envelope.message_id,
            correlation_id=envelope.correlation_id,
            type=envelope.message_type.value,
            app_id=envelope.sender,
            user_id=self.user,
            timestamp=time.time(),  # when the journal's window exports look (adr 0034)
            headers=dict(headers) if headers else None,
        )
        async with self._publish_lock:
            try:
                await self.exchanges.main.publish(
                    message, routing_key=envelope.recipient, mandatory=True
                )
                MESSAGES_PUBLISHED.labels(message_type=envelope.message_type.value).inc()
            except ChannelClosed as exc:
                # RabbitMQ's reply text starts with the name of its reply code
                if str(exc).startswith("ACCESS_REFUSED"):
                    await self._until_reopened(self._publish_channel)
                    raise RecipientNotPermitted(
                        f"user {self.user} may not send to {envelope.recipient}: {exc}"
                    ) from exc
                raise

    @staticmethod
    async def _until_reopened(channel: AbstractChannel | None) -> None:
        """Wait (up to 10 real seconds) until aio-pika has reopened a channel the broker
        closed, so that the next publish finds it open."""
        for _ in range(200):  # aio-pika reopens it after a pause of its own (1 s)
            if channel is None or not channel.is_closed:
                return
            await asyncio.sleep(0.05)

    async def publish_raw(self, body: bytes, routing_key: str) -> None:
        """Publish bytes as they are, under this instance's user (tests and tools that
        replay messages or send malformed ones)."""
        async with self._publish_lock:
            await self.exchanges.main.publish(
                aio_pika.Message(body=body, delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                                 user_id=self.user, timestamp=time.time()),
                routing_key=routing_key,
                mandatory=True,
            )

    async def broadcast_clock(self, clock_set: ClockSet) -> None:
        """Tell every service of the stack the new simulated time."""
        async with self._publish_lock:
            await self.exchanges.clock.publish(
                aio_pika.Message(body=clock_set.model_dump_json().encode(),
                                 content_type="application/json",
                                 delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                                 user_id=self.user, timestamp=time.time()),
                routing_key="",
            )

    async def publish_capture(self, body: bytes, message_type: str) -> None:
        """Publish a capture (a command this instance's API took, docs/adr/0034) to
        ``rec.capture`` under this instance's code, on a channel of its own with
        confirms, so that it never waits behind the outbox relay's publishing. Not
        mandatory: with the recording stopped nothing takes it, and that is no error."""
        if self._connection is None:
            raise RuntimeError("broker not connected")
        if self._capture_channel is None or self._capture_channel.is_closed:
            self._capture_channel = await self._connection.channel(publisher_confirms=True)
            self._capture_exchange = await self._capture_channel.get_exchange(
                self.exchanges.capture.name, ensure=False)
        assert self._capture_exchange is not None
        await self._capture_exchange.publish(
            aio_pika.Message(body=body, content_type="application/json",
                             delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                             type=message_type, app_id=self.code, user_id=self.user,
                             timestamp=time.time()),
            routing_key=self.code)

    async def last_clock_setting(self) -> ClockSet | None:
        """The stack's latest clock setting, if any (read without taking it away)."""
        if self._last_clock is None:
            raise RuntimeError("broker not connected")
        message = await self._last_clock.get(no_ack=False, fail=False)
        if message is None:
            return None
        await message.nack(requeue=True)
        return self._clock_setting(message)

    def _clock_setting(self, message: AbstractIncomingMessage) -> ClockSet | None:
        """The clock setting ``message`` carries; None (logged) when it is malformed or,
        with ``check_publisher``, published by another user than its ``set_by``'s."""
        try:
            clock_set = ClockSet.model_validate_json(message.body)
        except ValueError as exc:
            log_event(log, "clock_message_refused", logging.WARNING, error=str(exc))
            return None
        expected = service_user(clock_set.set_by, self.namespace)
        if self.check_publisher and message.user_id != expected:
            log_event(log, "clock_message_refused", logging.ERROR, alert=True,
                      set_by=clock_set.set_by, user_id=message.user_id,
                      error=f"set by {clock_set.set_by} but published by "
                            f"{message.user_id or 'a publisher without user_id'}")
            return None
        return clock_set

    async def follow_clock(self, on_clock: Callable[[ClockSet], Awaitable[None]]) -> None:
        """Receive every clock setting of the stack on this instance's exclusive,
        auto-deleted queue (re-declared under the same name after a reconnection)."""
        if self._consume_channel is None:
            raise RuntimeError("broker not connected")
        queue = await self._consume_channel.declare_queue(
            clock_follower_queue_name(self.code, self.namespace), exclusive=True,
            auto_delete=True)
        await queue.bind(self.exchanges.clock.name)

        async def on_message(message: AbstractIncomingMessage) -> None:
            async with message.process(ignore_processed=True):
                clock_set = self._clock_setting(message)
                if clock_set is not None:
                    await on_clock(clock_set)

        await queue.consume(on_message)

    async def consume(self, handler: EnvelopeHandler) -> None:
        """Start consuming this instance's inbox with ``handler``."""
        if self._inbox is None:
            raise RuntimeError("broker not connected")
        self._consumer_tag = await self._inbox.consume(
            tracing.traced(self._make_callback(handler), self.code))

    def _make_callback(
        self, handler: EnvelopeHandler
    ) -> Callable[[AbstractIncomingMessage], Awaitable[None]]:
        async def on_message(message: AbstractIncomingMessage) -> None:
            with doing("message"), handling_message(message.message_id,
                                                    message.correlation_id, message.type):
                await handle(message)

        async def handle(message: AbstractIncomingMessage) -> None:
            started = time.perf_counter()  # message_handling_seconds (shared.metrics)
            message_type = UNDECODABLE
            try:
                envelope = decode_envelope(message.body)
                message_type = envelope.message_type.value
                self._check_publisher(envelope, message)
                # Whether this instance takes the message at all (version, recipient,
                # sender) is the handler's first step: see shared.service.Runtime.
                await self._handle_retrying(handler, envelope, message)
            except (UndecodableMessage, PermanentFailure) as exc:
                handling_ended(message_type, "refused", started)
                code = exc.code if isinstance(exc, PermanentFailure) else None
                await self._dead_letter(message, str(exc), code)
                dead_lettered(message_type, "refused" if isinstance(exc, PermanentFailure)
                              else UNDECODABLE, code)
                await message.ack()
                return
            except Exception as exc:
                handling_ended(message_type, "failed", started)
                if await self._failed(message, exc):
                    dead_lettered(message_type, "failed", None)
                return
            handling_ended(message_type, "handled", started)
            await message.ack()
            MESSAGES_HANDLED.labels(message_type=envelope.message_type.value).inc()

        return on_message

    async def _handle_retrying(self, handler: EnvelopeHandler, envelope: Envelope,
                               message: AbstractIncomingMessage) -> None:
        """Run ``handler`` on ``envelope``; while it fails transiently (``transient``,
        for a store: ``shared.store.transient.is_transient``) run it again after a pause
        growing from ``TRANSIENT_RETRY_FIRST_PAUSE`` to ``TRANSIENT_RETRY_LONGEST_PAUSE``
        real seconds, for up to ``transient_retry_seconds``; then, or on any other
        failure, raise the handler's exception. The handler stores its effect and its
        inbox row in one transaction, so an attempt that failed left nothing behind."""

        def retried(state: RetryCallState) -> None:
            MESSAGE_HANDLING_FAILURES.labels(outcome="retried").inc()
            error = state.outcome.exception() if state.outcome is not None else None
            log_event(log, "message_handling_retried", logging.WARNING,
                      message_id=message.message_id, correlation_id=message.correlation_id,
                      attempt=state.attempt_number, error=repr(error))

        async for attempt in AsyncRetrying(
            retry=retry_if_exception(self.transient),
            wait=wait_exponential_jitter(multiplier=TRANSIENT_RETRY_FIRST_PAUSE,
                                         max=TRANSIENT_RETRY_LONGEST_PAUSE,
                                         jitter=TRANSIENT_RETRY_FIRST_PAUSE),
            stop=stop_after_delay(self.transient_retry_seconds),
            before_sleep=retried,
            reraise=True,
        ):
            with attempt:
                await handler(envelope)

    async def _failed(self, message: AbstractIncomingMessage, exc: Exception) -> bool:
        """After ``message``'s handling failed with ``exc`` (not transiently, or for
        longer than ``transient_retry_seconds``): at its last delivery
        (``delivery_count``), dead-letter it with the reason, so that no message leaves
        the queue without one (True); before, return it to the broker for a later
        delivery (False)."""
        count = delivery_count(message)
        tracing.handling_failed(exc)
        if count is not None and count >= DELIVERY_LIMIT:
            MESSAGE_HANDLING_FAILURES.labels(outcome="dead_lettered").inc()
            await self._dead_letter(
                message, f"handling failed on each of {count + 1} deliveries; "
                         f"the last time with {exc!r}")
            await message.ack()
            return True
        MESSAGE_HANDLING_FAILURES.labels(outcome="returned").inc()
        log_event(log, "message_handling_failed", logging.ERROR,
                  message_id=message.message_id, correlation_id=message.correlation_id,
                  delivery_count=count, error=repr(exc))
        await asyncio.sleep(RETURN_PAUSE_SECONDS)
        await message.nack(requeue=True)
        return False

    def _check_publisher(self, envelope: Envelope, message: AbstractIncomingMessage) -> None:
        """Raise ``PermanentFailure`` (1002) when ``envelope``'s sender is not the service
        whose user published it; logged as the alert ``message_publisher_refused``."""
        if not self.check_publisher:
            return
        refusal = publisher_refusal(envelope.sender, message.user_id, self.namespace)
        if refusal is None:
            return
        log_event(log, "message_publisher_refused", logging.ERROR, alert=True,
                  queue=self.code, message_id=envelope.message_id,
                  transaction_id=envelope.correlation_id,
                  message_type=envelope.message_type.value, sender=envelope.sender,
                  user_id=message.user_id, response_code=int(refusal.code),
                  reason=refusal.reason)
        raise PermanentFailure(refusal.reason, code=int(refusal.code))

    async def _dead_letter(self, message: AbstractIncomingMessage, reason: str,
                           code: int | None = None) -> None:
        tracing.dead_lettered(reason, code)
        log_event(
            log,
            "message_dead_lettered",
            logging.WARNING,
            queue=self.code,
            message_id=message.message_id,
            correlation_id=message.correlation_id,
            reason=reason,
            response_code=code,
        )
        headers: HeadersType = {
            "x-dead-reason": reason[:1000], "x-dead-queue": self.code,
            "x-published-by": message.user_id or ""}
        if code is not None:
            headers["x-dead-code"] = code
        copy = aio_pika.Message(
            body=message.body,
            content_type=message.content_type,
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            message_id=message.message_id,
            correlation_id=message.correlation_id,
            type=message.type,
            headers=headers,
            user_id=self.user,
            timestamp=time.time(),
        )
        async with self._publish_lock:
            await self.exchanges.dead.publish(copy, routing_key=self.code, mandatory=True)
