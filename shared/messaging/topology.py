"""The AMQP topology (protocol.md 7.2), described once and either declared or opened.

``des.msg`` routes by recipient code; each service instance reads its own durable quorum
queue ``des.in.<CODE>``. What cannot be handled goes to ``des.dlx`` and lands in
``des.dead.<CODE>`` for an operator to inspect. The simulation clock travels on the
fanout ``sim.clock``; ``sim.clock.last`` keeps its latest setting.

Both routed exchanges are topic exchanges so that topic permissions can restrict the
routing keys, that is the recipients, each service may publish to (docs/adr/0016); a
routing key is a service code without dots, so they route exactly as direct exchanges.

Who declares: the provisioning step, with administrator rights, declares everything
(``Topology.definitions`` or ``declare_topology``); a service only opens what exists
(passive declares, which need no permission) and declares nothing but its own exclusive
clock queue. A service connected with configure rights everywhere (guest, development)
declares a missing topology itself.

The recording (docs/adr/0034): ``rec.capture`` is the topic exchange on which each
service publishes the commands its API took (routing key: its code) and the stack its
run markers (``stack``); with ``recording`` the stream queue ``rec.journal`` is bound to
``des.msg`` and ``des.dlx`` under every code, to ``sim.clock`` and to all of
``rec.capture``, so that every message crossing the broker is kept in one order whatever
the services do.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractExchange

from shared.messaging.clock import CLOCK_EXCHANGE, LAST_CLOCK_QUEUE

MAIN_EXCHANGE = "des.msg"
DEAD_LETTER_EXCHANGE = "des.dlx"
ROUTED_EXCHANGE_TYPE = aio_pika.ExchangeType.TOPIC
#: Commands taken by the services' APIs and the stack's run markers (docs/adr/0034).
CAPTURE_EXCHANGE = "rec.capture"
#: The stream queue that records every message of the stack, in order (docs/adr/0034).
JOURNAL_QUEUE = "rec.journal"
#: The journal's retention: its oldest segments go once it holds more than this many
#: bytes; a segment file holds at most ``JOURNAL_SEGMENT_BYTES``.
JOURNAL_MAX_BYTES = 2_000_000_000
JOURNAL_SEGMENT_BYTES = 50_000_000
#: Names are prefixed with ``AMQP_NAMESPACE`` (empty by default) so that several stacks,
#: such as parallel test runs, can share one broker without hearing each other.
#: Deliveries of one message before the broker dead-letters it (handler keeps failing).
DELIVERY_LIMIT = 5


def inbox_queue_name(code: str, namespace: str = "") -> str:
    return f"{namespace}des.in.{code}"


def dead_letter_queue_name(code: str, namespace: str = "") -> str:
    return f"{namespace}des.dead.{code}"


def clock_follower_queue_name(code: str, namespace: str = "") -> str:
    """A fresh name for the exclusive queue on which one instance hears the clock."""
    return f"{namespace}{CLOCK_EXCHANGE}.{code}.{uuid.uuid4().hex}"


@dataclass(frozen=True)
class ExchangeSpec:
    name: str
    type: aio_pika.ExchangeType


@dataclass(frozen=True)
class QueueSpec:
    name: str
    arguments: dict[str, Any]


@dataclass(frozen=True)
class BindingSpec:
    exchange: str
    queue: str
    routing_key: str


@dataclass(frozen=True)
class Topology:
    """Every exchange, queue and binding of one namespace whose services are ``codes``."""

    namespace: str
    codes: tuple[str, ...]
    #: Whether the journal stream ``rec.journal`` and its bindings belong to it (the
    #: services themselves need only the exchanges).
    recording: bool = False

    def name(self, base: str) -> str:
        return f"{self.namespace}{base}"

    def exchanges(self) -> list[ExchangeSpec]:
        return [ExchangeSpec(self.name(MAIN_EXCHANGE), ROUTED_EXCHANGE_TYPE),
                ExchangeSpec(self.name(DEAD_LETTER_EXCHANGE), ROUTED_EXCHANGE_TYPE),
                ExchangeSpec(self.name(CLOCK_EXCHANGE), aio_pika.ExchangeType.FANOUT),
                ExchangeSpec(self.name(CAPTURE_EXCHANGE), ROUTED_EXCHANGE_TYPE)]

    def queues(self) -> list[QueueSpec]:
        found = [QueueSpec(self.name(LAST_CLOCK_QUEUE),
                           {"x-max-length": 1, "x-overflow": "drop-head"})]
        for code in self.codes:
            found.append(QueueSpec(dead_letter_queue_name(code, self.namespace),
                                   {"x-queue-type": "quorum"}))
            found.append(QueueSpec(inbox_queue_name(code, self.namespace), {
                "x-queue-type": "quorum",
                "x-dead-letter-exchange": self.name(DEAD_LETTER_EXCHANGE),
                "x-dead-letter-routing-key": code,
                "x-delivery-limit": DELIVERY_LIMIT,
            }))
        if self.recording:
            found.append(QueueSpec(self.name(JOURNAL_QUEUE), journal_arguments()))
        return found

    def bindings(self) -> list[BindingSpec]:
        found = [BindingSpec(self.name(CLOCK_EXCHANGE), self.name(LAST_CLOCK_QUEUE), "")]
        for code in self.codes:
            found.append(BindingSpec(self.name(DEAD_LETTER_EXCHANGE),
                                     dead_letter_queue_name(code, self.namespace), code))
            found.append(BindingSpec(self.name(MAIN_EXCHANGE),
                                     inbox_queue_name(code, self.namespace), code))
        if self.recording:
            found += self.journal_bindings()
        return found

    def journal_bindings(self) -> list[BindingSpec]:
        """What the journal records: every message to a service of the namespace (the
        same routing keys as the inboxes, so a message no inbox takes is still refused
        as unroutable), every dead letter, every clock setting, every capture."""
        journal = self.name(JOURNAL_QUEUE)
        found = [BindingSpec(self.name(CLOCK_EXCHANGE), journal, ""),
                 BindingSpec(self.name(CAPTURE_EXCHANGE), journal, "#")]
        for code in self.codes:
            found.append(BindingSpec(self.name(MAIN_EXCHANGE), journal, code))
            found.append(BindingSpec(self.name(DEAD_LETTER_EXCHANGE), journal, code))
        return found

    def definitions(self, vhost: str = "/") -> dict[str, list[dict[str, Any]]]:
        """The topology as the ``exchanges``, ``queues`` and ``bindings`` of a RabbitMQ
        definitions document (rabbitmqctl import_definitions, POST /api/definitions,
        ``load_definitions`` at boot)."""
        return {
            "exchanges": [{"name": e.name, "vhost": vhost, "type": e.type.value,
                           "durable": True, "auto_delete": False, "internal": False,
                           "arguments": {}} for e in self.exchanges()],
            "queues": [{"name": q.name, "vhost": vhost, "durable": True,
                        "auto_delete": False, "arguments": q.arguments}
                       for q in self.queues()],
            "bindings": [{"source": b.exchange, "vhost": vhost, "destination": b.queue,
                          "destination_type": "queue", "routing_key": b.routing_key,
                          "arguments": {}} for b in self.bindings()],
        }


def journal_arguments() -> dict[str, Any]:
    """The arguments of the journal stream (RabbitMQ 3.9+: ``x-queue-type: stream``)."""
    return {"x-queue-type": "stream", "x-max-length-bytes": JOURNAL_MAX_BYTES,
            "x-stream-max-segment-size-bytes": JOURNAL_SEGMENT_BYTES}


async def declare_topology(channel: AbstractChannel, topology: Topology) -> None:
    """Declare ``topology`` (needs the configure permission on every name in it)."""
    for exchange in topology.exchanges():
        await channel.declare_exchange(exchange.name, exchange.type, durable=True)
    for queue in topology.queues():
        await channel.declare_queue(queue.name, durable=True, arguments=queue.arguments)
    for binding in topology.bindings():
        declared = await channel.get_queue(binding.queue, ensure=False)
        await declared.bind(binding.exchange, routing_key=binding.routing_key)


async def check_topology(channel: AbstractChannel, topology: Topology) -> None:
    """Raise ``aio_pika.exceptions.ChannelNotFoundEntity`` (and close ``channel``) when an
    exchange or queue of ``topology`` does not exist; passive declares need no permission."""
    for exchange in topology.exchanges():
        await channel.declare_exchange(exchange.name, passive=True)
    for queue in topology.queues():
        await channel.declare_queue(queue.name, passive=True)


@dataclass(frozen=True)
class Exchanges:
    main: AbstractExchange
    dead: AbstractExchange
    clock: AbstractExchange
    capture: AbstractExchange
    namespace: str


async def open_exchanges(channel: AbstractChannel, namespace: str = "") -> Exchanges:
    """The namespace's exchanges, opened passively (they are restored passively too when a
    robust connection comes back)."""
    return Exchanges(
        main=await channel.get_exchange(f"{namespace}{MAIN_EXCHANGE}"),
        dead=await channel.get_exchange(f"{namespace}{DEAD_LETTER_EXCHANGE}"),
        clock=await channel.get_exchange(f"{namespace}{CLOCK_EXCHANGE}"),
        capture=await channel.get_exchange(f"{namespace}{CAPTURE_EXCHANGE}"),
        namespace=namespace,
    )
