"""The ITL's rules without broker or store: proposal checks, reserve, limits, statuses."""

from __future__ import annotations

from dataclasses import replace
from datetime import date

import pytest

from services.itl.domain import (
    AccountKey,
    ItlReaction,
    JiProject,
    NoticeView,
    ProposalRefused,
    ProposalView,
    SenderRole,
    aau_issuance_by_period,
    carry_over_limit,
    check_aau_issuance_limit,
    check_carry_over,
    check_commitment_period_reserve,
    check_conversion,
    check_data_integrity,
    check_not_expired,
    check_notice,
    check_registries_known,
    commitment_period_reserve,
    cpr_units_leaving_by_period,
    needs_cpr_check,
    notice_status_after,
    react_to_status,
    sender_role,
)
from shared.blocks import SerialRange, UnitAttributes, UnitBlock
from shared.codes import (
    AccountType,
    LulucfActivity,
    ResponseCode,
    TransactionStatus,
    TransactionType,
    UnitType,
)

S = TransactionStatus
T = TransactionType
KNOWN = ("KZ", "JP", "CDM")

KZ_PARTY = AccountKey("KZ", AccountType.PARTY_HOLDING, 1)
KZ_PERSON = AccountKey("KZ", AccountType.PERSON_HOLDING, 1001)
KZ_RETIREMENT = AccountKey("KZ", AccountType.RETIREMENT, 3)
JP_PERSON = AccountKey("JP", AccountType.PERSON_HOLDING, 2001)
CDM_PENDING = AccountKey("CDM", AccountType.PENDING, 1)
CDM_FUND = AccountKey("CDM", AccountType.PARTY_HOLDING, 1100)


def block(start: int, end: int, origin: str = "KZ", unit_type: UnitType = UnitType.AAU,
          period: int = 2, lulucf: int | None = None) -> UnitBlock:
    return UnitBlock(UnitAttributes(origin, unit_type, period, period, lulucf),
                     SerialRange(start, end))


def proposal(transaction_type: TransactionType, transferring: AccountKey | None,
             acquiring: AccountKey, *blocks: UnitBlock, tx: str = "KZ1") -> ProposalView:
    return ProposalView(tx, transaction_type, transferring, acquiring,
                        blocks or (block(1, 100),))


def issuance(*blocks: UnitBlock, acquiring: AccountKey = KZ_PARTY) -> ProposalView:
    return proposal(T.ISSUANCE, None, acquiring, *blocks)


def codes(refusal: pytest.ExceptionInfo[ProposalRefused]) -> list[ResponseCode]:
    return [d.code for d in refusal.value.discrepancies]


# registry status


def test_external_transfer_to_an_unknown_registry_is_refused_with_1201() -> None:
    to_fr = AccountKey("FR", AccountType.PERSON_HOLDING, 5)
    with pytest.raises(ProposalRefused) as refusal:
        check_registries_known(proposal(T.EXTERNAL_TRANSFER, KZ_PARTY, to_fr), KNOWN)
    assert codes(refusal) == [ResponseCode.REGISTRY_UNKNOWN]


def test_external_transfer_between_known_registries_passes_the_registry_check() -> None:
    check_registries_known(proposal(T.EXTERNAL_TRANSFER, KZ_PARTY, JP_PERSON), KNOWN)


# data integrity


def test_national_aau_issuance_into_the_party_holding_account_passes() -> None:
    check_data_integrity("KZ", issuance(block(1, 100)))


def test_rmu_issuance_with_lulucf_activity_passes() -> None:
    check_data_integrity(
        "KZ", issuance(block(1, 10, unit_type=UnitType.RMU,
                             lulucf=LulucfActivity.FOREST_MANAGEMENT)))


def test_rmu_without_lulucf_activity_is_refused_with_2001() -> None:
    with pytest.raises(ProposalRefused) as refusal:
        check_data_integrity("KZ", issuance(block(1, 10, unit_type=UnitType.RMU)))
    assert codes(refusal) == [ResponseCode.MISSING_FIELD]


