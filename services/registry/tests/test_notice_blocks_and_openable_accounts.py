"""Two rules of what the registry proposes or opens, without a broker or a store: a
transaction that fulfils a notice listing unit blocks takes its units among them, and
the operator opens only holding accounts."""

from __future__ import annotations

import pytest

from services.registry.domain import (
    CDM_OPENABLE_ACCOUNT_TYPES,
    NATIONAL_OPENABLE_ACCOUNT_TYPES,
    PER_PERIOD_ACCOUNT_TYPES,
    Account,
    RegistryProfile,
    account_opening_refusal,
    check_openable,
    choose_listed_blocks,
    describe_listed,
    fixed_accounts,
    within_listed,
)
from shared.blocks import SerialRange, UnitAttributes, UnitBlock
from shared.codes import AccountType, ResponseCode, UnitType
from shared.errors import RuleViolation

A = AccountType
KZ = RegistryProfile("KZ")
CDM = RegistryProfile("CDM", is_cdm=True)
PARTY = Account("KZ", A.PARTY_HOLDING, 1, "Republic of Kazakhstan", 2)
AAU = UnitAttributes("KZ", UnitType.AAU, 2, 2)
CH_AAU = UnitAttributes("CH", UnitType.AAU, 2, 2)


def aau(start: int, end: int, attributes: UnitAttributes = AAU) -> UnitBlock:
    return UnitBlock(attributes, SerialRange(start, end))


def serials(blocks: list[UnitBlock]) -> list[tuple[str, int, int]]:
    return [(b.attributes.originating_registry, b.serials.start, b.serials.end)
            for b in blocks]


# a notice's listed blocks


def test_the_units_of_a_notice_are_chosen_inside_its_listed_blocks_not_the_lowest() -> None:
    held = [aau(1, 999_999), aau(1_000_000, 1_200_000)]
    listed = [aau(1_000_000, 1_000_049)]
    chosen = choose_listed_blocks(held, listed, 50, PARTY, UnitType.AAU, 10)
    assert serials(chosen) == [("KZ", 1_000_000, 1_000_049)]


def test_held_blocks_are_clipped_to_the_listed_ranges_lowest_first() -> None:
    held = [aau(100, 199), aau(300, 399), aau(50, 60, CH_AAU)]
    listed = [aau(350, 360), aau(150, 250), aau(55, 70, CH_AAU)]
    assert serials(within_listed(held, listed)) == [
        ("CH", 55, 60), ("KZ", 150, 199), ("KZ", 350, 360)]
    chosen = choose_listed_blocks(held, listed, 56, PARTY, UnitType.AAU, 3)
    assert serials(chosen) == [("CH", 55, 60), ("KZ", 150, 199)]
    assert sum(b.quantity for b in chosen) == 56


def test_overlapping_listed_ranges_count_each_unit_once() -> None:
    held = [aau(1, 100)]
    listed = [aau(10, 30), aau(20, 40), aau(41, 45)]
    assert serials(within_listed(held, listed)) == [("KZ", 10, 45)]
    assert describe_listed(listed) == "KZ 10-45"


def test_serials_of_another_originating_registry_are_not_the_listed_ones() -> None:
    held = [aau(1_000_000, 1_000_049, CH_AAU)]
    assert within_listed(held, [aau(1_000_000, 1_000_049)]) == []


def test_too_few_listed_units_are_refused_with_4013_naming_the_blocks_and_what_is_held() -> None:
    held = [aau(1, 999_999), aau(1_000_000, 1_000_019)]
    listed = [aau(1_000_000, 1_000_049)]
    with pytest.raises(RuleViolation) as exc:
        choose_listed_blocks(held, listed, 50, PARTY, UnitType.AAU, 10)
    assert exc.value.code == ResponseCode.UNITS_DO_NOT_MATCH_NOTICE
    assert exc.value.http_status == 422
    assert exc.value.reason == (
        "notice 10 lists the unit blocks KZ 1000000-1000049; account 1 holds 20 available "
        "AAU units of this period among them, fewer than the 50 requested")
    # the boundary: exactly what is listed and held
    assert len(choose_listed_blocks(held, listed, 20, PARTY, UnitType.AAU, 10)) == 1


def test_a_long_list_of_blocks_is_named_in_part() -> None:
    listed = [aau(n * 10, n * 10 + 1) for n in range(1, 9)]
    assert describe_listed(listed) == "KZ 10-11, KZ 20-21, KZ 30-31, KZ 40-41, KZ 50-51 " \
                                      "and 3 more"


# accounts the operator opens


