"""The Standard Electronic Format (SEF) annual report of a Party's registry, computed from
transactions (protocol.md section 6): what the registry and the ITL each hold in their
transaction log, never counters kept on the side.

Pure Python: no I/O, no clock. The input is the stored transactions (``movements_of``
reads the documents of either store: both keep the wire ``proposal``, the ``status``,
its ``history`` and the ``evaluation_results``) and the notices; the output a ``Report``
of tables of cells (table, row, column) -> units.

How a transaction becomes a row is the one table ``ROWS`` below plus the account-type
rows of tables 1 and 4 (``ACCOUNT_ROWS``); where protocol.md marks the assignment
unverified (U, section 6.1), these are our choices (docs/adr/0031).

Quantities are units (one unit = one tonne CO2 equivalent). A unit counts for the
report of commitment period P when it is valid for P (its applicable period); a unit
carried over leaves P's report (row ``CarryOverToNextPeriod`` of table 2a, ours) and
enters P+1's (starting value ``CarryOver``/``CarryOverPPSR``, table 5a).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from shared.blocks import UnitBlock, UnitChange
from shared.codes import (
    AccountType,
    NoticeType,
    SupplementaryType,
    TransactionStatus,
    TransactionType,
    UnitType,
)
from shared.contracts import ProposalForwarded, block_from_wire
from shared.rules.periods import FOLLOWING_PERIOD_YEARS

A = AccountType
T = TransactionType

#: The namespace of each SEF version (V UK-SEF): 1.0 for the first period, 2.0 for the
#: second.
NAMESPACE = {1: "urn:KyotoProtocol:RegistrySystem:SEF:1.0:0.0",
             2: "urn:KyotoProtocol:RegistrySystem:SEF:2.0:0.0"}
VERSION = {1: "1.0", 2: "2.0"}

#: Unit columns (V UK-SEF labels): ERUs converted from AAUs and from RMUs are summed.
UNITS = ("AAU", "ERU", "RMU", "CER", "tCER", "lCER")
UNIT_COLUMN = {UnitType.AAU: "AAU", UnitType.RMU: "RMU", UnitType.ERU_FROM_AAU: "ERU",
               UnitType.ERU_FROM_RMU: "ERU", UnitType.CER: "CER", UnitType.TCER: "tCER",
               UnitType.LCER: "lCER"}
#: Columns of the transaction tables (2a, 2b, 2c, 2e, 5b, 5c): additions, then
#: subtractions, per unit column.
FLOW_COLUMNS = tuple(f"{side}/{unit}" for side in ("Additions", "Subtractions")
                     for unit in UNITS)
#: Columns of table 2d (share of proceeds; V UK-SEF AmountTransferred/AmountContributed).
PROCEEDS_COLUMNS = ("AmountTransferred", "AmountContributed")

#: Holding accounts: the units a Party may still use. Tables 1 and 4 rows of these
#: types are "holdings"; the others (cancellation, retirement, replacement) only fill.
HOLDING_TYPES = frozenset({A.PARTY_HOLDING, A.PENDING, A.FORMER_OPERATOR_HOLDING,
                           A.PERSON_HOLDING, A.PREVIOUS_PERIOD_SURPLUS_RESERVE})

# --- the one table of rows (protocol.md 6.1/6.2; row names from UK-SEF's enumerations) ---

#: Tables 1 and 4: the account-type row of each account type, per SEF version. SEF 1.0
#: has 10 rows (V W-SEF, UK-SEF), SEF 2.0 18 (V UK-SEF). Assignment of our types to
#: rows where the labels leave it open (U; docs/adr/0031): pending (110) and former
#: operator (120) accounts are entity holdings; in 2.0 the mandatory cancellation
#: account (250, notices 4 and 5) is the lCER cancellation account for reversal of
#: storage, the administrative cancellation account (260) the cancellation account for
#: remaining units after carry-over, and the CDM registry's 240-242 go there too; in 1.0
#: every cancellation account without a row of its own is "other cancellation".
ACCOUNT_ROWS: dict[int, tuple[tuple[str, frozenset[AccountType]], ...]] = {
    1: (
        ("PartyHolding", frozenset({A.PARTY_HOLDING})),
        ("EntityHolding", frozenset({A.PENDING, A.FORMER_OPERATOR_HOLDING, A.PERSON_HOLDING,
                                     A.PREVIOUS_PERIOD_SURPLUS_RESERVE})),
        ("NetSourceCancellation", frozenset({A.NET_SOURCE_CANCELLATION})),
        ("NonComplianceCancellation", frozenset({A.NON_COMPLIANCE_CANCELLATION})),
        ("OtherCancellationAccounts", frozenset({
            A.VOLUNTARY_CANCELLATION, A.EXCESS_ISSUANCE_CANCELLATION,
            A.CCS_NET_REVERSAL_CANCELLATION, A.CCS_NON_SUBMISSION_CANCELLATION,
            A.MANDATORY_CANCELLATION, A.ADMINISTRATIVE_CANCELLATION,
            A.ARTICLE_37TER_CANCELLATION, A.AMBITION_INCREASE_CANCELLATION})),
        ("RetirementAccount", frozenset({A.RETIREMENT})),
        ("tCERReplacementForExpiry", frozenset({A.TCER_REPLACEMENT_EXPIRY})),
        ("lCERReplacementForExpiry", frozenset({A.LCER_REPLACEMENT_EXPIRY})),
        ("lCERReplacementForReversalOfStorage", frozenset({A.LCER_REPLACEMENT_REVERSAL})),
        ("lCERReplacementForNonSubmissionCertReport",
         frozenset({A.LCER_REPLACEMENT_NON_SUBMISSION})),
    ),
    2: (
        ("PartyHolding", frozenset({A.PARTY_HOLDING})),
        ("EntityHolding", frozenset({A.PENDING, A.FORMER_OPERATOR_HOLDING, A.PERSON_HOLDING})),
        ("PreviousPeriodSurplusReserveAccount", frozenset({A.PREVIOUS_PERIOD_SURPLUS_RESERVE})),
        ("NetSourceCancellation", frozenset({A.NET_SOURCE_CANCELLATION})),
        ("NonComplianceCancellation", frozenset({A.NON_COMPLIANCE_CANCELLATION})),
        ("VoluntaryCancellationAccount", frozenset({A.VOLUNTARY_CANCELLATION})),
        ("CancellationAccountForRemainingUnitsAfterCarryover", frozenset({
            A.ADMINISTRATIVE_CANCELLATION, A.EXCESS_ISSUANCE_CANCELLATION,
            A.CCS_NET_REVERSAL_CANCELLATION, A.CCS_NON_SUBMISSION_CANCELLATION})),
        ("Art31TerQuaterAmbitionIncreaseCancellationAccount",
         frozenset({A.AMBITION_INCREASE_CANCELLATION})),
        ("Art37TerCancellationAccount", frozenset({A.ARTICLE_37TER_CANCELLATION})),
        ("tCERCancellationAccountForExpiry", frozenset()),
        ("lCERCancellationAccountForExpiry", frozenset()),
        ("lCERCancellationAccountForReversalOfStorage", frozenset({A.MANDATORY_CANCELLATION})),
        ("lCERCancellationAccountForNonSubmissionCertReport", frozenset()),
        ("RetirementAccount", frozenset({A.RETIREMENT})),
        ("tCERReplacementForExpiry", frozenset({A.TCER_REPLACEMENT_EXPIRY})),
        ("lCERReplacementForExpiry", frozenset({A.LCER_REPLACEMENT_EXPIRY})),
        ("lCERReplacementForReversalOfStorage", frozenset({A.LCER_REPLACEMENT_REVERSAL})),
        ("lCERReplacementForNonSubmissionCertReport",
         frozenset({A.LCER_REPLACEMENT_NON_SUBMISSION})),
    ),
}

#: Table 2a rows per version, in order: 13 transaction rows in 1.0 (V UK-SEF row count),
#: the 2.0 additions (WDR, voluntary, ambition increase and the lCER cancellations), and
#: ours: carry-over to the next period (a subtraction of the period's units, O).
ROWS_2A: dict[int, tuple[str, ...]] = {
    1: ("IssuanceConversionOfPartyVerifiedProjects", "IndependentlyVerifiedProjects",
        "Art33AfforestationReforestation", "Art33Deforestation", "Art34ForestManagement",
        "Art34CropLandManagement", "Art34GrazingLandManagement", "Art34Revegetation",
        "ReplacementExpiredtCERs", "ReplacementExpiredlCERs",
        "ReplacementForReversalOfStorage", "ReplacementForNonSubmissionOfCertReport",
        "OtherCancellation", "CarryOverToNextPeriod"),
    2: ("IssuanceConversionOfPartyVerifiedProjects", "IndependentlyVerifiedProjects",
        "Art33AfforestationReforestation", "Art33Deforestation", "Art34ForestManagement",
        "Art34CropLandManagement", "Art34GrazingLandManagement", "Art34Revegetation",
        "Art34WetLandDrainageRewetting", "ReplacementExpiredtCERs", "ReplacementExpiredlCERs",
        "ReplacementForReversalOfStorage", "CancellationForReversalOfStorage",
        "ReplacementForNonSubmissionOfCertReport", "CancellationForNonSubmissionOfCertReport",
        "VoluntaryCancellation", "Art31TerQuaterAmbitionIncreaseCancellation",
        "OtherCancellation", "CarryOverToNextPeriod"),
}
#: Retirement rows of table 2a (after its subtotal): 2.0 splits retirement from the
#: previous period surplus reserve (V UK-SEF RetirementTypeEnum).
RETIREMENT_ROWS = {1: ("Retirement",), 2: ("Retirement", "RetirementFromPPSR")}

#: Art. 3.3/3.4 row of RMUs issued (or cancelled for net source) for a LULUCF activity.
ACTIVITY_ROW = {1: "Art33AfforestationReforestation", 2: "Art33Deforestation",
                3: "Art34ForestManagement", 4: "Art34CropLandManagement",
                5: "Art34GrazingLandManagement", 6: "Art34Revegetation",
                7: "Art34WetLandDrainageRewetting"}
#: Conversion (ERU issuance) by JI track: 1 Party-verified, 2 independently verified.
TRACK_ROW = {1: "IssuanceConversionOfPartyVerifiedProjects", 2: "IndependentlyVerifiedProjects"}
#: Replacement rows by the replacement account the replacing units go to.
REPLACEMENT_ROW = {A.TCER_REPLACEMENT_EXPIRY: "ReplacementExpiredtCERs",
                   A.LCER_REPLACEMENT_EXPIRY: "ReplacementExpiredlCERs",
                   A.LCER_REPLACEMENT_REVERSAL: "ReplacementForReversalOfStorage",
                   A.LCER_REPLACEMENT_NON_SUBMISSION: "ReplacementForNonSubmissionOfCertReport"}
#: Cancellation rows by the cancellation account (2.0 / 1.0). ``None``: not a 2a row
#: but a starting value of table 5a (Art. 3.7ter). Net source cancellation of RMUs goes
#: to the row of their activity (U).
CANCELLATION_ROW: dict[int, dict[AccountType, str | None]] = {
    2: {A.NET_SOURCE_CANCELLATION: "OtherCancellation",
        A.NON_COMPLIANCE_CANCELLATION: "OtherCancellation",
        A.VOLUNTARY_CANCELLATION: "VoluntaryCancellation",
        A.MANDATORY_CANCELLATION: "CancellationForReversalOfStorage",
        A.ADMINISTRATIVE_CANCELLATION: "OtherCancellation",
        A.ARTICLE_37TER_CANCELLATION: None,
        A.AMBITION_INCREASE_CANCELLATION: "Art31TerQuaterAmbitionIncreaseCancellation"},
    1: {A.ARTICLE_37TER_CANCELLATION: None},
}
#: A mandatory cancellation (250) answering notice 5 is the non-submission row (2.0).
CANCELLATION_ROW_BY_NOTICE = {NoticeType.REVERSAL_OF_STORAGE: "CancellationForReversalOfStorage",
                              NoticeType.NON_SUBMISSION_OF_CERTIFICATION_REPORT:
                                  "CancellationForNonSubmissionOfCertReport"}

#: Table 3 rows (12 event rows, V W-SEF page 5, UK-SEF), in order.
ROWS_3 = ("tCERsExpiredInRetirementAndReplacementAccounts", "tCERsExpiredInHoldingAccounts",
          "lCERsExpiredInRetirementAndReplacementAccounts", "lCERsExpiredInHoldingAccounts",
          "SubjectToReplacementForReversalOfStorage",
          "SubjectToReplacementForNonSubmissionOfCertReport",
          "ReplacementOfExpiredtCERs", "CancellationOftCERsExpiredInHoldingAccounts",
          "ReplacementOfExpiredlCERs", "CancellationOflCERsExpiredInHoldingAccounts",
          "ReplacementForReversalOfStorage", "ReplacementForNonSubmissionOfCertReport")
REPLACEMENT_ROW_3 = {A.TCER_REPLACEMENT_EXPIRY: "ReplacementOfExpiredtCERs",
                     A.LCER_REPLACEMENT_EXPIRY: "ReplacementOfExpiredlCERs",
                     A.LCER_REPLACEMENT_REVERSAL: "ReplacementForReversalOfStorage",
                     A.LCER_REPLACEMENT_NON_SUBMISSION: "ReplacementForNonSubmissionOfCertReport"}
SUBJECT_ROW_3 = {NoticeType.REVERSAL_OF_STORAGE: "SubjectToReplacementForReversalOfStorage",
                 NoticeType.NON_SUBMISSION_OF_CERTIFICATION_REPORT:
                     "SubjectToReplacementForNonSubmissionOfCertReport"}

#: Table 5a starting values (V UK-SEF StartingValueEnum), cumulative over the period to
#: the end of the reported year.
STARTING_VALUES = ("AssignedAmountUnitsIssued", "Art3Par7TerCancellations", "CarryOver",
                   "CarryOverPPSR")
#: Table 2d rows (V UK-SEF AdaptationFundTypeEnum).
ROWS_2D = ("FirstInternationalTransfersOfAAU", "IssuanceERUFromPartyVerifiedProjects",
           "IssuanceIndependentlyVerifiedERU")
PROCEEDS_ROW_OF_TRACK = {1: "IssuanceERUFromPartyVerifiedProjects",
                         2: "IssuanceIndependentlyVerifiedERU"}

#: The tables of each version, in order (protocol.md 6.1, 6.2).
TABLES = {1: ("1", "2a", "2b", "2c", "3", "4", "5a", "5b", "5c", "6a", "6b", "6c"),
          2: ("1", "2a", "2b", "2c", "2d", "2e", "3", "4", "5a", "5b", "5c", "5d", "5e",
              "6a", "6b", "6c")}
TITLES = {
    "1": "Total quantities of units by account type at beginning of reported year",
    "2a": "Annual internal transactions",
    "2b": "Annual external transactions",
    "2c": "Total annual transactions",
    "2c-ppsr": "Annual transactions in the previous period surplus reserve",
    "2d": "Share of proceeds to the Adaptation Fund",
    "2e": "Total annual transactions",
    "3": "Expiry, cancellation and replacement",
    "4": "Total quantities of units by account type at end of reported year",
    "5a": "Summary information on additions and subtractions",
    "5a-1": "Summary information on additions and subtractions (starting values, annual "
            "transactions)",
    "5b": "Summary information on annual transactions",
    "5b-1": "Summary information on replacement",
    "5c": "Summary information on annual transactions in the previous period surplus reserve",
    "5c-1": "Summary information on retirement",
    "5d": "Summary information on replacement",
    "5e": "Summary information on retirement",
    "6a": "Memo item: corrective transactions relating to additions and subtractions",
    "6b": "Memo item: corrective transactions relating to replacement",
    "6c": "Memo item: corrective transactions relating to retirement",
}


def title_of(table: str, period: int) -> str:
    """A table's title in the report of ``period`` (2c, 5a-5c differ between versions)."""
    if period == 2 and table == "2c":
        return TITLES["2c-ppsr"]
    if period == 1 and table in ("5a", "5b", "5c"):
        return TITLES[f"{table}-1"]
    return TITLES[table]