def test_cdm_issuance_of_cers_into_the_pending_account_passes() -> None:
    check_data_integrity("CDM", issuance(block(1, 10, "CDM", UnitType.CER),
                                         block(11, 20, "CDM", UnitType.TCER),
                                         acquiring=CDM_PENDING))


def test_issuance_with_a_transferring_account_is_refused_with_2004() -> None:
    with pytest.raises(ProposalRefused) as refusal:
        check_data_integrity("KZ", proposal(T.ISSUANCE, KZ_PARTY, KZ_PARTY))
    assert codes(refusal) == [ResponseCode.TYPE_ACCOUNT_COMBINATION_NOT_ALLOWED]


def test_issuance_into_another_registry_is_refused_with_2004() -> None:
    with pytest.raises(ProposalRefused) as refusal:
        check_data_integrity("KZ", issuance(acquiring=AccountKey("JP", 100, 1)))
    assert ResponseCode.TYPE_ACCOUNT_COMBINATION_NOT_ALLOWED in codes(refusal)


def test_issuance_of_units_originating_elsewhere_is_refused_with_2004() -> None:
    with pytest.raises(ProposalRefused) as refusal:
        check_data_integrity("KZ", issuance(block(1, 10, origin="JP")))
    assert codes(refusal) == [ResponseCode.TYPE_ACCOUNT_COMBINATION_NOT_ALLOWED]
    assert refusal.value.discrepancies[0].block == block(1, 10, origin="JP")


def test_national_registry_issuing_cers_is_refused_with_2004() -> None:
    with pytest.raises(ProposalRefused) as refusal:
        check_data_integrity("KZ", issuance(block(1, 10, unit_type=UnitType.CER)))
    assert codes(refusal) == [ResponseCode.TYPE_ACCOUNT_COMBINATION_NOT_ALLOWED]


def test_national_issuance_into_a_person_account_is_refused_with_2004() -> None:
    with pytest.raises(ProposalRefused) as refusal:
        check_data_integrity("KZ", issuance(acquiring=KZ_PERSON))
    assert codes(refusal) == [ResponseCode.TYPE_ACCOUNT_COMBINATION_NOT_ALLOWED]


def test_cdm_registry_issuing_aaus_is_refused_with_2004() -> None:
    with pytest.raises(ProposalRefused) as refusal:
        check_data_integrity("CDM", issuance(block(1, 10, "CDM"), acquiring=CDM_PENDING))
    assert codes(refusal) == [ResponseCode.TYPE_ACCOUNT_COMBINATION_NOT_ALLOWED]


def test_cdm_issuance_outside_the_pending_account_is_refused_with_2004() -> None:
    with pytest.raises(ProposalRefused) as refusal:
        check_data_integrity("CDM", issuance(block(1, 10, "CDM", UnitType.CER),
                                             acquiring=CDM_FUND))
    assert codes(refusal) == [ResponseCode.TYPE_ACCOUNT_COMBINATION_NOT_ALLOWED]


def test_internal_transfer_within_the_registry_passes() -> None:
    check_data_integrity("KZ", proposal(T.INTERNAL_TRANSFER, KZ_PARTY, KZ_PERSON))


def test_transfer_without_transferring_account_is_refused_with_2001() -> None:
    with pytest.raises(ProposalRefused) as refusal:
        check_data_integrity("KZ", proposal(T.INTERNAL_TRANSFER, None, KZ_PERSON))
    assert codes(refusal) == [ResponseCode.MISSING_FIELD]


def test_transfer_out_of_a_retirement_account_is_refused_with_2004() -> None:
    with pytest.raises(ProposalRefused) as refusal:
        check_data_integrity("KZ", proposal(T.INTERNAL_TRANSFER, KZ_RETIREMENT, KZ_PERSON))
    assert codes(refusal) == [ResponseCode.TYPE_ACCOUNT_COMBINATION_NOT_ALLOWED]


