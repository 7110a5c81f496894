"""The AMQP topology, declared in code (protocol.md 7.2).

``des.msg`` is a direct exchange routed by recipient code; each service instance
reads its own durable quorum queue ``des.in.<CODE>``. What cannot be handled goes
to ``des.dlx`` and lands in ``des.dead.<CODE>`` for an operator to inspect.
"""

from __future__ import annotations

from dataclasses import dataclass

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractExchange, AbstractQueue

MAIN_EXCHANGE = "des.msg"
DEAD_LETTER_EXCHANGE = "des.dlx"
#: Names are prefixed with ``AMQP_NAMESPACE`` (empty by default) so that several stacks,
#: such as parallel test runs, can share one broker without hearing each other.
#: Deliveries of one message before the broker dead-letters it (handler keeps failing).
DELIVERY_LIMIT = 5


def inbox_queue_name(code: str, namespace: str = "") -> str:
    return f"{namespace}des.in.{code}"


def dead_letter_queue_name(code: str, namespace: str = "") -> str:
    return f"{namespace}des.dead.{code}"


@dataclass(frozen=True)
class Exchanges:
    main: AbstractExchange
    dead: AbstractExchange
    namespace: str


async def declare_exchanges(channel: AbstractChannel, namespace: str = "") -> Exchanges:
    main = await channel.declare_exchange(
        f"{namespace}{MAIN_EXCHANGE}", aio_pika.ExchangeType.DIRECT, durable=True
    )
    dead = await channel.declare_exchange(
        f"{namespace}{DEAD_LETTER_EXCHANGE}", aio_pika.ExchangeType.DIRECT, durable=True
    )
    return Exchanges(main=main, dead=dead, namespace=namespace)


async def declare_inbox(channel: AbstractChannel, exchanges: Exchanges, code: str) -> AbstractQueue:
    """Declare and bind the inbox and dead-letter queues of one service instance."""
    ns = exchanges.namespace
    dead = await channel.declare_queue(
        dead_letter_queue_name(code, ns), durable=True, arguments={"x-queue-type": "quorum"}
    )
    await dead.bind(exchanges.dead, routing_key=code)
    inbox = await channel.declare_queue(
        inbox_queue_name(code, ns),
        durable=True,
        arguments={
            "x-queue-type": "quorum",
            "x-dead-letter-exchange": f"{ns}{DEAD_LETTER_EXCHANGE}",
            "x-dead-letter-routing-key": code,
            "x-delivery-limit": DELIVERY_LIMIT,
        },
    )
    await inbox.bind(exchanges.main, routing_key=code)
    return inbox
