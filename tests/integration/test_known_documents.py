"""Documents a process committed, used again without reading them back
(shared/store/known.py, shared/store/batching.find_known; docs/adr/0046), against a real
MongoDB-wire server: a known state equals what a read returns after any sequence of the
writes the services make; it changes only when its store transaction commits; a
document another writer changed is noticed at the write, dropped and read again; a
counter never gives a number twice, whoever else counts with it."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pymongo import AsyncMongoClient
from pymongo.errors import OperationFailure

from shared.store import Client, Database, Session, find_known, in_transaction, next_sequence
from shared.store.batching import BatchingClient, discarding
from shared.store.known import StaleKnownDocument
from tests.integration.test_store_batching import Commands

pytestmark = pytest.mark.integration

GUARD = ("status",)


@pytest.fixture
async def known(mongo_url: str) -> AsyncIterator[tuple[Client, Database, Commands]]:
    """A batching client listened to, on a fresh database whose ``transactions`` are
    known documents."""
    commands = Commands()
    client = BatchingClient(mongo_url, tz_aware=True, event_listeners=[commands])
    name = f"known_{uuid.uuid4().hex[:12]}"
    await client.speaks_client_bulk_write()
    db = client[name]
    client.know(db.transactions, GUARD)
    try:
        yield client, db, commands
    finally:
        await client.drop_database(name)
        await client.close()


async def stored(db: Database, document_id: Any) -> Any:
    return await db.transactions.find_one({"_id": document_id})


async def use(client: Client, db: Database, document_id: Any) -> Any:
    """``find_known`` in a store transaction that writes nothing else."""
    async def work(session: Session) -> Any:
        return await find_known(db.transactions, document_id, session)
    return await in_transaction(client, work)


async def insert(client: Client, db: Database, *docs: dict[str, Any]) -> None:
    """Store ``docs`` in ``transactions`` in one store transaction of ``client``: their
    states are known once it commits."""
    async def work(session: Session) -> None:
        await db.transactions.insert_many(list(docs), session=session)
    await in_transaction(client, work)


def moment(microseconds: int) -> datetime:
    return datetime(2026, 12, 1, 6, 0, tzinfo=UTC) + timedelta(microseconds=microseconds)


async def test_a_committed_document_is_used_again_without_a_read(
    known: tuple[Client, Database, Commands],
) -> None:
    client, db, commands = known
    doc = {"status": 1, "created_at": moment(123_456), "history": [], "proposal": (1, 2)}

    await insert(client, db, {**doc, "_id": "KZ1"})

    commands.names.clear()
    seen = await use(client, db, "KZ1")
    # no find: the state kept when the insert committed; the condition on its status
    # is sent with the commit's writes
    assert commands.names == ["bulkWrite", "commitTransaction"]
    assert seen == await stored(db, "KZ1")
    assert list(seen) == list(await stored(db, "KZ1"))  # _id first, as stored
    assert seen["created_at"] == moment(123_000)  # milliseconds, as a read returns them


VALUES = st.one_of(st.integers(-5, 5), st.text(max_size=3),
                   st.integers(0, 10**6).map(moment), st.none(),
                   st.lists(st.integers(0, 3), max_size=2))
FIELDS = st.sampled_from(["status", "note", "deadline", "nested.a", "nested.b", "history"])
WRITES = st.one_of(
    st.tuples(st.just("$set"), FIELDS, VALUES),
    st.tuples(st.just("$set"), st.just("status"), st.integers(1, 9)),
    st.tuples(st.just("$unset"), FIELDS, st.just("")),
    st.tuples(st.just("$inc"), st.sampled_from(["count", "nested.count"]),
              st.integers(-3, 3)),
    st.tuples(st.sampled_from(["$min", "$max"]), st.sampled_from(["count", "first"]),
              st.integers(-5, 5)),
    st.tuples(st.just("$push"), st.sampled_from(["history", "results"]), VALUES),
    st.tuples(st.just("$push"), st.sampled_from(["history", "results"]),
              st.lists(VALUES, max_size=3).map(lambda each: {"$each": each})),
)


@settings(max_examples=40, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(steps=st.lists(st.lists(WRITES, min_size=1, max_size=3), min_size=1, max_size=6),
       abandon=st.lists(st.booleans(), min_size=6, max_size=6))
async def test_a_known_state_equals_a_read_after_any_writes(
    known: tuple[Client, Database, Commands], steps: list[list[tuple[str, str, Any]]],
    abandon: list[bool],
) -> None:
    """Each step is a store transaction that takes the document from what is known and
    writes to it; some are abandoned after writing (their writes must change nothing
    known). A write the store refuses (``$inc`` or ``$push`` on a field of another type)
    fails as it would have, and leaves nothing known of it either."""
    client, db, _ = known
    document_id = f"KZ{uuid.uuid4().hex[:8]}"

    await insert(client, db, {"_id": document_id, "status": 1, "history": [], "count": 0})

    class Abandoned(Exception):
        pass

    for step, give_up in zip(steps, abandon, strict=False):
        async def work(session: Session, step: list[tuple[str, str, Any]] = step,
                       give_up: bool = give_up) -> None:
            await find_known(db.transactions, document_id, session)
            for operator, name, value in step:
                await db.transactions.update_one({"_id": document_id},
                                                 {operator: {name: value}}, session=session)
            if give_up:
                raise Abandoned
        with contextlib.suppress(Abandoned, OperationFailure):
            await in_transaction(client, work)
        assert await use(client, db, document_id) == await stored(db, document_id)


async def another_writer(mongo_url: str, db: Database, update: dict[str, Any]) -> None:
    """Another process changes KZ1 behind this one's back (a client that knows nothing)."""
    other: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongo_url, tz_aware=True)
    try:
        await other[db.name].transactions.update_one({"_id": "KZ1"}, update)
    finally:
        await other.close()