# --- input ---


@dataclass(frozen=True)
class Side:
    """An account on a transaction (registry code, account type 2.7, account number)."""

    registry: str
    account_type: int
    account_id: int


@dataclass(frozen=True)
class Movement:
    """One stored transaction as the report reads it."""

    transaction_id: str
    transaction_type: int
    supplementary_type: int | None
    transferring: Side | None
    acquiring: Side
    #: the units as they leave the transferring account, and as they arrive
    before: tuple[UnitBlock, ...]
    after: tuple[UnitBlock, ...]
    replaced: tuple[UnitBlock, ...]
    notification_id: int | None
    status: int
    completed_at: datetime | None
    ended_at: datetime
    evaluation_results: tuple[tuple[int, str], ...] = ()


def _utc(moment: Any) -> datetime:
    if isinstance(moment, str):
        moment = datetime.fromisoformat(moment)
    assert isinstance(moment, datetime)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _side(wire: Mapping[str, Any] | None) -> Side | None:
    if wire is None:
        return None
    return Side(wire["registry"], int(wire["account_type"]), int(wire["account_id"]))


def movement_of(doc: Mapping[str, Any]) -> Movement:
    """A stored transaction of a registry (``services/registry/store.py``) or of the ITL
    (``services/itl/store.py``): both keep the proposal as on the wire (``proposal``),
    the status, the status history (``history``: ``{status, at}``) and the
    ``evaluation_results``. Completed at: the moment of its status 4 in the history."""
    proposal = ProposalForwarded.model_validate(
        {k: v for k, v in doc["proposal"].items() if k != "deadline"})
    change = UnitChange()
    if proposal.transaction_type == T.CONVERSION:
        change = UnitChange(convert_to_eru=True, project_id=proposal.project_id,
                            track=proposal.track)
    elif proposal.transaction_type == T.CARRY_OVER:
        change = UnitChange(carry_over=True)
    elif proposal.transaction_type == T.EXPIRY_DATE_CHANGE:
        change = UnitChange(expiry_date=proposal.new_expiry_date)
    before = tuple(block_from_wire(b) for b in proposal.blocks)
    after = tuple(UnitBlock(attributes=change.apply(b.attributes), serials=b.serials)
                  for b in before)
    history = doc.get("history") or []
    completed = [h["at"] for h in history if h["status"] == TransactionStatus.COMPLETED]
    acquiring = _side(doc["proposal"]["acquiring"])
    assert acquiring is not None
    return Movement(
        transaction_id=str(doc["_id"]),
        transaction_type=int(proposal.transaction_type),
        supplementary_type=(int(proposal.supp_transaction_type)
                            if proposal.supp_transaction_type else None),
        transferring=_side(doc["proposal"].get("transferring")),
        acquiring=acquiring,
        before=before, after=after,
        replaced=tuple(block_from_wire(b) for b in proposal.replaced_blocks),
        notification_id=proposal.notification_id,
        status=int(doc["status"]),
        completed_at=_utc(completed[0]) if completed else None,
        ended_at=_utc(history[-1]["at"]) if history else _utc(doc["created_at"]),
        evaluation_results=tuple((int(r["response_code"]), str(r.get("message") or ""))
                                 for r in doc.get("evaluation_results") or []),
    )


