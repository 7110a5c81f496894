"""Start a real MongoDB-wire server and reach the real RabbitMQ for tests and tools.

``MONGO_URL`` in the environment selects an existing server (a real mongod or replica
set); otherwise a SecantusDB server is started as its own process, or, with
``STACK=containers``, a MongoDB container (``shared.testing.containers``). A missing
broker or store is an error, never a skip.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import aio_pika
from aio_pika.abc import AbstractIncomingMessage

from shared.messaging import Broker, TlsSettings
from shared.messaging.broker import TRANSIENT_RETRY_SECONDS, never_transient
from shared.messaging.identities import definitions, new_password, service_identities
from shared.messaging.provisioning import (
    BrokerAdmin,
    Identity,
    delete_topology,
    identity_url,
    vhost_of,
)
from shared.messaging.topology import (
    MAIN_EXCHANGE,
    Topology,
    dead_letter_queue_name,
    declare_topology,
)
from shared.testing.containers import MongoContainer, containers_requested

DEFAULT_AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def secantusd_command() -> str:
    local = Path(sys.executable).with_name("secantusd-py")
    if local.exists():
        return str(local)
    found = shutil.which("secantusd-py")
    if not found:
        raise RuntimeError("secantusd-py not found: install the project with 'make setup'")
    return found


@dataclass
class StoreServer:
    """A SecantusDB server process (or an external server named by MONGO_URL, or a
    MongoDB container under ``STACK=containers``)."""

    url: str
    process: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None
    port: int | None = None
    #: Its data in memory only (``--storage-path :memory:``): nothing to save at a stop.
    in_memory: bool = False
    #: The MongoDB container that is this store (``STACK=containers``).
    container: MongoContainer | None = None

    def stop(self) -> None:
        """Stop this server as ``stop_stores`` does; returns once the process is gone
        (at once for an external server)."""
        stop_stores([self])

    def kill(self) -> None:
        if self.container is not None:
            self.container.stop()
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def wait(self, timeout: float = 30) -> None:
        """Return once the server answers on its port (at once for an external one);
        ``RuntimeError`` when it exits or stays silent for ``timeout`` real seconds."""
        if self.port is not None:
            wait_for_port(self.port, timeout=timeout, process=self.process)


def stop_stores(stores: Sequence[StoreServer], timeout: float = 10.0) -> None:
    """Stop store servers together: SIGTERM to every one first, then wait for each,
    SIGKILL for one still running after ``timeout`` real seconds. A SecantusDB server
    takes about 2 s to close its storage, so a stack's five servers stopped one after
    the other would take five times as long. A server keeping its data in memory has
    nothing to write to disk and is killed at once. Store containers are removed
    together, each in its own thread."""
    removals = [threading.Thread(target=s.container.stop) for s in stores
                if s.container is not None]
    for removal in removals:
        removal.start()
    running = [s for s in stores if s.process is not None and s.process.poll() is None]
    for store in running:
        assert store.process is not None
        if store.in_memory:
            store.process.kill()
        else:
            store.process.terminate()
    deadline = time.monotonic() + timeout
    for process in [s.process for s in running if s.process is not None]:
        try:
            process.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    for removal in removals:
        removal.join()


def start_store(
    storage: str = ":memory:", port: int | None = None, log_dir: Path | None = None,
    wait: bool = True, own_process: bool = False,
) -> StoreServer:
    """Start SecantusDB on ``port`` (a free one by default) with its data in ``storage``
    (a directory, or ``:memory:``) and, unless ``wait`` is False, wait until it answers
    (``StoreServer.wait``). With ``MONGO_URL`` set, that external server instead, and
    with ``STACK=containers`` a MongoDB container of its own (``storage``, ``port`` and
    ``log_dir`` do not apply), unless ``own_process``: a test that stops and starts its
    store needs a process of its own."""
    external = os.environ.get("MONGO_URL")
    if external and not own_process:
        return StoreServer(url=external)
    if containers_requested() and not own_process:
        container = MongoContainer(free_port())
        container.start()
        server = StoreServer(url=container.url, container=container)
        if wait:
            server.wait()
        return server
    port = port or free_port()
    log_path = (log_dir or Path(os.environ.get("TMPDIR", "/tmp"))) / f"secantusd-{port}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            [secantusd_command(), "--port", str(port), "--storage-path", storage,
             "--log-level", "WARNING"],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = StoreServer(
        url=f"mongodb://127.0.0.1:{port}/?directConnection=true",
        process=process,
        log_path=log_path,
        port=port,
        in_memory=storage == ":memory:",
    )
    if wait:
        server.wait()
    return server


def wait_for_port(
    port: int, timeout: float, process: subprocess.Popen[bytes] | None = None
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"process exited with {process.returncode} before port {port}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing answered on port {port} within {timeout}s")


def process_alive(pid: int) -> bool:
    """Whether process ``pid`` still runs (a zombie, dead but not yet reaped, does not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    with contextlib.suppress(OSError):
        if (Path("/proc") / str(pid) / "stat").read_text().split()[2] == "Z":
            return False
    return True


R = TypeVar("R")


#: Real seconds ``eventually`` waits.
EVENTUALLY_SECONDS = 15.0


async def eventually(probe: Callable[[], Awaitable[R | None]], what: str) -> R:
    """Poll ``probe`` until it returns something, or fail after ``EVENTUALLY_SECONDS``
    naming ``what``."""
    deadline = asyncio.get_running_loop().time() + EVENTUALLY_SECONDS
    while True:
        result = await probe()
        if result is not None:
            return result
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def purge_queue(queue: str) -> int:
    """Empty a queue of the broker (a lost message, for recovery tests); returns how many
    messages it held."""
    connection = await aio_pika.connect(amqp_url())
    try:
        channel = await connection.channel()
        declared = await channel.get_queue(queue, ensure=True)
        purged = await declared.purge()
        return int(purged.message_count or 0)
    finally:
        await connection.close()


#: Real seconds ``publish_and_collect_dead_letters`` waits for the dead letters.
DEAD_LETTER_SECONDS = 30.0


async def publish_and_collect_dead_letters(
        namespace: str, identities: Mapping[str, Identity],
        messages: Sequence[tuple[str, str, bytes]]) -> dict[str, list[str]]:
    """Publish raw bodies ``(sender, recipient, body)`` to the main exchange, each logged
    in as ``identities[sender]`` and under its user id (so the check of the publisher
    passes and the message reaches the check under test), as a broken peer would; then
    read, as the administrator, as many dead letters from each recipient's dead-letter
    queue: their ``x-dead-reason`` per recipient, in order (fewer when
    ``DEAD_LETTER_SECONDS`` pass first)."""
    for sender, recipient, body in messages:
        identity = identities[sender]
        await publish_as(identity.url, identity.user, namespace, recipient, body)
    expected = Counter(recipient for _, recipient, _ in messages)
    reasons: dict[str, list[str]] = {key: [] for key in expected}
    connection = await aio_pika.connect(amqp_url(), ssl_context=broker_tls().context(amqp_url()))
    try:
        channel = await connection.channel()
        deadline = time.monotonic() + DEAD_LETTER_SECONDS
        for key, count in expected.items():
            dead = await channel.get_queue(dead_letter_queue_name(key, namespace),
                                           ensure=False)
            while len(reasons[key]) < count and time.monotonic() < deadline:
                message = await dead.get(fail=False)
                if message is None:
                    await asyncio.sleep(0.05)
                    continue
                reasons[key].append(str(message.headers["x-dead-reason"]))
                await message.ack()
        return reasons
    finally:
        await connection.close()


async def publish_each_as(namespace: str, identities: Mapping[str, Identity],
                          messages: Sequence[tuple[str, str, str, bytes]]) -> None:
    """Publish raw bodies ``(sender, recipient, message id, body)`` to the main exchange,
    each logged in as ``identities[sender]`` and under its user id, with the AMQP
    ``message_id`` given (a dead letter keeps it). One connection per sender, the senders
    at once, each sender's bodies one after the other, each confirmed before the next
    (so they reach a queue in order, and a body published after this returns never
    overtakes one of them)."""
    connections: dict[str, aio_pika.abc.AbstractConnection] = {}
    try:
        exchanges = {}
        for sender in dict.fromkeys(sender for sender, _, _, _ in messages):
            identity = identities[sender]
            connections[sender] = await aio_pika.connect(
                identity.url, ssl_context=broker_tls().context(identity.url))
            channel = await connections[sender].channel(publisher_confirms=True)
            exchanges[sender] = await channel.get_exchange(f"{namespace}{MAIN_EXCHANGE}")
        async def publish_all_of(sender: str) -> None:
            for source, recipient, message_id, body in messages:
                if source == sender:
                    await exchanges[sender].publish(
                        aio_pika.Message(body=body, user_id=identities[sender].user,
                                         message_id=message_id), routing_key=recipient)

        await asyncio.gather(*map(publish_all_of, exchanges))
    finally:
        for connection in connections.values():
            await connection.close()


@dataclass(frozen=True)
class DeadLetter:
    """A message a service dead-lettered: its ``x-dead-reason`` (empty when the broker
    dead-lettered it after too many deliveries) and ``x-dead-code``."""

    message_id: str | None
    reason: str
    code: int | None
    body: bytes


async def dead_letters_until(namespace: str, last: Mapping[str, str],
                             seconds: float = DEAD_LETTER_SECONDS
                             ) -> dict[str, list[DeadLetter]]:
    """The dead letters of each recipient's dead-letter queue, taken off the queue as
    the administrator, until the one whose AMQP message id is ``last[recipient]`` (a
    message that must be dead-lettered, published after the others: once it is there,
    the consumer is past all of them) has come to every queue; that one included.
    Raises ``AssertionError`` naming the recipients whose ``last`` did not come within
    ``seconds`` (real)."""
    found: dict[str, list[DeadLetter]] = {key: [] for key in last}
    done = {key: asyncio.Event() for key in last}
    connection = await aio_pika.connect(amqp_url(), ssl_context=broker_tls().context(amqp_url()))
    try:
        channel = await connection.channel()
        await channel.set_qos(prefetch_count=500)
        for key, final in last.items():
            queue = await channel.get_queue(dead_letter_queue_name(key, namespace),
                                            ensure=False)

            async def take(message: AbstractIncomingMessage, key: str = key,
                           final: str = final) -> None:
                await message.ack()
                headers = message.headers or {}
                code = headers.get("x-dead-code")
                found[key].append(DeadLetter(
                    message.message_id, str(headers.get("x-dead-reason") or ""),
                    int(str(code)) if code is not None else None, message.body))
                if message.message_id == final:
                    done[key].set()

            await queue.consume(take)
        try:
            await asyncio.wait_for(asyncio.gather(*(e.wait() for e in done.values())),
                                   seconds)
        except TimeoutError:
            late = {key: f"{len(found[key])} dead letters" for key in last
                    if not done[key].is_set()}
            raise AssertionError(f"the last message was not dead-lettered within {seconds} "
                                 f"s at {late}") from None
        return found
    finally:
        await connection.close()


def amqp_url() -> str:
    """The broker as its administrator (``AMQP_URL``; guest on the local broker)."""
    return os.environ.get("AMQP_URL", DEFAULT_AMQP_URL)


def broker_tls() -> TlsSettings:
    """The TLS files for ``amqp_url`` from ``AMQP_CA_FILE``, ``AMQP_CERT_FILE`` and
    ``AMQP_KEY_FILE``, as the services read them."""
    return TlsSettings(os.environ.get("AMQP_CA_FILE"), os.environ.get("AMQP_CERT_FILE"),
                       os.environ.get("AMQP_KEY_FILE"))


async def check_broker(url: str) -> None:
    """Raise with a clear message when RabbitMQ does not answer."""
    try:
        connection = await aio_pika.connect(url, timeout=10)
    except Exception as exc:
        raise RuntimeError(
            f"RabbitMQ at {url} does not answer ({exc!r}); start it with "
            "'rabbitmq-server -detached'"
        ) from exc
    await connection.close()


def new_namespace() -> str:
    """A fresh prefix for exchange and queue names, so test runs never share queues."""
    return f"t{uuid.uuid4().hex[:10]}."


@dataclass
class Namespace:
    """Broker names used by one test or stack, deleted again at the end, and, when
    provisioned (``IdentityPool``), the broker identity of each of its service codes."""

    prefix: str = field(default_factory=new_namespace)
    codes: set[str] = field(default_factory=lambda: {"ITL", "KZ", "CH", "JP", "CDM", "DE", "FR"})
    identities: dict[str, Identity] = field(default_factory=dict)

    def url(self, code: str) -> str:
        """The AMQP URL of service ``code``'s own user in this namespace."""
        return self.identities[code].url

    def broker(self, code: str, prefetch: int = 1,
               transient: Callable[[BaseException], bool] = never_transient,
               transient_retry_seconds: float = TRANSIENT_RETRY_SECONDS) -> Broker:
        """A ``Broker`` for service ``code``, logged in as its own user (``transient``
        and ``transient_retry_seconds`` as ``Broker`` takes them)."""
        return Broker(self.url(code), code, prefetch, namespace=self.prefix,
                      tls=broker_tls(), transient=transient,
                      transient_retry_seconds=transient_retry_seconds)

    @property
    def topology(self) -> Topology:
        return Topology(self.prefix, tuple(sorted(self.codes)))

    async def delete(self, url: str) -> None:
        """Delete the namespace's queues and exchanges (as the administrator ``url``)."""
        await delete_topology(url, self.topology, broker_tls().context(url))


async def publish_as(url: str, user_id: str | None, namespace: str, routing_key: str,
                     *bodies: bytes) -> None:
    """Publish ``bodies`` to the namespace's ``des.msg`` with ``routing_key``, logged in
    with ``url``, under the AMQP ``user_id`` (None: not set), as a service or a forger
    would put them on the broker."""
    connection = await aio_pika.connect(url, ssl_context=broker_tls().context(url))
    try:
        channel = await connection.channel()
        exchange = await channel.get_exchange(f"{namespace}{MAIN_EXCHANGE}")
        for body in bodies:
            await exchange.publish(aio_pika.Message(body=body, user_id=user_id),
                                   routing_key=routing_key)
    finally:
        await connection.close()


class IdentityPool:
    """Provisioned namespaces for tests that run services in-process.

    Creating users costs an administration call (about 0.6 s with rabbitmqctl), so users
    with least-privilege permissions for every code of ``Namespace`` are created for
    ``batch`` namespaces at once; each test takes a fresh namespace, whose exchanges and
    queues are declared over AMQP by the administrator ``amqp_url`` (and deleted by
    ``Namespace.delete``). ``close`` deletes every user the pool created.
    """

    def __init__(self, admin: BrokerAdmin, amqp_url: str, batch: int = 16) -> None:
        self.admin = admin
        self.amqp_url = amqp_url
        self.batch = batch
        self._ready: list[Namespace] = []
        self._users: list[str] = []

    async def take(self) -> Namespace:
        if not self._ready:
            await self._provision()
        namespace = self._ready.pop()
        connection = await aio_pika.connect(self.amqp_url,
                                            ssl_context=broker_tls().context(self.amqp_url))
        try:
            await declare_topology(await connection.channel(), namespace.topology)
        finally:
            await connection.close()
        return namespace

    async def _provision(self) -> None:
        fresh = [Namespace() for _ in range(self.batch)]
        users = []
        for namespace in fresh:
            passwords = {code: new_password() for code in namespace.codes}
            for user in service_identities(namespace.topology, passwords):
                code = user.name.removeprefix(namespace.prefix)
                namespace.identities[code] = Identity(
                    code, user.name, user.password,
                    identity_url(self.amqp_url, user.name, user.password))
                users.append(user)
        await self.admin.import_definitions(
            definitions(None, users, vhost_of(self.amqp_url)))
        self._users += [user.name for user in users]
        self._ready += fresh

    async def close(self) -> None:
        await self.admin.delete_users(self._users)
        self._users = []
