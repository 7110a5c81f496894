"""The ITL's inbox: maps each registry message to its handler."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from services.itl.esd import EsdRouting
from services.itl.handlers import ItlService
from services.itl.reconciliation import Reconciliations
from services.itl.timeouts import TimeOuts
from shared.codes import MessageType
from shared.contracts import (
    AllowanceTransferAnswered,
    AllowanceTransferSubmitted,
    AuditTrailReported,
    Envelope,
    MessageAck,
    ProposalSubmitted,
    TimeOutDue,
    TotalsReported,
    TransactionStatusNotified,
    TransactionStatusQueried,
    UnitBlocksReported,
    decode_payload,
)
from shared.messaging import PermanentFailure


def make_dispatch(service: ItlService, esd: EsdRouting, timeouts: TimeOuts,
                  reconciliations: Reconciliations
                  ) -> Callable[[Envelope], Awaitable[None]]:
    """The consumer's handler: decode the payload (undecodable → dead-letter) and route it.

    Version, recipient and sender were checked before (``Runtime.screened``)."""

    async def dispatch(envelope: Envelope) -> None:
        payload = decode_payload(envelope)
        match payload:
            case ProposalSubmitted():
                await service.on_proposal_submitted(envelope, payload)
            case TransactionStatusNotified():
                await service.on_status_notified(envelope, payload)
            case TransactionStatusQueried():
                await service.on_status_queried(envelope, payload)
            case AllowanceTransferSubmitted():
                await esd.on_transfer_submitted(envelope, payload)
            case AllowanceTransferAnswered():
                await esd.on_transfer_answered(envelope, payload)
            case TimeOutDue():
                await timeouts.on_time_out_due(envelope, payload)
            case TotalsReported() | UnitBlocksReported() | AuditTrailReported():
                await reconciliations.on_report(envelope, payload)
            case MessageAck() if envelope.correlation_id.startswith("REC"):
                await reconciliations.on_ack(envelope, payload)
            case _:
                raise PermanentFailure(
                    f"the ITL does not handle {envelope.message_type.value} "
                    f"(only {MessageType.PROPOSAL_SUBMITTED.value}, "
                    f"{MessageType.TRANSACTION_STATUS_NOTIFIED.value}, "
                    f"{MessageType.TRANSACTION_STATUS_QUERIED.value}, the allowance "
                    f"transfer messages, the reconciliation reports and refusals and its "
                    f"own {MessageType.TIME_OUT_DUE.value})"
                )

    return dispatch
