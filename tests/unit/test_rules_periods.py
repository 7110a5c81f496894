"""The commitment periods' quantitative rules at their boundaries (protocol.md 4)."""

from __future__ import annotations

from datetime import date

import pytest

from shared.blocks import SerialRange, UnitAttributes, UnitBlock
from shared.codes import AccountType, LulucfActivity, UnitType
from shared.rules.parties import (
    Mechanism,
    PartyStanding,
    conversion_eligibility_breaches,
    reference_standing,
    retirement_eligibility_breaches,
    transfer_eligibility_breaches,
)
from shared.rules.periods import (
    DEFAULT_TRUE_UP_PERIOD_ENDS,
    aau_issuance_room,
    ar_cdm_limit,
    article_37ter_quantity,
    article_37ter_room,
    carry_over_limit,
    commitment_period_reserve,
    forest_management_cap,
    is_first_international_transfer,
    levies_on_conversion,
    ppsr_acquisition_limit,
    ppsr_retirement_limit,
    replacement_breaches,
    rmu_issuance_limit,
    share_of_proceeds_due,
    temporary_unit_expiry,
    true_up_ended,
)

U = UnitType
A = AccountType


# reserve


def test_the_second_period_reserve_is_eight_times_the_inventory_when_that_is_lower() -> None:
    # 90 % of 1 000 000 is 900 000; 8 x 112 499 = 899 992 is lower, 8 x 112 500 is equal
    assert commitment_period_reserve(2, 1_000_000, 112_499) == 899_992
    assert commitment_period_reserve(2, 1_000_000, 112_500) == 900_000
    assert commitment_period_reserve(2, 1_000_000, 112_501) == 900_000


def test_the_first_period_reserve_is_five_times_the_inventory_when_that_is_lower() -> None:
    assert commitment_period_reserve(1, 1_000_000, 179_999) == 899_995
    assert commitment_period_reserve(1, 1_000_000, 180_000) == 900_000


def test_the_reserve_is_rounded_up_because_it_is_a_floor() -> None:
    assert commitment_period_reserve(2, 1_000_001, None) == 900_001  # 900 000.9
    assert commitment_period_reserve(2, 1_000_000, None) == 900_000
    assert commitment_period_reserve(2, 11, None) == 10  # 9.9


def test_the_reserve_is_computed_on_the_assigned_amount_net_of_article_37ter() -> None:
    assert commitment_period_reserve(2, 1_000_000, None, article_37ter_quantity=100_000) == \
        810_000


# Art. 3.7ter


def test_article_37ter_cancels_the_assigned_amount_above_eight_times_2008_2010() -> None:
    assert article_37ter_quantity(2, 1_000_000, 110_000) == 120_000
    assert article_37ter_quantity(2, 1_000_000, 125_000) == 0  # exactly 8x: nothing
    assert article_37ter_quantity(2, 1_000_000, 124_999) == 8
    assert article_37ter_quantity(2, 1_000_000, None) == 0
    assert article_37ter_quantity(1, 1_000_000, 10) == 0


def test_the_issuance_limit_is_reduced_until_article_37ter_is_cancelled() -> None:
    # assigned amount 1000, 3.7ter quantity 100
    assert aau_issuance_room(1_000, 100, issued=0, cancelled_37ter=0) == 900
    assert aau_issuance_room(1_000, 100, issued=900, cancelled_37ter=0) == 0
    assert aau_issuance_room(1_000, 100, issued=900, cancelled_37ter=100) == 100
    assert aau_issuance_room(1_000, 100, issued=1_000, cancelled_37ter=100) == 0
    assert aau_issuance_room(1_000, 0, issued=999, cancelled_37ter=0) == 1
    assert article_37ter_room(100, 99) == 1
    assert article_37ter_room(100, 100) == 0


# share of proceeds


def test_share_of_proceeds_is_two_percent_of_the_cumulative_base_rounded_down() -> None:
    assert share_of_proceeds_due(2, 49) == 0
    assert share_of_proceeds_due(2, 50) == 1
    assert share_of_proceeds_due(2, 30_000) == 600
    assert share_of_proceeds_due(2, 30_049) == 600
    assert share_of_proceeds_due(2, 30_050) == 601
    assert share_of_proceeds_due(1, 30_000) == 0  # the first period had none


def test_only_second_period_aaus_leaving_their_own_party_pay_on_first_transfer() -> None:
    assert is_first_international_transfer(UnitAttributes("KZ", U.AAU, 2, 2), "KZ")
    assert not is_first_international_transfer(UnitAttributes("CH", U.AAU, 2, 2), "KZ")
    assert not is_first_international_transfer(UnitAttributes("KZ", U.AAU, 1, 2), "KZ")
    assert not is_first_international_transfer(UnitAttributes("KZ", U.CER, 2, 2), "KZ")
    assert levies_on_conversion(UnitAttributes("KZ", U.AAU, 2, 2))
    assert not levies_on_conversion(UnitAttributes("KZ", U.AAU, 1, 1))


