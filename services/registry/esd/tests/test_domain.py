"""Article 5 of Decision 406/2009/EC, paragraph by paragraph, without broker or store."""

from __future__ import annotations

from dataclasses import replace
from datetime import date

import pytest

from services.registry.esd.config import NOT_SET, SET_BY_OPERATOR, EsdSettings
from services.registry.esd.domain import (
    Allocation,
    Article55Condition,
    Basis,
    CountryLists,
    MemberStateProfile,
    ProjectFacts,
    TemporaryCredits,
    YearLedger,
    accept_transfer_in,
    allocate_use,
    apply_replacement,
    book_transfer_in,
    book_transfer_out,
    book_use,
    check_eligibility,
    check_year,
    close_year,
    overdue_replacement,
    position,
    release_transfer_in,
    release_transfer_out,
    release_use,
    reserve_transfer_out,
    reserve_use,
)
from services.registry.esd.reference import load_reference
from shared.blocks import SerialRange, UnitAttributes, UnitBlock
from shared.codes import ResponseCode, UnitType
from shared.errors import RuleViolation

R = ResponseCode
TODAY = date(2016, 6, 1)
YEAR = 2015
LISTS = load_reference().country_lists()
PROFILE = MemberStateProfile(code="DE", emissions_2005=10_000, annex_ii_limit_percent=-14,
                             annex_iii=False)
# India: neither LDC nor SIDS; registered 2010, eligible in the EU ETS
INDIA = ProjectFacts("P-IN", "IN", date(2010, 5, 1), date(2010, 6, 1), True)
BANGLADESH_2015 = ProjectFacts("P-BD", "BD", date(2015, 3, 1), date(2015, 4, 1), True)
CHINA_2014 = ProjectFacts("P-CN", "CN", date(2014, 3, 1), date(2014, 4, 1), True)
COMMUNITY = ProjectFacts("P-EU", "PL", date(2015, 1, 1), date(2015, 1, 1), False,
                         community_project=True)


def block(unit_type: UnitType = UnitType.CER, period: int = 2, quantity: int = 10,
          expiry: date | None = None, project: str | None = "P-IN") -> UnitBlock:
    return UnitBlock(UnitAttributes("CDM", unit_type, period, 2, project_id=project,
                                    expiry_date=expiry), SerialRange(1, quantity))


def refused(code: ResponseCode, *args: object, **kwargs: object) -> RuleViolation:
    with pytest.raises(RuleViolation) as info:
        check_eligibility(*args, **kwargs)  # type: ignore[arg-type]
    assert info.value.code == code, info.value.reason
    return info.value


# paragraph 1: eligibility


@pytest.mark.parametrize("unit_type", [UnitType.AAU, UnitType.RMU])
def test_assigned_amount_and_removal_units_are_not_credits_and_are_refused_with_4101(
        unit_type: UnitType) -> None:
    refused(R.ESD_UNIT_TYPE_NOT_ELIGIBLE, block(unit_type), INDIA, PROFILE, LISTS, YEAR, TODAY)


def test_credits_of_a_project_without_recorded_facts_are_refused_with_4102() -> None:
    refused(R.ESD_PROJECT_FACTS_MISSING, block(), None, PROFILE, LISTS, YEAR, TODAY)


@pytest.mark.parametrize("unit_type", [UnitType.CER, UnitType.ERU_FROM_AAU])
def test_1a_cers_and_erus_for_reductions_up_to_2012_eligible_in_the_ets_are_eligible(
        unit_type: UnitType) -> None:
    result = check_eligibility(block(unit_type, period=1), INDIA, PROFILE, LISTS, YEAR, TODAY)
    assert (result.paragraph, result.basis) == ("5(1)(a)", Basis.GENERAL)


def test_1a_credits_not_eligible_in_the_ets_2008_2012_are_refused_with_4103() -> None:
    facts = replace(INDIA, ets_eligible_2008_2012=False)
    refused(R.ESD_NOT_ETS_ELIGIBLE, block(period=1), facts, PROFILE, LISTS, YEAR, TODAY)


