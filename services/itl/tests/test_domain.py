"""The ITL's rules without broker or store: proposal checks, reserve, limits, statuses."""

from __future__ import annotations

from dataclasses import replace
from datetime import date

import pytest

from services.itl.domain import (
    AccountKey,
    ItlReaction,
    JiProject,
    LedgerKey,
    NoticeView,
    PartyBooks,
    PartyPeriod,
    ProposalRefused,
    ProposalView,
    SenderRole,
    aau_issuance_by_period,
    approval_effects,
    check_aau_issuance_limit,
    check_ar_cdm_limit,
    check_article_37ter,
    check_carry_over,
    check_commitment_period_reserve,
    check_conversion,
    check_data_integrity,
    check_eligibility,
    check_issued_expiry,
    check_new_expiry_date,
    check_not_expired,
    check_notice,
    check_ppsr,
    check_registries_known,
    check_rmu_issuance_limit,
    check_share_of_proceeds,
    completion_effects,
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
    SupplementaryType,
    TransactionStatus,
    TransactionType,
    UnitType,
)
from shared.rules.parties import reference_standing
from shared.rules.periods import DEFAULT_TRUE_UP_PERIOD_ENDS

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
    cer = UnitAttributes("CDM", UnitType.CER, 2, 2, project_id="CDM-1")
    tcer = UnitAttributes("CDM", UnitType.TCER, 2, 2, project_id="CDM-AR-1")
    check_data_integrity("CDM", issuance(UnitBlock(cer, SerialRange(1, 10)),
                                         UnitBlock(tcer, SerialRange(11, 20)),
                                         acquiring=CDM_PENDING))


def test_issuance_with_a_transferring_account_is_refused_with_2004() -> None:
    with pytest.raises(ProposalRefused) as refusal:
        check_data_integrity("KZ", proposal(T.ISSUANCE, KZ_PARTY, KZ_PARTY))
    assert codes(refusal) == [ResponseCode.TYPE_ACCOUNT_COMBINATION_NOT_ALLOWED]


def test_issuance_into_another_registry_is_refused_with_2004() -> None:
    with pytest.raises(ProposalRefused) as refusal:
        check_data_integrity("KZ", issuance(acquiring=AccountKey("JP", 100, 1)))
    assert ResponseCode.TYPE_ACCOUNT_COMBINATION_NOT_ALLOWED in codes(refusal)


@pytest.mark.parametrize(("attributes", "reason"), [
    (UnitAttributes("KZ", UnitType.AAU, 2, 1), "valid for it, not for period 1"),
    (UnitAttributes("KZ", UnitType.AAU, 2, 2, expiry_date=date(2030, 12, 31)),
     "without expiry date"),
    (UnitAttributes("KZ", UnitType.AAU, 2, 2, project_id="X"), "without project"),
    (UnitAttributes("KZ", UnitType.RMU, 2, 2, lulucf_activity=3, track=1), "without track"),
])
def test_issued_units_carry_only_what_their_type_has(attributes: UnitAttributes,
                                                    reason: str) -> None:
    with pytest.raises(ProposalRefused, match=reason) as refusal:
        check_data_integrity("KZ", issuance(UnitBlock(attributes, SerialRange(1, 10))))
    assert codes(refusal) == [ResponseCode.TYPE_ACCOUNT_COMBINATION_NOT_ALLOWED]


def test_cdm_units_are_issued_for_a_project() -> None:
    cer = UnitBlock(UnitAttributes("CDM", UnitType.CER, 2, 2), SerialRange(1, 10))
    with pytest.raises(ProposalRefused, match="issued for a CDM project") as refusal:
        check_data_integrity("CDM", proposal(T.ISSUANCE, None, CDM_PENDING, cer, tx="CDM1"))
    assert codes(refusal) == [ResponseCode.MISSING_FIELD]
    check_data_integrity("CDM", proposal(T.ISSUANCE, None, CDM_PENDING, UnitBlock(
        replace(cer.attributes, project_id="CDM-1"), cer.serials), tx="CDM1"))


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
    check_data_integrity("KZ", proposal(T.CARRY_OVER, KZ_PARTY, ppsr, block(1, 10, period=1)))
    with pytest.raises(ProposalRefused):
        check_data_integrity("KZ", proposal(T.CARRY_OVER, KZ_PARTY, KZ_PARTY,
                                            block(1, 10, period=1)))
    with pytest.raises(ProposalRefused, match="valid for period 1, not 2"):
        check_data_integrity("KZ", proposal(T.CARRY_OVER, KZ_PARTY, ppsr))


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
        check_aau_issuance_limit("KZ", 2, None, 0, 0, 1)
    assert codes(refusal) == [ResponseCode.ISSUANCE_OVER_LIMIT]