@dataclass(frozen=True)
class NoticeFacts:
    """An ITL notice as the report lists it (protocol.md 2.8)."""

    notice_id: int
    notice_type: int
    status: int
    target_value: int | None
    commitment_period: int | None
    issued_at: datetime
    unit_type: int | None = None
    project_id: str | None = None


def notice_of(doc: Mapping[str, Any]) -> NoticeFacts:
    """A stored notice of a registry (``received_at``) or of the ITL (``issued_at``).
    Its commitment period: the one it names, else the one all the blocks it lists are
    valid for (a notice 4 about lCERs names blocks, not a period)."""
    period = doc.get("commitment_period")
    listed = {b.get("applicable_commitment_period") for b in doc.get("blocks") or []}
    if period is None and len(listed) == 1:
        period = listed.pop()
    return NoticeFacts(
        notice_id=int(doc.get("notice_id", doc.get("_id"))),
        notice_type=int(doc["notice_type"]), status=int(doc["status"]),
        target_value=doc.get("target_value"), commitment_period=period,
        issued_at=_utc(doc.get("issued_at") or doc.get("received_at")),
        unit_type=doc.get("unit_type"), project_id=doc.get("project_id"))


# --- output ---


@dataclass
class Row:
    """A row of a table: its name (a row kind, a partner registry code, a year), the
    kind (``row``, ``subtotal``, ``total``) and its cells, column -> units."""

    name: str
    cells: dict[str, int]
    kind: str = "row"


