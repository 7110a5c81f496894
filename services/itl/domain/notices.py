"""ITL notices: which transactions fulfil each type, and the check that a fulfilling
proposal fits its notice in full (protocol.md 2.8; check family 8, protocol.md 3.2).

Pure Python: no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

from services.itl.domain.proposal import ProposalView, refuse
from shared.blocks import UnitBlock
from shared.codes import AccountType, NoticeStatus, NoticeType, ResponseCode, TransactionType

T = TransactionType
N = NoticeType

#: Days before expiry at which the ITL sends notice 3 (impending expiry) (O).
IMPENDING_EXPIRY_NOTICE_DAYS = 30

#: The transactions that fulfil each notice: transaction type and the acquiring account
#: types allowed (None: any). Notices 7, 10 and 11 ask for no transaction. Lost lCERs
#: (notices 4, 5) are replaced or cancelled into the mandatory cancellation account
#: (protocol.md 2.8).
Fulfilment = tuple[TransactionType, frozenset[int] | None]
NOTICE_FULFILMENT: dict[int, tuple[Fulfilment, ...]] = {
    N.NET_SOURCE_CANCELLATION: ((T.CANCELLATION,
                                 frozenset({AccountType.NET_SOURCE_CANCELLATION})),),
    N.NON_COMPLIANCE_CANCELLATION: ((T.CANCELLATION,
                                     frozenset({AccountType.NON_COMPLIANCE_CANCELLATION})),),
    N.IMPENDING_EXPIRY: ((T.REPLACEMENT, frozenset({AccountType.TCER_REPLACEMENT_EXPIRY,
                                                    AccountType.LCER_REPLACEMENT_EXPIRY})),),
    N.REVERSAL_OF_STORAGE: ((T.REPLACEMENT,
                             frozenset({AccountType.LCER_REPLACEMENT_REVERSAL})),
                            (T.CANCELLATION, frozenset({AccountType.MANDATORY_CANCELLATION}))),
    N.NON_SUBMISSION_OF_CERTIFICATION_REPORT: (
        (T.REPLACEMENT, frozenset({AccountType.LCER_REPLACEMENT_NON_SUBMISSION})),
        (T.CANCELLATION, frozenset({AccountType.MANDATORY_CANCELLATION}))),
    N.EXCESS_ISSUANCE: ((T.EXTERNAL_TRANSFER,
                         frozenset({AccountType.EXCESS_ISSUANCE_CANCELLATION})),),
    N.UNIT_CARRY_OVER: ((T.CARRY_OVER, None),),
    N.EXPIRY_DATE_CHANGE: ((T.EXPIRY_DATE_CHANGE, None),),
    N.CCS_NET_REVERSAL_OF_STORAGE: ((T.EXTERNAL_TRANSFER,
                                     frozenset({AccountType.CCS_NET_REVERSAL_CANCELLATION})),),
    N.CCS_NON_SUBMISSION_OF_VERIFICATION_REPORT: (
        (T.EXTERNAL_TRANSFER, frozenset({AccountType.CCS_NON_SUBMISSION_CANCELLATION})),),
}
#: The CDM registry's cancellation accounts receive units only on the notice each
#: answers (protocol.md 2.8): excess issuance 6, CCS net reversal 12, CCS verification 13.
NOTICE_FOR_ACCOUNT = {
    AccountType.EXCESS_ISSUANCE_CANCELLATION: N.EXCESS_ISSUANCE,
    AccountType.CCS_NET_REVERSAL_CANCELLATION: N.CCS_NET_REVERSAL_OF_STORAGE,
    AccountType.CCS_NON_SUBMISSION_CANCELLATION: N.CCS_NON_SUBMISSION_OF_VERIFICATION_REPORT,
}
#: Notices about a CDM project's own lCERs: the units acted on must be of that project.
PROJECT_NOTICES = frozenset({N.REVERSAL_OF_STORAGE, N.NON_SUBMISSION_OF_CERTIFICATION_REPORT})


@dataclass(frozen=True)
class NoticeView:
    """A notice as the check needs it; ``pending_quantity`` counts what approved,
    unfinished transactions will fulfil."""

    notice_id: int
    notice_type: int
    registry: str
    status: int
    target_value: int | None
    fulfilled_quantity: int
    pending_quantity: int = 0
    unit_type: int | None = None
    project_id: str | None = None
    commitment_period: int | None = None
    blocks: tuple[UnitBlock, ...] = field(default=())
    target_date: date | None = None


def check_notice(proposal: ProposalView, notice: NoticeView | None) -> None:
    """A proposal that names a notice must fit it in full (4005, 4013, 4014); one into a
    CDM cancellation account must name its notice (4005):

    - the notice exists, is addressed to the proposer, is not completed, and asks for
      this transaction type into one of its account types (4005);
    - the units acted on (the replaced units of a replacement, the moved ones otherwise)
      are of the notice's unit type, commitment period and, for notices 4 and 5, project,
      and lie inside the blocks it lists (4013); an expiry date change sets the date the
      notice gives as its target date (4013);
    - with what earlier and pending transactions fulfil, they do not exceed its target
      (4014).
    """
    if proposal.notification_id is None:
        needed = NOTICE_FOR_ACCOUNT.get(AccountType(proposal.acquiring.account_type)) \
            if proposal.acquiring.account_type in NOTICE_FOR_ACCOUNT else None
        if needed is not None:
            refuse(ResponseCode.NOTICE_UNKNOWN_OR_CLOSED,
                   f"units go to account type {proposal.acquiring.account_type} only on an "
                   f"ITL notice {int(needed)} (notification_id)")
        return
    reason = _notice_mismatch(proposal, notice)
    if reason:
        refuse(ResponseCode.NOTICE_UNKNOWN_OR_CLOSED, reason)
    assert notice is not None
    for block in proposal.acted_on:
        misfit = _unit_misfit(block, notice)
        if misfit:
            refuse(ResponseCode.UNITS_DO_NOT_MATCH_NOTICE,
                   f"block {block.serials.start}-{block.serials.end}: {misfit}", block)
    if (proposal.transaction_type == T.EXPIRY_DATE_CHANGE and notice.target_date is not None
            and proposal.new_expiry_date != notice.target_date):
        refuse(ResponseCode.UNITS_DO_NOT_MATCH_NOTICE,
               f"notice {notice.notice_id} changes the expiry date to {notice.target_date}, "
               f"not {proposal.new_expiry_date}")
    quantity = sum(b.quantity for b in proposal.acted_on)
    if notice.target_value is not None:
        taken = notice.fulfilled_quantity + notice.pending_quantity
        if taken + quantity > notice.target_value:
            refuse(ResponseCode.NOTICE_TARGET_EXCEEDED,
                   f"notice {notice.notice_id} asks for {notice.target_value} units; "
                   f"{taken} are fulfilled or under way, so {quantity} more exceed it")


def _notice_mismatch(proposal: ProposalView, notice: NoticeView | None) -> str | None:
    if notice is None:
        return f"notice {proposal.notification_id} is unknown"
    if notice.registry != proposal.proposing_registry:
        return f"notice {notice.notice_id} is addressed to {notice.registry}"
    if notice.status == NoticeStatus.COMPLETED:
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


def _unit_misfit(block: UnitBlock, notice: NoticeView) -> str | None:
    a = block.attributes
    if notice.unit_type is not None and a.unit_type != notice.unit_type:
        return f"{a.unit_type.name} units, the notice is about unit type {notice.unit_type}"
    if (notice.commitment_period is not None
            and a.applicable_commitment_period != notice.commitment_period):
        return (f"units of period {a.applicable_commitment_period}, the notice is about "
                f"period {notice.commitment_period}")
    if (notice.notice_type in PROJECT_NOTICES and notice.project_id is not None
            and a.project_id != notice.project_id):
        return f"units of project {a.project_id}, the notice is about {notice.project_id}"
    if notice.blocks and not any(_inside(block, listed) for listed in notice.blocks):
        return "not among the unit blocks the notice lists"
    return None


def _inside(block: UnitBlock, listed: UnitBlock) -> bool:
    return (block.attributes.originating_registry == listed.attributes.originating_registry
            and listed.serials.contains(block.serials))


def fulfilled_by(proposal: ProposalView) -> int:
    """Units a transaction counts towards its notice: the replaced units of a
    replacement, the moved units otherwise."""
    return sum(b.quantity for b in proposal.acted_on)


def fulfilment_after(target_value: int | None, fulfilled: int, quantity: int) -> int:
    """What a notice counts as fulfilled after ``quantity`` more: never above its target."""
    total = fulfilled + quantity
    return total if target_value is None else min(total, target_value)


def notice_status_after(target_value: int | None, fulfilled: int) -> int:
    """Notice status once ``fulfilled`` units were acted on: 3 completed, 2 incomplete."""
    if target_value is not None and fulfilled >= target_value:
        return NoticeStatus.COMPLETED
    return NoticeStatus.INCOMPLETE
