"""Message-level checks in a service's consumer, against the real RabbitMQ and a real
MongoDB-wire server: a refused message records nothing, is dead-lettered with its code
and reason and, from a peer, answered with a MessageAck; the same message id with other
content is refused with 1102 and raised as an alert, a true redelivery stays silent."""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import aio_pika
import pytest
from aio_pika.abc import AbstractIncomingMessage

from shared.codes import (
    ITL_CODE,
    MAX_BLOCKS_PER_TRANSACTION,
    MessageType,
    ResponseCode,
    TransactionStatus,
)
from shared.contracts import Envelope, TransactionStatusNotified, make_envelope
from shared.messaging import Broker, dead_letter_queue_name
from shared.service import Runtime, ServiceSettings
from shared.store import Session
from shared.testing.infra import Namespace, eventually

pytestmark = pytest.mark.integration





def status(tx: str, value: TransactionStatus = TransactionStatus.ACCEPTED,
           message_id: str | None = None, sender: str = "KZ") -> Envelope:
    return make_envelope(
        message_type=MessageType.TRANSACTION_STATUS_NOTIFIED, sender=sender,
        recipient=ITL_CODE, correlation_id=tx,
        payload=TransactionStatusNotified(transaction_id=tx, status=value),
        sent_at=datetime(2013, 3, 1, 12, 30, tzinfo=UTC), message_id=message_id)


@dataclass
class Hub:
    """A service instance with code ITL that answers refusals, whose only handler records
    each message it is given once; the test plays the registry KZ."""

    runtime: Runtime
    kz: Broker
    broker_url: str
    namespace: Namespace
    received: list[Envelope] = field(default_factory=list)

    async def publish_as(self, code: str, envelope: Envelope) -> None:
        """Publish ``envelope`` with service ``code``'s own broker credentials."""
        broker = self.namespace.broker(code)
        await broker.connect()
        try:
            await broker.publish(envelope)
        finally:
            await broker.close()

    async def effects(self) -> list[dict[str, Any]]:
        return await self.runtime.db.effects.find({}, {"_id": 0}).to_list()

    async def wait_effects(self, count: int) -> list[dict[str, Any]]:
        async def probe() -> list[dict[str, Any]] | None:
            found = await self.effects()
            return found if len(found) >= count else None

        return await eventually(probe, f"{count} effects")

    async def dead_letters(self, count: int) -> list[AbstractIncomingMessage]:
        """The next ``count`` messages of the hub's dead-letter queue, taken off it."""
        connection = await aio_pika.connect(self.broker_url)
        try:
            channel = await connection.channel()
            queue = await channel.get_queue(
                dead_letter_queue_name(ITL_CODE, self.namespace.prefix), ensure=False)
            found: list[AbstractIncomingMessage] = []

            async def probe() -> list[AbstractIncomingMessage] | None:
                message = await queue.get(fail=False)
                if message is not None:
                    await message.ack()
                    found.append(message)
                return found if len(found) >= count else None

            return await eventually(probe, f"{count} dead letters")
        finally:
            await connection.close()

    async def dead_letter_count(self) -> int:
        connection = await aio_pika.connect(self.broker_url)
        try:
            channel = await connection.channel()
            queue = await channel.declare_queue(
                dead_letter_queue_name(ITL_CODE, self.namespace.prefix), passive=True)
            return int(queue.declaration_result.message_count or 0)
        finally:
            await connection.close()

    def acks(self) -> list[Envelope]:
        return [e for e in self.received if e.message_type == MessageType.MESSAGE_ACK]

    async def wait_acks(self, count: int) -> list[Envelope]:
        async def probe() -> list[Envelope] | None:
            return self.acks() if len(self.acks()) >= count else None

        return await eventually(probe, f"{count} MessageAcks at KZ")


@pytest.fixture
async def hub(mongo_url: str, broker_url: str, namespace: Namespace) -> AsyncIterator[Hub]:
    settings = ServiceSettings(mongo_url=mongo_url, amqp_url=namespace.url(ITL_CODE),
                               amqp_namespace=namespace.prefix)
    runtime = Runtime(settings, code=ITL_CODE,
                      default_database=f"checks_{uuid.uuid4().hex[:12]}",
                      peer_codes=["KZ", "JP"], answer_refusals=True)

    async def record(envelope: Envelope) -> None:
        async def effect(session: Session) -> None:
            await runtime.db.effects.insert_one(
                {"message_id": envelope.message_id, "payload": envelope.payload},
                session=session)

        await runtime.handle_once(envelope, effect)

    kz = namespace.broker("KZ")
    await runtime.start(record)
    await kz.connect()
    hub = Hub(runtime, kz, broker_url, namespace)

    async def collect(envelope: Envelope) -> None:
        hub.received.append(envelope)

    await kz.consume(collect)
    try:
        yield hub
    finally:
        await kz.close()
        await runtime.stop()


