"""What a store transaction counts runs once it has committed (``shared.store.after_commit``,
docs/adr/0043): never for an attempt the store retried, work that raised, or a message
the inbox finds handled before; against a real MongoDB-wire server."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
from pymongo.errors import PyMongoError

from shared.store import Client, Database, Session, after_commit, handle_once, in_transaction
from shared.store.batching import BatchingClient
from tests.integration.test_store_batching import status

pytestmark = pytest.mark.integration


@pytest.fixture
async def store(mongo_url: str) -> AsyncIterator[tuple[Client, Database]]:
    client = BatchingClient(mongo_url, tz_aware=True)
    name = f"after_commit_{uuid.uuid4().hex[:12]}"
    try:
        yield client, client[name]
    finally:
        await client.drop_database(name)
        await client.close()


async def test_the_actions_run_once_after_the_commit_in_order(
        store: tuple[Client, Database]) -> None:
    client, db = store
    ran: list[str] = []

    async def work(session: Session) -> None:
        await db.things.insert_one({"_id": 1}, session=session)
        after_commit(session, lambda: ran.append("first"))
        after_commit(session, lambda: ran.append("second"))
        assert ran == []  # not before the commit

    await in_transaction(client, work)
    assert ran == ["first", "second"]
    assert await db.things.count_documents({}) == 1


async def test_work_that_raises_runs_none(store: tuple[Client, Database]) -> None:
    client, db = store
    ran: list[str] = []

    async def work(session: Session) -> None:
        await db.things.insert_one({"_id": 1}, session=session)
        after_commit(session, lambda: ran.append("refused"))
        raise ValueError("refused")

    with pytest.raises(ValueError, match="refused"):
        await in_transaction(client, work)
    assert ran == []
    assert await db.things.count_documents({}) == 0


async def test_an_attempt_the_store_retries_runs_none_of_its_actions(
        store: tuple[Client, Database]) -> None:
    client, db = store
    ran: list[int] = []
    attempts: list[int] = []

    async def work(session: Session) -> None:
        attempts.append(len(attempts) + 1)
        await db.things.insert_one({"_id": 1}, session=session)
        attempt = attempts[-1]
        after_commit(session, lambda: ran.append(attempt))
        if attempt == 1:
            raise PyMongoError("write conflict", error_labels=["TransientTransactionError"])

    await in_transaction(client, work)
    assert attempts == [1, 2]
    assert ran == [2]


async def test_a_message_handled_before_runs_none(store: tuple[Client, Database]) -> None:
    client, db = store
    ran: list[str] = []
    envelope = status()

    async def effect(session: Session) -> None:
        await db.effects.insert_one({"message": envelope.message_id,
                                     "n": await db.effects.count_documents({},
                                                                           session=session)},
                                    session=session)
        after_commit(session, lambda: ran.append(envelope.message_id))

    assert await handle_once(client, db, envelope, effect, envelope.sent_at)
    assert not await handle_once(client, db, envelope, effect, envelope.sent_at)
    assert ran == [envelope.message_id]


async def test_outside_a_batched_transaction_the_action_runs_at_once(
        mongo_url: str) -> None:
    ran: list[str] = []
    client = BatchingClient(mongo_url, tz_aware=True)
    try:
        async with client.start_session() as session:
            after_commit(session, lambda: ran.append("now"))
            assert ran == ["now"]
    finally:
        await client.close()
