"""The demo: bring the whole stack up on embedded defaults (the ITL, Kazakhstan,
Switzerland, a Party with a second-period commitment to trade with, Japan, a Party
without one, and the CDM registry), run flows a-e through the operator APIs, walk KZ
through the first commitment period into the second (f), show every message and status,
then stop the stack.

    make demo          (exit status 0 when every flow ended as expected)
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from deploy.local.client import StackClient, poll
from deploy.local.stack import DEFAULT_REGISTRIES, ROOT, LocalStack, StackDatabases
from shared.codes import ResponseCode, TransactionStatus
from shared.recording.format import Selection
from shared.recording.journal import export_recording
from shared.recording.redrive import read_books, save_books
from shared.testing.infra import amqp_url, broker_tls, check_broker, new_namespace

ASSIGNED_AMOUNT = 1_000_000
CP1_ASSIGNED_AMOUNT = 300_000
PARTY_HOLDING = 1


class Demo:
    def __init__(self, client: StackClient) -> None:
        self.client = client
        self.results: list[tuple[str, bool, str]] = []

    def say(self, text: str = "") -> None:
        print(text, flush=True)

    def flow(self, title: str, run: Callable[[], str]) -> None:
        self.say(f"\n=== {title}")
        try:
            outcome = run()
            self.results.append((title, True, outcome))
        except Exception as exc:
            self.say(f"  !! {exc}")
            self.results.append((title, False, str(exc)))

    def trace(self, transaction_id: str) -> None:
        """Print the messages the ITL exchanged for a transaction, in order."""
        messages = self.client.ok("itl", "GET", "/messages",
                                  params={"correlation_id": transaction_id})
        for row in messages:
            env = row["envelope"]
            status = env["payload"].get("status")
            detail = f" status {status} {TransactionStatus(status).name}" if status else ""
            codes = [r["response_code"] for r in env["payload"].get("evaluation_results", [])]
            if codes:
                detail += f" codes {codes}"
            self.say(f"    {env['sender']:>3} -> {env['recipient']:<3} "
                     f"{env['message_type']}{detail}")

    def show_transaction(self, registry: str, transaction_id: str) -> dict[str, Any]:
        view: dict[str, Any] = self.client.settle(registry, transaction_id)
        self.trace(transaction_id)
        history = " -> ".join(h["status_name"] for h in view["history"])
        self.say(f"  {registry.upper()} {transaction_id}: {history}")
        for result in view["evaluation_results"]:
            self.say(f"    response code {result['response_code']}: {result['message']}")
        return view

    def holdings(self, registry: str, account_id: int, label: str) -> None:
        view = self.client.holdings(registry, account_id)
        totals = ", ".join(f"{t['units']} {t['unit_type']} (period "
                           f"{t['applicable_commitment_period']})"
                           for t in view["totals"]) or "none"
        blocks = "; ".join(f"{b['originating_registry']} {b['unit_type']} "
                           f"{b['serial_start']}-{b['serial_end']}" for b in view["blocks"][:4])
        self.say(f"  {label} ({view['account']['full_identifier']}): {totals}"
                 + (f"  [{blocks}]" if blocks else ""))

    def expect(self, condition: bool, what: str) -> None:
        if not condition:
            raise AssertionError(f"expected {what}")


def run_flows(demo: Demo) -> None:
    client = demo.client
    accounts: dict[str, int] = {}

    def setup() -> str:
        for standing in client.ok("itl", "GET", "/parties"):
            demo.say(f"  ITL: {standing['party']} ({standing['name']}) commitment periods "
                     f"{standing['commitment_periods']}, eligible under "
                     f"{', '.join(standing['eligible'])}")
        client.set_assigned_amount("KZ", 2, ASSIGNED_AMOUNT)
        party = client.ok("itl", "GET", "/parties/KZ/periods/2")
        demo.say(f"  ITL: KZ assigned amount {ASSIGNED_AMOUNT}, commitment period reserve "
                 f"{party['commitment_period_reserve']}")
        for key, registry, name in [("alice", "kz", "Alice Energy LLP"),
                                    ("bob", "kz", "Bob Cement JSC"),
                                    ("zora", "ch", "Zurich Power AG"),
                                    ("hiro", "jp", "Hiroshima Power KK")]:
            account = client.open_account(registry, name)
            accounts[key] = account["account_id"]
            demo.say(f"  {registry.upper()}: opened {account['full_identifier']} for {name}")
        return "accounts opened"

    def issuance() -> str:
        proposed = client.issue("kz", "AAU", ASSIGNED_AMOUNT, "MEP decision 2013-001")
        view = demo.show_transaction("kz", proposed["transaction_id"])
        demo.expect(view["status_name"] == "COMPLETED", "issuance completed")
        demo.holdings("kz", PARTY_HOLDING, "KZ Party holding")
        return f"{ASSIGNED_AMOUNT} AAU issued into KZ-100-1"

    def internal() -> str:
        response = client.transfer("kz", PARTY_HOLDING, accounts["alice"], "AAU", 20_000)
        demo.expect(response.status_code == 202, f"202, got {response.text}")
        demo.show_transaction("kz", response.json()["transaction_id"])
        response = client.transfer("kz", accounts["alice"], accounts["bob"], "AAU", 5_000)
        view = demo.show_transaction("kz", response.json()["transaction_id"])
        demo.expect(view["status_name"] == "COMPLETED", "internal transfer completed")
        demo.holdings("kz", accounts["alice"], "Alice")
        demo.holdings("kz", accounts["bob"], "Bob")
        return "20000 AAU to Alice, 5000 on to Bob"

    def external() -> str:
        response = client.transfer("kz", PARTY_HOLDING, accounts["zora"], "AAU", 30_000,
                                   target_registry="CH", approve=False)
        asked = response.json()
        demo.say(f"  approval {asked['approval_id']} {asked['status']}: {asked['operation']} "
                 f"initiated by {asked['initiated_by']}, expires {asked['expires_at']}")
        response = client.approve("kz", asked["approval_id"])
        transaction_id = response.json()["transaction_id"]
        demo.say(f"  approved by {response.json()['approved_by']}: {transaction_id} "
                 "proposed to the ITL")
        view = demo.show_transaction("kz", transaction_id)
        demo.expect(view["status_name"] == "COMPLETED", "external transfer completed")
        demo.expect(view["approved_by"] == "operator kz-operator-2",
                    "approved by a second operator")
        ch = client.wait_final("ch", transaction_id)
        demo.say(f"  CH {transaction_id}: " + " -> ".join(h["status_name"] for h in ch["history"]))
        demo.say("  the first international transfer of period-2 AAUs owes 2 % to the "
                 "Adaptation Fund (1/CMP.8 para 21):")
        (share,) = client.settle_share_of_proceeds("kz")
        demo.show_transaction("kz", share["transaction_id"])
        demo.say(f"  share of proceeds {share['transaction_id']}: supplementary type "
                 f"{share['supplementary_type']}, {share['quantity']} AAU to "
                 f"CDM-{share['acquiring']['account_type']}-{share['acquiring']['account_id']}")
        reported = client.ok("itl", "GET", "/parties/KZ/periods/2")["share_of_proceeds"]
        first = reported["first_international_transfers_of_aau"]
        demo.say(f"  ITL report: {first['transferred']} AAUs first transferred, "
                 f"{first['due']} due, {first['contributed']} contributed, {first['owed']} owed")
        demo.expect(share["quantity"] == 600 and first["owed"] == 0, "600 AAUs of proceeds")
        demo.holdings("kz", PARTY_HOLDING, "KZ Party holding")
        demo.holdings("ch", accounts["zora"], "Zurich Power")
        demo.holdings("cdm", 1100, "CDM Adaptation Fund")
        itl_ch = sum(r["units"] for r in client.itl_totals("CH"))
        ch_own = sum(r["units"] for r in client.registry_totals("ch"))
        demo.say(f"  ITL register for CH: {itl_ch} units; CH's own books: {ch_own}")
        demo.expect(itl_ch == ch_own == 30_000, "ITL and CH agree on 30000 units")
        return "30000 AAU KZ -> CH, 600 to the Adaptation Fund, books agree"

    def rejections() -> str:
        before = client.registry_totals("kz")
        response = client.transfer("kz", accounts["bob"], accounts["alice"], "AAU", 999_999)
        body = response.json()
        demo.say(f"  more than held: HTTP {response.status_code}, code "
                 f"{body.get('response_code')}: {body.get('detail')}")
        not_held = ResponseCode.BLOCK_NOT_HELD_BY_TRANSFERRING_ACCOUNT
        demo.expect(body.get("response_code") == not_held, "3002")
        response = client.transfer("kz", PARTY_HOLDING, 4242, "AAU", 10, target_registry="CH")
        view = demo.show_transaction("kz", response.json()["transaction_id"])
        demo.expect(view["response_codes"] == [ResponseCode.ACQUIRING_ACCOUNT_UNKNOWN], "5902")
        demo.say("  Japan took no second-period commitment: it may not acquire period-2 AAUs")
        response = client.transfer("kz", PARTY_HOLDING, accounts["hiro"], "AAU", 100,
                                   target_registry="JP")
        view = demo.show_transaction("kz", response.json()["transaction_id"])
        demo.expect(view["response_codes"] == [ResponseCode.PARTY_NOT_ELIGIBLE], "4006")
        party = client.ok("itl", "GET", "/parties/KZ/periods/2")
        breach = party["holdings"] - party["commitment_period_reserve"] + 1
        demo.say(f"  KZ holds {party['holdings']} units against a reserve of "
                 f"{party['commitment_period_reserve']}: try to sell {breach}")
        response = client.transfer("kz", PARTY_HOLDING, accounts["zora"], "AAU", breach,
                                   target_registry="CH")
        view = demo.show_transaction("kz", response.json()["transaction_id"])
        demo.expect(view["response_codes"] == [ResponseCode.CPR_VIOLATED], "5001")
        demo.expect(client.registry_totals("kz") == before, "KZ holdings unchanged")
        demo.say("  KZ holdings unchanged by all four refusals")
        return "3002, 5902, 4006, 5001 refused; nothing moved"

    def cdm() -> str:
        client.ok("cdm", "POST", "/projects", json={
            "project_id": "CDM-0001", "title": "Tashkent landfill gas", "host_party": "UZ"})
        request = client.ok("cdm", "POST", "/projects/CDM-0001/issuances", json={
            "unit_type": "CER", "quantity": 10_000, "acquiring_registry": "KZ",
            "acquiring_account_id": accounts["alice"]})
        demo.say(f"  CDM issuance request {request['request_id']}: {request['quantity']} CER, "
                 f"share of proceeds {request['share_of_proceeds']}")
        demo.show_transaction("cdm", request["issuance_transaction"])
        request = poll(lambda: client.ok("cdm", "GET", f"/issuances/{request['request_id']}"),
                       lambda r: r["state"] in ("completed", "failed"), "CDM issuance")
        demo.expect(request["state"] == "completed", "CDM issuance forwarded")
        demo.show_transaction("cdm", request["share_of_proceeds_transaction"])
        demo.show_transaction("cdm", request["forward_transaction"])
        demo.holdings("cdm", 1100, "CDM Adaptation Fund")
        demo.holdings("kz", accounts["alice"], "Alice")
        return "10000 CER: 200 to the Adaptation Fund, 9800 to Alice in KZ"

    demo.flow("setup: ITL records KZ's assigned amount; accounts are opened", setup)
    demo.flow("a. AAU issuance in KZ on a decision of the authorised body", issuance)
    demo.flow("b. internal transfers between KZ accounts", internal)
    demo.flow("c. external transfer of AAUs from KZ to CH, with the share of proceeds",
              external)
    demo.flow("d. refusals that change nothing", rejections)
    demo.flow("e. CER issuance by the CDM registry, forwarded to KZ", cdm)
    run_commitment_period(demo)


def run_commitment_period(demo: Demo) -> None:
    """f. The first commitment period in KZ, from issuance to carry-over, on the
    simulation clock of the whole stack."""
    client = demo.client
    decisions: dict[str, str] = {}

    def clock(moment: str) -> None:
        demo.say(f"  -- clock of the whole stack set to {client.set_clock(moment).isoformat()}")

    def propose(path: str, body: dict[str, Any]) -> dict[str, Any]:
        return demo.show_transaction("kz", client.ok("kz", "POST", path,
                                                     json=body)["transaction_id"])

    def start() -> str:
        clock("2008-01-15T09:00:00+00:00")
        client.set_assigned_amount("KZ", 1, CP1_ASSIGNED_AMOUNT, reviewed_inventory=60_000,
                                   base_year_emissions=CP1_ASSIGNED_AMOUNT)
        party = client.ok("itl", "GET", "/parties/KZ/periods/1")
        demo.say(f"  ITL: KZ period 1 assigned amount {CP1_ASSIGNED_AMOUNT}, reserve "
                 f"{party['commitment_period_reserve']} (5 x reviewed inventory 60000)")
        decided = client.decide("kz", "issuance", "AAU", CP1_ASSIGNED_AMOUNT, "MEP 2008-01",
                                commitment_period=1)
        demo.say(f"  authorised body: decision {decided['decision_id']} to issue "
                 f"{CP1_ASSIGNED_AMOUNT} AAUs")
        view = propose("/transactions/issuance", {"decision_id": decided["decision_id"]})
        demo.expect(view["status_name"] == "COMPLETED", "CP1 issuance completed")
        return f"{CP1_ASSIGNED_AMOUNT} AAUs of period 1"

    def convert() -> str:
        decided = client.decide("kz", "conversion", "AAU", 5_000, "MEP 2009-JI-1",
                                commitment_period=1, project_id="KZ-JI-0001")
        view = propose("/transactions/conversion", {
            "unit_type": "AAU", "quantity": 5_000, "commitment_period": 1,
            "project_id": "KZ-JI-0001", "track": 1, "decision_id": decided["decision_id"]})
        demo.expect(view["status_name"] == "COMPLETED", "conversion completed")
        return "5000 AAUs became ERUs of project KZ-JI-0001"

    def withdraw() -> str:
        decided = client.decide("kz", "withdrawal", "AAU", 1_000, "MEP 2010-W-1",
                                commitment_period=1, ground="voluntary")
        decisions["withdrawal"] = decided["decision_id"]
        demo.say(f"  decision {decided['decision_id']}: withdraw 1000 AAUs, due "
                 f"{decided['due_at']} ({decided['follow_up']}), carried out from "
                 f"{decided['executes_at']} unless appealed")
        clock((datetime.fromisoformat(decided["due_at"]) - timedelta(hours=12)).isoformat())
        done = poll(lambda: client.ok("kz", "GET", f"/decisions/{decided['decision_id']}"),
                    lambda d: d["state"] == "executed", "withdrawal executed")
        demo.show_transaction("kz", done["transaction_ids"][0])
        demo.say(f"  decision {done['decision_id']}: {done['follow_up']} on "
                 f"{done['executed_at']}")
        return "withdrawn by itself within its month, unappealed"

    def temporary() -> str:
        clock("2011-06-01T09:00:00+00:00")
        client.ok("cdm", "POST", "/projects", json={
            "project_id": "CDM-AR-0001", "title": "Aral reforestation", "host_party": "UZ",
            "afforestation_reforestation": True})
        request = client.ok("cdm", "POST", "/projects/CDM-AR-0001/issuances", json={
            "unit_type": "TCER", "quantity": 2_000, "commitment_period": 1,
            "acquiring_registry": "KZ", "acquiring_account_type": 100,
            "acquiring_account_id": PARTY_HOLDING})
        request = poll(lambda: client.ok("cdm", "GET", f"/issuances/{request['request_id']}"),
                       lambda r: r["state"] == "completed", "tCERs forwarded")
        client.settle("cdm", request["forward_transaction"])
        expiry = {b["expiry_date"] for b in client.holdings("kz", PARTY_HOLDING)["blocks"]
                  if b["unit_type"] == "TCER"}
        demo.say(f"  tCERs of period 1 expire at the end of period 2: {sorted(expiry)}")
        demo.expect(expiry == {"2020-12-31"}, "tCERs expiring with period 2")
        return "1960 tCERs of an A/R project in KZ, expiring 2020-12-31"

    def end_of_period() -> str:
        clock("2013-01-02T09:00:00+00:00")  # retirement and cancellation follow the period
        for unit_type, quantity, reference in (("AAU", 250_000, "MEP 2013-RET-1"),
                                               ("TCER", 1_500, "MEP 2013-RET-T")):
            decided = client.decide("kz", "retirement", unit_type, quantity, reference,
                                    commitment_period=1)
            view = propose("/transactions/retirement", {"decision_id": decided["decision_id"]})
            demo.expect(view["status_name"] == "COMPLETED", f"{unit_type} retired")
        decided = client.decide("kz", "cancellation", "AAU", 2_000, "MEP 2013-C-1",
                                commitment_period=1)
        view = propose("/transactions/cancellation", {
            "unit_type": "AAU", "quantity": 2_000, "commitment_period": 1,
            "account_type": 230, "decision_id": decided["decision_id"]})
        demo.expect(view["status_name"] == "COMPLETED", "cancellation completed")
        early = client.call("kz", "POST", "/transactions/carry-over", json={
            "unit_type": "AAU", "quantity": 30_000, "commitment_period": 1})
        demo.say(f"  carry-over now: HTTP {early.status_code}, code "
                 f"{early.json().get('response_code')}: {early.json().get('detail')}")
        demo.expect(early.json().get("response_code") == ResponseCode.TRUE_UP_PERIOD_NOT_ENDED,
                    "carry-over refused before the true-up period ends (4015)")
        return "250000 AAUs and 1500 tCERs retired, 2000 AAUs cancelled; carry-over waits"

    def carry_over() -> str:
        clock("2015-11-19T09:00:00+00:00")
        view = propose("/transactions/carry-over", {"unit_type": "AAU", "quantity": 30_000,
                                                    "commitment_period": 1})
        demo.expect(view["status_name"] == "COMPLETED", "carry-over completed")
        demo.holdings("kz", 4, "Previous period surplus reserve")
        return "30000 AAUs carried over into the previous period surplus reserve"

    def expiry() -> str:
        clock("2020-12-01T09:00:00+00:00")
        notice = poll(lambda: [n for n in client.ok("kz", "GET", "/notices")
                               if n["notice_type"] == 3],
                      lambda found: bool(found), "notice of impending expiry")[0]
        demo.say(f"  ITL notice {notice['notice_id']} (impending expiry): "
                 f"{notice['target_value']} tCERs, due {notice['action_due_date']}: "
                 f"{notice['required_action']}")
        view = propose("/transactions/replacement", {
            "notice_id": notice["notice_id"], "unit_type": "AAU", "commitment_period": 1})
        demo.expect(view["status_name"] == "COMPLETED", "replacement completed")
        at_itl = client.ok("itl", "GET", f"/notices/{notice['notice_id']}")
        demo.say(f"  ITL: notice {notice['notice_id']} {at_itl['status_name']}, "
                 f"{at_itl['fulfilled_quantity']} units replaced by {at_itl['transactions']}")
        for account, label in ((PARTY_HOLDING, "Party holding"),
                               (102, "Voluntary cancellation, period 1"),
                               (103, "Retirement, period 1"),
                               (4, "Previous period surplus reserve"),
                               (109, "tCER replacement, period 1")):
            demo.holdings("kz", account, label)
        return "1500 retired tCERs replaced by AAUs before they expire"

    demo.flow("f1. period 1 begins: assigned amount and AAU issuance", start)
    demo.flow("f2. conversion of AAUs into ERUs (JI track 1)", convert)
    demo.flow("f3. withdrawal decided, its month passes, carried out", withdraw)
    demo.flow("f4. tCERs of an A/R CDM project arrive", temporary)
    demo.flow("f5. end of period 1: retirement and cancellation decided", end_of_period)
    demo.flow("f6. after the true-up period: carry-over into period 2", carry_over)
    demo.flow("f7. end of period 2: retired tCERs expire and are replaced", expiry)


def save_recording(stack: LocalStack) -> None:
    """Export the run the stack recorded (docs/recording.md) before the stack, and its
    journal, go."""
    path = ROOT / "var" / "demo" / "recording.jsonl.gz"
    path.parent.mkdir(parents=True, exist_ok=True)
    count = asyncio.run(export_recording(stack.broker_url, stack.namespace, path,
                                         Selection(), broker_tls().context(stack.broker_url)))
    print(f"\nThe run's recording: {path} ({count} events; docs/recording.md). Draw a "
          f"flow: .venv/bin/kyoto-sim diagram {path} --transaction <id> -o flow.html")
    books = path.parent / "books.json"
    databases = StackDatabases(stack)
    try:
        save_books(books, read_books(databases))
    finally:
        databases.close()
    print(f"Its books, for a replay to compare with: {books} (kyoto-sim replay {path} "
          f"--books {books}; make replay-demo)")


# reconciliation (protocol.md 5, docs/adr/0030)


def run_reconciliation(demo: Demo) -> None:
    """The demo ends with a reconciliation of every registry: the ITL compares its
    register with each registry's books at one snapshot; each should end 5 (ITL
    completed)."""
    client = demo.client

    def reconcile_all() -> str:
        started = client.ok("itl", "POST", "/reconciliations", json={"registry": "all"})
        statuses = []
        for view in started:
            done = client.wait_reconciliation(view["reconciliation_id"], timeout=120)
            demo.say(f"  ITL: reconciliation {done['reconciliation_id']} of "
                     f"{done['registry']}: status {done['status']} {done['status_name']} "
                     f"in phase {done['phase']} ({len(done['differing_totals'])} totals "
                     f"differ, {len(done['flagged'])} block ranges flagged)")
            statuses.append(done["status"])
        demo.expect(statuses == [5] * len(statuses), "every registry reconciles to 5")
        return f"{len(statuses)} registries reconciled: statuses {statuses}"

    demo.flow("g. reconciliation of every registry with the ITL", reconcile_all)


# --- the SEF annual reports (protocol.md 6) ---

#: Where the demo writes KZ's SEF reports (kept after the stack stops).
SEF_DIR = ROOT / "var" / "demo" / "sef"


def write_sef_reports(demo: Demo) -> None:
    """h. KZ's SEF report of every year of the demo, for each commitment period (from
    the period's first year to the simulation clock's), as HTML and SEF XML, with an
    index page; the ITL cross-checks each XML against its own transaction log."""
    client = demo.client

    def reports() -> str:
        SEF_DIR.mkdir(parents=True, exist_ok=True)
        today = client.now("kz").year
        links, written, differences = [], 0, 0
        for period, first in ((1, 2008), (2, 2013)):
            for year in range(first, today + 1):
                name = f"sef-KZ-cp{period}-{year}"
                page = client.call("kz", "GET", f"/sef/{period}/{year}",
                                   params={"format": "html"})
                xml = client.call("kz", "GET", f"/sef/{period}/{year}",
                                  params={"format": "xml"})
                if page.status_code != 200 or xml.status_code != 200:
                    demo.say(f"  {name}: {page.status_code} {page.text[:200]}")
                    continue
                (SEF_DIR / f"{name}.html").write_text(page.text)
                (SEF_DIR / f"{name}.xml").write_bytes(xml.content)
                checked = client.ok("itl", "POST", "/sef-reports", content=xml.content,
                                    headers={"Content-Type": "application/xml"})
                differences += len(checked["differences"])
                links.append(f'<li><a href="{name}.html">commitment period {period}, {year}'
                             f'</a> (<a href="{name}.xml">XML</a>; ITL cross-check: '
                             f'{len(checked["differences"])} differences)</li>')
                written += 1
        index = SEF_DIR / "index.html"
        index.write_text("<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>SEF "
                         "reports of KZ</title></head><body><h1>SEF reports of KZ</h1><ul>"
                         + "".join(links) + "</ul></body></html>\n")
        demo.expect(written > 0 and differences == 0,
                    "SEF reports written and consistent with the ITL")
        demo.say(f"  KZ's SEF reports ({written}, HTML and XML): {index.resolve()}")
        return f"{written} reports in {index.resolve()}, {differences} differences at the ITL"

    demo.flow("h. KZ's SEF annual reports for the demo's years", reports)


def main() -> int:
    asyncio.run(check_broker(amqp_url()))
    workdir = Path(tempfile.mkdtemp(prefix="kyoto-demo-"))
    stack = LocalStack(workdir=workdir, registries=DEFAULT_REGISTRIES,
                       namespace=new_namespace())
    print(f"Starting the stack (logs in {stack.log_dir}) ...", flush=True)
    started = time.monotonic()
    results: list[tuple[str, bool, str]] = []
    try:
        stack.start()
        for service in stack.services.values():
            print(f"  {service.name:<4} {service.url}/docs")
        if stack.broker is not None:
            print("  broker users, one per service: "
                  + ", ".join(stack.broker.users))
        print(f"  up in {time.monotonic() - started:.1f}s")
        client = StackClient({name: s.url for name, s in stack.services.items()},
                             issuer=stack.issuer)
        demo = Demo(client)
        run_flows(demo)
        run_reconciliation(demo)
        write_sef_reports(demo)
        results = demo.results
        client.close()
        if stack.recording:
            save_recording(stack)
    finally:
        stack.stop()
    print("\n=== summary")
    for title, ok, outcome in results:
        print(f"  [{'ok' if ok else 'FAILED'}] {title.split(':')[0]}: {outcome}")
    failed = [r for r in results if not r[1]]
    print(f"\n{len(results) - len(failed)} of {len(results)} steps as expected")
    if SEF_DIR.joinpath("index.html").exists():
        print(f"KZ's SEF reports: {SEF_DIR.joinpath('index.html').resolve()}")
    return 1 if failed or not results else 0


if __name__ == "__main__":
    sys.exit(main())