def test_1a_reductions_up_to_2012_of_a_project_crediting_from_2013_are_refused_with_4105(
) -> None:
    facts = replace(INDIA, crediting_start=date(2013, 1, 1))
    refused(R.ESD_REDUCTIONS_BEFORE_CREDITING_START, block(period=1), facts, PROFILE, LISTS,
            YEAR, TODAY)


@pytest.mark.parametrize("unit_type", [UnitType.CER, UnitType.ERU_FROM_RMU])
def test_1b_reductions_from_2013_of_a_project_registered_before_2013_are_eligible(
        unit_type: UnitType) -> None:
    result = check_eligibility(block(unit_type), INDIA, PROFILE, LISTS, YEAR, TODAY)
    assert result.paragraph == "5(1)(b)"


def test_1b_project_registered_on_1_january_2013_outside_an_ldc_is_refused_with_4104(
) -> None:
    facts = replace(INDIA, registered_on=date(2013, 1, 1))
    refused(R.ESD_PROJECT_REGISTERED_TOO_LATE, block(), facts, PROFILE, LISTS, YEAR, TODAY)


def test_1b_reductions_from_2013_not_eligible_in_the_ets_are_refused_with_4103() -> None:
    facts = replace(INDIA, ets_eligible_2008_2012=False)
    refused(R.ESD_NOT_ETS_ELIGIBLE, block(), facts, PROFILE, LISTS, YEAR, TODAY)


def test_1c_cers_of_a_project_registered_after_2012_in_an_ldc_are_eligible() -> None:
    result = check_eligibility(block(project="P-BD"), BANGLADESH_2015, PROFILE, LISTS, YEAR,
                               TODAY)
    assert (result.paragraph, result.basis) == ("5(1)(c)", Basis.LDC_SIDS)


def test_1c_erus_of_a_project_registered_after_2012_in_an_ldc_are_refused_with_4104() -> None:
    refused(R.ESD_PROJECT_REGISTERED_TOO_LATE, block(UnitType.ERU_FROM_AAU),
            BANGLADESH_2015, PROFILE, LISTS, YEAR, TODAY)


def test_1c_a_new_project_outside_an_ldc_is_refused_with_4104() -> None:
    refused(R.ESD_PROJECT_REGISTERED_TOO_LATE, block(), CHINA_2014, PROFILE, LISTS, YEAR,
            TODAY)


def test_1c_ldc_credits_after_the_host_ratified_an_agreement_with_the_eu_are_refused_4106(
) -> None:
    profile = replace(PROFILE, ldc_agreements={"BD": date(2016, 1, 1)})
    refused(R.ESD_LDC_CREDITS_NOT_ELIGIBLE, block(), BANGLADESH_2015, profile, LISTS, YEAR,
            TODAY)
    before = check_eligibility(block(), BANGLADESH_2015, profile, LISTS, YEAR,
                               date(2015, 12, 31))
    assert before.paragraph == "5(1)(c)"


def test_1c_ldc_status_follows_the_year_samoa_counts_for_2013_but_not_for_2014() -> None:
    samoa = replace(BANGLADESH_2015, host_country="WS", registered_on=date(2013, 6, 1))
    assert check_eligibility(block(), samoa, PROFILE, LISTS, 2013, TODAY).paragraph == \
        "5(1)(c)"
    # Samoa is a SIDS, so it keeps the LDC_SIDS basis, but 1(c) no longer applies
    refused(R.ESD_PROJECT_REGISTERED_TOO_LATE, block(), samoa, PROFILE, LISTS, 2014, TODAY)


TEMPORARY_PROFILE = replace(PROFILE, temporary_credits_used_2008_2012=True)


@pytest.mark.parametrize("unit_type", [UnitType.TCER, UnitType.LCER])
def test_1d_tcers_and_lcers_of_a_state_that_used_them_in_2008_2012_are_eligible(
        unit_type: UnitType) -> None:
    result = check_eligibility(block(unit_type, expiry=date(2020, 12, 31)), INDIA,
                               TEMPORARY_PROFILE, LISTS, YEAR, TODAY)
    assert result.paragraph == "5(1)(d)"