@dataclass
class Table:
    name: str
    title: str
    columns: tuple[str, ...]
    rows: list[Row] = field(default_factory=list)

    def row(self, name: str) -> Row:
        for row in self.rows:
            if row.name == name:
                return row
        raise KeyError(f"table {self.name} has no row {name}")


@dataclass
class Report:
    """A Party's SEF report for a year of a commitment period, and its lists."""

    party: str
    period: int
    year: int
    generated_at: datetime
    tables: list[Table]
    discrepant_transactions: list[dict[str, Any]] = field(default_factory=list)
    notices: list[dict[str, Any]] = field(default_factory=list)
    invalid_units: list[dict[str, Any]] = field(default_factory=list)
    #: per unit column: holding accounts at start and end of the year, and what the
    #: tables say moved in between; ``difference`` is 0 when they agree (ours, a check)
    balance: list[dict[str, Any]] = field(default_factory=list)

    @property
    def version(self) -> str:
        return VERSION[self.period]

    @property
    def namespace(self) -> str:
        return NAMESPACE[self.period]

    def table(self, name: str) -> Table:
        for table in self.tables:
            if table.name == name:
                return table
        raise KeyError(f"report has no table {name}")

    def cells(self) -> dict[tuple[str, str, str], int]:
        """Every cell: (table, row, column) -> units."""
        return {(t.name, r.name, c): v for t in self.tables for r in t.rows
                for c, v in r.cells.items()}


# --- the years a report may be asked for ---


class ReportYearError(ValueError):
    """A report asked for a period or year it cannot be made for; ``field`` is the
    request field at fault (``period`` or ``year``)."""

    def __init__(self, field_name: str, message: str) -> None:
        super().__init__(message)
        self.field = field_name


def reporting_years(period: int) -> tuple[int, int]:
    """First and last year a report of ``period`` may be asked for: from the period's
    first year to the end of the following period, until which its tCERs are valid and
    replaced and its units carried over or retired (O; R 5/CMP.1 annex section K)."""
    first = FOLLOWING_PERIOD_YEARS[period][0]
    return first, FOLLOWING_PERIOD_YEARS[period + 1][1]


def check_report_year(period: int, year: int, opened: date | None, today: date) -> None:
    """Refuse (``ReportYearError``) a period other than 1 or 2, a year outside the
    period's reporting years (``reporting_years``), a year before the registry existed
    (``opened``: the day its first account was made) and a year not yet begun."""
    if period not in NAMESPACE:
        raise ReportYearError("period", f"commitment period {period} has no SEF report: "
                                        f"1 (SEF 1.0) or 2 (SEF 2.0)")
    first, last = reporting_years(period)
    if not first <= year <= last:
        raise ReportYearError("year", f"year {year} is outside commitment period {period} "
                                      f"(reported {first}-{last})")
    if opened is not None and year < opened.year:
        raise ReportYearError("year", f"year {year} is before the registry existed "
                                      f"(opened {opened.isoformat()})")
    if year > today.year:
        raise ReportYearError("year", f"year {year} has not begun (today is "
                                      f"{today.isoformat()})")


