"""Message-level checks (shared/contracts/validity.py) at the boundary of each rule:
version (1001), recipient and sender (1002), the registry a payload speaks for (1002),
and the same message id with other content (1102)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from pydantic import BaseModel

from shared.codes import ITL_CODE, SCHEMA_VERSION, MessageType, ResponseCode, UnitType
from shared.contracts import (
    SUPPORTED_SCHEMA_VERSIONS,
    AccountRef,
    AllowanceTransferAnswered,
    AllowanceTransferSubmitted,
    Envelope,
    MessageAck,
    ProposalForwarded,
    ProposalSubmitted,
    TimeOutDue,
    TransactionStatusNotified,
    TransactionStatusReported,
    UndecodableMessage,
    UnitBlockWire,
    make_envelope,
)
from shared.contracts.validity import (
    MessageRefusal,
    Receiver,
    canonical_form,
    duplicate_refusal,
    message_refusal,
    registry_of_transaction,
    registry_of_transfer,
)

KNOWN = ("KZ", "JP", "CDM")
ITL = Receiver.itl(KNOWN)
KZ = Receiver.registry("KZ")
SENT_AT = datetime(2013, 3, 1, 12, 30, tzinfo=UTC)

KZ_PARTY = AccountRef(registry="KZ", account_type=100, account_id=1)
KZ_PERSON = AccountRef(registry="KZ", account_type=121, account_id=1001)
JP_PERSON = AccountRef(registry="JP", account_type=121, account_id=2001)
CDM_PENDING = AccountRef(registry="CDM", account_type=110, account_id=1)


def aau(start: int = 1, end: int = 100, origin: str = "KZ") -> UnitBlockWire:
    return UnitBlockWire(serial_start=start, serial_end=end, originating_registry=origin,
                         unit_type=UnitType.AAU, original_commitment_period=2,
                         applicable_commitment_period=2)


def proposal(tx: str, acquiring: AccountRef, transferring: AccountRef | None = None,
             transaction_type: int | None = None) -> ProposalSubmitted:
    if transaction_type is None:
        external = transferring is not None and transferring.registry != acquiring.registry
        transaction_type = 1 if transferring is None else 3 if external else 10
    return ProposalSubmitted(transaction_id=tx, transaction_type=transaction_type,
                             transferring=transferring, acquiring=acquiring, blocks=[aau()])


def envelope(payload: BaseModel, message_type: MessageType, sender: str = "KZ",
             recipient: str = ITL_CODE, version: str = SCHEMA_VERSION,
             correlation_id: str = "KZ1", message_id: str = "m1") -> Envelope:
    made = make_envelope(message_type=message_type, sender=sender, recipient=recipient,
                         correlation_id=correlation_id, payload=payload, sent_at=SENT_AT,
                         message_id=message_id)
    return made.model_copy(update={"schema_version": version})


def submitted(payload: ProposalSubmitted, sender: str = "KZ", **fields: Any) -> Envelope:
    return envelope(payload, MessageType.PROPOSAL_SUBMITTED, sender=sender,
                    correlation_id=payload.transaction_id, **fields)


def from_itl(payload: BaseModel, message_type: MessageType, recipient: str = "KZ",
             **fields: Any) -> Envelope:
    return envelope(payload, message_type, sender=ITL_CODE, recipient=recipient, **fields)


def status(tx: str = "KZ1") -> TransactionStatusNotified:
    return TransactionStatusNotified(transaction_id=tx, status=8)


def refused(env: Envelope, receiver: Receiver) -> MessageRefusal:
    refusal = message_refusal(env, receiver)
    assert refusal is not None, "expected a refusal"
    return refusal


# version (1001)


@pytest.mark.parametrize("version", sorted(SUPPORTED_SCHEMA_VERSIONS))
def test_every_supported_version_is_accepted_by_the_itl_and_a_registry(version: str) -> None:
    assert message_refusal(submitted(proposal("KZ1", KZ_PARTY), version=version), ITL) is None
    assert message_refusal(from_itl(status(), MessageType.TRANSACTION_STATUS_NOTIFIED,
                                    version=version), KZ) is None


def test_each_version_a_receiver_reads_is_accepted_when_it_reads_several() -> None:
    both = Receiver("KZ", frozenset({ITL_CODE}), frozenset({"des-1.1/3", "des-1.2/1"}))
    for version in ("des-1.1/3", "des-1.2/1"):
        env = from_itl(status(), MessageType.TRANSACTION_STATUS_NOTIFIED, version=version)
        assert message_refusal(env, both) is None


@pytest.mark.parametrize("version", [
    "des-1.1/2",  # the previous payload revision
    "des-1.1/4",  # the next one
    "des-2.0/3",
    "DES-1.1/3",  # versions are compared exactly: case
    " des-1.1/3",  # and spaces
    "des-1.1/3 ",
    "",
])
def test_an_unknown_version_is_refused_with_1001_naming_it(version: str) -> None:
    for env, receiver in (
        (submitted(proposal("KZ1", KZ_PARTY), version=version), ITL),
        (from_itl(status(), MessageType.TRANSACTION_STATUS_NOTIFIED, version=version), KZ),
        (from_itl(ProposalForwarded.model_validate(
            proposal("JP1", KZ_PERSON, JP_PERSON).model_dump()),
            MessageType.PROPOSAL_FORWARDED, version=version), KZ),
    ):
        refusal = refused(env, receiver)
        assert refusal.code == ResponseCode.UNSUPPORTED_VERSION
        assert repr(version) in refusal.reason
        assert SCHEMA_VERSION in refusal.reason  # and what would be read


def test_the_version_is_checked_first_even_before_a_payload_of_another_shape() -> None:
    # A payload of another version need not read as ours: it is never decoded.
    env = submitted(proposal("KZ1", KZ_PARTY), version="des-2.0/1").model_copy(
        update={"payload": {"something": "else"}, "sender": "DE"})
    assert refused(env, ITL).code == ResponseCode.UNSUPPORTED_VERSION


# recipient (1002)


def test_a_message_for_another_recipient_is_refused_with_1002_naming_both() -> None:
    refusal = refused(from_itl(status(), MessageType.TRANSACTION_STATUS_NOTIFIED,
                               recipient="JP"), KZ)
    assert refusal.code == ResponseCode.SENDER_MISMATCH
    assert "recipient JP" in refusal.reason and "(KZ)" in refusal.reason
    refusal = refused(submitted(proposal("KZ1", KZ_PARTY), recipient="KZ"), ITL)
    assert refusal.code == ResponseCode.SENDER_MISMATCH


# sender (1002)


def test_a_registry_accepts_the_itl() -> None:
    assert Receiver.registry("CDM").senders == {ITL_CODE}
    assert message_refusal(from_itl(status(), MessageType.TRANSACTION_STATUS_NOTIFIED), KZ) \
        is None


@pytest.mark.parametrize("sender", ["JP", "CDM", "KZ", "DE"])
def test_a_registry_refuses_every_sender_but_the_itl_with_1002(sender: str) -> None:
    env = envelope(status(), MessageType.TRANSACTION_STATUS_NOTIFIED, sender=sender,
                   recipient="KZ")
    refusal = refused(env, KZ)
    assert refusal.code == ResponseCode.SENDER_MISMATCH
    assert f"sender {sender}" in refusal.reason
    assert "only from the ITL" in refusal.reason


@pytest.mark.parametrize("sender", KNOWN)
def test_the_itl_accepts_each_registry_it_knows(sender: str) -> None:
    env = envelope(status(), MessageType.TRANSACTION_STATUS_NOTIFIED, sender=sender)
    assert message_refusal(env, ITL) is None


@pytest.mark.parametrize("sender", ["DE", "FR", ITL_CODE])
def test_the_itl_refuses_an_unknown_registry_and_itself_with_1002(sender: str) -> None:
    env = envelope(status(), MessageType.TRANSACTION_STATUS_NOTIFIED, sender=sender)
    refusal = refused(env, ITL)
    assert refusal.code == ResponseCode.SENDER_MISMATCH
    assert f"sender {sender} is not accepted by ITL" in refusal.reason
    assert "CDM, JP, KZ" in refusal.reason


def test_the_itl_never_counts_itself_among_its_registries() -> None:
    assert Receiver.itl(["KZ", ITL_CODE]).senders == {"KZ"}


# the registry a payload speaks for (1002)


def test_a_transfer_from_the_senders_own_account_under_its_own_id_is_accepted() -> None:
    for payload in (proposal("KZ1", KZ_PERSON, KZ_PARTY), proposal("KZ2", JP_PERSON, KZ_PARTY)):
        assert message_refusal(submitted(payload), ITL) is None


def test_a_transfer_proposed_by_another_registry_than_the_transferring_one_gets_1002() -> None:
    # JP proposes, under its own id, that KZ's units go to JP
    refusal = refused(submitted(proposal("JP1", JP_PERSON, KZ_PARTY), sender="JP"), ITL)
    assert refusal.code == ResponseCode.SENDER_MISMATCH
    assert refusal.reason == ("sender JP is not KZ, the proposing registry of JP1 "
                              "(its transferring account's)")


def test_a_transaction_id_of_another_registry_is_refused_with_1002() -> None:
    refusal = refused(submitted(proposal("JP7", KZ_PERSON, KZ_PARTY)), ITL)
    assert refusal.code == ResponseCode.SENDER_MISMATCH
    assert refusal.reason == "sender KZ is not JP, the registry transaction id JP7 belongs to"


def test_an_issuance_is_proposed_by_its_acquiring_registry() -> None:
    assert message_refusal(submitted(proposal("KZ1", KZ_PARTY)), ITL) is None
    cdm = submitted(proposal("CDM5", CDM_PENDING), sender="CDM")
    assert message_refusal(cdm, ITL) is None
    refusal = refused(submitted(proposal("KZ1", CDM_PENDING)), ITL)
    assert refusal.code == ResponseCode.SENDER_MISMATCH
    assert "the proposing registry of issuance KZ1 (its acquiring account's)" in refusal.reason


def test_the_acquiring_registry_may_not_propose_the_transfer_it_receives() -> None:
    refusal = refused(submitted(proposal("KZ3", JP_PERSON, KZ_PARTY), sender="JP"), ITL)
    assert refusal.code == ResponseCode.SENDER_MISMATCH
    assert refusal.reason.startswith("sender JP is not KZ, the proposing registry of KZ3")


def test_either_party_may_send_a_status_the_handler_checks_who_takes_part() -> None:
    # JP answers KZ's external transfer: the payload names no speaker
    env = envelope(status("KZ3"), MessageType.TRANSACTION_STATUS_NOTIFIED, sender="JP",
                   correlation_id="KZ3")
    assert message_refusal(env, ITL) is None


def allowance(transfer_id: str = "DEESD1", transferring: str = "DE"
              ) -> AllowanceTransferSubmitted:
    return AllowanceTransferSubmitted(transfer_id=transfer_id, year=2015, quantity=10,
                                      transferring_state=transferring, acquiring_state="FR")


EU_ITL = Receiver.itl(["DE", "FR", "KZ"])


def test_an_allowance_transfer_by_its_transferring_state_under_its_id_is_accepted() -> None:
    env = envelope(allowance(), MessageType.ALLOWANCE_TRANSFER_SUBMITTED, sender="DE",
                   correlation_id="DEESD1")
    assert message_refusal(env, EU_ITL) is None


def test_an_allowance_transfer_of_another_state_is_refused_with_1002() -> None:
    env = envelope(allowance(transferring="FR"), MessageType.ALLOWANCE_TRANSFER_SUBMITTED,
                   sender="DE", correlation_id="DEESD1")
    refusal = refused(env, EU_ITL)
    assert refusal.code == ResponseCode.SENDER_MISMATCH
    assert refusal.reason == "sender DE is not FR, the transferring state of allowance " \
                             "transfer DEESD1"


def test_an_allowance_transfer_id_of_another_state_is_refused_with_1002() -> None:
    env = envelope(allowance(transfer_id="FRESD1"), MessageType.ALLOWANCE_TRANSFER_SUBMITTED,
                   sender="DE", correlation_id="FRESD1")
    refusal = refused(env, EU_ITL)
    assert refusal.code == ResponseCode.SENDER_MISMATCH
    assert "FR, the state allowance transfer id FRESD1 belongs to" in refusal.reason


def test_the_answer_to_an_allowance_transfer_names_no_speaker() -> None:
    answer = AllowanceTransferAnswered(transfer_id="DEESD1", accepted=True)
    env = envelope(answer, MessageType.ALLOWANCE_TRANSFER_ANSWERED, sender="FR",
                   correlation_id="DEESD1")
    assert message_refusal(env, EU_ITL) is None


@pytest.mark.parametrize(("correlation_id", "refused"), [("KZ1", False), ("KZ10", True),
                                                         ("CH1", True)])
def test_the_correlation_id_is_the_business_key_of_the_payload(
    correlation_id: str, refused: bool
) -> None:
    env = submitted(proposal("KZ1", KZ_PARTY)).model_copy(
        update={"correlation_id": correlation_id})
    refusal = message_refusal(env, ITL)
    if not refused:
        assert refusal is None
        return
    assert refusal is not None and refusal.code == ResponseCode.MALFORMED_PAYLOAD
    assert f"correlation id {correlation_id} is not the business key KZ1" in refusal.reason


def test_a_payload_that_must_name_its_speaker_but_does_not_read_is_undecodable() -> None:
    env = submitted(proposal("KZ1", KZ_PARTY)).model_copy(update={"payload": {"x": 1}})
    with pytest.raises(UndecodableMessage, match="ProposalSubmitted"):
        message_refusal(env, ITL)


def test_registry_of_an_id_is_its_letters() -> None:
    assert registry_of_transaction("CDM123") == "CDM"
    assert registry_of_transaction("KZ9") == "KZ"
    assert registry_of_transfer("DEESD12") == "DE"


# the same message id with other content (1102)


def stored(env: Envelope) -> dict[str, Any]:
    """What the inbox keeps: the envelope in JSON mode, through a JSON round trip."""
    kept: dict[str, Any] = json.loads(json.dumps(env.model_dump(mode="json")))
    return kept


def received(document: dict[str, Any]) -> Envelope:
    """How the consumer reads a body: from JSON text."""
    return Envelope.model_validate_json(json.dumps(document))


def test_a_redelivery_of_the_same_message_is_not_refused() -> None:
    env = submitted(proposal("KZ1", KZ_PARTY))
    assert duplicate_refusal(stored(env), env) is None
    assert duplicate_refusal(stored(env), received(stored(env))) is None


@pytest.mark.parametrize("sent_at", [
    "2013-03-01T12:30:00Z",
    "2013-03-01T12:30:00+00:00",
    "2013-03-01T12:30:00.000000Z",
    "2013-03-01T18:30:00+06:00",  # the same instant in Astana
    "2013-03-01T12:30:00",  # no offset: the envelope's times are UTC
])
def test_the_same_message_with_its_time_spelled_otherwise_is_not_refused(sent_at: str) -> None:
    env = submitted(proposal("KZ1", KZ_PARTY))
    again = stored(env) | {"sent_at": sent_at}
    assert duplicate_refusal(stored(env), received(again)) is None


def test_the_same_message_with_keys_reordered_and_defaults_left_out_is_not_refused() -> None:
    env = submitted(proposal("KZ1", KZ_PARTY))
    document = stored(env)
    payload = {key: value for key, value in reversed(document["payload"].items())
               if value not in (None, [])}
    again = {key: document[key] for key in reversed(document)} | {"payload": payload}
    assert list(again) != list(document)
    assert duplicate_refusal(stored(env), received(again)) is None


def test_a_date_time_inside_the_payload_is_compared_as_an_instant() -> None:
    report = TransactionStatusReported(transaction_id="KZ1", status=4,
                                       status_at=datetime(2013, 3, 1, 12, tzinfo=UTC))
    env = from_itl(report, MessageType.TRANSACTION_STATUS_REPORTED)
    document = stored(env)
    document["payload"]["status_at"] = "2013-03-01T14:00:00+02:00"
    assert duplicate_refusal(stored(env), received(document)) is None
    document["payload"]["status_at"] = "2013-03-01T14:00:00Z"
    refusal = duplicate_refusal(stored(env), received(document))
    assert refusal is not None
    assert "payload.status_at" in refusal.reason


@pytest.mark.parametrize(("change", "field"), [
    (lambda d: d["payload"]["blocks"][0].update(serial_end=101), "payload.blocks[0].serial_end"),
    (lambda d: d["payload"]["acquiring"].update(account_id=2), "payload.acquiring.account_id"),
    (lambda d: d["payload"].update(transaction_id="KZ2"), "payload.transaction_id"),
    (lambda d: d.update(sent_at="2013-03-01T12:30:00.000001Z"), "sent_at"),
    (lambda d: d.update(seq=1), "seq"),
    (lambda d: d.update(correlation_id="KZ2"), "correlation_id"),
    (lambda d: d.update(causation_id="m0"), "causation_id"),
    # read as a forwarded proposal the payload also gains its deadline (None)
    (lambda d: d.update(message_type="ProposalForwarded"), "message_type, payload.deadline"),
])
def test_the_same_id_with_any_other_value_is_refused_with_1102_naming_the_field(
    change: Any, field: str,
) -> None:
    env = submitted(proposal("KZ1", KZ_PARTY))
    document = stored(env)
    change(document)
    refusal = duplicate_refusal(stored(env), received(document))
    assert refusal is not None
    assert refusal.code == ResponseCode.DUPLICATE_MESSAGE_DIFFERENT_CONTENT
    assert refusal.reason.startswith("message id m1 was received before with different "
                                     "content")
    assert f"differs in {field})" in refusal.reason


def test_true_and_one_are_different_values_when_a_payload_is_compared_as_received() -> None:
    # A payload that does not read as its contract is compared as it came; JSON's true
    # and 1 must not pass for each other there (Python's == would say they are equal).
    env = envelope(MessageAck(acked_message_id="m0", accepted=True),
                   MessageType.MESSAGE_ACK, sender=ITL_CODE, recipient="KZ")
    first = stored(env) | {"payload": {"odd": True}}
    second = stored(env) | {"payload": {"odd": 1}}
    refusal = duplicate_refusal(first, received(second))
    assert refusal is not None
    assert "differs in payload.odd" in refusal.reason
    assert duplicate_refusal(first, received(first)) is None


def test_the_canonical_form_is_one_text_per_message() -> None:
    env = submitted(proposal("KZ1", KZ_PARTY))
    later = env.model_copy(update={"sent_at": SENT_AT.astimezone(timezone(timedelta(hours=6)))})
    assert canonical_form(env) == canonical_form(later)
    assert canonical_form(env) != canonical_form(env.model_copy(update={"seq": 3}))


# a message a service sends to itself (docs/adr/0017)


def time_out_due(sender: str, recipient: str = ITL_CODE) -> Envelope:
    return envelope(TimeOutDue(transaction_id="KZ1", deadline=SENT_AT),
                    MessageType.TIME_OUT_DUE, sender=sender, recipient=recipient)


def test_the_itl_takes_its_own_time_out_due() -> None:
    assert message_refusal(time_out_due(ITL_CODE), ITL) is None


@pytest.mark.parametrize("sender", ["KZ", "JP", "CDM"])
def test_a_time_out_due_from_a_registry_is_refused_with_1002(sender: str) -> None:
    refusal = refused(time_out_due(sender), ITL)
    assert refusal.code == ResponseCode.SENDER_MISMATCH
    assert "only from itself" in refusal.reason


def test_the_itl_takes_no_other_message_from_itself() -> None:
    own = envelope(status(), MessageType.TRANSACTION_STATUS_NOTIFIED, sender=ITL_CODE)
    assert refused(own, ITL).code == ResponseCode.SENDER_MISMATCH


def test_a_registry_takes_no_time_out_due_from_the_itl() -> None:
    assert refused(time_out_due(ITL_CODE, recipient="KZ"), KZ).code \
        == ResponseCode.SENDER_MISMATCH