async def test_a_document_changed_by_another_writer_is_read_again(
    known: tuple[Client, Database, Commands], mongo_url: str,
) -> None:
    client, db, _ = known

    await insert(client, db, {"_id": "KZ1", "status": 1})
    await another_writer(mongo_url, db, {"$set": {"status": 2}})
    attempts: list[int] = []

    async def advance(session: Session) -> int:
        tx = await find_known(db.transactions, "KZ1", session)
        assert tx is not None
        attempts.append(tx["status"])
        await db.transactions.update_one({"_id": "KZ1"}, {"$set": {"status": tx["status"] + 1}},
                                         session=session)
        return int(tx["status"])

    assert await in_transaction(client, advance) == 2
    assert attempts == [1, 2]  # the stale state was refused at the write, then read
    assert (await stored(db, "KZ1"))["status"] == 3
    assert (await use(client, db, "KZ1"))["status"] == 3


async def test_a_stale_state_used_without_a_write_is_still_checked(
    known: tuple[Client, Database, Commands], mongo_url: str,
) -> None:
    """A store transaction that only reads the known document sends its condition: the
    stale state fails the commit and the transaction runs again on what is stored."""
    client, db, _ = known

    await insert(client, db, {"_id": "KZ1", "status": 1})
    await another_writer(mongo_url, db, {"$set": {"status": 4}})
    seen: list[int] = []

    async def look(session: Session) -> None:
        tx = await find_known(db.transactions, "KZ1", session)
        assert tx is not None
        seen.append(tx["status"])
    await in_transaction(client, look)
    assert seen == [1, 4]


