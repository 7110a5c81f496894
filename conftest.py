"""Fixtures shared by every test: a real MongoDB-wire server and the real RabbitMQ."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from shared.testing.infra import Namespace, amqp_url, check_broker, start_store


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


@pytest.fixture
async def namespace(broker_url: str) -> AsyncIterator[Namespace]:
    """A private set of exchange and queue names, deleted after the test."""
    ns = Namespace()
    yield ns
    await ns.delete(broker_url)
