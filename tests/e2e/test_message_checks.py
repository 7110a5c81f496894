"""Message-level checks through the real processes (protocol.md 1.2, 3.2 family 1, 7.5):
a message a service does not take (unknown version, wrong sender, a reused message id)
creates no transaction anywhere, is dead-lettered with its code and reason and, at the
ITL, answered with a MessageAck; the books do not change."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import time
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import aio_pika
import pytest
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage
from pydantic import BaseModel

from deploy.local.client import StackClient, poll
from deploy.local.stack import LocalStack, StackDatabases
from shared.codes import SCHEMA_VERSION, AccountType, MessageType, ResponseCode, UnitType
from shared.contracts import (
    AccountRef,
    MessageAck,
    ProposalForwarded,
    ProposalSubmitted,
    TransactionStatusNotified,
    TransactionStatusQueried,
    UnitBlockWire,
    make_envelope,
    new_message_id,
)
from shared.messaging import (
    DEAD_LETTER_EXCHANGE,
    MAIN_EXCHANGE,
    dead_letter_queue_name,
    inbox_queue_name,
)
from shared.messaging.broker import url_user
from shared.messaging.clock import CLOCK_EXCHANGE
from shared.messaging.identities import (
    UserDefinition,
    definitions,
    new_password,
    service_permissions,
)
from shared.messaging.provisioning import Identity, identity_url
from shared.messaging.topology import check_topology, clock_follower_queue_name
from shared.testing.infra import amqp_url, publish_as, purge_queue

pytestmark = pytest.mark.e2e

# the module's stack (tests/e2e/conftest.py): the ITL knows KZ, JP and CDM
REGISTRIES = ("KZ", "JP")

UNKNOWN_VERSION = "des-9.9/1"
ASSIGNED_AMOUNT = 1000
KZ_PARTY = AccountRef(registry="KZ", account_type=AccountType.PARTY_HOLDING, account_id=1)


def aau(start: int, end: int, origin: str = "KZ") -> UnitBlockWire:
    return UnitBlockWire(serial_start=start, serial_end=end, originating_registry=origin,
                         unit_type=UnitType.AAU, original_commitment_period=2,
                         applicable_commitment_period=2)


def envelope(message_type: MessageType, payload: BaseModel, sender: str, recipient: str,
             correlation_id: str, version: str = SCHEMA_VERSION) -> dict[str, Any]:
    """A message as a service would send it, in JSON mode, in ``version``."""
    made = make_envelope(message_type=message_type, sender=sender, recipient=recipient,
                         correlation_id=correlation_id, payload=payload,
                         sent_at=datetime.now(UTC))
    document: dict[str, Any] = made.model_dump(mode="json")
    document["schema_version"] = version
    return document


async def _publish(namespace: str, url: str, user: str | None, routing_key: str,
                   *documents: dict[str, Any]) -> None:
    await publish_as(url, user, namespace, routing_key,
                     *(json.dumps(document).encode() for document in documents))


def identity(stack: LocalStack, code: str) -> Identity:
    assert stack.broker is not None
    return stack.broker.identities[code]


def publish(stack: LocalStack, routing_key: str, *documents: dict[str, Any],
            as_code: str | None = None) -> None:
    """Put messages on the broker as if a service had sent them: with the broker login
    of the service each claims to come from (its ``sender``), or of ``as_code``."""
    for document in documents:
        login = identity(stack, as_code or str(document["sender"]))
        asyncio.run(_publish(stack.namespace, login.url, login.user, routing_key, document))


def _body_message_id(message: AbstractIncomingMessage) -> str | None:
    """The envelope's message id (a forged message carries no AMQP message id)."""
    try:
        return str(json.loads(message.body)["message_id"])
    except (ValueError, KeyError, TypeError):
        return None


