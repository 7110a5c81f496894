"""Fixtures shared by every test: a real MongoDB-wire server and the real RabbitMQ."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from shared.messaging.provisioning import admin_from_environment
from shared.testing.infra import IdentityPool, Namespace, amqp_url, check_broker, start_store


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
