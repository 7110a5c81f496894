"""The shared plumbing against the real RabbitMQ and a real MongoDB-wire server."""

from __future__ import annotations

import asyncio
import contextlib
import json
from datetime import UTC, datetime
from urllib.parse import urlsplit, urlunsplit

import aio_pika
import pytest

from shared.blocks import SerialRange, UnitAttributes, UnitBlock
from shared.clock import SimulationClock
from shared.codes import AccountType, MessageType, ResponseCode, TransactionStatus, UnitType
from shared.contracts import Envelope, TransactionStatusNotified, make_envelope
from shared.messaging import RecipientNotPermitted, dead_letter_queue_name, inbox_queue_name
from shared.store import (
    OutboxRelay,
    Session,
    enqueue,
    ensure_outbox_indexes,
    handle_once,
    make_client,
)
from shared.store.unit_blocks import BlockRefusal, Holder, UnitBlockStore
from shared.testing.infra import Namespace

pytestmark = pytest.mark.integration

AAU_KZ = UnitAttributes("KZ", UnitType.AAU, 2, 2)
KZ_PARTY = Holder("KZ", AccountType.PARTY_HOLDING, 1)
KZ_PERSON = Holder("KZ", AccountType.PERSON_HOLDING, 1001)


def status_message(recipient: str, tx: str = "KZ1") -> Envelope:
    return make_envelope(
        message_type=MessageType.TRANSACTION_STATUS_NOTIFIED,
        sender="ITL",
        recipient=recipient,
        correlation_id=tx,
        payload=TransactionStatusNotified(transaction_id=tx,
                                          status=TransactionStatus.CHECKED_NO_DISCREPANCY),
        sent_at=datetime.now(UTC),
    )


async def test_malformed_message_is_dead_lettered_with_reason_and_consumer_keeps_running(
    broker_url: str, namespace: Namespace
) -> None:
    received: list[Envelope] = []

    async def handler(envelope: Envelope) -> None:
        received.append(envelope)

    broker = namespace.broker("KZ")
    await broker.connect()
    await broker.consume(handler)
    itl = namespace.broker("ITL")  # the only service that may send to KZ
    await itl.connect()
    try:
        await itl.publish_raw(b"not json at all", "KZ")
        unknown = status_message("KZ").model_dump(mode="json")
        unknown["message_type"] = "NoSuchMessage"
        await itl.publish_raw(json.dumps(unknown).encode(), "KZ")
        good = status_message("KZ")
        await itl.publish(good)
        for _ in range(100):
            if received:
                break
            await asyncio.sleep(0.05)
        assert [e.message_id for e in received] == [good.message_id]

        connection = await aio_pika.connect(broker_url)
        channel = await connection.channel()
        dead = await channel.get_queue(dead_letter_queue_name("KZ", namespace.prefix),
                                       ensure=False)
        reasons: list[str] = []
        for _ in range(100):
            message = await dead.get(fail=False)
            if message is None:
                if len(reasons) == 2:
                    break
                await asyncio.sleep(0.05)
                continue
            reasons.append(str(message.headers["x-dead-reason"]))
            await message.ack()
        await connection.close()
        assert len(reasons) == 2
        assert "invalid envelope" in reasons[0]
        assert "message_type" in reasons[1]
    finally:
        await itl.close()
        await broker.close()


async def test_a_message_no_queue_takes_raises_instead_of_vanishing(
    broker_url: str, namespace: Namespace
) -> None:
    broker = namespace.broker("ITL")
    await broker.connect(peer_codes=["KZ"])
    try:
        await delete_queue(broker_url, inbox_queue_name("JP", namespace.prefix))
        with pytest.raises(aio_pika.exceptions.DeliveryError):
            await broker.publish(status_message("JP"))
        # a recipient outside the namespace is refused by the broker before routing
        with pytest.raises(RecipientNotPermitted, match="may not send to XX: ACCESS_REFUSED"):
            await broker.publish(status_message("XX"))
        # and the channel is back for the next message
        with pytest.raises(aio_pika.exceptions.DeliveryError):
            await broker.publish(status_message("JP"))
    finally:
        await broker.close()


async def delete_queue(broker_url: str, queue: str) -> None:
    connection = await aio_pika.connect(broker_url)
    try:
        channel = await connection.channel()
        await channel.queue_delete(queue)
    finally:
        await connection.close()


async def test_inbox_gives_a_redelivered_message_no_second_effect(mongo_url: str) -> None:
    client = make_client(mongo_url)
    db = client["plumbing_inbox"]
    envelope = status_message("KZ")
    effects = []

    async def effect(session: Session) -> None:
        effects.append(1)
        await db.effects.insert_one({"m": envelope.message_id}, session=session)

    now = datetime.now(UTC)
    assert await handle_once(client, db, envelope, effect, now) is True
    assert await handle_once(client, db, envelope, effect, now) is False
    assert await db.effects.count_documents({"m": envelope.message_id}) == 1
    await client.close()


