"""A message whose handling fails, against the real RabbitMQ and a real store process.

A transient store failure is retried in the process, however many times, and never uses
up the queue's delivery limit; a failure that outlasts the retry window, or is not
transient, returns the message to the broker, and at the last delivery the consumer
dead-letters it with its reason (docs/adr/0027).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import aio_pika
import pytest
from prometheus_client import REGISTRY
from pymongo import AsyncMongoClient

from shared.contracts import Envelope
from shared.messaging import (
    Broker,
    EnvelopeHandler,
    dead_letter_queue_name,
    inbox_queue_name,
)
from shared.messaging.broker import TRANSIENT_RETRY_SECONDS
from shared.messaging.topology import DELIVERY_LIMIT
from shared.store.transient import is_transient
from shared.testing.infra import Namespace, StoreServer, eventually, start_store
from tests.integration.test_plumbing import status_message

pytestmark = pytest.mark.integration

#: Real milliseconds the test's store client waits for an unreachable store per command.
SELECTION_MS = 200


def handling_counts(message_type: str) -> dict[str, float]:
    """This process's ``message_handling_seconds`` observations of ``message_type`` that
    ``failed`` and were ``handled``, and its dead letters whose handling ``failed``."""
    def sample(name: str, **labels: str) -> float:
        return REGISTRY.get_sample_value(name, {"message_type": message_type, **labels}) or 0.0

    return {"failed": sample("message_handling_seconds_count", outcome="failed"),
            "handled": sample("message_handling_seconds_count", outcome="handled"),
            "dead_lettered": sample("messages_dead_lettered_total", reason="failed",
                                    response_code="")}


@pytest.fixture
async def own_store() -> AsyncIterator[StoreServer]:
    """A store process of the test's own (SecantusDB, also when MONGO_URL names an
    external server), which the test may stop and start again."""
    server = start_store(own_process=True)
    yield server
    server.stop()


async def dead_letters(broker_url: str, namespace: Namespace, code: str) -> list[dict[str, object]]:
    """Headers of every message in ``code``'s dead-letter queue, taken off it."""
    connection = await aio_pika.connect(broker_url)
    try:
        channel = await connection.channel()
        queue = await channel.get_queue(dead_letter_queue_name(code, namespace.prefix),
                                        ensure=False)
        found: list[dict[str, object]] = []
        while (message := await queue.get(fail=False)) is not None:
            found.append(dict(message.headers))
            await message.ack()
        return found
    finally:
        await connection.close()


async def inbox_depth(broker_url: str, namespace: Namespace, code: str) -> int:
    connection = await aio_pika.connect(broker_url)
    try:
        channel = await connection.channel()
        queue = await channel.declare_queue(inbox_queue_name(code, namespace.prefix),
                                            passive=True)
        return int(queue.declaration_result.message_count or 0)
    finally:
        await connection.close()


@contextlib.asynccontextmanager
async def kz_consuming(namespace: Namespace, handler: EnvelopeHandler,
                       transient_retry_seconds: float = TRANSIENT_RETRY_SECONDS,
                       ) -> AsyncIterator[Broker]:
    """KZ consuming its inbox with ``handler`` (store failures transient as in a
    service); yields the ITL's broker, the only sender KZ takes messages from."""
    kz = namespace.broker("KZ", transient=is_transient,
                          transient_retry_seconds=transient_retry_seconds)
    itl = namespace.broker("ITL")
    await kz.connect()
    await itl.connect()
    try:
        await kz.consume(handler)
        yield itl
    finally:
        await kz.close()
        await itl.close()


def unreachable_store_client(store: StoreServer) -> AsyncMongoClient[dict[str, object]]:
    """A client of ``store`` that gives up on an unreachable store after SELECTION_MS."""
    return AsyncMongoClient(store.url, serverSelectionTimeoutMS=SELECTION_MS)


