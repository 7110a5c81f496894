"""The ITL's rules: the checks on a proposal, the commitment period reserve, the AAU
issuance limit and the ITL's side of the transaction status machine.

Pure Python: no I/O, no wire contracts, no clock. The values the protocol leaves open
are the constants below, each tagged as in protocol.md (V verified, U assumed, O ours).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from enum import Enum
from itertools import pairwise

from shared.blocks import UnitBlock
from shared.codes import (
    CDM_CODE,
    CDM_UNIT_TYPES,
    FINAL_STATUSES,
    HOLDING_ACCOUNT_TYPES,
    NATIONAL_ISSUANCE_UNIT_TYPES,
    AccountType,
    ResponseCode,
    TransactionStatus,
    TransactionType,
    UnitType,
)
from shared.errors import RuleViolation

S = TransactionStatus
T = TransactionType

#: CPR = min(90 % of assigned amount, 5 x latest reviewed inventory) (V W-CPR).
#: 90 % is rounded down to whole units (O): the reserve never asks for a fraction.
CPR_ASSIGNED_AMOUNT_NUMERATOR = 9
CPR_ASSIGNED_AMOUNT_DENOMINATOR = 10
CPR_INVENTORY_MULTIPLE = 5
#: Units counted in a Party's CPR holdings: AAU, ERU, RMU and CER (U protocol.md 4.1;
#: tCERs and lCERs are temporary and left out).
CPR_UNIT_TYPES = frozenset(
    {UnitType.AAU, UnitType.RMU, UnitType.ERU_FROM_AAU, UnitType.ERU_FROM_RMU, UnitType.CER}
)
#: A Party with no assigned amount recorded for a period has no reserve to keep (O):
#: the reserve is a share of the assigned amount, and CER-only holders transfer freely.
RESERVE_WITHOUT_ASSIGNED_AMOUNT = 0
#: Transaction types the ITL handles so far (O); the others are refused with 2003.
HANDLED_TRANSACTION_TYPES = frozenset({T.ISSUANCE, T.EXTERNAL_TRANSFER, T.INTERNAL_TRANSFER})
#: Types that stop at the ITL: no acquiring registry takes part (V UK-FLOW).
INTERNAL_TRANSACTION_TYPES = frozenset({T.ISSUANCE, T.INTERNAL_TRANSFER})


@dataclass(frozen=True)
class AccountKey:
    """An account as the ITL sees it: registry code, account type code, identifier."""

    registry: str
    account_type: int
    account_id: int


@dataclass(frozen=True)
class ProposalView:
    """A proposed transaction, as far as the ITL's rules need it."""

    transaction_id: str
    transaction_type: TransactionType
    transferring: AccountKey | None
    acquiring: AccountKey
    blocks: tuple[UnitBlock, ...]

    @property
    def proposing_registry(self) -> str:
        """The registry the units leave, or, for an issuance, the one that creates them."""
        return (self.transferring or self.acquiring).registry

    @property
    def is_external(self) -> bool:
        return self.transaction_type == T.EXTERNAL_TRANSFER


@dataclass(frozen=True)
class Discrepancy:
    """One failed check: its response code, why, and the block it concerns if any."""

    code: ResponseCode
    reason: str
    block: UnitBlock | None = None


class ProposalRefused(RuleViolation):
    """A check family failed: the transaction ends in status 3 then 5."""

    def __init__(self, discrepancies: Sequence[Discrepancy]) -> None:
        if not discrepancies:
            raise ValueError("a refusal needs at least one discrepancy")
        super().__init__(discrepancies[0].code, discrepancies[0].reason)
        self.discrepancies = tuple(discrepancies)


def refuse_if_any(discrepancies: Sequence[Discrepancy]) -> None:
    """Raise ``ProposalRefused`` when a check family found anything."""
    if discrepancies:
        raise ProposalRefused(discrepancies)


def registry_code_of(transaction_id: str) -> str:
    """The registry code a transaction identifier starts with (letters before digits)."""
    return transaction_id.rstrip("0123456789")


# Family 1: version and sender (1001, 1002)


def check_version(schema_version: str, supported: Collection[str]) -> None:
    """The message must be in a schema version the ITL reads (1001)."""
    if schema_version not in supported:
        raise ProposalRefused([Discrepancy(
            ResponseCode.UNSUPPORTED_VERSION,
            f"schema version {schema_version!r} is not one of {sorted(supported)}",
        )])


def check_sender(sender: str, proposal: ProposalView) -> None:
    """The sender must be the proposing registry and own the transaction id (1002)."""
    if sender != proposal.proposing_registry:
        raise ProposalRefused([Discrepancy(
            ResponseCode.SENDER_MISMATCH,
            f"sender {sender} is not the proposing registry {proposal.proposing_registry}",
        )])
    if registry_code_of(proposal.transaction_id) != sender:
        raise ProposalRefused([Discrepancy(
            ResponseCode.SENDER_MISMATCH,
            f"transaction id {proposal.transaction_id} does not start with sender {sender}",
        )])


