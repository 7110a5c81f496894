"""Check families 5 to 7 (protocol.md 3.2): the type-specific limits of the commitment
periods, Party eligibility, and the commitment period reserve; and the Party ledgers
those limits count against.

The rules themselves are the shared ones (``shared.rules``); this module applies them
to a proposal and a Party's books as the ITL keeps them. Pure Python: no I/O, no wire
contracts, no clock (``today`` is passed in).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import date
from enum import StrEnum

from services.itl.domain.proposal import (
    Discrepancy,
    ProposalView,
    refuse,
    refuse_if_any,
)
from shared.codes import CDM_CODE, ResponseCode, TransactionType, UnitType
from shared.rules.accounts import TEMPORARY_UNIT_TYPES, TransferKind
from shared.rules.parties import (
    PartyStanding,
    commitment_breaches,
    conversion_eligibility_breaches,
    retirement_eligibility_breaches,
    transfer_eligibility_breaches,
)
from shared.rules.periods import (
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
    rmu_issuance_limit,
    share_of_proceeds_due,
    temporary_unit_expiry,
    true_up_ended,
)

T = TransactionType
U = UnitType
K = TransferKind

#: Units counted in a Party's reserve holdings: AAU, ERU, RMU and CER (U protocol.md
#: 4.1; tCERs and lCERs are temporary and left out).
CPR_UNIT_TYPES = frozenset({U.AAU, U.RMU, U.ERU_FROM_AAU, U.ERU_FROM_RMU, U.CER})
#: A Party with no assigned amount recorded for a period has no reserve to keep (O):
#: the reserve is a share of the assigned amount, and CER-only holders transfer freely.
RESERVE_WITHOUT_ASSIGNED_AMOUNT = 0


@dataclass(frozen=True)
class PartyPeriod:
    """What the ITL records about one Party for one commitment period.

    Quantities in units (t CO2 eq): ``assigned_amount``; ``reviewed_inventory`` is the
    latest reviewed annual inventory (t CO2 eq per year, reserve); ``average_emissions_
    2008_2010`` per year (Art. 3.7ter, second period); ``base_year_emissions`` per year
    (A/R CDM limit, forest management cap); ``period_emissions`` the reviewed total over
    the period (PPSR retirement); ``rmu_net_removals`` the reviewed net removals per
    LULUCF activity code over the period; ``forest_management_cap`` a recorded cap.
    """

    party: str
    commitment_period: int
    assigned_amount: int
    reviewed_inventory: int | None = None
    average_emissions_2008_2010: int | None = None
    base_year_emissions: int | None = None
    period_emissions: int | None = None
    rmu_net_removals: Mapping[int, int] = field(default_factory=dict)
    forest_management_cap: int | None = None

    @property
    def article_37ter(self) -> int:
        """Assigned amount to cancel under Art. 3.7ter (0 outside the second period)."""
        return article_37ter_quantity(self.commitment_period, self.assigned_amount,
                                      self.average_emissions_2008_2010)

    @property
    def net_assigned_amount(self) -> int:
        return self.assigned_amount - self.article_37ter

    @property
    def reserve(self) -> int:
        """The commitment period reserve (``shared.rules.periods``)."""
        return commitment_period_reserve(self.commitment_period, self.assigned_amount,
                                         self.reviewed_inventory, self.article_37ter)

    def rmu_limit(self, activity: int) -> int:
        """RMUs the Party may issue for one LULUCF activity in the period."""
        cap = forest_management_cap(self.commitment_period, self.base_year_emissions,
                                    self.forest_management_cap)
        return rmu_issuance_limit(activity, self.rmu_net_removals.get(activity), cap)


class LedgerKey(StrEnum):
    """Counters the ITL keeps per Party and period, in units."""

    ARTICLE_37TER_CANCELLED = "article_37ter_cancelled"
    PPSR_ACQUIRED = "ppsr_acquired"
    PPSR_RETIRED = "ppsr_retired"
    AR_CDM_ACQUIRED = "ar_cdm_acquired"
    SOP_FIRST_TRANSFER_BASE = "sop_first_transfer_base"
    SOP_FIRST_TRANSFER_PENDING = "sop_first_transfer_pending"
    SOP_FIRST_TRANSFER_LEVIED = "sop_first_transfer_levied"
    SOP_CONVERSION_BASE = "sop_eru_conversion_base"
    SOP_CONVERSION_LEVIED = "sop_eru_conversion_levied"
    CARRIED_OVER_CER = "carried_over_cer"
    CARRIED_OVER_ERU = "carried_over_eru_from_aau"


CARRIED_OVER_KEY = {U.CER: LedgerKey.CARRIED_OVER_CER,
                    U.ERU_FROM_AAU: LedgerKey.CARRIED_OVER_ERU}


@dataclass(frozen=True)
class LedgerEntry:
    """One change to a Party's counter for a period."""

    party: str
    period: int
    key: LedgerKey
    quantity: int

    def reversed(self) -> LedgerEntry:
        return replace(self, quantity=-self.quantity)