def test_1d_tcers_of_a_state_that_did_not_use_them_in_2008_2012_are_refused_with_4107(
) -> None:
    refused(R.ESD_TEMPORARY_CREDITS_NOT_ELIGIBLE, block(UnitType.TCER, expiry=date(2020, 1, 1)),
            INDIA, PROFILE, LISTS, YEAR, TODAY)


def test_1d_expired_tcers_are_refused_with_4108() -> None:
    refused(R.ESD_TEMPORARY_CREDITS_EXPIRED, block(UnitType.TCER, expiry=TODAY), INDIA,
            TEMPORARY_PROFILE, LISTS, YEAR, TODAY)


def test_1d_tcers_while_earlier_ones_expired_unreplaced_are_refused_with_4109() -> None:
    refused(R.ESD_REPLACEMENT_OVERDUE, block(UnitType.LCER, expiry=date(2020, 1, 1)), INDIA,
            TEMPORARY_PROFILE, LISTS, YEAR, TODAY, 5)


def test_1d_replacement_obligation_counts_expired_unreplaced_units_earliest_first() -> None:
    entries = [TemporaryCredits(date(2016, 1, 1), 10), TemporaryCredits(date(2018, 1, 1), 10)]
    assert overdue_replacement(entries, TODAY) == 10
    replaced = apply_replacement(entries, 12)
    assert [e.replaced for e in replaced] == [10, 2]
    assert overdue_replacement(replaced, TODAY) == 0
    assert overdue_replacement(replaced, date(2018, 1, 1)) == 8
    with pytest.raises(RuleViolation) as info:
        apply_replacement(replaced, 9)
    assert info.value.code == R.ESD_REPLACEMENT_INVALID


# paragraph 3 and 7


def test_3_after_an_agreement_credits_from_non_ratifying_hosts_are_refused_with_4110() -> None:
    profile = replace(PROFILE, international_agreement_concluded=True,
                      agreement_ratified_by=frozenset({"BR"}))
    refused(R.ESD_HOST_NOT_RATIFIED, block(), INDIA, profile, LISTS, YEAR, TODAY)
    ratified = replace(profile, agreement_ratified_by=frozenset({"IN"}))
    assert check_eligibility(block(), INDIA, ratified, LISTS, YEAR, TODAY).paragraph == \
        "5(1)(b)"


def test_7_community_project_credits_are_eligible_without_the_paragraph_1_conditions() -> None:
    result = check_eligibility(block(project="P-EU"), COMMUNITY, PROFILE, LISTS, YEAR, TODAY)
    assert (result.paragraph, result.basis) == ("5(7)", Basis.COMMUNITY)


def test_7_community_credits_are_unlimited_even_with_the_3_percent_used_up() -> None:
    ledger = YearLedger(YEAR, used=Allocation(general=300))
    allocation = allocate_use(ledger, PROFILE, 0, 0, 1_000_000)
    assert allocation == Allocation(community=1_000_000)
    with pytest.raises(RuleViolation):
        allocate_use(ledger, PROFILE, 1, 0, 1_000_000)


# paragraph 4: the 3 % limit


def test_4_the_limit_is_3_percent_of_2005_emissions_rounded_down() -> None:
    assert PROFILE.general_allowance == 300
    assert replace(PROFILE, emissions_2005=10_033).general_allowance == 300
    assert replace(PROFILE, emissions_2005=10_034).general_allowance == 301


def test_4_use_exactly_at_the_3_percent_limit_is_allowed() -> None:
    assert allocate_use(YearLedger(YEAR), PROFILE, 300, 0, 0) == Allocation(general=300)


