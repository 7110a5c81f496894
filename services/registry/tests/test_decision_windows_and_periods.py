"""Decree 684 cl. 22-29 at their boundaries: the month from a notice's receipt or the
decision, appeals, dismissals and revisions, completion within the month, withdrawal
grounds, retirement and cancellation after the period, accounts per commitment period.
No broker, no store: every rule is a pure function with time passed in."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from services.registry.decisions import (
    WITHDRAWAL_ACCOUNT,
    Decision,
    DecisionKind,
    DecisionState,
    FollowUp,
    WithdrawalGround,
    appeal,
    check_decided_after_period,
    dismiss_appeal,
    execution_moment,
    follow_up,
    is_to_execute,
    lapse,
    one_month_after,
    revise,
    to_record,
    use,
)
from services.registry.domain import (
    ACCOUNT_PERIODS,
    PER_PERIOD_ACCOUNT_TYPES,
    Account,
    RegistryProfile,
    check_period_account,
    fixed_accounts,
)
from services.registry.notices import (
    DECREE_WINDOW_NOTICES,
    WITHDRAWAL_NOTICE_ACCOUNT,
    check_answers,
    decree_due_at,
    notice_follow_up,
)
from services.registry.permissions import Actor, Forbidden, Operation, Role, authorise
from shared.codes import AccountType, NoticeStatus, NoticeType, ResponseCode, UnitType
from shared.errors import RuleViolation

SECOND = timedelta(seconds=1)
LEAD = timedelta(hours=24)
RECEIVED = datetime(2013, 1, 31, 10, tzinfo=UTC)
DECIDED = datetime(2013, 2, 10, 9, tzinfo=UTC)


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0,
        second: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def decision(kind: DecisionKind = DecisionKind.WITHDRAWAL, **changes: object) -> Decision:
    base = Decision("D1", kind, "MEP-1", DECIDED, UnitType.AAU, 100, 1, 2,
                    ground=WithdrawalGround.VOLUNTARY if kind == DecisionKind.WITHDRAWAL
                    else None)
    return replace(base, **changes)  # type: ignore[arg-type]


def recorded() -> Decision:
    """A withdrawal decision as recorded, due one month after DECIDED."""
    return to_record(decision())


def refusal(exc: pytest.ExceptionInfo[RuleViolation]) -> tuple[int, int]:
    return int(exc.value.code), exc.value.http_status


# the month: one place for its arithmetic


@pytest.mark.parametrize(("start", "due"), [
    (utc(2013, 1, 31, 12), utc(2013, 2, 28, 12)),
    (utc(2012, 1, 31, 12), utc(2012, 2, 29, 12)),  # leap year
    (utc(2012, 12, 31, 23, 59, 59), utc(2013, 1, 31, 23, 59, 59)),
    (utc(2013, 1, 30), utc(2013, 2, 28)),
    (utc(2013, 2, 28), utc(2013, 3, 28)),
    (utc(2013, 3, 31), utc(2013, 4, 30)),
    (utc(2013, 3, 15, 8, 30), utc(2013, 4, 15, 8, 30)),
])
def test_one_month_after_keeps_day_and_time_or_takes_the_last_day(
        start: datetime, due: datetime) -> None:
    assert one_month_after(start) == due


def test_a_decision_on_a_notice_is_due_a_month_after_the_notices_receipt() -> None:
    on_notice = to_record(decision(notice_id=7), notice_received_at=RECEIVED)
    assert on_notice.due_at == utc(2013, 2, 28, 10)  # 31 Jan + one month, not 10 Mar
    assert on_notice.due_at == decree_due_at(NoticeType.NON_COMPLIANCE_CANCELLATION,
                                             RECEIVED)
    alone = to_record(decision())
    assert alone.due_at == utc(2013, 3, 10, 9)
    replacement = to_record(decision(DecisionKind.REPLACEMENT, notice_id=3),
                            notice_received_at=RECEIVED)
    assert replacement.due_at == utc(2013, 2, 28, 10)
    for kind in (DecisionKind.ISSUANCE, DecisionKind.CONVERSION,
                 DecisionKind.EXTERNAL_TRANSFER):
        assert to_record(decision(kind)).due_at is None


def test_a_windowed_decision_needs_its_ground_or_notice() -> None:
    with pytest.raises(RuleViolation, match="ground") as exc:
        to_record(decision(ground=None))
    assert refusal(exc) == (ResponseCode.MISSING_FIELD, 422)
    with pytest.raises(RuleViolation, match="names the ITL notice"):
        to_record(decision(DecisionKind.REPLACEMENT))


# appeals, dismissals, revisions


def test_an_appeal_at_the_due_date_is_in_time_and_one_second_later_is_refused() -> None:
    current = recorded()
    assert current.due_at is not None
    assert appeal(current, current.due_at).state == DecisionState.APPEALED
    with pytest.raises(RuleViolation, match="month for appeals ended") as exc:
        appeal(current, current.due_at + SECOND)
    assert refusal(exc) == (ResponseCode.TYPE_ACCOUNT_COMBINATION_NOT_ALLOWED, 409)


def test_an_appeal_after_execution_started_is_refused() -> None:
    executing = replace(recorded(), state=DecisionState.EXECUTING)
    with pytest.raises(RuleViolation, match="is executing") as exc:
        appeal(executing, DECIDED)
    assert refusal(exc)[1] == 409


def test_a_dismissed_appeal_leaves_the_original_due_date_and_the_decision_executes() -> None:
    current = recorded()
    assert current.due_at is not None
    appealed = appeal(current, DECIDED + timedelta(days=3))
    assert not is_to_execute(appealed, current.due_at - SECOND, LEAD)
    dismissed = dismiss_appeal(appealed)
    assert (dismissed.state, dismissed.due_at) == (DecisionState.RECORDED, current.due_at)
    # its execution moment passed while it was suspended: carried out at once
    assert is_to_execute(dismissed, current.due_at - LEAD + SECOND, LEAD)
    assert follow_up(dismissed, current.due_at) == FollowUp.DUE
    with pytest.raises(RuleViolation, match="not appealed") as exc:
        dismiss_appeal(dismissed)
    assert refusal(exc)[1] == 409


def test_a_revision_at_the_due_date_is_in_time_and_one_second_later_is_refused() -> None:
    current = recorded()
    assert current.due_at is not None
    appealed = appeal(current, DECIDED)
    at_due = revise(appealed, current.due_at, quantity=40, drop=False)
    assert at_due.due_at == one_month_after(current.due_at)  # a new month from the revision
    assert (at_due.state, at_due.quantity) == (DecisionState.RECORDED, 40)
    assert revise(appealed, current.due_at, None, drop=True).state == DecisionState.DROPPED
    for late in (appealed, current):
        with pytest.raises(RuleViolation, match=r"month for revising .* ended") as exc:
            revise(late, current.due_at + SECOND, None, drop=True)
        assert refusal(exc) == (ResponseCode.TYPE_ACCOUNT_COMBINATION_NOT_ALLOWED, 409)


def test_an_appeal_left_unanswered_lapses_when_the_month_ends() -> None:
    current = recorded()
    assert current.due_at is not None
    appealed = appeal(current, DECIDED)
    assert follow_up(appealed, current.due_at) == FollowUp.SUSPENDED
    assert not is_to_execute(appealed, current.due_at, LEAD)
    assert lapse(appealed, current.due_at) is appealed
    after = current.due_at + SECOND
    assert follow_up(appealed, after) == FollowUp.OVERDUE
    assert is_to_execute(appealed, after, LEAD)
    assert lapse(appealed, after).state == DecisionState.RECORDED


def test_only_the_authorised_body_dismisses_an_appeal() -> None:
    authorise(Actor.of(Role.AUTHORISED_BODY), Operation.DISMISS_APPEAL)
    for actor in (Actor.of(Role.OPERATOR), Actor.of(Role.ACCOUNT_HOLDER, 1001)):
        with pytest.raises(Forbidden, match="authorised body"):
            authorise(actor, Operation.DISMISS_APPEAL)


# completion within the month


def test_the_registry_executes_a_lead_before_the_due_date() -> None:
    current = recorded()
    assert current.due_at is not None
    moment = execution_moment(current, LEAD)
    assert moment == current.due_at - LEAD
    assert not is_to_execute(current, moment - SECOND, LEAD)
    assert is_to_execute(current, moment, LEAD)
    assert execution_moment(decision(DecisionKind.ISSUANCE), LEAD) is None
    assert not is_to_execute(decision(DecisionKind.ISSUANCE), DECIDED, LEAD)


def test_a_decision_completed_after_its_due_date_is_done_late_not_done() -> None:
    current = recorded()
    assert current.due_at is not None
    executed = replace(current, state=DecisionState.EXECUTED)
    assert follow_up(replace(executed, executed_at=current.due_at), DECIDED) == FollowUp.DONE
    assert follow_up(replace(executed, executed_at=current.due_at + SECOND),
                     DECIDED) == FollowUp.DONE_LATE
    issuance = replace(decision(DecisionKind.ISSUANCE), state=DecisionState.EXECUTED,
                       executed_at=DECIDED + timedelta(days=400))
    assert follow_up(issuance, DECIDED) == FollowUp.DONE


def test_withdrawal_and_replacement_notices_have_the_decrees_month() -> None:
    due = one_month_after(RECEIVED)
    assert {1, 2, 3, 4, 5} == DECREE_WINDOW_NOTICES
    for notice_type in NoticeType:
        expected = due if notice_type in DECREE_WINDOW_NOTICES else None
        assert decree_due_at(notice_type, RECEIVED) == expected
    open_, done = NoticeStatus.OPEN, NoticeStatus.COMPLETED
    assert notice_follow_up(2, open_, RECEIVED, None, due) == FollowUp.DUE
    assert notice_follow_up(2, NoticeStatus.INCOMPLETE, RECEIVED, None,
                            due + SECOND) == FollowUp.OVERDUE
    assert notice_follow_up(2, done, RECEIVED, due, due + SECOND) == FollowUp.DONE
    assert notice_follow_up(3, done, RECEIVED, due + SECOND, due) == FollowUp.DONE_LATE
    assert notice_follow_up(6, open_, RECEIVED, None, due + SECOND) == FollowUp.OPEN
    assert notice_follow_up(7, done, RECEIVED, RECEIVED, due) == FollowUp.DONE


def test_a_decision_answers_only_a_notice_that_asks_for_its_operation() -> None:
    check_answers(DecisionKind.WITHDRAWAL, 1, 1, NoticeStatus.OPEN)
    check_answers(DecisionKind.WITHDRAWAL, 1, 2, NoticeStatus.INCOMPLETE)
    for kind, notice_type in ((DecisionKind.WITHDRAWAL, 3), (DecisionKind.REPLACEMENT, 2),
                              (DecisionKind.REPLACEMENT, 6)):
        with pytest.raises(RuleViolation, match="asks for no") as exc:
            check_answers(kind, 9, notice_type, NoticeStatus.OPEN)
        assert refusal(exc) == (ResponseCode.NOTICE_UNKNOWN_OR_CLOSED, 422)
    with pytest.raises(RuleViolation, match="already completed"):
        check_answers(DecisionKind.REPLACEMENT, 9, 3, NoticeStatus.COMPLETED)


# grounds of withdrawal


def test_each_withdrawal_ground_has_its_cancellation_account() -> None:
    assert WITHDRAWAL_ACCOUNT == {
        WithdrawalGround.EXCESS_ISSUANCE: AccountType.ADMINISTRATIVE_CANCELLATION,  # 260
        WithdrawalGround.CRITERIA_NOT_MET: AccountType.NON_COMPLIANCE_CANCELLATION,  # 220
        WithdrawalGround.VOLUNTARY: AccountType.VOLUNTARY_CANCELLATION,  # 230
    }
    assert WITHDRAWAL_NOTICE_ACCOUNT == {
        NoticeType.NET_SOURCE_CANCELLATION: AccountType.NET_SOURCE_CANCELLATION,
        NoticeType.NON_COMPLIANCE_CANCELLATION: AccountType.NON_COMPLIANCE_CANCELLATION,
    }


# retirement and cancellation after the period (cl. 27-29)


@pytest.mark.parametrize("kind", [DecisionKind.RETIREMENT, DecisionKind.CANCELLATION])
@pytest.mark.parametrize(("period", "last_moment"), [(1, utc(2012, 12, 31, 23, 59, 59)),
                                                     (2, utc(2020, 12, 31, 23, 59, 59))])
def test_retirement_and_cancellation_are_decided_only_after_the_period(
        kind: DecisionKind, period: int, last_moment: datetime) -> None:
    with pytest.raises(RuleViolation, match=r"cl\. 28") as exc:
        to_record(decision(kind, commitment_period=period, decided_at=last_moment))
    assert refusal(exc) == (ResponseCode.TYPE_ACCOUNT_COMBINATION_NOT_ALLOWED, 422)
    assert f"from {last_moment.year + 1}-01-01" in exc.value.reason
    first = last_moment + SECOND
    assert first == utc(last_moment.year + 1, 1, 1)
    taken = to_record(decision(kind, commitment_period=period, decided_at=first))
    assert (taken.state, taken.due_at) == (DecisionState.RECORDED, None)
    check_decided_after_period(DecisionKind.ISSUANCE, period, last_moment)  # no such rule


def test_a_retirement_uses_units_of_its_decisions_period_only() -> None:
    retirement = to_record(decision(DecisionKind.RETIREMENT, commitment_period=1,
                                    decided_at=utc(2013, 1, 1)))
    used = use(retirement, DecisionKind.RETIREMENT, UnitType.AAU, 100, period=1)
    assert used.remaining == 0
    with pytest.raises(RuleViolation, match="about commitment period 1, not 2") as exc:
        use(retirement, DecisionKind.RETIREMENT, UnitType.AAU, 1, period=2)
    assert refusal(exc)[1] == 409
    with pytest.raises(RuleViolation, match="leaves no units"):
        use(used, DecisionKind.RETIREMENT, UnitType.AAU, used.remaining, period=1)
    with pytest.raises(RuleViolation, match="authorises a retirement, not a cancellation"):
        use(retirement, DecisionKind.CANCELLATION, UnitType.AAU, 1, period=1)
    # a decision stored before the rule was checked at recording is refused at use
    early = replace(retirement, decided_at=utc(2012, 12, 31, 23, 59, 59))
    with pytest.raises(RuleViolation, match=r"cl\. 28"):
        use(early, DecisionKind.RETIREMENT, UnitType.AAU, 1, period=1)


# accounts per commitment period


KZ = RegistryProfile("KZ")


def test_cancellation_retirement_and_replacement_accounts_are_kept_per_period() -> None:
    accounts = fixed_accounts(KZ, 2)
    by_number = {a.account_id: a for a in accounts}
    assert len(by_number) == len(accounts)
    assert sorted(by_number) == [1, 2, 3, 4, *range(5, 15), 102, 103, *range(105, 113)]
    for single, account_type in ((1, AccountType.PARTY_HOLDING),
                                 (4, AccountType.PREVIOUS_PERIOD_SURPLUS_RESERVE)):
        assert by_number[single].account_type == account_type
        assert by_number[single].commitment_period == 2
        assert [a for a in accounts if a.account_type == account_type] == [by_number[single]]
    for number in (2, 3, *range(5, 13)):
        current, first = by_number[number], by_number[number + 100]
        assert current.account_type == first.account_type
        assert current.account_type in PER_PERIOD_ACCOUNT_TYPES
        assert (current.commitment_period, first.commitment_period) == (2, 1)
        assert first.full_identifier.startswith(f"KZ-{int(first.account_type)}-{number + 100}-1-")
    second_period_only = {13: AccountType.ARTICLE_37TER_CANCELLATION,
                          14: AccountType.AMBITION_INCREASE_CANCELLATION}
    for number, account_type in second_period_only.items():
        assert by_number[number].account_type == account_type
        assert by_number[number].commitment_period == 2
        assert [a for a in accounts if a.account_type == account_type] == [by_number[number]]
    assert {a.account_type for a in accounts} - {AccountType.PARTY_HOLDING,
                                                 AccountType.PREVIOUS_PERIOD_SURPLUS_RESERVE,
                                                 *second_period_only.values()} \
        == PER_PERIOD_ACCOUNT_TYPES
    for account_type in PER_PERIOD_ACCOUNT_TYPES:
        periods = sorted(a.commitment_period for a in accounts if a.account_type == account_type)
        assert periods == list(ACCOUNT_PERIODS)
    assert by_number[3].account_type == AccountType.RETIREMENT
    assert by_number[103].account_type == AccountType.RETIREMENT


def test_the_cdm_registrys_fixed_accounts_are_unchanged() -> None:
    cdm = fixed_accounts(RegistryProfile("CDM", is_cdm=True), 2)
    assert [a.account_id for a in cdm] == [1, 1100, 2240, 2241, 2242]
    assert {a.commitment_period for a in cdm} == {2}


def test_units_go_to_the_account_of_their_own_period_only() -> None:
    retirement_1 = Account("KZ", AccountType.RETIREMENT, 103, "Retirement account", 1)
    check_period_account(retirement_1, 1)
    with pytest.raises(RuleViolation, match="period 1, not of period 2") as exc:
        check_period_account(retirement_1, 2)
    assert refusal(exc) == (ResponseCode.ACQUIRING_ACCOUNT_NOT_ELIGIBLE, 422)
    party = Account("KZ", AccountType.PARTY_HOLDING, 1, "Party holding account", 2)
    check_period_account(party, 1)  # kept once: no period to match
