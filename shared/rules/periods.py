"""The quantitative rules of the commitment periods, each in one function the ITL and the
registries share (protocol.md section 4).

Tags as in protocol.md: V verified, R a rule of a CMP decision as the domain review
read it (paragraph cited), U assumed, O our choice. Quantities are in units (one unit =
one tonne of CO2 equivalent); emissions and removals are in tonnes CO2 equivalent.
Rounding: a reserve is a floor the Party must keep, so it is rounded up; every limit on
what a Party may issue, acquire, carry over or owe is rounded down (O).

Pure Python: no I/O, no clock (dates are passed in).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date

from shared.blocks import UnitAttributes, UnitBlock
from shared.codes import (
    COMMITMENT_PERIOD_YEARS,
    AccountType,
    LulucfActivity,
    UnitType,
)

A = AccountType
U = UnitType

#: The period after the second, for tCERs of the second period (2021-2030, V UK-TYPES
#: commitment period 3; no third Kyoto period was agreed, so this date is U).
FOLLOWING_PERIOD_YEARS = {**COMMITMENT_PERIOD_YEARS, 3: (2021, 2030)}


def period_years(period: int) -> int:
    """Years in a commitment period: 5 for the first, 8 for the second."""
    first, last = FOLLOWING_PERIOD_YEARS[period]
    return last - first + 1


def period_end(period: int) -> date:
    """Last day of a commitment period."""
    return date(FOLLOWING_PERIOD_YEARS[period][1], 12, 31)


def _percent_of(quantity: int, percent_times_10: int) -> int:
    """``percent_times_10`` tenths of a per cent of ``quantity``, rounded down."""
    return quantity * percent_times_10 // 1000


# Commitment period reserve (protocol.md 4.1)

#: The reserve is 90 % of the assigned amount (V W-CPR) ...
CPR_ASSIGNED_AMOUNT_PERCENT = 90
#: ... or this many times the latest reviewed inventory, whichever is lower: 5 for the
#: first period (V W-CPR, decision 18/CP.7), 8 for the second (R 1/CMP.8 para 18).
CPR_INVENTORY_MULTIPLE = {1: 5, 2: 8}


def commitment_period_reserve(period: int, assigned_amount: int,
                              reviewed_inventory: int | None,
                              article_37ter_quantity: int = 0) -> int:
    """The units a Party must keep: min(90 % of its assigned amount, multiple x its
    latest reviewed annual inventory), rounded up to whole units because it is a floor.

    The assigned amount is net of the Art. 3.7ter quantity (O: cancelled assigned amount
    does not count towards the reserve). Without a reviewed inventory only the 90 % term
    applies.
    """
    net = assigned_amount - article_37ter_quantity
    share = -(-net * CPR_ASSIGNED_AMOUNT_PERCENT // 100)
    if reviewed_inventory is None:
        return share
    return min(share, CPR_INVENTORY_MULTIPLE[period] * reviewed_inventory)


# Art. 3.7ter (R Doha Amendment; protocol.md 4.4)

#: The average 2008-2010 emissions times eight (the years of the second period).
ARTICLE_37TER_MULTIPLE = 8


def article_37ter_quantity(period: int, assigned_amount: int,
                           average_emissions_2008_2010: int | None) -> int:
    """Assigned amount above 8 x the Party's average 2008-2010 emissions, to be cancelled
    into its Art. 3.7ter cancellation account (270); 0 outside the second period or while
    the average is not recorded."""
    if period != 2 or average_emissions_2008_2010 is None:
        return 0
    return max(0, assigned_amount - ARTICLE_37TER_MULTIPLE * average_emissions_2008_2010)


def aau_issuance_room(assigned_amount: int, article_37ter: int, issued: int,
                      cancelled_37ter: int) -> int:
    """AAUs a Party may still issue for a period.

    Two limits hold at once: no more than the assigned amount is ever issued, and no
    more than the assigned amount less the Art. 3.7ter quantity is in circulation
    (issued less what was cancelled under Art. 3.7ter). So until the 3.7ter quantity is
    cancelled the issuance limit is reduced by it (O: how we read "reducing the issuance
    limit"; the cancelled units must have been issued, so the whole assigned amount can
    be issued once they are).
    """
    return min(assigned_amount - issued,
               assigned_amount - article_37ter - (issued - cancelled_37ter))


def article_37ter_room(article_37ter: int, cancelled_37ter: int) -> int:
    """AAUs still to cancel under Art. 3.7ter; more is refused (4010)."""
    return article_37ter - cancelled_37ter


# Share of proceeds (protocol.md 4.2)

#: Per cent of the first international transfers of AAUs and of ERUs issued, by the
#: period of the units; the first period had none (R 1/CMP.8 para 21).
SHARE_OF_PROCEEDS_PERCENT = {2: 2}


def share_of_proceeds_due(period: int, base: int) -> int:
    """Units owed to the Adaptation Fund on ``base`` units first transferred or converted
    in ``period``: the per cent of the cumulative base, rounded down (O), so fractions
    carry over to the next transfer instead of being lost."""
    return base * SHARE_OF_PROCEEDS_PERCENT.get(period, 0) // 100


def is_first_international_transfer(attributes: UnitAttributes, transferring_registry: str
                                    ) -> bool:
    """An AAU of a period with a share of proceeds leaving the Party that issued it.

    O: an AAU leaves its issuing Party for the first time from that Party's registry; a
    unit that came back and leaves again pays again (the conservative error).
    """
    return (attributes.unit_type == U.AAU
            and attributes.original_commitment_period in SHARE_OF_PROCEEDS_PERCENT
            and attributes.originating_registry == transferring_registry)


def levies_on_conversion(attributes: UnitAttributes) -> bool:
    """ERUs issued by converting AAUs or RMUs of a period with a share of proceeds."""
    return attributes.original_commitment_period in SHARE_OF_PROCEEDS_PERCENT


# Previous period surplus reserve (R 1/CMP.8 paras 23-26; protocol.md 4.4)

#: An acquiring Party takes at most this per cent of its first-period assigned amount.
PPSR_ACQUISITION_PERCENT = 2


def ppsr_acquisition_limit(first_period_assigned_amount: int | None) -> int:
    """PPSR units a Party may acquire from other Parties' reserves: 2 % of its first-period
    assigned amount, rounded down; none without a recorded first-period amount."""
    if first_period_assigned_amount is None:
        return 0
    return first_period_assigned_amount * PPSR_ACQUISITION_PERCENT // 100


def ppsr_retirement_limit(period_emissions: int | None, assigned_amount: int | None) -> int:
    """PPSR units a Party may retire in the second period: the amount by which its
    emissions over the period exceed its assigned amount (net of Art. 3.7ter); none
    until both are recorded."""
    if period_emissions is None or assigned_amount is None:
        return 0
    return max(0, period_emissions - assigned_amount)


# Carry-over (protocol.md 4.3)

#: CERs and ERUs from AAUs are each carried over up to 2.5 % of the assigned amount
#: (V W-CO; per type and "of the assigned amount" U).
CARRY_OVER_LIMIT_TENTHS_OF_PERCENT = 25
#: Last day of the additional period for fulfilling commitments (true-up) of each
#: period; carry-over only after it (R 13/CMP.1 annex para 15). Period 1: 18 November
#: 2015, the end of the first period's true-up as the UNFCCC announced it (U: date as
#: recalled, not seen in a stored source); period 2: ours (O). Both are settings
#: (TRUE_UP_PERIOD_ENDS).
DEFAULT_TRUE_UP_PERIOD_ENDS: dict[int, date] = {1: date(2015, 11, 18), 2: date(2023, 11, 15)}


def carry_over_limit(assigned_amount: int) -> int:
    """CERs, or ERUs from AAUs, a Party may carry over: 2.5 % of its assigned amount,
    rounded down."""
    return _percent_of(assigned_amount, CARRY_OVER_LIMIT_TENTHS_OF_PERCENT)


def true_up_ended(period: int, today: date, true_up_ends: Mapping[int, date]) -> bool:
    """Whether the additional period for fulfilling commitments of ``period`` is over
    (the day after its last day); a period without a configured end never is."""
    end = true_up_ends.get(period)
    return end is not None and today > end


# tCER and lCER (R 5/CMP.1 annex section K; protocol.md 4.4)


def temporary_unit_expiry(unit_type: UnitType, commitment_period: int,
                          crediting_period_end: date | None) -> date | None:
    """When a tCER or lCER expires: a tCER at the end of the commitment period after the
    one it was issued for, an lCER at the end of its project's crediting period (None
    while that is not known); other units never expire."""
    if unit_type == U.TCER:
        return period_end(commitment_period + 1)
    if unit_type == U.LCER:
        return crediting_period_end
    return None


#: Units of unlimited validity: what replaces an expiring or lost tCER or lCER.
_UNLIMITED = frozenset({U.AAU, U.RMU, U.ERU_FROM_AAU, U.ERU_FROM_RMU, U.CER})
#: Which units may replace the units of each replacement account (R 5/CMP.1 annex paras
#: 44, 47, 49-50): tCERs by units of unlimited validity or tCERs; expiring lCERs by units
#: of unlimited validity; lCERs lost to a reversal of storage or a missing certification
#: report also by lCERs of the same project activity.
REPLACING_UNIT_TYPES: dict[AccountType, frozenset[UnitType]] = {
    A.TCER_REPLACEMENT_EXPIRY: _UNLIMITED | {U.TCER},
    A.LCER_REPLACEMENT_EXPIRY: _UNLIMITED,
    A.LCER_REPLACEMENT_REVERSAL: _UNLIMITED | {U.LCER},
    A.LCER_REPLACEMENT_NON_SUBMISSION: _UNLIMITED | {U.LCER},
}
#: The unit type each replacement account replaces (protocol.md 2.7).
REPLACED_UNIT_TYPE: dict[AccountType, UnitType] = {
    A.TCER_REPLACEMENT_EXPIRY: U.TCER,
    A.LCER_REPLACEMENT_EXPIRY: U.LCER,
    A.LCER_REPLACEMENT_REVERSAL: U.LCER,
    A.LCER_REPLACEMENT_NON_SUBMISSION: U.LCER,
}
#: Replacements of units that expire: what replaces them must outlive them.
_FOR_EXPIRY = frozenset({A.TCER_REPLACEMENT_EXPIRY, A.LCER_REPLACEMENT_EXPIRY})
#: lCERs may replace lCERs only of the same project activity.
_SAME_PROJECT_ONLY = frozenset({A.LCER_REPLACEMENT_REVERSAL, A.LCER_REPLACEMENT_NON_SUBMISSION})


def replacement_breaches(account_type: AccountType, replaced: Iterable[UnitBlock],
                         replacing: Iterable[UnitBlock]) -> list[str]:
    """Why ``replacing`` units may not replace ``replaced`` ones through the replacement
    account ``account_type``; [] when they may (4004). Temporary units that replace
    expiring ones must expire after them (O: otherwise nothing valid stands in for them
    once both have expired); lCERs lost to a reversal of storage or a missing report are
    replaced by lCERs of their project, which expire with them."""
    allowed = REPLACING_UNIT_TYPES[account_type]
    replaced = list(replaced)
    projects = {b.attributes.project_id for b in replaced}
    expiries = [b.attributes.expiry_date for b in replaced if b.attributes.expiry_date]
    found = []
    for block in replacing:
        a = block.attributes
        if (account_type in _FOR_EXPIRY and a.expiry_date is not None and expiries
                and a.expiry_date <= max(expiries)):
            found.append(f"{a.unit_type.name} expiring on {a.expiry_date} cannot replace units "
                         f"expiring on {max(expiries)}: a replacement outlives what it "
                         "replaces")
        elif a.unit_type not in allowed:
            found.append(f"{a.unit_type.name} cannot replace through account type "
                         f"{int(account_type)}: only {', '.join(t.name for t in sorted(allowed))}")
        elif (a.unit_type == U.LCER and account_type in _SAME_PROJECT_ONLY
              and projects != {a.project_id}):
            found.append(f"lCERs of project {a.project_id} cannot replace lCERs of project "
                         f"{', '.join(sorted(str(p) for p in projects))}: only the same "
                         "project's lCERs may")
    return found


# RMUs and A/R CDM credits (R 16/CMP.1 appendix, 2/CMP.7 para 13; protocol.md 4.4)

#: Forest management RMUs in the second period are capped at 3.5 % of base-year
#: emissions times eight (R 2/CMP.7 para 13); the first period's caps are Party by
#: Party in the appendix to 16/CMP.1, so they are recorded, not computed.
FOREST_MANAGEMENT_CAP_TENTHS_OF_PERCENT = {2: 35}
#: tCERs and lCERs a Party acquires: at most 1 % of base-year emissions times the years
#: of the period (R 16/CMP.1 annex para 14).
AR_CDM_LIMIT_TENTHS_OF_PERCENT = 10


def forest_management_cap(period: int, base_year_emissions: int | None,
                          recorded_cap: int | None) -> int | None:
    """The forest management cap: the recorded one, else for the second period 3.5 % of
    base-year emissions x 8; None when neither is known (the net removals still limit)."""
    if recorded_cap is not None:
        return recorded_cap
    share = FOREST_MANAGEMENT_CAP_TENTHS_OF_PERCENT.get(period)
    if share is None or base_year_emissions is None:
        return None
    return base_year_emissions * share * period_years(period) // 1000


def rmu_issuance_limit(activity: int, net_removals: int | None,
                       fm_cap: int | None) -> int:
    """RMUs a Party may issue for a LULUCF activity in a period: its reviewed net
    removals for the activity, capped for forest management; none for deforestation
    (a source, not a sink) and none while no net removals are recorded."""
    if activity == LulucfActivity.DEFORESTATION or net_removals is None:
        return 0
    if activity == LulucfActivity.FOREST_MANAGEMENT and fm_cap is not None:
        return min(net_removals, fm_cap)
    return net_removals


def ar_cdm_limit(period: int, base_year_emissions: int | None) -> int:
    """tCERs and lCERs of a period a Party may acquire: 1 % of its base-year emissions
    times the years of the period, rounded down; none without base-year emissions."""
    if base_year_emissions is None:
        return 0
    return (base_year_emissions * AR_CDM_LIMIT_TENTHS_OF_PERCENT * period_years(period)
            // 1000)