def test_aau_issuance_reaching_exactly_the_assigned_amount_passes() -> None:
    check_aau_issuance_limit("KZ", 2, PartyPeriod("KZ", 2, 1000), 900, 0, 100)


def test_aau_issuance_one_unit_over_the_assigned_amount_is_refused_with_4001() -> None:
    with pytest.raises(ProposalRefused) as refusal:
        check_aau_issuance_limit("KZ", 2, PartyPeriod("KZ", 2, 1000), 900, 0, 101)
    assert codes(refusal) == [ResponseCode.ISSUANCE_OVER_LIMIT]


def test_article_37ter_reduces_the_issuance_limit_until_it_is_cancelled() -> None:
    # 1000 assigned, 8 x 2008-2010 average = 880: 120 to cancel under Art. 3.7ter
    record = PartyPeriod("KZ", 2, 1000, average_emissions_2008_2010=110)
    assert record.article_37ter == 120 and record.net_assigned_amount == 880
    check_aau_issuance_limit("KZ", 2, record, 0, 0, 880)
    with pytest.raises(ProposalRefused, match=r"Art\. 3\.7ter quantity 120") as refusal:
        check_aau_issuance_limit("KZ", 2, record, 0, 0, 881)
    assert codes(refusal) == [ResponseCode.ISSUANCE_OVER_LIMIT]
    check_aau_issuance_limit("KZ", 2, record, 880, 120, 120)
    with pytest.raises(ProposalRefused):
        check_aau_issuance_limit("KZ", 2, record, 880, 120, 121)


def test_aau_issuance_is_counted_per_original_period_and_rmus_are_not() -> None:
    view = issuance(block(1, 100, period=1), block(101, 150, period=2),
                    block(151, 160, unit_type=UnitType.RMU, lulucf=3))
    assert aau_issuance_by_period(view) == {1: 100, 2: 50}


def test_a_transfer_issues_no_aaus() -> None:
    assert aau_issuance_by_period(proposal(T.INTERNAL_TRANSFER, KZ_PARTY, KZ_PERSON)) == {}


# commitment period reserve


def test_the_reserve_of_a_party_period_uses_its_period_and_article_37ter() -> None:
    assert PartyPeriod("KZ", 2, 1000).reserve == 900
    assert PartyPeriod("KZ", 2, 1005).reserve == 905  # 904.5 rounded up
    assert PartyPeriod("KZ", 1, 1000, reviewed_inventory=100).reserve == 500
    assert PartyPeriod("KZ", 2, 1000, reviewed_inventory=100).reserve == 800
    assert PartyPeriod("KZ", 2, 1000, average_emissions_2008_2010=110).reserve == 792


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


def books(code: str = "KZ", periods: dict[int, PartyPeriod] | None = None,
          **ledger: dict[LedgerKey, int]) -> PartyBooks:
    """A Party's books with counters per period: ``books(p2={LedgerKey...: n})``."""
    counters = {int(p[1:]): {k.value: v for k, v in c.items()} for p, c in ledger.items()}
    return PartyBooks(reference_standing(code), periods or {}, counters)


AFTER_TRUE_UP = date(2015, 11, 19)


