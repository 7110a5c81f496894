"""What a registry spends in store commands on an external transfer, and that the reads
it no longer makes change no answer (issue 10, item 2; docs/adr/0024), over a real
MongoDB-wire store (no broker: outgoing messages stay in the outbox, the ITL's messages
are handed in directly):

- an account is read once per store transaction until the transaction writes one;
- the rehearsal of a request awaiting approval refuses what the proposal refuses, with
  the same code, takes no transaction id, reads no account the request has read, and
  runs in the store transaction that stores the approval, its writes dropped unsent
  (unless it had to send them: then in a transaction of its own, abandoned);
- an approval reads the approval and the account once, in its store transaction;
- a transfer that set no share of proceeds aside completes without looking one up;
- a forwarded transfer is not looked up before it is stored: a transaction id known here
  is found by the insert's duplicate key, and nothing more is answered.

Command counts are read from the process's own counter (``store_commands_total``,
``shared.metrics``), which counts every command a service's client starts.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from services.registry.approvals import ApprovalStatus, Plan
from services.registry.handlers import (
    RESERVED_IDS_FIELD,
    TransferUnits,
)
from services.registry.permissions import Actor, Operation, Role
from services.registry.proceeds import SET_ASIDE_FIELD, set_aside
from services.registry.tests.support import AAU, PARTY, START, Registry, kz_with_aaus
from shared.auth import Forbidden
from shared.blocks import SerialRange, UnitAttributes, UnitBlock
from shared.codes import (
    ITL_CODE,
    AccountType,
    MessageType,
    ResponseCode,
    TransactionStatus,
    TransactionType,
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
from shared.metrics import STORE_COMMANDS, STORE_TRANSACTIONS
from shared.store import Document, Session
from shared.store.batching import request_scope

pytestmark = pytest.mark.integration

S = TransactionStatus
A = AccountType
OPERATOR_1 = Actor.of(Role.OPERATOR, subject="kz-operator-1")
OPERATOR_2 = Actor.of(Role.OPERATOR, subject="kz-operator-2")


@pytest.fixture
async def kz(mongo_url: str) -> AsyncIterator[Registry]:
    """KZ with 1 000 period-2 AAUs (``support.kz_with_aaus``)."""
    async with kz_with_aaus(mongo_url, "commands") as registry:
        yield registry


def commands() -> int:
    """Store commands this process has started so far (every service client counts)."""
    return int(sum(sample.value for metric in STORE_COMMANDS.collect()
                   for sample in metric.samples if sample.name.endswith("_total")))


def transactions(outcome: str) -> int:
    """Store transactions this process has ended with ``outcome`` so far."""
    return int(sum(sample.value for metric in STORE_TRANSACTIONS.collect()
                   for sample in metric.samples
                   if sample.name.endswith("_total") and sample.labels["outcome"] == outcome))


async def counted(run: Callable[[], Awaitable[Any]]) -> tuple[Any, int]:
    """What ``run`` returns and the store commands it started."""
    before = commands()
    result = await run()
    return result, commands() - before


def external(quantity: int, account_id: int = 1001) -> TransferUnits:
    return TransferUnits(transferring_account_id=PARTY, acquiring_registry="CH",
                         acquiring_account_type=A.PERSON_HOLDING,
                         acquiring_account_id=account_id, unit_type=UnitType.AAU,
                         quantity=quantity, commitment_period=2)


def plan(kz: Registry, quantity: int, actor: Actor = OPERATOR_1) -> Plan:
    """The plan of an external transfer of ``quantity`` AAUs from the Party holding
    account, started by ``actor``."""
    return Plan(Operation.EXTERNAL_TRANSFER, f"operator {actor.subject}", actor.subject,
                (PARTY,), kz.operations.move_work(external(quantity)), account_id=PARTY,
                unit_type=UnitType.AAU)


def envelope(message_type: MessageType, correlation_id: str, payload: Any,
             sender: str = ITL_CODE, recipient: str = "KZ") -> Any:
    return make_envelope(message_type=message_type, sender=sender, recipient=recipient,
                         correlation_id=correlation_id, payload=payload, sent_at=START)


async def itl_says(kz: Registry, transaction_id: str, status: TransactionStatus) -> None:
    payload = TransactionStatusNotified(transaction_id=transaction_id, status=status)
    await kz.service.on_status_notified(
        envelope(MessageType.TRANSACTION_STATUS_NOTIFIED, transaction_id, payload), payload)


async def test_an_account_is_read_once_per_store_transaction_until_one_is_written(
    kz: Registry,
) -> None:
    store = kz.service.store
    reads: list[int] = []

    async def work(session: Session) -> None:
        for _ in range(2):
            _, spent = await counted(lambda: store.account(PARTY, session))
            reads.append(spent)
        await store.hold_account(PARTY, session)  # a write of the accounts: read again
        account, spent = await counted(lambda: store.account(PARTY, session))
        reads.append(spent)
        assert account is not None and account.account_id == PARTY
        _, spent = await counted(lambda: store.account(999_999, session))  # none: kept too
        again, spent_again = await counted(lambda: store.account(999_999, session))
        reads.extend([spent, spent_again])
        assert again is None

    await kz.service.runtime.commit(work)
    # the write is queued and sent before the read of its collection (docs/adr/0024)
    assert reads == [1, 0, 2, 1, 0]


async def test_a_rehearsal_refuses_what_the_proposal_refuses_and_takes_no_transaction_id(
    kz: Registry,
) -> None:
    with request_scope():  # the request reads the account for its permission checks
        await kz.service.require_account(PARTY)
        with pytest.raises(RuleViolation) as refused:
            await kz.approvals.request("external-transfer", {}, plan(kz, 1_001))
    assert refused.value.code == ResponseCode.BLOCK_NOT_HELD_BY_TRANSFERRING_ACCOUNT
    with pytest.raises(RuleViolation) as proposed:
        await kz.service.runtime.commit(kz.operations.move_work(external(1_001)))
    assert (proposed.value.code, proposed.value.reason) == (refused.value.code,
                                                            refused.value.reason)
    assert await kz.approvals.list(None, None, None, 10) == []

    # 980 fit, their 2 % share (19) too; 990 fit, their share (19) does not
    with request_scope():
        await kz.service.require_account(PARTY)
        with pytest.raises(RuleViolation) as no_share:
            await kz.approvals.request("external-transfer", {}, plan(kz, 990))
    with request_scope():
        await kz.service.require_account(PARTY)
        asked, spent = await counted(lambda: kz.approvals.request(
            "external-transfer", {}, plan(kz, 980)))
    assert no_share.value.code == ResponseCode.BLOCK_NOT_HELD_BY_TRANSFERRING_ACCOUNT
    assert "share of proceeds" in no_share.value.reason
    assert asked["status"] == ApprovalStatus.PENDING
    # rehearsal: holdings span, blocks, ledger, blocks of the share (after sending the
    # reservation's writes: 2), abort; then the approval: counter, bulkWrite, commit
    assert spent == 10
    # a request owing no share: checked in the store transaction that stores it, its
    # writes dropped unsent: holdings span, blocks, ledger, counter, bulkWrite, commit
    with request_scope():
        await kz.service.require_account(PARTY)
        abandoned = transactions("abandon")
        small, spent = await counted(lambda: kz.approvals.request(
            "external-transfer", {}, plan(kz, 10)))
    assert spent == 6
    assert transactions("abandon") == abandoned
    assert small["status"] == ApprovalStatus.PENDING
    # nothing remains of the rehearsals: no transaction id taken, nothing reserved
    tx = await kz.service.transfer(external(10))
    assert tx["_id"] == "KZ1"
    assert await kz.service.store.units.held({"reserved_by": {"$nin": [None, "KZ1"]}}) == []


async def test_an_approval_reads_the_approval_and_the_account_once(kz: Registry) -> None:
    def plan_for(actor: Actor) -> Callable[[Document, Session], Awaitable[Plan]]:
        async def build(approval: Document, session: Session) -> Plan:
            await kz.approvals.authorise(approval, actor, session)
            # the plan reads the account outside the store transaction: answered by the
            # read just made in it
            await kz.service.require_account(PARTY)
            return plan(kz, 10, actor)
        return build

    with request_scope():
        await kz.service.require_account(PARTY)
        asked = await kz.approvals.request("external-transfer", {}, plan(kz, 10))
    with request_scope(), pytest.raises(Forbidden):
        await kz.approvals.approve(asked["_id"], plan_for(OPERATOR_1))
    with request_scope():
        tx, spent = await counted(lambda: kz.approvals.approve(asked["_id"],
                                                               plan_for(OPERATOR_2)))
    assert (tx["initiated_by"], tx["approved_by"], tx["approval_id"]) == (
        "operator kz-operator-1", "operator kz-operator-2", asked["_id"])
    # account, holdings span, blocks, transaction counter, ledger, bulkWrite, commit:
    # the approval is known since this process stored it (docs/adr/0046), the overlap of
    # the chosen block is the block the walk read
    assert spent == 7
    assert (await kz.approvals.require(asked["_id"]))["status"] == ApprovalStatus.APPROVED
    assert await kz.service.store.units.held({"reserved_by": tx["_id"]}) != []


async def test_a_transfer_that_set_no_share_aside_completes_without_looking_one_up(
    kz: Registry,
) -> None:
    owing_none = await kz.service.transfer(external(10))   # 2 % of 10: none in whole units
    owing = await kz.service.transfer(external(600))        # 2 % of 610: 12
    assert (owing_none[SET_ASIDE_FIELD], owing[SET_ASIDE_FIELD]) == (0, 12)
    stored = await kz.service.store.transaction(owing["_id"])
    assert stored is not None and stored[SET_ASIDE_FIELD] == 12
    assert len(await kz.service.store.units.held({"reserved_by": set_aside(owing["_id"])})) == 1

    _, spent = await counted(lambda: itl_says(kz, owing_none["_id"], S.ACCEPTED))
    assert spent == 2  # bulkWrite, commit: the transaction is known (docs/adr/0046)
    done = await kz.service.store.transaction(owing_none["_id"])
    assert done is not None and done["status"] == S.COMPLETED
    # its block was removed by the id its proposal recorded, the summaries by its
    # document: they equal a recount of the blocks
    assert await kz.service.store.units.held({"reserved_by": owing_none["_id"]}) == []
    units = kz.service.store.units
    assert await units.summary_counts() == await units.recount_counts()
    assert await units.sum_units({"account_id": PARTY}) == 1_000 - 10  # 612 reserved

    await itl_says(kz, owing["_id"], S.ACCEPTED)  # its share is proposed from the set-aside
    share = await kz.service.store.transaction(f"KZ{int(owing['_id'][2:]) + 1}")
    assert share is not None and share["quantity"] == 12
    assert share["transaction_type"] == TransactionType.EXTERNAL_TRANSFER
    assert await kz.service.store.units.held({"reserved_by": set_aside(owing["_id"])}) == []
    await itl_says(kz, share["_id"], S.ACCEPTED)
    assert await units.held({"reserved_by": {"$ne": None}}) == []
    assert await units.summary_counts() == await units.recount_counts()
    assert await units.sum_units({"account_id": PARTY}) == 1_000 - 10 - 600 - 12


async def test_a_transfer_whose_blocks_span_several_documents_is_debited_as_before(
    kz: Registry,
) -> None:
    """Blocks that span several block documents (here two adjacent blocks that do not
    merge: one is marked as replacing nothing more, ``replaced_by``) record no
    ``reserved_ids``: the debit reads them by their reservation, as before."""
    units = kz.service.store.units
    await kz.service.runtime.commit(lambda session: units.reserve(
        [UnitBlock(AAU, SerialRange(901, 1_000))], "marked", session))
    await kz.service.runtime.commit(lambda session: units.mark_replaced(
        "marked", "KZ99", session))
    block = UnitBlock(AAU, SerialRange(891, 910))  # across both
    tx = await kz.service.runtime.commit(
        lambda session: kz.service.propose_transfer(external(20), session, [block]))
    reserved = await units.held({"reserved_by": tx["_id"]})
    assert len(reserved) == 2 and RESERVED_IDS_FIELD not in tx
    await itl_says(kz, tx["_id"], S.ACCEPTED)
    assert await units.held({"reserved_by": tx["_id"]}) == []
    assert await units.summary_counts() == await units.recount_counts()


async def test_a_transaction_stored_without_the_field_still_releases_its_share(
    kz: Registry,
) -> None:
    """A first transfer proposed before ``share_set_aside`` was kept: its set-aside is
    looked up as before."""
    owing = await kz.service.transfer(external(600))
    await kz.service.store.db.transactions.update_one({"_id": owing["_id"]},
                                                      {"$unset": {SET_ASIDE_FIELD: ""}})
    await itl_says(kz, owing["_id"], S.REJECTED)
    await itl_says(kz, owing["_id"], S.TERMINATED)
    assert await kz.service.store.units.held({"reserved_by": {"$ne": None}}) == []


async def test_a_forwarded_transfer_known_here_is_answered_once(kz: Registry) -> None:
    """CH's side of an external transfer, played by KZ: the first forward is accepted in
    3 commands (account, bulkWrite, commit); another forward of the same transaction id
    under another message id changes and answers nothing, and is recorded; the same
    message again has no effect."""
    alice = (await kz.service.create_account(A.PERSON_HOLDING, "Alice", 2)).account_id
    payload = ProposalForwarded(
        transaction_id="CH17", transaction_type=TransactionType.EXTERNAL_TRANSFER,
        transferring=AccountRef(registry="CH", account_type=A.PARTY_HOLDING, account_id=1),
        acquiring=AccountRef(registry="KZ", account_type=A.PERSON_HOLDING,
                             account_id=alice),
        blocks=[block_to_wire(UnitBlock(UnitAttributes("CH", UnitType.AAU, 2, 2),
                                        SerialRange(1, 10)))])
    first = envelope(MessageType.PROPOSAL_FORWARDED, "CH17", payload)
    _, spent = await counted(lambda: kz.service.on_proposal_forwarded(first, payload))
    assert spent == 3
    stored = await kz.service.store.transaction("CH17")
    assert stored is not None and stored["status"] == S.ACCEPTED

    async def answers() -> list[Document]:
        return await kz.service.store.db.outbox.find({"correlation_id": "CH17"}).to_list()

    assert [a["envelope"]["payload"]["status"] for a in await answers()] == [S.ACCEPTED]
    again = envelope(MessageType.PROPOSAL_FORWARDED, "CH17", payload)
    assert again.message_id != first.message_id
    await kz.service.on_proposal_forwarded(again, payload)
    await kz.service.on_proposal_forwarded(first, payload)
    assert await kz.service.store.transaction("CH17") == stored
    assert len(await answers()) == 1
    handled = await kz.service.store.db.inbox.find({"correlation_id": "CH17"}).to_list()
    assert sorted(h["_id"] for h in handled) == sorted([first.message_id, again.message_id])


async def test_credited_units_merge_with_both_neighbours_found_in_one_look_up(
    kz: Registry,
) -> None:
    """The acquiring registry's completion (KZ plays CH's part): units credited between
    two blocks the account already holds merge with both, found with one indexed look-up
    (``_Writer.neighbours``): the neighbours, bulkWrite, commit (the transaction is known
    since this process stored it on its forward, docs/adr/0046)."""
    alice = (await kz.service.create_account(A.PERSON_HOLDING, "Alice", 2)).account_id
    units = kz.service.store.units

    async def credit(transaction_id: str, serials: SerialRange) -> int:
        payload = ProposalForwarded(
            transaction_id=transaction_id, transaction_type=TransactionType.EXTERNAL_TRANSFER,
            transferring=AccountRef(registry="CH", account_type=A.PARTY_HOLDING,
                                    account_id=1),
            acquiring=AccountRef(registry="KZ", account_type=A.PERSON_HOLDING,
                                 account_id=alice),
            blocks=[block_to_wire(UnitBlock(UnitAttributes("CH", UnitType.AAU, 2, 2),
                                            serials))])
        await kz.service.on_proposal_forwarded(
            envelope(MessageType.PROPOSAL_FORWARDED, transaction_id, payload), payload)
        _, spent = await counted(lambda: itl_says(kz, transaction_id, S.COMPLETED))
        return spent

    assert await credit("CH1", SerialRange(1, 10)) == 3        # serial 1: none before it
    assert await credit("CH2", SerialRange(21, 30)) == 3       # none adjacent
    assert await credit("CH3", SerialRange(11, 20)) == 3       # both: merged into one
    held = await units.held({"account_id": alice})
    assert [(d["serial_start"], d["serial_end"]) for d in held] == [(1, 30)]
    assert await units.summary_counts() == await units.recount_counts()
    assert await credit("CH4", SerialRange(31, 31)) == 3       # one serial, merged
    assert [(d["serial_start"], d["serial_end"])
            for d in await units.held({"account_id": alice})] == [(1, 31)]