def test_internal_transfer_leaving_the_registry_is_refused_with_2004() -> None:
    with pytest.raises(ProposalRefused) as refusal:
        check_data_integrity("KZ", proposal(T.INTERNAL_TRANSFER, KZ_PARTY, JP_PERSON))
    assert codes(refusal) == [ResponseCode.TYPE_ACCOUNT_COMBINATION_NOT_ALLOWED]


def test_external_transfer_staying_in_the_registry_is_refused_with_2004() -> None:
    with pytest.raises(ProposalRefused) as refusal:
        check_data_integrity("KZ", proposal(T.EXTERNAL_TRANSFER, KZ_PARTY, KZ_PERSON))
    assert codes(refusal) == [ResponseCode.TYPE_ACCOUNT_COMBINATION_NOT_ALLOWED]


def test_external_transfer_leaving_the_registry_passes() -> None:
    check_data_integrity("KZ", proposal(T.EXTERNAL_TRANSFER, KZ_PARTY, JP_PERSON))


def test_conversion_in_the_same_account_with_a_project_passes() -> None:
    check_data_integrity("KZ", replace(proposal(T.CONVERSION, KZ_PARTY, KZ_PARTY),
                                       project_id="KZ-JI-1", track=1))


def test_conversion_without_a_project_is_refused_with_2001() -> None:
    with pytest.raises(ProposalRefused) as refusal:
        check_data_integrity("KZ", proposal(T.CONVERSION, KZ_PARTY, KZ_PARTY))
    assert codes(refusal) == [ResponseCode.MISSING_FIELD]


def test_conversion_of_cers_or_foreign_aaus_is_refused_with_2004() -> None:
    for blocks in ((block(1, 10, "CDM", UnitType.CER),), (block(1, 10, "JP"),)):
        with pytest.raises(ProposalRefused) as refusal:
            check_data_integrity("KZ", replace(
                proposal(T.CONVERSION, KZ_PARTY, KZ_PARTY, *blocks),
                project_id="KZ-JI-1", track=1))
        assert ResponseCode.TYPE_ACCOUNT_COMBINATION_NOT_ALLOWED in codes(refusal)


def test_retirement_goes_only_to_the_retirement_account() -> None:
    check_data_integrity("KZ", proposal(T.RETIREMENT, KZ_PARTY, KZ_RETIREMENT))
    with pytest.raises(ProposalRefused) as refusal:
        check_data_integrity("KZ", proposal(T.RETIREMENT, KZ_PARTY, KZ_PERSON))
    assert codes(refusal) == [ResponseCode.TYPE_ACCOUNT_COMBINATION_NOT_ALLOWED]


def test_cancellation_goes_to_a_cancellation_account_of_the_same_registry() -> None:
    voluntary = AccountKey("KZ", AccountType.VOLUNTARY_CANCELLATION, 2)
    check_data_integrity("KZ", proposal(T.CANCELLATION, KZ_PARTY, voluntary))
    with pytest.raises(ProposalRefused):
        check_data_integrity("KZ", proposal(T.CANCELLATION, KZ_PARTY, KZ_RETIREMENT))
    with pytest.raises(ProposalRefused):
        check_data_integrity("KZ", proposal(
            T.CANCELLATION, KZ_PARTY, AccountKey("JP", AccountType.VOLUNTARY_CANCELLATION, 2)))


def test_aau_carry_over_goes_to_the_previous_period_surplus_reserve() -> None:
    ppsr = AccountKey("KZ", AccountType.PREVIOUS_PERIOD_SURPLUS_RESERVE, 4)
    check_data_integrity("KZ", proposal(T.CARRY_OVER, KZ_PARTY, ppsr))
    with pytest.raises(ProposalRefused):
        check_data_integrity("KZ", proposal(T.CARRY_OVER, KZ_PARTY, KZ_PARTY))