def test_cer_carry_over_is_capped_at_two_and_a_half_percent_of_the_assigned_amount() -> None:
    cers = proposal(T.CARRY_OVER, KZ_PARTY, KZ_PARTY, block(1, 25, "CDM", UnitType.CER, 1))
    record = {1: PartyPeriod("KZ", 1, 1000)}
    check_carry_over(cers, AFTER_TRUE_UP, DEFAULT_TRUE_UP_PERIOD_ENDS, books(periods=record))
    with pytest.raises(ProposalRefused) as over:
        check_carry_over(cers, AFTER_TRUE_UP, DEFAULT_TRUE_UP_PERIOD_ENDS,
                         books(periods=record, p1={LedgerKey.CARRIED_OVER_CER: 1}))
    assert codes(over) == [ResponseCode.CARRY_OVER_OVER_LIMIT]


def test_carry_over_before_the_true_up_period_ends_is_refused_with_4015() -> None:
    aaus = proposal(T.CARRY_OVER, KZ_PARTY, KZ_PARTY, block(1, 25, period=1))
    with pytest.raises(ProposalRefused) as early:
        check_carry_over(aaus, date(2015, 11, 18), DEFAULT_TRUE_UP_PERIOD_ENDS, books())
    assert codes(early) == [ResponseCode.TRUE_UP_PERIOD_NOT_ENDED]
    check_carry_over(aaus, AFTER_TRUE_UP, DEFAULT_TRUE_UP_PERIOD_ENDS, books())


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
    notice = NoticeView(8, 4, "KZ", 1, None, 0)
    mandatory = AccountKey("KZ", AccountType.MANDATORY_CANCELLATION, 7)
    reversal = AccountKey("KZ", AccountType.LCER_REPLACEMENT_REVERSAL, 11)
    check_notice(replace(proposal(T.CANCELLATION, KZ_PARTY, mandatory), notification_id=8),
                 notice)
    check_notice(replace(proposal(T.REPLACEMENT, KZ_PARTY, reversal), notification_id=8),
                 notice)
    with pytest.raises(ProposalRefused, match="replacement or cancellation"):
        check_notice(replace(proposal(T.RETIREMENT, KZ_PARTY, KZ_RETIREMENT),
                             notification_id=8), notice)


# second period (decision 1/CMP.8) and the Party ledgers

CH_PERSON = AccountKey("CH", AccountType.PERSON_HOLDING, 3001)
KZ_PPSR = AccountKey("KZ", AccountType.PREVIOUS_PERIOD_SURPLUS_RESERVE, 4)
CH_PPSR = AccountKey("CH", AccountType.PREVIOUS_PERIOD_SURPLUS_RESERVE, 4)


def ppsr_block(start: int, end: int) -> UnitBlock:
    return UnitBlock(UnitAttributes("KZ", UnitType.AAU, 1, 2), SerialRange(start, end))


def test_second_period_units_to_a_party_without_a_second_period_commitment_get_4006() -> None:
    to_jp = proposal(T.EXTERNAL_TRANSFER, KZ_PARTY, JP_PERSON, block(1, 10))
    with pytest.raises(ProposalRefused, match="JP has no commitment for period 2") as refusal:
        check_eligibility(to_jp, books("KZ"), books("JP"))
    assert codes(refusal) == [ResponseCode.PARTY_NOT_ELIGIBLE]
    check_eligibility(proposal(T.EXTERNAL_TRANSFER, KZ_PARTY, CH_PERSON), books("KZ"),
                      books("CH"))
    check_eligibility(proposal(T.EXTERNAL_TRANSFER, KZ_PARTY, JP_PERSON, block(1, 10, period=1)),
                      books("KZ"), books("JP"))


