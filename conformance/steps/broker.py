"""Faults of the broker (stopped and started again, on a stack with a private RabbitMQ
node: ``@restarts-broker``) and waits for a transaction to reach a status at the ITL,
which let a scenario hold a message back past its deadline."""

from __future__ import annotations

from conformance.private_broker import start_broker, stop_broker
from conformance.steps.library import Family
from conformance.world import World
from deploy.local.client import poll
from shared.codes import TransactionStatus

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
