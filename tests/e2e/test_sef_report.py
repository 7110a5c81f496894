"""KZ's annual SEF report (protocol.md 6) through the real processes: a year of
operations (issuance, conversion, internal and external transfers both ways, CERs from
the CDM registry, the share of proceeds, cancellation, retirement, carry-over, lCER
replacement), then every table against what was done, table 4 of one year against
table 1 of the next, the XML against the checked-in schema, and the ITL's cross-check
of the report unaltered and with a planted difference.

The stack's clock starts on 1 December 2015 (after the first period's true-up); 2015
sees the issuances, 2016 the year of operations; the reports are asked for in 2017.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from deploy.local.client import StackClient, poll
from shared.sef import render

pytestmark = pytest.mark.e2e

CLOCK_START = "2015-12-01T00:00:00+00:00"
REGISTRIES = ("KZ", "CH")
PARTY, PPSR, RETIREMENT_CP1 = 1, 4, 103
#: previous period surplus reserve units sold to CH's reserve (within 2 % of its 50 000)
PPSR_SOLD = 500
KZ_AA_CP1, KZ_AA_CP2, CH_AA_CP2 = 50_000, 200_000, 100_000
CONVERTED, TO_ALICE, SOLD, BOUGHT, CERS, CANCELLED, RETIRED, CARRIED, LCERS = (
    1_000, 10_000, 4_900, 700, 980, 500, 300, 20_000, 1_000)
COLUMN = {"AAU": "AAU", "RMU": "RMU", "ERU_FROM_AAU": "ERU", "ERU_FROM_RMU": "ERU",
          "CER": "CER", "TCER": "tCER", "LCER": "lCER"}


def proposed(client: StackClient, response: Any, registry: str = "kz") -> Any:
    assert response.status_code == 202, response.text
    view = client.settle(registry, response.json()["transaction_id"])
    assert view["status_name"] == "COMPLETED", view["evaluation_results"]
    return view


def cdm_issuance(client: StackClient, project: str, body: dict[str, Any]) -> None:
    request = client.ok("cdm", "POST", f"/projects/{project}/issuances", json=body)
    path = f"/issuances/{request['request_id']}"
    done = poll(lambda: client.ok("cdm", "GET", path),
                lambda r: r["state"] in ("completed", "failed"), "CDM issuance")
    assert done["state"] == "completed", done
    client.settle("cdm", done["forward_transaction"])


def sef(client: StackClient, period: int, year: int, fmt: str = "json") -> Any:
    response = client.call("kz", "GET", f"/sef/{period}/{year}", params={"format": fmt})
    assert response.status_code == 200, response.text
    return response.json() if fmt == "json" else response


def cells(report: dict[str, Any], table: str) -> dict[str, dict[str, int]]:
    (found,) = [t for t in report["tables"] if t["name"] == table]
    return {row["name"]: row["cells"] for row in found["rows"]}


@pytest.fixture(scope="module")
def year(client: StackClient) -> dict[str, Any]:
    """The operations of 2015 and 2016; what the registry's books hold at the end."""
    client.set_assigned_amount("KZ", 1, 400_000, reviewed_inventory=1_000,
                               base_year_emissions=1_000_000)
    client.set_assigned_amount("KZ", 2, KZ_AA_CP2, reviewed_inventory=1_000,
                               base_year_emissions=300_000)
    client.set_assigned_amount("CH", 1, 50_000)
    client.set_assigned_amount("CH", 2, CH_AA_CP2, reviewed_inventory=100)
    for registry, period, quantity in (("kz", 1, KZ_AA_CP1), ("kz", 2, KZ_AA_CP2),
                                       ("ch", 2, 5_000)):
        issued = client.issue(registry, "AAU", quantity, f"ISS-{registry}-{period}",
                              period=period)
        assert client.settle(registry, issued["transaction_id"])["status_name"] == "COMPLETED"
    alice = client.open_account("kz", "Alice Energy LLP")["account_id"]
    zora = client.open_account("ch", "Zurich Power AG")["account_id"]
    # first-period lCERs of an A/R project (2 % of 1 020 to the Adaptation Fund)
    client.ok("cdm", "POST", "/projects", json={
        "project_id": "CDM-AR", "title": "Forest", "host_party": "UZ",
        "afforestation_reforestation": True, "crediting_period_end": "2030-06-30"})
    cdm_issuance(client, "CDM-AR", {"unit_type": "LCER", "quantity": 1_020,
                                    "commitment_period": 1, "acquiring_registry": "KZ",
                                    "acquiring_account_type": 100,
                                    "acquiring_account_id": PARTY})

    client.set_clock("2016-02-01T00:00:00+00:00")
    decision = client.decide("kz", "conversion", "AAU", CONVERTED, "CONV-1", project_id="KZ-JI")
    proposed(client, client.call("kz", "POST", "/transactions/conversion", json={
        "unit_type": "AAU", "quantity": CONVERTED, "project_id": "KZ-JI", "track": 1,
        "decision_id": decision["decision_id"]}))
    client.settle_share_of_proceeds("kz")
    proposed(client, client.transfer("kz", PARTY, alice, "AAU", TO_ALICE))
    proposed(client, client.transfer("kz", alice, zora, "AAU", SOLD, target_registry="CH"))
    proposed(client, client.transfer("ch", 1, alice, "AAU", BOUGHT, target_registry="KZ"),
             registry="ch")
    client.settle_share_of_proceeds("kz")
    client.settle_share_of_proceeds("ch")
    client.ok("cdm", "POST", "/projects", json={"project_id": "CDM-H", "title": "Hydro",
                                                "host_party": "UZ"})
    cdm_issuance(client, "CDM-H", {"quantity": 1_000, "acquiring_registry": "KZ",
                                   "acquiring_account_type": 100,
                                   "acquiring_account_id": PARTY})
    proposed(client, client.call("kz", "POST", "/transactions/cancellation", json={
        "unit_type": "AAU", "quantity": CANCELLED, "account_type": 280}))
    proposed(client, client.call("kz", "POST", "/transactions/carry-over", json={
        "unit_type": "AAU", "quantity": CARRIED, "commitment_period": 1}))
    proposed(client, client.transfer("kz", PPSR, PPSR, "AAU", PPSR_SOLD, target_registry="CH",
                                     target_type=130))
    # the first period after its end: retirement, and lCERs lost to a reversal of
    # storage replaced by lCERs of the same project
    for unit_type in ("AAU", "LCER"):
        retire = client.decide("kz", "retirement", unit_type, RETIRED, f"RET-{unit_type}",
                               commitment_period=1)
        proposed(client, client.call("kz", "POST", "/transactions/retirement",
                                     json={"decision_id": retire["decision_id"]}))
    wire = [{k: b[k] for k in ("serial_start", "serial_end", "expiry_date", "project_id")}
            | {"originating_registry": "CDM", "unit_type": 7, "original_commitment_period": 1,
               "applicable_commitment_period": 1}
            for b in client.holdings("kz", RETIREMENT_CP1)["blocks"] if b["unit_type"] == "LCER"]
    notice, _ = client.send_notice(notice_type=4, project_id="CDM-AR", target_value=RETIRED,
                                   unit_type="LCER", blocks=wire, text="reversal")
    proposed(client, client.call("kz", "POST", "/transactions/replacement", json={
        "notice_id": notice["notice_id"], "unit_type": "LCER", "commitment_period": 1}))
    books = client.registry_totals("kz")
    client.set_clock("2017-01-03T00:00:00+00:00")
    return {"alice": alice, "zora": zora, "books": books, "notice": notice}


