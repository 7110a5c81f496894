"""Decisions of the authorised body and their one-month window (Decree 684 cl. 10-29).

A decision authorises an operation. Withdrawal (cl. 22-23) and replacement (cl. 24-26)
are carried out within one month of the receipt of the ITL's notice or of the decision,
unless within that month the units are appealed and the decision revised. Cancellation
and retirement (cl. 27-29) are decided after the end of their commitment period. Pure
Python: time is passed in; every moment is a timezone-aware UTC ``datetime`` of the
simulation clock.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from shared.codes import COMMITMENT_PERIOD_YEARS, AccountType, ResponseCode, UnitType
from shared.errors import RuleViolation


class DecisionKind(StrEnum):
    ISSUANCE = "issuance"  # cl. 10-11 (AAU), 14-15 (RMU)
    CONVERSION = "conversion"  # cl. 12-13, track 1
    EXTERNAL_TRANSFER = "external_transfer"  # cl. 16-18, ERUs
    WITHDRAWAL = "withdrawal"  # cl. 22-23
    REPLACEMENT = "replacement"  # cl. 24-26
    CANCELLATION = "cancellation"  # cl. 27-29, into a cancellation account
    RETIREMENT = "retirement"  # cl. 27-29, towards the commitment: the retirement account


#: Decisions carried out within a month unless appealed and revised (cl. 23, 26).
WINDOWED_KINDS = frozenset({DecisionKind.WITHDRAWAL, DecisionKind.REPLACEMENT})
#: Decisions taken only after the end of their commitment period (cl. 28), for the
#: quantity the commitment sets (cl. 29).
AFTER_PERIOD_KINDS = frozenset({DecisionKind.CANCELLATION, DecisionKind.RETIREMENT})


class WithdrawalGround(StrEnum):
    """Cl. 22: why units are withdrawn from circulation."""

    EXCESS_ISSUANCE = "excess_issuance"  # 22(1)
    CRITERIA_NOT_MET = "criteria_not_met"  # 22(2)
    VOLUNTARY = "voluntary"  # 22(3)


#: The cancellation account each ground of cl. 22 sends units to, in the units'
#: commitment period. 22(1) excess issuance: administrative cancellation 260 (O: our
#: mapping, the protocol names no account for a national correction); 22(2) criteria not
#: met: non-compliance cancellation 220 (V protocol.md 2.7, 2.8 notice 2; a decision that
#: answers a net source notice 1 goes to 210, see ``notices.WITHDRAWAL_NOTICE_ACCOUNT``);
#: 22(3) voluntary: voluntary cancellation 230 (V protocol.md 2.7).
WITHDRAWAL_ACCOUNT = {
    WithdrawalGround.EXCESS_ISSUANCE: AccountType.ADMINISTRATIVE_CANCELLATION,
    WithdrawalGround.CRITERIA_NOT_MET: AccountType.NON_COMPLIANCE_CANCELLATION,
    WithdrawalGround.VOLUNTARY: AccountType.VOLUNTARY_CANCELLATION,
}


class DecisionState(StrEnum):
    RECORDED = "recorded"  # in force, not yet carried out
    APPEALED = "appealed"  # suspended until revised, the appeal dismissed, or the month ends
    DROPPED = "dropped"  # revised away
    EXECUTING = "executing"  # its transaction is with the ITL
    EXECUTED = "executed"  # its transaction completed


class FollowUp(StrEnum):
    """What the operator sees, for decisions and ITL notices alike."""

    DUE = "due"
    OVERDUE = "overdue"
    SUSPENDED = "suspended"
    IN_PROGRESS = "in_progress"
    DONE = "done"
    DONE_LATE = "done_late"  # completed after its due date
    DROPPED = "dropped"
    OPEN = "open"  # without a deadline, still usable (or, a notice, still open)


@dataclass(frozen=True)
class Decision:
    decision_id: str
    kind: DecisionKind
    reference: str
    decided_at: datetime
    unit_type: UnitType
    quantity: int
    account_id: int
    commitment_period: int
    due_at: datetime | None = None
    state: DecisionState = DecisionState.RECORDED
    used_quantity: int = 0
    ground: WithdrawalGround | None = None
    notice_id: int | None = None
    project_id: str | None = None
    lulucf_activity: int | None = None
    cancellation_account_type: AccountType | None = None
    transaction_ids: tuple[str, ...] = field(default=())
    executed_at: datetime | None = None
    #: who recorded it: the role and the subject (``authorised-body kz-ab-1``)
    decided_by: str | None = None

    @property
    def remaining(self) -> int:
        return self.quantity - self.used_quantity


def one_month_after(moment: datetime) -> datetime:
    """The same day and time one month later; the month's last day when it has no such
    day (31 Jan -> 28/29 Feb, 31 Dec -> 31 Jan). The one place for the month of cl. 23
    and 26."""
    year, month = (moment.year + 1, 1) if moment.month == 12 else (moment.year,
                                                                  moment.month + 1)
    day = min(moment.day, calendar.monthrange(year, month)[1])
    return moment.replace(year=year, month=month, day=day)


def due_date(kind: DecisionKind, decided_at: datetime,
             notice_received_at: datetime | None = None) -> datetime | None:
    """When a withdrawal or replacement must be done: one month from the receipt of the
    ITL notice it answers, else from the decision (cl. 23, 26); None for other kinds."""
    if kind not in WINDOWED_KINDS:
        return None
    return one_month_after(notice_received_at or decided_at)


def first_moment_after(period: int) -> datetime:
    """1 January 00:00 UTC of the year after commitment period ``period``."""
    _, last_year = COMMITMENT_PERIOD_YEARS[period]
    return datetime(last_year + 1, 1, 1, tzinfo=UTC)


def check_decided_after_period(kind: DecisionKind, period: int, decided_at: datetime) -> None:
    """Cancellation and retirement are decided after the end of the commitment period
    (cl. 28): a decision on or before 31 December of its last year is refused (422)."""
    if kind not in AFTER_PERIOD_KINDS:
        return
    if period not in COMMITMENT_PERIOD_YEARS:
        raise RuleViolation(ResponseCode.UNKNOWN_CODE, f"no commitment period {period}")
    end = first_moment_after(period)
    if decided_at < end:
        raise RuleViolation(
            ResponseCode.TYPE_ACCOUNT_COMBINATION_NOT_ALLOWED,
            f"a {kind.value} decision is taken after the end of the commitment period "
            f"({end.year - 1}), cl. 28: from {end.date()} on, not on {decided_at.date()}")


def to_record(decision: Decision, notice_received_at: datetime | None = None) -> Decision:
    """Check a new decision and give it its due date (cl. 22-29)."""
    if decision.kind == DecisionKind.WITHDRAWAL and decision.ground is None:
        raise RuleViolation(ResponseCode.MISSING_FIELD, "a withdrawal decision gives its "
                            "ground (cl. 22): excess_issuance, criteria_not_met or voluntary")
    if decision.kind == DecisionKind.REPLACEMENT and decision.notice_id is None:
        raise RuleViolation(ResponseCode.MISSING_FIELD,
                            "a replacement decision names the ITL notice listing the units")
    check_decided_after_period(decision.kind, decision.commitment_period, decision.decided_at)
    return replace(decision, state=DecisionState.RECORDED,
                   due_at=due_date(decision.kind, decision.decided_at, notice_received_at))


def execution_moment(decision: Decision, lead: timedelta) -> datetime | None:
    """When the registry carries out an unappealed windowed decision by itself: ``lead``
    before its due date, so that the transaction completes within the month."""
    if decision.kind not in WINDOWED_KINDS or decision.due_at is None:
        return None
    return decision.due_at - lead


def appeal_lapsed(decision: Decision, now: datetime) -> bool:
    """An appeal the authorised body neither upheld by a revision nor dismissed within
    the month stops nothing (cl. 23, 26: only appealed *and revised* units are not
    withdrawn or replaced); the decision is in force again once its month has ended."""
    return (decision.state == DecisionState.APPEALED and decision.due_at is not None
            and now > decision.due_at)


def is_to_execute(decision: Decision, now: datetime, lead: timedelta) -> bool:
    """Whether the registry carries out a windowed decision by itself now: unappealed
    from ``lead`` before its due date; appealed, once the appeal lapsed."""
    moment = execution_moment(decision, lead)
    if moment is None:
        return False
    if decision.state == DecisionState.RECORDED:
        return now >= moment
    return appeal_lapsed(decision, now)


def appeal(decision: Decision, now: datetime) -> Decision:
    """An appeal within the month suspends a withdrawal or replacement decision not yet
    carried out; at its due date exactly it is still in time."""
    if decision.kind not in WINDOWED_KINDS:
        raise _conflict(f"a {decision.kind.value} decision has no appeal window")
    if decision.state != DecisionState.RECORDED:
        raise _conflict(f"decision {decision.decision_id} is {decision.state.value}")
    assert decision.due_at is not None
    if now > decision.due_at:
        raise _conflict(f"the month for appeals ended on {decision.due_at.date()} "
                        f"({decision.due_at.isoformat()})")
    return replace(decision, state=DecisionState.APPEALED)


def revise(decision: Decision, now: datetime, quantity: int | None, drop: bool) -> Decision:
    """The authorised body revises a decision within its month: it is dropped, or its
    quantity changes. After the month the decision stands (cl. 23, 26).

    Only a revision that answers an appeal (the decision is suspended by one) starts a
    new month from the revision: cl. 23 and 26 tie the month to units "appealed and
    revised" within it. A decision nobody appealed (or whose appeal was dismissed) keeps
    its due date, so revising it again and again never postpones the withdrawal or
    replacement."""
    if decision.due_at is not None and now > decision.due_at:
        raise _conflict(f"the month for revising decision {decision.decision_id} ended on "
                        f"{decision.due_at.date()} ({decision.due_at.isoformat()}), "
                        "cl. 23, 26: the decision stands")
    if decision.state not in (DecisionState.RECORDED, DecisionState.APPEALED):
        raise _conflict(f"decision {decision.decision_id} is {decision.state.value}")
    if drop:
        return replace(decision, state=DecisionState.DROPPED)
    if quantity is None or quantity < 1:
        raise RuleViolation(ResponseCode.MISSING_FIELD,
                            "a revision gives the new quantity or drops the decision")
    appealed = decision.state == DecisionState.APPEALED
    return replace(decision, quantity=quantity, state=DecisionState.RECORDED,
                   due_at=due_date(decision.kind, now) if appealed else decision.due_at)


def dismiss_appeal(decision: Decision) -> Decision:
    """The authorised body dismisses the appeal: the decision is in force again with its
    original due date."""
    if decision.state != DecisionState.APPEALED:
        raise _conflict(f"decision {decision.decision_id} is {decision.state.value}, "
                        "not appealed")
    return replace(decision, state=DecisionState.RECORDED)


def lapse(decision: Decision, now: datetime) -> Decision:
    """The decision in force again when its appeal lapsed; unchanged otherwise."""
    return replace(decision, state=DecisionState.RECORDED) if appeal_lapsed(
        decision, now) else decision


def follow_up(decision: Decision, now: datetime) -> FollowUp:
    """Due, overdue, suspended, in progress, done (or done late), dropped or open, as the
    operator sees it."""
    due = decision.due_at
    if decision.state == DecisionState.EXECUTED:
        late = due is not None and decision.executed_at is not None and \
            decision.executed_at > due
        return FollowUp.DONE_LATE if late else FollowUp.DONE
    if decision.state == DecisionState.DROPPED:
        return FollowUp.DROPPED
    if decision.state == DecisionState.APPEALED:
        return FollowUp.OVERDUE if appeal_lapsed(decision, now) else FollowUp.SUSPENDED
    if decision.state == DecisionState.EXECUTING:
        return FollowUp.IN_PROGRESS
    if due is None:
        return FollowUp.OPEN
    return FollowUp.OVERDUE if now > due else FollowUp.DUE


def use(decision: Decision, kind: DecisionKind, unit_type: UnitType, quantity: int,
        period: int | None = None) -> Decision:
    """Check that an operation fits the decision it refers to, and count it against it.

    ``period``: the commitment period of the units the operation moves, checked for
    cancellation and retirement (the decision names the period it is about)."""
    if decision.kind != kind:
        raise RuleViolation(
            ResponseCode.TYPE_ACCOUNT_COMBINATION_NOT_ALLOWED,
            f"decision {decision.decision_id} authorises a {decision.kind.value}, "
            f"not a {kind.value}", http_status=409)
    if decision.state != DecisionState.RECORDED:
        raise _conflict(f"decision {decision.decision_id} is {decision.state.value}")
    if unit_type != decision.unit_type:
        raise RuleViolation(
            ResponseCode.TYPE_ACCOUNT_COMBINATION_NOT_ALLOWED,
            f"decision {decision.decision_id} is about {decision.unit_type.name}, "
            f"not {unit_type.name}", http_status=409)
    if kind in AFTER_PERIOD_KINDS:
        check_decided_after_period(kind, decision.commitment_period, decision.decided_at)
        if period is not None and period != decision.commitment_period:
            raise _conflict(f"decision {decision.decision_id} is about commitment period "
                            f"{decision.commitment_period}, not {period}")
    if quantity < 1:
        raise _conflict(f"decision {decision.decision_id} leaves no units to use")
    if quantity > decision.remaining:
        raise RuleViolation(
            ResponseCode.ISSUANCE_OVER_LIMIT if kind == DecisionKind.ISSUANCE
            else ResponseCode.TYPE_ACCOUNT_COMBINATION_NOT_ALLOWED,
            f"decision {decision.decision_id} leaves {decision.remaining} units, not "
            f"{quantity}", http_status=409)
    return replace(decision, used_quantity=decision.used_quantity + quantity)


def _conflict(reason: str) -> RuleViolation:
    return RuleViolation(ResponseCode.TYPE_ACCOUNT_COMBINATION_NOT_ALLOWED, reason,
                         http_status=409)