@dataclass(frozen=True)
class PartyBooks:
    """What the ITL keeps on one Party: standing, period records and counters."""

    standing: PartyStanding
    periods: Mapping[int, PartyPeriod] = field(default_factory=dict)
    ledgers: Mapping[int, Mapping[str, int]] = field(default_factory=dict)

    @property
    def code(self) -> str:
        return self.standing.code

    def count(self, period: int, key: LedgerKey) -> int:
        return int(self.ledgers.get(period, {}).get(key.value, 0))

    def share_of_proceeds_owed(self, period: int) -> tuple[int, int]:
        """Units owed on first transfers of AAUs and on ERU conversions (never negative:
        overpayment is credit)."""
        first = (share_of_proceeds_due(period, self.count(period,
                                                          LedgerKey.SOP_FIRST_TRANSFER_BASE))
                 - self.count(period, LedgerKey.SOP_FIRST_TRANSFER_LEVIED))
        conversion = (share_of_proceeds_due(period, self.count(period,
                                                               LedgerKey.SOP_CONVERSION_BASE))
                      - self.count(period, LedgerKey.SOP_CONVERSION_LEVIED))
        return max(0, first), max(0, conversion)


def _kind(proposal: ProposalView) -> TransferKind | None:
    rule = proposal.rule
    return rule.kind if rule else None


# eligibility (4006)


def check_eligibility(proposal: ProposalView, proposer: PartyBooks | None,
                      acquiring: PartyBooks | None) -> None:
    """Parties' eligibility to use the mechanisms and their second-period commitment
    (protocol.md 3.1, 4.4; 4006). ``None`` stands for the CDM registry.

    A Party without a commitment for a period neither transfers nor acquires units valid
    for it, and neither issues, converts, carries over into, retires nor cancels them:
    it has no assigned amount of that period to hold them against."""
    kind = _kind(proposal)
    units = [b.attributes for b in proposal.blocks]
    reasons: list[str] = []
    if proposer is not None and kind not in (K.EXTERNAL_TRANSFER, K.PPSR_TRANSFER):
        shift = 1 if proposal.transaction_type == T.CARRY_OVER else 0
        refuse_if_any([Discrepancy(ResponseCode.PARTY_NOT_ELIGIBLE, r)
                       for r in commitment_breaches(proposer.standing, {
                           a.applicable_commitment_period + shift for a in units})])
    if kind in (K.EXTERNAL_TRANSFER, K.PPSR_TRANSFER):
        reasons = transfer_eligibility_breaches(
            proposer.standing if proposer else None,
            acquiring.standing if acquiring else None, units)
    elif kind == K.CONVERSION and proposer is not None:
        reasons = conversion_eligibility_breaches(proposer.standing, proposal.track)
    elif kind in (K.RETIREMENT, K.PPSR_RETIREMENT) and proposer is not None:
        reasons = retirement_eligibility_breaches(proposer.standing, units)
    refuse_if_any([Discrepancy(ResponseCode.PARTY_NOT_ELIGIBLE, r) for r in reasons])


# issuance (4001, 4012)


def aau_issuance_by_period(proposal: ProposalView) -> dict[int, int]:
    """AAUs an issuance creates, per original commitment period."""
    quantities: dict[int, int] = defaultdict(int)
    if proposal.transaction_type == T.ISSUANCE:
        for block in proposal.blocks:
            if block.attributes.unit_type == U.AAU:
                quantities[block.attributes.original_commitment_period] += block.quantity
    return dict(quantities)


def rmu_issuance_by_activity(proposal: ProposalView) -> dict[tuple[int, int], int]:
    """RMUs an issuance creates, per (original commitment period, LULUCF activity)."""
    quantities: dict[tuple[int, int], int] = defaultdict(int)
    if proposal.transaction_type == T.ISSUANCE:
        for block in proposal.blocks:
            a = block.attributes
            if a.unit_type == U.RMU and a.lulucf_activity is not None:
                quantities[(a.original_commitment_period, a.lulucf_activity)] += block.quantity
    return dict(quantities)