def table_4_is_the_books(report: dict[str, Any], books: list[dict[str, Any]],
                         period: int) -> None:
    """Table 4 of the year just ended equals the registry's maintained summaries."""
    held: Counter[tuple[int, str]] = Counter()
    for row in books:
        if row["applicable_commitment_period"] == period:
            held[(row["account_type"], COLUMN[row["unit_type"]])] += row["units"]
    t4 = cells(report, "4")
    for name, types in {"PartyHolding": (100,), "EntityHolding": (121,),
                        "RetirementAccount": (300,),
                        "lCERReplacementForReversalOfStorage": (422,)}.items():
        for unit in COLUMN.values():
            assert t4[name][unit] == sum(held[(t, unit)] for t in types), (name, unit)
    for unit in COLUMN.values():
        assert t4["Total"][unit] == sum(v for (_, u), v in held.items() if u == unit), unit


def every_total_is_the_sum_of_its_rows(report: dict[str, Any]) -> None:
    """Each subtotal or total sums the rows above it (5a, where a period's starting
    values stand beside its years, aside)."""
    for table in report["tables"]:
        if table["name"] == "5a":
            continue
        above: list[dict[str, int]] = []
        for row in table["rows"]:
            if row["kind"] in ("subtotal", "total"):
                assert row["cells"] == {c: sum(r[c] for r in above)
                                        for c in table["columns"]}, (table["name"], row)
                above = []
            elif row["kind"] == "row":
                above.append(row["cells"])


