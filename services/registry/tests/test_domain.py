"""The registry's rules without a broker or a store."""

from __future__ import annotations

import pytest

from services.registry.domain import (
    Account,
    AccountStatus,
    Direction,
    Reaction,
    RegistryProfile,
    acquiring_refusal,
    check_account_types,
    check_issuance,
    choose_blocks,
    choose_listed_blocks,
    fixed_accounts,
    full_account_identifier,
    react_to_itl_status,
)
from shared.blocks import SerialRange, UnitAttributes, UnitBlock
from shared.codes import (
    MAX_BLOCKS_PER_TRANSACTION,
    AccountType,
    ResponseCode,
    SupplementaryType,
    TransactionStatus,
    TransactionType,
    UnitType,
)
from shared.errors import RuleViolation
from shared.rules.accounts import AccountSide, account_rule_breaches

S = TransactionStatus
T = TransactionType
KZ = RegistryProfile("KZ")
CDM = RegistryProfile("CDM", is_cdm=True)
PARTY = Account("KZ", AccountType.PARTY_HOLDING, 1, "Republic of Kazakhstan", 2)
PERSON = Account("KZ", AccountType.PERSON_HOLDING, 1001, "Alice Energy LLP", 2)
RETIREMENT = Account("KZ", AccountType.RETIREMENT, 3, "Retirement", 2)


def code_of(exc: pytest.ExceptionInfo[RuleViolation]) -> ResponseCode:
    return exc.value.code


def test_full_identifier_has_the_protocol_shape_and_stable_check_digits() -> None:
    identifier = full_account_identifier("KZ", 121, 1001, 2)
    assert identifier.startswith("KZ-121-1001-2-")
    assert identifier == full_account_identifier("KZ", 121, 1001, 2)
    assert identifier != full_account_identifier("KZ", 121, 1002, 2)


def test_a_national_registry_issues_aaus_into_its_party_holding_account() -> None:
    check_issuance(KZ, UnitType.AAU, PARTY, None)


def test_a_national_registry_may_not_issue_cers() -> None:
    with pytest.raises(RuleViolation) as exc:
        check_issuance(KZ, UnitType.CER, PARTY, None)
    assert code_of(exc) == ResponseCode.TYPE_ACCOUNT_COMBINATION_NOT_ALLOWED
    assert "does not issue CER" in exc.value.reason


def test_issuance_into_a_person_account_is_refused() -> None:
    with pytest.raises(RuleViolation) as exc:
        check_issuance(KZ, UnitType.AAU, PERSON, None)
    assert code_of(exc) == ResponseCode.TYPE_ACCOUNT_COMBINATION_NOT_ALLOWED


def test_rmu_issuance_without_a_lulucf_activity_is_refused_with_2001() -> None:
    with pytest.raises(RuleViolation) as exc:
        check_issuance(KZ, UnitType.RMU, PARTY, None)
    assert code_of(exc) == ResponseCode.MISSING_FIELD
    check_issuance(KZ, UnitType.RMU, PARTY, 3)


def test_the_cdm_registry_issues_cers_into_its_pending_account_only() -> None:
    pending = fixed_accounts(CDM, 2)[0]
    assert pending.account_type == AccountType.PENDING
    check_issuance(CDM, UnitType.CER, pending, None)
    with pytest.raises(RuleViolation):
        check_issuance(CDM, UnitType.AAU, pending, None)


def test_units_cannot_leave_a_retirement_account_by_transfer() -> None:
    with pytest.raises(RuleViolation, match="takes units from account types") as exc:
        check_account_types(T.INTERNAL_TRANSFER, SupplementaryType.NONE, "KZ",
                            RETIREMENT.side, PERSON.side, [])
    assert code_of(exc) == ResponseCode.TYPE_ACCOUNT_COMBINATION_NOT_ALLOWED
    check_account_types(T.INTERNAL_TRANSFER, SupplementaryType.NONE, "KZ", PARTY.side,
                        PERSON.side, [])