def test_4_one_unit_over_the_3_percent_limit_is_refused_with_4111() -> None:
    with pytest.raises(RuleViolation) as info:
        allocate_use(YearLedger(YEAR), PROFILE, 301, 0, 0)
    assert info.value.code == R.ESD_ANNUAL_LIMIT_EXCEEDED
    assert "300 available" in info.value.reason


def test_4_open_surrenders_count_so_two_cannot_together_exceed_the_limit() -> None:
    ledger = reserve_use(YearLedger(YEAR), allocate_use(YearLedger(YEAR), PROFILE, 200, 0, 0))
    with pytest.raises(RuleViolation):
        allocate_use(ledger, PROFILE, 101, 0, 0)
    assert allocate_use(ledger, PROFILE, 100, 0, 0).general == 100


def test_4_a_refused_surrender_gives_its_reservation_back_a_completed_one_is_used() -> None:
    allocation = Allocation(general=200)
    reserved = reserve_use(YearLedger(YEAR), allocation)
    assert release_use(reserved, allocation) == YearLedger(YEAR)
    used = book_use(reserved, allocation)
    assert used.used.general == 200 and used.reserved.total == 0
    assert position(used, PROFILE).general_available == 100


def test_4_without_2005_emissions_limited_use_is_refused_with_4112() -> None:
    profile = replace(PROFILE, emissions_2005=None)
    with pytest.raises(RuleViolation) as info:
        allocate_use(YearLedger(YEAR), profile, 1, 0, 0)
    assert info.value.code == R.ESD_EMISSIONS_NOT_SET


def test_year_outside_2013_2020_is_refused_with_4115() -> None:
    for year in (2012, 2021):
        with pytest.raises(RuleViolation) as info:
            check_year(year)
        assert info.value.code == R.ESD_YEAR_OUT_OF_RANGE
    check_year(2013)
    check_year(2020)


# paragraph 5: the extra 1 %

EXTRA = replace(PROFILE, annex_iii=True,
                article_5_5_conditions=frozenset({Article55Condition.C}))


def test_5_extra_1_percent_applies_with_annex_iii_a_limit_up_to_5_and_a_condition() -> None:
    assert EXTRA.extra_applies and EXTRA.extra_allowance == 100
    assert replace(EXTRA, annex_ii_limit_percent=5).extra_applies
    assert not replace(EXTRA, annex_ii_limit_percent=6).extra_applies
    assert not replace(EXTRA, annex_ii_limit_percent=None).extra_applies


def test_5_no_extra_1_percent_without_annex_iii_status() -> None:
    assert not PROFILE.extra_applies
    assert replace(EXTRA, annex_iii=False).extra_allowance == 0


def test_5_no_extra_1_percent_without_one_of_the_four_conditions() -> None:
    assert replace(EXTRA, article_5_5_conditions=frozenset()).extra_allowance == 0


def test_5_ldc_sids_credits_use_the_extra_1_percent_first_up_to_4_percent_in_total() -> None:
    allocation = allocate_use(YearLedger(YEAR), EXTRA, 0, 400, 0)
    assert allocation == Allocation(general=300, extra=100)
    with pytest.raises(RuleViolation) as info:
        allocate_use(YearLedger(YEAR), EXTRA, 0, 401, 0)
    assert info.value.code == R.ESD_ANNUAL_LIMIT_EXCEEDED


def test_5_other_credits_cannot_use_the_extra_1_percent() -> None:
    with pytest.raises(RuleViolation):
        allocate_use(YearLedger(YEAR), EXTRA, 301, 0, 0)


def test_5_without_annex_iii_ldc_credits_count_against_the_3_percent_only() -> None:
    assert allocate_use(YearLedger(YEAR), PROFILE, 0, 300, 0) == Allocation(general=300)
    with pytest.raises(RuleViolation):
        allocate_use(YearLedger(YEAR), PROFILE, 0, 301, 0)