async def _dead_letters(namespace: str, code: str, *message_ids: str
                        ) -> dict[str, AbstractIncomingMessage]:
    connection = await aio_pika.connect(amqp_url())
    try:
        channel = await connection.channel()
        queue = await channel.get_queue(dead_letter_queue_name(code, namespace), ensure=False)
        found: dict[str, AbstractIncomingMessage] = {}
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and len(found) < len(message_ids):
            message = await queue.get(fail=False)
            if message is None:
                await asyncio.sleep(0.05)
                continue
            await message.ack()
            if _body_message_id(message) in message_ids:
                found[str(_body_message_id(message))] = message
        if len(found) < len(message_ids):
            missing = sorted(set(message_ids) - set(found))
            raise AssertionError(f"{missing} were not dead-lettered at {code}")
        return found
    finally:
        await connection.close()


def dead_letter_messages(stack: LocalStack, code: str, *message_ids: str
                         ) -> dict[str, AbstractIncomingMessage]:
    """The messages ``message_ids`` from ``code``'s dead-letter queue (taken off it)."""
    return asyncio.run(_dead_letters(stack.namespace, code, *message_ids))


def dead_letter(stack: LocalStack, code: str, message_id: str) -> tuple[int, str]:
    """The response code and reason of ``message_id`` in ``code``'s dead-letter queue."""
    message = dead_letter_messages(stack, code, message_id)[message_id]
    return int(str(message.headers["x-dead-code"])), str(message.headers["x-dead-reason"])


async def _dead_letter_ids(namespace: str, code: str) -> list[str | None]:
    connection = await aio_pika.connect(amqp_url())
    try:
        channel = await connection.channel()
        queue = await channel.get_queue(dead_letter_queue_name(code, namespace), ensure=False)
        ids = []
        while (message := await queue.get(fail=False)) is not None:
            await message.ack()
            ids.append(_body_message_id(message))
        return ids
    finally:
        await connection.close()