async def test_writes_of_an_abandoned_or_discarded_attempt_change_nothing_known(
    known: tuple[Client, Database, Commands],
) -> None:
    client, db, commands = known

    async def rehearsed(session: Session) -> None:
        await db.transactions.insert_one({"_id": "KZ1", "status": 1}, session=session)
        # a rehearsal inside the same transaction: its writes dropped unsent
        with discarding(session) as checked:
            await db.transactions.update_one({"_id": "KZ1"}, {"$set": {"status": 9}},
                                             session=session)
        assert checked.clean
    await in_transaction(client, rehearsed)

    async def refused(session: Session) -> None:
        await find_known(db.transactions, "KZ1", session)
        await db.transactions.update_one({"_id": "KZ1"}, {"$set": {"status": 7}},
                                         session=session)
        raise ValueError("refused")
    with pytest.raises(ValueError, match="refused"):
        await in_transaction(client, refused)
    commands.names.clear()
    assert (await use(client, db, "KZ1"))["status"] == 1
    assert "find" not in commands.names


async def test_a_write_not_worked_out_makes_the_collection_unknown(
    known: tuple[Client, Database, Commands],
) -> None:
    client, db, commands = known

    await insert(client, db, {"_id": "KZ1", "status": 1}, {"_id": "KZ2", "status": 1})

    async def many(session: Session) -> None:
        await db.transactions.update_many({"status": 1}, {"$set": {"status": 5}},
                                          session=session)
    await in_transaction(client, many)
    commands.names.clear()
    assert (await use(client, db, "KZ2"))["status"] == 5
    assert "find" in commands.names
    # an operator this module does not work out: read again too
    async def rename(session: Session) -> None:
        await find_known(db.transactions, "KZ1", session)
        await db.transactions.update_one({"_id": "KZ1"}, {"$rename": {"status": "state"}},
                                         session=session)
    await in_transaction(client, rename)
    assert await use(client, db, "KZ1") == {"_id": "KZ1", "state": 5}


async def test_a_counter_never_gives_a_number_twice_with_another_counter_at_work(
    known: tuple[Client, Database, Commands], mongo_url: str,
) -> None:
    client, db, commands = known

    async def take(session: Session) -> int:
        return await next_sequence(db, "transaction", session)

    assert [await in_transaction(client, take) for _ in range(3)] == [1, 2, 3]
    commands.names.clear()
    assert await in_transaction(client, take) == 4
    assert commands.names == ["bulkWrite", "commitTransaction"]  # the value was known
    # another process counts with the same counter
    other = BatchingClient(mongo_url, tz_aware=True)
    try:
        async def take_there(session: Session) -> int:
            return await next_sequence(other[db.name], "transaction", session)
        assert await in_transaction(other, take_there) == 5
    finally:
        await other.close()
    assert await in_transaction(client, take) == 6
    assert await db.counters.find_one({"_id": "transaction"}) == {"_id": "transaction",
                                                                   "value": 6}


async def test_stale_known_document_is_retried_by_the_store_transaction() -> None:
    error = StaleKnownDocument("kz.transactions", "KZ1")
    assert error.has_error_label("TransientTransactionError")
    assert "KZ1" in str(error)


async def test_a_write_conditioned_on_its_own_status_keeps_its_condition(
    known: tuple[Client, Database, Commands],
) -> None:
    """A service's own conditional write (move on only from status 1) on a document
    known at status 2 still matches nothing: the known state's condition never replaces
    the write's own."""
    client, db, _ = known
    await insert(client, db, {"_id": "KZ1", "status": 2})

    async def move_on_from_1(session: Session) -> None:
        await find_known(db.transactions, "KZ1", session)
        await db.transactions.update_one({"_id": "KZ1", "status": 1},
                                         {"$set": {"status": 3}}, session=session)

    await in_transaction(client, move_on_from_1)
    assert await stored(db, "KZ1") == {"_id": "KZ1", "status": 2}
    assert await use(client, db, "KZ1") == {"_id": "KZ1", "status": 2}


