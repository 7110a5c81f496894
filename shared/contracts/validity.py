"""Message-level checks: whether a receiving service takes a message at all.

They run in every service's consumer before anything about the message is recorded
(protocol.md 1.2, 3.2 family 1 "version and authentication" and family 2 "duplicate
message", 7.5). A message refused here creates no transaction, no inbox row, nothing;
its dead letter (and, at the ITL, its ``MessageAck``) names the code and the reason.

Pure: no I/O, no clock. The consumer wiring is in ``shared.service.Runtime``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic_core import to_jsonable_python

from shared.codes import ITL_CODE, MessageType, ResponseCode
from shared.contracts import (
    SUPPORTED_SCHEMA_VERSIONS,
    AllowanceTransferSubmitted,
    Envelope,
    ProposalSubmitted,
    UndecodableMessage,
    decode_payload,
)

#: Messages a service sends to itself through its own inbox: taken only from itself.
SELF_ADDRESSED_TYPES = frozenset({MessageType.TIME_OUT_DUE})
#: Messages whose payload names the registry that speaks: only it may send them.
SPEAKER_NAMING_TYPES = frozenset({
    MessageType.PROPOSAL_SUBMITTED,
    MessageType.ALLOWANCE_TRANSFER_SUBMITTED,
})


@dataclass(frozen=True)
class Receiver:
    """A receiving service instance: its code, the senders it takes messages from and
    the schema versions it reads."""

    code: str
    senders: frozenset[str]
    schema_versions: frozenset[str] = field(default=SUPPORTED_SCHEMA_VERSIONS)

    @classmethod
    def registry(cls, code: str) -> Receiver:
        """A national registry or the CDM registry: it takes messages only from the ITL
        (protocol.md 1.2, registries never talk to each other)."""
        return cls(code, frozenset({ITL_CODE}))

    @classmethod
    def itl(cls, registries: Iterable[str]) -> Receiver:
        """The ITL: it takes messages only from the registries it knows (``REGISTRIES``)."""
        return cls(ITL_CODE, frozenset(registries) - {ITL_CODE})


@dataclass(frozen=True)
class MessageRefusal:
    """Why a message is refused as a whole: its response code and a specific reason."""

    code: ResponseCode
    reason: str


def message_refusal(envelope: Envelope, receiver: Receiver) -> MessageRefusal | None:
    """Whether ``receiver`` takes ``envelope`` at message level; None when it does.

    Checked in this order, the first failure wins (protocol.md 1.2, 3.2 family 1):

    1. the schema version is one the receiver reads, else 1001 UNSUPPORTED_VERSION
       (first, because a payload of another version may not even read as ours);
    2. the recipient is the receiver, else 1002 SENDER_MISMATCH (the header names
       parties that do not match: DES ``to``);
    3. the sender is one the receiver takes messages from, else 1002 (DES ``from``):
       registries take only the ITL, the ITL only the registries it knows; a
       self-addressed message (``SELF_ADDRESSED_TYPES``) only the receiver itself;
    4. for a payload that names the registry speaking, the sender is that registry,
       else 1002: a ``ProposalSubmitted``'s proposing registry (the transferring
       account's registry, or the acquiring one for an issuance) and the registry its
       transaction id starts with; an ``AllowanceTransferSubmitted``'s transferring
       state and the state its transfer id starts with;
    5. the correlation id is the payload's business key (``correlation_of``), else 1101
       MALFORMED_PAYLOAD: a journal filed under another key would hide the message.

    Raises ``UndecodableMessage`` when step 4 needs a payload that does not read as its
    contract (the consumer dead-letters it, as any undecodable message).
    """
    if envelope.schema_version not in receiver.schema_versions:
        return MessageRefusal(
            ResponseCode.UNSUPPORTED_VERSION,
            f"schema version {envelope.schema_version!r} is not supported by "
            f"{receiver.code} (supported: {', '.join(sorted(receiver.schema_versions))})",
        )
    if envelope.recipient != receiver.code:
        return MessageRefusal(
            ResponseCode.SENDER_MISMATCH,
            f"recipient {envelope.recipient} is not this instance ({receiver.code})",
        )
    if envelope.message_type in SELF_ADDRESSED_TYPES:
        if envelope.sender != receiver.code:
            return MessageRefusal(
                ResponseCode.SENDER_MISMATCH,
                f"sender {envelope.sender}: {receiver.code} takes "
                f"{envelope.message_type.value} only from itself")
    elif envelope.sender not in receiver.senders:
        return MessageRefusal(ResponseCode.SENDER_MISMATCH, _sender_refused(envelope, receiver))
    if envelope.message_type in SPEAKER_NAMING_TYPES:
        for registry, role in registries_named(decode_payload(envelope)):
            if registry != envelope.sender:
                return MessageRefusal(
                    ResponseCode.SENDER_MISMATCH,
                    f"sender {envelope.sender} is not {registry}, {role}",
                )
    business_key = correlation_of(decode_payload(envelope))
    if business_key is not None and envelope.correlation_id != business_key:
        return MessageRefusal(
            ResponseCode.MALFORMED_PAYLOAD,
            f"correlation id {envelope.correlation_id} is not the business key "
            f"{business_key} of the {envelope.message_type.value} it carries")
    return None


def correlation_of(payload: BaseModel) -> str | None:
    """The business key a message's correlation id must be (protocol.md 7.3): the
    transaction id, the allowance transfer id, the reconciliation id, ``N<notice id>`` for
    a notice; None for a
    message that answers another (``MessageAck`` keeps the correlation it answers)."""
    for field_name in ("transaction_id", "transfer_id", "reconciliation_id"):
        value = getattr(payload, field_name, None)
        if isinstance(value, str):
            return value
    notice_id = getattr(payload, "notice_id", None)
    if isinstance(notice_id, int):
        return f"N{notice_id}"
    return None


def _sender_refused(envelope: Envelope, receiver: Receiver) -> str:
    accepted = ", ".join(sorted(receiver.senders)) or "nobody"
    if receiver.senders == {ITL_CODE}:
        return (f"sender {envelope.sender} is not accepted by {receiver.code}: registries "
                f"accept messages only from the ITL")
    return (f"sender {envelope.sender} is not accepted by {receiver.code}: it takes "
            f"messages only from {accepted}")


def registries_named(payload: BaseModel) -> list[tuple[str, str]]:
    """The registries a payload says are speaking, each with the role that names it.

    Empty for payloads that name no speaker (a status may come from either party of a
    transaction; only the receiver's records can tell, so its handler checks it).
    """
    match payload:
        case ProposalSubmitted():
            tx = payload.transaction_id
            if payload.transferring is not None:
                proposer = (payload.transferring.registry,
                            f"the proposing registry of {tx} (its transferring account's)")
            else:
                proposer = (payload.acquiring.registry,
                            f"the proposing registry of issuance {tx} (its acquiring "
                            f"account's)")
            return [proposer, (registry_of_transaction(tx),
                               f"the registry transaction id {tx} belongs to")]
        case AllowanceTransferSubmitted():
            transfer = payload.transfer_id
            return [(payload.transferring_state,
                     f"the transferring state of allowance transfer {transfer}"),
                    (registry_of_transfer(transfer),
                     f"the state allowance transfer id {transfer} belongs to")]
        case _:
            return []


def registry_of_transaction(transaction_id: str) -> str:
    """The registry code a transaction id starts with (its letters before the digits,
    protocol.md 2.2): ``KZ17`` -> ``KZ``, ``CDM5`` -> ``CDM``."""
    return transaction_id.rstrip("0123456789")


def registry_of_transfer(transfer_id: str) -> str:
    """The Member State an allowance transfer id starts with: ``DEESD3`` -> ``DE``."""
    return transfer_id.rstrip("0123456789").removesuffix("ESD")


# Family 2: the same message id with other content (1102, protocol.md 7.5)


def duplicate_refusal(stored: Mapping[str, Any], received: Envelope) -> MessageRefusal | None:
    """Whether ``received`` reuses the id of the different message ``stored`` (1102).

    ``stored`` is the envelope the inbox kept for this message id, in JSON mode. None
    when both are the same message, a redelivery that must stay without effect; they
    are compared in ``canonical_form``, so the same message serialised another way
    (date-time offsets or precision spelled differently, keys in another order,
    defaults left out) is still the same, and any difference of value is not.
    """
    try:
        earlier = canonical_form(Envelope.model_validate(stored))
    except ValidationError:  # kept by an older envelope contract: compare as it is
        earlier = _json_text(dict(stored))
    now = canonical_form(received)
    if earlier == now:
        return None
    changed = differences(json.loads(earlier), json.loads(now))
    return MessageRefusal(
        ResponseCode.DUPLICATE_MESSAGE_DIFFERENT_CONTENT,
        f"message id {received.message_id} was received before with different content "
        f"(differs in {', '.join(changed) or 'its encoding'})",
    )


def canonical_form(envelope: Envelope) -> str:
    """One JSON text per message: the envelope with its payload read through the payload's
    contract (defaults filled, codes as numbers), every date-time in UTC, keys sorted.

    A payload that does not read as its contract is kept as received.
    """
    try:
        payload: Any = decode_payload(envelope).model_dump()
    except UndecodableMessage:
        payload = envelope.payload
    return _json_text({**envelope.model_dump(exclude={"payload"}), "payload": payload})


def differences(earlier: Any, now: Any, path: str = "") -> list[str]:
    """Dotted paths of the fields whose values differ between two JSON documents."""
    if isinstance(earlier, dict) and isinstance(now, dict):
        found: list[str] = []
        for key in sorted(set(earlier) | set(now)):
            where = f"{path}.{key}" if path else key
            if key not in earlier or key not in now:
                found.append(where)
            else:
                found += differences(earlier[key], now[key], where)
        return found
    if isinstance(earlier, list) and isinstance(now, list) and len(earlier) == len(now):
        return [where for index, (a, b) in enumerate(zip(earlier, now, strict=True))
                for where in differences(a, b, f"{path}[{index}]")]
    # json.loads keeps true and 1 apart by type, but Python's == would not
    same = type(earlier) is type(now) and earlier == now
    return [] if same else [path or "<root>"]


def _json_text(document: dict[str, Any]) -> str:
    return json.dumps(to_jsonable_python(_in_utc(document)), sort_keys=True,
                      separators=(",", ":"), ensure_ascii=False)


def _in_utc(value: Any) -> Any:
    """``value`` with every date-time as UTC (a naive one is UTC already: protocol.md 7.3)."""
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    if isinstance(value, dict):
        return {key: _in_utc(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_in_utc(item) for item in value]
    return value