def journal(client: StackClient, correlation_id: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = client.ok("itl", "GET", "/messages",
                                           params={"correlation_id": correlation_id})
    return rows


def answered(client: StackClient, correlation_id: str) -> dict[str, Any]:
    """The ITL's journal of a refused message: only its published MessageAck."""
    rows = poll(lambda: journal(client, correlation_id),
                lambda rows: bool(rows) and all(r["published"] for r in rows),
                f"the ITL's answer about {correlation_id}")
    assert [(r["direction"], r["message_type"], r["sender"], r["recipient"])
            for r in rows] == [("out", "MessageAck", "ITL", rows[0]["recipient"])]
    return rows[0]


def log_events(stack: LocalStack, service: str, event: str) -> list[dict[str, Any]]:
    lines = (stack.log_dir / f"{service}.log").read_text().splitlines()
    return [entry for entry in (json.loads(line) for line in lines if line.startswith("{"))
            if entry.get("event") == event]


@pytest.fixture(scope="module")
def kz_aaus(client: StackClient) -> dict[str, Any]:
    """1000 AAUs issued into KZ's Party holding account, at the ITL and in KZ."""
    client.set_assigned_amount("KZ", 2, ASSIGNED_AMOUNT)
    issued = client.issue("kz", "AAU", ASSIGNED_AMOUNT, "MEP-2013-300")
    final = client.settle("kz", issued["transaction_id"])
    assert final["status_name"] == "COMPLETED"
    return {"issuance": final["transaction_id"],
            "alice": client.open_account("kz", "Alice Energy LLP")["account_id"],
            "hiro": client.open_account("jp", "Hiroshima Power KK")["account_id"]}


def hiro(kz_aaus: dict[str, Any]) -> AccountRef:
    """The JP person holding account the module opened."""
    return AccountRef(registry="JP", account_type=AccountType.PERSON_HOLDING,
                      account_id=kz_aaus["hiro"])


def books(client: StackClient) -> tuple[Any, ...]:
    """What KZ and JP hold by their own books and by the ITL's register."""
    return (client.registry_totals("kz"), client.registry_totals("jp"),
            client.itl_totals("KZ"), client.itl_totals("JP"))


def test_version_check_at_a_registry_a_forwarded_proposal_in_an_unknown_version_is_dead_lettered(
    stack: LocalStack, client: StackClient, kz_aaus: dict[str, Any],
) -> None:
    before = books(client)
    alice = AccountRef(registry="KZ", account_type=AccountType.PERSON_HOLDING,
                       account_id=kz_aaus["alice"])
    jp_person = hiro(kz_aaus)
    forwarded = ProposalForwarded(transaction_id="JP900001", transaction_type=3,
                                  transferring=jp_person, acquiring=alice,
                                  blocks=[aau(1, 50, "JP")])
    message = envelope(MessageType.PROPOSAL_FORWARDED, forwarded, "ITL", "KZ", "JP900001",
                       UNKNOWN_VERSION)
    publish(stack, "KZ", message)

    code, reason = dead_letter(stack, "KZ", message["message_id"])
    assert code == ResponseCode.UNSUPPORTED_VERSION
    assert reason == (f"schema version '{UNKNOWN_VERSION}' is not supported by KZ "
                      f"(supported: {SCHEMA_VERSION})")
    missing = client.call("kz", "GET", "/transactions/JP900001")
    assert missing.status_code == 404
    assert client.units_held("kz", kz_aaus["alice"]) == 0
    assert books(client) == before
    refusals = log_events(stack, "kz", "message_refused")
    assert [(e["message_id"], e["response_code"], e["answered"]) for e in refusals] == [
        (message["message_id"], 1001, False)]

    # The same proposal in the version KZ reads is taken: the version alone was refused.
    supported = {**message, "message_id": new_message_id(), "schema_version": SCHEMA_VERSION}
    publish(stack, "KZ", supported)
    taken = poll(lambda: client.call("kz", "GET", "/transactions/JP900001"),
                 lambda r: r.status_code == 200, "KZ to take the proposal")
    assert taken.json()["status_name"] == "ACCEPTED"


def test_a_proposal_in_an_unknown_version_creates_no_itl_transaction_and_is_answered_1001(
    stack: LocalStack, client: StackClient, kz_aaus: dict[str, Any],
) -> None:
    before = books(client)
    issuance = ProposalSubmitted(transaction_id="KZ900001", transaction_type=1,
                                 acquiring=KZ_PARTY, blocks=[aau(5001, 5100)])
    message = envelope(MessageType.PROPOSAL_SUBMITTED, issuance, "KZ", "ITL", "KZ900001",
                       UNKNOWN_VERSION)
    publish(stack, "ITL", message)

    code, reason = dead_letter(stack, "ITL", message["message_id"])
    assert code == ResponseCode.UNSUPPORTED_VERSION
    assert f"'{UNKNOWN_VERSION}' is not supported by ITL" in reason
    assert client.call("itl", "GET", "/transactions/KZ900001").status_code == 404
    ack = answered(client, "KZ900001")
    assert ack["recipient"] == "KZ"
    assert ack["envelope"]["causation_id"] == message["message_id"]
    assert ack["envelope"]["payload"] == {
        "acked_message_id": message["message_id"], "accepted": False,
        "response_codes": [1001], "reason": reason}
    # KZ received the answer
    poll(lambda: [e for e in log_events(stack, "kz", "message_acknowledged")
                  if e["acked_message_id"] == message["message_id"]],
         lambda found: len(found) == 1, "KZ to read the MessageAck")
    assert books(client) == before


def test_a_proposal_sent_by_another_registry_than_the_proposing_one_is_refused_with_1002(
    stack: LocalStack, client: StackClient, kz_aaus: dict[str, Any],
) -> None:
    before = books(client)
    jp_person = hiro(kz_aaus)
    # JP proposes, under an id of its own, that KZ's AAUs come to JP
    forged = ProposalSubmitted(transaction_id="JP900002", transaction_type=3,
                               transferring=KZ_PARTY, acquiring=jp_person,
                               blocks=[aau(1, 100)])
    message = envelope(MessageType.PROPOSAL_SUBMITTED, forged, "JP", "ITL", "JP900002")
    publish(stack, "ITL", message)

    code, reason = dead_letter(stack, "ITL", message["message_id"])
    assert code == ResponseCode.SENDER_MISMATCH
    assert reason == "sender JP is not KZ, the proposing registry of JP900002 (its " \
                     "transferring account's)"
    assert client.call("itl", "GET", "/transactions/JP900002").status_code == 404
    assert client.call("jp", "GET", "/transactions/JP900002").status_code == 404
    ack = answered(client, "JP900002")
    assert ack["recipient"] == "JP"
    assert ack["envelope"]["payload"]["response_codes"] == [1002]
    units = client.ok("itl", "GET", "/units", params={"registry": "KZ"})
    assert {u["reserved_by"] for u in units} == {None}
    assert books(client) == before


@contextlib.contextmanager
def stranger_login(stack: LocalStack, code: str) -> Iterator[Identity]:
    """A broker user for ``code``, a registry the stack's ITL does not know, with the
    permissions a registry of the namespace would have; deleted afterwards."""
    assert stack.broker is not None
    user, password = f"{stack.namespace}{code}", new_password()
    permissions = service_permissions(code, stack.namespace, stack.broker.topology.codes)
    asyncio.run(stack.admin.import_definitions(definitions(
        None, [UserDefinition(user, password, permissions)])))
    try:
        yield Identity(code, user, password, identity_url(amqp_url(), user, password))
    finally:
        asyncio.run(stack.admin.delete_users([user]))


def test_a_message_from_a_registry_the_itl_does_not_know_is_only_dead_lettered(
    stack: LocalStack, client: StackClient,
) -> None:
    stranger = AccountRef(registry="DE", account_type=AccountType.PARTY_HOLDING, account_id=1)
    issuance = ProposalSubmitted(transaction_id="DE900001", transaction_type=1,
                                 acquiring=stranger, blocks=[aau(1, 10, "DE")])
    message = envelope(MessageType.PROPOSAL_SUBMITTED, issuance, "DE", "ITL", "DE900001")
    with stranger_login(stack, "DE") as de:
        asyncio.run(_publish(stack.namespace, de.url, de.user, "ITL", message))

    code, reason = dead_letter(stack, "ITL", message["message_id"])
    assert code == ResponseCode.SENDER_MISMATCH
    assert reason == "sender DE is not accepted by ITL: it takes messages only from CDM, JP, KZ"
    assert client.call("itl", "GET", "/transactions/DE900001").status_code == 404
    assert journal(client, "DE900001") == []


def test_the_same_message_id_resent_with_other_content_is_refused_with_1102_and_changes_nothing(
    stack: LocalStack, client: StackClient, kz_aaus: dict[str, Any],
) -> None:
    tx = kz_aaus["issuance"]
    before = books(client)
    history = client.itl_transaction(tx)["history"]
    rows = journal(client, tx)
    (original,) = [r["envelope"] for r in rows if r["message_type"] == "ProposalSubmitted"]

    # KZ's own proposal, its message id reused for twice the units
    reused = copy.deepcopy(original)
    reused["payload"]["blocks"][0]["serial_end"] *= 2
    publish(stack, "ITL", reused)

    code, reason = dead_letter(stack, "ITL", original["message_id"])
    assert code == ResponseCode.DUPLICATE_MESSAGE_DIFFERENT_CONTENT
    assert reason == (f"message id {original['message_id']} was received before with "
                      f"different content (differs in payload.blocks[0].serial_end)")
    answer = poll(lambda: journal(client, tx), lambda now: len(now) == len(rows) + 1,
                  "the ITL's answer")[-1]
    assert (answer["direction"], answer["message_type"], answer["recipient"]) == (
        "out", "MessageAck", "KZ")
    assert answer["envelope"]["payload"]["response_codes"] == [1102]
    alerts = log_events(stack, "itl", "duplicate_message_id_different_content")
    assert [(a["level"], a["alert"], a["message_id"], a["sender"]) for a in alerts] == [
        ("error", True, original["message_id"], "KZ")]

    # The original delivered again, spelled otherwise, is the same message: no effect.
    again = {key: original[key] for key in reversed(original)}
    astana = timezone(timedelta(hours=6))
    again["sent_at"] = datetime.fromisoformat(original["sent_at"]).astimezone(astana).isoformat()
    assert again["sent_at"] != original["sent_at"]
    publish(stack, "ITL", again)
    # handled in order: the answer to a later query shows the redelivery was handled
    query = envelope(MessageType.TRANSACTION_STATUS_QUERIED,
                     TransactionStatusQueried(transaction_id=tx), "KZ", "ITL", tx)
    publish(stack, "ITL", query)
    now = poll(lambda: journal(client, tx), lambda now: len(now) == len(rows) + 3,
               "the ITL's report")
    assert [(r["direction"], r["message_type"]) for r in now[len(rows) + 1:]] == [
        ("in", "TransactionStatusQueried"), ("out", "TransactionStatusReported")]
    assert asyncio.run(_dead_letter_ids(stack.namespace, "ITL")) == []
    assert len(log_events(stack, "itl", "duplicate_message_id_different_content")) == 1

    assert client.itl_transaction(tx)["history"] == history
    assert books(client) == before


# a registry's proposal refused as a message: the ITL's MessageAck ends it at the registry


def test_a_proposal_the_itl_refuses_as_a_message_is_terminated_at_the_registry_once(
    stack: LocalStack, client: StackClient, kz_aaus: dict[str, Any],
) -> None:
    """The ITL answers a proposal it refuses as a whole with MessageAck(accepted=false)
    and records nothing (ADR 10); the registry then ends the transaction with the
    refusal's codes and reason and releases its units, once. The ITL is played here: it
    is stopped, its queue emptied of the proposal, and its answer published as it would
    publish it."""
    before = books(client)
    mongo = StackDatabases(stack)
    try:
        stack.kill("itl")
        try:
            response = client.transfer("kz", 1, kz_aaus["alice"], "AAU", 40)
            assert response.status_code == 202, response.text
            tx = response.json()["transaction_id"]
            sent = poll(lambda: mongo["registry_kz"].outbox.find_one(
                {"correlation_id": tx, "message_type": "ProposalSubmitted"}),
                lambda row: bool(row and row["published"]), "the proposal published")
            assert sent is not None
            assert asyncio.run(purge_queue(inbox_queue_name("ITL", stack.namespace))) >= 1
            assert client.holdings("kz", 1)["reserved"] == 40
            reason = f"transaction id {tx} was used before with other content"
            refusal = MessageAck(acked_message_id=sent["_id"], accepted=False,
                                 response_codes=[ResponseCode.SENDER_MISMATCH], reason=reason)
            ack = envelope(MessageType.MESSAGE_ACK, refusal, "ITL", "KZ", tx)
            publish(stack, "KZ", ack)
            ended = client.wait_final("kz", tx)
        finally:
            stack.restart("itl")
        assert [h["status"] for h in ended["history"]] == [1, 5]
        assert ended["evaluation_results"] == [
            {"response_code": 1002, "message": reason, "serial_start": None,
             "originating_registry": None}]
        assert client.holdings("kz", 1)["reserved"] == 0
        assert books(client) == before
        assert client.call("itl", "GET", f"/transactions/{tx}").status_code == 404

        # the same answer again, and another refusal of the same message: no second effect
        again = MessageAck(acked_message_id=sent["_id"], accepted=False,
                           response_codes=[ResponseCode.UNSUPPORTED_VERSION], reason="again")
        publish(stack, "KZ", ack, envelope(MessageType.MESSAGE_ACK, again, "ITL", "KZ", tx))
        poll(lambda: [e for e in log_events(stack, "kz", "message_acknowledged")
                      if e["acked_message_id"] == sent["_id"]],
             lambda found: len(found) == 2, "KZ to read the second refusal")
        assert client.transaction("kz", tx) == ended
        assert books(client) == before
    finally:
        mongo.close()


# broker identities: who published a message is the broker's word, not the envelope's
# (docs/adr/0016)


def test_a_message_published_with_kz_credentials_claiming_to_come_from_jp_is_dead_lettered(
    stack: LocalStack, client: StackClient, kz_aaus: dict[str, Any],
) -> None:
    before = books(client)
    jp_party = AccountRef(registry="JP", account_type=AccountType.PARTY_HOLDING, account_id=1)
    issuance = ProposalSubmitted(transaction_id="JP900010", transaction_type=1,
                                 acquiring=jp_party, blocks=[aau(1, 1000, "JP")])
    message = envelope(MessageType.PROPOSAL_SUBMITTED, issuance, "JP", "ITL", "JP900010")
    publish(stack, "ITL", message, as_code="KZ")

    dead = dead_letter_messages(stack, "ITL", message["message_id"])[message["message_id"]]
    ns = stack.namespace
    assert dead.headers["x-dead-code"] == ResponseCode.SENDER_MISMATCH
    assert dead.headers["x-dead-reason"] == (
        f"sender JP is not the publisher: the message was published by user {ns}KZ, "
        f"JP publishes as {ns}JP")
    assert dead.headers["x-published-by"] == f"{ns}KZ"
    # nothing recorded, nobody answered: JP did not send it, KZ did not claim it
    assert client.call("itl", "GET", "/transactions/JP900010").status_code == 404
    assert journal(client, "JP900010") == []
    alerts = log_events(stack, "itl", "message_publisher_refused")
    assert [(a["level"], a["alert"], a["sender"], a["user_id"], a["response_code"])
            for a in alerts if a["message_id"] == message["message_id"]] == [
        ("error", True, "JP", f"{ns}KZ", 1002)]
    assert books(client) == before


def test_the_broker_login_alone_no_longer_moves_kz_units_to_jp(
    stack: LocalStack, client: StackClient, kz_aaus: dict[str, Any],
) -> None:
    """Issue 9's attack: with the broker's administrator login, a proposal of KZ's block to
    a JP account in KZ's name, then its completion. Both are refused before anything is
    recorded; KZ, JP and the ITL's register keep what they had."""
    before = books(client)
    jp_person = hiro(kz_aaus)
    proposal = ProposalSubmitted(transaction_id="KZ900020", transaction_type=3,
                                 transferring=KZ_PARTY, acquiring=jp_person,
                                 blocks=[aau(1, 1000)])
    first = envelope(MessageType.PROPOSAL_SUBMITTED, proposal, "KZ", "ITL", "KZ900020")
    completion = envelope(MessageType.TRANSACTION_STATUS_NOTIFIED,
                          TransactionStatusNotified(transaction_id="KZ900020", status=4),
                          "KZ", "ITL", "KZ900020")
    asyncio.run(_publish(stack.namespace, amqp_url(), None, "ITL", first, completion))
    asyncio.run(_publish(stack.namespace, amqp_url(), url_user(amqp_url()), "ITL",
                         {**first, "message_id": new_message_id()}))

    dead = dead_letter_messages(stack, "ITL", first["message_id"], completion["message_id"])
    reasons = {str(m.headers["x-dead-reason"]) for m in dead.values()}
    assert reasons == {f"sender KZ is not the publisher: the message was published by a "
                       f"publisher that did not set user_id, KZ publishes as "
                       f"{stack.namespace}KZ"}
    assert {m.headers["x-dead-code"] for m in dead.values()} == {1002}
    for service in ("itl", "kz", "jp"):
        assert client.call(service, "GET", "/transactions/KZ900020").status_code == 404
    assert client.units_held("jp", kz_aaus["hiro"]) == 0
    assert books(client) == before


async def _refusal(url: str, operation: Callable[[AbstractChannel], Awaitable[object]]
                   ) -> str:
    """What the broker answers a login's ``operation`` with: the text of the channel
    error (the test fails when the operation is allowed)."""
    connection = await aio_pika.connect(url)
    try:
        channel = await connection.channel()
        with pytest.raises(aio_pika.exceptions.ChannelClosed) as refused:
            await operation(channel)
        return str(refused.value)
    finally:
        await connection.close()


def test_kz_credentials_read_no_other_queue_forge_no_user_id_and_leave_the_topology_alone(
    stack: LocalStack, client: StackClient, kz_aaus: dict[str, Any],
) -> None:
    ns = stack.namespace
    kz = identity(stack, "KZ")

    def message(user_id: str) -> aio_pika.Message:
        return aio_pika.Message(body=b"{}", user_id=user_id)

    async def publish_to(channel: AbstractChannel, exchange: str, key: str,
                         user_id: str = kz.user) -> object:
        target = await channel.get_exchange(f"{ns}{exchange}")
        return await target.publish(message(user_id), routing_key=key)

    def delete(exchange: str) -> Callable[[AbstractChannel], Awaitable[object]]:
        async def operation(channel: AbstractChannel) -> object:
            return await channel.exchange_delete(exchange)
        return operation

    def redeclare(exchange: str) -> Callable[[AbstractChannel], Awaitable[object]]:
        async def operation(channel: AbstractChannel) -> object:
            return await channel.declare_exchange(exchange, aio_pika.ExchangeType.FANOUT,
                                                  durable=True)
        return operation

    def get(queue: str) -> Callable[[AbstractChannel], Awaitable[object]]:
        async def operation(channel: AbstractChannel) -> object:
            return await (await channel.get_queue(queue)).get(fail=False)
        return operation

    async def check() -> dict[str, str]:
        answers = {}
        for name in (inbox_queue_name("ITL", ns), inbox_queue_name("JP", ns),
                     dead_letter_queue_name("JP", ns), dead_letter_queue_name("KZ", ns)):
            answers[f"get {name}"] = await _refusal(kz.url, get(name))

        async def ignore(message: AbstractIncomingMessage) -> None:
            raise AssertionError(f"KZ received a message of JP's: {message.body!r}")

        async def consume(channel: AbstractChannel) -> object:
            queue = await channel.get_queue(inbox_queue_name("JP", ns))
            return await queue.consume(ignore)

        async def purge(channel: AbstractChannel) -> object:
            return await (await channel.get_queue(inbox_queue_name("JP", ns))).purge()

        async def snoop(channel: AbstractChannel) -> object:
            return await channel.declare_queue(f"{ns}snoop", exclusive=True)

        async def bind_own_queue(channel: AbstractChannel) -> object:
            queue = await channel.declare_queue(clock_follower_queue_name("KZ", ns),
                                                exclusive=True)
            return await queue.bind(f"{ns}{MAIN_EXCHANGE}", routing_key="JP")

        answers["consume JP"] = await _refusal(kz.url, consume)
        answers["purge JP"] = await _refusal(kz.url, purge)
        answers["declare a queue"] = await _refusal(kz.url, snoop)
        answers["bind to des.msg"] = await _refusal(kz.url, bind_own_queue)
        answers["user_id JP"] = await _refusal(kz.url, lambda c: publish_to(
            c, MAIN_EXCHANGE, "ITL", f"{ns}JP"))
        answers["to JP"] = await _refusal(kz.url, lambda c: publish_to(c, MAIN_EXCHANGE, "JP"))
        answers["dead-letter as JP"] = await _refusal(
            kz.url, lambda c: publish_to(c, DEAD_LETTER_EXCHANGE, "JP"))
        for exchange in (f"{ns}{MAIN_EXCHANGE}", f"{ns}{DEAD_LETTER_EXCHANGE}",
                         f"{ns}{CLOCK_EXCHANGE}"):
            answers[f"delete {exchange}"] = await _refusal(kz.url, delete(exchange))
            answers[f"redeclare {exchange}"] = await _refusal(kz.url, redeclare(exchange))
        answers["delete JP's inbox"] = await _refusal(
            kz.url, lambda c: c.queue_delete(inbox_queue_name("JP", ns)))
        return answers

    answers = asyncio.run(check())
    assert answers.pop("user_id JP").startswith("PRECONDITION_FAILED")
    assert {name: text.split(" - ")[0] for name, text in answers.items()} == {
        name: "ACCESS_REFUSED" for name in answers}
    assert f"user '{ns}KZ'" in answers[f"get {inbox_queue_name('JP', ns)}"]
    assert "access to topic 'JP'" in answers["to JP"]

    # the topology is whole and the services still talk
    async def topology_intact() -> None:
        assert stack.broker is not None
        connection = await aio_pika.connect(amqp_url())
        try:
            await check_topology(await connection.channel(), stack.broker.topology)
        finally:
            await connection.close()

    asyncio.run(topology_intact())
    response = client.transfer("kz", 1, kz_aaus["alice"], "AAU", 1)
    assert client.settle("kz", response.json()["transaction_id"])["status_name"] == "COMPLETED"