async def test_a_write_whose_own_filter_the_known_state_fails_is_sent_as_it_is(
    known: tuple[Client, Database, Commands],
) -> None:
    """A write filtered on a field the known state does not match goes as written, its
    condition apart: no stale-state retry for a write expected to match nothing."""
    client, db, _ = known
    await insert(client, db, {"_id": "KZ1", "status": 2, "kind": "inbound"})
    attempts: list[int] = []

    async def outgoing_only(session: Session) -> None:
        attempts.append(1)
        await find_known(db.transactions, "KZ1", session)
        await db.transactions.update_one({"_id": "KZ1", "kind": "outgoing"},
                                         {"$set": {"status": 3}}, session=session)

    await in_transaction(client, outgoing_only)
    assert attempts == [1]
    assert await stored(db, "KZ1") == {"_id": "KZ1", "status": 2, "kind": "inbound"}


@pytest.mark.parametrize("condition", [
    {"flagged": 1},                    # a number never equals a boolean in the store
    {"parties": {"b": "CH", "a": "KZ"}},  # a sub-document equals only in its field order
    {"history": 2},                    # an array holding the value matches
    {"counts": [1, True]},             # an array equals element by element, types too
])
async def test_a_write_conditioned_on_other_fields_matches_as_the_store_matches(
    known: tuple[Client, Database, Commands], condition: dict[str, Any],
) -> None:
    """A write whose filter names more than ``_id`` changes the known state only when
    the store would match the document: else the state is what the store holds."""
    client, db, _ = known
    await insert(client, db, {"_id": "KZ1", "status": 1, "flagged": True,
                              "parties": {"a": "KZ", "b": "CH"}, "history": [1, 2],
                              "counts": [1, 1]})

    async def mark(session: Session) -> None:
        await find_known(db.transactions, "KZ1", session)
        await db.transactions.update_one({"_id": "KZ1", **condition},
                                         {"$set": {"marked": True}}, session=session)
    await in_transaction(client, mark)
    assert await use(client, db, "KZ1") == await stored(db, "KZ1")


@pytest.mark.parametrize("path", ["history.0", "history.$[]", "results.note", "note.text"])
async def test_an_unset_through_an_array_or_a_value_is_not_taken_for_nothing(
    known: tuple[Client, Database, Commands], path: str,
) -> None:
    """``$unset`` of an array element, or through an array or a value, is not worked
    out here: the state is read again rather than kept as it was."""
    client, db, _ = known
    await insert(client, db, {"_id": "KZ1", "status": 1, "history": [1, 2],
                              "results": [{"note": "a"}], "note": "x"})

    async def unset(session: Session) -> None:
        await find_known(db.transactions, "KZ1", session)
        await db.transactions.update_one({"_id": "KZ1"}, {"$unset": {path: ""}},
                                         session=session)
    with contextlib.suppress(OperationFailure):
        await in_transaction(client, unset)
    assert await use(client, db, "KZ1") == await stored(db, "KZ1")


@pytest.mark.parametrize("first_known", [False, True])
async def test_a_nested_store_transaction_is_not_undone_by_the_one_around_it(
    known: tuple[Client, Database, Commands], mongo_url: str, first_known: bool,
) -> None:
    """A store transaction started inside another (``in_transaction`` nests) commits
    first; the outer one, which took the document before, must not leave its older
    state known over the newer one."""
    client, db, _ = known
    if first_known:
        await insert(client, db, {"_id": "KZ1", "status": 1, "note": "a"})
    else:
        await db.transactions.insert_one({"_id": "KZ1", "status": 1, "note": "a"})

    async def outer(session: Session) -> None:
        await find_known(db.transactions, "KZ1", session)

        async def inner(session: Session) -> None:
            await find_known(db.transactions, "KZ1", session)
            await db.transactions.update_one({"_id": "KZ1"}, {"$set": {"note": "b"}},
                                             session=session)
        await in_transaction(client, inner)
    await in_transaction(client, outer)
    assert (await stored(db, "KZ1"))["note"] == "b"
    assert (await use(client, db, "KZ1"))["note"] == "b"
