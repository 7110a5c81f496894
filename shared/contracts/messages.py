"""Payload models of every message type used so far (protocol.md 2.3, 7.4).

Field names are the DES names in snake_case. Codes travel as the integers of
``shared.codes``; pydantic refuses a number outside its table. Every other number is
bounded (``shared.bounds``: serials, identifiers, quantities within 64 bits) and every
date-time lies within the simulation clock's range, so a message carrying one the store
could not keep is dead-lettered with the reason before anything is recorded.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic_core import PydanticCustomError

from shared.bounds import Identifier, Serial, SimulatedDay, SimulatedTime, Units
from shared.codes import (
    MAX_BLOCKS_PER_TRANSACTION,
    SERIAL_START_AFTER_END_ERROR,
    AccountType,
    LulucfActivity,
    NoticeStatus,
    NoticeType,
    ResponseCode,
    SupplementaryType,
    TransactionStatus,
    TransactionType,
    UnitType,
)
from shared.contracts.envelope import REGISTRY_CODE_PATTERN
from shared.contracts.esd import TRANSFER_ID_PATTERN

TRANSACTION_ID_PATTERN = r"^([A-Z]{2}|CDM)[0-9]{1,18}$"
#: What the deadline of a status means to the proposing registry (ours, O).
DEADLINE_TEXT = ("status 2 of an internal type, 8 of an external transfer: the proposing "
                 "registry completes the transaction up to this moment of simulated time "
                 "(UTC); later it ends it as timed out (5, 1104) and reports that "
                 "(docs/adr/0017)")


class _Wire(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AccountRef(_Wire):
    """An account on the wire: registry code, account type and account identifier."""

    registry: str = Field(pattern=REGISTRY_CODE_PATTERN)
    account_type: AccountType
    account_id: Identifier


class UnitBlockWire(_Wire):
    """A serial block of identical units; (start, end, originating registry) is unique."""

    serial_start: Serial
    serial_end: Serial
    originating_registry: str = Field(pattern=REGISTRY_CODE_PATTERN)
    unit_type: UnitType
    original_commitment_period: int = Field(ge=1, le=3)
    applicable_commitment_period: int = Field(ge=1, le=3)
    lulucf_activity: LulucfActivity | None = None
    project_id: str | None = Field(default=None, max_length=32)
    track: int | None = Field(default=None, ge=1, le=2)
    expiry_date: SimulatedDay | None = None

    @model_validator(mode="after")
    def _start_not_after_end(self) -> UnitBlockWire:
        if self.serial_start > self.serial_end:
            # its own error type: the consumer answers it with 2002 (shared.contracts)
            raise PydanticCustomError(SERIAL_START_AFTER_END_ERROR,
                                      "serial_start must not be greater than serial_end")
        return self

    @property
    def quantity(self) -> int:
        return self.serial_end - self.serial_start + 1


class Proposal(_Wire):
    """One proposed transaction (DES AcceptProposal)."""

    transaction_id: str = Field(pattern=TRANSACTION_ID_PATTERN)
    transaction_type: TransactionType
    supp_transaction_type: SupplementaryType | None = Field(
        default=None,
        description="the kind within the transaction type (protocol.md 2.6); absent: read "
                    "from what the transaction does (shared.rules.accounts)")
    transferring: AccountRef | None = Field(
        default=None, description="absent for issuance, where units are created"
    )
    acquiring: AccountRef
    notification_id: Identifier | None = Field(
        default=None, description="the ITL notice this transaction fulfils")
    blocks: list[UnitBlockWire] = Field(min_length=1, max_length=MAX_BLOCKS_PER_TRANSACTION)
    project_id: str | None = Field(
        default=None, max_length=32, description="conversion: the JI project of the ERUs")
    track: int | None = Field(default=None, ge=1, le=2, description="conversion: JI track")
    new_expiry_date: SimulatedDay | None = Field(
        default=None, description="expiry date change: the tCERs' or lCERs' new date")
    replaced_blocks: list[UnitBlockWire] = Field(
        default_factory=list, max_length=MAX_BLOCKS_PER_TRANSACTION,
        description="replacement: the tCER or lCER blocks the units replace (role REP)",
    )


class ProposalSubmitted(Proposal):
    """A registry proposes a transaction to the ITL."""


class ProposalForwarded(Proposal):
    """The ITL forwards a checked external transfer to the acquiring registry."""

    deadline: SimulatedTime | None = Field(
        default=None,
        description="the acquiring registry answers up to this moment of simulated time "
                    "(UTC); later it rejects the transfer with 1104 (ours, O; "
                    "docs/adr/0017)")


class EvaluationResult(_Wire):
    """One failed check: its response code and, where it concerns one, the block."""

    response_code: ResponseCode
    message: str = ""
    serial_start: Serial | None = None
    originating_registry: str | None = None


class TransactionStatusNotified(_Wire):
    """A status change of a transaction (DES AcceptNotification)."""

    transaction_id: str = Field(pattern=TRANSACTION_ID_PATTERN)
    status: TransactionStatus
    evaluation_results: list[EvaluationResult] = Field(default_factory=list)
    deadline: SimulatedTime | None = Field(default=None, description=DEADLINE_TEXT)


class TransactionStatusQueried(_Wire):
    """A registry asks the ITL for the status of one of its transactions."""

    transaction_id: str = Field(pattern=TRANSACTION_ID_PATTERN)


class TransactionStatusReported(_Wire):
    """The ITL's answer to a status query; ``status`` is absent when it never saw it."""

    transaction_id: str = Field(pattern=TRANSACTION_ID_PATTERN)
    status: TransactionStatus | None
    status_at: SimulatedTime | None = None
    evaluation_results: list[EvaluationResult] = Field(default_factory=list)
    deadline: SimulatedTime | None = Field(default=None, description=DEADLINE_TEXT)


class NoticeIssued(_Wire):
    """An ITL notice to a registry, and each later change of its status (AcceptITLNotice)."""

    notice_id: Identifier
    notice_type: NoticeType
    status: NoticeStatus
    project_id: str | None = None
    unit_type: UnitType | None = None
    target_value: Units | None = Field(default=None, description="quantity to act on")
    target_date: SimulatedDay | None = None
    lulucf_activity: LulucfActivity | None = None
    commitment_period: int | None = Field(default=None, ge=1, le=3)
    action_due_date: SimulatedDay | None = None
    blocks: list[UnitBlockWire] = Field(default_factory=list,
                                        max_length=MAX_BLOCKS_PER_TRANSACTION)
    fulfilled_quantity: Units = 0
    text: str = Field(default="", max_length=2000)


class MessageAck(_Wire):
    """Receipt of a message; sent when a message is refused as a whole (O)."""

    acked_message_id: str
    accepted: bool
    response_codes: list[ResponseCode] = Field(default_factory=list)
    reason: str = ""


class TimeOutDue(_Wire):
    """The ITL to itself, through its own inbox: the time-out of a transaction or an
    allowance transfer has come. Queued behind every message already waiting there, so
    the ITL ends nothing by time-out while an answer waits unread (ours, O;
    docs/adr/0017). Exactly one of the two identifiers."""

    transaction_id: str | None = Field(default=None, pattern=TRANSACTION_ID_PATTERN)
    transfer_id: str | None = Field(default=None, pattern=TRANSFER_ID_PATTERN)
    deadline: SimulatedTime = Field(description="the deadline that passed (simulated UTC)")

    @model_validator(mode="after")
    def _one_subject(self) -> TimeOutDue:
        if (self.transaction_id is None) == (self.transfer_id is None):
            raise ValueError("name exactly one of transaction_id and transfer_id")
        return self
