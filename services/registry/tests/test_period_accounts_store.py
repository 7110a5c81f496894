"""Accounts per commitment period in the registry's store: start-up makes what is missing,
once, also in a store made before the accounts were kept per period."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest

from services.registry.domain import Account, RegistryProfile, fixed_accounts
from services.registry.store import RegistryStore, account_to_doc
from shared.codes import AccountType
from shared.store import make_client

pytestmark = pytest.mark.integration

NOW = datetime(2013, 1, 15, tzinfo=UTC)
KZ = RegistryProfile("KZ")


@pytest.fixture
async def store(mongo_url: str) -> AsyncIterator[RegistryStore]:
    client = make_client(mongo_url)
    name = f"registry_periods_{uuid.uuid4().hex[:8]}"
    registry_store = RegistryStore(client[name], "KZ")
    await registry_store.ensure_indexes()
    try:
        yield registry_store
    finally:
        await client.drop_database(name)
        await client.close()


async def start_up(store: RegistryStore, period: int) -> None:
    for account in fixed_accounts(KZ, period):
        await store.ensure_account(account, NOW)


async def test_start_up_adds_the_first_periods_accounts_to_an_older_store_once(
    store: RegistryStore,
) -> None:
    # an older registry started with COMMITMENT_PERIOD=1: its fixed accounts (here the
    # first four) were all of period 1, and there were no 102-112
    for number, (account_type, name) in enumerate([
        (AccountType.PARTY_HOLDING, "Party holding account"),
        (AccountType.VOLUNTARY_CANCELLATION, "Voluntary cancellation account"),
        (AccountType.RETIREMENT, "Retirement account"),
        (AccountType.PREVIOUS_PERIOD_SURPLUS_RESERVE, "Previous period surplus reserve"),
    ], start=1):
        await store.db.accounts.insert_one(
            account_to_doc(Account("KZ", account_type, number, name, 1)))

    await start_up(store, 1)
    await start_up(store, 1)  # idempotent

    accounts = {a.account_id: a for a in await store.accounts()}
    assert sorted(accounts) == [1, 2, 3, 4, *range(5, 15), 102, 103, *range(105, 113)]
    assert await store.db.accounts.count_documents({}) == len(accounts)
    assert (accounts[1].commitment_period, accounts[4].commitment_period) == (1, 1)
    assert accounts[3].commitment_period == 2  # its number now stands for period 2
    assert accounts[103].commitment_period == 1
    for period, number in ((1, 103), (2, 3)):
        found = await store.account_of_type(AccountType.RETIREMENT, period)
        assert found is not None and found.account_id == number
    party = await store.account_of_type(AccountType.PARTY_HOLDING)
    assert party is not None and party.account_id == 1
    art_37ter = await store.account_of_type(AccountType.ARTICLE_37TER_CANCELLATION, 2)
    assert art_37ter is not None and art_37ter.account_id == 13  # period 2 only
    assert await store.account_of_type(AccountType.ARTICLE_37TER_CANCELLATION, 1) is None
