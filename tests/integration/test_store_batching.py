"""The writes of a store transaction sent together (shared/store/batching.py), the inbox
row written first (shared/store/inbox.py) and the marks of published outbox rows, against
a real MongoDB-wire server (docs/adr/0024)."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime

import pytest
from pymongo import monitoring
from pymongo.errors import DuplicateKeyError

from shared.clock import SimulationClock
from shared.codes import MessageType, TransactionStatus
from shared.contracts import Envelope, TransactionStatusNotified, make_envelope
from shared.logs import log_event
from shared.store import (
    Client,
    Database,
    MessageIdReused,
    OutboxRelay,
    Session,
    after_commit,
    enqueue,
    handle_once,
    in_transaction,
    insert_apart,
    make_client,
)
from shared.store.batching import BatchingClient, discarding, overlay, recall, remember
from shared.testing.infra import Namespace

pytestmark = pytest.mark.integration


class Commands(monitoring.CommandListener):
    """The names of the commands a client sends, in order."""

    def __init__(self) -> None:
        self.names: list[str] = []

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        self.names.append(event.command_name)

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        """Nothing."""

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        """Nothing."""


@pytest.fixture
async def store(mongo_url: str) -> AsyncIterator[tuple[Client, Database, Commands]]:
    """A batching client listened to, on a fresh database."""
    commands = Commands()
    client = BatchingClient(mongo_url, tz_aware=True, event_listeners=[commands])
    name = f"batching_{uuid.uuid4().hex[:12]}"
    await client.speaks_client_bulk_write()  # asked once per client (``hello``)
    try:
        yield client, client[name], commands
    finally:
        await client.drop_database(name)
        await client.close()


def status(transaction_id: str = "KZ1") -> Envelope:
    return make_envelope(
        message_type=MessageType.TRANSACTION_STATUS_NOTIFIED, sender="ITL", recipient="KZ",
        correlation_id=transaction_id,
        payload=TransactionStatusNotified(transaction_id=transaction_id,
                                          status=TransactionStatus.COMPLETED),
        sent_at=datetime.now(UTC))


async def test_the_writes_of_a_transaction_go_in_one_command_before_its_commit(
    store: tuple[Client, Database, Commands],
) -> None:
    client, db, commands = store
    await db.b.insert_one({"_id": 1, "units": 5})
    commands.names.clear()

    async def work(session: Session) -> None:
        await db.a.insert_one({"_id": "x"}, session=session)
        await db.b.update_one({"_id": 1}, {"$inc": {"units": 2}}, session=session)
        await db.c.insert_many([{"_id": 1}, {"_id": 2}], session=session)
        await db.a.delete_one({"_id": "x"}, session=session)

    await in_transaction(client, work)
    assert commands.names == ["bulkWrite", "commitTransaction"]
    assert await db.a.count_documents({}) == 0
    assert await db.b.find_one({"_id": 1}) == {"_id": 1, "units": 7}
    assert await db.c.count_documents({}) == 2


async def test_a_read_sees_the_transactions_writes_and_sends_them_only_when_it_must(
    store: tuple[Client, Database, Commands],
) -> None:
    client, db, commands = store
    await db.b.insert_one({"_id": 1, "units": 5})
    commands.names.clear()

    async def work(session: Session) -> tuple[int, int]:
        await db.a.insert_one({"_id": "x", "units": 3}, session=session)
        other = await db.b.find_one({"_id": 1}, session=session)  # nothing written to b
        mine = await db.a.find_one({"_id": "x"}, session=session)  # a written: sent first
        assert other is not None and mine is not None
        return other["units"], mine["units"]

    assert await in_transaction(client, work) == (5, 3)
    assert commands.names == ["find", "bulkWrite", "find", "commitTransaction"]


async def test_writes_discarded_unsent_leave_nothing_and_the_transaction_goes_on(
    store: tuple[Client, Database, Commands],
) -> None:
    """``discarding``: writes queued within the block are dropped unsent, with the reads
    kept, the states and the actions to run at commit (``after_commit``, the counters)
    recorded since it began; the transaction then writes and commits something else, and
    only the actions recorded outside the block run. Writes a read within the block had
    to send cannot be dropped: the block says so (``clean`` False) and the caller
    abandons the transaction."""
    client, db, commands = store
    await db.b.insert_one({"_id": 1, "units": 5})
    commands.names.clear()

    counted: list[str] = []

    async def work(session: Session) -> bool:
        remember(session, (db.c.full_name, "kept"), 1)
        after_commit(session, lambda: counted.append("before"))
        with discarding(session) as checked:
            after_commit(session, lambda: counted.append("rehearsed"))
            await db.a.insert_one({"_id": "dropped"}, session=session)
            await db.b.update_one({"_id": 1}, {"$inc": {"units": 100}}, session=session)
            written = overlay(session, db.c.full_name)
            assert written is not None
            written["x"] = {"_id": "x"}
            remember(session, (db.c.full_name, "kept"), 2)
            assert await db.c.find_one({"_id": 1}, session=session) is None  # c: not sent
        assert overlay(session, db.c.full_name) == {}
        assert recall(session, (db.c.full_name, "kept")) == 1
        await db.a.insert_one({"_id": "kept"}, session=session)
        after_commit(session, lambda: counted.append("after"))
        return checked.clean

    assert await in_transaction(client, work) is True
    assert counted == ["before", "after"]
    assert commands.names == ["find", "bulkWrite", "commitTransaction"]
    assert [d["_id"] for d in await db.a.find().to_list()] == ["kept"]
    assert await db.b.find_one({"_id": 1}) == {"_id": 1, "units": 5}

    class Abandoned(Exception):
        pass

    async def sent(session: Session) -> None:
        with discarding(session) as checked:
            await db.b.update_one({"_id": 1}, {"$inc": {"units": 100}}, session=session)
            found = await db.b.find_one({"_id": 1}, session=session)  # b written: sent
            assert found is not None and found["units"] == 105
        assert not checked.clean
        raise Abandoned

    with pytest.raises(Abandoned):
        await in_transaction(client, sent)
    assert await db.b.find_one({"_id": 1}) == {"_id": 1, "units": 5}


async def test_without_a_cross_collection_bulk_write_each_run_of_one_collection_is_one_command(
    store: tuple[Client, Database, Commands],
) -> None:
    client, db, commands = store
    assert isinstance(client, BatchingClient)
    client._client_bulk_write = False  # as a MongoDB before 8.0 answers
    commands.names.clear()

    async def work(session: Session) -> None:
        await db.a.insert_one({"_id": 1}, session=session)
        await db.a.insert_one({"_id": 2}, session=session)
        await db.b.insert_one({"_id": 1}, session=session)
        await db.a.update_one({"_id": 1}, {"$set": {"seen": True}}, session=session)

    await in_transaction(client, work)
    assert commands.names == ["insert", "insert", "update", "commitTransaction"]
    assert await db.a.find_one({"_id": 1}) == {"_id": 1, "seen": True}


async def test_a_duplicate_key_in_the_batch_is_a_duplicate_key_error_and_nothing_is_stored(
    store: tuple[Client, Database, Commands],
) -> None:
    client, db, _ = store
    await db.a.insert_one({"_id": 1})

    async def work(session: Session) -> None:
        await db.b.insert_one({"_id": "before"}, session=session)
        await db.a.insert_one({"_id": 1}, session=session)

    with pytest.raises(DuplicateKeyError):
        await in_transaction(client, work)
    assert await db.b.count_documents({}) == 0


@pytest.fixture
async def other(mongo_url: str, store: tuple[Client, Database, Commands]
                ) -> AsyncIterator[tuple[Client, Database]]:
    """A second batching client on the same database: its transactions overlap the first
    client's (one client's transactions take turns, docs/adr/0026)."""
    client = BatchingClient(mongo_url, tz_aware=True)
    try:
        yield client, client[store[1].name]
    finally:
        await client.close()


async def test_concurrent_transactions_on_one_document_are_retried_and_both_count(
    store: tuple[Client, Database, Commands], other: tuple[Client, Database],
) -> None:
    client, db, _ = store

    await db.b.insert_one({"_id": 1, "units": 0})

    def add(database: Database) -> Callable[[Session], Awaitable[None]]:
        async def work(session: Session) -> None:
            doc = await database.b.find_one({"_id": 1}, session=session)
            assert doc is not None
            await asyncio.sleep(0.05)  # both read before either writes
            await database.b.update_one({"_id": 1}, {"$set": {"units": doc["units"] + 1}},
                                        session=session)
        return work

    await asyncio.gather(in_transaction(client, add(db)),
                         in_transaction(other[0], add(other[1])))
    assert await db.b.find_one({"_id": 1}) == {"_id": 1, "units": 2}


async def test_a_redelivered_message_changes_nothing_even_when_its_effect_has_moved_on(
    store: tuple[Client, Database, Commands], caplog: pytest.LogCaptureFixture,
) -> None:
    client, db, _ = store
    message = status()
    now = datetime.now(UTC)
    log = logging.getLogger("test.batching")

    async def effect(session: Session) -> None:
        log_event(log, "effect_ran", transaction_id=message.correlation_id)
        if await db.effects.find_one({"_id": message.message_id}, session=session):
            raise RuntimeError("applied before")  # its state has moved on
        await db.effects.insert_one({"_id": message.message_id}, session=session)

    with caplog.at_level(logging.INFO, logger="test.batching"):
        assert await handle_once(client, db, message, effect, now) is True
        assert await handle_once(client, db, message, effect, now) is False
    assert [r.getMessage() for r in caplog.records] == ["effect_ran"]  # once, not twice
    assert await db.effects.count_documents({}) == 1
    assert await db.inbox.count_documents({}) == 1

    reused = message.model_copy(update={"correlation_id": "KZ2"})
    with pytest.raises(MessageIdReused):
        await handle_once(client, db, reused, effect, now)
    assert await db.effects.count_documents({}) == 1


async def test_an_effect_that_fails_for_a_new_message_fails_and_stores_nothing(
    store: tuple[Client, Database, Commands],
) -> None:
    client, db, _ = store

    async def effect(session: Session) -> None:
        await db.effects.insert_one({"_id": 1}, session=session)
        raise ValueError("refused")

    with pytest.raises(ValueError, match="refused"):
        await handle_once(client, db, status(), effect, datetime.now(UTC))
    assert await db.inbox.count_documents({}) == 0
    assert await db.effects.count_documents({}) == 0


async def test_the_relay_leaves_the_marks_to_the_next_transaction_or_writes_them_itself(
    mongo_url: str, namespace: Namespace,
) -> None:
    client = make_client(mongo_url)
    db = client[f"relay_{uuid.uuid4().hex[:12]}"]
    sender = namespace.broker("ITL")
    await sender.connect(peer_codes=["KZ"])
    relay = OutboxRelay(db, sender, SimulationClock())
    message = make_envelope(
        message_type=MessageType.TRANSACTION_STATUS_NOTIFIED, sender="ITL", recipient="KZ",
        correlation_id="KZ1", sent_at=datetime.now(UTC),
        payload=TransactionStatusNotified(transaction_id="KZ1",
                                          status=TransactionStatus.COMPLETED))
    try:
        await in_transaction(client, lambda s: enqueue(db, message, s), relay.hand)
        assert await relay._publish_handed(defer_marks=True) == 1
        row = await db.outbox.find_one({"_id": message.message_id})
        assert row is not None and row["published"] is False  # published, not yet marked
        assert await relay._unpublished() == []  # in the relay's hands: not swept again

        taken = relay.take_marks()
        assert taken == [message.message_id]
        relay.untake_marks(taken)  # the transaction that took them did not commit
        await relay.drain()  # marks what no transaction took
        row = await db.outbox.find_one({"_id": message.message_id})
        assert row is not None and row["published"] is True
        assert relay.take_marks() == []
    finally:
        await sender.close()
        await client.drop_database(db.name)
        await client.close()


async def test_a_transaction_retried_after_a_conflict_on_its_first_command_commits(
    store: tuple[Client, Database, Commands], other: tuple[Client, Database],
) -> None:
    """The other client's transaction sends its only write as its first command while
    the first client's transaction holds an uncommitted write to the same document: the
    write conflicts and the retry's first command is the batch again. The retry must be
    accepted (no ``afterClusterTime`` from an earlier attempt, which the embedded store
    refuses on ``bulkWrite``: ``causal_consistency=False``) and both writes count."""
    client, db, _ = store
    await db.b.insert_one({"_id": 1, "units": 0})
    first_sent, other_retried = asyncio.Event(), asyncio.Event()
    attempts: list[str] = []

    async def first(session: Session) -> None:
        attempts.append("first")
        await db.b.update_one({"_id": 1}, {"$inc": {"units": 1}}, session=session)
        await db.b.find_one({"_id": 1}, session=session)  # a read sends the write
        first_sent.set()
        await other_retried.wait()  # commit only once the other has conflicted

    async def second(session: Session) -> None:
        attempts.append("other")
        if attempts.count("other") > 1:
            other_retried.set()
        await first_sent.wait()
        await other[1].b.update_one({"_id": 1}, {"$inc": {"units": 1}}, session=session)

    await asyncio.wait_for(asyncio.gather(in_transaction(client, first),
                                          in_transaction(other[0], second)), timeout=60)
    assert await db.b.find_one({"_id": 1}) == {"_id": 1, "units": 2}
    assert attempts.count("first") == 1
    assert attempts.count("other") >= 2  # it conflicted and was tried again


async def test_documents_inserted_apart_commit_in_their_own_transactions_and_replace(
    store: tuple[Client, Database, Commands],
) -> None:
    """``insert_apart`` (a reconciliation's snapshot of a million blocks, too large for one
    store transaction): ``per_transaction`` documents a transaction, the first deleting
    what an earlier attempt left, run at once inside the caller's transaction; what they
    wrote stays when the caller's fails, and its retry replaces it."""
    client, db, commands = store
    rows = [{"reconciliation_id": "REC1", "n": n} for n in range(5)]
    await db.snapshots.insert_one({"reconciliation_id": "REC1", "n": -1})  # left before
    attempts: list[int] = []

    async def record(session: Session) -> None:
        attempts.append(len(attempts))
        await insert_apart(client, db.snapshots, rows, {"reconciliation_id": "REC1"}, 2)
        await db.reconciliations.insert_one({"_id": "REC1"}, session=session)
        if len(attempts) == 1:
            raise RuntimeError("the recording transaction fails once")

    commands.names.clear()
    with pytest.raises(RuntimeError):
        await in_transaction(client, record)
    assert commands.names.count("commitTransaction") == 3  # 2 + 2 + 1 rows
    assert await db.reconciliations.count_documents({}) == 0
    assert sorted(d["n"] for d in await db.snapshots.find().to_list()) == [0, 1, 2, 3, 4]
    await in_transaction(client, record)
    assert sorted(d["n"] for d in await db.snapshots.find().to_list()) == [0, 1, 2, 3, 4]
    assert await db.reconciliations.count_documents({}) == 1