async def test_the_same_message_id_with_other_content_is_refused_with_1102_and_an_alert(
    hub: Hub, caplog: pytest.LogCaptureFixture,
) -> None:
    first = status("KZ1", TransactionStatus.ACCEPTED)
    await hub.kz.publish(first)
    assert [e["message_id"] for e in await hub.wait_effects(1)] == [first.message_id]

    forged = status("KZ1", TransactionStatus.REJECTED, message_id=first.message_id)
    with caplog.at_level(logging.WARNING):
        await hub.kz.publish(forged)
        (dead,) = await hub.dead_letters(1)
        (ack,) = await hub.wait_acks(1)

    assert dead.message_id == first.message_id
    assert dead.headers["x-dead-code"] == ResponseCode.DUPLICATE_MESSAGE_DIFFERENT_CONTENT
    reason = str(dead.headers["x-dead-reason"])
    assert reason == (f"message id {first.message_id} was received before with different "
                      f"content (differs in payload.status)")
    assert json.loads(dead.body)["payload"]["status"] == TransactionStatus.REJECTED

    assert ack.payload == {"acked_message_id": first.message_id, "accepted": False,
                           "response_codes": [1102], "reason": reason}
    assert ack.causation_id == first.message_id

    alerts = [r for r in caplog.records
              if r.getMessage() == "duplicate_message_id_different_content"]
    assert len(alerts) == 1
    assert alerts[0].levelno == logging.ERROR
    fields = alerts[0].__dict__["fields"]
    assert fields["alert"] is True
    assert fields["message_id"] == first.message_id
    assert fields["sender"] == "KZ"
    assert fields["response_code"] == 1102

    # nothing changed: one effect, the inbox keeps the first content
    assert await hub.effects() == [{"message_id": first.message_id,
                                    "payload": first.model_dump(mode="json")["payload"]}]
    kept = await hub.runtime.db.inbox.find_one({"_id": first.message_id})
    assert kept is not None
    assert kept["envelope"] == first.model_dump(mode="json")


async def test_a_redelivery_serialised_otherwise_is_a_silent_no_op(
    hub: Hub, caplog: pytest.LogCaptureFixture,
) -> None:
    first = status("KZ1")
    await hub.kz.publish(first)
    await hub.wait_effects(1)

    # the same message: another key order, another spelling of the same instant
    document = first.model_dump(mode="json")
    assert document["sent_at"] == "2013-03-01T12:30:00Z"
    again = {key: document[key] for key in reversed(document)}
    again["sent_at"] = "2013-03-01T18:30:00.000+06:00"
    with caplog.at_level(logging.WARNING):
        await hub.kz.publish_raw(json.dumps(again).encode(), ITL_CODE)
        await hub.kz.publish(first)
        # handled in order: once the next message has its effect, both were handled
        following = status("KZ2")
        await hub.kz.publish(following)
        effects = await hub.wait_effects(2)

    assert [e["message_id"] for e in effects] == [first.message_id, following.message_id]
    assert await hub.dead_letter_count() == 0
    assert hub.acks() == []
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING
                and r.name.startswith("shared")]


async def test_a_refused_message_records_nothing_and_a_peer_gets_one_answer(
    hub: Hub,
) -> None:
    unknown_version = status("KZ5").model_copy(update={"schema_version": "des-9.9/1"})
    await hub.kz.publish(unknown_version)
    await hub.kz.publish(unknown_version)  # delivered again: dead-lettered again, one answer
    stranger = status("DE1", sender="DE")
    await hub.publish_as("DE", stranger)  # a broker user, but not a registry the ITL knows
    dead = await hub.dead_letters(3)

    assert [(m.message_id, m.headers["x-dead-code"]) for m in dead] == [
        (unknown_version.message_id, 1001), (unknown_version.message_id, 1001),
        (stranger.message_id, 1002)]
    assert "'des-9.9/1' is not supported by ITL" in str(dead[0].headers["x-dead-reason"])
    assert str(dead[2].headers["x-dead-reason"]) == (
        "sender DE is not accepted by ITL: it takes messages only from JP, KZ")

    (ack,) = await hub.wait_acks(1)
    assert ack.correlation_id == "KZ5"
    assert ack.payload["acked_message_id"] == unknown_version.message_id
    assert ack.payload["response_codes"] == [1001]
    assert await hub.runtime.db.inbox.count_documents({}) == 0
    assert await hub.effects() == []
    # the unknown sender gets no answer: the only outgoing message is the one to KZ
    outbox = await hub.runtime.db.outbox.find({}).to_list()
    assert [(row["recipient"], row["message_type"]) for row in outbox] == [("KZ", "MessageAck")]


async def test_a_proposal_breaking_the_contract_is_answered_with_the_protocols_code(
    hub: Hub,
) -> None:
    """3001 blocks: 2005; a reversed block: 2002; the limit itself, 3000 blocks, reaches
    the handler (protocol.md 3.3 family 4; docs/adr/0010)."""
    from tests.contract.test_payload_codes import blocks, proposal

    def raw(envelope: Envelope, message_id: str, tx: str) -> bytes:
        document = envelope.model_dump(mode="json")
        document["payload"]["transaction_id"] = tx
        return json.dumps({**document, "message_id": message_id, "correlation_id": tx,
                           "sent_at": "2013-03-01T12:30:00Z"}).encode()

    too_many = proposal(blocks(MAX_BLOCKS_PER_TRANSACTION + 1))
    reversed_block = proposal([{**blocks(1)[0], "serial_start": 5, "serial_end": 4}])
    at_the_limit = proposal(blocks(MAX_BLOCKS_PER_TRANSACTION))
    await hub.kz.publish_raw(raw(too_many, "m-too-many", "KZ7"), ITL_CODE)
    await hub.kz.publish_raw(raw(reversed_block, "m-reversed", "KZ8"), ITL_CODE)
    await hub.kz.publish_raw(raw(at_the_limit, "m-limit", "KZ9"), ITL_CODE)

    dead = await hub.dead_letters(2)
    assert [(json.loads(m.body)["message_id"], m.headers["x-dead-code"]) for m in dead] == [
        ("m-too-many", 2005), ("m-reversed", 2002)]
    assert "at most 3000 items" in str(dead[0].headers["x-dead-reason"])
    acks = await hub.wait_acks(2)
    assert [(a.correlation_id, a.payload["response_codes"], a.payload["accepted"])
            for a in acks] == [("KZ7", [2005], False), ("KZ8", [2002], False)]
    assert [e["message_id"] for e in await hub.wait_effects(1)] == ["m-limit"]