def check_aau_issuance_limit(party: str, period: int, record: PartyPeriod | None,
                             issued: int, cancelled_37ter: int, quantity: int) -> None:
    """AAU issuance stays within the assigned amount recorded for the period, reduced by
    the Art. 3.7ter quantity until that is cancelled (``aau_issuance_room``; 4001).
    No recorded assigned amount means no AAU can be issued for that period."""
    if record is None:
        refuse(ResponseCode.ISSUANCE_OVER_LIMIT,
               f"no assigned amount recorded for {party} in period {period}")
        return
    room = aau_issuance_room(record.assigned_amount, record.article_37ter, issued,
                             cancelled_37ter)
    if quantity > room:
        reason = (f"{party} may issue {max(room, 0)} more AAUs of period {period}, not "
                  f"{quantity}: assigned amount {record.assigned_amount}, issued {issued}")
        if record.article_37ter:
            reason += (f", Art. 3.7ter quantity {record.article_37ter} of which "
                       f"{cancelled_37ter} cancelled")
        refuse(ResponseCode.ISSUANCE_OVER_LIMIT, reason)


def check_rmu_issuance_limit(party: str, period: int, activity: int,
                             record: PartyPeriod | None, issued: int, quantity: int) -> None:
    """RMUs per LULUCF activity within the reviewed net removals, forest management
    within its cap, none for deforestation (``shared.rules.periods``; 4001)."""
    limit = record.rmu_limit(activity) if record else 0
    if issued + quantity > limit:
        refuse(ResponseCode.ISSUANCE_OVER_LIMIT,
               f"{party} would have {issued + quantity} RMUs of period {period} for LULUCF "
               f"activity {activity}, over its limit of {limit}")


def check_issued_expiry(proposal: ProposalView) -> None:
    """tCERs are issued expiring at the end of the period after theirs; lCERs need an
    expiry date (their crediting period's end, which the CDM registry checks) (4012,
    2001; R 5/CMP.1 annex section K)."""
    if proposal.transaction_type != T.ISSUANCE:
        return
    for block in proposal.blocks:
        a = block.attributes
        if a.unit_type not in TEMPORARY_UNIT_TYPES:
            continue
        if a.expiry_date is None:
            refuse(ResponseCode.MISSING_FIELD, f"{a.unit_type.name} are issued with an "
                   "expiry date", block)
        expected = temporary_unit_expiry(a.unit_type, a.original_commitment_period, None)
        if expected is not None and a.expiry_date != expected:
            refuse(ResponseCode.EXPIRY_DATE_CONTRADICTS_RULE,
                   f"tCERs of period {a.original_commitment_period} expire on {expected}, "
                   f"not {a.expiry_date}", block)


def check_new_expiry_date(proposal: ProposalView, today: date) -> None:
    """An expiry date change sets a date still to come: a date in the past would end the
    units at once, for good (4012)."""
    new = proposal.new_expiry_date
    if proposal.transaction_type == T.EXPIRY_DATE_CHANGE and new is not None and new < today:
        refuse(ResponseCode.EXPIRY_DATE_CONTRADICTS_RULE,
               f"the new expiry date {new} is in the past (today is {today})")


def check_not_expired(proposal: ProposalView, today: date) -> None:
    """tCERs and lCERs past their expiry date can no longer move (3007)."""
    refuse_if_any([
        Discrepancy(ResponseCode.UNIT_EXPIRED,
                    f"{b.attributes.unit_type.name} block {b.serials.start}-{b.serials.end} "
                    f"expired on {b.attributes.expiry_date}", b)
        for b in proposal.blocks
        if b.attributes.expiry_date is not None and b.attributes.expiry_date < today
    ])


@dataclass(frozen=True)
class JiProject:
    """A JI project as the ITL knows it (track 2 data comes from the JISC)."""

    project_id: str
    host_party: str
    track: int
    approved_quantity: int
    converted: int = 0


def check_conversion(proposal: ProposalView, project: JiProject | None) -> None:
    """Track 2 conversions need a JISC-approved project with quantity left (4002)."""
    if proposal.track != 2:
        return
    if project is None or project.track != 2:
        refuse(ResponseCode.CONVERSION_WITHOUT_PROJECT,
               f"JI project {proposal.project_id} has no JISC determination at the ITL")
        return
    if project.host_party != proposal.acquiring.registry:
        refuse(ResponseCode.CONVERSION_WITHOUT_PROJECT,
               f"JI project {project.project_id} is hosted by {project.host_party}")
    if project.converted + proposal.quantity > project.approved_quantity:
        refuse(ResponseCode.CONVERSION_WITHOUT_PROJECT,
               f"JI project {project.project_id} would have "
               f"{project.converted + proposal.quantity} ERUs, over the "
               f"{project.approved_quantity} the JISC approved")


