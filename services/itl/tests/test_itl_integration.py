"""The ITL in-process against the real broker and a real store, with the tests playing
the registries KZ and CH over RabbitMQ."""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import aio_pika
import httpx
import pytest
from pydantic import BaseModel

from services.itl.config import ItlSettings
from services.itl.main import create_app
from services.itl.store import OUTBOX_SEQ_INDEX, ItlStore
from shared.codes import AccountType, MessageType, ResponseCode, TransactionStatus, UnitType
from shared.contracts import (
    AccountRef,
    Envelope,
    EvaluationResult,
    ProposalForwarded,
    ProposalSubmitted,
    TransactionStatusNotified,
    TransactionStatusQueried,
    UnitBlockWire,
    make_envelope,
)
from shared.messaging import Broker, dead_letter_queue_name
from shared.store import make_client
from shared.testing.infra import Namespace, eventually

pytestmark = pytest.mark.integration

S = TransactionStatus

KZ_PARTY = AccountRef(registry="KZ", account_type=AccountType.PARTY_HOLDING, account_id=1)
KZ_PERSON = AccountRef(registry="KZ", account_type=AccountType.PERSON_HOLDING, account_id=1001)
CH_PERSON = AccountRef(registry="CH", account_type=AccountType.PERSON_HOLDING, account_id=2001)




@dataclass
class Registry:
    """A test standing in for a registry: publishes envelopes, collects what arrives."""

    code: str
    broker: Broker
    received: list[Envelope] = field(default_factory=list)

    async def send(self, message_type: MessageType, payload: BaseModel, transaction_id: str,
                   message_id: str | None = None) -> Envelope:
        envelope = make_envelope(
            message_type=message_type, sender=self.code, recipient="ITL",
            correlation_id=transaction_id, payload=payload, sent_at=datetime.now(UTC),
            message_id=message_id,
        )
        await self.broker.publish(envelope)
        return envelope

    async def propose(self, proposal: ProposalSubmitted) -> Envelope:
        return await self.send(MessageType.PROPOSAL_SUBMITTED, proposal,
                               proposal.transaction_id)

    async def notify(self, transaction_id: str, status: TransactionStatus,
                     results: list[EvaluationResult] | None = None) -> Envelope:
        payload = TransactionStatusNotified(transaction_id=transaction_id, status=status,
                                            evaluation_results=results or [])
        return await self.send(MessageType.TRANSACTION_STATUS_NOTIFIED, payload,
                               transaction_id)

    def messages(self, message_type: MessageType, transaction_id: str) -> list[Envelope]:
        return [e for e in self.received
                if e.message_type == message_type and e.correlation_id == transaction_id]

    async def wait_for(self, message_type: MessageType, transaction_id: str,
                       status: TransactionStatus | None = None) -> Envelope:
        """The first message of this type (and status) about ``transaction_id``."""

        async def probe() -> Envelope | None:
            for envelope in self.messages(message_type, transaction_id):
                if status is None or envelope.payload.get("status") == status:
                    return envelope
            return None

        return await eventually(probe, f"{message_type} {status} for {transaction_id} at "
                                       f"{self.code}")


@dataclass
class Stack:
    http: httpx.AsyncClient
    kz: Registry
    ch: Registry

    async def transaction(self, transaction_id: str) -> dict[str, Any]:
        response = await self.http.get(f"/transactions/{transaction_id}")
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    async def wait_status(self, transaction_id: str, status: TransactionStatus
                          ) -> dict[str, Any]:
        async def probe() -> dict[str, Any] | None:
            response = await self.http.get(f"/transactions/{transaction_id}")
            if response.status_code == 200 and response.json()["status"] == status:
                body: dict[str, Any] = response.json()
                return body
            return None

        return await eventually(probe, f"{transaction_id} in status {status} at the ITL")

    async def record_assigned_amount(self, amount: int, inventory: int | None = None) -> None:
        response = await self.http.put("/parties/KZ/periods/2", json={
            "assigned_amount": amount, "reviewed_inventory": inventory})
        assert response.status_code == 200, response.text

    async def issue(self, transaction_id: str, start: int, end: int) -> None:
        """Issue AAUs into KZ's Party holding account, through to status 4."""
        await self.kz.propose(issuance(transaction_id, start, end))
        notified = await self.kz.wait_for(MessageType.TRANSACTION_STATUS_NOTIFIED,
                                          transaction_id)
        assert notified.payload["status"] == S.CHECKED_NO_DISCREPANCY, notified.payload
        await self.kz.notify(transaction_id, S.COMPLETED)
        await self.wait_status(transaction_id, S.COMPLETED)