def test_every_table_matches_the_operations_of_the_year(
    client: StackClient, year: dict[str, Any]
) -> None:
    report = sef(client, 2, 2016)
    assert (report["version"], report["party"], report["year"]) == ("2.0", "KZ", 2016)
    t1, t4 = cells(report, "1"), cells(report, "4")
    assert t1["PartyHolding"]["AAU"] == KZ_AA_CP2 and t1["Total"]["AAU"] == KZ_AA_CP2
    table_4_is_the_books(report, year["books"], 2)
    sop_aau, sop_eru = SOLD * 2 // 100, CONVERTED * 2 // 100
    assert t4["PartyHolding"]["AAU"] == (KZ_AA_CP2 - CONVERTED - TO_ALICE - CANCELLED)
    assert t4["PartyHolding"]["ERU"] == CONVERTED - sop_eru
    assert t4["PartyHolding"]["CER"] == CERS
    assert t4["EntityHolding"]["AAU"] == TO_ALICE - SOLD - sop_aau + BOUGHT
    assert t4["PreviousPeriodSurplusReserveAccount"]["AAU"] == CARRIED - PPSR_SOLD
    assert t4["Art31TerQuaterAmbitionIncreaseCancellationAccount"]["AAU"] == CANCELLED

    t2a = cells(report, "2a")
    assert t2a["IssuanceConversionOfPartyVerifiedProjects"]["Additions/ERU"] == CONVERTED
    assert t2a["IssuanceConversionOfPartyVerifiedProjects"]["Subtractions/AAU"] == CONVERTED
    assert t2a["Art31TerQuaterAmbitionIncreaseCancellation"]["Subtractions/AAU"] == CANCELLED
    assert t2a["Subtotal"]["Subtractions/AAU"] == CONVERTED + CANCELLED
    assert t2a["Retirement"]["Subtractions/AAU"] == 0
    t2b = cells(report, "2b")
    assert (t2b["CH"]["Subtractions/AAU"], t2b["CH"]["Additions/AAU"]) == (SOLD, BOUGHT)
    assert t2b["CDM"]["Subtractions/AAU"] == sop_aau
    assert t2b["CDM"]["Subtractions/ERU"] == sop_eru
    assert t2b["CDM"]["Additions/CER"] == CERS
    t2c = cells(report, "2c")  # transfers of the previous period surplus reserve
    assert set(t2c) == {"CH", "Subtotal"}
    assert (t2c["CH"]["Subtractions/AAU"], t2c["Subtotal"]["Subtractions/AAU"]) == (
        PPSR_SOLD, PPSR_SOLD)
    t2d = cells(report, "2d")
    assert t2d["FirstInternationalTransfersOfAAU"] == {"AmountTransferred": SOLD,
                                                       "AmountContributed": sop_aau}
    assert t2d["IssuanceERUFromPartyVerifiedProjects"] == {"AmountTransferred": CONVERTED,
                                                           "AmountContributed": sop_eru}
    t2e = cells(report, "2e")
    assert t2e["Total"]["Subtractions/AAU"] == (CONVERTED + CANCELLED + SOLD + sop_aau
                                                + PPSR_SOLD)
    assert t2e["Total"]["Additions/AAU"] == BOUGHT
    t5a = cells(report, "5a")
    assert t5a["AssignedAmountUnitsIssued"]["Additions/AAU"] == KZ_AA_CP2
    assert t5a["CarryOverPPSR"]["Additions/AAU"] == CARRIED
    assert cells(report, "5b")["2016"] == t2e["Total"]
    assert cells(report, "5c")["2016"] == t2c["Subtotal"]
    assert cells(report, "3")["Total"] == dict.fromkeys(COLUMN.values(), 0)
    for empty in ("5d", "5e", "6a", "6b", "6c"):  # nothing replaced, retired, corrected
        assert set(cells(report, empty)["Total"].values()) == {0}, empty
    every_total_is_the_sum_of_its_rows(report)
    assert [line["difference"] for line in report["balance"]] == [0] * 6

    # the first period, after its end: retirement, replacement, the carried units gone
    first = sef(client, 1, 2016)
    assert first["version"] == "1.0"
    table_4_is_the_books(first, year["books"], 1)
    assert cells(first, "1")["PartyHolding"]["AAU"] == KZ_AA_CP1
    assert cells(first, "1")["PartyHolding"]["lCER"] == LCERS
    t2a = cells(first, "2a")
    assert t2a["CarryOverToNextPeriod"]["Subtractions/AAU"] == CARRIED
    assert t2a["ReplacementForReversalOfStorage"]["Subtractions/lCER"] == RETIRED
    assert (t2a["Retirement"]["Subtractions/AAU"], t2a["Retirement"]["Subtractions/lCER"]) \
        == (RETIRED, RETIRED)
    t4 = cells(first, "4")
    assert t4["PartyHolding"]["AAU"] == KZ_AA_CP1 - CARRIED - RETIRED
    assert t4["PartyHolding"]["lCER"] == LCERS - 2 * RETIRED
    assert t4["RetirementAccount"]["lCER"] == t4["RetirementAccount"]["AAU"] == RETIRED
    assert t4["lCERReplacementForReversalOfStorage"]["lCER"] == RETIRED
    t3 = cells(first, "3")
    assert t3["SubjectToReplacementForReversalOfStorage"]["lCER"] == RETIRED
    assert t3["ReplacementForReversalOfStorage"]["lCER"] == RETIRED
    assert cells(first, "5b")["2016"]["lCER"] == RETIRED
    assert cells(first, "5c")["Total"] == {"AAU": RETIRED, "ERU": 0, "RMU": 0, "CER": 0,
                                          "tCER": 0, "lCER": RETIRED}
    assert cells(first, "5a")["2016"] == cells(first, "2c")["Total"]
    assert [line["difference"] for line in first["balance"]] == [0] * 6
    every_total_is_the_sum_of_its_rows(first)
    (notice,) = [n for n in first["notices"] if n["notice_id"] == year["notice"]["notice_id"]]
    assert (notice["target_value"], notice["fulfilled_quantity"], notice["difference"]) == (
        RETIRED, RETIRED, 0)


