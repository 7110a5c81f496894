"""Decisions of the authorised body and their one-month window (Decree 684 cl. 10-29).

A decision authorises an operation. Withdrawal (cl. 22-23) and replacement (cl. 24-26)
are carried out within one month of the decision unless, within that month, it is
appealed (which suspends it) and revised (which changes or drops it). Pure Python:
time is passed in.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum

from shared.codes import AccountType, ResponseCode, UnitType
from shared.errors import RuleViolation


class DecisionKind(StrEnum):
    ISSUANCE = "issuance"  # cl. 10-11 (AAU), 14-15 (RMU)
    CONVERSION = "conversion"  # cl. 12-13, track 1
    EXTERNAL_TRANSFER = "external_transfer"  # cl. 16-18, ERUs
    WITHDRAWAL = "withdrawal"  # cl. 22-23
    REPLACEMENT = "replacement"  # cl. 24-26
    CANCELLATION = "cancellation"  # cl. 27-29


#: Decisions carried out within a month unless appealed and revised (cl. 23, 26).
WINDOWED_KINDS = frozenset({DecisionKind.WITHDRAWAL, DecisionKind.REPLACEMENT})


class WithdrawalGround(StrEnum):
    """Cl. 22: why units are withdrawn from circulation."""

    EXCESS_ISSUANCE = "excess_issuance"
    CRITERIA_NOT_MET = "criteria_not_met"
    VOLUNTARY = "voluntary"


#: The cancellation account each ground sends units to: voluntary withdrawal to the
#: voluntary cancellation account (V protocol.md 2.7); the other two are our mapping (O).
WITHDRAWAL_ACCOUNT = {
    WithdrawalGround.EXCESS_ISSUANCE: AccountType.ADMINISTRATIVE_CANCELLATION,
    WithdrawalGround.CRITERIA_NOT_MET: AccountType.MANDATORY_CANCELLATION,
    WithdrawalGround.VOLUNTARY: AccountType.VOLUNTARY_CANCELLATION,
}


class DecisionState(StrEnum):
    RECORDED = "recorded"  # in force, not yet carried out
    APPEALED = "appealed"  # suspended until revised
    DROPPED = "dropped"  # revised away
    EXECUTING = "executing"  # its transaction is with the ITL
    EXECUTED = "executed"  # its transaction completed


class FollowUp(StrEnum):
    """What the operator sees."""

    DUE = "due"
    OVERDUE = "overdue"
    SUSPENDED = "suspended"
    IN_PROGRESS = "in_progress"
    DONE = "done"
    DROPPED = "dropped"
    OPEN = "open"  # a decision without a deadline, still usable


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

    @property
    def remaining(self) -> int:
        return self.quantity - self.used_quantity


def one_month_after(moment: datetime) -> datetime:
    """The same day one month later; the month's last day when it has no such day."""
    year, month = (moment.year + 1, 1) if moment.month == 12 else (moment.year,
                                                                  moment.month + 1)
    day = min(moment.day, calendar.monthrange(year, month)[1])
    return moment.replace(year=year, month=month, day=day)


def due_date(kind: DecisionKind, decided_at: datetime) -> datetime | None:
    return one_month_after(decided_at) if kind in WINDOWED_KINDS else None


def appeal(decision: Decision, now: datetime) -> Decision:
    """An appeal within the month suspends a withdrawal or replacement decision."""
    if decision.kind not in WINDOWED_KINDS:
        raise _conflict(f"a {decision.kind.value} decision has no appeal window")
    if decision.state != DecisionState.RECORDED:
        raise _conflict(f"decision {decision.decision_id} is {decision.state.value}")
    assert decision.due_at is not None
    if now > decision.due_at:
        raise _conflict(f"the month for appeals ended on {decision.due_at.date()}")
    return replace(decision, state=DecisionState.APPEALED)


def revise(decision: Decision, now: datetime, quantity: int | None, drop: bool) -> Decision:
    """The authorised body revises a decision: it is dropped, or it changes and its
    month starts again from the revision."""
    if decision.state not in (DecisionState.RECORDED, DecisionState.APPEALED):
        raise _conflict(f"decision {decision.decision_id} is {decision.state.value}")
    if drop:
        return replace(decision, state=DecisionState.DROPPED)
    if quantity is None or quantity < 1:
        raise RuleViolation(ResponseCode.MISSING_FIELD,
                            "a revision gives the new quantity or drops the decision")
    return replace(decision, quantity=quantity, state=DecisionState.RECORDED,
                   due_at=due_date(decision.kind, now))


def follow_up(decision: Decision, now: datetime) -> FollowUp:
    """Due, overdue, suspended, in progress, done or dropped, as the operator sees it."""
    if decision.state == DecisionState.EXECUTED:
        return FollowUp.DONE
    if decision.state == DecisionState.DROPPED:
        return FollowUp.DROPPED
    if decision.state == DecisionState.APPEALED:
        return FollowUp.SUSPENDED
    if decision.state == DecisionState.EXECUTING:
        return FollowUp.IN_PROGRESS
    if decision.due_at is None:
        return FollowUp.OPEN
    return FollowUp.OVERDUE if now > decision.due_at else FollowUp.DUE


def is_to_execute(decision: Decision, now: datetime) -> bool:
    """A windowed decision nobody appealed is carried out when its month ends."""
    return (decision.kind in WINDOWED_KINDS and decision.state == DecisionState.RECORDED
            and decision.due_at is not None and now >= decision.due_at)


def use(decision: Decision, kind: DecisionKind, unit_type: UnitType, quantity: int) -> Decision:
    """Check that an operation fits the decision it refers to, and count it against it."""
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