# Family 2: registry status (1201)


def check_registries_known(sender: str, proposal: ProposalView, known: Collection[str]) -> None:
    """The sender and, for an external transfer, the acquiring registry are known (1201)."""
    found = []
    if sender not in known:
        found.append(Discrepancy(ResponseCode.REGISTRY_UNKNOWN,
                                 f"sending registry {sender} is unknown to the ITL"))
    if proposal.is_external and proposal.acquiring.registry not in known:
        found.append(Discrepancy(
            ResponseCode.REGISTRY_UNKNOWN,
            f"acquiring registry {proposal.acquiring.registry} is unknown to the ITL",
        ))
    refuse_if_any(found)


# Family 3: data integrity (2001-2006)


def check_data_integrity(sender: str, proposal: ProposalView) -> None:
    """Transaction type, accounts and blocks fit together (2001, 2003, 2004, 2006).

    Start > end (2002) and more than 3000 blocks (2005) never get here: the wire
    contract refuses them, and the message is dead-lettered.
    """
    if proposal.transaction_type not in HANDLED_TRANSACTION_TYPES:
        raise ProposalRefused([Discrepancy(
            ResponseCode.UNKNOWN_CODE,
            f"transaction type {proposal.transaction_type.name} is not handled by the ITL",
        )])
    if proposal.transaction_type == T.ISSUANCE:
        found = _issuance_integrity(sender, proposal)
    else:
        found = _transfer_integrity(sender, proposal)
    found += _lulucf_activity_present(proposal.blocks)
    found += _overlaps(proposal.blocks)
    refuse_if_any(found)


def _issuance_integrity(sender: str, proposal: ProposalView) -> list[Discrepancy]:
    combination = ResponseCode.TYPE_ACCOUNT_COMBINATION_NOT_ALLOWED
    found = []
    if proposal.transferring is not None:
        found.append(Discrepancy(combination, "an issuance has no transferring account"))
    if proposal.acquiring.registry != sender:
        found.append(Discrepancy(
            combination, f"an issuance by {sender} must credit an account in {sender}"))
    is_cdm = sender == CDM_CODE
    allowed_types = CDM_UNIT_TYPES if is_cdm else NATIONAL_ISSUANCE_UNIT_TYPES
    account_type = AccountType.PENDING if is_cdm else AccountType.PARTY_HOLDING
    if proposal.acquiring.account_type != account_type:
        found.append(Discrepancy(
            combination,
            f"{sender} issues into its {account_type.name} account ({int(account_type)}), "
            f"not into account type {proposal.acquiring.account_type}",
        ))
    for block in proposal.blocks:
        a = block.attributes
        if a.originating_registry != sender:
            found.append(Discrepancy(
                combination,
                f"{sender} cannot issue units originating in {a.originating_registry}", block))
        if a.unit_type not in allowed_types:
            found.append(Discrepancy(
                combination, f"{sender} cannot issue {a.unit_type.name} units", block))
    return found


def _transfer_integrity(sender: str, proposal: ProposalView) -> list[Discrepancy]:
    combination = ResponseCode.TYPE_ACCOUNT_COMBINATION_NOT_ALLOWED
    if proposal.transferring is None:
        return [Discrepancy(ResponseCode.MISSING_FIELD, "a transfer needs a transferring account")]
    found = []
    if proposal.transferring.account_type not in HOLDING_ACCOUNT_TYPES:
        found.append(Discrepancy(
            combination,
            f"units cannot leave account type {proposal.transferring.account_type}: "
            "not a holding account",
        ))
    leaves = proposal.acquiring.registry != sender
    if proposal.transaction_type == T.INTERNAL_TRANSFER and leaves:
        found.append(Discrepancy(
            combination, f"an internal transfer must stay in registry {sender}"))
    if proposal.transaction_type == T.EXTERNAL_TRANSFER and not leaves:
        found.append(Discrepancy(
            combination, f"an external transfer must leave registry {sender}"))
    return found


def _lulucf_activity_present(blocks: Iterable[UnitBlock]) -> list[Discrepancy]:
    return [
        Discrepancy(ResponseCode.MISSING_FIELD, "an RMU block needs its LULUCF activity", b)
        for b in blocks
        if b.attributes.unit_type == UnitType.RMU and b.attributes.lulucf_activity is None
    ]


