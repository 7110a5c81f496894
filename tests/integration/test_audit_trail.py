"""The audit trail on a real MongoDB-wire server (docs/adr/0019): records exist only with
the change they record, a message handled twice is recorded once, and every query
``GET /audit`` makes is answered from an index, as the store's planner shows."""

from __future__ import annotations

import asyncio
import contextvars
import functools
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from shared.audit import AuditQuery, acting, person
from shared.codes import ITL_CODE
from shared.contracts import Envelope
from shared.service import Runtime, ServiceSettings
from shared.store import Session, in_transaction
from shared.testing.messages import status_from_itl

pytestmark = pytest.mark.integration

START = datetime(2013, 3, 1, tzinfo=UTC)


@pytest.fixture
async def runtime(mongo_url: str) -> AsyncIterator[Runtime]:
    """A service KZ on a fresh database of the session's store (no broker: messages are
    handed to ``handle_once`` directly)."""
    settings = ServiceSettings(mongo_url=mongo_url, clock_start=START)
    name = f"audit_{uuid.uuid4().hex[:12]}"
    service = Runtime(settings, code="KZ", default_database=name, peer_codes=[ITL_CODE])
    await service.audit.ensure_indexes()
    try:
        yield service
    finally:
        await service.client.drop_database(name)
        await service.client.close()


def status(transaction_id: str) -> Envelope:
    return status_from_itl(transaction_id, sent_at=START)


async def all_records(runtime: Runtime) -> list[dict[str, Any]]:
    return await runtime.db.audit.find({}).sort("_id").to_list()


async def test_a_record_is_refused_outside_a_store_transaction(runtime: Runtime) -> None:
    async with runtime.client.start_session() as session:
        with pytest.raises(ValueError, match="outside a store transaction"):
            await runtime.audit.record(session, "account_opened")
    assert await all_records(runtime) == []


async def test_a_message_handled_twice_is_recorded_once_with_its_change(
    runtime: Runtime,
) -> None:
    message = status("KZ7")

    async def effect(session: Session) -> None:
        await runtime.db.effects.insert_one({"message_id": message.message_id},
                                            session=session)
        await runtime.audit.record(session, "transaction_status_changed",
                                   transaction_id="KZ7", accounts=["KZ:1001"])

    assert await runtime.handle_once(message, effect) is True
    assert await runtime.handle_once(message, effect) is False  # a redelivery
    rows = await all_records(runtime)
    assert [(r["action"], r["actor"]["kind"], r["actor"]["id"], r["transaction_id"])
            for r in rows] == [("transaction_status_changed", "message", "ITL", "KZ7"),
                               ("message_handled", "message", "ITL", "KZ7")]
    assert {r["actor"]["message_id"] for r in rows} == {message.message_id}
    assert rows[1]["details"]["message_type"] == "TransactionStatusNotified"
    assert await runtime.db.effects.count_documents({}) == 1


async def test_a_change_that_fails_leaves_no_record(runtime: Runtime) -> None:
    class Refused(Exception):
        pass

    async def work(session: Session) -> None:
        await runtime.audit.record(session, "account_opened", accounts=["KZ:1001"])
        raise Refused

    with acting(person("operator", "kz-operator-1")), pytest.raises(Refused):
        await runtime.commit(work)

    async def failing(session: Session) -> None:
        await runtime.audit.record(session, "transaction_status_changed")
        raise Refused

    with pytest.raises(Refused):
        await runtime.handle_once(status("KZ8"), failing)
    assert await all_records(runtime) == []
    assert await runtime.db.inbox.count_documents({}) == 0


async def test_the_actor_is_the_unit_of_works_or_the_service_itself(
    runtime: Runtime,
) -> None:
    async def work(session: Session) -> None:
        await runtime.audit.record(session, "account_opened")

    with acting(person("holder:1001", "kz-holder-1001")):
        await runtime.commit(work)
    # a task of its own, as a service's own work runs: no caller's actor around it
    await asyncio.create_task(runtime.commit(work), context=contextvars.Context())
    rows = await all_records(runtime)
    assert [r["actor"] for r in rows] == [
        {"kind": "person", "id": "kz-holder-1001", "role": "holder:1001",
         "name": "holder:1001 kz-holder-1001"},
        {"kind": "service", "id": "KZ", "name": "service KZ"}]


def _stages(plan: dict[str, Any]) -> list[tuple[str, str | None]]:
    found = [(plan.get("stage", ""), plan.get("indexName"))]
    for child in [plan.get("inputStage"), *plan.get("inputStages", [])]:
        if child:
            found += _stages(child)
    return found


async def test_every_query_of_the_trail_is_answered_from_an_index(runtime: Runtime) -> None:
    trail = runtime.audit
    base = START

    async def write(batch: int, session: Session) -> None:
        for i in range(batch * 100, batch * 100 + 100):
            runtime.clock.set(base + timedelta(minutes=i // 4))
            with acting(person("operator", f"kz-operator-{i % 5}")):
                await trail.record(session, "transaction_status_changed",
                                   accounts=[f"KZ:{1000 + i % 20}"],
                                   transaction_id=f"KZ{i // 3}")

    for batch in range(6):
        await in_transaction(runtime.client, functools.partial(write, batch))
    window = (base + timedelta(minutes=30), base + timedelta(minutes=60))
    queries = {
        "account": (AuditQuery(account="KZ:1007"), "accounts_1_at_1"),
        "holder's accounts": (AuditQuery(accounts_in=frozenset({"KZ:1007", "KZ:1008"})),
                              "accounts_1_at_1"),
        "transaction": (AuditQuery(transaction_id="KZ42"), "transaction_id_1_at_1"),
        "actor": (AuditQuery(actor="kz-operator-3"), "actor.id_1_at_1"),
        "window": (AuditQuery(since=window[0], until=window[1]), "at_1"),
        "account in a window": (AuditQuery(account="KZ:1007", since=window[0],
                                           until=window[1]), "accounts_1_at_1"),
        "actor from a moment": (AuditQuery(actor="kz-operator-3", since=window[0]),
                                "actor.id_1_at_1"),
    }
    for name, (query, index) in queries.items():
        explained = await runtime.db.audit.find(query.filter()).sort(
            [("at", 1), ("_id", 1)]).limit(query.limit).explain()
        stages = _stages(explained["queryPlanner"]["winningPlan"])
        assert ("IXSCAN", index) in stages, (name, stages)
        assert "COLLSCAN" not in {s for s, _ in stages}, (name, stages)
        matching = [r for r in await all_records(runtime) if _matches(r, query)]
        assert explained["executionStats"]["totalDocsExamined"] == len(matching), name

    # paging: the page after a record starts at its moment, never a range of _id
    every = await trail.find(AuditQuery(actor="kz-operator-3", limit=1000))
    pages: list[dict[str, Any]] = []
    after = None
    while True:
        page = await trail.find(AuditQuery(actor="kz-operator-3", limit=7, after=after))
        pages += page
        if len(page) < 7:
            break
        after = str(page[-1]["_id"])
    assert [r["_id"] for r in pages] == [r["_id"] for r in every]
    assert len(every) == 120


def _matches(record: dict[str, Any], query: AuditQuery) -> bool:
    at = record["at"]
    return ((query.account is None or query.account in record["accounts"])
            and (query.accounts_in is None or bool(query.accounts_in & set(record["accounts"])))
            and query.transaction_id in (None, record["transaction_id"])
            and query.actor in (None, record["actor"]["id"])
            and (query.since is None or at >= query.since)
            and (query.until is None or at < query.until))
