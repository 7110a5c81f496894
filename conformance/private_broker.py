"""A stack on a RabbitMQ node of its own, for the scenarios that stop the broker
(``@restarts-broker``): the shared node at 127.0.0.1:5672 serves every stack on the
machine and is never stopped (docs/adr/0038).

The node (``shared.testing.rabbit_node.RabbitNode``) has its own name, ports, data
directory and configuration file, under ``var/conformance/private-broker/``; its stack
has KZ and CH (the Parties such scenarios name) and its clock starts at ``CLOCK_START``. Both start
when the first such scenario needs them and stop when the run ends. A stopped broker
keeps its data (durable queues, persistent messages), so what waited on it is delivered
once it is started again.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from conformance.stack import CLOCK_START, FaultNotPossible, StackHandle, client_of
from deploy.local.stack import ROOT, LocalStack, start_or_refuse
from shared.testing.infra import new_namespace
from shared.testing.rabbit_node import RabbitNode

#: Where the private node and its stack keep their data and logs during a run.
WORKDIR = ROOT / "var" / "conformance" / "private-broker"
#: The Parties of the private broker's stack.
PARTIES = ("KZ", "CH")
#: The mark of a scenario that stops the broker (the Gherkin tag ``@restarts-broker``).
MARK = "restarts-broker"


@dataclass
class PrivateBrokerStack(StackHandle):
    """A stack whose broker is a private RabbitMQ node the runner may stop and start."""

    node: RabbitNode | None = None

    def stop_broker(self) -> None:
        """Stop the node gracefully (SIGTERM): every service loses its connection;
        persistent messages stay on disk. Returns once the node's ports are free."""
        self._node().stop()

    def start_broker(self) -> None:
        """Start the node again on the same ports and data; returns once it has booted
        (the services reconnect on their own)."""
        self._node().start()

    def _node(self) -> RabbitNode:
        if self.node is None:
            raise FaultNotPossible("this stack has no broker of its own to stop")
        return self.node


def stop_broker(stack: StackHandle) -> None:
    """Stop ``stack``'s broker; ``FaultNotPossible`` unless it is a private node (a
    stack the runner started for an ``@restarts-broker`` scenario)."""
    _private(stack).stop_broker()


def start_broker(stack: StackHandle) -> None:
    """Start ``stack``'s (stopped) private broker again."""
    _private(stack).start_broker()


def _private(stack: StackHandle) -> PrivateBrokerStack:
    if not isinstance(stack, PrivateBrokerStack):
        raise FaultNotPossible(
            f"the broker of this stack ({stack.origin}) is shared and is never stopped; "
            f"tag the scenario @{MARK} to run it on a stack with a private RabbitMQ node")
    return stack


@pytest.fixture(scope="session")
def private_broker_stack() -> Iterator[PrivateBrokerStack]:
    """A stack (KZ, CH, the clock at CLOCK_START) on a private RabbitMQ node, for
    the ``@restarts-broker`` scenarios; its logs stay in
    ``var/conformance/private-broker/stack/logs``. ``StackNotStarted`` when the node
    or the stack does not start."""
    shutil.rmtree(WORKDIR, ignore_errors=True)
    WORKDIR.mkdir(parents=True)
    node = RabbitNode(WORKDIR / "rabbitmq")
    try:
        start_or_refuse(node.start)
        local = LocalStack(workdir=WORKDIR / "stack", registries=PARTIES,
                           namespace=new_namespace(), clock_start=CLOCK_START,
                           broker_url=node.url, broker_admin=node.admin)
        try:
            start_or_refuse(local.start)
            client = client_of(local)
            try:
                yield PrivateBrokerStack(client, local, origin=f"started by the runner on "
                                         f"the private RabbitMQ node {node.name}", node=node)
            finally:
                client.close()
        finally:
            if not node.running:  # a scenario left it stopped: the stack's stop needs it
                node.start()
            local.stop()
    finally:
        node.close()
