"""The account life cycle's rules at each boundary: every status on each side of a
transaction, every action from every status, closing only when empty."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest

from services.registry.domain import (
    ACCOUNT_TRANSITIONS,
    Account,
    AccountAction,
    AccountStatus,
    Holding,
    RegistryProfile,
    Side,
    StatusChange,
    StatusChangeRefused,
    account_status_refusal,
    acquiring_refusal,
    change_status,
    check_account_status,
    check_closable,
    check_issuance,
    closure_refusals,
)
from shared.blocks import SerialRange, UnitAttributes, UnitBlock
from shared.codes import AccountType, ResponseCode, SupplementaryType, TransactionType, UnitType
from shared.errors import RuleViolation
from shared.rules.accounts import account_rule_breaches

A = AccountStatus
R = ResponseCode
NOW = datetime(2013, 3, 1, 12, 0, tzinfo=UTC)
KZ = RegistryProfile("KZ")
PERSON = Account("KZ", AccountType.PERSON_HOLDING, 1001, "Alice Energy LLP", 2)
PARTY = Account("KZ", AccountType.PARTY_HOLDING, 1, "Party holding account", 2, fixed=True)
AAU = [UnitBlock(UnitAttributes("KZ", UnitType.AAU, 2, 2), SerialRange(1, 5))]


def with_status(account: Account, status: AccountStatus) -> Account:
    return replace(account, status=status)


# each status on each side


@pytest.mark.parametrize(
    ("status", "side", "code"),
    [
        (A.OPEN, Side.TRANSFERRING, None),
        (A.BLOCKED, Side.TRANSFERRING, R.TRANSFERRING_ACCOUNT_BLOCKED),
        (A.CLOSED, Side.TRANSFERRING, R.TRANSFERRING_ACCOUNT_CLOSED),
        (A.OPEN, Side.ACQUIRING, None),
        (A.BLOCKED, Side.ACQUIRING, R.ACQUIRING_ACCOUNT_NOT_ELIGIBLE),
        (A.CLOSED, Side.ACQUIRING, R.ACQUIRING_ACCOUNT_CLOSED),
    ],
)
def test_each_status_on_each_side_gives_its_code(status: AccountStatus, side: Side,
                                                 code: ResponseCode | None) -> None:
    account = with_status(PERSON, status)
    assert account_status_refusal(account, side) == code
    if code is None:
        check_account_status(account, side)
        return
    with pytest.raises(RuleViolation) as exc:
        check_account_status(account, side)
    assert exc.value.code == code and exc.value.http_status == 422
    assert exc.value.reason == f"{side.value} account 1001 is {status.value}"


@pytest.mark.parametrize("transaction_type", list(TransactionType))
@pytest.mark.parametrize(
    ("status", "code"),
    [(A.BLOCKED, R.ACQUIRING_ACCOUNT_NOT_ELIGIBLE), (A.CLOSED, R.ACQUIRING_ACCOUNT_CLOSED)],
)
def test_the_acquiring_registry_refuses_a_blocked_or_closed_account_for_every_type(
    status: AccountStatus, code: ResponseCode, transaction_type: TransactionType
) -> None:
    """The forwarded-proposal answer and the internal-target check share the status rule,
    and it comes before the account-type rules."""
    breaches = account_rule_breaches(transaction_type, SupplementaryType.NONE, "KZ",
                                     None, PERSON.side, [])
    assert acquiring_refusal(with_status(PERSON, status), breaches, AAU) == code
    assert acquiring_refusal(with_status(PARTY, status), breaches, AAU) == code


def test_an_open_person_account_acquires_transferred_units() -> None:
    assert acquiring_refusal(PERSON, [], AAU) is None


@pytest.mark.parametrize(
    ("status", "code"),
    [(A.OPEN, None), (A.BLOCKED, R.ACQUIRING_ACCOUNT_NOT_ELIGIBLE),
     (A.CLOSED, R.ACQUIRING_ACCOUNT_CLOSED)],
)
def test_issuance_into_a_blocked_or_closed_account_is_refused(
    status: AccountStatus, code: ResponseCode | None
) -> None:
    account = with_status(PARTY, status)
    if code is None:
        check_issuance(KZ, UnitType.AAU, account, None)
        return
    with pytest.raises(RuleViolation) as exc:
        check_issuance(KZ, UnitType.AAU, account, None)
    assert exc.value.code == code


# every action from every status


@pytest.mark.parametrize(
    ("status", "action", "result"),
    [
        (A.OPEN, AccountAction.BLOCK, A.BLOCKED),
        (A.OPEN, AccountAction.UNBLOCK, None),
        (A.OPEN, AccountAction.CLOSE, A.CLOSED),
        (A.BLOCKED, AccountAction.BLOCK, None),
        (A.BLOCKED, AccountAction.UNBLOCK, A.OPEN),
        (A.BLOCKED, AccountAction.CLOSE, A.CLOSED),
        (A.CLOSED, AccountAction.BLOCK, None),
        (A.CLOSED, AccountAction.UNBLOCK, None),
        (A.CLOSED, AccountAction.CLOSE, None),
    ],
)
def test_each_action_from_each_status(status: AccountStatus, action: AccountAction,
                                      result: AccountStatus | None) -> None:
    account = with_status(PERSON, status)
    if result is None:
        with pytest.raises(StatusChangeRefused) as exc:
            change_status(account, action, "operator", NOW, "why")
        starts = " or ".join(sorted(s.value for s in ACCOUNT_TRANSITIONS[action][0]))
        assert exc.value.reason == (f"account 1001 is {status.value}: only {starts} "
                                    f"accounts can be {action.done}")
        return
    changed = change_status(account, action, "operator", NOW, "why")
    assert changed.status == result
    assert changed.history == (StatusChange(result, "operator", NOW, "why"),)
    assert account.status == status  # the account given is not changed


def test_the_history_records_who_when_and_why_in_order() -> None:
    later = datetime(2013, 4, 1, tzinfo=UTC)
    blocked = change_status(PERSON, AccountAction.BLOCK, "operator", NOW, " court order 7 ")
    opened = change_status(blocked, AccountAction.UNBLOCK, "operator", later)
    assert opened.history == (StatusChange(A.BLOCKED, "operator", NOW, "court order 7"),
                              StatusChange(A.OPEN, "operator", later, None))


@pytest.mark.parametrize("action", [AccountAction.BLOCK, AccountAction.CLOSE])
@pytest.mark.parametrize("reason", [None, "", "   "])
def test_blocking_and_closing_need_a_reason(action: AccountAction, reason: str | None) -> None:
    with pytest.raises(StatusChangeRefused) as exc:
        change_status(PERSON, action, "operator", NOW, reason)
    assert exc.value.reason == f"say why account 1001 is {action.done}"


def test_unblocking_needs_no_reason() -> None:
    blocked = with_status(PERSON, A.BLOCKED)
    assert change_status(blocked, AccountAction.UNBLOCK, "operator", NOW).status == A.OPEN


@pytest.mark.parametrize("action", [AccountAction.BLOCK, AccountAction.CLOSE])
def test_a_fixed_government_account_is_never_blocked_or_closed(action: AccountAction
                                                               ) -> None:
    with pytest.raises(StatusChangeRefused) as exc:
        change_status(PARTY, action, "operator", NOW, "no longer needed")
    assert exc.value.reason == ("account 1 (Party holding account) is a government account "
                                f"the registry needs: it is never {action.done}")


@pytest.mark.parametrize("action", [AccountAction.BLOCK, AccountAction.CLOSE])
def test_an_extra_account_of_a_government_type_may_be_blocked_or_closed(
    action: AccountAction
) -> None:
    extra = Account("KZ", AccountType.PARTY_HOLDING, 1005, "Second Party account", 2)
    assert change_status(extra, action, "operator", NOW, "merged").status == (
        ACCOUNT_TRANSITIONS[action][1])


# closing only an empty account


def test_an_empty_account_may_be_closed() -> None:
    assert closure_refusals(PERSON, [], {}, []) == []
    check_closable(PERSON, [Holding(UnitType.AAU, 2, 0)], {"KZ9": 0}, [])


def test_one_unit_held_is_enough_to_refuse_closing_with_2009() -> None:
    with pytest.raises(RuleViolation) as exc:
        check_closable(PERSON, [Holding(UnitType.AAU, 2, 1)], {}, [])
    assert exc.value.code == R.ACCOUNT_NOT_EMPTY and exc.value.http_status == 409
    assert exc.value.reason == "account 1001 holds 1 AAU units of period 2"


def test_an_open_transaction_naming_an_empty_account_refuses_closing() -> None:
    with pytest.raises(RuleViolation) as exc:
        check_closable(PERSON, [], {}, ["KZ12"])
    assert exc.value.code == R.ACCOUNT_NOT_EMPTY
    assert exc.value.reason == "transaction KZ12 is open"


def test_closing_refusal_names_every_reason() -> None:
    holdings = [Holding(UnitType.AAU, 2, 500), Holding(UnitType.CER, 1, 20)]
    assert closure_refusals(PERSON, holdings, {"KZ12": 200}, ["KZ14", "KZ12"]) == [
        "account 1001 holds 500 AAU units of period 2 and 20 CER units of period 1",
        "200 units in it are reserved by KZ12",
        "transaction KZ12 is open",
        "transaction KZ14 is open",
    ]