# carry-over (4015, 4003)


def check_carry_over(proposal: ProposalView, today: date,
                     true_up_ends: Mapping[int, date], books: PartyBooks) -> None:
    """Carry-over only after the true-up period of the units' period has ended (4015),
    CERs and ERUs each within 2.5 % of that period's assigned amount (4003)."""
    if proposal.transaction_type != T.CARRY_OVER:
        return
    for period in sorted(proposal.quantity_by("applicable")):
        if not true_up_ended(period, today, true_up_ends):
            end = true_up_ends.get(period)
            refuse(ResponseCode.TRUE_UP_PERIOD_NOT_ENDED,
                   f"units of period {period} are carried over only after the additional "
                   f"period for fulfilling commitments ends ({end or 'not configured'})")
    (unit_type,) = proposal.unit_types
    key = CARRIED_OVER_KEY.get(unit_type)
    if key is None:
        return
    for period, quantity in sorted(proposal.quantity_by("applicable").items()):
        record = books.periods.get(period)
        if record is None:
            refuse(ResponseCode.CARRY_OVER_OVER_LIMIT,
                   "no assigned amount recorded, so no CER or ERU carry-over limit")
            return
        limit = carry_over_limit(record.assigned_amount)
        carried = books.count(period, key)
        if carried + quantity > limit:
            refuse(ResponseCode.CARRY_OVER_OVER_LIMIT,
                   f"{carried + quantity} {unit_type.name} carried over would exceed 2.5 % "
                   f"of the assigned amount ({limit})")


# Art. 3.7ter (4010)


def check_article_37ter(proposal: ProposalView, books: PartyBooks) -> None:
    """An Art. 3.7ter cancellation stays within the quantity the assigned amount exceeds
    eight times the 2008-2010 average emissions (4010)."""
    if _kind(proposal) != K.ARTICLE_37TER_CANCELLATION:
        return
    record = books.periods.get(2)
    quantity = record.article_37ter if record else 0
    cancelled = books.count(2, LedgerKey.ARTICLE_37TER_CANCELLED)
    room = article_37ter_room(quantity, cancelled)
    if proposal.quantity > room:
        refuse(ResponseCode.ARTICLE_37TER_OVER_QUANTITY,
               f"{books.code} has {room} AAUs left to cancel under Art. 3.7ter "
               f"(quantity {quantity}, cancelled {cancelled}), not {proposal.quantity}")


# the previous period surplus reserve (4008, 4009)


def check_ppsr(proposal: ProposalView, proposer: PartyBooks,
               acquiring: PartyBooks | None) -> None:
    """PPSR units go into another Party's PPSR within 2 % of that Party's first-period
    assigned amount (4008), or are retired up to the Party's excess emissions (4009)."""
    kind = _kind(proposal)
    if kind == K.PPSR_TRANSFER and acquiring is not None:
        first = acquiring.periods.get(1)
        limit = ppsr_acquisition_limit(first.assigned_amount if first else None)
        acquired = acquiring.count(2, LedgerKey.PPSR_ACQUIRED)
        if acquired + proposal.quantity > limit:
            refuse(ResponseCode.PPSR_ACQUISITION_OVER_LIMIT,
                   f"{acquiring.code} would acquire {acquired + proposal.quantity} PPSR "
                   f"units, over 2 % of its first-period assigned amount ({limit})")
    if kind == K.PPSR_RETIREMENT:
        record = proposer.periods.get(2)
        limit = ppsr_retirement_limit(record.period_emissions if record else None,
                                      record.net_assigned_amount if record else None)
        retired = proposer.count(2, LedgerKey.PPSR_RETIRED)
        if retired + proposal.quantity > limit:
            refuse(ResponseCode.PPSR_RETIREMENT_OVER_EXCESS_EMISSIONS,
                   f"{proposer.code} would retire {retired + proposal.quantity} PPSR units, "
                   f"over its excess emissions of {limit}")


# A/R CDM credits (4011)


