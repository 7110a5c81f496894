"""Payload models of the reconciliation messages (protocol.md 5, 7.4; DES
InitiateReconciliation, ProvideTotals/ReceiveTotals, ProvideUnitBlocks/ReceiveUnitBlocks,
ProvideAuditTrail/ReceiveAuditTrail, ReceiveReconciliationResult).

The ITL sends the requests and the result, a registry the reports. Every message is
correlated by the reconciliation id the ITL assigned (protocol.md 2.2). Counts are whole
numbers, never negative (``shared.bounds.Units``): a report with ``-1`` or ``2.5`` units
does not read as its contract and is dead-lettered with the reason before anything is
recorded. How the snapshot is made exact is docs/adr/0030.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from shared.bounds import Identifier, SimulatedTime, Units
from shared.codes import (
    AccountType,
    ReconciliationPhase,
    ReconciliationStatus,
    ResponseCode,
    TransactionStatus,
    TransactionType,
    UnitType,
)
from shared.contracts.messages import (
    TRANSACTION_ID_PATTERN,
    AccountRef,
    UnitBlockWire,
    _Wire,
)

#: ``REC`` followed by the ITL's sequence number (ours, O; protocol.md 2.2: a string the
#: ITL assigns).
RECONCILIATION_ID_PATTERN = r"^REC[0-9]{1,18}$"
#: Most rows, blocks or transactions in one reconciliation message (ours, O): the
#: protocol's limit for one transaction (3000 blocks) times 100.
MAX_RECONCILIATION_ITEMS = 300_000
#: A transaction id in a list.
TransactionId = Annotated[str, Field(pattern=TRANSACTION_ID_PATTERN)]


class TotalsKey(_Wire):
    """What one total counts (protocol.md 5 phase 1, by-account flag 1, ours O: by account
    type only, units moved behind the protocol's back between two accounts of one type
    would go unseen; docs/adr/0030): account type, account, unit type, supplementary unit
    type (always 0: our units carry none, protocol.md 2.3) and applicable commitment
    period."""

    account_type: AccountType
    account_id: Identifier
    unit_type: UnitType
    supp_unit_type: int = Field(default=0, ge=0, le=99)
    applicable_commitment_period: int = Field(ge=1, le=3)


class TotalsRow(TotalsKey):
    """One total: the units the registry's blocks of ``TotalsKey`` hold (tonnes)."""

    units: Units
    blocks: Units = Field(description="how many block documents were counted (for "
                                      "information; not compared)")
    digest: str = Field(default="", pattern=r"^[0-9a-f]{0,64}$",
                        description="digest of the total's blocks in normal form (ours, "
                                    "O: an alteration that keeps the count changes it; "
                                    "shared.reconciliation.totals_of)")


class ReconciliationBlock(UnitBlockWire):
    """A unit block with the account that holds it (protocol.md 5 phase 2, DES
    ReceiveUnitBlocks: start, end, origin, unit type, supp. type, account type, account
    id, applicable period)."""

    account_type: AccountType
    account_id: Identifier


class ReconciliationInitiated(_Wire):
    """The ITL starts a reconciliation of the receiving registry (InitiateReconciliation):
    the registry records its holdings as they stand when it handles this message, which
    follows every ITL message sent before it (docs/adr/0030).

    ``open_transactions``: the receiving registry's transactions the ITL had approved or
    accepted but not yet seen completed at the snapshot; the registry says which of them
    it has completed (``TotalsReported.completed_open``)."""

    reconciliation_id: str = Field(pattern=RECONCILIATION_ID_PATTERN)
    snapshot_at: SimulatedTime = Field(description="the ITL's clock at the snapshot")
    open_transactions: list[TransactionId] = Field(default_factory=list,
                                                   max_length=MAX_RECONCILIATION_ITEMS)


class TotalsRequested(_Wire):
    """Phase 1 (ProvideTotals): the registry's totals at the snapshot."""

    reconciliation_id: str = Field(pattern=RECONCILIATION_ID_PATTERN)


class TotalsReported(_Wire):
    """Phase 1 answer (ReceiveTotals): totals counted from the registry's unit blocks at
    the snapshot, and which of the ITL's open transactions it had completed by then."""

    reconciliation_id: str = Field(pattern=RECONCILIATION_ID_PATTERN)
    totals: list[TotalsRow] = Field(max_length=MAX_RECONCILIATION_ITEMS)
    completed_open: list[TransactionId] = Field(default_factory=list,
                                      max_length=MAX_RECONCILIATION_ITEMS)


class UnitBlocksRequested(_Wire):
    """Phase 2 (ProvideUnitBlocks): the blocks of every total that differs."""

    reconciliation_id: str = Field(pattern=RECONCILIATION_ID_PATTERN)
    keys: list[TotalsKey] = Field(min_length=1, max_length=MAX_RECONCILIATION_ITEMS)


class UnitBlocksReported(_Wire):
    """Phase 2 answer (ReceiveUnitBlocks): the registry's blocks of the requested totals
    at the snapshot."""

    reconciliation_id: str = Field(pattern=RECONCILIATION_ID_PATTERN)
    blocks: list[ReconciliationBlock] = Field(max_length=MAX_RECONCILIATION_ITEMS)


class AuditTrailRequested(_Wire):
    """Phase 3 (ProvideAuditTrail): the transactions behind the blocks that differ, up
    to the snapshot."""

    reconciliation_id: str = Field(pattern=RECONCILIATION_ID_PATTERN)
    blocks: list[ReconciliationBlock] = Field(min_length=1,
                                              max_length=MAX_RECONCILIATION_ITEMS)
    begin_at: SimulatedTime = Field(description="the trail's window starts here: the "
                                                "snapshot of the registry's last closed "
                                                "reconciliation (DES begin time)")
    end_at: SimulatedTime = Field(description="and ends at this snapshot (DES end time)")


class AuditTrailEntry(_Wire):
    """One transaction of the registry's audit trail (ReceiveAuditTrail: the audit form of
    a proposal with its status and status time, protocol.md 2.3)."""

    transaction_id: str = Field(pattern=TRANSACTION_ID_PATTERN)
    transaction_type: TransactionType
    status: TransactionStatus
    status_at: SimulatedTime
    transferring: AccountRef | None = None
    acquiring: AccountRef
    blocks: list[UnitBlockWire] = Field(max_length=MAX_RECONCILIATION_ITEMS)


class AuditTrailReported(_Wire):
    """Phase 3 answer (ReceiveAuditTrail)."""

    reconciliation_id: str = Field(pattern=RECONCILIATION_ID_PATTERN)
    transactions: list[AuditTrailEntry] = Field(max_length=MAX_RECONCILIATION_ITEMS)


class ReconciliationResultNotified(_Wire):
    """The ITL's result (ReceiveReconciliationResult): status (protocol.md 5), the phase
    it ended in, response codes (7001-7003) and the blocks flagged inconsistent."""

    reconciliation_id: str = Field(pattern=RECONCILIATION_ID_PATTERN)
    status: ReconciliationStatus
    phase: ReconciliationPhase
    response_codes: list[ResponseCode] = Field(default_factory=list)
    blocks: list[ReconciliationBlock] = Field(default_factory=list,
                                              max_length=MAX_RECONCILIATION_ITEMS)
    text: str = Field(default="", max_length=2000)