@pytest.mark.parametrize(("kind", "acquiring", "units", "refused"), [
    (T.ISSUANCE, AccountKey("JP", 100, 1), block(1, 10, "JP"), True),
    (T.ISSUANCE, AccountKey("JP", 100, 1), block(1, 10, "JP", period=1), False),
    (T.RETIREMENT, AccountKey("JP", 300, 3), block(1, 10, "JP"), True),
    (T.CANCELLATION, AccountKey("JP", 230, 2), block(1, 10, "JP"), True),
    (T.CARRY_OVER, AccountKey("JP", 130, 4), block(1, 10, "JP", period=1), True),
    (T.INTERNAL_TRANSFER, AccountKey("JP", 121, 1001), block(1, 10, "JP", period=1), False),
])
def test_a_party_without_a_second_period_commitment_holds_no_second_period_units(
    kind: TransactionType, acquiring: AccountKey, units: UnitBlock, refused: bool
) -> None:
    transferring = None if kind == T.ISSUANCE else AccountKey("JP", 100, 1)
    view = proposal(kind, transferring, acquiring, units, tx="JP1")
    if not refused:
        check_eligibility(view, books("JP"), None)
        return
    with pytest.raises(ProposalRefused, match="JP has no commitment for period 2") as refusal:
        check_eligibility(view, books("JP"), None)
    assert codes(refusal) == [ResponseCode.PARTY_NOT_ELIGIBLE]
    check_eligibility(replace(view, transaction_id="KZ1",
                              transferring=replace(transferring, registry="KZ")
                              if transferring else None,
                              acquiring=replace(acquiring, registry="KZ"),
                              blocks=(units.with_serials(units.serials),)), books("KZ"), None)


def test_a_ppsr_transfer_is_capped_at_two_percent_of_the_acquirers_first_amount() -> None:
    transfer = proposal(T.EXTERNAL_TRANSFER, KZ_PPSR, CH_PPSR, ppsr_block(1, 200))
    ch = {1: PartyPeriod("CH", 1, 10_000)}  # 2 % = 200
    check_ppsr(transfer, books("KZ"), books("CH", ch))
    with pytest.raises(ProposalRefused) as over:
        check_ppsr(transfer, books("KZ"), books("CH", ch, p2={LedgerKey.PPSR_ACQUIRED: 1}))
    assert codes(over) == [ResponseCode.PPSR_ACQUISITION_OVER_LIMIT]


def test_ppsr_retirement_is_capped_at_the_excess_emissions() -> None:
    retire = proposal(T.RETIREMENT, KZ_PPSR, KZ_RETIREMENT, ppsr_block(1, 50))
    kz = {2: PartyPeriod("KZ", 2, 1_000, period_emissions=1_050)}
    check_ppsr(retire, books("KZ", kz), None)
    with pytest.raises(ProposalRefused) as over:
        check_ppsr(retire, books("KZ", kz, p2={LedgerKey.PPSR_RETIRED: 1}), None)
    assert codes(over) == [ResponseCode.PPSR_RETIREMENT_OVER_EXCESS_EMISSIONS]
    with pytest.raises(ProposalRefused):
        check_ppsr(retire, books("KZ", {2: PartyPeriod("KZ", 2, 1_000)}), None)


def test_article_37ter_cancellation_stops_at_its_quantity_with_4010() -> None:
    account = AccountKey("KZ", AccountType.ARTICLE_37TER_CANCELLATION, 13)
    cancel = proposal(T.CANCELLATION, KZ_PARTY, account, block(1, 120))
    kz = {2: PartyPeriod("KZ", 2, 1000, average_emissions_2008_2010=110)}  # 120 to cancel
    check_article_37ter(cancel, books("KZ", kz))
    with pytest.raises(ProposalRefused) as over:
        check_article_37ter(cancel, books("KZ", kz,
                                          p2={LedgerKey.ARTICLE_37TER_CANCELLED: 1}))
    assert codes(over) == [ResponseCode.ARTICLE_37TER_OVER_QUANTITY]
    assert approval_effects(cancel)[0].key == LedgerKey.ARTICLE_37TER_CANCELLED


def test_tcers_a_party_acquires_stop_at_one_percent_of_base_year_times_years() -> None:
    tcers = UnitBlock(UnitAttributes("CDM", UnitType.TCER, 2, 2, project_id="AR"),
                      SerialRange(1, 80))
    forward = proposal(T.EXTERNAL_TRANSFER, CDM_PENDING, KZ_PARTY, tcers, tx="CDM1")
    kz = {2: PartyPeriod("KZ", 2, 1000, base_year_emissions=1_000)}  # 1 % x 8 = 80
    check_ar_cdm_limit(forward, books("KZ", kz))
    with pytest.raises(ProposalRefused) as over:
        check_ar_cdm_limit(forward, books("KZ", kz, p2={LedgerKey.AR_CDM_ACQUIRED: 1}))
    assert codes(over) == [ResponseCode.AR_CDM_LIMIT_EXCEEDED]
    assert [(e.party, e.key, e.quantity) for e in approval_effects(forward)] == [
        ("KZ", LedgerKey.AR_CDM_ACQUIRED, 80)]