def test_5_sids_credits_count_for_the_extra_1_percent_territories_only_on_request() -> None:
    fiji = replace(INDIA, host_country="FJ")
    assert check_eligibility(block(), fiji, EXTRA, LISTS, YEAR, TODAY).basis == Basis.LDC_SIDS
    puerto_rico = replace(INDIA, host_country="PR")
    assert check_eligibility(block(), puerto_rico, EXTRA, LISTS, YEAR, TODAY).basis == \
        Basis.GENERAL
    with_territories = load_reference().country_lists(include_territories=True)
    assert check_eligibility(block(), puerto_rico, EXTRA, with_territories, YEAR,
                             TODAY).basis == Basis.LDC_SIDS


# paragraph 6: transfers and carry-forward


def test_6_transfer_of_unused_3_percent_is_reserved_then_booked_and_lowers_the_limit() -> None:
    ledger = reserve_transfer_out(YearLedger(YEAR), PROFILE, 100, "FR")
    assert position(ledger, PROFILE).general_available == 200
    booked = book_transfer_out(ledger, 100)
    assert (booked.transferred_out, booked.reserved_out) == (100, 0)
    assert position(booked, PROFILE).limit == 200
    assert release_transfer_out(ledger, 100) == YearLedger(YEAR)


def test_6_transfer_beyond_the_unused_3_percent_is_refused_with_4116() -> None:
    ledger = YearLedger(YEAR, used=Allocation(general=250))
    with pytest.raises(RuleViolation) as info:
        reserve_transfer_out(ledger, PROFILE, 51, "FR")
    assert info.value.code == R.ESD_TRANSFER_EXCEEDS_UNUSED
    reserve_transfer_out(ledger, PROFILE, 50, "FR")


def test_6_amounts_received_or_carried_in_cannot_be_passed_on() -> None:
    ledger = YearLedger(YEAR, transferred_in=500, carried_in=100)
    assert position(ledger, PROFILE).transferable == 300
    with pytest.raises(RuleViolation):
        reserve_transfer_out(ledger, PROFILE, 301, "FR")


def test_6_transfer_to_itself_is_refused_with_4119() -> None:
    with pytest.raises(RuleViolation) as info:
        reserve_transfer_out(YearLedger(YEAR), PROFILE, 1, "DE")
    assert info.value.code == R.ESD_TRANSFER_TO_ITSELF


def test_6_received_transfer_raises_the_limit_of_the_acquiring_state() -> None:
    ledger = book_transfer_in(accept_transfer_in(YearLedger(YEAR), 100), 100)
    assert (ledger.reserved_in, ledger.transferred_in) == (0, 100)
    assert position(ledger, PROFILE).limit == 400
    assert allocate_use(ledger, PROFILE, 400, 0, 0).general == 400
    with pytest.raises(RuleViolation):
        allocate_use(ledger, PROFILE, 401, 0, 0)


def test_6_an_accepted_transfer_counts_only_once_the_itl_confirms_it() -> None:
    held = accept_transfer_in(YearLedger(YEAR), 100)
    assert (held.reserved_in, held.transferred_in) == (100, 0)
    assert position(held, PROFILE).limit == 300
    with pytest.raises(RuleViolation):
        allocate_use(held, PROFILE, 301, 0, 0)
    released = release_transfer_in(held, 100)
    assert released == YearLedger(YEAR)


def test_6_a_year_holding_an_unconfirmed_transfer_cannot_be_closed_with_4117() -> None:
    held = accept_transfer_in(YearLedger(YEAR), 100)
    with pytest.raises(RuleViolation) as info:
        close_year(held, PROFILE, date(YEAR + 1, 1, 2), None)
    assert info.value.code == R.ESD_YEAR_HAS_OPEN_OPERATIONS


def test_6_a_closed_year_accepts_no_transfer_with_4114() -> None:
    with pytest.raises(RuleViolation) as info:
        accept_transfer_in(YearLedger(YEAR, closed=True), 1)
    assert info.value.code == R.ESD_YEAR_CLOSED


