"""The ITL's search for tCERs and lCERs owing a notice of impending expiry runs every tick
(due work): every query it sends is planned as an index scan, so its cost follows the
tCER/lCER blocks, not the size of the register (docs/adr/0025)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import date
from typing import Any

import pytest
from pymongo import AsyncMongoClient, monitoring

from services.itl.store import ItlStore
from shared.blocks import SerialRange, UnitAttributes, UnitBlock
from shared.codes import AccountType, UnitType
from shared.store import Client, Session, in_transaction
from shared.store.unit_blocks import Holder

pytestmark = pytest.mark.integration


class Finds(monitoring.CommandListener):
    """The ``find`` commands sent, as sent."""

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if event.command_name == "find":
            self.sent.append(dict(event.command))

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


@pytest.fixture
async def recorded(mongo_url: str) -> AsyncIterator[tuple[Client, Finds]]:
    finds = Finds()
    client: Client = AsyncMongoClient(mongo_url, tz_aware=True, event_listeners=[finds])
    yield client, finds
    await client.close()


TCER = UnitAttributes("CDM", UnitType.TCER, 1, 2, project_id="CDM-1",
                      expiry_date=date(2021, 1, 1))
AAU = UnitAttributes("KZ", UnitType.AAU, 2, 2)
RETIREMENT = Holder("KZ", AccountType.RETIREMENT, 3)
PARTY = Holder("KZ", AccountType.PARTY_HOLDING, 1)


async def test_the_expiry_search_reads_only_through_an_index(
        recorded: tuple[Client, Finds]) -> None:
    client, finds = recorded
    name = f"due_work_{uuid.uuid4().hex[:8]}"
    store = ItlStore(client[name])
    await store.ensure_indexes()

    async def lay(session: Session) -> None:
        for i in range(40):  # AAU blocks, alternately held so they stay apart
            await store.units.insert([UnitBlock(AAU, SerialRange(10 * i + 1, 10 * i + 10))],
                                     PARTY if i % 2 else RETIREMENT, session)
        await store.units.insert([UnitBlock(TCER, SerialRange(1, 5))], RETIREMENT, session)
        await store.units.insert([UnitBlock(TCER, SerialRange(6, 9))], PARTY, session)

    await in_transaction(client, lay)
    finds.sent.clear()
    due = await store.expiring_unnoticed(date(2021, 6, 1))
    assert [(d["serial_start"], d["account_id"]) for d in due] == [(1, 3)]
    assert await store.expiring_unnoticed(date(2020, 6, 1)) == []
    assert finds.sent
    for command in finds.sent:
        plan = await client[name].command(
            "explain", {"find": command["find"], "filter": command["filter"]})
        assert "COLLSCAN" not in repr(plan["queryPlanner"]), command["filter"]
    await client.drop_database(name)