def test_rmus_stop_at_the_net_removals_and_deforestation_issues_none() -> None:
    record = PartyPeriod("KZ", 2, 1000, rmu_net_removals={3: 500, 2: 100},
                         base_year_emissions=1_000)  # FM cap 3.5 % x 8 = 280
    check_rmu_issuance_limit("KZ", 2, 3, record, 200, 80)
    with pytest.raises(ProposalRefused) as over:
        check_rmu_issuance_limit("KZ", 2, 3, record, 200, 81)
    assert codes(over) == [ResponseCode.ISSUANCE_OVER_LIMIT]
    with pytest.raises(ProposalRefused):
        check_rmu_issuance_limit("KZ", 2, 2, record, 0, 1)


def test_tcers_are_issued_with_the_expiry_the_rule_gives_or_refused_with_4012() -> None:
    def tcer(expiry: date | None) -> ProposalView:
        unit = UnitBlock(UnitAttributes("CDM", UnitType.TCER, 1, 1, expiry_date=expiry),
                         SerialRange(1, 5))
        return proposal(T.ISSUANCE, None, CDM_PENDING, unit, tx="CDM1")

    check_issued_expiry(tcer(date(2020, 12, 31)))
    with pytest.raises(ProposalRefused) as contradicts:
        check_issued_expiry(tcer(date(2020, 12, 30)))
    assert codes(contradicts) == [ResponseCode.EXPIRY_DATE_CONTRADICTS_RULE]
    with pytest.raises(ProposalRefused) as missing:
        check_issued_expiry(tcer(None))
    assert codes(missing) == [ResponseCode.MISSING_FIELD]


def test_the_share_of_proceeds_is_owed_after_a_first_transfer_and_blocks_the_next() -> None:
    transfer = proposal(T.EXTERNAL_TRANSFER, KZ_PARTY, CH_PERSON, block(1, 1_000))
    # approved it is pending; completing it moves 1000 to the base: 20 owed
    assert [(e.key, e.quantity) for e in approval_effects(transfer)] == [
        (LedgerKey.SOP_FIRST_TRANSFER_PENDING, 1_000)]
    assert [(e.key, e.quantity) for e in completion_effects(transfer)] == [
        (LedgerKey.SOP_FIRST_TRANSFER_BASE, 1_000), (LedgerKey.SOP_FIRST_TRANSFER_PENDING, -1_000)]
    owing = books("KZ", p2={LedgerKey.SOP_FIRST_TRANSFER_BASE: 1_000,
                            LedgerKey.SOP_FIRST_TRANSFER_LEVIED: 19})
    with pytest.raises(ProposalRefused, match="owes the Adaptation Fund 1 AAUs") as owed:
        check_share_of_proceeds(transfer, owing)
    assert codes(owed) == [ResponseCode.SHARE_OF_PROCEEDS_OWED]
    paid = {LedgerKey.SOP_FIRST_TRANSFER_BASE: 1_000, LedgerKey.SOP_FIRST_TRANSFER_LEVIED: 20}
    check_share_of_proceeds(transfer, books("KZ", p2=paid))
    # cumulative: 49 more first-transferred units owe nothing more, the 50th one more
    assert books("KZ", p2={**paid, LedgerKey.SOP_FIRST_TRANSFER_BASE: 1_049}
                 ).share_of_proceeds_owed(2) == (0, 0)
    assert books("KZ", p2={**paid, LedgerKey.SOP_FIRST_TRANSFER_BASE: 1_050}
                 ).share_of_proceeds_owed(2) == (1, 0)
    # units of another origin, or of period 1, are not first transfers of KZ
    assert approval_effects(replace(transfer, blocks=(block(1, 10, origin="CH"),))) == []
    assert completion_effects(replace(transfer, blocks=(block(1, 10, origin="CH"),))) == []
    assert completion_effects(replace(transfer, blocks=(block(1, 10, period=1),))) == []
    # the contribution itself, and obligations to the CDM registry, go ahead
    sop = replace(proposal(T.EXTERNAL_TRANSFER, KZ_PARTY, CDM_FUND, block(1, 1)),
                  supplementary_type=SupplementaryType.SHARE_OF_PROCEEDS_FIRST_TRANSFER_OF_AAU)
    check_share_of_proceeds(sop, owing)
    assert [(e.key, e.quantity) for e in approval_effects(sop)] == [
        (LedgerKey.SOP_FIRST_TRANSFER_LEVIED, 1)]
    excess = AccountKey("CDM", AccountType.EXCESS_ISSUANCE_CANCELLATION, 2240)
    check_share_of_proceeds(proposal(T.EXTERNAL_TRANSFER, KZ_PARTY, excess), owing)