# PPSR


def test_a_party_acquires_ppsr_units_up_to_two_percent_of_its_first_assigned_amount() -> None:
    assert ppsr_acquisition_limit(1_000_049) == 20_000
    assert ppsr_acquisition_limit(1_000_050) == 20_001
    assert ppsr_acquisition_limit(None) == 0


def test_ppsr_units_are_retired_up_to_the_excess_emissions() -> None:
    assert ppsr_retirement_limit(1_050_000, 1_000_000) == 50_000
    assert ppsr_retirement_limit(990_000, 1_000_000) == 0
    assert ppsr_retirement_limit(None, 1_000_000) == 0


# carry-over


def test_carry_over_limit_and_the_true_up_period() -> None:
    assert carry_over_limit(500_000) == 12_500
    assert carry_over_limit(500_039) == 12_500
    assert carry_over_limit(500_040) == 12_501
    end = DEFAULT_TRUE_UP_PERIOD_ENDS[1]
    assert not true_up_ended(1, end, DEFAULT_TRUE_UP_PERIOD_ENDS)
    assert true_up_ended(1, date(end.year, end.month, end.day + 1), DEFAULT_TRUE_UP_PERIOD_ENDS)
    assert not true_up_ended(3, date(2040, 1, 1), DEFAULT_TRUE_UP_PERIOD_ENDS)


# tCER / lCER


def test_tcers_expire_at_the_end_of_the_next_period_lcers_with_their_crediting() -> None:
    assert temporary_unit_expiry(U.TCER, 1, None) == date(2020, 12, 31)
    assert temporary_unit_expiry(U.TCER, 2, None) == date(2030, 12, 31)
    assert temporary_unit_expiry(U.LCER, 2, date(2032, 5, 31)) == date(2032, 5, 31)
    assert temporary_unit_expiry(U.LCER, 2, None) is None
    assert temporary_unit_expiry(U.CER, 2, None) is None


def _block(unit_type: UnitType, project: str | None = "CDM-AR-1") -> UnitBlock:
    return UnitBlock(UnitAttributes("CDM", unit_type, 1, 1, project_id=project),
                     SerialRange(1, 10))


@pytest.mark.parametrize(("account", "replacing", "allowed"), [
    (A.TCER_REPLACEMENT_EXPIRY, U.TCER, True),
    (A.TCER_REPLACEMENT_EXPIRY, U.LCER, False),
    (A.TCER_REPLACEMENT_EXPIRY, U.RMU, True),
    (A.LCER_REPLACEMENT_EXPIRY, U.LCER, False),
    (A.LCER_REPLACEMENT_EXPIRY, U.TCER, False),
    (A.LCER_REPLACEMENT_EXPIRY, U.ERU_FROM_RMU, True),
    (A.LCER_REPLACEMENT_REVERSAL, U.LCER, True),
    (A.LCER_REPLACEMENT_REVERSAL, U.TCER, False),
    (A.LCER_REPLACEMENT_NON_SUBMISSION, U.LCER, True),
    (A.LCER_REPLACEMENT_NON_SUBMISSION, U.CER, True),
])
def test_replacement_sets_of_decision_5_cmp_1(account: AccountType, replacing: UnitType,
                                              allowed: bool) -> None:
    replaced = [_block(U.TCER if account == A.TCER_REPLACEMENT_EXPIRY else U.LCER)]
    assert (replacement_breaches(account, replaced, [_block(replacing)]) == []) == allowed


def test_temporary_units_replace_only_units_that_expire_before_them() -> None:
    def tcer(expiry: date) -> UnitBlock:
        return UnitBlock(UnitAttributes("CDM", U.TCER, 1, 1, expiry_date=expiry),
                         SerialRange(1, 10))

    replaced = [tcer(date(2020, 12, 31))]
    assert replacement_breaches(A.TCER_REPLACEMENT_EXPIRY, replaced,
                                [tcer(date(2021, 1, 1))]) == []
    same_day = replacement_breaches(A.TCER_REPLACEMENT_EXPIRY, replaced,
                                    [tcer(date(2020, 12, 31))])
    assert same_day and "outlives" in same_day[0]
    # lost lCERs are replaced by lCERs of their project, which expire with them
    lcer = UnitBlock(UnitAttributes("CDM", U.LCER, 1, 1, project_id="AR",
                                    expiry_date=date(2030, 6, 30)), SerialRange(1, 10))
    assert replacement_breaches(A.LCER_REPLACEMENT_REVERSAL, [lcer], [lcer]) == []