def test_a_national_registry_opens_person_former_operator_and_party_holding_accounts() -> None:
    expected = {A.PERSON_HOLDING, A.FORMER_OPERATOR_HOLDING, A.PARTY_HOLDING}
    assert expected == NATIONAL_OPENABLE_ACCOUNT_TYPES
    for account_type in NATIONAL_OPENABLE_ACCOUNT_TYPES:
        check_openable(KZ, account_type)


@pytest.mark.parametrize("account_type", sorted(set(A) - NATIONAL_OPENABLE_ACCOUNT_TYPES))
def test_every_other_kind_is_refused_in_a_national_registry_naming_account_type(
    account_type: AccountType,
) -> None:
    with pytest.raises(RuleViolation) as exc:
        check_openable(KZ, account_type)
    assert exc.value.code == ResponseCode.TYPE_ACCOUNT_COMBINATION_NOT_ALLOWED
    assert exc.value.http_status == 422
    assert exc.value.reason.startswith(f"account_type {int(account_type)} ")
    assert exc.value.reason.endswith("the operator opens 121 (PERSON_HOLDING), "
                                     "120 (FORMER_OPERATOR_HOLDING), 100 (PARTY_HOLDING)")


def test_each_refusal_in_a_national_registry_says_why() -> None:
    def why(account_type: AccountType) -> str:
        reason = account_opening_refusal(KZ, account_type)
        assert reason is not None
        return reason

    assert "one previous period surplus reserve (1/CMP.8 paras 23-26), which it keeps " \
           "itself: account 4" in why(A.PREVIOUS_PERIOD_SURPLUS_RESERVE)
    assert "keeps its VOLUNTARY_CANCELLATION accounts itself, one per commitment period: " \
           "2 (period 2), 102 (period 1)" in why(A.VOLUNTARY_CANCELLATION)
    assert "keeps its RETIREMENT accounts itself, one per commitment period: 3 (period 2), " \
           "103 (period 1)" in why(A.RETIREMENT)
    assert "keeps its TCER_REPLACEMENT_EXPIRY accounts itself, one per commitment period" \
        in why(A.TCER_REPLACEMENT_EXPIRY)
    assert "keeps its ARTICLE_37TER_CANCELLATION account (of the second period only) " \
           "itself: 13 (Art. 3.7ter cancellation account)" in why(A.ARTICLE_37TER_CANCELLATION)
    assert "keeps its AMBITION_INCREASE_CANCELLATION account (of the second period only) " \
           "itself: 14 (Ambition increase cancellation account)" in \
        why(A.AMBITION_INCREASE_CANCELLATION)
    for cdm_only in (A.PENDING, A.EXCESS_ISSUANCE_CANCELLATION,
                     A.CCS_NET_REVERSAL_CANCELLATION, A.CCS_NON_SUBMISSION_CANCELLATION):
        assert "exists only in the CDM registry" in why(cdm_only)
    for account_type in PER_PERIOD_ACCOUNT_TYPES:
        kept = [a for a in fixed_accounts(KZ, 2) if a.account_type == account_type]
        assert {a.commitment_period for a in kept} == {1, 2}
        assert all(str(a.account_id) in why(account_type) for a in kept)


def test_the_cdm_registry_opens_only_participants_holding_accounts() -> None:
    assert {A.PERSON_HOLDING} == CDM_OPENABLE_ACCOUNT_TYPES
    check_openable(CDM, A.PERSON_HOLDING)
    refused = {t: account_opening_refusal(CDM, t) for t in A if t != A.PERSON_HOLDING}
    assert all(r is not None and r.startswith(f"account_type {int(t)} ")
               and r.endswith("the operator opens 121 (PERSON_HOLDING)")
               for t, r in refused.items())
    assert "keeps its PENDING account itself: 1 (CDM Executive Board pending account);" in \
        str(refused[A.PENDING])
    assert "keeps its PARTY_HOLDING account itself: 1100 (Adaptation Fund share of proceeds " \
           "account);" in str(refused[A.PARTY_HOLDING])
    assert "keeps its EXCESS_ISSUANCE_CANCELLATION account itself: 2240 " in \
        str(refused[A.EXCESS_ISSUANCE_CANCELLATION])
    for national in (A.FORMER_OPERATOR_HOLDING, A.PREVIOUS_PERIOD_SURPLUS_RESERVE,
                     A.NET_SOURCE_CANCELLATION, A.RETIREMENT, A.TCER_REPLACEMENT_EXPIRY,
                     A.ARTICLE_37TER_CANCELLATION):
        assert "belongs to a Party's national registry, not the CDM registry" in \
            str(refused[national])
