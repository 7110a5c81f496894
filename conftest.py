"""Fixtures shared by every test: a real MongoDB-wire server and the real RabbitMQ.

``STACK=containers`` (shared/testing/containers.py): MongoDB and RabbitMQ containers
instead of SecantusDB and the local broker; the broker container is started here, before
any test, and its URLs put in the environment every stack, tool and xdist worker reads.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator

import pytest

from shared.messaging.provisioning import admin_from_environment
from shared.testing.containers import (
    BrokerContainer,
    ContainersUnavailable,
    containers_requested,
    pull_images,
    require_docker,
    start_broker,
)
from shared.testing.infra import IdentityPool, Namespace, amqp_url, check_broker, start_store

#: The run's broker container under STACK=containers (in the process that started it).
BROKER_CONTAINER = pytest.StashKey[BrokerContainer]()


def pytest_configure(config: pytest.Config) -> None:
    """Under ``STACK=containers``, start the run's RabbitMQ container and point
    ``AMQP_URL`` and ``RABBITMQ_MANAGEMENT_URL`` at it (an xdist worker inherits them
    from the controller). No Docker engine, or an unknown ``STACK``: the run stops with
    a usage error saying so, never a skip."""
    try:
        wanted = containers_requested()
    except ValueError as exc:
        raise pytest.UsageError(str(exc)) from exc
    if not wanted or hasattr(config, "workerinput"):
        return
    try:
        require_docker()
        pull_images()
        broker = start_broker()
    except ContainersUnavailable as exc:
        raise pytest.UsageError(str(exc)) from exc
    config.stash[BROKER_CONTAINER] = broker
    os.environ["AMQP_URL"] = broker.amqp_url
    os.environ["RABBITMQ_MANAGEMENT_URL"] = broker.management_url


def pytest_unconfigure(config: pytest.Config) -> None:
    broker = config.stash.get(BROKER_CONTAINER, None)
    if broker is not None:
        broker.stop()


@pytest.fixture(scope="session")
def mongo_url() -> Iterator[str]:
    """A MongoDB-wire server for the whole session (SecantusDB unless MONGO_URL is set)."""
    server = start_store()
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture(scope="session")
async def broker_url() -> str:
    """The real RabbitMQ; a missing broker fails the test."""
    url = amqp_url()
    await check_broker(url)
    return url


@pytest.fixture(scope="session")
async def identity_pool(broker_url: str) -> AsyncIterator[IdentityPool]:
    """Broker users for in-process services, created in batches; deleted at the end."""
    pool = IdentityPool(admin_from_environment(), broker_url)
    try:
        yield pool
    finally:
        await pool.close()


@pytest.fixture
async def namespace(broker_url: str, identity_pool: IdentityPool) -> AsyncIterator[Namespace]:
    """A private set of exchange and queue names with a broker user per service code
    (``namespace.url(code)``, ``namespace.broker(code)``), deleted after the test."""
    ns = await identity_pool.take()
    yield ns
    await ns.delete(broker_url)