def test_lcers_replace_lost_lcers_only_of_the_same_project() -> None:
    replaced = [_block(U.LCER, "CDM-AR-1")]
    assert replacement_breaches(A.LCER_REPLACEMENT_REVERSAL, replaced,
                                [_block(U.LCER, "CDM-AR-1")]) == []
    other = replacement_breaches(A.LCER_REPLACEMENT_REVERSAL, replaced,
                                 [_block(U.LCER, "CDM-AR-2")])
    assert other and "same project" in other[0]


# RMUs and A/R CDM


def test_rmu_limits_per_activity() -> None:
    fm = LulucfActivity.FOREST_MANAGEMENT
    assert rmu_issuance_limit(LulucfActivity.DEFORESTATION, 1_000, None) == 0
    assert rmu_issuance_limit(LulucfActivity.AFFORESTATION_REFORESTATION, 1_000, None) == 1_000
    assert rmu_issuance_limit(LulucfActivity.AFFORESTATION_REFORESTATION, None, None) == 0
    assert rmu_issuance_limit(fm, 1_000, 700) == 700
    assert rmu_issuance_limit(fm, 600, 700) == 600
    # the second-period cap: 3.5 % of base-year emissions times eight
    assert forest_management_cap(2, 1_000_000, None) == 280_000
    assert forest_management_cap(2, 1_000_000, 5_000) == 5_000
    assert forest_management_cap(1, 1_000_000, None) is None


def test_ar_cdm_credits_are_limited_to_one_percent_of_base_year_times_years() -> None:
    assert ar_cdm_limit(1, 1_000_000) == 50_000
    assert ar_cdm_limit(2, 1_000_000) == 80_000
    assert ar_cdm_limit(2, 1_012) == 80  # 80.96 rounded down
    assert ar_cdm_limit(2, None) == 0


# Party eligibility


def test_the_reference_data_knows_who_had_a_second_period_commitment() -> None:
    assert 2 in reference_standing("KZ").commitment_periods
    assert 1 not in reference_standing("KZ").commitment_periods
    assert reference_standing("JP").commitment_periods == {1}
    assert reference_standing("CH").commitment_periods == {1, 2}
    assert reference_standing("ZZ").eligible == frozenset()


def test_a_party_without_a_second_period_commitment_neither_transfers_nor_acquires() -> None:
    kz, jp, ch = (reference_standing(c) for c in ("KZ", "JP", "CH"))
    cp2 = [UnitAttributes("KZ", U.AAU, 2, 2)]
    cp1 = [UnitAttributes("KZ", U.AAU, 1, 1)]
    assert transfer_eligibility_breaches(kz, ch, cp2) == []
    acquire = transfer_eligibility_breaches(kz, jp, cp2)
    assert acquire == ["JP has no commitment for period 2, so it may not acquire units valid "
                       "for it (1/CMP.8 paras 13-15)"]
    assert transfer_eligibility_breaches(jp, kz, cp2)[0].startswith("JP has no commitment")
    assert transfer_eligibility_breaches(kz, jp, cp1) == []
    # CDM forwarding of second-period CERs to Japan: Japan may not acquire them
    assert transfer_eligibility_breaches(None, jp, [UnitAttributes("CDM", U.CER, 2, 2)])
    # obligations to the CDM registry need no eligibility
    assert transfer_eligibility_breaches(jp, None, cp2) == []


def test_each_mechanism_is_checked_for_its_units() -> None:
    no_ji = PartyStanding("KZ", commitment_periods=frozenset({2}),
                          eligible=frozenset({Mechanism.ARTICLE_12, Mechanism.ARTICLE_17}))
    ch = reference_standing("CH")
    assert transfer_eligibility_breaches(no_ji, ch, [UnitAttributes("KZ", U.AAU, 2, 2)]) == []
    eru = transfer_eligibility_breaches(no_ji, ch, [UnitAttributes("KZ", U.ERU_FROM_AAU, 2, 2)])
    assert eru == ["KZ is not eligible under Article 6 (joint implementation) to transfer "
                   "these units"]
    assert conversion_eligibility_breaches(no_ji, 1)
    assert conversion_eligibility_breaches(no_ji, 2) == []
    no_cdm = PartyStanding("KZ", commitment_periods=frozenset({2}),
                           eligible=frozenset({Mechanism.ARTICLE_17}))
    assert retirement_eligibility_breaches(no_cdm, [UnitAttributes("CDM", U.CER, 2, 2)])
    assert retirement_eligibility_breaches(no_cdm, [UnitAttributes("KZ", U.AAU, 2, 2)]) == []