def test_a_first_transfer_counts_its_share_of_proceeds_against_the_reserve() -> None:
    transfer = proposal(T.EXTERNAL_TRANSFER, KZ_PARTY, CH_PERSON, block(1, 1_000))
    assert cpr_units_leaving_by_period(transfer) == {2: 1_000}
    assert cpr_units_leaving_by_period(transfer, books("KZ")) == {2: 1_020}
    # the share is on the cumulative base: 1 030 units owe 20 alone, 21 after 20 others
    odd = replace(transfer, blocks=(block(1, 1_030),))
    assert cpr_units_leaving_by_period(odd, books("KZ")) == {2: 1_050}
    assert cpr_units_leaving_by_period(odd, books(
        "KZ", p2={LedgerKey.SOP_FIRST_TRANSFER_BASE: 20})) == {2: 1_051}
    # a first transfer approved but not yet levied owes its share too: 1 000 pending
    # and this 1 000 owe 40 between them, none of it levied yet
    assert cpr_units_leaving_by_period(transfer, books(
        "KZ", p2={LedgerKey.SOP_FIRST_TRANSFER_PENDING: 1_000})) == {2: 1_040}
    assert cpr_units_leaving_by_period(transfer, books(
        "KZ", p2={LedgerKey.SOP_FIRST_TRANSFER_PENDING: 1_000,
                  LedgerKey.SOP_FIRST_TRANSFER_LEVIED: 20})) == {2: 1_020}
    not_first = replace(transfer, blocks=(block(1, 1_000, origin="CH"),))
    assert cpr_units_leaving_by_period(not_first, books("KZ")) == {2: 1_000}


def test_conversions_of_second_period_units_owe_a_share_of_their_erus() -> None:
    conversion = replace(proposal(T.CONVERSION, KZ_PARTY, KZ_PARTY, block(1, 500)),
                         project_id="KZ-JI-1", track=1)
    assert [(e.key, e.quantity) for e in completion_effects(conversion)] == [
        (LedgerKey.SOP_CONVERSION_BASE, 500)]
    first_period = replace(conversion, blocks=(block(1, 500, period=1),))
    assert completion_effects(first_period) == []
    eru = UnitBlock(UnitAttributes("KZ", UnitType.ERU_FROM_AAU, 2, 2, project_id="KZ-JI-1",
                                   track=1), SerialRange(1, 10))
    with pytest.raises(ProposalRefused):
        check_share_of_proceeds(proposal(T.EXTERNAL_TRANSFER, KZ_PARTY, CH_PERSON, eru),
                                books("KZ", p2={LedgerKey.SOP_CONVERSION_BASE: 500}))


def test_a_notice_is_fulfilled_only_by_its_units_and_up_to_its_target() -> None:
    account = AccountKey("KZ", AccountType.NET_SOURCE_CANCELLATION, 5)
    notice = NoticeView(9, 1, "KZ", 1, 100, 60, pending_quantity=10,
                        unit_type=UnitType.AAU, commitment_period=2)
    cancel = replace(proposal(T.CANCELLATION, KZ_PARTY, account, block(1, 30)),
                     notification_id=9)
    check_notice(cancel, notice)  # 60 + 10 + 30 = 100: exactly the target
    with pytest.raises(ProposalRefused) as over:
        check_notice(replace(cancel, blocks=(block(1, 31),)), notice)
    assert codes(over) == [ResponseCode.NOTICE_TARGET_EXCEEDED]
    for misfit in (block(1, 30, period=1), block(1, 30, unit_type=UnitType.RMU, lulucf=3)):
        with pytest.raises(ProposalRefused) as refusal:
            check_notice(replace(cancel, blocks=(misfit,)), notice)
        assert codes(refusal) == [ResponseCode.UNITS_DO_NOT_MATCH_NOTICE]