def _temporary_by_period(proposal: ProposalView) -> dict[int, int]:
    quantities: dict[int, int] = defaultdict(int)
    for b in proposal.blocks:
        if b.attributes.unit_type in TEMPORARY_UNIT_TYPES:
            quantities[b.attributes.applicable_commitment_period] += b.quantity
    return dict(quantities)


def acquires_ar_cdm_credits(proposal: ProposalView) -> bool:
    """An external transfer that brings tCERs or lCERs into a Party."""
    return (_kind(proposal) == K.EXTERNAL_TRANSFER and proposal.acquiring.registry != CDM_CODE
            and bool(_temporary_by_period(proposal)))


def check_ar_cdm_limit(proposal: ProposalView, acquiring: PartyBooks | None) -> None:
    """tCERs and lCERs a Party acquires stay within 1 % of its base-year emissions times
    the years of the period (4011)."""
    if acquiring is None or not acquires_ar_cdm_credits(proposal):
        return
    for period, quantity in sorted(_temporary_by_period(proposal).items()):
        record = acquiring.periods.get(period)
        limit = ar_cdm_limit(period, record.base_year_emissions if record else None)
        acquired = acquiring.count(period, LedgerKey.AR_CDM_ACQUIRED)
        if acquired + quantity > limit:
            refuse(ResponseCode.AR_CDM_LIMIT_EXCEEDED,
                   f"{acquiring.code} would hold {acquired + quantity} tCERs/lCERs of period "
                   f"{period} acquired, over its limit of {limit}")


# share of proceeds (4007)


def check_share_of_proceeds(proposal: ProposalView, proposer: PartyBooks) -> None:
    """A Party that owes share of proceeds for a period, on its completed first transfers
    of AAUs or its ERU conversions, transfers no more AAUs or ERUs of that period abroad
    until it has paid (4007; R 1/CMP.8 para 21).

    A registry proposes the share of a first transfer before it reports the transfer
    completed, so the ITL counts the share first and a registry that pays is never
    refused. Transfers to the CDM registry (the shares themselves, notices 6, 12, 13)
    are obligations and go ahead."""
    if _kind(proposal) != K.EXTERNAL_TRANSFER or proposal.acquiring.registry == CDM_CODE:
        return
    owing = {U.AAU, U.ERU_FROM_AAU, U.ERU_FROM_RMU}
    periods = {b.attributes.original_commitment_period for b in proposal.blocks
               if b.attributes.unit_type in owing}
    for period in sorted(periods):
        first, conversion = proposer.share_of_proceeds_owed(period)
        if first or conversion:
            refuse(ResponseCode.SHARE_OF_PROCEEDS_OWED,
                   f"{proposer.code} owes the Adaptation Fund {first} AAUs on first "
                   f"transfers and {conversion} ERUs on conversions of period {period}")


def _first_transfers(proposal: ProposalView) -> dict[int, int]:
    """AAUs of each period a transfer to another Party takes abroad for the first time."""
    quantities: dict[int, int] = defaultdict(int)
    if _kind(proposal) == K.EXTERNAL_TRANSFER and proposal.acquiring.registry != CDM_CODE:
        for b in proposal.blocks:
            if is_first_international_transfer(b.attributes, proposal.proposing_registry):
                quantities[b.attributes.original_commitment_period] += b.quantity
    return dict(quantities)


# commitment period reserve (5001)


def needs_cpr_check(proposal: ProposalView) -> bool:
    """Only transfers out of a Party's registry to another Party; the CDM registry keeps
    no reserve, and obligations to the CDM registry (share of proceeds, notices 6, 12,
    13) are not sales (O)."""
    return (proposal.is_external and proposal.proposer_is_party
            and proposal.acquiring.registry != CDM_CODE)


def cpr_units_leaving_by_period(proposal: ProposalView, books: PartyBooks | None = None
                                ) -> dict[int, int]:
    """Units that count for the CPR and leave with the proposal, per applicable period;
    with the Party's ``books``, a first transfer of AAUs also counts the share of proceeds
    still to leave: what it will owe and what approved first transfers not yet levied
    owe (O: the share leaves the Party too, so no transfer, nor two at once, may take
    holdings to the reserve and leave their shares to breach it). Shares already
    proposed are out of the holdings already."""
    quantities: dict[int, int] = defaultdict(int)
    for block in proposal.blocks:
        if block.attributes.unit_type in CPR_UNIT_TYPES:
            quantities[block.attributes.applicable_commitment_period] += block.quantity
    for period, quantity in _first_transfers(proposal).items() if books else ():
        assert books is not None
        base = (books.count(period, LedgerKey.SOP_FIRST_TRANSFER_BASE)
                + books.count(period, LedgerKey.SOP_FIRST_TRANSFER_PENDING) + quantity)
        levied = books.count(period, LedgerKey.SOP_FIRST_TRANSFER_LEVIED)
        quantities[period] += max(0, share_of_proceeds_due(period, base) - levied)
    return dict(quantities)


