"""The journal on the real RabbitMQ (docs/adr/0034): the broker records what the services
publish, in one order and as published, whatever the services' code; a service can
capture commands only in its own name; a stopped recording records nothing more."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import aio_pika
import pytest
from aio_pika.exceptions import ChannelClosed

from shared.codes import ITL_CODE
from shared.contracts import Envelope
from shared.messaging import PermanentFailure
from shared.messaging.clock import ClockSet
from shared.messaging.provisioning import delete_topology
from shared.messaging.topology import CAPTURE_EXCHANGE, Topology
from shared.recording.format import Event
from shared.recording.journal import read_journal, set_recording
from shared.testing.infra import Namespace, eventually
from shared.testing.messages import status_from_itl

pytestmark = pytest.mark.integration


@pytest.fixture
async def recording(namespace: Namespace, broker_url: str) -> AsyncIterator[Namespace]:
    """``namespace`` with its journal declared and bound (deleted after the test)."""
    await set_recording(broker_url, namespace.prefix, sorted(namespace.codes), on=True)
    yield namespace
    await delete_topology(broker_url, Topology(namespace.prefix, tuple(namespace.codes),
                                               recording=True))


async def journal_of(broker_url: str, namespace: Namespace, count: int) -> list[Event]:
    async def probe() -> list[Event] | None:
        events = await read_journal(broker_url, namespace.prefix)
        return events if len(events) >= count else None

    return await eventually(probe, f"{count} events in the journal")


async def test_the_journal_keeps_messages_dead_letters_clock_and_commands_in_order(
    recording: Namespace, broker_url: str,
) -> None:
    itl, kz = recording.broker(ITL_CODE), recording.broker("KZ")
    await itl.connect(["KZ"])
    await kz.connect([ITL_CODE])

    async def refuse(envelope: Envelope) -> None:
        raise PermanentFailure("not this one", code=1101)

    try:
        await kz.consume(refuse)
        envelope = status_from_itl("KZ1")
        await itl.publish(envelope)
        await journal_of(broker_url, recording, 2)  # the message and its dead letter
        await itl.broadcast_clock(ClockSet(now=datetime(2013, 1, 1, tzinfo=UTC),
                                           set_by=ITL_CODE, set_at_epoch=time.time()))
        await kz.publish_capture(b'{"kind":"command","service":"KZ"}', "command")
        events = await journal_of(broker_url, recording, 4)
    finally:
        await kz.close()
        await itl.close()
    assert [e.kind for e in events] == ["message", "dead_letter", "clock", "command"]
    assert [e.seq for e in events] == sorted({e.seq for e in events})
    message, dead, clock, command = events
    assert message.raw_body() == envelope.model_dump_json().encode()
    assert message.body == envelope.model_dump(mode="json")
    assert (message.exchange, message.routing_key) == ("des.msg", "KZ")
    assert message.properties.user_id == f"{recording.prefix}ITL"
    assert message.properties.message_id == envelope.message_id
    assert message.recorded_at is not None
    assert dead.raw_body() == message.raw_body()
    assert (dead.properties.headers["x-dead-code"], dead.properties.headers["x-dead-reason"]
            ) == (1101, "not this one")
    assert clock.body["set_by"] == ITL_CODE
    assert command.body == {"kind": "command", "service": "KZ"}
    assert command.properties.user_id == f"{recording.prefix}KZ"


async def test_a_service_captures_commands_only_in_its_own_name(
    recording: Namespace,
) -> None:
    connection = await aio_pika.connect(recording.url("KZ"))
    try:
        channel = await connection.channel(publisher_confirms=True)
        exchange = await channel.get_exchange(f"{recording.prefix}{CAPTURE_EXCHANGE}")
        with pytest.raises(ChannelClosed, match="ACCESS_REFUSED"):
            await exchange.publish(aio_pika.Message(b"{}", type="command"),
                                   routing_key=ITL_CODE)
    finally:
        await connection.close()


async def test_a_stopped_recording_keeps_what_it_holds_and_records_nothing_more(
    recording: Namespace, broker_url: str,
) -> None:
    itl = recording.broker(ITL_CODE)
    await itl.connect(["KZ"])
    try:
        await itl.publish(status_from_itl("KZ1"))
        await journal_of(broker_url, recording, 1)
        await set_recording(broker_url, recording.prefix, sorted(recording.codes), on=False)
        await itl.publish(status_from_itl("KZ2"))
        assert [e.properties.correlation_id
                for e in await read_journal(broker_url, recording.prefix)] == ["KZ1"]
        await set_recording(broker_url, recording.prefix, sorted(recording.codes), on=True)
        await itl.publish(status_from_itl("KZ3"))
        events = await journal_of(broker_url, recording, 2)
        assert [e.properties.correlation_id for e in events] == ["KZ1", "KZ3"]
    finally:
        await itl.close()
