"""Versioned wire contracts: the envelope and one payload model per message type."""

from __future__ import annotations

from pydantic import BaseModel, ValidationError
from pydantic_core import to_json

from shared.codes import SCHEMA_VERSION, SERIAL_START_AFTER_END_ERROR, MessageType, ResponseCode
from shared.contracts.convert import (
    block_from_wire,
    block_to_wire,
    replaced_reservation,
    unit_change_of,
)
from shared.contracts.envelope import Envelope, make_envelope, new_message_id
from shared.contracts.esd import (
    AllowanceTransferAnswered,
    AllowanceTransferForwarded,
    AllowanceTransferNotified,
    AllowanceTransferSubmitted,
)
from shared.contracts.messages import (
    AccountRef,
    EvaluationResult,
    MessageAck,
    NoticeIssued,
    Proposal,
    ProposalForwarded,
    ProposalSubmitted,
    TimeOutDue,
    TransactionStatusNotified,
    TransactionStatusQueried,
    TransactionStatusReported,
    UnitBlockWire,
)
from shared.contracts.reconciliation import (
    AuditTrailEntry,
    AuditTrailReported,
    AuditTrailRequested,
    ReconciliationBlock,
    ReconciliationInitiated,
    ReconciliationResultNotified,
    TotalsKey,
    TotalsReported,
    TotalsRequested,
    TotalsRow,
    UnitBlocksReported,
    UnitBlocksRequested,
)

#: The payload model of every message type, the single place that maps one to the other.
PAYLOAD_MODELS: dict[MessageType, type[BaseModel]] = {
    MessageType.PROPOSAL_SUBMITTED: ProposalSubmitted,
    MessageType.PROPOSAL_FORWARDED: ProposalForwarded,
    MessageType.MESSAGE_ACK: MessageAck,
    MessageType.TRANSACTION_STATUS_NOTIFIED: TransactionStatusNotified,
    MessageType.TRANSACTION_STATUS_QUERIED: TransactionStatusQueried,
    MessageType.TRANSACTION_STATUS_REPORTED: TransactionStatusReported,
    MessageType.ALLOWANCE_TRANSFER_SUBMITTED: AllowanceTransferSubmitted,
    MessageType.ALLOWANCE_TRANSFER_FORWARDED: AllowanceTransferForwarded,
    MessageType.ALLOWANCE_TRANSFER_ANSWERED: AllowanceTransferAnswered,
    MessageType.ALLOWANCE_TRANSFER_NOTIFIED: AllowanceTransferNotified,
    MessageType.NOTICE_ISSUED: NoticeIssued,
    MessageType.TIME_OUT_DUE: TimeOutDue,
    MessageType.RECONCILIATION_INITIATED: ReconciliationInitiated,
    MessageType.TOTALS_REQUESTED: TotalsRequested,
    MessageType.TOTALS_REPORTED: TotalsReported,
    MessageType.UNIT_BLOCKS_REQUESTED: UnitBlocksRequested,
    MessageType.UNIT_BLOCKS_REPORTED: UnitBlocksReported,
    MessageType.AUDIT_TRAIL_REQUESTED: AuditTrailRequested,
    MessageType.AUDIT_TRAIL_REPORTED: AuditTrailReported,
    MessageType.RECONCILIATION_RESULT_NOTIFIED: ReconciliationResultNotified,
}

SUPPORTED_SCHEMA_VERSIONS = frozenset({SCHEMA_VERSION})


class UndecodableMessage(Exception):
    """A message that cannot be read as a contract; it goes to the dead-letter queue.

    ``code``: the response code a sender is answered with when the envelope named one
    (``payload_code``); 1101 MALFORMED_PAYLOAD unless the contract broken is one the
    protocol has a code of its own for."""

    def __init__(self, reason: str,
                 code: ResponseCode = ResponseCode.MALFORMED_PAYLOAD) -> None:
        super().__init__(reason)
        self.code = code


def decode_envelope(body: bytes) -> Envelope:
    """Parse raw bytes into an envelope, or raise ``UndecodableMessage`` with the reason.

    Strictly, as the contract's JSON Schema says: a number is a JSON number, a text a
    JSON string, nothing is coerced (``"5"`` is no integer, ``5.0`` neither; pydantic's
    lax mode would take both; found by fuzzing, docs/adr/0020)."""
    try:
        return Envelope.model_validate_json(body, strict=True)
    except ValidationError as exc:
        raise UndecodableMessage(f"invalid envelope: {_first_errors(exc)}") from exc


def decode_payload(envelope: Envelope) -> BaseModel:
    """The typed payload of an envelope, or ``UndecodableMessage`` with the reason; as
    strictly as ``decode_envelope`` (the payload read again as the JSON it came as)."""
    model = PAYLOAD_MODELS[envelope.message_type]
    try:
        return model.model_validate_json(to_json(envelope.payload), strict=True)
    except ValidationError as exc:
        raise UndecodableMessage(
            f"invalid {envelope.message_type} payload: {_first_errors(exc)}",
            payload_code(exc),
        ) from exc


def payload_code(exc: ValidationError) -> ResponseCode:
    """The response code of a payload that breaks its contract: the code of its first
    error that the protocol names (protocol.md 3.3, family 4: 2002 a unit block whose
    start serial is after its end, 2005 more than 3000 unit blocks in one transaction),
    else 1101 MALFORMED_PAYLOAD (family 1)."""
    for err in exc.errors():
        if err["type"] == SERIAL_START_AFTER_END_ERROR:
            return ResponseCode.SERIAL_START_AFTER_END
        if err["type"] == "too_long" and err["loc"] and err["loc"][-1] == "blocks":
            return ResponseCode.TOO_MANY_BLOCKS
    return ResponseCode.MALFORMED_PAYLOAD


def _first_errors(exc: ValidationError, limit: int = 3) -> str:
    parts = []
    for err in exc.errors()[:limit]:
        where = ".".join(str(p) for p in err["loc"]) or "<root>"
        parts.append(f"{where}: {err['msg']}")
    return "; ".join(parts)


__all__ = [
    "PAYLOAD_MODELS",
    "SUPPORTED_SCHEMA_VERSIONS",
    "AccountRef",
    "AllowanceTransferAnswered",
    "AllowanceTransferForwarded",
    "AllowanceTransferNotified",
    "AllowanceTransferSubmitted",
    "AuditTrailEntry",
    "AuditTrailReported",
    "AuditTrailRequested",
    "Envelope",
    "EvaluationResult",
    "MessageAck",
    "NoticeIssued",
    "Proposal",
    "ProposalForwarded",
    "ProposalSubmitted",
    "ReconciliationBlock",
    "ReconciliationInitiated",
    "ReconciliationResultNotified",
    "TimeOutDue",
    "TotalsKey",
    "TotalsReported",
    "TotalsRequested",
    "TotalsRow",
    "TransactionStatusNotified",
    "TransactionStatusQueried",
    "TransactionStatusReported",
    "UndecodableMessage",
    "UnitBlockWire",
    "UnitBlocksReported",
    "UnitBlocksRequested",
    "block_from_wire",
    "block_to_wire",
    "decode_envelope",
    "decode_payload",
    "make_envelope",
    "new_message_id",
    "replaced_reservation",
    "unit_change_of",
]