def test_6_closing_a_year_carries_its_unused_limit_into_the_next_year() -> None:
    ledger = YearLedger(YEAR, used=Allocation(general=250, extra=0, community=50),
                        transferred_in=40, transferred_out=10, carried_in=20)
    closed, following = close_year(ledger, PROFILE, TODAY, None)
    # 300 + 40 - 10 + 20 - 250; Community use does not count
    assert closed.closed and closed.carried_out == 100
    assert following == YearLedger(YEAR + 1, carried_in=100)
    assert position(following, PROFILE).limit == 400


def test_6_the_extra_1_percent_does_not_carry_forward() -> None:
    closed, following = close_year(YearLedger(YEAR), EXTRA, TODAY, None)
    assert closed.carried_out == 300
    assert following is not None and following.carried_in == 300


def test_6_unused_limit_of_2020_lapses_at_the_end_of_the_decision() -> None:
    closed, following = close_year(YearLedger(2020), PROFILE, date(2021, 1, 1), None)
    assert closed.closed and closed.carried_out == 0 and following is None


def test_6_closing_is_refused_before_the_year_ends_with_open_operations_or_twice() -> None:
    cases = [
        (YearLedger(YEAR), date(YEAR, 12, 31), R.ESD_YEAR_NOT_ENDED),
        (YearLedger(YEAR, reserved=Allocation(general=1)), TODAY,
         R.ESD_YEAR_HAS_OPEN_OPERATIONS),
        (YearLedger(YEAR, reserved_out=1), TODAY, R.ESD_YEAR_HAS_OPEN_OPERATIONS),
        (YearLedger(YEAR, closed=True), TODAY, R.ESD_YEAR_CLOSED),
    ]
    for ledger, today, code in cases:
        with pytest.raises(RuleViolation) as info:
            close_year(ledger, PROFILE, today, None)
        assert info.value.code == code


# configuration and reference data


def test_reference_data_gives_annex_ii_limits_with_their_verification_status() -> None:
    data = load_reference()
    assert data.member_states["DE"].annex_ii_limit_percent == -14
    assert data.member_states["DE"].verification == "official-secondary"
    assert data.member_states["FR"].verification == "press-secondary"
    assert data.member_states["HU"].annex_ii_limit_percent is None
    assert all(r.emissions_2005 is None and r.annex_iii is None
               for r in data.member_states.values())
    assert len(data.ldc) == 44 and len(data.sids) == 53
    assert len(data.country_lists().sids) == 37


def test_unverified_values_are_settable_and_reported_as_set_by_operator() -> None:
    settings = EsdSettings(enabled=True, emissions_2005=10_000, annex_iii=True,
                           article_5_5_conditions=["c"])
    sources = settings.profile("DE", load_reference())
    assert sources.profile.general_allowance == 300
    assert sources.profile.extra_applies
    assert sources.values["emissions_2005"].status == SET_BY_OPERATOR
    assert sources.values["annex_iii"].status == SET_BY_OPERATOR
    assert sources.values["annex_ii_limit_percent"].status == \
        "reference data: official-secondary"
    hungary = EsdSettings(enabled=True).profile("HU", load_reference())
    assert hungary.values["annex_ii_limit_percent"].status == NOT_SET
    assert hungary.values["emissions_2005"].status == NOT_SET


def test_settings_read_the_environment_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ESD_ENABLED", "true")
    monkeypatch.setenv("ESD_2005_EMISSIONS", "123456")
    monkeypatch.setenv("ESD_ARTICLE_5_5_CONDITIONS", "a,d")
    monkeypatch.setenv("ESD_LDC_AGREEMENTS", '{"BD": "2018-01-01"}')
    settings = EsdSettings()
    assert settings.enabled and settings.emissions_2005 == 123456
    assert settings.article_5_5_conditions == [Article55Condition.A, Article55Condition.D]
    assert settings.ldc_agreements == {"BD": date(2018, 1, 1)}


def test_country_lists_graduated_ldcs() -> None:
    lists = CountryLists(ldc=frozenset(), sids=frozenset(), ldc_graduation_year={"VU": 2020})
    assert lists.is_ldc("VU", 2019) and not lists.is_ldc("VU", 2020)
