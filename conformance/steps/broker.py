"""Faults of the broker (stopped and started again, on a stack with a private RabbitMQ
node: ``@restarts-broker``), and waits for a message to reach a killed service's queue
and for a transaction to reach a status at the ITL, which let a scenario hold a message
back (a paused service) past its deadline."""

from __future__ import annotations

import asyncio

import aio_pika

from conformance.private_broker import start_broker, stop_broker
from conformance.stack import FaultNotPossible
from conformance.steps.library import Family
from conformance.world import World
from deploy.local.client import poll
from shared.codes import TransactionStatus
from shared.messaging.topology import inbox_queue_name

FAMILY = Family("Faults")


@FAMILY.when("the broker is stopped")
def broker_stopped(world: World) -> None:
    """Stop the stack's RabbitMQ node (gracefully): the services lose their connections
    and keep what they send in their outboxes; what waited in queues stays on disk. Only
    in a scenario tagged ``@restarts-broker``, which runs on a stack with a private node
    (the shared broker is never stopped); the broker is started again when the scenario
    ends, whatever its verdict."""
    stop_broker(world.stack)
    world.cleanups.append(lambda: start_broker(world.stack))
    world.note("broker stopped")


@FAMILY.when("the broker is started")
def broker_started(world: World) -> None:
    """Start the stopped RabbitMQ node again on its ports and data; returns once it has
    booted (the services reconnect and send what waited in their outboxes)."""
    start_broker(world.stack)
    world.cleanups.clear()
    world.note("broker started")


@FAMILY.when("the transaction has reached status {status:Status} at the ITL")
def reached_at_itl(world: World, status: str) -> None:
    """Wait (up to 30 real seconds) until the ITL's record of the last transaction has
    ``status`` (CHECKED_NO_DISCREPANCY: the ITL approved it and waits for the proposer's
    completion; ACCEPTED: the acquiring registry accepted it), e.g. before the clock
    moves past the deadline of a message held back by a paused service."""
    wanted = int(TransactionStatus[status])
    _, transaction_id = world.current()
    poll(lambda: world.client.call("itl", "GET", f"/transactions/{transaction_id}"),
         lambda r: r.status_code == 200 and r.json()["status"] == wanted,
         f"{transaction_id} at status {status} at the ITL", timeout=30)
    world.note(f"{transaction_id} at the ITL: {status}")


@FAMILY.when("a message waits for the {service} service")
def message_waits(world: World, service: str) -> None:
    """Wait (up to 30 real seconds) until at least one message waits in a killed
    service's inbox queue: what was sent to it (a proposal from a registry's outbox) has
    reached the broker. Only on a stack the runner started, whose queue names it knows."""
    local = world.stack.local
    if local is None:
        raise FaultNotPossible(f"the queues of the attached stack ({world.stack.origin}) "
                               "are unknown to the runner")
    queue = inbox_queue_name(service.upper(), local.namespace)
    poll(lambda: asyncio.run(_ready(local.broker_url, queue)), bool,
         f"a message waiting in {queue}", timeout=30)
    world.note(f"a message waits for {service}")


async def _ready(url: str, queue: str) -> int:
    """How many messages wait (ready, not delivered) in ``queue`` of the broker at
    ``url``."""
    connection = await aio_pika.connect(url)
    try:
        declared = await (await connection.channel()).declare_queue(queue, passive=True)
        return int(declared.declaration_result.message_count or 0)
    finally:
        await connection.close()
