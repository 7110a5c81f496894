"""Real MongoDB and RabbitMQ containers for the tests, where a Docker engine answers
(testcontainers; docs/adr/0045).

``STACK`` in the environment chooses what the integration and end-to-end tests run on:

- unset or ``local`` (the default): SecantusDB servers started as processes and the local
  RabbitMQ on 127.0.0.1:5672, as before;
- ``containers``: every store a MongoDB container (``MONGO_IMAGE``, the image of
  docker-compose.yml: a one-member replica set, so that transactions work) and the
  broker one RabbitMQ container for the whole run (``RABBITMQ_IMAGE``, with its
  management API, through which the stacks create their users). Without a Docker engine
  the run fails with ``ContainersUnavailable`` saying so; it never falls back or skips.

The root ``conftest.py`` starts the broker before any test (in the controller of an
xdist run, whose workers inherit ``AMQP_URL`` and ``RABBITMQ_MANAGEMENT_URL``);
``shared.testing.infra.start_store`` starts a store container wherever it would start a
SecantusDB server. Testcontainers' reaper removes what a killed run leaves behind.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
from pymongo import MongoClient
from pymongo.errors import OperationFailure, PyMongoError

#: The images docker-compose.yml runs.
MONGO_IMAGE = "mongo:7.0"
RABBITMQ_IMAGE = "rabbitmq:3.13-management"
#: The replica set of every store container (as docker-compose.yml's).
REPLICA_SET = "rs0"
#: The broker container's administrator (docker-compose.yml's is the same name).
BROKER_ADMIN = "kyoto-admin"
#: Real seconds a container has to answer after it started.
READY_SECONDS = 90.0
STACK_VARIABLE = "STACK"
STACK_KINDS = ("local", "containers")


class ContainersUnavailable(RuntimeError):
    """``STACK=containers`` where no Docker engine answers, or a container that did not
    become ready: the message says which and what to do."""


def stack_kind() -> str:
    """``local`` or ``containers`` from ``STACK``; ``ValueError`` naming both otherwise."""
    value = os.environ.get(STACK_VARIABLE, "").strip() or "local"
    if value not in STACK_KINDS:
        raise ValueError(f"{STACK_VARIABLE}={value!r}: give 'containers' (the tests on "
                         "MongoDB and RabbitMQ containers, needs Docker) or 'local' (the "
                         "default: SecantusDB and the local RabbitMQ)")
    return value


def containers_requested() -> bool:
    """Whether the tests run on containers (``STACK=containers``)."""
    return stack_kind() == "containers"


def require_docker() -> None:
    """Return when a Docker engine answers a ping; ``ContainersUnavailable`` otherwise,
    naming where it was looked for (``DOCKER_HOST`` or the default socket)."""
    where = os.environ.get("DOCKER_HOST") or "the default socket /var/run/docker.sock"
    try:
        from testcontainers.core.docker_client import DockerClient

        client = DockerClient().client
        try:
            client.ping()
        finally:
            client.close()
    except Exception as exc:
        raise ContainersUnavailable(
            f"{STACK_VARIABLE}=containers runs the tests on MongoDB and RabbitMQ "
            f"containers and needs a Docker engine, but none answers at {where} "
            f"({type(exc).__name__}: {exc}). Start Docker or set DOCKER_HOST, or run "
            f"without {STACK_VARIABLE}=containers (SecantusDB and the local RabbitMQ)."
        ) from exc


def pull_images(images: tuple[str, ...] = (MONGO_IMAGE, RABBITMQ_IMAGE)) -> None:
    """Pull the images that are not here yet, once, before any test: a store container
    started by a stack must answer within the services' wait for their store
    (``STORE_START_WAIT_SECONDS``), which a first pull could outlast."""
    from testcontainers.core.docker_client import DockerClient

    client = DockerClient().client
    try:
        for image in images:
            if not client.images.list(name=image):
                try:
                    client.images.pull(image)
                except Exception as exc:
                    raise ContainersUnavailable(
                        f"{STACK_VARIABLE}=containers: the image {image} is not here "
                        f"and could not be pulled ({type(exc).__name__}: {exc})") from exc
    finally:
        client.close()


def _container(image: str) -> Any:
    from testcontainers.core.container import DockerContainer

    return DockerContainer(image)


_REAPER_LOCK = threading.Lock()


def _start_reaper() -> None:
    """Start testcontainers' reaper (which removes this process's containers when it
    dies) once, here: ``DockerContainer.start`` would otherwise create it from each of
    the threads that start a stack's stores at once."""
    from testcontainers.core.config import testcontainers_config
    from testcontainers.core.container import Reaper

    with _REAPER_LOCK:
        if not testcontainers_config.ryuk_disabled:
            Reaper.get_instance()


