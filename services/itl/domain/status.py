"""The ITL's side of the transaction status machine (protocol.md 1.4-1.5, docs/flows.md).

Pure Python: no I/O.
"""

from __future__ import annotations

from enum import Enum

from shared.codes import FINAL_STATUSES, TransactionStatus, TransactionType

S = TransactionStatus
T = TransactionType
#: Types that stop at the ITL: no acquiring registry takes part (V UK-FLOW).
INTERNAL_TRANSACTION_TYPES = frozenset(t for t in TransactionType if t != T.EXTERNAL_TRANSFER)


class SenderRole(Enum):
    """Who sends a status about a transaction."""

    PROPOSER = "proposer"
    ACQUIRING_REGISTRY = "acquiring_registry"


class ItlReaction(Enum):
    """What the ITL does with a status a registry reports."""

    ACCEPT = "accept"  # acquiring registry agreed: record 8, tell the proposer
    REJECT = "reject"  # acquiring registry refused: record 6, release, tell the proposer
    FINALISE = "finalise"  # proposer completed: move register blocks, record 4
    # proposer ended it, its deadline passed: release, record 5 (docs/adr/0017)
    TIMED_OUT = "timed_out"
    IGNORE = "ignore"  # repeated, out of sequence, or already final

    @property
    def status(self) -> TransactionStatus | None:
        """The status the reaction records, if any."""
        return _REACTION_STATUS.get(self)


_REACTION_STATUS = {
    ItlReaction.ACCEPT: S.ACCEPTED,
    ItlReaction.REJECT: S.REJECTED,
    ItlReaction.FINALISE: S.COMPLETED,
    ItlReaction.TIMED_OUT: S.TERMINATED,
}


def sender_role(
    sender: str, proposer: str, transaction_type: TransactionType, acquiring_registry: str
) -> SenderRole | None:
    """The sender's part in the transaction, or None when it has no part (1002)."""
    if sender == proposer:
        return SenderRole.PROPOSER
    if transaction_type == T.EXTERNAL_TRANSFER and sender == acquiring_registry:
        return SenderRole.ACQUIRING_REGISTRY
    return None


def react_to_status(
    current: TransactionStatus,
    transaction_type: TransactionType,
    role: SenderRole,
    incoming: TransactionStatus,
) -> ItlReaction:
    """The ITL's reaction to ``incoming`` from ``role`` while at ``current``.

    Statuses only move forward: anything not on the path of docs/flows.md is ignored.
    """
    if current in FINAL_STATUSES:
        return ItlReaction.IGNORE
    if role == SenderRole.ACQUIRING_REGISTRY:
        if transaction_type != T.EXTERNAL_TRANSFER or current != S.CHECKED_NO_DISCREPANCY:
            return ItlReaction.IGNORE
        if incoming == S.ACCEPTED:
            return ItlReaction.ACCEPT
        if incoming == S.REJECTED:
            return ItlReaction.REJECT
        return ItlReaction.IGNORE
    if not awaits_proposer(current, transaction_type):
        return ItlReaction.IGNORE
    if incoming == S.COMPLETED:
        return ItlReaction.FINALISE
    if incoming == S.TERMINATED:
        return ItlReaction.TIMED_OUT
    return ItlReaction.IGNORE


def awaits_proposer(current: TransactionStatus, transaction_type: TransactionType) -> bool:
    """Whether the ITL waits for the proposing registry to complete a transaction: an
    internal type it approved (2), an external transfer the acquiring registry accepted
    (8). The proposer completes it, or ends it as timed out, by the deadline sent with
    that status (docs/adr/0017)."""
    if transaction_type == T.EXTERNAL_TRANSFER:
        return current == S.ACCEPTED
    return current == S.CHECKED_NO_DISCREPANCY


def awaits_acquiring_registry(current: TransactionStatus,
                              transaction_type: TransactionType) -> bool:
    """Whether the ITL waits for the acquiring registry's answer: an external transfer it
    checked and forwarded (2)."""
    return transaction_type == T.EXTERNAL_TRANSFER and current == S.CHECKED_NO_DISCREPANCY

