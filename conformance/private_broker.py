"""A stack on a RabbitMQ node of its own, for the scenarios that stop the broker
(``@restarts-broker``): the shared node at 127.0.0.1:5672 serves every stack on the
machine and is never stopped (docs/adr/0038).

The node (``shared.testing.rabbit_node.RabbitNode``) has its own name, ports, data
directory and configuration file, under ``private-broker/`` of the run's directory
(``var/conformance/``); its stack has KZ and CH (the Parties such scenarios name) and
its clock starts at ``CLOCK_START``. Both start in the background as soon as the run
knows it has such scenarios (so the other scenarios hide their start) and stop after the
last of them. A stopped broker keeps its data (durable queues, persistent messages), so
what waited on it is delivered once it is started again.
"""

from __future__ import annotations

import shutil
import threading
from collections.abc import Generator
from dataclasses import dataclass
from pathlib import Path

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


class PrivateBroker:
    """The private node and its stack for one run: started in a thread of their own once
    the run knows it has ``@restarts-broker`` scenarios (while the others run on the
    shared broker), waited for by the first of them, stopped after the last."""

    def __init__(self, workdir: Path = WORKDIR) -> None:
        #: The node's and the stack's directory: ``private-broker`` in the run's
        #: directory (``--plan-report``), so that two runs with their own directories
        #: do not share it.
        self.workdir = workdir
        self.thread: threading.Thread | None = None
        self.node: RabbitNode | None = None
        self.local: LocalStack | None = None
        self.stack: PrivateBrokerStack | None = None
        self.error: BaseException | None = None

    def begin(self) -> None:
        """Start the node and the stack in the background (once)."""
        if self.thread is None:
            self.thread = threading.Thread(target=self._start, name="private-broker",
                                           daemon=True)
            self.thread.start()

    def _start(self) -> None:
        try:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir.mkdir(parents=True)
            self.node = RabbitNode(self.workdir / "rabbitmq")
            start_or_refuse(self.node.start)
            self.local = LocalStack(workdir=self.workdir / "stack", registries=PARTIES,
                                    namespace=new_namespace(), clock_start=CLOCK_START,
                                    broker_url=self.node.url, broker_admin=self.node.admin)
            start_or_refuse(self.local.start)
            self.stack = PrivateBrokerStack(
                client_of(self.local), self.local, node=self.node,
                origin=f"started by the runner on the private RabbitMQ node {self.node.name}")
        except BaseException as exc:  # raised again where the stack is wanted
            self.error = exc

    def get(self) -> PrivateBrokerStack:
        """The started stack; ``StackNotStarted`` (or what else stopped it) when the node
        or the stack did not start."""
        self.begin()
        assert self.thread is not None
        self.thread.join()
        if self.error is not None:
            raise self.error
        assert self.stack is not None
        return self.stack

    def close(self) -> None:
        """Stop the stack and the node (started again first if a scenario left it
        stopped: the stack's stop deletes its broker users) and delete nothing else."""
        if self.thread is None:
            return
        self.thread.join()
        self.thread = None
        try:
            if self.stack is not None:
                self.stack.client.close()
            if self.local is not None:
                if self.node is not None and not self.node.running:
                    self.node.start()
                self.local.stop()
        finally:
            if self.node is not None:
                self.node.close()
            self.stack = self.local = self.node = None


RUN = pytest.StashKey[PrivateBroker]()
#: How many ``@restarts-broker`` scenarios of the run have not yet ended.
_LEFT = pytest.StashKey[int]()


def pytest_collection_finish(session: pytest.Session) -> None:
    """With ``@restarts-broker`` scenarios to run on a stack the runner starts, start
    their stack now, in the background; not when the run stops before any test (an
    unknown step, a feature file that does not parse)."""
    marked = sum(1 for item in session.items if item.get_closest_marker(MARK))
    run = session.config.stash.setdefault(RUN, _new(session.config))
    if session.shouldstop or session.testsfailed:
        return
    session.config.stash[_LEFT] = marked
    if marked and not session.config.getoption("--stack") \
            and not session.config.option.collectonly:
        run.begin()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item,
                            nextitem: pytest.Item | None) -> Generator[None, None, None]:
    """After the last ``@restarts-broker`` scenario, stop its stack: the rest of the run
    does without it."""
    try:
        return (yield)
    finally:
        if item.get_closest_marker(MARK):
            left = item.config.stash.get(_LEFT, 1) - 1
            item.config.stash[_LEFT] = left
            if left <= 0 and RUN in item.config.stash:
                item.config.stash[RUN].close()


def pytest_sessionfinish(session: pytest.Session) -> None:
    if RUN in session.config.stash:
        session.config.stash[RUN].close()


@pytest.fixture(scope="session")
def private_broker_stack(request: pytest.FixtureRequest) -> PrivateBrokerStack:
    """A stack (KZ, CH, the clock at CLOCK_START) on a private RabbitMQ node, for
    the ``@restarts-broker`` scenarios; its logs stay in
    ``private-broker/stack/logs`` of the run's directory. ``StackNotStarted`` when the node
    or the stack does not start."""
    return request.config.stash.setdefault(RUN, _new(request.config)).get()


def _new(config: pytest.Config) -> PrivateBroker:
    """The run's private node, in ``private-broker`` of the run's directory, as an
    absolute path: the node's scripts change directory, so a relative one (``make
    conformance`` passes ``--plan-report var/conformance``) would not be found again."""
    report = config.getoption("--plan-report", None)
    return PrivateBroker((Path(report).resolve() / "private-broker") if report else WORKDIR)