def test_rmus_cannot_be_carried_over() -> None:
    with pytest.raises(ProposalRefused) as refusal:
        check_data_integrity("KZ", proposal(T.CARRY_OVER, KZ_PARTY, KZ_PARTY,
                                            block(1, 10, unit_type=UnitType.RMU, lulucf=3)))
    assert ResponseCode.TYPE_ACCOUNT_COMBINATION_NOT_ALLOWED in codes(refusal)


def test_replacement_of_tcers_by_lcers_is_refused_with_4004() -> None:
    tcer_account = AccountKey("KZ", AccountType.TCER_REPLACEMENT_EXPIRY, 5)
    tcers = (block(1, 10, "CDM", UnitType.TCER),)
    good = replace(proposal(T.REPLACEMENT, KZ_PARTY, tcer_account, block(1, 10)),
                   replaced_blocks=tcers)
    check_data_integrity("KZ", good)
    bad = replace(good, blocks=(block(1, 10, "CDM", UnitType.LCER),))
    with pytest.raises(ProposalRefused) as refusal:
        check_data_integrity("KZ", bad)
    assert codes(refusal) == [ResponseCode.REPLACEMENT_UNIT_TYPE_NOT_ALLOWED]


def test_replacement_must_replace_as_many_units_as_it_moves() -> None:
    tcer_account = AccountKey("KZ", AccountType.TCER_REPLACEMENT_EXPIRY, 5)
    short = replace(proposal(T.REPLACEMENT, KZ_PARTY, tcer_account, block(1, 10)),
                    replaced_blocks=(block(1, 9, "CDM", UnitType.TCER),))
    with pytest.raises(ProposalRefused) as refusal:
        check_data_integrity("KZ", short)
    assert codes(refusal) == [ResponseCode.TYPE_ACCOUNT_COMBINATION_NOT_ALLOWED]


def test_expiry_date_change_needs_a_new_date_and_temporary_units() -> None:
    with pytest.raises(ProposalRefused) as refusal:
        check_data_integrity("KZ", proposal(T.EXPIRY_DATE_CHANGE, KZ_PARTY, KZ_PARTY,
                                            block(1, 10, "CDM", UnitType.TCER)))
    assert codes(refusal) == [ResponseCode.MISSING_FIELD]
    with pytest.raises(ProposalRefused):
        check_data_integrity("KZ", replace(proposal(T.EXPIRY_DATE_CHANGE, KZ_PARTY, KZ_PARTY),
                                           new_expiry_date=date(2030, 1, 1)))


def test_overlapping_blocks_of_one_proposal_are_refused_with_2006() -> None:
    with pytest.raises(ProposalRefused) as refusal:
        check_data_integrity("KZ", issuance(block(1, 100), block(100, 200)))
    assert codes(refusal) == [ResponseCode.OVERLAPPING_BLOCKS]


def test_adjacent_blocks_and_equal_serials_of_other_origins_do_not_overlap() -> None:
    check_data_integrity("KZ", proposal(T.INTERNAL_TRANSFER, KZ_PARTY, KZ_PERSON,
                                        block(1, 100), block(101, 200),
                                        block(1, 100, origin="JP")))


def test_every_integrity_discrepancy_of_a_proposal_is_reported() -> None:
    with pytest.raises(ProposalRefused) as refusal:
        check_data_integrity("KZ", issuance(block(1, 10, origin="JP"),
                                            block(5, 20, unit_type=UnitType.RMU),
                                            acquiring=KZ_PERSON))
    assert sorted(codes(refusal)) == [
        ResponseCode.MISSING_FIELD,
        ResponseCode.TYPE_ACCOUNT_COMBINATION_NOT_ALLOWED,
        ResponseCode.TYPE_ACCOUNT_COMBINATION_NOT_ALLOWED,
    ]


# AAU issuance limit


