"""The SEF report's tables from plain transaction documents (shared/sef; protocol.md 6):
holdings replayed at the start and end of the year, the rows each kind of transaction
fills, the year checks, and the XML, CSV, HTML and JSON forms with their schema."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime
from typing import Any

import pytest

from shared.sef import crosscheck, render
from shared.sef.tables import (
    ReportYearError,
    check_report_year,
    compute_report,
    movement_of,
    notice_of,
    report_to_json,
)

SERIAL = itertools.count(1, 100_000)
KZ = "KZ"


def block(quantity: int, unit_type: int = 1, period: tuple[int, int] = (2, 2),
          origin: str = KZ, **extra: Any) -> dict[str, Any]:
    start = next(SERIAL)
    return {"serial_start": start, "serial_end": start + quantity - 1,
            "originating_registry": origin, "unit_type": unit_type,
            "original_commitment_period": period[0],
            "applicable_commitment_period": period[1], **extra}


def ref(account_type: int, account_id: int, registry: str = KZ) -> dict[str, Any]:
    return {"registry": registry, "account_type": account_type, "account_id": account_id}


COUNTER = itertools.count(1)


def tx(kind: int, acquiring: dict[str, Any], blocks: list[dict[str, Any]], at: datetime,
       transferring: dict[str, Any] | None = None, status: int = 4,
       **extra: Any) -> dict[str, Any]:
    transaction_id = f"KZ{next(COUNTER)}"
    history = [{"status": 1, "at": at}, {"status": 2, "at": at}, {"status": status, "at": at}]
    return {"_id": transaction_id, "status": status, "history": history, "created_at": at,
            "evaluation_results": ([{"response_code": 3002, "message": "too few"}]
                                   if status != 4 else []),
            "proposal": {"transaction_id": transaction_id, "transaction_type": kind,
                         "transferring": transferring, "acquiring": acquiring,
                         "blocks": blocks, **extra}}


def at(year: int, month: int = 6, day: int = 1) -> datetime:
    return datetime(year, month, day, 12, tzinfo=UTC)


PARTY, ALICE, PPSR, VOLUNTARY, RETIREMENT, REVERSAL = (
    ref(100, 1), ref(121, 1001), ref(130, 4), ref(230, 2), ref(300, 3), ref(422, 11))


@pytest.fixture(scope="module")
def docs() -> list[dict[str, Any]]:
    """2015: 100 000 period-2 AAUs issued and 5 000 period-1 AAUs; 2016: the year."""
    issued = block(100_000)
    cp1 = block(5_000, period=(1, 1))
    lcers = block(1_000, 7, origin="CDM", project_id="AR", expiry_date="2030-06-30")
    conv_src = block(1_000)
    transfer = block(4_900)
    sop = block(98)
    inbound = block(700, origin="CH")
    cers = block(980, 5, origin="CDM")
    cancelled = block(500)
    retired = block(300)
    carried = block(2_000, period=(1, 1))
    replacing = block(300, 7, origin="CDM", project_id="AR", expiry_date="2030-06-30")
    rmus = block(50, 2, lulucf_activity=3)
    return [
        tx(1, PARTY, [issued], at(2015, 12)),
        tx(1, PARTY, [cp1], at(2015, 12)),
        tx(3, PARTY, [lcers], at(2015, 12, 5), ref(100, 1100, "CDM")),
        tx(2, PARTY, [conv_src], at(2016, 2), PARTY, project_id="KZ-JI", track=1),
        tx(10, ALICE, [transfer], at(2016, 3), PARTY),
        tx(3, ref(121, 7, "CH"), [transfer], at(2016, 3, 2), ALICE),
        tx(3, ref(100, 1100, "CDM"), [sop], at(2016, 3, 3), PARTY, supp_transaction_type=47),
        tx(3, ALICE, [inbound], at(2016, 4), ref(121, 7, "CH")),
        tx(3, PARTY, [cers], at(2016, 4, 2), ref(110, 1, "CDM")),
        tx(4, VOLUNTARY, [cancelled], at(2016, 5), PARTY),
        tx(5, RETIREMENT, [retired], at(2016, 6), PARTY),
        tx(7, PPSR, [carried], at(2016, 7), PARTY, supp_transaction_type=39),
        tx(6, REVERSAL, [replacing], at(2016, 8), PARTY, notification_id=9,
           replaced_blocks=[block(300, 7, origin="CDM", project_id="AR",
                                  expiry_date="2030-06-30")]),
        tx(1, PARTY, [rmus], at(2016, 9)),
        tx(3, ref(121, 7, "CH"), [block(10)], at(2016, 10), PARTY, status=5),
        tx(1, PARTY, [block(7)], at(2017, 1, 2)),  # the next year: not in 2016
    ]


NOTICES = [{"_id": 9, "notice_type": 4, "status": 3, "target_value": 300,
            "commitment_period": 2, "received_at": at(2016, 7, 20)}]


def report(docs: list[dict[str, Any]], period: int, year: int) -> Any:
    return compute_report(KZ, period, year, [movement_of(d) for d in docs],
                          [notice_of(n) for n in NOTICES], at(2017, 1, 3))


def cell(r: Any, table: str, row: str, column: str) -> int:
    return int(r.table(table).row(row).cells[column])


def test_holdings_at_the_start_and_end_of_the_year(docs: list[dict[str, Any]]) -> None:
    r = report(docs, 2, 2016)
    assert cell(r, "1", "PartyHolding", "AAU") == 100_000
    assert cell(r, "1", "PartyHolding", "lCER") == 1_000
    assert cell(r, "1", "Total", "AAU") == 100_000
    # -1 000 converted, -4 900 to Alice, -98 share, -500 cancelled, -300 retired
    assert cell(r, "4", "PartyHolding", "AAU") == 100_000 - 1_000 - 4_900 - 98 - 500 - 300
    assert cell(r, "4", "PartyHolding", "ERU") == 1_000
    assert cell(r, "4", "PartyHolding", "CER") == 980
    assert cell(r, "4", "PartyHolding", "lCER") == 700
    assert cell(r, "4", "PartyHolding", "RMU") == 50
    assert cell(r, "4", "EntityHolding", "AAU") == 700
    assert cell(r, "4", "PreviousPeriodSurplusReserveAccount", "AAU") == 2_000
    assert cell(r, "4", "VoluntaryCancellationAccount", "AAU") == 500
    assert cell(r, "4", "RetirementAccount", "AAU") == 300
    assert cell(r, "4", "lCERReplacementForReversalOfStorage", "lCER") == 300
    assert [line["difference"] for line in r.balance] == [0] * 6, r.balance


def test_each_transaction_fills_its_row(docs: list[dict[str, Any]]) -> None:
    r = report(docs, 2, 2016)
    row = "IssuanceConversionOfPartyVerifiedProjects"
    assert cell(r, "2a", row, "Additions/ERU") == 1_000
    assert cell(r, "2a", row, "Subtractions/AAU") == 1_000
    assert cell(r, "2a", "Art34ForestManagement", "Additions/RMU") == 50
    assert cell(r, "2a", "VoluntaryCancellation", "Subtractions/AAU") == 500
    assert cell(r, "2a", "ReplacementForReversalOfStorage", "Subtractions/lCER") == 300
    assert cell(r, "2a", "Retirement", "Subtractions/AAU") == 300
    assert cell(r, "2b", "CH", "Subtractions/AAU") == 4_900
    assert cell(r, "2b", "CH", "Additions/AAU") == 700
    assert cell(r, "2b", "CDM", "Subtractions/AAU") == 98
    assert cell(r, "2b", "CDM", "Additions/CER") == 980
    assert cell(r, "2d", "FirstInternationalTransfersOfAAU", "AmountTransferred") == 4_900
    assert cell(r, "2d", "FirstInternationalTransfersOfAAU", "AmountContributed") == 98
    assert cell(r, "2d", "IssuanceERUFromPartyVerifiedProjects", "AmountTransferred") == 1_000
    # retirement is reported apart, after the subtotal of 2a
    assert cell(r, "2e", "Total", "Subtractions/AAU") == 1_000 + 500 + 4_900 + 98
    assert cell(r, "3", "SubjectToReplacementForReversalOfStorage", "lCER") == 300
    assert cell(r, "3", "ReplacementForReversalOfStorage", "lCER") == 300
    assert cell(r, "5a", "AssignedAmountUnitsIssued", "Additions/AAU") == 100_000
    assert cell(r, "5a", "CarryOverPPSR", "Additions/AAU") == 2_000
    assert cell(r, "5d", "2016", "lCER") == 300
    assert cell(r, "5e", "Total", "AAU") == 300
    assert [t["transaction_id"] for t in r.discrepant_transactions] == [docs[14]["_id"]]
    assert r.discrepant_transactions[0]["response_codes"] == [3002]
    assert r.notices == [{"notice_id": 9, "notice_type": 4, "status": 3,
                          "issued_at": at(2016, 7, 20).isoformat(), "target_value": 300,
                          "fulfilled_quantity": 300, "difference": 0}]


def test_table_4_of_a_year_is_table_1_of_the_next(docs: list[dict[str, Any]]) -> None:
    for period, year in ((2, 2015), (1, 2015), (1, 2016)):
        this, following = report(docs, period, year), report(docs, period, year + 1)
        assert this.table("4").rows == following.table("1").rows


def test_a_carry_over_leaves_the_first_period_report(docs: list[dict[str, Any]]) -> None:
    r = report(docs, 1, 2016)
    assert r.version == "1.0"
    assert cell(r, "1", "PartyHolding", "AAU") == 5_000
    assert cell(r, "2a", "CarryOverToNextPeriod", "Subtractions/AAU") == 2_000
    assert cell(r, "4", "PartyHolding", "AAU") == 3_000
    assert [line["difference"] for line in r.balance] == [0] * 6


@pytest.mark.parametrize(("period", "year", "opened", "field", "reason"), [
    (3, 2016, None, "period", "commitment period 3 has no SEF report"),
    (2, 2012, None, "year", "year 2012 is outside commitment period 2"),
    (1, 2007, None, "year", "year 2007 is outside commitment period 1"),
    (2, 2013, date(2015, 12, 1), "year", "before the registry existed (opened 2015-12-01)"),
    (2, 2018, None, "year", "year 2018 has not begun"),
])
def test_a_year_it_cannot_be_made_for_is_refused_naming_the_field(
    period: int, year: int, opened: date | None, field: str, reason: str
) -> None:
    with pytest.raises(ReportYearError) as refused:
        check_report_year(period, year, opened, date(2017, 1, 3))
    assert refused.value.field == field and reason in str(refused.value)


def test_the_xml_validates_and_reads_back_to_the_same_cells(
    docs: list[dict[str, Any]]
) -> None:
    for period in (1, 2):
        r = report(docs, period, 2016)
        xml = render.to_xml(r)
        assert render.validate_xml(xml) == period
        assert f'xmlns="{r.namespace}"'.encode() in xml
        assert render.from_xml(xml).cells() == r.cells()
        assert render.from_json(report_to_json(r)).cells() == r.cells()


def test_a_malformed_xml_is_refused_naming_what_is_wrong(docs: list[dict[str, Any]]) -> None:
    xml = render.to_xml(report(docs, 2, 2016))
    with pytest.raises(render.SefFormatError, match="not well-formed"):
        render.validate_xml(xml[:-20])
    with pytest.raises(render.SefFormatError, match="not a SEF namespace"):
        render.validate_xml(xml.replace(b"SEF:2.0:0.0", b"SEF:9.0:0.0"))
    with pytest.raises(render.SefFormatError) as wrong:
        render.validate_xml(xml.replace(b'column="AAU"', b'column="XYZ"', 1))
    assert "column" in str(wrong.value) or "XYZ" in str(wrong.value)
    with pytest.raises(render.SefFormatError) as text:
        render.validate_xml(xml.replace(b">100000<", b">lots<", 1))
    assert "Cell" in text.value.where


def test_csv_and_html_carry_every_cell(docs: list[dict[str, Any]]) -> None:
    r = report(docs, 2, 2016)
    lines = render.to_csv(r).splitlines()
    assert lines[0] == "party,commitment_period,year,table,row,kind,column,units"
    assert len(lines) == 1 + len(r.cells())
    assert "KZ,2,2016,2b,CH,row,Subtractions/AAU,4900" in lines
    html = render.to_html(r)
    assert "<svg" in html and "Table 2d. Share of proceeds" in html
    assert "4900" in html


def test_the_cross_check_lists_every_difference(docs: list[dict[str, Any]]) -> None:
    own = report(docs, 2, 2016)
    assert crosscheck.differences(own, report(docs, 2, 2016)) == []
    submitted = render.from_xml(render.to_xml(own))
    submitted.table("2b").row("CH").cells["Subtractions/AAU"] = 4_000
    assert crosscheck.differences(submitted, own) == [
        {"table": "2b", "row": "CH", "column": "Subtractions/AAU", "reported": 4_000,
         "itl": 4_900}]