def _deadline_passed(started: float, what: str, error: BaseException | None) -> None:
    if time.monotonic() - started > READY_SECONDS:
        raise ContainersUnavailable(f"{what} did not become ready within {READY_SECONDS} "
                                    f"s: {error!r}")


@dataclass
class BrokerContainer:
    """The run's RabbitMQ container: ``amqp_url`` as its administrator and the
    ``management_url`` the stacks create their users through."""

    container: Any
    amqp_url: str
    management_url: str

    def stop(self) -> None:
        self.container.stop()


def start_broker() -> BrokerContainer:
    """Start a RabbitMQ container with its management API and a random administrator
    password, and return once both AMQP and the management API answer."""
    from shared.testing.infra import check_broker  # infra imports this module

    secret = secrets.token_urlsafe(18)
    container = (_container(RABBITMQ_IMAGE).with_exposed_ports(5672, 15672)
                 .with_env("RABBITMQ_DEFAULT_USER", BROKER_ADMIN)
                 .with_env("RABBITMQ_DEFAULT_PASS", secret))
    container.start()
    try:
        host = container.get_container_host_ip()
        amqp = f"amqp://{BROKER_ADMIN}:{secret}@{host}:{container.get_exposed_port(5672)}/"
        management = (f"http://{BROKER_ADMIN}:{secret}@{host}:"
                      f"{container.get_exposed_port(15672)}")
        started = time.monotonic()
        while True:
            try:
                asyncio.run(check_broker(amqp))
                httpx.get(f"{management}/api/overview", timeout=5).raise_for_status()
                break
            except (RuntimeError, httpx.HTTPError) as exc:
                _deadline_passed(started, f"the RabbitMQ container ({RABBITMQ_IMAGE})", exc)
                time.sleep(0.5)
    except BaseException:
        container.stop()
        raise
    return BrokerContainer(container, amqp, management)


@dataclass
class MongoContainer:
    """A store's MongoDB container, started in the background on ``port`` of the Docker
    host (``url``, known at once, as a SecantusDB server's is); ``wait`` returns once it
    is the writable primary of its one-member replica set."""

    port: int
    container: Any = None
    host: str = "127.0.0.1"
    _thread: threading.Thread | None = field(default=None, repr=False)
    _error: BaseException | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"mongodb://{self.host}:{self.port}/?directConnection=true"

    def start(self) -> None:
        _start_reaper()
        self.container = (_container(MONGO_IMAGE)
                          .with_command(["mongod", "--replSet", REPLICA_SET, "--bind_ip_all"])
                          .with_bind_ports(27017, self.port))
        self.host = self.container.get_docker_client().host()
        self._thread = threading.Thread(target=self._run, name=f"mongo-{self.port}",
                                        daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            self.container.start()
            self._initiate()
        except BaseException as exc:
            self._error = exc

    def _initiate(self) -> None:
        """Make the mongod a one-member replica set and wait until it is primary."""
        client: MongoClient[dict[str, Any]] = MongoClient(self.url,
                                                          serverSelectionTimeoutMS=2000)
        started = time.monotonic()
        try:
            while True:
                try:
                    try:
                        client.admin.command("replSetInitiate", {
                            "_id": REPLICA_SET,
                            "members": [{"_id": 0, "host": "127.0.0.1:27017"}]})
                    except OperationFailure as exc:
                        if exc.code != 23:  # AlreadyInitialized
                            raise
                    if client.admin.command("hello").get("isWritablePrimary"):
                        return
                    error: BaseException | None = None
                except PyMongoError as exc:
                    error = exc
                _deadline_passed(started, f"the MongoDB container on port {self.port}", error)
                time.sleep(0.2)
        finally:
            client.close()

    def wait(self, timeout: float = READY_SECONDS) -> None:
        """Return once the store answers as primary; ``ContainersUnavailable`` when its
        container failed or is not ready within ``timeout`` real seconds."""
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                raise ContainersUnavailable(f"the MongoDB container on port {self.port} "
                                            f"is not ready after {timeout} s")
        if self._error is not None:
            raise ContainersUnavailable(f"the MongoDB container on port {self.port} did "
                                        f"not start: {self._error!r}") from self._error

    def stop(self) -> None:
        """Remove the container (after its start has ended, however it ended)."""
        if self._thread is not None:
            self._thread.join(READY_SECONDS)
        if self.container is not None:
            self.container.stop()
