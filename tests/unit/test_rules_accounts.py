"""The account-type table: every cell of every row, and the cases the second period
changed (protocol.md 2.6, 2.7; 1/CMP.8 paras 23-26)."""

from __future__ import annotations

import itertools

import pytest

from shared.blocks import UnitAttributes
from shared.codes import (
    CDM_CODE,
    AccountType,
    SupplementaryType,
    TransactionType,
    UnitType,
)
from shared.rules.accounts import (
    ACCOUNT_RULES,
    GOVERNMENT_ACCOUNT_TYPES,
    AccountRule,
    AccountSide,
    Destination,
    Side,
    TransferKind,
    account_rule_breaches,
    rule_for,
    supplementary_type_of,
)

A = AccountType
T = TransactionType
S = SupplementaryType
U = UnitType
K = TransferKind

H = {100, 120, 121}
#: The table restated from the README's rules section: transferring and acquiring
#: account types of every kind. The test holds the code to this statement cell by cell.
EXPECTED: dict[TransferKind, tuple[set[int], set[int]]] = {
    K.ISSUANCE: (set(), {100}),
    K.CDM_ISSUANCE: (set(), {110}),
    K.CONVERSION: (H, H),
    K.EXTERNAL_TRANSFER: (H | {110}, H | {240, 241, 242}),
    K.PPSR_TRANSFER: ({130}, {130}),
    K.SOP_FIRST_TRANSFER_OF_AAU: (H, {100}),
    K.SOP_ERU_CONVERSION: (H, {100}),
    K.CANCELLATION: (H, {210, 220, 230, 260}),
    K.MANDATORY_CANCELLATION: (H, {250}),
    K.ARTICLE_37TER_CANCELLATION: ({100}, {270}),
    K.AMBITION_INCREASE_CANCELLATION: ({100}, {280}),
    K.RETIREMENT: (H, {300}),
    K.PPSR_RETIREMENT: ({130}, {300}),
    K.REPLACEMENT: (H, {411, 421, 422, 423}),
    K.CARRY_OVER_AAU: (H, {130}),
    K.CARRY_OVER_CER_ERU: (H, H),
    K.EXPIRY_DATE_CHANGE: (H | {300, 411, 421, 422, 423}, H | {300, 411, 421, 422, 423}),
    K.INTERNAL_TRANSFER: (H | {110}, H),
}


def fitting_units(rules: list[AccountRule]) -> UnitAttributes:
    """A unit every row of ``rules`` takes, with periods they all accept."""
    unit_type = min(frozenset.intersection(*(r.unit_types for r in rules)))
    original = min(frozenset.intersection(*(r.original_periods or frozenset({1, 2})
                                            for r in rules)))
    applicable = min(frozenset.intersection(*(r.applicable_periods or frozenset({1, 2})
                                              for r in rules)) - set(range(original)))
    return UnitAttributes("KZ", unit_type, original, applicable)


def sides(rule: AccountRule, transferring: int | None, acquiring: int
          ) -> tuple[str, AccountSide | None, AccountSide]:
    """Accounts with the given types that satisfy the row's destination."""
    proposer = CDM_CODE if rule.kind == K.CDM_ISSUANCE else "KZ"
    registry = {Destination.OTHER_REGISTRY: "CH",
                Destination.CDM_REGISTRY: CDM_CODE}.get(rule.destination, proposer)
    if rule.destination == Destination.SAME_ACCOUNT and transferring is not None:
        return proposer, AccountSide(proposer, transferring, 7), \
            AccountSide(registry, acquiring, 7)
    source = None if transferring is None else AccountSide(proposer, transferring, 7)
    return proposer, source, AccountSide(registry, acquiring, 8)


def test_the_table_has_exactly_the_rows_the_readme_states() -> None:
    assert {r.kind for r in ACCOUNT_RULES} == set(EXPECTED)
    for rule in ACCOUNT_RULES:
        transferring, acquiring = EXPECTED[rule.kind]
        assert {int(t) for t in rule.transferring} == transferring, rule.kind
        assert {int(t) for t in rule.acquiring} == acquiring, rule.kind


