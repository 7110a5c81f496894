"""Start a real MongoDB-wire server and reach the real RabbitMQ for tests and tools.

``MONGO_URL`` in the environment selects an existing server (a real mongod or replica
set); otherwise a SecantusDB server is started as its own process. A missing broker or
store is an error, never a skip.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import aio_pika

from shared.messaging.clock import CLOCK_EXCHANGE, LAST_CLOCK_QUEUE
from shared.messaging.topology import (
    DEAD_LETTER_EXCHANGE,
    MAIN_EXCHANGE,
    dead_letter_queue_name,
    inbox_queue_name,
)

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
    """A SecantusDB server process (or an external server named by MONGO_URL)."""

    url: str
    process: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def start_store(
    storage: str = ":memory:", port: int | None = None, log_dir: Path | None = None
) -> StoreServer:
    """Start SecantusDB on ``port`` (a free one by default) and wait until it answers."""
    external = os.environ.get("MONGO_URL")
    if external:
        return StoreServer(url=external)
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
    )
    wait_for_port(port, timeout=30, process=process)
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


async def publish_and_collect_dead_letters(namespace: str,
                                           messages: Sequence[tuple[str, bytes]]
                                           ) -> dict[str, list[str]]:
    """Publish raw bodies to the main exchange under their routing keys (recipient codes),
    as a broken or forging peer would, then read as many dead letters from each
    recipient's dead-letter queue: their ``x-dead-reason`` per recipient, in order
    (fewer when ``DEAD_LETTER_SECONDS`` pass first)."""
    connection = await aio_pika.connect(amqp_url())
    try:
        channel = await connection.channel()
        exchange = await channel.get_exchange(f"{namespace}{MAIN_EXCHANGE}")
        for key, body in messages:
            await exchange.publish(aio_pika.Message(body=body), routing_key=key)
        expected: dict[str, int] = {}
        for key, _ in messages:
            expected[key] = expected.get(key, 0) + 1
        reasons: dict[str, list[str]] = {key: [] for key in expected}
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


def amqp_url() -> str:
    return os.environ.get("AMQP_URL", DEFAULT_AMQP_URL)


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
    """Broker names used by one test or stack, deleted again at the end."""

    prefix: str = field(default_factory=new_namespace)
    codes: set[str] = field(default_factory=lambda: {"ITL", "KZ", "CH", "JP", "CDM", "DE", "FR"})

    async def delete(self, url: str) -> None:
        connection = await aio_pika.connect(url)
        try:
            channel = await connection.channel()
            with contextlib.suppress(Exception):
                await channel.queue_delete(f"{self.prefix}{LAST_CLOCK_QUEUE}")
            for code in sorted(self.codes):
                for name in (inbox_queue_name(code, self.prefix),
                             dead_letter_queue_name(code, self.prefix)):
                    channel = await connection.channel()
                    with contextlib.suppress(Exception):  # never declared
                        await channel.queue_delete(name)
            for exchange in (MAIN_EXCHANGE, DEAD_LETTER_EXCHANGE, CLOCK_EXCHANGE):
                channel = await connection.channel()
                with contextlib.suppress(Exception):
                    await channel.exchange_delete(f"{self.prefix}{exchange}")
        finally:
            await connection.close()