def test_a_replacement_replaces_only_blocks_its_notice_lists() -> None:
    listed = UnitBlock(UnitAttributes("CDM", UnitType.TCER, 1, 1), SerialRange(100, 199))
    notice = NoticeView(3, 3, "KZ", 1, 100, 0, blocks=(listed,))
    account = AccountKey("KZ", AccountType.TCER_REPLACEMENT_EXPIRY, 9)
    inside = listed.with_serials(SerialRange(150, 199))
    replacement = replace(proposal(T.REPLACEMENT, KZ_PARTY, account, block(1, 50)),
                          notification_id=3, replaced_blocks=(inside,))
    check_notice(replacement, notice)
    outside = listed.with_serials(SerialRange(180, 229))
    with pytest.raises(ProposalRefused) as refusal:
        check_notice(replace(replacement, replaced_blocks=(outside,)), notice)
    assert codes(refusal) == [ResponseCode.UNITS_DO_NOT_MATCH_NOTICE]


def test_units_go_to_a_cdm_cancellation_account_only_on_its_notice() -> None:
    excess = AccountKey("CDM", AccountType.EXCESS_ISSUANCE_CANCELLATION, 2240)
    with pytest.raises(ProposalRefused, match="only on an ITL notice 6") as refusal:
        check_notice(proposal(T.EXTERNAL_TRANSFER, KZ_PARTY, excess), None)
    assert codes(refusal) == [ResponseCode.NOTICE_UNKNOWN_OR_CLOSED]
    check_notice(proposal(T.EXTERNAL_TRANSFER, KZ_PARTY, CH_PERSON), None)


def test_an_expiry_date_change_sets_the_notices_date_and_never_a_past_one() -> None:
    tcer = UnitBlock(UnitAttributes("CDM", UnitType.TCER, 1, 1, expiry_date=date(2020, 12, 31)),
                     SerialRange(1, 10))
    change = replace(proposal(T.EXPIRY_DATE_CHANGE, KZ_RETIREMENT, KZ_RETIREMENT, tcer),
                     notification_id=9, new_expiry_date=date(2025, 6, 30))
    notice = NoticeView(9, 9, "KZ", 1, None, 0, blocks=(tcer,), target_date=date(2025, 6, 30))
    check_notice(change, notice)
    with pytest.raises(ProposalRefused) as other:
        check_notice(replace(change, new_expiry_date=date(2025, 7, 1)), notice)
    assert codes(other) == [ResponseCode.UNITS_DO_NOT_MATCH_NOTICE]
    check_new_expiry_date(change, date(2025, 6, 30))
    with pytest.raises(ProposalRefused) as past:
        check_new_expiry_date(change, date(2025, 7, 1))
    assert codes(past) == [ResponseCode.EXPIRY_DATE_CONTRADICTS_RULE]


def test_lost_lcers_of_a_notice_are_of_its_project() -> None:
    lcer = UnitBlock(UnitAttributes("CDM", UnitType.LCER, 2, 2, project_id="AR-2"),
                     SerialRange(1, 10))
    notice = NoticeView(4, 4, "KZ", 1, None, 0, project_id="AR-1")
    mandatory = AccountKey("KZ", AccountType.MANDATORY_CANCELLATION, 7)
    with pytest.raises(ProposalRefused, match="project AR-2") as refusal:
        check_notice(replace(proposal(T.CANCELLATION, KZ_PARTY, mandatory, lcer),
                             notification_id=4), notice)
    assert codes(refusal) == [ResponseCode.UNITS_DO_NOT_MATCH_NOTICE]