# --- the computation ---

Key = tuple[int, int, str, int, str | None]  # account type, account id, unit, period, expiry


def _year_bounds(year: int) -> tuple[datetime, datetime]:
    return datetime(year, 1, 1, tzinfo=UTC), datetime(year + 1, 1, 1, tzinfo=UTC)


def _key(side: Side, block: UnitBlock) -> Key:
    a = block.attributes
    return (side.account_type, side.account_id, UNIT_COLUMN[a.unit_type],
            a.applicable_commitment_period, a.expiry_date.isoformat() if a.expiry_date else None)


def holdings_at(party: str, movements: Iterable[Movement], moment: datetime) -> Counter[Key]:
    """What the Party's accounts held just before ``moment``: every transaction
    completed before it, in order, takes its units from the transferring account when
    that is the Party's and puts them (as changed: converted, carried over, new expiry
    date) in the acquiring account when that is the Party's."""
    held: Counter[Key] = Counter()
    done = sorted((m for m in movements if m.completed_at is not None
                   and m.completed_at < moment), key=lambda m: (m.completed_at, m.transaction_id))
    for m in done:
        if m.transferring is not None and m.transferring.registry == party:
            for block in m.before:
                held[_key(m.transferring, block)] -= block.quantity
        if m.acquiring.registry == party:
            for block in m.after:
                held[_key(m.acquiring, block)] += block.quantity
    return held


def _zero(columns: Sequence[str]) -> dict[str, int]:
    return dict.fromkeys(columns, 0)


def _sum_rows(name: str, rows: Iterable[Row], columns: Sequence[str], kind: str) -> Row:
    cells = _zero(columns)
    for row in rows:
        for c in columns:
            cells[c] += row.cells.get(c, 0)
    return Row(name, cells, kind)


def _holdings_table(name: str, period: int, held: Counter[Key]) -> Table:
    table = Table(name, title_of(name, period), UNITS)
    for row_name, types in ACCOUNT_ROWS[period]:
        cells = _zero(UNITS)
        for (account_type, _, unit, applicable, _), units in held.items():
            if applicable == period and account_type in types:
                cells[unit] += units
        table.rows.append(Row(row_name, cells))
    table.rows.append(_sum_rows("Total", table.rows, UNITS, "total"))
    return table


@dataclass
class _Flows:
    """What one year's transactions add to each row, before the rows are laid out."""

    rows_2a: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    rows_2b: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    rows_2c: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    independently_verified: Counter[str] = field(default_factory=Counter)
    rows_2d: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    rows_3: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    starting: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))


def _units(blocks: Iterable[UnitBlock], period: int) -> Counter[str]:
    counted: Counter[str] = Counter()
    for b in blocks:
        if b.attributes.applicable_commitment_period == period:
            counted[UNIT_COLUMN[b.attributes.unit_type]] += b.quantity
    return counted


def _add(target: Counter[str], side: str, units: Counter[str]) -> None:
    for unit, quantity in units.items():
        target[f"{side}/{unit}"] += quantity


def _classify(m: Movement, party: str, period: int, notice_types: Mapping[int, int],
              flows: _Flows) -> None:
    """Put one completed transaction of the year into its rows (``ROWS_2A`` ...)."""
    out = m.transferring is not None and m.transferring.registry == party
    into = m.acquiring.registry == party
    leaving, arriving = _units(m.before, period), _units(m.after, period)
    kind, target = m.transaction_type, m.acquiring.account_type
    if kind in (T.INTERNAL_TRANSFER, T.EXPIRY_DATE_CHANGE):
        return  # within the Party's holdings: no row (protocol.md 6.1)
    if kind == T.ISSUANCE and into:
        by_activity: dict[str, Counter[str]] = defaultdict(Counter)
        for b in m.after:
            if b.attributes.applicable_commitment_period != period:
                continue
            unit = UNIT_COLUMN[b.attributes.unit_type]
            if b.attributes.unit_type == UnitType.AAU:
                flows.starting["AssignedAmountUnitsIssued"][f"Additions/{unit}"] += b.quantity
            elif b.attributes.lulucf_activity in ACTIVITY_ROW:
                by_activity[ACTIVITY_ROW[b.attributes.lulucf_activity]][unit] += b.quantity
            # CERs, tCERs and lCERs are issued only in the CDM registry, not a Party's
        for activity_row, units in by_activity.items():
            _add(flows.rows_2a[activity_row], "Additions", units)
        return
    if kind == T.CONVERSION and into:
        for b_before, b_after in zip(m.before, m.after, strict=True):
            if b_before.attributes.applicable_commitment_period != period:
                continue
            track_row = TRACK_ROW.get(b_after.attributes.track or 1, TRACK_ROW[1])
            flows.rows_2a[track_row][
                f"Subtractions/{UNIT_COLUMN[b_before.attributes.unit_type]}"] += b_before.quantity
            flows.rows_2a[track_row][f"Additions/{UNIT_COLUMN[b_after.attributes.unit_type]}"
                               ] += b_after.quantity
        return
    if kind == T.CARRY_OVER and (out or into):
        _add(flows.rows_2a["CarryOverToNextPeriod"], "Subtractions", leaving)
        name = ("CarryOverPPSR" if m.supplementary_type == SupplementaryType.CARRY_OVER_AAU
                else "CarryOver")
        _add(flows.starting[name], "Additions", arriving)
        return
    if kind == T.CANCELLATION and out:
        row: str | None = CANCELLATION_ROW.get(period, {}).get(A(target), "OtherCancellation")
        if target == A.MANDATORY_CANCELLATION and period == 2:
            row = CANCELLATION_ROW_BY_NOTICE.get(
                NoticeType(notice_types.get(m.notification_id or -1, 4)), row)
        if row is None:
            _add(flows.starting["Art3Par7TerCancellations"], "Subtractions", leaving)
            return
        for b in m.before:
            if b.attributes.applicable_commitment_period != period:
                continue
            unit = UNIT_COLUMN[b.attributes.unit_type]
            this_row = row
            if (target == A.NET_SOURCE_CANCELLATION
                    and b.attributes.lulucf_activity in ACTIVITY_ROW):
                this_row = ACTIVITY_ROW[b.attributes.lulucf_activity]
            flows.rows_2a[this_row][f"Subtractions/{unit}"] += b.quantity
            expiry = b.attributes.expiry_date
            if expiry is not None and m.completed_at is not None \
                    and expiry < m.completed_at.date():
                flows.rows_3[f"CancellationOf{unit}sExpiredInHoldingAccounts"][unit] += \
                    b.quantity
        return
    if kind == T.RETIREMENT and out:
        source = m.transferring.account_type if m.transferring else 0
        row = ("RetirementFromPPSR" if period == 2
               and source == A.PREVIOUS_PERIOD_SURPLUS_RESERVE else "Retirement")
        _add(flows.rows_2a[row], "Subtractions", leaving)
        return
    if kind == T.REPLACEMENT and out:
        row = REPLACEMENT_ROW.get(A(target), "OtherCancellation")
        _add(flows.rows_2a[row], "Subtractions", leaving)
        for unit, quantity in leaving.items():
            flows.rows_3[REPLACEMENT_ROW_3.get(A(target), row)][unit] += quantity
        return
    if kind == T.EXTERNAL_TRANSFER and (out or into):
        partner = m.acquiring.registry if out else (
            m.transferring.registry if m.transferring else "?")
        ppsr = period == 2 and A.PREVIOUS_PERIOD_SURPLUS_RESERVE in (
            m.acquiring.account_type, m.transferring.account_type if m.transferring else 0)
        rows = flows.rows_2c if ppsr else flows.rows_2b
        if out:
            _add(rows[partner], "Subtractions", leaving)
        if into:
            _add(rows[partner], "Additions", arriving)
        for b in m.before if out else m.after:
            if (b.attributes.applicable_commitment_period == period
                    and b.attributes.unit_type in (UnitType.ERU_FROM_AAU, UnitType.ERU_FROM_RMU)
                    and b.attributes.track == 2):
                side = "Subtractions" if out else "Additions"
                flows.independently_verified[f"{side}/ERU"] += b.quantity
        if out and period == 2:
            _proceeds(m, party, flows)


