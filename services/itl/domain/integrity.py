"""Check families 1 to 4 (protocol.md 3.2): version and sender, registry status, and
data integrity, which includes the account-type table of ``shared.rules.accounts``.

Pure Python: no I/O, no wire contracts, no clock.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from itertools import pairwise

from services.itl.domain.proposal import (
    Discrepancy,
    ProposalRefused,
    ProposalView,
    refuse_if_any,
)
from shared.blocks import UnitBlock
from shared.codes import AccountType, ResponseCode, TransactionType, UnitType
from shared.rules.accounts import account_rule_breaches
from shared.rules.periods import REPLACED_UNIT_TYPE, replacement_breaches

T = TransactionType
COMBINATION = ResponseCode.TYPE_ACCOUNT_COMBINATION_NOT_ALLOWED
#: Transaction types the ITL handles: every primary type of protocol.md 2.6.
HANDLED_TRANSACTION_TYPES = frozenset(TransactionType)


# Family 1 (version and sender, 1001, 1002) is checked on the message, before anything
# is recorded: shared.contracts.validity.


# Family 2: registry status (1201)


def check_registries_known(proposal: ProposalView, known: Collection[str]) -> None:
    """For an external transfer, the acquiring registry is known (1201); the sender is
    one the ITL knows, or the message would have been refused (1002)."""
    if proposal.is_external and proposal.acquiring.registry not in known:
        raise ProposalRefused([Discrepancy(
            ResponseCode.REGISTRY_UNKNOWN,
            f"acquiring registry {proposal.acquiring.registry} is unknown to the ITL",
        )])


# Family 4: data integrity (2001-2006)


def check_data_integrity(sender: str, proposal: ProposalView) -> None:
    """Transaction type, accounts and blocks fit together (2001, 2003, 2004, 2006).

    The account types come from the shared table (``shared.rules.accounts``); start >
    end (2002) and more than 3000 blocks (2005) never get here: the wire contract
    refuses them, the consumer answers the sender with that code and dead-letters the
    message (``shared.contracts.payload_code``, docs/adr/0010).
    """
    if proposal.transaction_type not in HANDLED_TRANSACTION_TYPES:
        raise ProposalRefused([Discrepancy(
            ResponseCode.UNKNOWN_CODE,
            f"transaction type {proposal.transaction_type.name} is not handled by the ITL",
        )])
    if proposal.transaction_type != T.ISSUANCE and proposal.transferring is None:
        raise ProposalRefused([Discrepancy(ResponseCode.MISSING_FIELD,
                                           "a transfer needs a transferring account")])
    found = [Discrepancy(COMBINATION, breach.reason) for breach in account_rule_breaches(
        proposal.transaction_type, proposal.effective_supplementary_type,
        proposal.proposing_registry,
        proposal.transferring.side if proposal.transferring else None,
        proposal.acquiring.side, [b.attributes for b in proposal.blocks])]
    if not found:
        found = TYPE_INTEGRITY.get(proposal.transaction_type, _no_more)(proposal)
    if proposal.transaction_type == T.ISSUANCE:
        found += _issued_here(sender, proposal)
    found += _lulucf_activity_present(proposal.blocks)
    found += _overlaps(proposal.blocks)
    refuse_if_any(found)


def _issued_here(sender: str, proposal: ProposalView) -> list[Discrepancy]:
    found = []
    if proposal.acquiring.registry != sender:
        found.append(Discrepancy(
            COMBINATION, f"an issuance by {sender} must credit an account in {sender}"))
    return found + [
        Discrepancy(COMBINATION, f"{sender} cannot issue units originating in "
                    f"{b.attributes.originating_registry}", b)
        for b in proposal.blocks if b.attributes.originating_registry != sender
    ]


def _issuance_integrity(proposal: ProposalView) -> list[Discrepancy]:
    """New units are valid for the period they are issued for; AAUs and RMUs carry no
    project, track or expiry date; CDM units name their project (protocol.md 2.3)."""
    found = []
    for b in proposal.blocks:
        a = b.attributes
        if a.applicable_commitment_period != a.original_commitment_period:
            found.append(Discrepancy(
                COMBINATION, f"units issued for period {a.original_commitment_period} are "
                f"valid for it, not for period {a.applicable_commitment_period}", b))
        if a.unit_type in (UnitType.AAU, UnitType.RMU):
            extra = [name for name, value in (("project", a.project_id), ("track", a.track),
                                              ("expiry date", a.expiry_date)) if value]
            if extra:
                found.append(Discrepancy(
                    COMBINATION, f"{a.unit_type.name}s are issued without "
                    f"{' or '.join(extra)}", b))
        elif a.project_id is None:
            found.append(Discrepancy(ResponseCode.MISSING_FIELD,
                                     f"{a.unit_type.name}s are issued for a CDM project", b))
    return found


def _no_more(proposal: ProposalView) -> list[Discrepancy]:
    return []


def _conversion_integrity(proposal: ProposalView) -> list[Discrepancy]:
    found = [
        Discrepancy(COMBINATION, f"a Party converts only units it issued, not units of "
                    f"{b.attributes.originating_registry}", b)
        for b in proposal.blocks
        if b.attributes.originating_registry != proposal.acquiring.registry
    ]
    if len(proposal.unit_types) > 1:
        found.append(Discrepancy(COMBINATION, "a conversion converts one unit type at a time"))
    if proposal.project_id is None or proposal.track is None:
        found.append(Discrepancy(ResponseCode.MISSING_FIELD,
                                 "a conversion names its JI project and track"))
    return found


def _replacement_integrity(proposal: ProposalView) -> list[Discrepancy]:
    account_type = AccountType(proposal.acquiring.account_type)
    replaced_type = REPLACED_UNIT_TYPE[account_type]
    if not proposal.replaced_blocks:
        return [Discrepancy(ResponseCode.MISSING_FIELD,
                            "a replacement lists the blocks it replaces")]
    found = [
        Discrepancy(COMBINATION, f"account type {int(account_type)} replaces "
                    f"{replaced_type.name}, not {b.attributes.unit_type.name}", b)
        for b in proposal.replaced_blocks if b.attributes.unit_type != replaced_type
    ]
    found += [Discrepancy(ResponseCode.REPLACEMENT_UNIT_TYPE_NOT_ALLOWED, reason)
              for reason in replacement_breaches(account_type, proposal.replaced_blocks,
                                                 proposal.blocks)]
    replaced = sum(b.quantity for b in proposal.replaced_blocks)
    if replaced != proposal.quantity:
        found.append(Discrepancy(COMBINATION,
                                 f"{proposal.quantity} units cannot replace {replaced} units"))
    return found + _overlaps(proposal.replaced_blocks)


def _carry_over_integrity(proposal: ProposalView) -> list[Discrepancy]:
    if len(proposal.unit_types) > 1:
        return [Discrepancy(COMBINATION, "a carry-over carries one unit type at a time")]
    return []


def _expiry_change_integrity(proposal: ProposalView) -> list[Discrepancy]:
    if proposal.new_expiry_date is None:
        return [Discrepancy(ResponseCode.MISSING_FIELD,
                            "an expiry date change names the new date")]
    return []


TYPE_INTEGRITY = {
    T.ISSUANCE: _issuance_integrity,
    T.CONVERSION: _conversion_integrity,
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