def aau(start: int, end: int) -> UnitBlockWire:
    return UnitBlockWire(serial_start=start, serial_end=end, originating_registry="KZ",
                         unit_type=UnitType.AAU, original_commitment_period=2,
                         applicable_commitment_period=2)


def issuance(transaction_id: str, start: int, end: int) -> ProposalSubmitted:
    return ProposalSubmitted(transaction_id=transaction_id, transaction_type=1,
                             acquiring=KZ_PARTY, blocks=[aau(start, end)])


def transfer(transaction_id: str, transferring: AccountRef, acquiring: AccountRef,
             *blocks: UnitBlockWire) -> ProposalSubmitted:
    external = acquiring.registry != transferring.registry
    return ProposalSubmitted(transaction_id=transaction_id,
                             transaction_type=3 if external else 10,
                             transferring=transferring, acquiring=acquiring, blocks=list(blocks))


def response_codes(envelope: Envelope) -> list[int]:
    return [r["response_code"] for r in envelope.payload["evaluation_results"]]


def database_url(mongo_url: str, name: str) -> str:
    """``mongo_url`` with ``name`` as the database in its path."""
    base, _, query = mongo_url.partition("?")
    return f"{base.rstrip('/')}/{name}" + (f"?{query}" if query else "")


@pytest.fixture
async def stack(mongo_url: str, namespace: Namespace
                ) -> AsyncIterator[Stack]:
    settings = ItlSettings(
        mongo_url=database_url(mongo_url, f"itl_{uuid.uuid4().hex[:12]}"),
        amqp_url=namespace.url("ITL"),
        amqp_namespace=namespace.prefix,
        registries=["KZ", "CH", "CDM"],
        # the ITL's rules in-process, without an issuer: callers are tested end to end
        # (tests/e2e/test_authentication.py)
        auth_mode="development",
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        registries = []
        for code in ("KZ", "CH"):
            registry = Registry(code, namespace.broker(code))
            await registry.broker.connect()

            async def collect(envelope: Envelope, registry: Registry = registry) -> None:
                registry.received.append(envelope)

            await registry.broker.consume(collect)
            registries.append(registry)
        transport = httpx.ASGITransport(app=app)
        try:
            async with httpx.AsyncClient(transport=transport, base_url="http://itl") as http:
                yield Stack(http, registries[0], registries[1])
        finally:
            for registry in registries:
                await registry.broker.close()


async def test_aau_issuance_is_refused_with_4001_until_an_assigned_amount_is_recorded(
    stack: Stack,
) -> None:
    await stack.kz.propose(issuance("KZ1", 1, 1000))
    refused = await stack.kz.wait_for(MessageType.TRANSACTION_STATUS_NOTIFIED, "KZ1")
    assert refused.payload["status"] == S.CHECKED_DISCREPANCY
    assert response_codes(refused) == [ResponseCode.ISSUANCE_OVER_LIMIT]
    record = await stack.transaction("KZ1")
    assert [h["status"] for h in record["history"]] == [1, 3, 5]
    assert record["status_name"] == "TERMINATED"

    await stack.record_assigned_amount(1000)
    party = (await stack.http.get("/parties/KZ/periods/2")).json()
    assert party["commitment_period_reserve"] == 900

    await stack.kz.propose(issuance("KZ2", 1, 1000))
    checked = await stack.kz.wait_for(MessageType.TRANSACTION_STATUS_NOTIFIED, "KZ2")
    assert checked.payload["status"] == S.CHECKED_NO_DISCREPANCY
    pending = (await stack.http.get("/units", params={"registry": "KZ"})).json()
    assert [(b["serial_start"], b["serial_end"], b["reserved_by"], b["issuing"])
            for b in pending] == [(1, 1000, "KZ2", True)]

    await stack.kz.notify("KZ2", S.COMPLETED)
    await stack.wait_status("KZ2", S.COMPLETED)
    held = (await stack.http.get("/units", params={"registry": "KZ", "unit_type": "AAU"})
            ).json()
    assert [(b["serial_start"], b["serial_end"], b["account_id"], b["reserved_by"],
             b["issuing"]) for b in held] == [(1, 1000, 1, None, False)]
    party = (await stack.http.get("/parties/KZ/periods/2")).json()
    assert party["holdings"] == 1000

    await stack.kz.propose(issuance("KZ3", 1001, 1001))
    over = await stack.kz.wait_for(MessageType.TRANSACTION_STATUS_NOTIFIED, "KZ3")
    assert response_codes(over) == [ResponseCode.ISSUANCE_OVER_LIMIT]


async def test_transfer_of_blocks_the_register_does_not_hold_is_refused_with_3001_or_3002(
    stack: Stack,
) -> None:
    await stack.record_assigned_amount(1000)
    await stack.issue("KZ1", 1, 1000)

    await stack.kz.propose(transfer("KZ2", KZ_PARTY, KZ_PERSON, aau(5000, 5100)))
    unknown = await stack.kz.wait_for(MessageType.TRANSACTION_STATUS_NOTIFIED, "KZ2")
    assert unknown.payload["status"] == S.CHECKED_DISCREPANCY
    assert response_codes(unknown) == [ResponseCode.BLOCK_UNKNOWN]
    assert unknown.payload["evaluation_results"][0]["serial_start"] == 5000

    await stack.kz.propose(transfer("KZ3", KZ_PERSON, KZ_PARTY, aau(1, 10)))
    not_held = await stack.kz.wait_for(MessageType.TRANSACTION_STATUS_NOTIFIED, "KZ3")
    assert response_codes(not_held) == [ResponseCode.BLOCK_NOT_HELD_BY_TRANSFERRING_ACCOUNT]


async def test_second_transfer_of_reserved_blocks_is_refused_with_3006(stack: Stack) -> None:
    await stack.record_assigned_amount(1000)
    await stack.issue("KZ1", 1, 1000)
    await stack.kz.propose(transfer("KZ2", KZ_PARTY, KZ_PERSON, aau(1, 100)))
    checked = await stack.kz.wait_for(MessageType.TRANSACTION_STATUS_NOTIFIED, "KZ2")
    assert checked.payload["status"] == S.CHECKED_NO_DISCREPANCY

    await stack.kz.propose(transfer("KZ3", KZ_PARTY, KZ_PERSON, aau(50, 60)))
    refused = await stack.kz.wait_for(MessageType.TRANSACTION_STATUS_NOTIFIED, "KZ3")
    assert response_codes(refused) == [ResponseCode.BLOCK_RESERVED]

    await stack.kz.notify("KZ2", S.COMPLETED)
    await stack.wait_status("KZ2", S.COMPLETED)
    person = (await stack.http.get("/units", params={"account_id": 1001})).json()
    assert [(b["serial_start"], b["serial_end"], b["account_type"]) for b in person] == [
        (1, 100, AccountType.PERSON_HOLDING)]


async def test_external_transfer_is_forwarded_accepted_completed_and_moved_to_ch(
    stack: Stack,
) -> None:
    await stack.record_assigned_amount(1000)
    await stack.issue("KZ1", 1, 1000)
    # 99 units and the 1 unit of share of proceeds they owe leave exactly the CPR
    proposal = transfer("KZ2", KZ_PARTY, CH_PERSON, aau(1, 99))
    submitted = await stack.kz.propose(proposal)

    forwarded = await stack.ch.wait_for(MessageType.PROPOSAL_FORWARDED, "KZ2")
    tx = await stack.transaction("KZ2")
    # the proposal as submitted, with the deadline the ITL fixed for CH's answer
    deadline = datetime.fromisoformat(tx["deadline"])
    assert ProposalForwarded.model_validate(forwarded.payload).model_dump() \
        == {**proposal.model_dump(), "deadline": deadline}
    approved = datetime.fromisoformat(tx["history"][-1]["at"])
    assert abs(deadline - approved - timedelta(hours=24)) < timedelta(seconds=1)
    assert forwarded.causation_id == submitted.message_id
    assert tx["status"] == S.CHECKED_NO_DISCREPANCY

    await stack.ch.notify("KZ2", S.ACCEPTED)
    await stack.kz.wait_for(MessageType.TRANSACTION_STATUS_NOTIFIED, "KZ2", S.ACCEPTED)
    await stack.kz.notify("KZ2", S.COMPLETED)
    await stack.ch.wait_for(MessageType.TRANSACTION_STATUS_NOTIFIED, "KZ2", S.COMPLETED)

    record = await stack.wait_status("KZ2", S.COMPLETED)
    assert [h["status"] for h in record["history"]] == [1, 2, 8, 4]
    at_ch = (await stack.http.get("/units", params={"registry": "CH"})).json()
    assert [(b["origin"], b["serial_start"], b["serial_end"], b["account_type"],
             b["account_id"], b["reserved_by"]) for b in at_ch] == [
        ("KZ", 1, 99, AccountType.PERSON_HOLDING, 2001, None)]
    totals = (await stack.http.get("/totals", params={"registry": "KZ"})).json()
    assert [(t["account_id"], t["units"]) for t in totals] == [(1, 901)]

    journal = (await stack.http.get("/messages", params={"correlation_id": "KZ2"})).json()
    assert [(m["direction"], m["message_type"], m["sender"], m["recipient"],
             m["envelope"]["payload"].get("status")) for m in journal] == [
        ("in", "ProposalSubmitted", "KZ", "ITL", None),
        ("out", "ProposalForwarded", "ITL", "CH", None),
        ("in", "TransactionStatusNotified", "CH", "ITL", 8),
        ("out", "TransactionStatusNotified", "ITL", "KZ", 8),
        ("in", "TransactionStatusNotified", "KZ", "ITL", 4),
        ("out", "TransactionStatusNotified", "ITL", "CH", 4),
    ]


async def test_external_transfer_rejected_by_ch_is_reported_to_kz_and_released(
    stack: Stack,
) -> None:
    await stack.record_assigned_amount(1000)
    await stack.issue("KZ1", 1, 1000)
    await stack.kz.propose(transfer("KZ2", KZ_PARTY, CH_PERSON, aau(1, 50)))
    await stack.ch.wait_for(MessageType.PROPOSAL_FORWARDED, "KZ2")
    reason = EvaluationResult(response_code=ResponseCode.ACQUIRING_ACCOUNT_UNKNOWN,
                              message="no account 2001 in CH")
    await stack.ch.notify("KZ2", S.REJECTED, [reason])

    rejected = await stack.kz.wait_for(MessageType.TRANSACTION_STATUS_NOTIFIED, "KZ2",
                                       S.REJECTED)
    assert response_codes(rejected) == [ResponseCode.ACQUIRING_ACCOUNT_UNKNOWN]
    record = await stack.wait_status("KZ2", S.REJECTED)
    assert record["evaluation_results"][0]["response_code"] == 5902
    held = (await stack.http.get("/units", params={"registry": "KZ"})).json()
    assert [(b["serial_start"], b["serial_end"], b["reserved_by"]) for b in held] == [
        (1, 1000, None)]


async def test_external_transfer_breaking_the_cpr_is_refused_with_5001(stack: Stack) -> None:
    await stack.record_assigned_amount(1000)
    await stack.issue("KZ1", 1, 1000)
    await stack.kz.propose(transfer("KZ2", KZ_PARTY, CH_PERSON, aau(1, 100)))  # 100 + 2
    refused = await stack.kz.wait_for(MessageType.TRANSACTION_STATUS_NOTIFIED, "KZ2")
    assert response_codes(refused) == [ResponseCode.CPR_VIOLATED]
    assert not stack.ch.messages(MessageType.PROPOSAL_FORWARDED, "KZ2")

    # What an open external transfer reserves no longer counts as holdings.
    await stack.kz.propose(transfer("KZ3", KZ_PARTY, CH_PERSON, aau(1, 99)))
    await stack.ch.wait_for(MessageType.PROPOSAL_FORWARDED, "KZ3")
    await stack.kz.propose(transfer("KZ4", KZ_PARTY, CH_PERSON, aau(100, 101)))  # 901 - 2
    refused = await stack.kz.wait_for(MessageType.TRANSACTION_STATUS_NOTIFIED, "KZ4")
    assert response_codes(refused) == [ResponseCode.CPR_VIOLATED]
    party = (await stack.http.get("/parties/KZ/periods/2")).json()
    assert party["holdings"] == 901


async def test_only_the_parties_to_a_transaction_learn_its_status(stack: Stack) -> None:
    await stack.record_assigned_amount(1000)
    await stack.kz.propose(issuance("KZ1", 1, 10))
    await stack.kz.wait_for(MessageType.TRANSACTION_STATUS_NOTIFIED, "KZ1")
    for registry in (stack.kz, stack.ch):
        await registry.send(MessageType.TRANSACTION_STATUS_QUERIED,
                            TransactionStatusQueried(transaction_id="KZ1"), "KZ1")
    own = await stack.kz.wait_for(MessageType.TRANSACTION_STATUS_REPORTED, "KZ1")
    assert own.payload["status"] == S.CHECKED_NO_DISCREPANCY
    stranger = await stack.ch.wait_for(MessageType.TRANSACTION_STATUS_REPORTED, "KZ1")
    assert stranger.payload["status"] is None
    assert stranger.payload["evaluation_results"] == []


async def test_the_same_proposal_delivered_twice_has_one_effect(stack: Stack) -> None:
    await stack.record_assigned_amount(1000)
    first = await stack.kz.propose(issuance("KZ1", 1, 10))
    await stack.kz.broker.publish(first)  # redelivery: same message id
    await stack.kz.propose(issuance("KZ1", 1, 10))  # same business key, new message id
    # Handled in order, so once the answer to this query is back all three are through.
    await stack.kz.send(MessageType.TRANSACTION_STATUS_QUERIED,
                        TransactionStatusQueried(transaction_id="KZ1"), "KZ1")
    report = await stack.kz.wait_for(MessageType.TRANSACTION_STATUS_REPORTED, "KZ1")
    assert report.payload["status"] == S.CHECKED_NO_DISCREPANCY

    assert len(stack.kz.messages(MessageType.TRANSACTION_STATUS_NOTIFIED, "KZ1")) == 1
    units = (await stack.http.get("/units")).json()
    assert [(b["serial_start"], b["serial_end"]) for b in units] == [(1, 10)]
    journal = (await stack.http.get("/messages", params={"correlation_id": "KZ1"})).json()
    assert [(m["direction"], m["message_type"]) for m in journal] == [
        ("in", "ProposalSubmitted"),
        ("out", "TransactionStatusNotified"),
        ("in", "ProposalSubmitted"),
        ("in", "TransactionStatusQueried"),
        ("out", "TransactionStatusReported"),
    ]


async def test_status_for_an_unknown_transaction_or_from_a_stranger_is_refused_by_ack(
    stack: Stack,
) -> None:
    notified = await stack.kz.notify("KZ99", S.COMPLETED)
    ack = await stack.kz.wait_for(MessageType.MESSAGE_ACK, "KZ99")
    assert ack.payload["acked_message_id"] == notified.message_id
    assert ack.payload["accepted"] is False
    assert ack.payload["response_codes"] == [ResponseCode.OUT_OF_SEQUENCE]

    await stack.record_assigned_amount(1000)
    await stack.kz.propose(issuance("KZ1", 1, 10))
    await stack.kz.wait_for(MessageType.TRANSACTION_STATUS_NOTIFIED, "KZ1")
    await stack.ch.notify("KZ1", S.COMPLETED)
    ack = await stack.ch.wait_for(MessageType.MESSAGE_ACK, "KZ1")
    assert ack.payload["response_codes"] == [ResponseCode.SENDER_MISMATCH]
    assert (await stack.transaction("KZ1"))["status"] == S.CHECKED_NO_DISCREPANCY


async def test_proposal_forwarded_sent_to_the_itl_is_dead_lettered_with_a_reason(
    stack: Stack, broker_url: str, namespace: Namespace
) -> None:
    forwarded = ProposalForwarded.model_validate(issuance("KZ1", 1, 10).model_dump())
    sent = await stack.kz.send(MessageType.PROPOSAL_FORWARDED, forwarded, "KZ1")

    connection = await aio_pika.connect(broker_url)
    try:
        channel = await connection.channel()
        dead = await channel.get_queue(dead_letter_queue_name("ITL", namespace.prefix),
                                       ensure=False)

        async def probe() -> aio_pika.abc.AbstractIncomingMessage | None:
            return await dead.get(fail=False)

        message = await eventually(probe, "a dead-lettered message at the ITL")
        await message.ack()
    finally:
        await connection.close()
    assert message.message_id == sent.message_id
    assert "ProposalForwarded" in str(message.headers["x-dead-reason"])
    response = await stack.http.get("/transactions/KZ1")
    assert response.status_code == 404
    assert "KZ1" in response.json()["detail"]


async def test_api_refuses_invalid_values_and_unknown_parties(stack: Stack) -> None:
    assert (await stack.http.get("/registries")).json() == {"registries": ["CDM", "CH", "KZ"]}
    missing = await stack.http.get("/parties/KZ/periods/2")
    assert missing.status_code == 404
    assert "KZ" in missing.json()["detail"]
    negative = await stack.http.put("/parties/KZ/periods/2", json={"assigned_amount": -1})
    assert negative.status_code == 422
    assert (await stack.http.get("/transactions", params={"status": 42})).status_code == 422
    assert (await stack.http.get("/units", params={"unit_type": "XYZ"})).status_code == 422
    assert (await stack.http.get("/messages")).status_code == 422


async def test_a_proposal_refused_as_a_message_is_answered_and_never_becomes_a_transaction(
    stack: Stack,
) -> None:
    await stack.record_assigned_amount(1000)
    old = issuance("KZ1", 1, 10)
    sent = make_envelope(message_type=MessageType.PROPOSAL_SUBMITTED, sender="KZ",
                         recipient="ITL", correlation_id="KZ1", payload=old,
                         sent_at=datetime.now(UTC)).model_copy(
                             update={"schema_version": "des-1.0/1"})
    await stack.kz.broker.publish(sent)
    ack = await stack.kz.wait_for(MessageType.MESSAGE_ACK, "KZ1")
    assert ack.payload["acked_message_id"] == sent.message_id
    assert ack.payload["response_codes"] == [ResponseCode.UNSUPPORTED_VERSION]
    assert "'des-1.0/1'" in ack.payload["reason"]

    # CH proposes, under its own id, to take KZ's units
    forged = await stack.ch.propose(transfer("CH1", KZ_PARTY, CH_PERSON, aau(1, 10)))
    ack = await stack.ch.wait_for(MessageType.MESSAGE_ACK, "CH1")
    assert ack.payload["acked_message_id"] == forged.message_id
    assert ack.payload["response_codes"] == [ResponseCode.SENDER_MISMATCH]

    for tx in ("KZ1", "CH1"):
        assert (await stack.http.get(f"/transactions/{tx}")).status_code == 404
        journal = (await stack.http.get("/messages", params={"correlation_id": tx})).json()
        assert [(m["direction"], m["message_type"]) for m in journal] == [("out", "MessageAck")]
    assert not stack.kz.messages(MessageType.TRANSACTION_STATUS_NOTIFIED, "KZ1")
    assert not stack.ch.messages(MessageType.TRANSACTION_STATUS_NOTIFIED, "CH1")

    # the same proposal in the supported version is checked as usual
    await stack.kz.propose(old)
    checked = await stack.kz.wait_for(MessageType.TRANSACTION_STATUS_NOTIFIED, "KZ1")
    assert checked.payload["status"] == S.CHECKED_NO_DISCREPANCY


async def test_a_proposal_id_reused_for_other_content_is_refused_with_1102(
    stack: Stack,
) -> None:
    await stack.record_assigned_amount(1000)
    first = await stack.kz.propose(issuance("KZ1", 1, 10))
    await stack.kz.wait_for(MessageType.TRANSACTION_STATUS_NOTIFIED, "KZ1")
    await stack.kz.send(MessageType.PROPOSAL_SUBMITTED, issuance("KZ1", 1, 500), "KZ1",
                        message_id=first.message_id)
    ack = await stack.kz.wait_for(MessageType.MESSAGE_ACK, "KZ1")
    assert ack.payload["response_codes"] == [ResponseCode.DUPLICATE_MESSAGE_DIFFERENT_CONTENT]
    assert "payload.blocks[0].serial_end" in ack.payload["reason"]
    units = (await stack.http.get("/units")).json()
    assert [(b["serial_start"], b["serial_end"]) for b in units] == [(1, 10)]
    assert len(stack.kz.messages(MessageType.TRANSACTION_STATUS_NOTIFIED, "KZ1")) == 1


async def test_a_transaction_id_proposed_again_with_other_content_is_refused_with_1105(
    stack: Stack, caplog: pytest.LogCaptureFixture,
) -> None:
    """Whether the other content would be approved or refused on its own, the answer is
    1105 and nothing changes: the transaction, its register blocks, the Party's figures
    and what was sent about it; nothing but the refusal is logged (the new proposal is
    tried as a new transaction id first, and its store transaction fails on the id's
    duplicate key)."""
    await stack.record_assigned_amount(1000)
    await stack.issue("KZ1", 1, 1000)
    await stack.kz.propose(transfer("KZ2", KZ_PARTY, CH_PERSON, aau(1, 50)))
    await stack.ch.wait_for(MessageType.PROPOSAL_FORWARDED, "KZ2")
    before = (await stack.transaction("KZ2"), (await stack.http.get("/units")).json(),
              (await stack.http.get("/parties/KZ/periods/2")).json())

    approvable = transfer("KZ2", KZ_PARTY, KZ_PERSON, aau(100, 110))
    refusable = transfer("KZ2", KZ_PARTY, CH_PERSON, aau(5000, 5010))  # 3001 on its own
    caplog.set_level(logging.INFO, logger="itl")
    caplog.clear()
    for other in (approvable, refusable):
        sent = await stack.kz.propose(other)

        async def probe(sent: Envelope = sent) -> Envelope | None:
            return next((e for e in stack.kz.messages(MessageType.MESSAGE_ACK, "KZ2")
                         if e.payload["acked_message_id"] == sent.message_id), None)

        ack = await eventually(probe, "the ITL's answer to a reused transaction id")
        assert ack.payload["accepted"] is False
        assert ack.payload["response_codes"] == [ResponseCode.TRANSACTION_ID_REUSED]
        assert "KZ2 was proposed before with other content" in ack.payload["reason"]
    assert [r.getMessage() for r in caplog.records if r.name == "itl"] == [
        "message_refused", "message_refused"]
    after = (await stack.transaction("KZ2"), (await stack.http.get("/units")).json(),
             (await stack.http.get("/parties/KZ/periods/2")).json())
    assert after == before
    assert not stack.kz.messages(MessageType.TRANSACTION_STATUS_NOTIFIED, "KZ2")
    assert len(stack.ch.messages(MessageType.PROPOSAL_FORWARDED, "KZ2")) == 1
    journal = (await stack.http.get("/messages", params={"correlation_id": "KZ2"})).json()
    assert [(m["direction"], m["message_type"], m["envelope"]["seq"]) for m in journal
            if m["direction"] == "out"] == [
        ("out", "ProposalForwarded", 0), ("out", "MessageAck", 1), ("out", "MessageAck", 2)]


async def test_the_first_message_about_a_new_transaction_follows_those_sent_about_its_id(
    stack: Stack,
) -> None:
    """A message about a transaction id the ITL has not recorded (here the answer to a
    status for it) comes before its proposal: the proposal's answer is the id's second
    message (``seq`` 1), and the transaction is recorded once."""
    await stack.record_assigned_amount(1000)
    await stack.kz.notify("KZ1", S.COMPLETED)
    early = await stack.kz.wait_for(MessageType.MESSAGE_ACK, "KZ1")
    assert early.payload["response_codes"] == [ResponseCode.OUT_OF_SEQUENCE]
    assert early.seq == 0

    await stack.kz.propose(issuance("KZ1", 1, 10))
    checked = await stack.kz.wait_for(MessageType.TRANSACTION_STATUS_NOTIFIED, "KZ1")
    assert checked.payload["status"] == S.CHECKED_NO_DISCREPANCY
    assert checked.seq == 1
    await stack.kz.notify("KZ1", S.COMPLETED)
    await stack.wait_status("KZ1", S.COMPLETED)
    record = await stack.transaction("KZ1")
    assert [h["status"] for h in record["history"]] == [1, 2, 4]
    units = (await stack.http.get("/units")).json()
    assert [(b["serial_start"], b["serial_end"], b["reserved_by"]) for b in units] == [
        (1, 10, None)]


async def test_every_message_about_a_transaction_has_the_next_seq(stack: Stack) -> None:
    await stack.record_assigned_amount(1000)
    await stack.issue("KZ1", 1, 1000)
    await stack.kz.propose(transfer("KZ2", KZ_PARTY, CH_PERSON, aau(1, 50)))
    await stack.ch.wait_for(MessageType.PROPOSAL_FORWARDED, "KZ2")
    await stack.ch.notify("KZ2", S.ACCEPTED)
    await stack.kz.wait_for(MessageType.TRANSACTION_STATUS_NOTIFIED, "KZ2", S.ACCEPTED)
    await stack.kz.notify("KZ2", S.COMPLETED)
    await stack.ch.wait_for(MessageType.TRANSACTION_STATUS_NOTIFIED, "KZ2", S.COMPLETED)
    await stack.kz.send(MessageType.TRANSACTION_STATUS_QUERIED,
                        TransactionStatusQueried(transaction_id="KZ2"), "KZ2")
    await stack.kz.wait_for(MessageType.TRANSACTION_STATUS_REPORTED, "KZ2")
    sent = sorted(stack.kz.messages(MessageType.TRANSACTION_STATUS_NOTIFIED, "KZ2")
                  + stack.kz.messages(MessageType.TRANSACTION_STATUS_REPORTED, "KZ2")
                  + stack.ch.messages(MessageType.PROPOSAL_FORWARDED, "KZ2")
                  + stack.ch.messages(MessageType.TRANSACTION_STATUS_NOTIFIED, "KZ2"),
                  key=lambda e: e.seq)
    assert [(e.message_type, e.seq) for e in sent] == [
        (MessageType.PROPOSAL_FORWARDED, 0), (MessageType.TRANSACTION_STATUS_NOTIFIED, 1),
        (MessageType.TRANSACTION_STATUS_NOTIFIED, 2),
        (MessageType.TRANSACTION_STATUS_REPORTED, 3)]


async def test_an_outbox_whose_seqs_repeat_keeps_the_itl_counting_them(
    mongo_url: str, caplog: pytest.LogCaptureFixture,
) -> None:
    """Rows stored before that repeat a (correlation id, ``seq``) leave the unique index
    out: the ITL says so and counts every first ``seq`` instead of guessing it."""
    client = make_client(mongo_url)
    db = client[f"itl_{uuid.uuid4().hex[:12]}"]
    try:
        fresh = ItlStore(db)
        await fresh.ensure_indexes()
        assert fresh.outbox_seq_unique is True
        await db.outbox.drop_index(OUTBOX_SEQ_INDEX)
        for message_id in ("a", "b"):
            await db.outbox.insert_one({"_id": message_id, "correlation_id": "KZ1",
                                        "envelope": {"seq": 0}})
        store = ItlStore(db)
        with caplog.at_level(logging.ERROR, logger="itl.store"):
            await store.ensure_indexes()
        assert store.outbox_seq_unique is False
        assert [r.getMessage() for r in caplog.records] == ["outbox_seq_not_unique"]
    finally:
        await client.drop_database(db.name)
        await client.close()


async def test_a_transfer_proposed_again_or_redelivered_after_approval_has_one_effect(
    stack: Stack,
) -> None:
    """Its blocks are reserved by itself, so the attempt as a new transaction passes its
    checks and reserves them again: the inbox row (a redelivery) or the transaction's id
    (the same proposal under a new message id) stops it, and nothing changes."""
    await stack.record_assigned_amount(1000)
    await stack.issue("KZ1", 1, 1000)
    proposal = transfer("KZ2", KZ_PARTY, CH_PERSON, aau(1, 50))
    first = await stack.kz.propose(proposal)
    await stack.ch.wait_for(MessageType.PROPOSAL_FORWARDED, "KZ2")
    before = (await stack.transaction("KZ2"), (await stack.http.get("/units")).json(),
              (await stack.http.get("/parties/KZ/periods/2")).json())

    await stack.kz.broker.publish(first)  # redelivery: same message id
    await stack.kz.propose(proposal)  # same content, new message id
    await stack.kz.send(MessageType.TRANSACTION_STATUS_QUERIED,
                        TransactionStatusQueried(transaction_id="KZ2"), "KZ2")
    report = await stack.kz.wait_for(MessageType.TRANSACTION_STATUS_REPORTED, "KZ2")
    assert report.payload["status"] == S.CHECKED_NO_DISCREPANCY
    assert report.seq == 1

    after = (await stack.transaction("KZ2"), (await stack.http.get("/units")).json(),
             (await stack.http.get("/parties/KZ/periods/2")).json())
    assert after == before
    assert len(stack.ch.messages(MessageType.PROPOSAL_FORWARDED, "KZ2")) == 1
    assert not stack.kz.messages(MessageType.MESSAGE_ACK, "KZ2")
    journal = (await stack.http.get("/messages", params={"correlation_id": "KZ2"})).json()
    assert [(m["direction"], m["message_type"]) for m in journal] == [
        ("in", "ProposalSubmitted"), ("out", "ProposalForwarded"),
        ("in", "ProposalSubmitted"), ("in", "TransactionStatusQueried"),
        ("out", "TransactionStatusReported")]