async def test_outbox_relay_publishes_committed_rows_once_each(
    mongo_url: str, broker_url: str, namespace: Namespace
) -> None:
    client = make_client(mongo_url)
    db = client["plumbing_outbox"]
    await ensure_outbox_indexes(db)
    sender = namespace.broker("ITL")
    await sender.connect(peer_codes=["KZ"])
    relay = OutboxRelay(db, sender, SimulationClock())
    messages = [status_message("KZ", "KZ0"), status_message("XX", "XX1"),
                status_message("KZ", "KZ1"), status_message("KZ", "KZ2")]
    async with client.start_session() as session:
        async def work(s: Session) -> None:
            for m in messages:
                await enqueue(db, m, s)
        await session.with_transaction(work)
    assert await relay.drain() == 3
    assert await relay.drain() == 0
    # the one to a recipient the ITL may not address is set aside, not retried forever
    (aside,) = await db.outbox.find({"undeliverable": {"$exists": True}}).to_list()
    assert aside["recipient"] == "XX"
    assert "may not send to XX" in aside["undeliverable"]
    received: list[str] = []
    receiver = namespace.broker("KZ")
    await receiver.connect()

    async def handler(envelope: Envelope) -> None:
        received.append(envelope.correlation_id)

    await receiver.consume(handler)
    for _ in range(100):
        if len(received) == 3:
            break
        await asyncio.sleep(0.05)
    assert received == ["KZ0", "KZ1", "KZ2"]
    await receiver.close()
    await sender.close()
    await client.close()


async def test_block_store_splits_on_reserve_and_merges_back_on_release(mongo_url: str) -> None:
    client = make_client(mongo_url)
    store = UnitBlockStore(client["plumbing_blocks"]["units"])
    await store.ensure_indexes()
    block = UnitBlock(AAU_KZ, SerialRange(1, 1000))
    wanted = UnitBlock(AAU_KZ, SerialRange(101, 200))

    async with client.start_session() as session:
        async def issue(s: Session) -> None:
            await store.insert([block], KZ_PARTY, s)
        await session.with_transaction(issue)

        async def reserve(s: Session) -> None:
            assert await store.check_reservable([wanted], KZ_PARTY, "KZ2", s) == []
            await store.reserve([wanted], "KZ2", s)
        await session.with_transaction(reserve)

    docs = await store.held({})
    assert [(d["serial_start"], d["serial_end"], d["reserved_by"]) for d in docs] == [
        (1, 100, None), (101, 200, "KZ2"), (201, 1000, None)]

    async with client.start_session() as session:
        async def other(s: Session) -> list[BlockRefusal]:
            return await store.check_reservable([wanted], KZ_PARTY, "KZ3", s)
        refusals = await session.with_transaction(other)
    assert [r.code for r in refusals] == [ResponseCode.BLOCK_RESERVED]

    async with client.start_session() as session:
        async def release(s: Session) -> None:
            await store.release("KZ2", s)
        await session.with_transaction(release)
    docs = await store.held({})
    assert [(d["serial_start"], d["serial_end"]) for d in docs] == [(1, 1000)]

    async with client.start_session() as session:
        async def move(s: Session) -> int:
            await store.reserve([wanted], "KZ4", s)
            return await store.move_reserved("KZ4", KZ_PERSON, s)
        assert await session.with_transaction(move) == 100
    assert await store.sum_units({"account_id": 1001}) == 100
    assert await store.sum_units({"account_id": 1}) == 900
    await client.close()


async def test_a_broker_gone_away_does_not_hold_up_closing(
    broker_url: str, namespace: Namespace
) -> None:
    """A service asked to stop while its broker cannot be reached stops: the consumer's
    cancel, which a robust channel would hold until the connection came back, is given
    up (``CANCEL_SECONDS``) and the connection closed. The broker is cut off by a TCP
    relay in front of it, so the shared broker itself is never stopped."""
    upstream = urlsplit(namespace.url("KZ"))
    cut: list[asyncio.StreamWriter] = []

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, OSError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        writer.close()

    async def relay(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        to_reader, to_writer = await asyncio.open_connection(upstream.hostname,
                                                             upstream.port or 5672)
        cut.extend([writer, to_writer])
        tasks.extend([asyncio.create_task(pipe(reader, to_writer)),
                      asyncio.create_task(pipe(to_reader, writer))])

    tasks: list[asyncio.Task[None]] = []
    server = await asyncio.start_server(relay, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    broker = namespace.broker("KZ")
    broker.amqp_url = urlunsplit(upstream._replace(
        netloc=f"{upstream.netloc.rsplit('@', 1)[0]}@127.0.0.1:{port}"))

    async def handler(envelope: Envelope) -> None:
        return None

    await broker.connect()
    await broker.consume(handler)
    server.close()
    for writer in cut:
        writer.transport.abort()
    await asyncio.sleep(1.5)  # the connection is lost and aio-pika tries to reconnect
    # a liveness bound, far above CANCEL_SECONDS: before the fix close() never returned
    await asyncio.wait_for(broker.close(), timeout=30)
    for task in tasks:
        task.cancel()

