"""Article 5 of Decision 406/2009/EC (the Effort Sharing Decision, ESD): which project
credits a Member State may use towards a year's effort-sharing obligation, and how many.

Pure Python: no I/O, no wire contracts; today's date is passed in. Every refusal is a
``RuleViolation`` with a 41xx response code and a reason that names the paragraph.
Values the legal text leaves open are chosen here, each marked (O) and listed in the
README's effort-sharing section.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import date
from enum import StrEnum

from shared.blocks import UnitBlock
from shared.codes import AccountType, ResponseCode, UnitType
from shared.errors import RuleViolation

R = ResponseCode

#: The years of the effort-sharing obligations of Article 3 (2013-2020).
FIRST_YEAR = 2013
LAST_YEAR = 2020
#: Par. 4: the annual limit, in per cent of the 2005 effort-sharing emissions.
GENERAL_LIMIT_PERCENT = 3
#: Par. 5: the additional limit for credits from projects in LDCs and SIDS.
EXTRA_LIMIT_PERCENT = 1
#: Par. 5: Annex II limits up to this (negative, zero or positive) qualify for the 1 % (O:
#: zero counts, the text speaks of "negative or positive up to 5 %" and no state has 0).
EXTRA_ANNEX_II_MAX_PERCENT = 5
#: Reductions and registrations "before 2013" end on this day.
START_OF_2013 = date(2013, 1, 1)

#: The dedicated account credits are surrendered into: Party holding type 100 with the
#: fixed number 406, after the Decision (O: the Decision names no account).
ESD_ACCOUNT_TYPE = AccountType.PARTY_HOLDING
ESD_ACCOUNT_ID = 406

TEMPORARY_UNIT_TYPES = frozenset({UnitType.TCER, UnitType.LCER})
#: Par. 1: CERs, ERUs, and under (d) tCERs and lCERs; AAUs and RMUs are not credits.
CREDIT_UNIT_TYPES = frozenset(
    {UnitType.CER, UnitType.ERU_FROM_AAU, UnitType.ERU_FROM_RMU, *TEMPORARY_UNIT_TYPES}
)


class Article55Condition(StrEnum):
    """The four conditions of par. 5, one of which a Member State must meet."""

    A = "a"  # direct costs of the package above 0.7 % of GDP
    B = "b"  # at least 0.1 % of GDP between the target and the cost-effective scenario
    C = "c"  # transport above 50 % of the effort-sharing emissions
    D = "d"  # 2020 renewable energy target above 30 %


ARTICLE_5_5_TEXT = {
    Article55Condition.A: "direct costs of the package above 0.7 % of GDP",
    Article55Condition.B: "at least 0.1 % of GDP between target and cost-effective scenario",
    Article55Condition.C: "transport over 50 % of the effort-sharing emissions",
    Article55Condition.D: "renewable energy target for 2020 above 30 %",
}


class Basis(StrEnum):
    """What a credit counts against once eligible."""

    GENERAL = "general"  # par. 4: the 3 % limit (plus transfers and carry-forward)
    LDC_SIDS = "ldc_sids"  # par. 5: the extra 1 % first, then the 3 % limit
    COMMUNITY = "community"  # par. 7: no quantitative limit


@dataclass(frozen=True)
class ProjectFacts:
    """What the Member State registry records about a project for eligibility."""

    project_id: str
    host_country: str
    registered_on: date
    crediting_start: date
    ets_eligible_2008_2012: bool
    community_project: bool = False


@dataclass(frozen=True)
class CountryLists:
    """LDCs (the 2026 list plus graduation years) and SIDS, by ISO alpha-2 code."""

    ldc: frozenset[str]
    sids: frozenset[str]
    ldc_graduation_year: Mapping[str, int] = field(default_factory=dict)

    def is_ldc(self, country: str, year: int) -> bool:
        """An LDC for obligation ``year``: on the list now, or graduated after that year
        (O: a country graduating during the year no longer counts for it)."""
        if country in self.ldc:
            return True
        graduated = self.ldc_graduation_year.get(country)
        return graduated is not None and graduated > year

    def is_ldc_or_sids(self, country: str, year: int) -> bool:
        return self.is_ldc(country, year) or country in self.sids


@dataclass(frozen=True)
class MemberStateProfile:
    """A registry configured as an EU Member State (values from configuration and the
    reference data; which of them are verified is reported separately)."""

    code: str
    emissions_2005: int | None
    annex_ii_limit_percent: int | None
    annex_iii: bool
    article_5_5_conditions: frozenset[Article55Condition] = frozenset()
    temporary_credits_used_2008_2012: bool = False
    international_agreement_concluded: bool = False
    agreement_ratified_by: frozenset[str] = frozenset()
    ldc_agreements: Mapping[str, date] = field(default_factory=dict)

    @property
    def general_allowance(self) -> int:
        """Par. 4: 3 % of the 2005 emissions, rounded down to whole units (O)."""
        if self.emissions_2005 is None:
            return 0
        return self.emissions_2005 * GENERAL_LIMIT_PERCENT // 100

    @property
    def extra_applies(self) -> bool:
        """Par. 5: Annex II limit <= 5 %, listed in Annex III, one of four conditions."""
        return (
            self.annex_ii_limit_percent is not None
            and self.annex_ii_limit_percent <= EXTRA_ANNEX_II_MAX_PERCENT
            and self.annex_iii
            and bool(self.article_5_5_conditions)
        )

    @property
    def extra_allowance(self) -> int:
        """Par. 5: 1 % of the 2005 emissions, rounded down (O), where it applies."""
        if not self.extra_applies or self.emissions_2005 is None:
            return 0
        return self.emissions_2005 * EXTRA_LIMIT_PERCENT // 100


@dataclass(frozen=True)
class Eligibility:
    """Why a block may be used: the paragraph and what it counts against."""

    paragraph: str
    basis: Basis


def check_year(year: int) -> None:
    if not FIRST_YEAR <= year <= LAST_YEAR:
        raise RuleViolation(R.ESD_YEAR_OUT_OF_RANGE,
                            f"year {year} is outside the effort-sharing years "
                            f"{FIRST_YEAR}-{LAST_YEAR}")


def check_eligibility(block: UnitBlock, project: ProjectFacts | None,
                      profile: MemberStateProfile, lists: CountryLists, year: int,
                      today: date, overdue_replacement: int = 0) -> Eligibility:
    """The paragraph under which ``block`` may be used for ``year``, or a refusal.

    Reductions up to 2012 are units of original commitment period 1, reductions from
    2013 those of period 2 (O: units carry no vintage year, the period is their vintage).
    """
    a = block.attributes
    what = f"{a.unit_type.name} {a.originating_registry} {block.serials.start}-" \
           f"{block.serials.end}"
    if a.unit_type not in CREDIT_UNIT_TYPES:
        raise RuleViolation(R.ESD_UNIT_TYPE_NOT_ELIGIBLE,
                            f"{what}: {a.unit_type.name} units are not project credits "
                            f"(Art. 5(1))")
    if project is None:
        raise RuleViolation(R.ESD_PROJECT_FACTS_MISSING,
                            f"{what}: no project facts recorded for project "
                            f"{a.project_id or '(none on the units)'}")
    if project.community_project:
        return Eligibility("5(7)", Basis.COMMUNITY)
    host = project.host_country
    basis = Basis.LDC_SIDS if lists.is_ldc_or_sids(host, year) else Basis.GENERAL
    if (profile.international_agreement_concluded and year >= FIRST_YEAR
            and host not in profile.agreement_ratified_by):
        raise RuleViolation(R.ESD_HOST_NOT_RATIFIED,
                            f"{what}: host country {host} has not ratified the international "
                            f"agreement on climate change (Art. 5(3))")
    if a.unit_type in TEMPORARY_UNIT_TYPES:
        return _temporary_eligibility(what, a.unit_type, a.expiry_date, profile, today,
                                      overdue_replacement, basis)
    if not project.ets_eligible_2008_2012:
        raise RuleViolation(R.ESD_NOT_ETS_ELIGIBLE,
                            f"{what}: project {project.project_id} was not eligible in the "
                            f"EU ETS in 2008-2012 (Art. 5(1)(a)-(c))")
    if a.original_commitment_period == 1:
        if project.crediting_start >= START_OF_2013:
            raise RuleViolation(R.ESD_REDUCTIONS_BEFORE_CREDITING_START,
                                f"{what}: reductions up to 2012, but project "
                                f"{project.project_id} credits only from "
                                f"{project.crediting_start} (Art. 5(1)(a))")
        return Eligibility("5(1)(a)", basis)
    if project.registered_on < START_OF_2013:
        return Eligibility("5(1)(b)", basis)
    if a.unit_type == UnitType.CER and lists.is_ldc(host, year):
        ratified = profile.ldc_agreements.get(host)
        if ratified is not None and ratified <= today:
            raise RuleViolation(R.ESD_LDC_CREDITS_NOT_ELIGIBLE,
                                f"{what}: {host} ratified an agreement with the Community on "
                                f"{ratified} (Art. 5(1)(c))")
        if year > LAST_YEAR:
            raise RuleViolation(R.ESD_LDC_CREDITS_NOT_ELIGIBLE,
                                f"{what}: LDC credits only until 2020 (Art. 5(1)(c))")
        return Eligibility("5(1)(c)", basis)
    raise RuleViolation(R.ESD_PROJECT_REGISTERED_TOO_LATE,
                        f"{what}: reductions from 2013 of project {project.project_id}, "
                        f"registered on {project.registered_on} (after 2012) in {host}, "
                        f"not a least developed country (Art. 5(1)(b)-(c))")


def _temporary_eligibility(what: str, unit_type: UnitType, expiry: date | None,
                           profile: MemberStateProfile, today: date, overdue: int,
                           basis: Basis) -> Eligibility:
    """Par. 1(d): tCERs and lCERs, only for a state that used them in 2008-2012 and
    keeps its replacement obligation."""
    if not profile.temporary_credits_used_2008_2012:
        raise RuleViolation(R.ESD_TEMPORARY_CREDITS_NOT_ELIGIBLE,
                            f"{what}: {profile.code} did not use tCERs or lCERs in 2008-2012 "
                            f"(Art. 5(1)(d))")
    if expiry is None or expiry <= today:
        raise RuleViolation(R.ESD_TEMPORARY_CREDITS_EXPIRED,
                            f"{what}: {unit_type.name} expired on {expiry} (Art. 5(1)(d))")
    if overdue > 0:
        raise RuleViolation(R.ESD_REPLACEMENT_OVERDUE,
                            f"{what}: {overdue} tCERs/lCERs used earlier expired without "
                            f"replacement (Art. 5(1)(d))")
    return Eligibility("5(1)(d)", basis)


# the temporary credits' replacement obligation (par. 1(d))


@dataclass(frozen=True)
class TemporaryCredits:
    """tCERs/lCERs of one surrender expiring on one date, and how many are replaced."""

    expiry_date: date
    quantity: int
    replaced: int = 0

    @property
    def outstanding(self) -> int:
        return self.quantity - self.replaced


def overdue_replacement(entries: Iterable[TemporaryCredits], today: date) -> int:
    """Units of temporary credits that expired without being replaced."""
    return sum(e.outstanding for e in entries if e.expiry_date <= today)


def apply_replacement(entries: list[TemporaryCredits], quantity: int) -> list[TemporaryCredits]:
    """Mark ``quantity`` units replaced, the earliest expiry first."""
    if quantity > sum(e.outstanding for e in entries):
        raise RuleViolation(R.ESD_REPLACEMENT_INVALID,
                            f"{quantity} units exceed the {sum(e.outstanding for e in entries)}"
                            f" temporary credits still to replace")
    out: list[TemporaryCredits] = []
    left = quantity
    for entry in sorted(entries, key=lambda e: e.expiry_date):
        take = min(left, entry.outstanding)
        out.append(replace(entry, replaced=entry.replaced + take))
        left -= take
    return out


# the ledger of one Member State and year (par. 4-6)


@dataclass(frozen=True)
class Allocation:
    """Units of one use of credits, by what they count against."""

    general: int = 0
    extra: int = 0
    community: int = 0

    @property
    def total(self) -> int:
        return self.general + self.extra + self.community


@dataclass(frozen=True)
class YearLedger:
    """The flows of one effort-sharing year; the allowances follow from the profile."""

    year: int
    used: Allocation = Allocation()
    reserved: Allocation = Allocation()  # surrenders proposed, not final yet
    transferred_in: int = 0
    transferred_out: int = 0
    reserved_out: int = 0  # transfers to other states proposed, not answered yet
    # transfers from other states accepted here, until the ITL confirms (docs/adr/0017)
    reserved_in: int = 0
    carried_in: int = 0
    closed: bool = False
    carried_out: int = 0


@dataclass(frozen=True)
class Position:
    """The derived figures of a ledger under a profile."""

    general_allowance: int
    extra_allowance: int
    limit: int  # par. 4: 3 % + transferred in - transferred out + carried in
    general_available: int
    extra_available: int
    transferable: int  # par. 6: the unused part of this year's own 3 %
    unused: int  # what closing the year would carry forward


def position(ledger: YearLedger, profile: MemberStateProfile) -> Position:
    general = profile.general_allowance
    extra = profile.extra_allowance
    limit = general + ledger.transferred_in - ledger.transferred_out + ledger.carried_in
    general_available = (limit - ledger.used.general - ledger.reserved.general
                         - ledger.reserved_out)
    extra_available = extra - ledger.used.extra - ledger.reserved.extra
    own_left = general - ledger.transferred_out - ledger.reserved_out
    return Position(
        general_allowance=general,
        extra_allowance=extra,
        limit=limit,
        general_available=general_available,
        extra_available=extra_available,
        transferable=max(0, min(general_available, own_left)),
        unused=max(0, limit - ledger.used.general),
    )


def check_open(ledger: YearLedger) -> None:
    if ledger.closed:
        raise RuleViolation(R.ESD_YEAR_CLOSED,
                            f"effort-sharing year {ledger.year} is closed")


def allocate_use(ledger: YearLedger, profile: MemberStateProfile, general: int,
                 ldc_sids: int, community: int) -> Allocation:
    """Split a use of eligible credits over the limits, or refuse it (par. 4, 5, 7).

    LDC/SIDS credits take the extra 1 % first and the rest of them the 3 % limit (O: that
    keeps the transferable 3 % for other credits); Community credits are unlimited.
    """
    check_open(ledger)
    pos = position(ledger, profile)
    to_extra = min(ldc_sids, max(0, pos.extra_available))
    to_general = general + ldc_sids - to_extra
    if to_general > 0 and profile.emissions_2005 is None:
        raise RuleViolation(R.ESD_EMISSIONS_NOT_SET,
                            f"{profile.code}'s 2005 effort-sharing emissions are not "
                            f"configured (ESD_2005_EMISSIONS), so its limit is unknown")
    if to_general > pos.general_available:
        raise RuleViolation(
            R.ESD_ANNUAL_LIMIT_EXCEEDED,
            f"year {ledger.year}: {to_general} units would count against the limit of "
            f"{pos.limit} (3 % of 2005 emissions {pos.general_allowance} + transferred in "
            f"{ledger.transferred_in} - transferred out {ledger.transferred_out} + carried "
            f"forward {ledger.carried_in}), of which {ledger.used.general} are used and "
            f"{ledger.reserved.general + ledger.reserved_out} reserved: "
            f"{max(0, pos.general_available)} available"
            + (f"; the extra 1 % for LDC/SIDS credits has {max(0, pos.extra_available)} left"
               if pos.extra_allowance else "")
            + " (Art. 5(4)-(5))",
        )
    return Allocation(general=to_general, extra=to_extra, community=community)


def _add(a: Allocation, b: Allocation, sign: int = 1) -> Allocation:
    return Allocation(a.general + sign * b.general, a.extra + sign * b.extra,
                      a.community + sign * b.community)


def reserve_use(ledger: YearLedger, allocation: Allocation) -> YearLedger:
    return replace(ledger, reserved=_add(ledger.reserved, allocation))


def book_use(ledger: YearLedger, allocation: Allocation) -> YearLedger:
    """A surrender completed: its reservation becomes use."""
    return replace(ledger, reserved=_add(ledger.reserved, allocation, -1),
                   used=_add(ledger.used, allocation))


def release_use(ledger: YearLedger, allocation: Allocation) -> YearLedger:
    """A surrender refused: its reservation is given back."""
    return replace(ledger, reserved=_add(ledger.reserved, allocation, -1))


def reserve_transfer_out(ledger: YearLedger, profile: MemberStateProfile, quantity: int,
                         acquiring_state: str) -> YearLedger:
    """Par. 6: set aside unused 3 % for another Member State until it answers."""
    check_open(ledger)
    if acquiring_state == profile.code:
        raise RuleViolation(R.ESD_TRANSFER_TO_ITSELF,
                            f"{profile.code} cannot transfer allowance to itself")
    pos = position(ledger, profile)
    if quantity > pos.transferable:
        raise RuleViolation(
            R.ESD_TRANSFER_EXCEEDS_UNUSED,
            f"year {ledger.year}: {quantity} exceeds the {pos.transferable} units of the "
            f"annual 3 % ({pos.general_allowance}) that are unused and not yet transferred "
            f"(Art. 5(6))",
        )
    return replace(ledger, reserved_out=ledger.reserved_out + quantity)


def book_transfer_out(ledger: YearLedger, quantity: int) -> YearLedger:
    return replace(ledger, reserved_out=ledger.reserved_out - quantity,
                   transferred_out=ledger.transferred_out + quantity)


def release_transfer_out(ledger: YearLedger, quantity: int) -> YearLedger:
    return replace(ledger, reserved_out=ledger.reserved_out - quantity)


def accept_transfer_in(ledger: YearLedger, quantity: int) -> YearLedger:
    """Hold an amount another state transfers under par. 6 while the ITL records the
    outcome: it raises nothing yet (docs/adr/0017)."""
    check_open(ledger)
    return replace(ledger, reserved_in=ledger.reserved_in + quantity)


def book_transfer_in(ledger: YearLedger, quantity: int) -> YearLedger:
    """Par. 4: the ITL recorded the transfer accepted; the amount raises the limit."""
    return replace(ledger, reserved_in=ledger.reserved_in - quantity,
                   transferred_in=ledger.transferred_in + quantity)


def release_transfer_in(ledger: YearLedger, quantity: int) -> YearLedger:
    """The ITL ended the transfer otherwise (timed out): the amount held goes."""
    return replace(ledger, reserved_in=ledger.reserved_in - quantity)


def close_year(ledger: YearLedger, profile: MemberStateProfile, today: date,
               next_year: YearLedger | None) -> tuple[YearLedger, YearLedger | None]:
    """Par. 6: close an ended year and carry its unused limit into the next year.

    What carries forward is limit - used (3 % + transfers in - out + carried in - used);
    the extra 1 % does not (par. 6 speaks of the annual 3 %). After 2020 nothing carries:
    the Decision ends there (O). Returns the closed year and the next year's ledger.
    """
    check_open(ledger)
    if today.year <= ledger.year:
        raise RuleViolation(R.ESD_YEAR_NOT_ENDED,
                            f"year {ledger.year} has not ended (today is {today})")
    if ledger.reserved.total or ledger.reserved_out or ledger.reserved_in:
        raise RuleViolation(R.ESD_YEAR_HAS_OPEN_OPERATIONS,
                            f"year {ledger.year} has {ledger.reserved.total} units of "
                            f"surrenders and {ledger.reserved_out + ledger.reserved_in} of "
                            f"transfers still open")
    unused = position(ledger, profile).unused
    if ledger.year >= LAST_YEAR:
        return replace(ledger, closed=True, carried_out=0), None
    following = next_year or YearLedger(ledger.year + 1)
    check_open(following)
    return (replace(ledger, closed=True, carried_out=unused),
            replace(following, carried_in=following.carried_in + unused))
