"""A registry service on its own database of the session's store, for tests that need
the registry's handlers and store without a broker."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from services.registry.approvals import ApprovalDesk
from services.registry.config import RegistrySettings
from services.registry.domain import RegistryProfile, fixed_accounts
from services.registry.handlers import DecisionDesk, Operations, RegistryService
from services.registry.permissions import Operation
from services.registry.proceeds import ShareOfProceeds
from services.registry.store import RegistryStore
from shared.blocks import SerialRange, UnitAttributes, UnitBlock
from shared.codes import ITL_CODE, AccountType, UnitType
from shared.service import Runtime
from shared.store import Session
from shared.store.unit_blocks import Holder

#: Simulated time the store tests' registries start at (second commitment period).
START = datetime(2013, 3, 1, tzinfo=UTC)
#: KZ's Party holding account.
PARTY = 1
#: KZ's AAUs of the second commitment period.
AAU = UnitAttributes("KZ", UnitType.AAU, 2, 2)


@asynccontextmanager
async def registry_on_its_own_database(
    mongo_url: str, prefix: str, start: datetime,
    holdings: Sequence[tuple[UnitBlock, Holder]] = (),
) -> AsyncIterator[RegistryService]:
    """Registry KZ on a fresh database named ``<prefix>_<random>``, its fixed accounts
    made at ``start`` (simulation clock), holding ``holdings``; dropped afterwards."""
    settings = RegistrySettings(mongo_url=mongo_url, registry_code="KZ",
                                database=f"{prefix}_{uuid.uuid4().hex[:8]}",
                                clock_start=start)
    runtime = Runtime(settings, code="KZ", default_database=settings.database_name(),
                      peer_codes=[ITL_CODE])
    profile = RegistryProfile("KZ")
    store = RegistryStore(runtime.db, "KZ")
    await store.ensure_indexes()
    for account in fixed_accounts(profile, 2):
        await store.ensure_account(account, start)

    async def held(session: Session) -> None:
        for block, holder in holdings:
            await store.units.insert([block], holder, session)

    await runtime.commit(held)
    try:
        yield RegistryService(runtime, store, profile)
    finally:
        await runtime.client.drop_database(settings.database_name())
        await runtime.client.close()


@dataclass
class Registry:
    """A registry service with the parts its operators use."""

    service: RegistryService
    operations: Operations
    proceeds: ShareOfProceeds
    approvals: ApprovalDesk


@asynccontextmanager
async def kz_with_aaus(mongo_url: str, name: str) -> AsyncIterator[Registry]:
    """Registry KZ on its own database ``name``: 1 000 AAUs of period 2 in its Party
    holding account, the share of proceeds levied, external transfers needing a second
    person's approval (72 simulated hours to give it)."""
    party = Holder("KZ", AccountType.PARTY_HOLDING, PARTY)
    async with registry_on_its_own_database(mongo_url, name, START, [
        (UnitBlock(AAU, SerialRange(1, 1_000)), party),
    ]) as service:
        yield Registry(service, Operations(service, DecisionDesk(service)),
                       ShareOfProceeds(service),
                       ApprovalDesk(service, [Operation.EXTERNAL_TRANSFER],
                                    timedelta(hours=72)))
