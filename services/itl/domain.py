"""The ITL's rules: the checks on a proposal, the commitment period reserve, the AAU
issuance limit and the ITL's side of the transaction status machine.

Pure Python: no I/O, no wire contracts, no clock. The values the protocol leaves open
are the constants below, each tagged as in protocol.md (V verified, U assumed, O ours).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date
from enum import Enum
from itertools import pairwise

from shared.blocks import UnitBlock
from shared.codes import (
    CDM_CODE,
    CDM_UNIT_TYPES,
    COMMITMENT_PERIOD_YEARS,
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
#: Transaction types the ITL handles: every primary type of protocol.md 2.6.
HANDLED_TRANSACTION_TYPES = frozenset(TransactionType)
#: Types that stop at the ITL: no acquiring registry takes part (V UK-FLOW).
INTERNAL_TRANSACTION_TYPES = frozenset(t for t in TransactionType if t != T.EXTERNAL_TRANSFER)
#: Cancellation accounts a national registry cancels into (protocol.md 2.7); 240-242
#: belong to the CDM registry and are reached by external transfer.
CANCELLATION_ACCOUNT_TYPES = frozenset({
    AccountType.NET_SOURCE_CANCELLATION, AccountType.NON_COMPLIANCE_CANCELLATION,
    AccountType.VOLUNTARY_CANCELLATION, AccountType.MANDATORY_CANCELLATION,
    AccountType.ADMINISTRATIVE_CANCELLATION, AccountType.ARTICLE_37TER_CANCELLATION,
    AccountType.AMBITION_INCREASE_CANCELLATION,
})
#: Replacement accounts and the unit type each replaces (protocol.md 2.7).
REPLACEMENT_ACCOUNT_TYPES = {
    AccountType.TCER_REPLACEMENT_EXPIRY: UnitType.TCER,
    AccountType.LCER_REPLACEMENT_EXPIRY: UnitType.LCER,
    AccountType.LCER_REPLACEMENT_REVERSAL: UnitType.LCER,
    AccountType.LCER_REPLACEMENT_NON_SUBMISSION: UnitType.LCER,
}
#: Which units may replace a tCER or an lCER (U protocol.md 2.6: Kyoto units of unlimited
#: validity for both; a tCER may also replace a tCER, decision 5/CMP.1 as we read it).
REPLACING_UNIT_TYPES = {
    UnitType.TCER: frozenset(UnitType) - {UnitType.LCER},
    UnitType.LCER: frozenset(UnitType) - {UnitType.TCER, UnitType.LCER},
}
#: Units that may be carried over and the account they go to (V UK-TYPES 7/39, 7/38);
#: None means they stay in the holding account with the next applicable period.
CARRY_OVER_TARGET: dict[UnitType, AccountType | None] = {
    UnitType.AAU: AccountType.PREVIOUS_PERIOD_SURPLUS_RESERVE,
    UnitType.CER: None,
    UnitType.ERU_FROM_AAU: None,
}
#: CER and ERU carry-over is capped at 2.5 % of the assigned amount, per unit type
#: (V W-CO for 2.5 %; "per type" and "of the assigned amount" U).
CARRY_OVER_LIMIT_PER_THOUSAND = 25
#: Last day of each commitment period; carry-over only after it (O: the true-up period
#: that follows is not modelled).
COMMITMENT_PERIOD_END = {cp: date(last, 12, 31) for cp, (_, last) in
                         COMMITMENT_PERIOD_YEARS.items()}
#: Days before expiry at which the ITL sends notice 3 (impending expiry) (O).
IMPENDING_EXPIRY_NOTICE_DAYS = 30


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
    notification_id: int | None = None
    project_id: str | None = None
    track: int | None = None
    new_expiry_date: date | None = None
    replaced_blocks: tuple[UnitBlock, ...] = field(default=())

    @property
    def quantity(self) -> int:
        return sum(b.quantity for b in self.blocks)

    @property
    def unit_types(self) -> frozenset[UnitType]:
        return frozenset(b.attributes.unit_type for b in self.blocks)

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


# Family 1, version and sender (1001, 1002), is checked on the message before a proposal
# gets here: shared/contracts/validity.py. A message refused there records nothing.


# Family 2: registry status (1201)


def check_registries_known(proposal: ProposalView, known: Collection[str]) -> None:
    """For an external transfer, the acquiring registry is known (1201); the sender is
    one the ITL knows, or the message would have been refused (1002)."""
    if proposal.is_external and proposal.acquiring.registry not in known:
        raise ProposalRefused([Discrepancy(
            ResponseCode.REGISTRY_UNKNOWN,
            f"acquiring registry {proposal.acquiring.registry} is unknown to the ITL",
        )])


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
        if not found:
            found = TYPE_INTEGRITY.get(proposal.transaction_type, _no_more)(proposal)
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
    if proposal.transaction_type != T.EXTERNAL_TRANSFER and leaves:
        found.append(Discrepancy(
            combination,
            f"a {proposal.transaction_type.name.lower()} must stay in registry {sender}"))
    if proposal.transaction_type == T.EXTERNAL_TRANSFER and not leaves:
        found.append(Discrepancy(
            combination, f"an external transfer must leave registry {sender}"))
    return found


def _no_more(proposal: ProposalView) -> list[Discrepancy]:
    return []


def _same_account(proposal: ProposalView) -> list[Discrepancy]:
    if proposal.transferring != proposal.acquiring:
        return [Discrepancy(
            ResponseCode.TYPE_ACCOUNT_COMBINATION_NOT_ALLOWED,
            f"a {proposal.transaction_type.name.lower()} keeps the units in their account")]
    return []


def _only_units(proposal: ProposalView, allowed: Collection[UnitType]) -> list[Discrepancy]:
    return [
        Discrepancy(ResponseCode.TYPE_ACCOUNT_COMBINATION_NOT_ALLOWED,
                    f"a {proposal.transaction_type.name.lower()} cannot take "
                    f"{b.attributes.unit_type.name} units", b)
        for b in proposal.blocks if b.attributes.unit_type not in allowed
    ]


def _conversion_integrity(proposal: ProposalView) -> list[Discrepancy]:
    found = _same_account(proposal)
    found += _only_units(proposal, (UnitType.AAU, UnitType.RMU))
    found += [
        Discrepancy(ResponseCode.TYPE_ACCOUNT_COMBINATION_NOT_ALLOWED,
                    f"a Party converts only units it issued, not units of "
                    f"{b.attributes.originating_registry}", b)
        for b in proposal.blocks
        if b.attributes.originating_registry != proposal.acquiring.registry
    ]
    if len(proposal.unit_types) > 1:
        found.append(Discrepancy(ResponseCode.TYPE_ACCOUNT_COMBINATION_NOT_ALLOWED,
                                 "a conversion converts one unit type at a time"))
    if proposal.project_id is None or proposal.track is None:
        found.append(Discrepancy(ResponseCode.MISSING_FIELD,
                                 "a conversion names its JI project and track"))
    return found


def _target_account(proposal: ProposalView, allowed: Collection[int],
                    what: str) -> list[Discrepancy]:
    if proposal.acquiring.account_type not in allowed:
        return [Discrepancy(
            ResponseCode.TYPE_ACCOUNT_COMBINATION_NOT_ALLOWED,
            f"a {proposal.transaction_type.name.lower()} goes to {what}, not to account "
            f"type {proposal.acquiring.account_type}")]
    return []


def _cancellation_integrity(proposal: ProposalView) -> list[Discrepancy]:
    return _target_account(proposal, CANCELLATION_ACCOUNT_TYPES, "a cancellation account")


def _retirement_integrity(proposal: ProposalView) -> list[Discrepancy]:
    return _target_account(proposal, {AccountType.RETIREMENT}, "the retirement account")


def _replacement_integrity(proposal: ProposalView) -> list[Discrepancy]:
    found = _target_account(proposal, REPLACEMENT_ACCOUNT_TYPES, "a replacement account")
    if found:
        return found
    replaced_type = REPLACEMENT_ACCOUNT_TYPES[AccountType(proposal.acquiring.account_type)]
    if not proposal.replaced_blocks:
        return [Discrepancy(ResponseCode.MISSING_FIELD,
                            "a replacement lists the blocks it replaces")]
    for block in proposal.replaced_blocks:
        if block.attributes.unit_type != replaced_type:
            found.append(Discrepancy(
                ResponseCode.TYPE_ACCOUNT_COMBINATION_NOT_ALLOWED,
                f"account type {proposal.acquiring.account_type} replaces "
                f"{replaced_type.name}, not {block.attributes.unit_type.name}", block))
    for block in proposal.blocks:
        if block.attributes.unit_type not in REPLACING_UNIT_TYPES[replaced_type]:
            found.append(Discrepancy(
                ResponseCode.REPLACEMENT_UNIT_TYPE_NOT_ALLOWED,
                f"{block.attributes.unit_type.name} cannot replace {replaced_type.name}",
                block))
    replaced = sum(b.quantity for b in proposal.replaced_blocks)
    if replaced != proposal.quantity:
        found.append(Discrepancy(
            ResponseCode.TYPE_ACCOUNT_COMBINATION_NOT_ALLOWED,
            f"{proposal.quantity} units cannot replace {replaced} units"))
    return found + _overlaps(proposal.replaced_blocks)


def _carry_over_integrity(proposal: ProposalView) -> list[Discrepancy]:
    combination = ResponseCode.TYPE_ACCOUNT_COMBINATION_NOT_ALLOWED
    found = []
    if len(proposal.unit_types) > 1:
        found.append(Discrepancy(combination, "a carry-over carries one unit type at a time"))
    for block in proposal.blocks:
        unit_type = block.attributes.unit_type
        if unit_type not in CARRY_OVER_TARGET:
            found.append(Discrepancy(combination,
                                     f"{unit_type.name} units cannot be carried over", block))
            continue
        target = CARRY_OVER_TARGET[unit_type]
        if target is None and proposal.acquiring != proposal.transferring:
            found.append(Discrepancy(
                combination, f"{unit_type.name} units are carried over in their account",
                block))
        if target is not None and proposal.acquiring.account_type != target:
            found.append(Discrepancy(
                combination, f"{unit_type.name} units are carried over into the previous "
                f"period surplus reserve ({int(target)})", block))
    return found


def _expiry_change_integrity(proposal: ProposalView) -> list[Discrepancy]:
    found = _same_account(proposal) + _only_units(proposal, (UnitType.TCER, UnitType.LCER))
    if proposal.new_expiry_date is None:
        found.append(Discrepancy(ResponseCode.MISSING_FIELD,
                                 "an expiry date change names the new date"))
    return found


TYPE_INTEGRITY = {
    T.CONVERSION: _conversion_integrity,
    T.CANCELLATION: _cancellation_integrity,
    T.RETIREMENT: _retirement_integrity,
    T.REPLACEMENT: _replacement_integrity,
    T.CARRY_OVER: _carry_over_integrity,
    T.EXPIRY_DATE_CHANGE: _expiry_change_integrity,
}


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


# Family 5 (type-specific) and 8 (notices): checks that need the ITL's records


def check_not_expired(proposal: ProposalView, today: date) -> None:
    """tCERs and lCERs past their expiry date can no longer move (3007)."""
    refuse_if_any([
        Discrepancy(ResponseCode.UNIT_EXPIRED,
                    f"{b.attributes.unit_type.name} block {b.serials.start}-{b.serials.end} "
                    f"expired on {b.attributes.expiry_date}", b)
        for b in proposal.blocks
        if b.attributes.expiry_date is not None and b.attributes.expiry_date < today
    ])


@dataclass(frozen=True)
class JiProject:
    """A JI project as the ITL knows it (track 2 data comes from the JISC)."""

    project_id: str
    host_party: str
    track: int
    approved_quantity: int
    converted: int = 0


def check_conversion(proposal: ProposalView, project: JiProject | None) -> None:
    """Track 2 conversions need a JISC-approved project with quantity left (4002)."""
    if proposal.track != 2:
        return
    if project is None or project.track != 2:
        raise ProposalRefused([Discrepancy(
            ResponseCode.CONVERSION_WITHOUT_PROJECT,
            f"JI project {proposal.project_id} has no JISC determination at the ITL")])
    if project.host_party != proposal.acquiring.registry:
        raise ProposalRefused([Discrepancy(
            ResponseCode.CONVERSION_WITHOUT_PROJECT,
            f"JI project {project.project_id} is hosted by {project.host_party}")])
    if project.converted + proposal.quantity > project.approved_quantity:
        raise ProposalRefused([Discrepancy(
            ResponseCode.CONVERSION_WITHOUT_PROJECT,
            f"JI project {project.project_id} would have {project.converted + proposal.quantity}"
            f" ERUs, over the {project.approved_quantity} the JISC approved")])


def carry_over_limit(assigned_amount: int) -> int:
    """CERs or ERUs a Party may carry over: 2.5 % of its assigned amount, rounded down."""
    return assigned_amount * CARRY_OVER_LIMIT_PER_THOUSAND // 1000


def check_carry_over(proposal: ProposalView, today: date, assigned_amount: int | None,
                     carried_so_far: int) -> None:
    """Carry-over after the end of the period, within the CER/ERU limits (4003)."""
    periods = {b.attributes.applicable_commitment_period for b in proposal.blocks}
    for period in sorted(periods):
        end = COMMITMENT_PERIOD_END.get(period)
        if end is None or today <= end:
            raise ProposalRefused([Discrepancy(
                ResponseCode.CARRY_OVER_OVER_LIMIT,
                f"units of period {period} can be carried over only after it ends "
                f"({end})")])
    (unit_type,) = proposal.unit_types
    if unit_type == UnitType.AAU:
        return
    if assigned_amount is None:
        raise ProposalRefused([Discrepancy(
            ResponseCode.CARRY_OVER_OVER_LIMIT,
            "no assigned amount recorded, so no CER or ERU carry-over limit")])
    limit = carry_over_limit(assigned_amount)
    if carried_so_far + proposal.quantity > limit:
        raise ProposalRefused([Discrepancy(
            ResponseCode.CARRY_OVER_OVER_LIMIT,
            f"{carried_so_far + proposal.quantity} {unit_type.name} carried over would "
            f"exceed 2.5 % of the assigned amount ({limit})")])


#: The transactions that fulfil each notice: transaction type and the acquiring account
#: types allowed (None: any). Notices 7, 10 and 11 ask for no transaction. Lost lCERs
#: (notices 4, 5) are replaced or cancelled into the mandatory cancellation account
#: (protocol.md 2.8).
Fulfilment = tuple[TransactionType, frozenset[int] | None]
NOTICE_FULFILMENT: dict[int, tuple[Fulfilment, ...]] = {
    1: ((T.CANCELLATION, frozenset({AccountType.NET_SOURCE_CANCELLATION})),),
    2: ((T.CANCELLATION, frozenset({AccountType.NON_COMPLIANCE_CANCELLATION})),),
    3: ((T.REPLACEMENT, frozenset({AccountType.TCER_REPLACEMENT_EXPIRY,
                                   AccountType.LCER_REPLACEMENT_EXPIRY})),),
    4: ((T.REPLACEMENT, frozenset({AccountType.LCER_REPLACEMENT_REVERSAL})),
        (T.CANCELLATION, frozenset({AccountType.MANDATORY_CANCELLATION}))),
    5: ((T.REPLACEMENT, frozenset({AccountType.LCER_REPLACEMENT_NON_SUBMISSION})),
        (T.CANCELLATION, frozenset({AccountType.MANDATORY_CANCELLATION}))),
    6: ((T.EXTERNAL_TRANSFER, frozenset({AccountType.EXCESS_ISSUANCE_CANCELLATION})),),
    8: ((T.CARRY_OVER, None),),
    9: ((T.EXPIRY_DATE_CHANGE, None),),
    12: ((T.EXTERNAL_TRANSFER, frozenset({AccountType.CCS_NET_REVERSAL_CANCELLATION})),),
    13: ((T.EXTERNAL_TRANSFER, frozenset({AccountType.CCS_NON_SUBMISSION_CANCELLATION})),),
}


@dataclass(frozen=True)
class NoticeView:
    notice_id: int
    notice_type: int
    registry: str
    status: int
    target_value: int | None
    fulfilled_quantity: int


def check_notice(proposal: ProposalView, notice: NoticeView | None) -> None:
    """A proposal that names a notice must fit it: open, addressed to the proposer, the
    right transaction type and account (4005)."""
    if proposal.notification_id is None:
        return
    reason = _notice_mismatch(proposal, notice)
    if reason:
        raise ProposalRefused([Discrepancy(ResponseCode.NOTICE_UNKNOWN_OR_CLOSED, reason)])


def _notice_mismatch(proposal: ProposalView, notice: NoticeView | None) -> str | None:
    if notice is None:
        return f"notice {proposal.notification_id} is unknown"
    if notice.registry != proposal.proposing_registry:
        return f"notice {notice.notice_id} is addressed to {notice.registry}"
    if notice.status == 3:
        return f"notice {notice.notice_id} is already fulfilled"
    fulfilments = NOTICE_FULFILMENT.get(notice.notice_type)
    if fulfilments is None:
        return f"notice type {notice.notice_type} asks for no transaction"
    fitting = [accounts for kind, accounts in fulfilments if kind == proposal.transaction_type]
    if not fitting:
        kinds = " or ".join(kind.name.lower() for kind, _ in fulfilments)
        return (f"notice {notice.notice_id} is fulfilled by a {kinds}, not a "
                f"{proposal.transaction_type.name.lower()}")
    accounts = fitting[0]
    if accounts is not None and proposal.acquiring.account_type not in accounts:
        return (f"notice {notice.notice_id} sends units to account types "
                f"{sorted(int(a) for a in accounts)}")
    return None


def fulfilled_by(proposal: ProposalView) -> int:
    """Units a completed transaction counts towards its notice: replaced units for a
    replacement, moved units otherwise."""
    if proposal.transaction_type == T.REPLACEMENT:
        return sum(b.quantity for b in proposal.replaced_blocks)
    return proposal.quantity


def notice_status_after(target_value: int | None, fulfilled: int) -> int:
    """Notice status once ``fulfilled`` units were acted on: 3 completed, 2 incomplete."""
    if target_value is not None and fulfilled >= target_value:
        return 3
    return 2