def _proceeds(m: Movement, party: str, flows: _Flows) -> None:
    """Table 2d: the share of proceeds paid (3/47, 3/49) and first international
    transfers of the Party's period-2 AAUs (protocol.md 4.2)."""
    supplementary = m.supplementary_type
    if supplementary == SupplementaryType.SHARE_OF_PROCEEDS_FIRST_TRANSFER_OF_AAU:
        flows.rows_2d["FirstInternationalTransfersOfAAU"]["AmountContributed"] += sum(
            b.quantity for b in m.before)
        return
    if supplementary == SupplementaryType.SHARE_OF_PROCEEDS_ERU_CONVERSION:
        for b in m.before:
            row = PROCEEDS_ROW_OF_TRACK.get(b.attributes.track or 1, ROWS_2D[1])
            flows.rows_2d[row]["AmountContributed"] += b.quantity
        return
    for b in m.before:
        a = b.attributes
        if (a.unit_type == UnitType.AAU and a.original_commitment_period == 2
                and a.originating_registry == party):
            flows.rows_2d["FirstInternationalTransfersOfAAU"]["AmountTransferred"] += b.quantity


def _conversions_levied(m: Movement, period: int, flows: _Flows) -> None:
    """Table 2d, amount transferred of ERUs: ERUs issued by converting period-2 units."""
    if period != 2 or m.transaction_type != T.CONVERSION:
        return
    for b in m.after:
        if b.attributes.original_commitment_period == 2:
            row = PROCEEDS_ROW_OF_TRACK.get(b.attributes.track or 1, ROWS_2D[1])
            flows.rows_2d[row]["AmountTransferred"] += b.quantity


def _year_flows(party: str, period: int, movements: Sequence[Movement], year: int,
                notice_types: Mapping[int, int]) -> _Flows:
    start, end = _year_bounds(year)
    flows = _Flows()
    for m in sorted(movements, key=lambda m: (m.completed_at or end, m.transaction_id)):
        if m.completed_at is None or not start <= m.completed_at < end:
            continue
        _classify(m, party, period, notice_types, flows)
        if m.acquiring.registry == party:
            _conversions_levied(m, period, flows)
    return flows


def _flow_table(name: str, period: int, rows: Mapping[str, Counter[str]],
                order: Sequence[str] | None, subtotal: bool = True) -> Table:
    table = Table(name, title_of(name, period), FLOW_COLUMNS)
    names = list(order) if order is not None else sorted(rows)
    for row_name in names:
        counted = rows.get(row_name, Counter())
        table.rows.append(Row(row_name, {c: counted.get(c, 0) for c in FLOW_COLUMNS}))
    if subtotal:
        table.rows.append(_sum_rows("Subtotal", table.rows, FLOW_COLUMNS, "subtotal"))
    return table


def _net(row: Row) -> Counter[str]:
    net: Counter[str] = Counter()
    for unit in UNITS:
        net[unit] = row.cells.get(f"Additions/{unit}", 0) - row.cells.get(
            f"Subtractions/{unit}", 0)
    return net


@dataclass
class _Year:
    t2a: Table
    t2b: Table
    t2c_ppsr: Table
    t2d: Table
    t3: Table
    total: Row
    retirement: Row
    starting: dict[str, Counter[str]]