def test_table_4_of_a_year_is_table_1_of_the_next(
    client: StackClient, year: dict[str, Any]
) -> None:
    for period in (1, 2):
        assert cells(sef(client, period, 2015), "4") == cells(sef(client, period, 2016), "1")
        assert cells(sef(client, period, 2016), "4") == cells(sef(client, period, 2017), "1")


def test_the_xml_validates_against_the_checked_in_schema(
    client: StackClient, year: dict[str, Any]
) -> None:
    for period in (1, 2):
        response = sef(client, period, 2016, "xml")
        assert response.headers["content-type"].startswith("application/xml")
        assert render.validate_xml(response.content) == period
        assert render.from_xml(response.content).cells() == {
            (t["name"], r["name"], c): v for t in sef(client, period, 2016)["tables"]
            for r in t["rows"] for c, v in r["cells"].items()}
    csv = sef(client, 2, 2016, "csv").text
    assert f"KZ,2,2016,2b,CH,row,Subtractions/AAU,{SOLD}" in csv.splitlines()
    html = sef(client, 2, 2016, "html").text
    assert "<svg" in html and "Table 4. Total quantities" in html


def test_the_itl_finds_no_difference_in_the_report_and_finds_a_planted_one(
    client: StackClient, year: dict[str, Any]
) -> None:
    xml = sef(client, 2, 2016, "xml").content
    submitted = client.call("itl", "POST", "/sef-reports", content=xml,
                            headers={"Content-Type": "application/xml"})
    assert submitted.status_code == 200, submitted.text
    assert submitted.json()["consistent"] is True, submitted.json()["differences"]
    assert submitted.json()["cells_compared"] > 500
    planted = xml.replace(f'<Cell column="Subtractions/AAU">{SOLD}</Cell>'.encode(),
                          f'<Cell column="Subtractions/AAU">{SOLD - 1}</Cell>'.encode(), 1)
    assert planted != xml
    found = client.call("itl", "POST", "/sef-reports", content=planted,
                        headers={"Content-Type": "application/xml"}).json()
    assert found["consistent"] is False
    assert found["differences"] == [{"table": "2b", "row": "CH", "column": "Subtractions/AAU",
                                     "reported": SOLD - 1, "itl": SOLD}]
    as_json = sef(client, 1, 2016)
    checked = client.call("itl", "POST", "/sef-reports", json=as_json).json()
    assert checked["consistent"] is True, checked["differences"]


