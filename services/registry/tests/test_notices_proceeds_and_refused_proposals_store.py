"""The registry's handlers over a real MongoDB-wire store (no broker: outgoing messages
stay in the outbox, the ITL's messages are handed in directly):

- a transaction that fulfils a notice listing unit blocks takes its units among them,
  however it is proposed (operator endpoint, decision carried out), or is refused with
  4013 before anything is proposed;
- every share-of-proceeds transfer is counted as contributed once, however it is
  proposed, and given back when it fails;
- a proposal the ITL refuses as a message (``MessageAck``) is terminated once, its
  reservations released, its hooks run.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest

from services.registry.decisions import Decision, DecisionKind, DecisionState, WithdrawalGround
from services.registry.handlers import DecisionDesk, RegistryService, TransferUnits
from services.registry.proceeds import FIRST, ShareOfProceeds, set_aside
from services.registry.store import RegistryStore
from services.registry.tests.support import AAU, PARTY, START, registry_on_its_own_database
from shared.blocks import SerialRange, UnitAttributes, UnitBlock
from shared.codes import (
    ITL_CODE,
    AccountType,
    MessageType,
    NoticeStatus,
    NoticeType,
    ResponseCode,
    SupplementaryType,
    TransactionStatus,
    TransactionType,
    UnitType,
)
from shared.contracts import (
    EvaluationResult,
    MessageAck,
    NoticeIssued,
    TransactionStatusNotified,
    block_to_wire,
    make_envelope,
    replaced_reservation,
)
from shared.errors import RuleViolation
from shared.store import Document, Session
from shared.store.unit_blocks import Holder

pytestmark = pytest.mark.integration

S = TransactionStatus
A = AccountType
NET_SOURCE, RETIREMENT_CP1, TCER_REPLACEMENT_CP1 = 5, 103, 109
AAU_CP1 = UnitAttributes("KZ", UnitType.AAU, 1, 1)
TCER = UnitAttributes("CDM", UnitType.TCER, 1, 1, project_id="CDM-AR-1")
ISSUED = SerialRange(1, 2_000_000)


@dataclass
class Registry:
    service: RegistryService
    desk: DecisionDesk
    proceeds: ShareOfProceeds

    @property
    def store(self) -> RegistryStore:
        return self.service.store


@pytest.fixture
async def kz(mongo_url: str) -> AsyncIterator[Registry]:
    """Registry KZ on its own database: 2 000 000 AAUs of period 2 and 1 000 of period 1
    in its Party holding account, and 500 period-1 tCERs in its period-1 retirement
    account."""
    party = Holder("KZ", A.PARTY_HOLDING, PARTY)
    async with registry_on_its_own_database(mongo_url, "notices", START, [
        (UnitBlock(AAU, ISSUED), party),
        (UnitBlock(AAU_CP1, SerialRange(3_000_001, 3_001_000)), party),
        (UnitBlock(TCER, SerialRange(1, 500)), Holder("KZ", A.RETIREMENT, RETIREMENT_CP1)),
    ]) as service:
        yield Registry(service, DecisionDesk(service), ShareOfProceeds(service))


def envelope(message_type: MessageType, correlation_id: str, payload: Any) -> Any:
    return make_envelope(message_type=message_type, sender=ITL_CODE, recipient="KZ",
                         correlation_id=correlation_id, payload=payload, sent_at=START)


async def notice(kz: Registry, notice_id: int, notice_type: NoticeType,
                 blocks: list[UnitBlock], target: int, **fields: Any) -> None:
    payload = NoticeIssued(notice_id=notice_id, notice_type=notice_type,
                           status=NoticeStatus.OPEN, target_value=target,
                           blocks=[block_to_wire(b) for b in blocks], **fields)
    await kz.desk.on_notice(envelope(MessageType.NOTICE_ISSUED, f"N{notice_id}", payload),
                            payload)


async def itl_says(kz: Registry, transaction_id: str, status: TransactionStatus,
                   codes: tuple[ResponseCode, ...] = ()) -> None:
    payload = TransactionStatusNotified(
        transaction_id=transaction_id, status=status,
        evaluation_results=[EvaluationResult(response_code=c) for c in codes])
    await kz.service.on_status_notified(
        envelope(MessageType.TRANSACTION_STATUS_NOTIFIED, transaction_id, payload), payload)


async def refuse_as_message(kz: Registry, transaction_id: str, codes: list[ResponseCode],
                            reason: str) -> None:
    """The ITL's ``MessageAck(accepted=false)`` about the proposal's message."""
    sent = await kz.store.db.outbox.find_one({"correlation_id": transaction_id,
                                             "message_type": "ProposalSubmitted"})
    assert sent is not None
    payload = MessageAck(acked_message_id=sent["_id"], accepted=False, response_codes=codes,
                         reason=reason)
    await kz.service.on_message_ack(
        envelope(MessageType.MESSAGE_ACK, transaction_id, payload), payload)


def serials(tx: Document) -> list[tuple[int, int]]:
    return [(b["serial_start"], b["serial_end"]) for b in tx["blocks"]]


async def transaction(kz: Registry, transaction_id: str) -> Document:
    tx = await kz.store.transaction(transaction_id)
    assert tx is not None
    return tx


async def reserved(kz: Registry) -> dict[str, int]:
    docs = await kz.store.units.held({"reserved_by": {"$ne": None}})
    marks: dict[str, int] = {}
    for d in docs:
        marks[d["reserved_by"]] = marks.get(d["reserved_by"], 0) + d["serial_end"] \
            - d["serial_start"] + 1
    return marks


def cancellation(quantity: int, notice_id: int | None, account: int = PARTY) -> TransferUnits:
    return TransferUnits(
        transaction_type=TransactionType.CANCELLATION, transferring_account_id=account,
        acquiring_registry="KZ", acquiring_account_type=A.NET_SOURCE_CANCELLATION,
        acquiring_account_id=NET_SOURCE, unit_type=UnitType.AAU, quantity=quantity,
        commitment_period=2, notification_id=notice_id)


def external(quantity: int, registry: str = "CH", account_type: A = A.PERSON_HOLDING,
             account_id: int = 1001, source: int = PARTY) -> TransferUnits:
    return TransferUnits(transferring_account_id=source, acquiring_registry=registry,
                         acquiring_account_type=account_type, acquiring_account_id=account_id,
                         unit_type=UnitType.AAU, quantity=quantity, commitment_period=2)


async def ledger(kz: Registry) -> dict[str, int]:
    rows = {r["kind"]: r for r in await kz.proceeds.report()}
    row = rows.get(FIRST.value, {})
    return {k: row.get(k, 0) for k in ("transferred", "due", "contributed", "owed")}


# the units of a notice that lists blocks


async def test_a_cancellation_on_a_notice_takes_the_listed_block_not_the_lowest_serials(
    kz: Registry,
) -> None:
    await notice(kz, 10, NoticeType.NET_SOURCE_CANCELLATION,
                 [UnitBlock(AAU, SerialRange(1_000_000, 1_000_049))], 50,
                 unit_type=UnitType.AAU, commitment_period=2)
    tx = await kz.service.transfer(cancellation(50, 10))
    assert serials(tx) == [(1_000_000, 1_000_049)]
    assert tx["proposal"]["notification_id"] == 10
    without = await kz.service.transfer(cancellation(50, None))
    assert serials(without) == [(1, 50)]  # no notice: the lowest serials, as before


async def test_a_withdrawal_decision_on_a_notice_carries_out_the_listed_blocks(
    kz: Registry,
) -> None:
    listed = [UnitBlock(AAU, SerialRange(1_500_000, 1_500_019)),
              UnitBlock(AAU, SerialRange(1_200_000, 1_200_029))]
    await notice(kz, 11, NoticeType.NET_SOURCE_CANCELLATION, listed, 50)
    decision = await kz.desk.record(Decision(
        decision_id="", kind=DecisionKind.WITHDRAWAL, reference="MEP-W-1", decided_at=START,
        unit_type=UnitType.AAU, quantity=40, account_id=PARTY, commitment_period=2,
        ground=WithdrawalGround.CRITERIA_NOT_MET, notice_id=11))
    tx = await kz.desk.execute(decision["_id"])
    assert tx["acquiring"]["account_type"] == A.NET_SOURCE_CANCELLATION
    assert serials(tx) == [(1_200_000, 1_200_029), (1_500_000, 1_500_009)]


async def test_too_few_listed_units_are_refused_with_4013_and_nothing_is_proposed(
    kz: Registry,
) -> None:
    # 20 of the 50 listed units are reserved by another transaction meanwhile
    listed = UnitBlock(AAU, SerialRange(1_000_000, 1_000_049))
    await notice(kz, 12, NoticeType.NET_SOURCE_CANCELLATION, [listed], 50)

    async def reserve_part(session: Session) -> None:
        await kz.store.units.reserve([UnitBlock(AAU, SerialRange(1_000_030, 1_000_049))],
                                     "KZ-other", session)

    await kz.service.runtime.commit(reserve_part)
    before = await kz.store.transactions(None, 100)
    with pytest.raises(RuleViolation) as exc:
        await kz.service.transfer(cancellation(50, 12))
    assert exc.value.code == ResponseCode.UNITS_DO_NOT_MATCH_NOTICE
    assert exc.value.reason == (
        "notice 12 lists the unit blocks KZ 1000000-1000049; account 1 holds 30 available "
        "AAU units of this period among them, fewer than the 50 requested")
    assert await kz.store.transactions(None, 100) == before
    decision = await kz.desk.record(Decision(
        decision_id="", kind=DecisionKind.WITHDRAWAL, reference="MEP-W-2", decided_at=START,
        unit_type=UnitType.AAU, quantity=50, account_id=PARTY, commitment_period=2,
        ground=WithdrawalGround.CRITERIA_NOT_MET, notice_id=12))
    with pytest.raises(RuleViolation) as exc:
        await kz.desk.execute(decision["_id"])
    assert exc.value.code == ResponseCode.UNITS_DO_NOT_MATCH_NOTICE
    assert (await kz.desk.require(decision["_id"])).state == DecisionState.RECORDED
    # exactly what is listed and free: 30
    assert serials(await kz.service.transfer(cancellation(30, 12))) == [
        (1_000_000, 1_000_029)]


async def test_a_transfer_to_the_cdm_registry_and_a_carry_over_on_a_notice_take_its_blocks(
    kz: Registry,
) -> None:
    await notice(kz, 13, NoticeType.EXCESS_ISSUANCE, [UnitBlock(AAU, SerialRange(700, 799))],
                 100)
    to_cdm = await kz.service.transfer(TransferUnits(
        transferring_account_id=PARTY, acquiring_registry="CDM",
        acquiring_account_type=A.EXCESS_ISSUANCE_CANCELLATION, acquiring_account_id=2240,
        unit_type=UnitType.AAU, quantity=60, commitment_period=2, notification_id=13))
    assert serials(to_cdm) == [(700, 759)]
    await notice(kz, 14, NoticeType.UNIT_CARRY_OVER,
                 [UnitBlock(AAU_CP1, SerialRange(3_000_501, 3_000_600))], 100)
    kz.service.true_up_ends = {1: START.date().replace(year=2012)}
    carried = await kz.service.transfer(TransferUnits(
        transaction_type=TransactionType.CARRY_OVER, transferring_account_id=PARTY,
        acquiring_registry="KZ", acquiring_account_type=A.PREVIOUS_PERIOD_SURPLUS_RESERVE,
        acquiring_account_id=4, unit_type=UnitType.AAU, quantity=100, commitment_period=1,
        notification_id=14))
    assert serials(carried) == [(3_000_501, 3_000_600)]


async def test_a_replacement_on_a_notice_replaces_its_blocks_with_any_units(
    kz: Registry,
) -> None:
    await notice(kz, 15, NoticeType.IMPENDING_EXPIRY, [UnitBlock(TCER, SerialRange(1, 500))],
                 500)
    command = await kz.service.runtime.commit(
        lambda session: kz.desk.replacement_command(15, UnitType.AAU, PARTY, 1, None, None,
                                                    session))
    tx = await kz.service.transfer(command)
    assert serials(tx) == [(3_000_001, 3_000_500)]  # the lowest period-1 AAUs replace
    assert [(b["serial_start"], b["serial_end"]) for b in tx["proposal"]["replaced_blocks"]] \
        == [(1, 500)]


# a proposal refused as a message


async def test_a_proposal_refused_as_a_message_is_terminated_with_its_codes_and_reason(
    kz: Registry,
) -> None:
    tx = await kz.service.transfer(cancellation(50, None))
    assert await reserved(kz) == {tx["_id"]: 50}
    reason = f"transaction id {tx['_id']} was used before for another proposal"
    await refuse_as_message(kz, tx["_id"], [ResponseCode.SENDER_MISMATCH], reason)
    refused = await transaction(kz, tx["_id"])
    assert refused["status"] == S.TERMINATED
    assert [h["status"] for h in refused["history"]] == [S.PROPOSED, S.TERMINATED]
    assert refused["evaluation_results"] == [{"response_code": 1002, "message": reason}]
    assert await reserved(kz) == {}

    # another refusal of the same message, or a status, changes nothing more
    await refuse_as_message(kz, tx["_id"], [ResponseCode.UNSUPPORTED_VERSION], "again")
    await itl_says(kz, tx["_id"], S.CHECKED_NO_DISCREPANCY)
    assert await transaction(kz, tx["_id"]) == refused
    assert await kz.store.units.sum_units({"account_id": NET_SOURCE}) == 0


async def test_only_an_own_proposal_still_proposed_is_terminated_by_a_refusal(
    kz: Registry,
) -> None:
    done = await kz.service.transfer(cancellation(10, None))
    await itl_says(kz, done["_id"], S.CHECKED_NO_DISCREPANCY)
    completed = await transaction(kz, done["_id"])
    assert completed["status"] == S.COMPLETED
    completion = await kz.store.db.outbox.find_one({"correlation_id": done["_id"],
                                                   "message_type": "TransactionStatusNotified"})
    open_tx = await kz.service.transfer(cancellation(10, None))
    for acked in (completion["_id"] if completion else "", "not-ours", ):
        payload = MessageAck(acked_message_id=acked, accepted=False,
                             response_codes=[ResponseCode.SENDER_MISMATCH], reason="no")
        await kz.service.on_message_ack(
            envelope(MessageType.MESSAGE_ACK, open_tx["_id"], payload), payload)
    await refuse_as_message(kz, done["_id"], [ResponseCode.SENDER_MISMATCH], "late")
    accepted = MessageAck(acked_message_id="x", accepted=True)
    await kz.service.on_message_ack(envelope(MessageType.MESSAGE_ACK, open_tx["_id"],
                                             accepted), accepted)
    assert await transaction(kz, done["_id"]) == completed
    assert (await transaction(kz, open_tx["_id"]))["status"] == S.PROPOSED
    assert await reserved(kz) == {open_tx["_id"]: 10}


async def test_a_refusal_for_a_reused_message_id_is_left_to_the_status_query(
    kz: Registry,
) -> None:
    """1102: the ITL received a message under this id before, ours or a copy: the
    transaction may be with the ITL, so it stays proposed."""
    tx = await kz.service.transfer(cancellation(10, None))
    await refuse_as_message(kz, tx["_id"], [ResponseCode.DUPLICATE_MESSAGE_DIFFERENT_CONTENT],
                            "message id received before with different content")
    assert (await transaction(kz, tx["_id"]))["status"] == S.PROPOSED
    assert await reserved(kz) == {tx["_id"]: 10}


async def test_a_refused_replacement_releases_the_replaced_blocks_and_a_refused_decision_is_open(
    kz: Registry,
) -> None:
    await notice(kz, 16, NoticeType.IMPENDING_EXPIRY, [UnitBlock(TCER, SerialRange(1, 500))],
                 500)
    decision = await kz.desk.record(Decision(
        decision_id="", kind=DecisionKind.REPLACEMENT, reference="MEP-R-1", decided_at=START,
        unit_type=UnitType.AAU, quantity=500, account_id=PARTY, commitment_period=1,
        notice_id=16))
    tx = await kz.desk.execute(decision["_id"])
    assert await reserved(kz) == {tx["_id"]: 500, replaced_reservation(tx["_id"]): 500}
    await refuse_as_message(kz, tx["_id"], [ResponseCode.SENDER_MISMATCH], "refused")
    assert await reserved(kz) == {}
    after = await kz.desk.require(decision["_id"])
    assert (after.state, after.used_quantity) == (DecisionState.RECORDED, 0)


async def test_a_refused_first_transfer_releases_its_share_and_is_levied_on_no_more(
    kz: Registry,
) -> None:
    tx = await kz.service.transfer(external(600))
    assert await reserved(kz) == {tx["_id"]: 600, set_aside(tx["_id"]): 12}
    assert await ledger(kz) == {"transferred": 600, "due": 12, "contributed": 12, "owed": 0}
    await refuse_as_message(kz, tx["_id"], [ResponseCode.SENDER_MISMATCH], "refused")
    assert await reserved(kz) == {}
    assert await ledger(kz) == {"transferred": 0, "due": 0, "contributed": 0, "owed": 0}


async def test_a_share_transfer_takes_the_id_after_its_first_transfer_whatever_came_between(
    kz: Registry,
) -> None:
    """The share's id is taken when the first transfer is proposed, not when it
    completes: transfers proposed in between, and the order completions arrive in, do
    not move it (so a replay of the same commands gives the same ids)."""
    first = await kz.service.transfer(external(600))
    share_id = f"KZ{int(first['_id'][2:]) + 1}"
    assert first["share_transaction_ids"] == {"2": share_id}
    between = await kz.service.transfer(cancellation(10, None))
    assert between["_id"] == f"KZ{int(first['_id'][2:]) + 2}"
    await itl_says(kz, between["_id"], S.CHECKED_NO_DISCREPANCY)
    await itl_says(kz, first["_id"], S.ACCEPTED)
    assert await reserved(kz) == {share_id: 12}
    share = await transaction(kz, share_id)
    assert share["proposal"]["supp_transaction_type"] == \
        SupplementaryType.SHARE_OF_PROCEEDS_FIRST_TRANSFER_OF_AAU
    # the next command takes the next id: none was taken twice
    after = await kz.service.transfer(cancellation(5, None))
    assert after["_id"] == f"KZ{int(first['_id'][2:]) + 3}"


# the share of proceeds: every share transfer counted once


async def test_every_share_transfer_is_counted_once_however_it_is_proposed(
    kz: Registry,
) -> None:
    alice = (await kz.service.create_account(A.PERSON_HOLDING, "Alice Energy LLP", 2)).account_id
    to_alice = await kz.service.transfer(TransferUnits(
        transferring_account_id=PARTY, acquiring_registry="KZ",
        acquiring_account_type=A.PERSON_HOLDING, acquiring_account_id=alice,
        unit_type=UnitType.AAU, quantity=1_000, commitment_period=2))
    await itl_says(kz, to_alice["_id"], S.CHECKED_NO_DISCREPANCY)

    # the automatic levy: set aside with the first transfer, then proposed, counted once
    first = await kz.service.transfer(external(600))
    await itl_says(kz, first["_id"], S.ACCEPTED)
    assert await reserved(kz) == {f"KZ{int(first['_id'][2:]) + 1}": 12}
    assert await ledger(kz) == {"transferred": 600, "due": 12, "contributed": 12, "owed": 0}

    # a holder's plain transfer into the Adaptation Fund account is a share transfer
    manual = await kz.service.transfer(external(10, "CDM", A.PARTY_HOLDING, 1100, alice))
    assert manual["proposal"]["supp_transaction_type"] == \
        SupplementaryType.SHARE_OF_PROCEEDS_FIRST_TRANSFER_OF_AAU
    assert await ledger(kz) == {"transferred": 600, "due": 12, "contributed": 22, "owed": 0}
    rows = await kz.proceeds.report()
    assert rows[0]["transactions"] == [f"KZ{int(first['_id'][2:]) + 1}", manual["_id"]]

    # it fails: given back, once
    await itl_says(kz, manual["_id"], S.CHECKED_DISCREPANCY, (ResponseCode.BLOCK_UNKNOWN,))
    await itl_says(kz, manual["_id"], S.TERMINATED)
    assert await ledger(kz) == {"transferred": 600, "due": 12, "contributed": 12, "owed": 0}

    # a first transfer whose share cannot be proposed at completion leaves it owed ...
    second = await kz.service.transfer(external(400))
    assert await ledger(kz) == {"transferred": 1000, "due": 20, "contributed": 20, "owed": 0}

    async def block_party(session: Session) -> None:
        await kz.store.db.accounts.update_one({"account_id": PARTY},
                                              {"$set": {"status": "blocked"}}, session=session)

    await kz.service.runtime.commit(block_party)
    await itl_says(kz, second["_id"], S.ACCEPTED)
    assert await ledger(kz) == {"transferred": 1000, "due": 20, "contributed": 12, "owed": 8}
    # ... until the operator pays it, counted once
    paid = await kz.proceeds.pay(2, FIRST, alice, UnitType.AAU)
    assert paid["quantity"] == 8
    assert await ledger(kz) == {"transferred": 1000, "due": 20, "contributed": 20, "owed": 0}
