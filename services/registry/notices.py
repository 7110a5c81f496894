"""What an ITL notice asks of the registry (protocol.md 2.8), and the Decree's month for
the notices that ask for a withdrawal or a replacement (cl. 23, 26). Pure Python: time
is passed in."""

from __future__ import annotations

from datetime import datetime

from services.registry.decisions import DecisionKind, FollowUp, one_month_after
from shared.codes import AccountType, NoticeStatus, NoticeType, ResponseCode
from shared.errors import RuleViolation

N = NoticeType

#: Required action, shown to the operator next to the notice's deadline.
REQUIRED_ACTION: dict[NoticeType, str] = {
    N.NET_SOURCE_CANCELLATION:
        "cancel the target quantity into the net source cancellation account (210)",
    N.NON_COMPLIANCE_CANCELLATION:
        "cancel the target quantity into the non-compliance cancellation account (220)",
    N.IMPENDING_EXPIRY:
        "replace the listed tCER/lCER blocks before they expire (411 / 421)",
    N.REVERSAL_OF_STORAGE: "replace the affected lCERs (422)",
    N.NON_SUBMISSION_OF_CERTIFICATION_REPORT: "replace the affected lCERs (423)",
    N.EXCESS_ISSUANCE:
        "transfer the target quantity to the CDM excess issuance account (CDM 240)",
    N.COMMITMENT_PERIOD_RESERVE: "none: informs of the commitment period reserve",
    N.UNIT_CARRY_OVER: "carry over the units named, within the limits",
    N.EXPIRY_DATE_CHANGE: "change the expiry date of the listed tCERs/lCERs",
    N.NOTIFICATION_UPDATE: "none: amends an earlier notice",
    N.EU15_COMMITMENT_PERIOD_RESERVE: "none: EU bubble only",
    N.CCS_NET_REVERSAL_OF_STORAGE: "transfer the target quantity to CDM 241",
    N.CCS_NON_SUBMISSION_OF_VERIFICATION_REPORT: "transfer the target quantity to CDM 242",
}

#: Notices that ask for a withdrawal (cl. 22), with the cancellation account the units
#: go to (V protocol.md 2.8: notice 1 -> 210, notice 2 -> 220).
WITHDRAWAL_NOTICE_ACCOUNT: dict[NoticeType, AccountType] = {
    N.NET_SOURCE_CANCELLATION: AccountType.NET_SOURCE_CANCELLATION,
    N.NON_COMPLIANCE_CANCELLATION: AccountType.NON_COMPLIANCE_CANCELLATION,
}
#: Notices that ask for a replacement of tCERs/lCERs (cl. 24; protocol.md 2.8: 3, 4, 5).
REPLACEMENT_NOTICES = frozenset({N.IMPENDING_EXPIRY, N.REVERSAL_OF_STORAGE,
                                 N.NON_SUBMISSION_OF_CERTIFICATION_REPORT})
#: Notices the Decree gives one month from their receipt (cl. 23, 26).
DECREE_WINDOW_NOTICES = frozenset(WITHDRAWAL_NOTICE_ACCOUNT) | REPLACEMENT_NOTICES


def decree_due_at(notice_type: int, received_at: datetime) -> datetime | None:
    """The Decree's deadline of a withdrawal or replacement notice: one month from its
    receipt in the registry (cl. 23, 26); None for other notices. The ITL's own
    ``action_due_date`` is shown beside it."""
    return one_month_after(received_at) if notice_type in DECREE_WINDOW_NOTICES else None


def notice_follow_up(notice_type: int, status: int, received_at: datetime,
                     fulfilled_at: datetime | None, now: datetime) -> FollowUp:
    """Due or overdue until the ITL reports the notice completed (status 3), then done,
    or done late when completed after the Decree's deadline; notices without that
    deadline are open until completed."""
    due = decree_due_at(notice_type, received_at)
    if status == NoticeStatus.COMPLETED:
        late = due is not None and fulfilled_at is not None and fulfilled_at > due
        return FollowUp.DONE_LATE if late else FollowUp.DONE
    if due is None:
        return FollowUp.OPEN
    return FollowUp.OVERDUE if now > due else FollowUp.DUE


def check_answers(kind: DecisionKind, notice_id: int, notice_type: int, status: int) -> None:
    """A withdrawal decision may answer notice 1 or 2, a replacement decision notice 3,
    4 or 5, while the notice is not completed (4005 otherwise)."""
    fits = {DecisionKind.WITHDRAWAL: frozenset(WITHDRAWAL_NOTICE_ACCOUNT),
            DecisionKind.REPLACEMENT: REPLACEMENT_NOTICES}.get(kind)
    if fits is not None and notice_type not in fits:
        raise RuleViolation(ResponseCode.NOTICE_UNKNOWN_OR_CLOSED,
                            f"notice {notice_id} (type {notice_type}) asks for no "
                            f"{kind.value}")
    if status == NoticeStatus.COMPLETED:
        raise RuleViolation(ResponseCode.NOTICE_UNKNOWN_OR_CLOSED,
                            f"notice {notice_id} is already completed")
