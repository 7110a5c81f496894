"""Decisions with their month, and who may start what: no broker, no store."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from services.registry.decisions import (
    Decision,
    DecisionKind,
    DecisionState,
    FollowUp,
    appeal,
    dismiss_appeal,
    due_date,
    follow_up,
    is_to_execute,
    one_month_after,
    revise,
    use,
)
from services.registry.domain import Account
from services.registry.permissions import (
    Actor,
    Forbidden,
    Operation,
    Role,
    authorise,
    parse_actor,
)
from shared.codes import AccountType, UnitType
from shared.errors import RuleViolation

DECIDED = datetime(2013, 1, 31, 12, tzinfo=UTC)
LEAD = timedelta(hours=24)
PARTY = Account("KZ", AccountType.PARTY_HOLDING, 1, "Republic of Kazakhstan", 2)
ALICE = Account("KZ", AccountType.PERSON_HOLDING, 1001, "Alice Energy LLP", 2)
OPERATOR = Actor.of(Role.OPERATOR)
BODY = Actor.of(Role.AUTHORISED_BODY)


def withdrawal(**changes: object) -> Decision:
    base = Decision("D1", DecisionKind.WITHDRAWAL, "MEP-1", DECIDED, UnitType.AAU, 100, 1, 2,
                    due_at=due_date(DecisionKind.WITHDRAWAL, DECIDED))
    return replace(base, **changes)  # type: ignore[arg-type]


def test_one_month_after_keeps_the_day_or_takes_the_last_day_of_a_shorter_month() -> None:
    assert one_month_after(datetime(2013, 3, 15, tzinfo=UTC)) == datetime(2013, 4, 15, tzinfo=UTC)
    assert one_month_after(DECIDED).date().isoformat() == "2013-02-28"
    assert one_month_after(datetime(2012, 12, 31, tzinfo=UTC)).date().isoformat() == "2013-01-31"


def test_only_withdrawal_and_replacement_have_a_month() -> None:
    assert due_date(DecisionKind.REPLACEMENT, DECIDED) is not None
    for kind in (DecisionKind.ISSUANCE, DecisionKind.CONVERSION, DecisionKind.CANCELLATION):
        assert due_date(kind, DECIDED) is None


def test_a_decision_is_due_then_overdue_and_executed_a_lead_before_its_month_ends() -> None:
    decision = withdrawal()
    assert decision.due_at is not None
    assert follow_up(decision, decision.due_at - timedelta(days=1)) == FollowUp.DUE
    assert not is_to_execute(decision, decision.due_at - LEAD - timedelta(seconds=1), LEAD)
    assert is_to_execute(decision, decision.due_at - LEAD, LEAD)
    assert follow_up(decision, decision.due_at) == FollowUp.DUE
    assert follow_up(decision, decision.due_at + timedelta(seconds=1)) == FollowUp.OVERDUE
    done = replace(decision, state=DecisionState.EXECUTED, executed_at=decision.due_at)
    assert follow_up(done, DECIDED) == FollowUp.DONE


def test_an_appeal_within_the_month_suspends_and_after_it_is_refused() -> None:
    decision = withdrawal()
    assert decision.due_at is not None
    appealed = appeal(decision, decision.due_at)
    assert appealed.state == DecisionState.APPEALED
    assert follow_up(appealed, decision.due_at) == FollowUp.SUSPENDED
    assert not is_to_execute(appealed, decision.due_at, LEAD)
    with pytest.raises(RuleViolation, match="month for appeals ended"):
        appeal(decision, decision.due_at + timedelta(seconds=1))
    with pytest.raises(RuleViolation, match="no appeal window"):
        appeal(replace(decision, kind=DecisionKind.ISSUANCE), DECIDED)


def test_a_revision_changes_the_decision_and_restarts_its_month_or_drops_it() -> None:
    appealed = appeal(withdrawal(), DECIDED)
    later = DECIDED + timedelta(days=20)
    revised = revise(appealed, later, quantity=60, drop=False)
    assert (revised.state, revised.quantity) == (DecisionState.RECORDED, 60)
    assert revised.due_at == one_month_after(later)
    dropped = revise(appealed, later, quantity=None, drop=True)
    assert follow_up(dropped, later) == FollowUp.DROPPED
    with pytest.raises(RuleViolation):
        revise(dropped, later, quantity=5, drop=False)


def test_a_revision_of_an_unappealed_decision_keeps_its_due_date() -> None:
    """Cl. 23, 26: only units appealed and revised within the month get a new month; a
    revision nobody asked for cannot postpone the withdrawal, however often it is made."""
    decision = withdrawal()
    assert decision.due_at is not None
    later = DECIDED + timedelta(days=20)
    revised = revise(decision, later, quantity=60, drop=False)
    assert (revised.state, revised.quantity, revised.due_at) == (
        DecisionState.RECORDED, 60, decision.due_at)
    again = revise(revised, decision.due_at, quantity=50, drop=False)
    assert (again.quantity, again.due_at) == (50, decision.due_at)
    assert is_to_execute(again, decision.due_at - LEAD, LEAD)
    assert revise(revised, later, quantity=None, drop=True).state == DecisionState.DROPPED
    with pytest.raises(RuleViolation, match=r"month for revising .* ended"):
        revise(again, decision.due_at + timedelta(seconds=1), quantity=40, drop=False)


def test_only_the_revision_that_answers_an_appeal_starts_a_new_month() -> None:
    decision = withdrawal()
    later, even_later = DECIDED + timedelta(days=10), DECIDED + timedelta(days=20)
    upheld = revise(appeal(decision, later), later, quantity=60, drop=False)
    assert upheld.due_at == one_month_after(later)
    # revised again without a new appeal: the new month stands, no third one
    assert revise(upheld, even_later, quantity=40, drop=False).due_at == upheld.due_at
    # an appeal dismissed is no appeal upheld: a later revision keeps the date
    dismissed = dismiss_appeal(appeal(decision, later))
    assert revise(dismissed, even_later, quantity=40, drop=False).due_at == decision.due_at


def test_an_operation_must_fit_its_decision_and_counts_against_it() -> None:
    issuance = Decision("D2", DecisionKind.ISSUANCE, "MEP-2", DECIDED, UnitType.AAU, 100, 1, 2)
    used = use(issuance, DecisionKind.ISSUANCE, UnitType.AAU, 60)
    assert used.remaining == 40
    assert use(used, DecisionKind.ISSUANCE, UnitType.AAU, 40).remaining == 0
    with pytest.raises(RuleViolation, match="leaves 40 units"):
        use(used, DecisionKind.ISSUANCE, UnitType.AAU, 41)
    with pytest.raises(RuleViolation, match="about AAU, not RMU"):
        use(issuance, DecisionKind.ISSUANCE, UnitType.RMU, 1)
    with pytest.raises(RuleViolation, match="not a conversion"):
        use(issuance, DecisionKind.CONVERSION, UnitType.AAU, 1)


def test_the_x_actor_header_names_one_of_three_actors() -> None:
    assert parse_actor("operator") == OPERATOR
    assert parse_actor("Authorised-Body") == BODY
    assert parse_actor("holder:1001") == Actor.of(Role.ACCOUNT_HOLDER, 1001)
    for bad in (None, "", "holder:", "holder:abc", "minister"):
        with pytest.raises(Forbidden):
            parse_actor(bad)


@pytest.mark.parametrize("operation", [
    Operation.ISSUANCE, Operation.CONVERSION, Operation.WITHDRAWAL, Operation.CANCELLATION,
    Operation.CARRY_OVER, Operation.RETIREMENT, Operation.REPLACEMENT,
    Operation.EXPIRY_DATE_CHANGE, Operation.OPEN_ACCOUNT,
])
def test_operator_operations_are_refused_to_the_other_actors(operation: Operation) -> None:
    authorise(OPERATOR, operation)
    for actor in (BODY, Actor.of(Role.ACCOUNT_HOLDER, 1001)):
        with pytest.raises(Forbidden, match="started by the operator"):
            authorise(actor, operation)


def test_decisions_are_the_authorised_bodys_and_appeals_are_not() -> None:
    authorise(BODY, Operation.RECORD_DECISION)
    authorise(BODY, Operation.REVISE_DECISION)
    with pytest.raises(Forbidden):
        authorise(OPERATOR, Operation.RECORD_DECISION)
    authorise(Actor.of(Role.ACCOUNT_HOLDER, 1001), Operation.APPEAL_DECISION, ALICE)
    with pytest.raises(Forbidden):
        authorise(BODY, Operation.APPEAL_DECISION, ALICE)


def test_a_decision_is_appealed_by_the_holder_of_its_account_or_the_operator_only() -> None:
    formers = Account("KZ", AccountType.FORMER_OPERATOR_HOLDING, 1003, "Old Steel JSC", 2)
    for account in (ALICE, formers):
        authorise(Actor.of(Role.ACCOUNT_HOLDER, account.account_id), Operation.APPEAL_DECISION,
                  account)
        authorise(OPERATOR, Operation.APPEAL_DECISION, account)
    for stranger in (Actor.of(Role.ACCOUNT_HOLDER, 1002), Actor.of(Role.ACCOUNT_HOLDER, 99999),
                     BODY):
        with pytest.raises(Forbidden, match=r"holder of account 1001 \(the decision's\) or "
                                            "the operator"):
            authorise(stranger, Operation.APPEAL_DECISION, ALICE)
    # a decision about a government account: its only voice is the operator's
    authorise(OPERATOR, Operation.APPEAL_DECISION, PARTY)
    for actor in (Actor.of(Role.ACCOUNT_HOLDER, 1), Actor.of(Role.ACCOUNT_HOLDER, 1001), BODY):
        with pytest.raises(Forbidden, match=r"the operator \(account 1 of the decision is a "
                                            r"government account\)"):
            authorise(actor, Operation.APPEAL_DECISION, PARTY)


def test_holders_instruct_transfers_from_their_own_accounts_only() -> None:
    alice = Actor.of(Role.ACCOUNT_HOLDER, 1001)
    authorise(alice, Operation.INTERNAL_TRANSFER, ALICE, UnitType.AAU)
    authorise(alice, Operation.EXTERNAL_TRANSFER, ALICE, UnitType.CER)
    with pytest.raises(Forbidden, match="holder of account 1001"):
        authorise(Actor.of(Role.ACCOUNT_HOLDER, 1002), Operation.INTERNAL_TRANSFER, ALICE)
    with pytest.raises(Forbidden, match="holder of account 1001"):
        authorise(OPERATOR, Operation.INTERNAL_TRANSFER, ALICE)
    with pytest.raises(Forbidden, match="government account"):
        authorise(alice, Operation.INTERNAL_TRANSFER, PARTY)
    authorise(OPERATOR, Operation.INTERNAL_TRANSFER, PARTY)


def test_erus_leave_only_through_the_operator() -> None:
    with pytest.raises(Forbidden, match="ERUs"):
        authorise(Actor.of(Role.ACCOUNT_HOLDER, 1001), Operation.EXTERNAL_TRANSFER, ALICE,
                  UnitType.ERU_FROM_AAU)
    authorise(OPERATOR, Operation.EXTERNAL_TRANSFER, ALICE, UnitType.ERU_FROM_AAU)