#: Rows that share a transaction type, supplementary type and proposer: the transferring
#: account type decides between them (a PPSR or not).
KEYS: dict[tuple[TransactionType, SupplementaryType, bool], list[AccountRule]] = {}
for _rule in ACCOUNT_RULES:
    KEYS.setdefault((_rule.transaction_type, _rule.supplementary_type,
                     _rule.kind == K.CDM_ISSUANCE), []).append(_rule)
#: Every (key, transferring type, acquiring type); a row that keeps units in the same
#: account has only the cells where both sides are that account.
CELLS = [
    (rules, transferring, acquiring)
    for rules in KEYS.values()
    for transferring, acquiring in itertools.product([None, *A], A)
    if rules[0].destination != Destination.SAME_ACCOUNT or transferring == acquiring
]


@pytest.mark.parametrize(("rules", "transferring", "acquiring"), CELLS,
                         ids=[f"{r[0].kind.name}-{t}-{a}" for r, t, a in CELLS])
def test_every_cell_of_the_table(rules: list[AccountRule], transferring: AccountType | None,
                                 acquiring: AccountType) -> None:
    def allowed(rule: AccountRule) -> bool:
        expected_from, expected_to = EXPECTED[rule.kind]
        source_fits = (not expected_from if transferring is None
                       else int(transferring) in expected_from)
        return source_fits and int(acquiring) in expected_to

    fits = any(allowed(r) for r in rules)
    proposer, source, target = sides(rules[0], transferring, acquiring)
    breaches = account_rule_breaches(rules[0].transaction_type, rules[0].supplementary_type,
                                     proposer, source, target, [fitting_units(rules)])
    assert (breaches == []) == fits, breaches


def test_units_leave_a_ppsr_only_into_another_ppsr_or_to_retirement() -> None:
    aau = UnitAttributes("KZ", U.AAU, 1, 2)
    ppsr = AccountSide("KZ", 130, 4)
    to_person = account_rule_breaches(T.EXTERNAL_TRANSFER, S.NONE, "KZ", ppsr,
                                      AccountSide("CH", 121, 1001), [aau])
    assert [b.side for b in to_person] == [Side.ACQUIRING]
    internal = account_rule_breaches(T.INTERNAL_TRANSFER, S.NONE, "KZ", ppsr,
                                     AccountSide("KZ", 121, 1001), [aau])
    assert internal and "surplus reserve" in internal[0].reason
    cancelled = account_rule_breaches(T.CANCELLATION, S.NONE, "KZ", ppsr,
                                      AccountSide("KZ", 230, 2), [aau])
    assert cancelled and cancelled[0].side == Side.TRANSFERRING
    assert account_rule_breaches(T.EXTERNAL_TRANSFER, S.NONE, "KZ", ppsr,
                                 AccountSide("CH", 130, 4), [aau]) == []
    assert account_rule_breaches(T.RETIREMENT, S.NONE, "KZ", ppsr,
                                 AccountSide("KZ", 300, 3), [aau]) == []


def test_ordinary_aaus_never_enter_a_ppsr() -> None:
    aau = UnitAttributes("KZ", U.AAU, 2, 2)
    from_holding = account_rule_breaches(T.EXTERNAL_TRANSFER, S.NONE, "KZ",
                                         AccountSide("KZ", 100, 1), AccountSide("CH", 130, 4),
                                         [aau])
    assert [b.side for b in from_holding] == [Side.ACQUIRING]
    assert from_holding[0].acquiring_registry_code == 5903
    # even a reserve's own AAUs of period 2 (not carried over) cannot move between reserves
    wrong_period = account_rule_breaches(T.EXTERNAL_TRANSFER, S.NONE, "KZ",
                                         AccountSide("KZ", 130, 4), AccountSide("CH", 130, 4),
                                         [aau])
    assert [b.side for b in wrong_period] == [Side.UNITS]
    assert wrong_period[0].acquiring_registry_code == 5904