def check_commitment_period_reserve(
    party: str, period: int, holdings: int, leaving: int, reserve: int
) -> None:
    """Holdings after the transfer must not fall below the reserve (5001)."""
    after = holdings - leaving
    if after < reserve:
        refuse(ResponseCode.CPR_VIOLATED,
               f"{party} would hold {after} units of period {period}, below its commitment "
               f"period reserve of {reserve}")


# ledgers


def approval_effects(proposal: ProposalView) -> list[LedgerEntry]:
    """Counters a transaction takes up when the ITL approves it, so that a second
    proposal checked before it completes sees them; undone if it fails later."""
    kind = _kind(proposal)
    proposer, q = proposal.proposing_registry, proposal.quantity
    entries: list[LedgerEntry] = []
    if kind == K.ARTICLE_37TER_CANCELLATION:
        entries.append(LedgerEntry(proposer, 2, LedgerKey.ARTICLE_37TER_CANCELLED, q))
    elif kind == K.CARRY_OVER_CER_ERU:
        for period, quantity in proposal.quantity_by("applicable").items():
            (unit_type,) = proposal.unit_types
            entries.append(LedgerEntry(proposer, period, CARRIED_OVER_KEY[unit_type],
                                       quantity))
    elif kind == K.PPSR_TRANSFER:
        entries.append(LedgerEntry(proposal.acquiring.registry, 2, LedgerKey.PPSR_ACQUIRED, q))
    elif kind == K.PPSR_RETIREMENT:
        entries.append(LedgerEntry(proposer, 2, LedgerKey.PPSR_RETIRED, q))
    elif kind in (K.SOP_FIRST_TRANSFER_OF_AAU, K.SOP_ERU_CONVERSION):
        key = (LedgerKey.SOP_FIRST_TRANSFER_LEVIED if kind == K.SOP_FIRST_TRANSFER_OF_AAU
               else LedgerKey.SOP_CONVERSION_LEVIED)
        for period, quantity in proposal.quantity_by("original").items():
            entries.append(LedgerEntry(proposer, period, key, quantity))
    if acquires_ar_cdm_credits(proposal):
        for period, quantity in _temporary_by_period(proposal).items():
            entries.append(LedgerEntry(proposal.acquiring.registry, period,
                                       LedgerKey.AR_CDM_ACQUIRED, quantity))
    entries += [LedgerEntry(proposer, period, LedgerKey.SOP_FIRST_TRANSFER_PENDING, quantity)
                for period, quantity in _first_transfers(proposal).items()]
    return entries


def completion_effects(proposal: ProposalView) -> list[LedgerEntry]:
    """Counters a transaction adds once it has completed: the base of the share of
    proceeds (AAUs first transferred abroad, no longer pending; ERUs issued by
    conversion), owed from then on."""
    entries = [entry for period, quantity in _first_transfers(proposal).items()
               for entry in (LedgerEntry(proposal.proposing_registry, period,
                                         LedgerKey.SOP_FIRST_TRANSFER_BASE, quantity),
                             LedgerEntry(proposal.proposing_registry, period,
                                         LedgerKey.SOP_FIRST_TRANSFER_PENDING, -quantity))]
    by_period: dict[int, int] = defaultdict(int)
    if _kind(proposal) == K.CONVERSION:
        for b in proposal.blocks:
            if levies_on_conversion(b.attributes):
                by_period[b.attributes.original_commitment_period] += b.quantity
    return entries + [LedgerEntry(proposal.proposing_registry, p,
                                  LedgerKey.SOP_CONVERSION_BASE, q)
                      for p, q in by_period.items()]


def entries_to_docs(entries: Iterable[LedgerEntry]) -> list[dict[str, object]]:
    return [{"party": e.party, "period": e.period, "key": e.key.value,
             "quantity": e.quantity} for e in entries]


def entries_from_docs(docs: Iterable[Mapping[str, object]]) -> list[LedgerEntry]:
    return [LedgerEntry(str(d["party"]), int(str(d["period"])), LedgerKey(str(d["key"])),
                        int(str(d["quantity"]))) for d in docs]