def test_aau_issuance_without_recorded_assigned_amount_is_refused_with_4001() -> None:
    with pytest.raises(ProposalRefused) as refusal:
        check_aau_issuance_limit("KZ", 2, None, 0, 1)
    assert codes(refusal) == [ResponseCode.ISSUANCE_OVER_LIMIT]


def test_aau_issuance_reaching_exactly_the_assigned_amount_passes() -> None:
    check_aau_issuance_limit("KZ", 2, 1000, 900, 100)


def test_aau_issuance_one_unit_over_the_assigned_amount_is_refused_with_4001() -> None:
    with pytest.raises(ProposalRefused) as refusal:
        check_aau_issuance_limit("KZ", 2, 1000, 900, 101)
    assert codes(refusal) == [ResponseCode.ISSUANCE_OVER_LIMIT]


def test_aau_issuance_is_counted_per_original_period_and_rmus_are_not() -> None:
    view = issuance(block(1, 100, period=1), block(101, 150, period=2),
                    block(151, 160, unit_type=UnitType.RMU, lulucf=3))
    assert aau_issuance_by_period(view) == {1: 100, 2: 50}


def test_a_transfer_issues_no_aaus() -> None:
    assert aau_issuance_by_period(proposal(T.INTERNAL_TRANSFER, KZ_PARTY, KZ_PERSON)) == {}


# commitment period reserve


def test_reserve_is_90_percent_of_assigned_amount_without_inventory() -> None:
    assert commitment_period_reserve(1000, None) == 900


def test_reserve_rounds_90_percent_down() -> None:
    assert commitment_period_reserve(1005, None) == 904


def test_reserve_is_five_times_inventory_when_that_is_lower() -> None:
    assert commitment_period_reserve(1000, 100) == 500


def test_reserve_is_90_percent_when_five_times_inventory_is_higher() -> None:
    assert commitment_period_reserve(1000, 500) == 900


def test_external_transfer_leaving_holdings_exactly_at_cpr_passes() -> None:
    check_commitment_period_reserve("KZ", 2, holdings=1000, leaving=100, reserve=900)


def test_external_transfer_leaving_holdings_one_below_cpr_is_refused_with_5001() -> None:
    with pytest.raises(ProposalRefused) as refusal:
        check_commitment_period_reserve("KZ", 2, holdings=1000, leaving=101, reserve=900)
    assert codes(refusal) == [ResponseCode.CPR_VIOLATED]


def test_cpr_applies_to_external_transfers_of_parties_only() -> None:
    assert needs_cpr_check(proposal(T.EXTERNAL_TRANSFER, KZ_PARTY, JP_PERSON))
    assert not needs_cpr_check(proposal(T.INTERNAL_TRANSFER, KZ_PARTY, KZ_PERSON))
    assert not needs_cpr_check(proposal(T.EXTERNAL_TRANSFER, CDM_PENDING, KZ_PARTY,
                                        block(1, 10, "CDM", UnitType.CER), tx="CDM1"))


def test_units_leaving_count_for_cpr_per_applicable_period_without_temporary_cers() -> None:
    view = proposal(T.EXTERNAL_TRANSFER, KZ_PARTY, JP_PERSON,
                    block(1, 100), block(1, 10, "CDM", UnitType.CER),
                    block(11, 20, "CDM", UnitType.TCER), block(200, 209, period=1))
    assert cpr_units_leaving_by_period(view) == {2: 110, 1: 10}


# status machine


def test_proposer_and_acquiring_registry_are_told_apart() -> None:
    assert sender_role("KZ", "KZ", T.EXTERNAL_TRANSFER, "JP") == SenderRole.PROPOSER
    assert sender_role("JP", "KZ", T.EXTERNAL_TRANSFER, "JP") == SenderRole.ACQUIRING_REGISTRY


def test_a_registry_with_no_part_in_the_transaction_has_no_role() -> None:
    assert sender_role("CDM", "KZ", T.EXTERNAL_TRANSFER, "JP") is None
    assert sender_role("JP", "KZ", T.INTERNAL_TRANSFER, "KZ") is None


