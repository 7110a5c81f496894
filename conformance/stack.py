"""The stack a conformance run drives: one the runner starts, or one already running
described by a stack file (``make up`` writes ``var/stack/stack.json``).

A run shares one stack between every scenario of the plan (docs/adr/0038): a scenario
opens its own accounts and checks what it changed, so the scenarios do not depend on
one another, and the plan's features run in the order of their numbers, so the
simulation clock only moves forward.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path

import aio_pika

from deploy.local.client import StackClient
from deploy.local.stack import LocalStack
from deploy.local.stack_file import StackFileError as UnreadableStackFile
from deploy.local.stack_file import answers, read_stack_file
from shared.messaging.topology import inbox_queue_name
from shared.testing.infra import amqp_url, purge_queue

#: Where the stack a run starts begins its simulation clock: the first commitment period
#: has just ended, the second has begun (as tests/e2e/test_operations.py).
CLOCK_START = "2013-01-15T00:00:00+00:00"
#: The Parties of the stack a run starts: KZ and CH have a second-period commitment,
#: JP has none (protocol.md 4.4).
REGISTRIES = ("KZ", "CH", "JP")


class StackFileError(Exception):
    """A stack file that cannot be read or whose services do not answer; the run stops
    before any scenario with this message (exit status 2)."""


class FaultNotPossible(Exception):
    """A fault step on a stack it cannot act on (a service of an attached stack can be
    killed or paused, not started again: the runner does not know its settings)."""


@dataclass
class StackHandle:
    """What the step library needs of a stack: a client of its APIs and, for the fault
    steps, the processes of its services (kill, restart, pause, resume)."""

    client: StackClient
    #: The stack the runner started; None when attached through a stack file.
    local: LocalStack | None = None
    #: Process ids by service name (``itl``, ``kz``, ``cdm``) of an attached stack.
    pids: dict[str, int] = field(default_factory=dict)
    #: Where the stack came from, for the report: "started by the runner" or the file.
    origin: str = "started by the runner"

    @property
    def services(self) -> list[str]:
        """The service names, ``itl``, the registries in lower case and ``cdm``."""
        return list(self.client.urls)

    @property
    def registries(self) -> list[str]:
        """The national registries' codes (upper case)."""
        return [name.upper() for name in self.client.urls if name not in ("itl", "cdm")]

    def _pid(self, name: str) -> int:
        pid = self.local.services[name].pid if self.local is not None else self.pids.get(name)
        if pid is None:
            raise FaultNotPossible(f"no process id of service {name!r}")
        return pid

    def kill(self, name: str) -> None:
        """SIGKILL service ``name`` (``kz``, ``itl``, ...): nothing uncommitted survives."""
        if self.local is not None:
            self.local.kill(name)
        else:
            os.killpg(self._pid(name), signal.SIGKILL)

    def restart(self, name: str) -> None:
        """Start a killed or stopped service again; returns once it is healthy (up to 60
        real seconds). Only on a stack the runner started."""
        if self.local is None:
            raise FaultNotPossible(
                f"service {name!r} of the attached stack ({self.origin}) cannot be started "
                "again by the runner; run the plan on a stack it starts (no --stack)")
        self.local.restart(name)

    def drop_waiting(self, name: str, timeout: float = 30.0) -> int:
        """Wait (up to ``timeout`` real seconds) until at least one message waits in
        service ``name``'s inbox queue, then drop every message waiting there (a lost
        message); returns how many. Only on a stack the runner started, whose queue
        names it knows; the service should be down, or its consumer holds the messages."""
        if self.local is None:
            raise FaultNotPossible(
                f"messages to {name!r} of the attached stack ({self.origin}) cannot be "
                "dropped: the runner does not know its queue names")
        queue = inbox_queue_name(name.upper(), self.local.namespace)
        deadline = time.monotonic() + timeout
        while asyncio.run(_waiting(queue)) == 0:
            if time.monotonic() > deadline:
                raise TimeoutError(f"no message waits in {queue} after {timeout} s")
            time.sleep(0.05)
        return asyncio.run(purge_queue(queue))

    def pause(self, name: str) -> None:
        """SIGSTOP service ``name``: it reads no message until resumed, so every message
        to it is delayed (and one it was handling stays unanswered)."""
        os.kill(self._pid(name), signal.SIGSTOP)

    def resume(self, name: str) -> None:
        """SIGCONT a paused service: the delayed messages are delivered."""
        os.kill(self._pid(name), signal.SIGCONT)


async def _waiting(queue: str) -> int:
    """How many messages wait (ready) in ``queue``."""
    connection = await aio_pika.connect(amqp_url())
    try:
        channel = await connection.channel()
        declared = await channel.declare_queue(queue, passive=True)
        return int(declared.declaration_result.message_count or 0)
    finally:
        await connection.close()


def client_of(local: LocalStack) -> StackClient:
    """A client of a stack the runner started, with its issuer's identities."""
    return StackClient({name: s.url for name, s in local.services.items()},
                       issuer=local.issuer, timeout=30.0)


def attach(path: Path) -> StackHandle:
    """A handle on the running stack described by ``path`` (the ``stack.json`` of ``make
    up``: the services' URLs and process ids, the issuer's URL and configuration file).
    Raises ``StackFileError`` naming the file and what is wrong when the file cannot be
    read or a service does not answer ``GET /health`` within 5 real seconds."""
    try:
        stack = read_stack_file(path)
    except UnreadableStackFile as exc:
        raise StackFileError(str(exc)) from None
    urls, pids, access = stack.urls, stack.pids, stack.issuer
    silent = [f"{name} at {url}" for name, url in urls.items() if not answers(url)]
    if silent:
        raise StackFileError(f"the stack of {path} does not answer: {', '.join(silent)} "
                             "(GET /health); start it with make up")
    if access is not None and not answers(access.url, "/jwks.json"):
        raise StackFileError(f"the issuer of {path} at {access.url} does not answer")
    return StackHandle(StackClient(urls, issuer=access, timeout=30.0), pids=pids,
                       origin=str(path))
