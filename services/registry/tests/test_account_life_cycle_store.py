"""The account life cycle in the registry's handlers over a real MongoDB-wire store (no
broker: outgoing messages stay in the outbox, the ITL's answers are handed in directly).

Races between a status change and a proposal are forced by pausing one store transaction
after it has read and letting the other commit meanwhile."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from typing import Any

import pytest

from services.registry.domain import AccountAction, AccountStatus
from services.registry.handlers import RegistryService, TransferUnits
from services.registry.tests.support import AAU, PARTY, START, registry_on_its_own_database
from shared.blocks import SerialRange, UnitAttributes, UnitBlock
from shared.codes import (
    ITL_CODE,
    AccountType,
    MessageType,
    ResponseCode,
    TransactionStatus,
    UnitType,
)
from shared.contracts import (
    AccountRef,
    ProposalForwarded,
    TransactionStatusNotified,
    block_to_wire,
    make_envelope,
)
from shared.errors import RuleViolation
from shared.store.unit_blocks import Holder

pytestmark = pytest.mark.integration

S = TransactionStatus


@pytest.fixture
async def kz(mongo_url: str) -> AsyncIterator[RegistryService]:
    """Registry KZ on its own database, with 1000 AAUs in its Party holding account."""
    party = Holder("KZ", AccountType.PARTY_HOLDING, PARTY)
    async with registry_on_its_own_database(
            mongo_url, "lifecycle", START, [(UnitBlock(AAU, SerialRange(1, 1000)), party)]
    ) as service:
        yield service


async def person(kz: RegistryService, name: str = "Alice Energy LLP") -> int:
    account = await kz.create_account(AccountType.PERSON_HOLDING, name, 2)
    return account.account_id


def internal(source: int, target: int, quantity: int,
             target_type: AccountType = AccountType.PERSON_HOLDING) -> TransferUnits:
    return TransferUnits(transferring_account_id=source, acquiring_registry="KZ",
                         acquiring_account_type=target_type, acquiring_account_id=target,
                         unit_type=UnitType.AAU, quantity=quantity, commitment_period=2)


async def itl_says(kz: RegistryService, transaction_id: str, status: TransactionStatus
                   ) -> None:
    envelope = make_envelope(
        message_type=MessageType.TRANSACTION_STATUS_NOTIFIED, sender=ITL_CODE,
        recipient="KZ", correlation_id=transaction_id,
        payload=TransactionStatusNotified(transaction_id=transaction_id, status=status),
        sent_at=START)
    await kz.on_status_notified(envelope, TransactionStatusNotified(
        transaction_id=transaction_id, status=status))


async def units_of(kz: RegistryService, account_id: int) -> int:
    return await kz.store.units.sum_units({"registry": "KZ", "account_id": account_id})


def pause_once(target: Any, name: str, meanwhile: Callable[[], Awaitable[Any]]) -> list[int]:
    """Make ``target.name`` run ``meanwhile`` to its end before its first call; returns a
    list counting the calls (a second call means the store transaction was retried)."""
    original = getattr(target, name)
    calls: list[int] = []

    async def paused(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        if len(calls) == 1:
            await meanwhile()
        return await original(*args, **kwargs)

    setattr(target, name, paused)
    return calls


async def test_a_proposal_into_an_account_being_closed_makes_the_closure_retry_and_refuse(
    kz: RegistryService
) -> None:
    """The closure has read the account when a transfer into it commits; writing the
    account's status then conflicts, and the retried closure sees the open transaction."""
    alice = await person(kz)
    proposed: list[dict[str, Any]] = []

    async def transfer_in() -> None:
        proposed.append(await kz.transfer(internal(PARTY, alice, 100)))

    calls = pause_once(kz.store, "account_holdings", transfer_in)
    with pytest.raises(RuleViolation) as exc:
        await kz.change_account_status(alice, AccountAction.CLOSE, "operator", "holder left")
    assert exc.value.code == ResponseCode.ACCOUNT_NOT_EMPTY
    assert exc.value.reason == f"transaction {proposed[0]['_id']} is open"
    assert len(calls) == 2  # the first attempt met the write conflict
    assert (await kz.require_account(alice)).status == AccountStatus.OPEN