async def test_a_store_down_for_more_attempts_than_the_delivery_limit_loses_nothing(
        broker_url: str, namespace: Namespace, own_store: StoreServer) -> None:
    """The store is stopped before the message arrives and fails every attempt well past
    DELIVERY_LIMIT; once it is back the message is handled once, from its first
    delivery, and nothing is dead-lettered."""
    client = unreachable_store_client(own_store)
    attempts: list[str] = []

    async def handler(envelope: Envelope) -> None:
        attempts.append(envelope.message_id)
        await client["failures"].effects.insert_one({"_id": envelope.message_id})

    own_store.stop()
    try:
        async with kz_consuming(namespace, handler, transient_retry_seconds=120) as itl:
            message = status_message("KZ")
            await itl.publish(message)

            async def failed_past_the_limit() -> bool | None:
                return True if len(attempts) > DELIVERY_LIMIT + 1 else None

            await eventually(failed_past_the_limit, "attempts past the delivery limit")
            restarted = start_store(port=own_store.port, own_process=True)
            own_store.process = restarted.process

            async def stored() -> dict[str, object] | None:
                return await client["failures"].effects.find_one({"_id": message.message_id})

            await eventually(stored, "the effect once the store is back")

            async def inbox_empty() -> bool | None:
                return True if await inbox_depth(broker_url, namespace, "KZ") == 0 else None

            await eventually(inbox_empty, "the message acknowledged")
        assert await client["failures"].effects.count_documents({}) == 1
        assert await dead_letters(broker_url, namespace, "KZ") == []
    finally:
        await client.close()


@pytest.mark.parametrize("failures, dead", [
    (DELIVERY_LIMIT, False),       # fails on every delivery but the last: handled there
    (DELIVERY_LIMIT + 1, True),    # fails on every delivery: dead-lettered, with a reason
])
async def test_a_handler_failing_on_every_delivery_is_dead_lettered_with_its_reason(
        broker_url: str, namespace: Namespace, failures: int, dead: bool) -> None:
    """A failure that is not transient returns the message to the broker; at its last
    delivery (x-delivery-count = DELIVERY_LIMIT) the consumer dead-letters it with the
    reason itself, never leaving it to the queue's limit, which gives none."""
    attempts: list[str] = []
    handled: list[str] = []
    counted = handling_counts(status_message("KZ").message_type.value)

    async def handler(envelope: Envelope) -> None:
        attempts.append(envelope.message_id)
        if len(attempts) <= failures:
            raise ValueError(f"impossible content, attempt {len(attempts)}")
        handled.append(envelope.message_id)

    async with kz_consuming(namespace, handler) as itl:
        message = status_message("KZ")
        await itl.publish(message)

        async def settled() -> bool | None:
            done = handled or len(attempts) > DELIVERY_LIMIT
            empty = await inbox_depth(broker_url, namespace, "KZ") == 0
            return True if done and empty else None

        await eventually(settled, "the message settled")
        await asyncio.sleep(0.5)  # a dead letter published just before the ack
    letters = await dead_letters(broker_url, namespace, "KZ")
    assert len(attempts) == min(failures + 1, DELIVERY_LIMIT + 1)
    # GET /metrics (shared/metrics.py): each failed attempt's handling time, the dead
    # letter by its type and reason class
    grown = {key: value - counted[key] for key, value in handling_counts(
        message.message_type.value).items()}
    assert grown == {"failed": min(failures, DELIVERY_LIMIT + 1),
                     "handled": 0 if dead else 1, "dead_lettered": 1 if dead else 0}
    if dead:
        assert handled == []
        assert len(letters) == 1
        reason = str(letters[0]["x-dead-reason"])
        assert f"each of {DELIVERY_LIMIT + 1} deliveries" in reason
        assert f"attempt {DELIVERY_LIMIT + 1}" in reason
        assert "x-first-death-reason" not in letters[0]
    else:
        assert handled == [message.message_id]
        assert letters == []


async def test_a_transient_failure_outlasting_the_retry_window_ends_dead_lettered_with_it(
        broker_url: str, namespace: Namespace, own_store: StoreServer) -> None:
    """With the store gone for good, each delivery retries for the retry window, goes
    back to the broker, and the last one is dead-lettered naming the store's error."""
    client = unreachable_store_client(own_store)

    async def handler(envelope: Envelope) -> None:
        await client["failures"].effects.insert_one({"_id": envelope.message_id})

    own_store.stop()
    try:
        async with kz_consuming(namespace, handler, transient_retry_seconds=0.3) as itl:
            await itl.publish(status_message("KZ"))

            async def dead_letter() -> list[dict[str, object]] | None:
                return await dead_letters(broker_url, namespace, "KZ") or None

            letters = await eventually(dead_letter, "the dead letter")
        assert len(letters) == 1
        assert "ServerSelectionTimeoutError" in str(letters[0]["x-dead-reason"])
    finally:
        await client.close()