def test_acquiring_checks_give_5902_5903_5904_5906() -> None:
    aau = [UnitBlock(UnitAttributes("KZ", UnitType.AAU, 2, 2), SerialRange(1, 5))]
    assert acquiring_refusal(None, [], aau) == ResponseCode.ACQUIRING_ACCOUNT_UNKNOWN
    closed = Account("JP", AccountType.PERSON_HOLDING, 1001, "x", 2, AccountStatus.CLOSED)
    assert acquiring_refusal(closed, [], aau) == ResponseCode.ACQUIRING_ACCOUNT_CLOSED
    into_retirement = account_rule_breaches(T.EXTERNAL_TRANSFER, SupplementaryType.NONE,
                                            "CH", AccountSide("CH", 100, 1), RETIREMENT.side,
                                            [a.attributes for a in aau])
    assert acquiring_refusal(RETIREMENT, into_retirement, aau) == \
        ResponseCode.ACQUIRING_ACCOUNT_NOT_ELIGIBLE
    from_reserve = account_rule_breaches(T.EXTERNAL_TRANSFER, SupplementaryType.NONE, "CH",
                                         AccountSide("CH", 130, 4), PERSON.side,
                                         [a.attributes for a in aau])
    assert acquiring_refusal(PERSON, from_reserve, aau) in (
        ResponseCode.ACQUIRING_ACCOUNT_NOT_ELIGIBLE, ResponseCode.INCONSISTENT_WITH_POLICY)
    assert acquiring_refusal(PERSON, [], aau) is None


def test_blocks_of_two_applicable_periods_are_inconsistent_with_policy_5904() -> None:
    mixed = [UnitBlock(UnitAttributes("KZ", UnitType.AAU, 1, 1), SerialRange(1, 5)),
             UnitBlock(UnitAttributes("KZ", UnitType.AAU, 2, 2), SerialRange(6, 9))]
    assert acquiring_refusal(PERSON, [], mixed) == ResponseCode.INCONSISTENT_WITH_POLICY


def test_choosing_more_units_than_held_is_refused_with_3002_naming_the_holding() -> None:
    held = [UnitBlock(UnitAttributes("KZ", UnitType.AAU, 2, 2), SerialRange(1, 50))]
    assert sum(b.quantity for b in choose_blocks(held, 50, PERSON, UnitType.AAU)) == 50
    with pytest.raises(RuleViolation) as exc:
        choose_blocks(held, 51, PERSON, UnitType.AAU)
    assert code_of(exc) == ResponseCode.BLOCK_NOT_HELD_BY_TRANSFERRING_ACCOUNT
    assert "holds 50 available AAU" in exc.value.reason


def _scattered(blocks: int) -> list[UnitBlock]:
    """``blocks`` blocks of 2 units each with a gap between neighbours (none merge)."""
    return [UnitBlock(UnitAttributes("KZ", UnitType.AAU, 2, 2), SerialRange(3 * i + 1, 3 * i + 2))
            for i in range(blocks)]


@pytest.mark.parametrize("blocks", [1, MAX_BLOCKS_PER_TRANSACTION - 1,
                                    MAX_BLOCKS_PER_TRANSACTION])
def test_a_transfer_of_up_to_3000_unit_blocks_is_proposed(blocks: int) -> None:
    held = _scattered(MAX_BLOCKS_PER_TRANSACTION + 10)
    chosen = choose_blocks(held, 2 * blocks, PERSON, UnitType.AAU)
    assert len(chosen) == blocks
    # the last block may be a part of a held one: 2 * 3000 - 1 units still need 3000
    assert len(choose_blocks(held, 2 * blocks - 1, PERSON, UnitType.AAU)) == blocks