def _year_tables(party: str, period: int, movements: Sequence[Movement], year: int,
                 notices: Sequence[NoticeFacts], held_end: Counter[Key]) -> _Year:
    notice_types = {n.notice_id: n.notice_type for n in notices}
    flows = _year_flows(party, period, movements, year, notice_types)
    t2a = _flow_table("2a", period, flows.rows_2a, ROWS_2A[period])
    retirement_rows = [Row(r, {c: flows.rows_2a.get(r, Counter()).get(c, 0)
                               for c in FLOW_COLUMNS}) for r in RETIREMENT_ROWS[period]]
    t2a.rows.extend(retirement_rows)
    retirement = _sum_rows("Retirement", retirement_rows, FLOW_COLUMNS, "total")
    t2b = _flow_table("2b", period, flows.rows_2b, None)
    t2b.rows.append(Row("IndependentlyVerifiedERU",
                        {c: flows.independently_verified.get(c, 0) for c in FLOW_COLUMNS},
                        "info"))
    t2c_ppsr = _flow_table("2c", period, flows.rows_2c, None)
    t2d = Table("2d", title_of("2d", period), PROCEEDS_COLUMNS,
                [Row(r, {c: flows.rows_2d.get(r, Counter()).get(c, 0)
                         for c in PROCEEDS_COLUMNS}) for r in ROWS_2D])
    t2d.rows.append(_sum_rows("Total", t2d.rows, PROCEEDS_COLUMNS, "total"))
    subtotals = [t2a.row("Subtotal"), t2b.row("Subtotal")]
    if period == 2:
        subtotals.append(t2c_ppsr.row("Subtotal"))
    total = _sum_rows("Total", subtotals, FLOW_COLUMNS, "total")
    # table 3: expiries (from what is held at the end of the year), notices, replacements
    start, end = _year_bounds(year)
    rows_3 = flows.rows_3
    for (account_type, _, unit, applicable, expiry), units in held_end.items():
        if (expiry is None or applicable != period or units <= 0
                or not start.date().isoformat() <= expiry < end.date().isoformat()):
            continue
        where = ("HoldingAccounts" if account_type in HOLDING_TYPES
                 else "RetirementAndReplacementAccounts")
        rows_3[f"{unit}sExpiredIn{where}"][unit] += units
    for notice in notices:
        if (notice.notice_type in SUBJECT_ROW_3 and start <= notice.issued_at < end
                and notice.commitment_period in (None, period)):
            rows_3[SUBJECT_ROW_3[NoticeType(notice.notice_type)]]["lCER"] += \
                notice.target_value or 0
    t3 = Table("3", title_of("3", period), UNITS,
               [Row(r, {u: rows_3.get(r, Counter()).get(u, 0) for u in UNITS})
                for r in ROWS_3])
    t3.rows.append(_sum_rows("Total", t3.rows, UNITS, "total"))
    return _Year(t2a, t2b, t2c_ppsr, t2d, t3, total, retirement, flows.starting)


def compute_report(party: str, period: int, year: int, movements: Sequence[Movement],
                   notices: Sequence[NoticeFacts], generated_at: datetime) -> Report:
    """The SEF report of ``party`` for ``year`` of commitment ``period`` (protocol.md 6;
    SEF 1.0 for period 1, 2.0 for period 2) from the transactions that concern the
    Party (``movements``: those completed count, at their completion time) and the ITL
    notices addressed to it. Raises nothing: the caller checks the year
    (``check_report_year``)."""
    start, end = _year_bounds(year)
    held_start = holdings_at(party, movements, start)
    held_end = holdings_at(party, movements, end)
    t1 = _holdings_table("1", period, held_start)
    t4 = _holdings_table("4", period, held_end)
    this = _year_tables(party, period, movements, year, notices, held_end)
    first = reporting_years(period)[0]
    years = {y: (this if y == year else _year_tables(
        party, period, movements, y, notices, holdings_at(party, movements,
                                                          _year_bounds(y)[1])))
             for y in range(first, year + 1)}
    # table 5: starting values over the period so far, then year by year
    starting: dict[str, Counter[str]] = defaultdict(Counter)
    for y in years.values():
        for name, counted in y.starting.items():
            starting[name].update(counted)
    t5_start = [Row(name, {c: starting.get(name, Counter()).get(c, 0) for c in FLOW_COLUMNS})
                for name in STARTING_VALUES]
    annual = [Row(str(y), dict(years[y].total.cells)) for y in sorted(years)]
    t5_annual = Table("5b" if period == 2 else "5a", "", FLOW_COLUMNS, annual)
    t5_annual.rows.append(_sum_rows("Total", annual, FLOW_COLUMNS, "total"))
    replacements = [Row(str(y), {u: sum(years[y].t3.row(r).cells[u]
                                        for r in REPLACEMENT_ROW_3.values()) for u in UNITS})
                    for y in sorted(years)]
    retirements = [Row(str(y), {u: years[y].retirement.cells[f"Subtractions/{u}"]
                                for u in UNITS}) for y in sorted(years)]
    tables: list[Table] = [t1, this.t2a, this.t2b]
    if period == 2:
        t2e = Table("2e", title_of("2e", period), FLOW_COLUMNS,
                    [Row("2a", dict(this.t2a.row("Subtotal").cells)),
                     Row("2b", dict(this.t2b.row("Subtotal").cells)),
                     Row("2c", dict(this.t2c_ppsr.row("Subtotal").cells)),
                     Row("Total", dict(this.total.cells), "total")])
        ppsr = [Row(str(y), dict(years[y].t2c_ppsr.row("Subtotal").cells))
                for y in sorted(years)]
        tables += [this.t2c_ppsr, this.t2d, t2e, this.t3, t4,
                   Table("5a", title_of("5a", 2), FLOW_COLUMNS, t5_start),
                   Table("5b", title_of("5b", 2), FLOW_COLUMNS, t5_annual.rows),
                   Table("5c", title_of("5c", 2), FLOW_COLUMNS,
                         [*ppsr, _sum_rows("Total", ppsr, FLOW_COLUMNS, "total")]),
                   Table("5d", title_of("5d", 2), UNITS,
                         [*replacements, _sum_rows("Total", replacements, UNITS, "total")]),
                   Table("5e", title_of("5e", 2), UNITS,
                         [*retirements, _sum_rows("Total", retirements, UNITS, "total")])]
    else:
        t2c = Table("2c", title_of("2c", 1), FLOW_COLUMNS,
                    [Row("2a", dict(this.t2a.row("Subtotal").cells)),
                     Row("2b", dict(this.t2b.row("Subtotal").cells)),
                     Row("Total", dict(this.total.cells), "total")])
        tables += [t2c, this.t3, t4,
                   Table("5a", title_of("5a", 1), FLOW_COLUMNS,
                         [*t5_start, *t5_annual.rows]),
                   Table("5b", title_of("5b", 1), UNITS,
                         [*replacements, _sum_rows("Total", replacements, UNITS, "total")]),
                   Table("5c", title_of("5c", 1), UNITS,
                         [*retirements, _sum_rows("Total", retirements, UNITS, "total")])]
    # memo items: the registry makes no corrective transactions (none after a
    # reconciliation with manual intervention, protocol.md 5): empty, with their totals
    for memo in ("6a", "6b", "6c"):
        tables.append(Table(memo, title_of(memo, period), UNITS,
                            [Row("Total", _zero(UNITS), "total")]))
    report = Report(party, period, year, generated_at, tables)
    report.balance = _balance(period, t1, t4, this)
    report.discrepant_transactions = _discrepant(party, movements, start, end)
    report.notices = _notices(notices, movements, period, end)
    report.invalid_units = _invalid(held_end, period, end)
    return report