def test_acquiring_registry_accepting_a_checked_transfer_is_recorded_as_accepted() -> None:
    reaction = react_to_status(S.CHECKED_NO_DISCREPANCY, T.EXTERNAL_TRANSFER,
                               SenderRole.ACQUIRING_REGISTRY, S.ACCEPTED)
    assert reaction == ItlReaction.ACCEPT
    assert reaction.status == S.ACCEPTED


def test_acquiring_registry_rejecting_a_checked_transfer_is_recorded_as_rejected() -> None:
    reaction = react_to_status(S.CHECKED_NO_DISCREPANCY, T.EXTERNAL_TRANSFER,
                               SenderRole.ACQUIRING_REGISTRY, S.REJECTED)
    assert reaction == ItlReaction.REJECT
    assert reaction.status == S.REJECTED


def test_proposer_completing_an_accepted_external_transfer_finalises_it() -> None:
    reaction = react_to_status(S.ACCEPTED, T.EXTERNAL_TRANSFER, SenderRole.PROPOSER,
                               S.COMPLETED)
    assert reaction == ItlReaction.FINALISE
    assert reaction.status == S.COMPLETED


@pytest.mark.parametrize("transaction_type", [T.ISSUANCE, T.INTERNAL_TRANSFER])
def test_proposer_completing_a_checked_internal_transaction_finalises_it(
    transaction_type: TransactionType,
) -> None:
    assert react_to_status(S.CHECKED_NO_DISCREPANCY, transaction_type, SenderRole.PROPOSER,
                           S.COMPLETED) == ItlReaction.FINALISE


def test_completing_an_external_transfer_before_acceptance_is_ignored() -> None:
    assert react_to_status(S.CHECKED_NO_DISCREPANCY, T.EXTERNAL_TRANSFER,
                           SenderRole.PROPOSER, S.COMPLETED) == ItlReaction.IGNORE


def test_repeated_acceptance_is_ignored() -> None:
    assert react_to_status(S.ACCEPTED, T.EXTERNAL_TRANSFER, SenderRole.ACQUIRING_REGISTRY,
                           S.ACCEPTED) == ItlReaction.IGNORE


@pytest.mark.parametrize("final", [S.COMPLETED, S.TERMINATED, S.REJECTED, S.CANCELLED])
def test_any_status_for_a_final_transaction_is_ignored(final: TransactionStatus) -> None:
    for role in SenderRole:
        for incoming in S:
            assert react_to_status(final, T.EXTERNAL_TRANSFER, role, incoming) \
                == ItlReaction.IGNORE


def test_proposer_cannot_accept_its_own_transfer() -> None:
    assert react_to_status(S.CHECKED_NO_DISCREPANCY, T.EXTERNAL_TRANSFER,
                           SenderRole.PROPOSER, S.ACCEPTED) == ItlReaction.IGNORE


def test_acquiring_registry_cannot_complete_the_transfer() -> None:
    assert react_to_status(S.ACCEPTED, T.EXTERNAL_TRANSFER, SenderRole.ACQUIRING_REGISTRY,
                           S.COMPLETED) == ItlReaction.IGNORE


def test_ignoring_records_no_status() -> None:
    assert ItlReaction.IGNORE.status is None


# type-specific checks on the ITL's records


def test_expired_tcers_cannot_move_with_3007() -> None:
    expiring = UnitBlock(UnitAttributes("CDM", UnitType.TCER, 2, 2,
                                        expiry_date=date(2020, 12, 31)), SerialRange(1, 5))
    moving = proposal(T.INTERNAL_TRANSFER, KZ_PARTY, KZ_PERSON, expiring)
    check_not_expired(moving, date(2020, 12, 31))
    with pytest.raises(ProposalRefused) as refusal:
        check_not_expired(moving, date(2021, 1, 1))
    assert codes(refusal) == [ResponseCode.UNIT_EXPIRED]