async def test_a_closure_committed_while_a_transfer_into_it_is_proposed_refuses_it_5906(
    kz: RegistryService
) -> None:
    """The proposal has read the transferring account (its snapshot is taken) when the
    closure of the acquiring account commits: holding the acquiring account conflicts,
    and the retried proposal finds it closed."""
    alice = await person(kz)

    async def close() -> None:
        await kz.change_account_status(alice, AccountAction.CLOSE, "operator", "holder left")

    calls = pause_once(kz, "_check_internal_target", close)
    with pytest.raises(RuleViolation) as exc:
        await kz.transfer(internal(PARTY, alice, 100))
    assert exc.value.code == ResponseCode.ACQUIRING_ACCOUNT_CLOSED
    assert len(calls) == 2
    assert await units_of(kz, PARTY) == 1000
    assert await kz.store.transactions(None, 10) == []


async def test_a_transfer_proposed_before_its_account_was_blocked_still_completes(
    kz: RegistryService
) -> None:
    alice, bob = await person(kz), await person(kz, "Bob Cement JSC")
    first = await kz.transfer(internal(PARTY, alice, 300))
    await itl_says(kz, first["_id"], S.CHECKED_NO_DISCREPANCY)
    out = await kz.transfer(internal(alice, bob, 100))
    into = await kz.transfer(internal(PARTY, alice, 50))
    await kz.change_account_status(alice, AccountAction.BLOCK, "operator", "inquiry")

    with pytest.raises(RuleViolation) as exc:
        await kz.transfer(internal(alice, bob, 1))
    assert exc.value.code == ResponseCode.TRANSFERRING_ACCOUNT_BLOCKED
    for tx in (out, into):
        await itl_says(kz, tx["_id"], S.CHECKED_NO_DISCREPANCY)
        assert (await kz.store.transaction(tx["_id"]) or {})["status"] == S.COMPLETED
    assert await units_of(kz, alice) == 300 - 100 + 50
    assert await units_of(kz, bob) == 100
    assert (await kz.require_account(alice)).status == AccountStatus.BLOCKED


async def test_an_inbound_transfer_accepted_before_the_block_is_credited(
    kz: RegistryService
) -> None:
    alice = await person(kz)
    proposal = ProposalForwarded(
        transaction_id="JP7", transaction_type=3,
        transferring=AccountRef(registry="JP", account_type=AccountType.PERSON_HOLDING,
                                account_id=1001),
        acquiring=AccountRef(registry="KZ", account_type=AccountType.PERSON_HOLDING,
                             account_id=alice),
        blocks=[block_to_wire(UnitBlock(UnitAttributes("JP", UnitType.AAU, 2, 2),
                                        SerialRange(1, 40)))])
    forwarded = make_envelope(message_type=MessageType.PROPOSAL_FORWARDED, sender=ITL_CODE,
                              recipient="KZ", correlation_id="JP7", payload=proposal,
                              sent_at=START)
    await kz.on_proposal_forwarded(forwarded, proposal)
    assert (await kz.store.transaction("JP7") or {})["status"] == S.ACCEPTED
    await kz.change_account_status(alice, AccountAction.BLOCK, "operator", "inquiry")
    with pytest.raises(RuleViolation) as exc:
        await kz.change_account_status(alice, AccountAction.CLOSE, "operator", "gone")
    assert exc.value.reason == "transaction JP7 is open"

    await itl_says(kz, "JP7", S.COMPLETED)
    assert await units_of(kz, alice) == 40
    again = proposal.model_copy(update={"transaction_id": "JP8"})
    await kz.on_proposal_forwarded(
        forwarded.model_copy(update={"message_id": "m-JP8", "correlation_id": "JP8"}), again)
    refused = await kz.store.transaction("JP8") or {}
    assert refused["status"] == S.TERMINATED
    assert [r["response_code"] for r in refused["evaluation_results"]] == [5903]
    assert await units_of(kz, alice) == 40


async def test_status_changes_are_stored_with_who_when_and_why(kz: RegistryService) -> None:
    alice = await person(kz)
    await kz.change_account_status(alice, AccountAction.BLOCK, "operator", "inquiry 12")
    await kz.change_account_status(alice, AccountAction.UNBLOCK, "operator", None)
    await kz.change_account_status(alice, AccountAction.CLOSE, "operator", "holder left")
    account = await kz.require_account(alice)
    assert account.status == AccountStatus.CLOSED
    assert [(c.status, c.by, c.reason) for c in account.history] == [
        (AccountStatus.BLOCKED, "operator", "inquiry 12"),
        (AccountStatus.OPEN, "operator", None),
        (AccountStatus.CLOSED, "operator", "holder left"),
    ]
    # the simulation clock, which started at START and runs on
    times = [c.at for c in account.history]
    assert START <= times[0] <= times[1] <= times[2] < START + timedelta(minutes=1)
    assert (await kz.require_account(PARTY)).fixed
    assert not account.fixed
