"""Thin plumbing over aio-pika: robust connection, confirmed mandatory publishing,
and a consumer that acknowledges only after the handler has stored its effect.

No business rules live here.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterable

import aio_pika
from aio_pika.abc import (
    AbstractChannel,
    AbstractIncomingMessage,
    AbstractQueue,
    AbstractRobustConnection,
    HeadersType,
)

from shared.contracts import Envelope, UndecodableMessage, decode_envelope
from shared.logs import log_event
from shared.messaging.clock import CLOCK_EXCHANGE, LAST_CLOCK_QUEUE, ClockSet
from shared.messaging.topology import Exchanges, declare_exchanges, declare_inbox

log = logging.getLogger("shared.messaging")

EnvelopeHandler = Callable[[Envelope], Awaitable[None]]


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


class Broker:
    """One service instance's connection to RabbitMQ."""

    def __init__(self, amqp_url: str, code: str, prefetch: int = 1, namespace: str = "") -> None:
        self.amqp_url = amqp_url
        self.code = code
        self.namespace = namespace
        self.prefetch = prefetch
        self._connection: AbstractRobustConnection | None = None
        self._publish_channel: AbstractChannel | None = None
        self._consume_channel: AbstractChannel | None = None
        self._exchanges: Exchanges | None = None
        self._inbox: AbstractQueue | None = None
        self._consumer_tag: str | None = None
        self._publish_lock = asyncio.Lock()

    async def connect(self, peer_codes: Iterable[str] = ()) -> None:
        """Connect, declare the topology, and pre-declare the inboxes of ``peer_codes``
        so that messages to a peer that has not started yet wait in its queue."""
        self._connection = await aio_pika.connect_robust(self.amqp_url)
        self._publish_channel = await self._connection.channel(
            publisher_confirms=True, on_return_raises=True
        )
        self._consume_channel = await self._connection.channel()
        await self._consume_channel.set_qos(prefetch_count=self.prefetch)
        self._exchanges = await declare_exchanges(self._publish_channel, self.namespace)
        consume_exchanges = await declare_exchanges(self._consume_channel, self.namespace)
        self._inbox = await declare_inbox(self._consume_channel, consume_exchanges, self.code)
        for peer in peer_codes:
            if peer != self.code:
                await declare_inbox(self._publish_channel, self._exchanges, peer)

    async def close(self) -> None:
        if self._inbox is not None and self._consumer_tag is not None:
            # The connection may already be gone.
            with contextlib.suppress(Exception):
                await self._inbox.cancel(self._consumer_tag)
        if self._connection is not None:
            await self._connection.close()
        self._connection = None

    @property
    def exchanges(self) -> Exchanges:
        if self._exchanges is None:
            raise RuntimeError("broker not connected")
        return self._exchanges

    async def publish(self, envelope: Envelope) -> None:
        """Publish persistently and wait for the broker's confirm.

        Mandatory: a message that no queue would take raises instead of vanishing.
        """
        message = aio_pika.Message(
            body=envelope.model_dump_json().encode(),
            content_type="application/json",
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            message_id=envelope.message_id,
            correlation_id=envelope.correlation_id,
            type=envelope.message_type.value,
            app_id=envelope.sender,
        )
        async with self._publish_lock:
            await self.exchanges.main.publish(
                message, routing_key=envelope.recipient, mandatory=True
            )

    async def publish_raw(self, body: bytes, routing_key: str) -> None:
        """Publish bytes as they are (tests and tools that replay or forge messages)."""
        async with self._publish_lock:
            await self.exchanges.main.publish(
                aio_pika.Message(body=body, delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
                routing_key=routing_key,
                mandatory=True,
            )

    async def broadcast_clock(self, clock_set: ClockSet) -> None:
        """Tell every service of the stack the new simulated time."""
        exchange = await self._clock_exchange()
        async with self._publish_lock:
            await exchange.publish(
                aio_pika.Message(body=clock_set.model_dump_json().encode(),
                                 content_type="application/json",
                                 delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
                routing_key="",
            )

    async def last_clock_setting(self) -> ClockSet | None:
        """The stack's latest clock setting, if any (read without taking it away)."""
        if self._consume_channel is None:
            raise RuntimeError("broker not connected")
        queue = await self._last_clock_queue(self._consume_channel)
        message = await queue.get(no_ack=False, fail=False)
        if message is None:
            return None
        await message.nack(requeue=True)
        try:
            return ClockSet.model_validate_json(message.body)
        except ValueError:
            return None

    async def _last_clock_queue(self, channel: AbstractChannel) -> AbstractQueue:
        exchange = await self._clock_exchange(channel)
        queue = await channel.declare_queue(
            f"{self.namespace}{LAST_CLOCK_QUEUE}", durable=True,
            arguments={"x-max-length": 1, "x-overflow": "drop-head"})
        await queue.bind(exchange)
        return queue

    async def follow_clock(self, on_clock: Callable[[ClockSet], Awaitable[None]]) -> None:
        """Receive every clock setting of the stack on an exclusive, auto-deleted queue."""
        if self._consume_channel is None:
            raise RuntimeError("broker not connected")
        exchange = await self._clock_exchange(self._consume_channel)
        await self._last_clock_queue(self._consume_channel)
        queue = await self._consume_channel.declare_queue(exclusive=True, auto_delete=True)
        await queue.bind(exchange)

        async def on_message(message: AbstractIncomingMessage) -> None:
            async with message.process(ignore_processed=True):
                try:
                    clock_set = ClockSet.model_validate_json(message.body)
                except ValueError as exc:
                    log_event(log, "clock_message_refused", logging.WARNING, error=str(exc))
                    return
                await on_clock(clock_set)

        await queue.consume(on_message)

    async def _clock_exchange(self, channel: AbstractChannel | None = None
                              ) -> aio_pika.abc.AbstractExchange:
        channel = channel or self._publish_channel
        if channel is None:
            raise RuntimeError("broker not connected")
        return await channel.declare_exchange(
            f"{self.namespace}{CLOCK_EXCHANGE}", aio_pika.ExchangeType.FANOUT, durable=True
        )

    async def consume(self, handler: EnvelopeHandler) -> None:
        """Start consuming this instance's inbox with ``handler``."""
        if self._inbox is None:
            raise RuntimeError("broker not connected")
        self._consumer_tag = await self._inbox.consume(self._make_callback(handler))

    def _make_callback(
        self, handler: EnvelopeHandler
    ) -> Callable[[AbstractIncomingMessage], Awaitable[None]]:
        async def on_message(message: AbstractIncomingMessage) -> None:
            try:
                # Whether this instance takes the message at all (version, recipient,
                # sender) is the handler's first step: see shared.service.Runtime.
                await handler(decode_envelope(message.body))
            except (UndecodableMessage, PermanentFailure) as exc:
                code = exc.code if isinstance(exc, PermanentFailure) else None
                await self._dead_letter(message, str(exc), code)
                await message.ack()
                return
            except Exception as exc:
                # Transient (store or broker hiccup): let the broker redeliver; after
                # DELIVERY_LIMIT deliveries the quorum queue dead-letters it.
                log_event(
                    log,
                    "message_handling_failed",
                    logging.ERROR,
                    message_id=message.message_id,
                    correlation_id=message.correlation_id,
                    error=repr(exc),
                )
                await asyncio.sleep(0.5)
                await message.nack(requeue=True)
                return
            await message.ack()

        return on_message

    async def _dead_letter(self, message: AbstractIncomingMessage, reason: str,
                           code: int | None = None) -> None:
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
            "x-dead-reason": reason[:1000], "x-dead-queue": self.code}
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
        )
        async with self._publish_lock:
            await self.exchanges.dead.publish(copy, routing_key=self.code, mandatory=True)