def test_track_2_conversion_needs_a_jisc_project_with_quantity_left() -> None:
    conversion = replace(proposal(T.CONVERSION, KZ_PARTY, KZ_PARTY, block(1, 100)),
                         project_id="KZ-JI-2", track=2)
    with pytest.raises(ProposalRefused) as unknown:
        check_conversion(conversion, None)
    assert codes(unknown) == [ResponseCode.CONVERSION_WITHOUT_PROJECT]
    check_conversion(conversion, JiProject("KZ-JI-2", "KZ", 2, 150, converted=50))
    with pytest.raises(ProposalRefused) as over:
        check_conversion(conversion, JiProject("KZ-JI-2", "KZ", 2, 150, converted=51))
    assert codes(over) == [ResponseCode.CONVERSION_WITHOUT_PROJECT]
    check_conversion(replace(conversion, track=1), None)


def test_cer_carry_over_is_capped_at_two_and_a_half_percent_of_the_assigned_amount() -> None:
    cers = proposal(T.CARRY_OVER, KZ_PARTY, KZ_PARTY, block(1, 25, "CDM", UnitType.CER, 1))
    after_cp1 = date(2013, 6, 1)
    assert carry_over_limit(1000) == 25
    check_carry_over(cers, after_cp1, 1000, carried_so_far=0)
    with pytest.raises(ProposalRefused) as over:
        check_carry_over(cers, after_cp1, 1000, carried_so_far=1)
    assert codes(over) == [ResponseCode.CARRY_OVER_OVER_LIMIT]


def test_carry_over_before_the_end_of_the_period_is_refused_with_4003() -> None:
    aaus = proposal(T.CARRY_OVER, KZ_PARTY, KZ_PARTY, block(1, 25, period=1))
    with pytest.raises(ProposalRefused) as early:
        check_carry_over(aaus, date(2012, 12, 31), 1000, 0)
    assert codes(early) == [ResponseCode.CARRY_OVER_OVER_LIMIT]
    check_carry_over(aaus, date(2013, 1, 1), None, 0)


def test_a_proposal_naming_a_notice_must_fit_it_or_gets_4005() -> None:
    voluntary = AccountKey("KZ", AccountType.NET_SOURCE_CANCELLATION, 6)
    cancel = replace(proposal(T.CANCELLATION, KZ_PARTY, voluntary), notification_id=7)
    open_notice = NoticeView(7, 1, "KZ", 1, 100, 0)
    check_notice(cancel, open_notice)
    for notice in (None, replace(open_notice, registry="JP"), replace(open_notice, status=3),
                   replace(open_notice, notice_type=3), replace(open_notice, notice_type=7)):
        with pytest.raises(ProposalRefused) as refusal:
            check_notice(cancel, notice)
        assert codes(refusal) == [ResponseCode.NOTICE_UNKNOWN_OR_CLOSED]


def test_notice_is_completed_once_its_target_is_reached() -> None:
    assert notice_status_after(100, 99) == 2
    assert notice_status_after(100, 100) == 3
    assert notice_status_after(None, 5) == 2


def test_lost_lcers_are_replaced_or_cancelled_into_the_mandatory_cancellation_account(
) -> None:
    notice = NoticeView(8, 4, "KZ", 1, 50, 0)
    mandatory = AccountKey("KZ", AccountType.MANDATORY_CANCELLATION, 7)
    reversal = AccountKey("KZ", AccountType.LCER_REPLACEMENT_REVERSAL, 11)
    check_notice(replace(proposal(T.CANCELLATION, KZ_PARTY, mandatory), notification_id=8),
                 notice)
    check_notice(replace(proposal(T.REPLACEMENT, KZ_PARTY, reversal), notification_id=8),
                 notice)
    with pytest.raises(ProposalRefused, match="replacement or cancellation"):
        check_notice(replace(proposal(T.RETIREMENT, KZ_PARTY, KZ_RETIREMENT),
                             notification_id=8), notice)