@pytest.mark.parametrize("extra_units", [1, 2, 3])
def test_a_transfer_needing_more_than_3000_unit_blocks_is_refused_with_2005(
        extra_units: int) -> None:
    held = _scattered(MAX_BLOCKS_PER_TRANSACTION + 10)
    quantity = 2 * MAX_BLOCKS_PER_TRANSACTION + extra_units
    with pytest.raises(RuleViolation) as exc:
        choose_blocks(held, quantity, PERSON, UnitType.AAU)
    assert code_of(exc) == ResponseCode.TOO_MANY_BLOCKS
    needed = MAX_BLOCKS_PER_TRANSACTION + (extra_units + 1) // 2
    assert (f"the {quantity} units requested lie in {needed} unit blocks of account 1001"
            in exc.value.reason)
    assert f"hold {2 * MAX_BLOCKS_PER_TRANSACTION} of them" in exc.value.reason


def test_a_notice_transfer_needing_more_than_3000_unit_blocks_is_refused_with_2005() -> None:
    held = _scattered(MAX_BLOCKS_PER_TRANSACTION + 1)
    listed = [UnitBlock(UnitAttributes("KZ", UnitType.AAU, 2, 2),
                        SerialRange(1, 3 * MAX_BLOCKS_PER_TRANSACTION + 5))]
    assert len(choose_listed_blocks(held, listed, 2 * MAX_BLOCKS_PER_TRANSACTION, PERSON,
                                    UnitType.AAU, 7)) == MAX_BLOCKS_PER_TRANSACTION
    with pytest.raises(RuleViolation) as exc:
        choose_listed_blocks(held, listed, 2 * MAX_BLOCKS_PER_TRANSACTION + 1, PERSON,
                             UnitType.AAU, 7)
    assert code_of(exc) == ResponseCode.TOO_MANY_BLOCKS


@pytest.mark.parametrize(
    ("direction", "kind", "current", "incoming", "reaction"),
    [
        (Direction.OUTGOING, T.ISSUANCE, S.PROPOSED, S.CHECKED_NO_DISCREPANCY, Reaction.FINALISE),
        (Direction.OUTGOING, T.INTERNAL_TRANSFER, S.PROPOSED, S.CHECKED_NO_DISCREPANCY,
         Reaction.FINALISE),
        (Direction.OUTGOING, T.EXTERNAL_TRANSFER, S.PROPOSED, S.ACCEPTED, Reaction.DEBIT),
        (Direction.OUTGOING, T.EXTERNAL_TRANSFER, S.PROPOSED, S.CHECKED_NO_DISCREPANCY,
         Reaction.IGNORE),
        (Direction.OUTGOING, T.EXTERNAL_TRANSFER, S.PROPOSED, S.REJECTED, Reaction.TERMINATE),
        (Direction.OUTGOING, T.ISSUANCE, S.PROPOSED, S.CHECKED_DISCREPANCY, Reaction.TERMINATE),
        (Direction.OUTGOING, T.ISSUANCE, S.COMPLETED, S.CHECKED_NO_DISCREPANCY, Reaction.IGNORE),
        (Direction.OUTGOING, T.ISSUANCE, S.TERMINATED, S.CHECKED_NO_DISCREPANCY,
         Reaction.IGNORE),
        (Direction.INBOUND, T.EXTERNAL_TRANSFER, S.ACCEPTED, S.COMPLETED, Reaction.CREDIT),
        (Direction.INBOUND, T.EXTERNAL_TRANSFER, S.COMPLETED, S.COMPLETED, Reaction.IGNORE),
        (Direction.INBOUND, T.EXTERNAL_TRANSFER, S.TERMINATED, S.COMPLETED, Reaction.IGNORE),
    ],
)
def test_registry_reaction_to_each_itl_status(
    direction: Direction, kind: TransactionType, current: TransactionStatus,
    incoming: TransactionStatus, reaction: Reaction,
) -> None:
    assert react_to_itl_status(direction, kind, current, incoming) == reaction