def _overlaps(blocks: Iterable[UnitBlock]) -> list[Discrepancy]:
    found = []
    ordered = sorted(blocks, key=lambda b: (b.attributes.originating_registry, b.serials.start))
    for previous, block in pairwise(ordered):
        same_origin = (previous.attributes.originating_registry
                       == block.attributes.originating_registry)
        if same_origin and previous.serials.overlaps(block.serials):
            found.append(Discrepancy(
                ResponseCode.OVERLAPPING_BLOCKS,
                f"block {block.serials.start}-{block.serials.end} overlaps "
                f"{previous.serials.start}-{previous.serials.end}",
                block,
            ))
    return found


# Family 5: type-specific (4001)


def aau_issuance_by_period(proposal: ProposalView) -> dict[int, int]:
    """AAUs an issuance creates, per original commitment period."""
    quantities: dict[int, int] = defaultdict(int)
    if proposal.transaction_type == T.ISSUANCE:
        for block in proposal.blocks:
            if block.attributes.unit_type == UnitType.AAU:
                quantities[block.attributes.original_commitment_period] += block.quantity
    return dict(quantities)


def check_aau_issuance_limit(
    party: str, period: int, assigned_amount: int | None, issued_so_far: int, quantity: int
) -> None:
    """AAU issuance stays within the assigned amount recorded for the period (4001).

    No recorded assigned amount means no AAU can be issued for that period.
    """
    if assigned_amount is None:
        raise ProposalRefused([Discrepancy(
            ResponseCode.ISSUANCE_OVER_LIMIT,
            f"no assigned amount recorded for {party} in period {period}",
        )])
    if issued_so_far + quantity > assigned_amount:
        raise ProposalRefused([Discrepancy(
            ResponseCode.ISSUANCE_OVER_LIMIT,
            f"{party} would have {issued_so_far + quantity} AAUs of period {period}, "
            f"over its assigned amount of {assigned_amount}",
        )])


# Family 6: commitment period reserve (5001)


def commitment_period_reserve(assigned_amount: int, reviewed_inventory: int | None) -> int:
    """CPR = min(90 % of the assigned amount, 5 x the latest reviewed inventory).

    The inventory term applies only once an inventory is recorded; 90 % is rounded down.
    """
    share = (assigned_amount * CPR_ASSIGNED_AMOUNT_NUMERATOR
             // CPR_ASSIGNED_AMOUNT_DENOMINATOR)
    if reviewed_inventory is None:
        return share
    return min(share, CPR_INVENTORY_MULTIPLE * reviewed_inventory)


def needs_cpr_check(proposal: ProposalView) -> bool:
    """Only external transfers out of a Party's registry; the CDM registry keeps no reserve."""
    return proposal.is_external and proposal.proposing_registry != CDM_CODE


def cpr_units_leaving_by_period(proposal: ProposalView) -> dict[int, int]:
    """Units that count for the CPR and leave with the proposal, per applicable period."""
    quantities: dict[int, int] = defaultdict(int)
    for block in proposal.blocks:
        if block.attributes.unit_type in CPR_UNIT_TYPES:
            quantities[block.attributes.applicable_commitment_period] += block.quantity
    return dict(quantities)


def check_commitment_period_reserve(
    party: str, period: int, holdings: int, leaving: int, reserve: int
) -> None:
    """Holdings after the transfer must not fall below the reserve (5001)."""
    after = holdings - leaving
    if after < reserve:
        raise ProposalRefused([Discrepancy(
            ResponseCode.CPR_VIOLATED,
            f"{party} would hold {after} units of period {period}, below its commitment "
            f"period reserve of {reserve}",
        )])


# The ITL's side of the status machine (protocol.md 1.4-1.5, docs/flows.md)


class SenderRole(Enum):
    """Who sends a status about a transaction."""

    PROPOSER = "proposer"
    ACQUIRING_REGISTRY = "acquiring_registry"


class ItlReaction(Enum):
    """What the ITL does with a status a registry reports."""

    ACCEPT = "accept"  # acquiring registry agreed: record 8, tell the proposer
    REJECT = "reject"  # acquiring registry refused: record 6, release, tell the proposer
    FINALISE = "finalise"  # proposer completed: move register blocks, record 4
    IGNORE = "ignore"  # repeated, out of sequence, or already final

    @property
    def status(self) -> TransactionStatus | None:
        """The status the reaction records, if any."""
        return _REACTION_STATUS.get(self)


_REACTION_STATUS = {
    ItlReaction.ACCEPT: S.ACCEPTED,
    ItlReaction.REJECT: S.REJECTED,
    ItlReaction.FINALISE: S.COMPLETED,
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
    if incoming != S.COMPLETED:
        return ItlReaction.IGNORE
    if transaction_type in INTERNAL_TRANSACTION_TYPES and current == S.CHECKED_NO_DISCREPANCY:
        return ItlReaction.FINALISE
    if transaction_type == T.EXTERNAL_TRANSFER and current == S.ACCEPTED:
        return ItlReaction.FINALISE
    return ItlReaction.IGNORE
