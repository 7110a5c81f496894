"""Broker identities on the real RabbitMQ (docs/adr/0016): a service's own user cannot set
another's clock, cannot start on a namespace nobody provisioned, and a service started
with the shared guest login is heard only by receivers whose publisher check is off."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import aio_pika
import pytest

from shared.codes import ITL_CODE, ResponseCode
from shared.contracts import Envelope
from shared.messaging import Broker, BrokerNotProvisioned, dead_letter_queue_name
from shared.messaging.broker import url_user
from shared.messaging.clock import CLOCK_EXCHANGE, ClockSet
from shared.messaging.provisioning import delete_topology
from shared.testing.infra import Namespace, eventually, new_namespace
from shared.testing.messages import status_from_itl

pytestmark = pytest.mark.integration


status = status_from_itl


async def dead_letter(broker_url: str, queue: str) -> aio_pika.abc.AbstractIncomingMessage:
    connection = await aio_pika.connect(broker_url)
    try:
        dead = await (await connection.channel()).get_queue(queue, ensure=False)

        async def probe() -> aio_pika.abc.AbstractIncomingMessage | None:
            return await dead.get(fail=False)

        message = await eventually(probe, f"a dead letter in {queue}")
        await message.ack()
        return message
    finally:
        await connection.close()


async def test_a_service_cannot_set_the_stack_clock_in_another_services_name(
    namespace: Namespace, caplog: pytest.LogCaptureFixture,
) -> None:
    ch = namespace.broker("CH")
    await ch.connect()
    heard: list[ClockSet] = []

    async def on_clock(clock_set: ClockSet) -> None:
        heard.append(clock_set)

    await ch.follow_clock(on_clock)
    kz = await aio_pika.connect(namespace.url("KZ"))
    itl = namespace.broker(ITL_CODE)
    await itl.connect()
    try:
        forged = ClockSet(now=datetime(2030, 1, 1, tzinfo=UTC), set_by=ITL_CODE,
                          set_at_epoch=time.time())
        exchange = await (await kz.channel()).get_exchange(f"{namespace.prefix}{CLOCK_EXCHANGE}")
        with caplog.at_level(logging.ERROR):
            await exchange.publish(aio_pika.Message(body=forged.model_dump_json().encode(),
                                                    user_id=f"{namespace.prefix}KZ"),
                                   routing_key="")
            genuine = ClockSet(now=datetime(2014, 1, 1, tzinfo=UTC), set_by=ITL_CODE,
                               set_at_epoch=time.time())
            await itl.broadcast_clock(genuine)

            async def probe() -> list[ClockSet] | None:
                return heard or None

            assert await eventually(probe, "the ITL's clock setting at CH") == [genuine]
        refused = [r for r in caplog.records if r.getMessage() == "clock_message_refused"]
        assert [r.__dict__["fields"]["user_id"] for r in refused] == [f"{namespace.prefix}KZ"]
        # the last setting a late starter reads is the genuine one
        assert await ch.last_clock_setting() == genuine
    finally:
        await kz.close()
        await itl.close()
        await ch.close()


async def test_a_service_user_cannot_start_on_a_namespace_nobody_provisioned(
    broker_url: str, namespace: Namespace,
) -> None:
    await delete_topology(broker_url, namespace.topology)
    with pytest.raises(BrokerNotProvisioned, match=f"user {namespace.prefix}KZ may not "
                                                   f"declare it"):
        await namespace.broker("KZ").connect()


@pytest.fixture
async def guest_namespace(broker_url: str) -> AsyncIterator[Namespace]:
    """A namespace nobody provisioned, for services started with the guest login."""
    namespace = Namespace(prefix=new_namespace(), codes={ITL_CODE, "KZ"})
    yield namespace
    await delete_topology(broker_url, namespace.topology)


async def test_a_service_started_with_the_guest_login_is_refused_by_every_checking_receiver(
    broker_url: str, guest_namespace: Namespace, caplog: pytest.LogCaptureFixture,
) -> None:
    prefix = guest_namespace.prefix
    received: list[Envelope] = []

    async def collect(envelope: Envelope) -> None:
        received.append(envelope)

    # development on one login: the guest declares the topology itself and warns
    with caplog.at_level(logging.INFO):
        itl = Broker(broker_url, ITL_CODE, namespace=prefix)
        await itl.connect(["KZ"])
        checking = Broker(broker_url, "KZ", namespace=prefix)
        await checking.connect()
    events = [r.getMessage() for r in caplog.records]
    assert "broker_topology_declared" in events
    assert events.count("broker_user_is_not_the_service_identity") == 2
    try:
        await checking.consume(collect)
        refused = status("KZ1")
        await itl.publish(refused)
        dead = await dead_letter(broker_url, dead_letter_queue_name("KZ", prefix))
        assert dead.message_id == refused.message_id
        assert dead.headers["x-dead-code"] == ResponseCode.SENDER_MISMATCH
        assert dead.headers["x-dead-reason"] == (
            f"sender ITL is not the publisher: the message was published by user "
            f"{url_user(broker_url)}, "
            f"ITL publishes as {prefix}ITL")
        assert received == []
    finally:
        await checking.close()

    # a receiver started with AMQP_CHECK_PUBLISHER=false takes it, and says so
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        unchecked = Broker(broker_url, "KZ", namespace=prefix, check_publisher=False)
        await unchecked.connect()
    assert "publisher_check_off" in [r.getMessage() for r in caplog.records]
    try:
        await unchecked.consume(collect)
        taken = status("KZ2")
        await itl.publish(taken)

        async def probe() -> list[Envelope] | None:
            return received or None

        assert [e.message_id for e in await eventually(probe, "KZ2 at KZ")] == [
            taken.message_id]
    finally:
        await unchecked.close()
        await itl.close()