@pytest.mark.parametrize(("path", "field", "reason"), [
    ("/sef/2/2012", "year", "year 2012 is outside commitment period 2"),
    ("/sef/2/2031", "year", "year 2031 is outside commitment period 2"),
    ("/sef/2/2013", "year", "year 2013 is before the registry existed (opened 2015-12-01)"),
    ("/sef/2/2018", "year", "year 2018 has not begun"),
    ("/sef/3/2016", "period", "commitment period 3 has no SEF report"),
])
def test_a_report_for_a_year_it_cannot_cover_is_refused_naming_the_field(
    client: StackClient, year: dict[str, Any], path: str, field: str, reason: str
) -> None:
    response = client.call("kz", "GET", path)
    assert response.status_code == 422, response.text
    [error] = response.json()["detail"]
    assert error["loc"] == ["path", field] and reason in error["msg"]


@pytest.mark.parametrize(("body", "kind", "loc", "reason"), [
    (b"<SEFSubmission", "application/xml", ["body", "document"], "not well-formed"),
    (b'<x xmlns="urn:other"/>', "application/xml", ["body", "SEFSubmission"],
     "not a SEF namespace"),
    (b'{"party": "KZ", "year": 2016, "tables": []}', "application/json",
     ["body", "commitment_period"], "missing"),
    (b'{"party": "ZZ", "commitment_period": 2, "year": 2016, "tables": []}',
     "application/json", ["body", "party"], "ZZ is not a registry the ITL knows"),
    (b'{"party": "KZ", "commitment_period": 2, "year": 2040, "tables": []}',
     "application/json", ["body", "year"], "outside commitment period 2"),
])
def test_a_malformed_submission_is_refused_naming_what_is_wrong(
    client: StackClient, year: dict[str, Any], body: bytes, kind: str, loc: list[str],
    reason: str
) -> None:
    response = client.call("itl", "POST", "/sef-reports", content=body,
                           headers={"Content-Type": kind})
    assert response.status_code == 422, response.text
    [error] = response.json()["detail"]
    assert error["loc"] == loc and reason in error["msg"], error


def test_a_submission_whose_schema_is_broken_names_the_element(
    client: StackClient, year: dict[str, Any]
) -> None:
    xml = sef(client, 2, 2016, "xml").content.replace(b'column="AAU"', b'column="AUU"', 1)
    response = client.call("itl", "POST", "/sef-reports", content=xml,
                           headers={"Content-Type": "application/xml"})
    assert response.status_code == 422
    [error] = response.json()["detail"]
    assert "Cell" in "/".join(map(str, error["loc"])) and "AUU" in error["msg"]