def test_the_expiry_date_of_retired_tcers_can_change_in_place() -> None:
    tcer = UnitAttributes("CDM", U.TCER, 1, 1)
    retirement = AccountSide("KZ", 300, 3)
    assert account_rule_breaches(T.EXPIRY_DATE_CHANGE, S.NONE, "KZ", retirement, retirement,
                                 [tcer]) == []
    rule = rule_for(T.EXPIRY_DATE_CHANGE, S.NONE, 300, "KZ")
    assert rule is not None and rule.keeps_units_in_place
    moved = account_rule_breaches(T.EXPIRY_DATE_CHANGE, S.NONE, "KZ", retirement,
                                  AccountSide("KZ", 300, 103), [tcer])
    assert moved and "the same account" in moved[0].reason


@pytest.mark.parametrize(("transaction_type", "registry", "account_type", "units", "expected"), [
    (T.CARRY_OVER, "KZ", 130, [U.AAU], S.CARRY_OVER_AAU),
    (T.CARRY_OVER, "KZ", 121, [U.CER], S.CARRY_OVER_CER_ERU),
    (T.CARRY_OVER, "KZ", 121, [U.ERU_FROM_AAU], S.CARRY_OVER_CER_ERU),
    (T.CANCELLATION, "KZ", 250, [U.AAU], S.MANDATORY_CANCELLATION),
    (T.CANCELLATION, "KZ", 270, [U.AAU], S.ARTICLE_37TER_CANCELLATION),
    (T.CANCELLATION, "KZ", 280, [U.AAU], S.AMBITION_INCREASE_CANCELLATION),
    (T.CANCELLATION, "KZ", 230, [U.AAU], S.NONE),
    (T.EXTERNAL_TRANSFER, CDM_CODE, 100, [U.AAU], S.SHARE_OF_PROCEEDS_FIRST_TRANSFER_OF_AAU),
    (T.EXTERNAL_TRANSFER, CDM_CODE, 100, [U.ERU_FROM_RMU], S.SHARE_OF_PROCEEDS_ERU_CONVERSION),
    (T.EXTERNAL_TRANSFER, CDM_CODE, 240, [U.AAU], S.NONE),
    (T.EXTERNAL_TRANSFER, "CH", 100, [U.AAU], S.NONE),
    (T.INTERNAL_TRANSFER, "KZ", 121, [U.AAU], S.NONE),
])
def test_a_proposal_without_a_supplementary_type_is_read_by_what_it_does(
    transaction_type: TransactionType, registry: str, account_type: int,
    units: list[UnitType], expected: SupplementaryType,
) -> None:
    assert supplementary_type_of(transaction_type, registry, account_type, units) == expected


def test_a_wrong_supplementary_type_finds_no_row() -> None:
    breaches = account_rule_breaches(T.INTERNAL_TRANSFER, S.MANDATORY_CANCELLATION, "KZ",
                                     AccountSide("KZ", 121, 1), AccountSide("KZ", 121, 2),
                                     [UnitAttributes("KZ", U.AAU, 2, 2)])
    assert [b.side for b in breaches] == [Side.TRANSACTION]


def test_share_of_proceeds_goes_to_the_cdm_registry_only() -> None:
    aau = UnitAttributes("KZ", U.AAU, 2, 2)
    elsewhere = account_rule_breaches(T.EXTERNAL_TRANSFER,
                                      S.SHARE_OF_PROCEEDS_FIRST_TRANSFER_OF_AAU, "KZ",
                                      AccountSide("KZ", 100, 1), AccountSide("CH", 100, 1),
                                      [aau])
    assert elsewhere and "CDM registry" in elsewhere[0].reason
    first_period = account_rule_breaches(T.EXTERNAL_TRANSFER,
                                         S.SHARE_OF_PROCEEDS_FIRST_TRANSFER_OF_AAU, "KZ",
                                         AccountSide("KZ", 100, 1),
                                         AccountSide(CDM_CODE, 100, 1100),
                                         [UnitAttributes("KZ", U.AAU, 1, 1)])
    assert {b.side for b in first_period} == {Side.UNITS}


def test_government_accounts_are_the_states_own() -> None:
    assert {100, 130, 210, 220, 230, 250, 260, 270, 280, 300, 411, 421, 422, 423} <= {
        int(t) for t in GOVERNMENT_ACCOUNT_TYPES}
    assert not {110, 120, 121} & {int(t) for t in GOVERNMENT_ACCOUNT_TYPES}