def holding_rows(period: int) -> list[str]:
    """The rows of tables 1 and 4 that are holding accounts (``HOLDING_TYPES``)."""
    return [name for name, types in ACCOUNT_ROWS[period] if types & HOLDING_TYPES]


def _balance(period: int, t1: Table, t4: Table, year: _Year) -> list[dict[str, Any]]:
    """Per unit column: holding accounts at the start, plus the year's total annual
    transactions (2c/2e), less retirement, plus the starting values the year added
    (AAUs issued, carried over in, less Art. 3.7ter cancellation), against the holding
    accounts at the end (ours: a check the report carries, docs/adr/0031)."""
    rows = holding_rows(period)
    lines = []
    for unit in UNITS:
        start = sum(t1.row(r).cells[unit] for r in rows)
        end = sum(t4.row(r).cells[unit] for r in rows)
        moved = _net(year.total)[unit] - year.retirement.cells[f"Subtractions/{unit}"]
        moved += sum(c.get(f"Additions/{unit}", 0) - c.get(f"Subtractions/{unit}", 0)
                     for c in year.starting.values())
        lines.append({"unit": unit, "start": start, "moved": moved, "end": end,
                      "difference": end - start - moved})
    return lines


def _discrepant(party: str, movements: Iterable[Movement], start: datetime,
                end: datetime) -> list[dict[str, Any]]:
    """Transactions of the Party the ITL or a registry refused (status 5 or 6) in the
    year, with their response codes (UK-SEF R2)."""
    ended = (TransactionStatus.TERMINATED, TransactionStatus.REJECTED)
    out = []
    for m in sorted(movements, key=lambda m: (m.ended_at, m.transaction_id)):
        if m.status not in ended or not start <= m.ended_at < end:
            continue
        out.append({"transaction_id": m.transaction_id,
                    "transaction_type": m.transaction_type,
                    "ended_at": m.ended_at.isoformat(), "status": m.status,
                    "response_codes": [code for code, _ in m.evaluation_results],
                    "messages": [text for _, text in m.evaluation_results]})
    return out


def _notices(notices: Iterable[NoticeFacts], movements: Iterable[Movement], period: int,
             end: datetime) -> list[dict[str, Any]]:
    """Notices issued to the Party up to the end of the year for this period (or none),
    with their target, the units the Party's completed transactions quoting them moved
    by then, and the difference (UK-SEF R3, R4)."""
    fulfilled: Counter[int] = Counter()
    for m in movements:
        if m.notification_id is not None and m.completed_at is not None \
                and m.completed_at < end:
            fulfilled[m.notification_id] += sum(b.quantity for b in m.before)
    out = []
    for n in sorted(notices, key=lambda n: n.notice_id):
        if n.issued_at >= end or n.commitment_period not in (None, period):
            continue
        done = fulfilled.get(n.notice_id, 0)
        out.append({"notice_id": n.notice_id, "notice_type": n.notice_type,
                    "status": n.status, "issued_at": n.issued_at.isoformat(),
                    "target_value": n.target_value, "fulfilled_quantity": done,
                    "difference": (n.target_value - done) if n.target_value is not None
                    else None})
    return out


def _invalid(held: Counter[Key], period: int, end: datetime) -> list[dict[str, Any]]:
    """tCERs and lCERs held in holding accounts at the end of the year whose expiry date
    has passed (UK-SEF R5)."""
    out = []
    for (account_type, account_id, unit, applicable, expiry), units in sorted(
            held.items(), key=lambda item: tuple(str(x) for x in item[0])):
        if (units > 0 and expiry is not None and applicable == period
                and account_type in HOLDING_TYPES and expiry < end.date().isoformat()):
            out.append({"account_type": account_type, "account_id": account_id,
                        "unit_type": unit, "expiry_date": expiry, "quantity": units})
    return out


def report_to_json(report: Report) -> dict[str, Any]:
    """The report as JSON: header, tables (name, title, columns, rows of name, kind and
    cells), the lists and the balance."""
    return {
        "version": report.version, "namespace": report.namespace,
        "party": report.party, "commitment_period": report.period, "year": report.year,
        "generated_at": report.generated_at.isoformat(),
        "tables": [{"name": t.name, "title": t.title, "columns": list(t.columns),
                    "rows": [{"name": r.name, "kind": r.kind, "cells": dict(r.cells)}
                             for r in t.rows]} for t in report.tables],
        "discrepant_transactions": report.discrepant_transactions,
        "notices": report.notices, "invalid_units": report.invalid_units,
        "balance": report.balance,
    }
