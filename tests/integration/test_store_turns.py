"""Store transactions of one client take turns (docs/adr/0026), against a real
MongoDB-wire server: many at once on the same documents all commit with no write
conflict and no aborted transaction, counted as ``GET /metrics`` counts them; a second
client (another process) still meets conflicts and is retried to the same result; a
transaction its work ends on purpose counts as abandoned, not aborted; a message's
transaction goes before requests waiting."""

from __future__ import annotations

import asyncio
import functools
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from prometheus_client import REGISTRY

from shared.blocks import SerialRange, UnitAttributes, UnitBlock
from shared.codes import AccountType, UnitType
from shared.store import (
    Client,
    Database,
    Session,
    in_transaction,
    make_client,
    next_sequence,
    urgent,
)
from shared.store.unit_blocks import HOLDINGS, Holder, UnitBlockStore

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
async def client(mongo_url: str) -> AsyncIterator[Client]:
    client = make_client(mongo_url)
    yield client
    await client.close()


@pytest.fixture
async def db(client: Client) -> AsyncIterator[Database]:
    name = f"turns_{uuid.uuid4().hex[:10]}"
    yield client[name]
    await client.drop_database(name)


def counted() -> dict[str, float]:
    """This process's store counters (``shared.metrics``): transactions by outcome and
    write conflicts in all."""
    out = {outcome: REGISTRY.get_sample_value("store_transactions_total",
                                              {"outcome": outcome}) or 0.0
           for outcome in ("commit", "abort", "abandon")}
    out["conflicts"] = sum(sample.value for metric in REGISTRY.collect()
                           if metric.name == "store_write_conflicts"
                           for sample in metric.samples if sample.name.endswith("_total"))
    return out


def grown(before: dict[str, float]) -> dict[str, float]:
    now = counted()
    return {key: now[key] - before[key] for key in now}


async def bump(db: Database, session: Session) -> int:
    """What every transfer of a registry does to its shared documents: draw the next
    number of a counter (read, then write) and add to a summary."""
    number = await next_sequence(db, "transaction", session)
    await db.summary.update_one({"_id": "account-1"}, {"$inc": {"units": 10}},
                                upsert=True, session=session)
    return number


async def test_transactions_of_one_client_on_the_same_documents_never_conflict(
    client: Client, db: Database
) -> None:
    before = counted()
    numbers = await asyncio.gather(*(in_transaction(client, lambda s: bump(db, s))
                                     for _ in range(24)))
    assert sorted(numbers) == list(range(1, 25))
    assert (await db.summary.find_one({"_id": "account-1"}) or {})["units"] == 240
    spent = grown(before)
    assert spent["commit"] == 24
    assert (spent["abort"], spent["conflicts"]) == (0, 0)


async def test_another_client_still_conflicts_and_is_retried_to_the_same_result(
    client: Client, db: Database, mongo_url: str
) -> None:
    """Two clients are two processes: their transactions overlap, the store refuses one
    of two writers of a document, and ``with_transaction`` retries it; no number is
    drawn twice and no increment is lost."""
    other = make_client(mongo_url)
    try:
        pairs = [(client, db), (other, other[db.name])] * 8
        numbers = await asyncio.gather(*(in_transaction(c, functools.partial(bump, d))
                                         for c, d in pairs))
    finally:
        await other.close()
    assert sorted(numbers) == list(range(1, 17))
    assert (await db.summary.find_one({"_id": "account-1"}) or {})["units"] == 160


async def test_a_transaction_its_work_ends_counts_as_abandoned_and_changes_nothing(
    client: Client, db: Database
) -> None:
    class Refused(Exception):
        pass

    async def refused(session: Session) -> None:
        await bump(db, session)
        raise Refused

    before = counted()
    with pytest.raises(Refused):
        await in_transaction(client, refused)
    spent = grown(before)
    assert (spent["abandon"], spent["abort"], spent["commit"]) == (1, 0, 0)
    assert await db.summary.find_one({"_id": "account-1"}) is None


async def test_a_transaction_started_inside_another_of_the_same_task_runs_at_once(
    client: Client, db: Database
) -> None:
    """Nested: the inner transaction does not wait for the turn its own task holds."""

    async def outer(session: Session) -> int:
        inner = await asyncio.wait_for(
            in_transaction(client, lambda s: next_sequence(db, "other", s)), timeout=30)
        await bump(db, session)
        return inner

    assert await in_transaction(client, outer) == 1


async def test_concurrent_moves_from_one_account_keep_its_summaries_equal_a_recount(
    client: Client, db: Database
) -> None:
    """Reservations from one big block of one account, many at once (each splits the
    block the previous one left and writes the account's summary): every one commits
    without a conflict and the summaries equal a recount."""
    store = UnitBlockStore(db.units)
    await store.ensure_indexes()
    holder = Holder("KZ", AccountType.PARTY_HOLDING, 1)
    aau = UnitAttributes("KZ", UnitType.AAU, 2, 2)
    await in_transaction(client, lambda s: store.insert(
        [UnitBlock(aau, SerialRange(1, 1_000))], holder, s))

    async def take(i: int, session: Session) -> None:
        block = UnitBlock(aau, SerialRange(10 * i + 1, 10 * i + 10))
        assert not await store.check_reservable([block], holder, f"T{i}", session)
        await store.reserve([block], f"T{i}", session)
        await store.delete_reserved(f"T{i}", session)

    before = counted()
    await asyncio.gather(*(in_transaction(client, functools.partial(take, i))
                           for i in range(20)))
    spent = grown(before)
    assert (spent["commit"], spent["abort"], spent["conflicts"]) == (20, 0, 0)
    assert await store.tally(HOLDINGS, ("KZ", int(AccountType.PARTY_HOLDING), 1,
                                        int(UnitType.AAU), 2, "KZ")) == 800
    recount = {d["_id"]: {k: d[k] for k in ("units", "blocks", "reserved") if d.get(k)}
               for d in (await store.recount()).documents()}
    assert await store.summary_counts() == {k: v for k, v in recount.items() if v}


async def test_urgent_transactions_go_before_the_others_waiting(
    client: Client, db: Database
) -> None:
    """While one transaction holds the turn, a request's transaction asks first and a
    message's (``urgent``) second: the message's runs first; the others in the order
    they asked."""
    release = asyncio.Event()
    order: list[str] = []

    async def holding(session: Session) -> None:
        await bump(db, session)
        await release.wait()

    def noted(name: str) -> Callable[[Session], Awaitable[None]]:
        async def work(session: Session) -> None:
            await bump(db, session)
            order.append(name)
        return work

    async def message() -> None:
        with urgent():
            await in_transaction(client, noted("message"))

    first = asyncio.create_task(in_transaction(client, holding))
    await asyncio.sleep(0.1)
    started = []
    for task in (in_transaction(client, noted("request 1")), message(),
                 in_transaction(client, noted("request 2"))):
        started.append(asyncio.ensure_future(task))
        await asyncio.sleep(0.05)
    release.set()
    await asyncio.gather(first, *started)
    assert order == ["message", "request 1", "request 2"]
