"""The web console (deploy/console, docs/adr/0041) in a real browser: Debian's Chromium,
headless, driven by Playwright, against a stack whose console it starts.

The console acts with the signed-in person's token: a KZ operator reads KZ and the ITL but
not CH; an operation it starts is the registry's to check, and the API's errors come back
next to the field they name. An external transfer KZ -> CH started in the console and
approved there by the second operator (four-eyes approval) shows up completed in both
registries' pages. The ITL administrator records a Party's period on its page (no one
else gets the form). The clock is moved by the stack's clock client.

Chromium is /usr/bin/chromium (``CHROMIUM`` names another): never a browser Playwright
downloads. Without it the module fails, as the other tests do without their broker or
store. ``CONSOLE_SCREENSHOTS=<dir>`` also saves the screenshots there (docs/console.png
is the transaction page's)."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from deploy.local.client import StackClient
from deploy.local.identities import (
    CLOCK_CLIENT,
    ITL_ADMINISTRATOR,
    authorised_body,
    operator,
)
from deploy.local.stack import LocalStack

pytestmark = pytest.mark.e2e

CONSOLE = True
CLOCK_START = "2013-03-01T00:00:00+00:00"
CHROMIUM = Path(os.environ.get("CHROMIUM", "/usr/bin/chromium"))
PARTY = 1
SOLD = 1_000


@pytest.fixture(scope="module", autouse=True)
def chromium() -> Path:
    """Debian's Chromium, looked for before the stack starts: missing, the module fails
    naming how to install it (the tests never skip)."""
    if not CHROMIUM.exists():
        pytest.fail(f"no Chromium at {CHROMIUM} (apt-get install chromium; .ci/run does)")
    return CHROMIUM


@pytest.fixture(scope="module")
def browser(chromium: Path, stack: LocalStack) -> Iterator[Browser]:
    """Headless Chromium: Debian's, never one Playwright downloads. Started after the
    stack (and so stopped before it): Playwright's synchronous API runs an event loop in
    this thread, in which the stack's start and stop could not run theirs."""
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(chromium), headless=True)
        yield launched
        launched.close()


@pytest.fixture(scope="module")
def books(client: StackClient) -> dict[str, Any]:
    """KZ's period-2 assigned amount (the ITL's notice 7 follows), AAUs issued into the
    Party holding account on a decision of the authorised body; a person holding
    account in CH to sell to."""
    client.set_assigned_amount("KZ", 2, 200_000, reviewed_inventory=5_000)
    issued = client.issue("kz", "AAU", 200_000, "MEP-CONSOLE-1")
    assert client.settle("kz", issued["transaction_id"])["status_name"] == "COMPLETED"
    buyer = client.open_account("ch", "Zurich Power AG")
    return {"buyer": buyer["account_id"], "issuance": issued["transaction_id"]}


class Console:
    """One browser page on the stack's console."""

    def __init__(self, page: Page, stack: LocalStack, shots: Path) -> None:
        assert stack.console_process is not None and stack.issuer is not None
        self.page = page
        self.url = stack.console_process.url
        self.config = stack.issuer.config
        self.shots = shots

    def go(self, path: str) -> Page:
        response = self.page.goto(self.url + path)
        assert response is not None and response.status < 500, path
        return self.page

    def status(self, path: str) -> int:
        """The HTTP status of the page at ``path``."""
        response = self.page.goto(self.url + path)
        assert response is not None, path
        return response.status

    def sign_in(self, principal: str, secret: str | None = None, here: bool = False) -> None:
        """Sign in as a user of the issuer, or as a client when ``principal`` is one: on
        the sign-in page the browser is on (``here``), else on a new one."""
        page = self.page if here else self.go("/signin")
        client = principal in self.config.clients
        page.select_option("#f-kind", "client" if client else "person")
        page.fill("#f-username", principal)
        page.fill("#f-password", secret if secret is not None else (
            self.config.clients[principal].secret if client
            else self.config.users[principal].password))
        page.click("#signin button[type=submit]")

    def sign_out(self) -> None:
        self.page.click("header form button")

    def text(self, selector: str) -> str:
        return self.page.inner_text(selector)

    def shot(self, name: str) -> None:
        self.page.screenshot(path=str(self.shots / name), full_page=True)
        extra = os.environ.get("CONSOLE_SCREENSHOTS")
        if extra:
            Path(extra).mkdir(parents=True, exist_ok=True)
            self.page.screenshot(path=str(Path(extra) / name), full_page=True)


@pytest.fixture(scope="module")
def console(browser: Browser, stack: LocalStack, books: dict[str, Any],
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[Console]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    yield Console(context.new_page(), stack, tmp_path_factory.mktemp("screenshots"))
    context.close()


def test_signing_in_names_the_wrong_field_and_pages_need_a_session(console: Console) -> None:
    page = console.go("/registries/KZ")
    assert "/signin" in page.url and "next=%2Fregistries%2FKZ" in page.url
    assert console.text("p.error") == "Sign in to continue."
    console.sign_in(operator("kz"), secret="not-the-password", here=True)
    assert "password" in console.text("[data-error-for=password]")
    assert "invalid_grant" in console.text("[data-error-for=password]")
    console.sign_in(operator("kz"), here=True)
    assert page.url.endswith("/registries/KZ")
    assert "kz-operator-1" in console.text("#principal")
    # the sign-in page says only its own words, whatever its address carries
    console.go("/signin?reason=Call+us+now")
    assert page.locator("p.error").count() == 0


def test_the_pages_show_what_the_apis_say(console: Console, books: dict[str, Any]) -> None:
    console.sign_in(operator("kz"))
    page = console.go("/")
    parties = console.text("#parties")
    assert "Kazakhstan" in parties and "Switzerland" in parties and "Japan" in parties
    assert re.search(r"2013-03-01 00:0\d", console.text("#clock"))

    console.go("/parties/KZ")
    assert "200000" in page.inner_text("main")

    console.go("/registries/KZ")
    assert "AAU\t2\t200000" in console.text("#holdings-by-type")
    assert "KZ-100-1-2-" in console.text("#accounts")

    console.go("/registries/KZ/accounts/1")
    assert "200000" in console.text("#account-totals")

    console.go("/registries/KZ/transactions")
    row = page.inner_text(f"tr[data-transaction={books['issuance']}]")
    assert "ISSUANCE" in row and "COMPLETED" in row

    console.go("/registries/KZ/decisions")
    decisions = console.text("#decisions")
    assert "MEP-CONSOLE-1" in decisions and "2013-03" in console.text("td.month")

    console.go("/registries/KZ/notices")
    assert "commitment period reserve" in console.text("#notices")

    console.go("/itl")
    assert "200000" in console.text("#register")
    console.go("/itl/notices")
    assert "COMMITMENT_PERIOD_RESERVE" in console.text("#itl-notices")
    assert "COMPLETED" in console.text("#itl-notices")
    console.go("/itl/reconciliations")
    assert "Reconciliations" in console.text("h1")
    page.click("#reconcile button")  # only the ITL administrator starts one
    assert "403" in console.text("#refusal")
    console.go("/itl/effort-sharing")
    assert "Effort-sharing" in console.text("h1")
    console.go("/registries/KZ/effort-sharing")
    assert "not run as an EU Member State" in console.text("main")
    console.go("/registries/KZ/effort-sharing?year=soon")
    assert "year" in console.text("#console-error")
    console.go("/no-such-page")
    assert "404" in console.text("#console-error")

    # the operator of KZ has no role at CH: the console shows CH's refusal, not CH's books
    assert console.status("/registries/CH") == 403
    assert "403" in console.text("p.error") and "no role at this registry" in console.text(
        "p.error")

    # a page answers with the API's status about what it is of, not 200
    for path, status in [("/registries/KZ/accounts/999999", 404),
                         ("/registries/KZ/accounts/1?after=soon", 422),
                         ("/registries/KZ/transactions/KZ999999", 404),
                         ("/itl/transactions/KZ999999", 404),
                         ("/registries/KZ/approvals/A999999", 404),
                         ("/registries/CH/transactions", 403),
                         ("/registries/XX/operations", 404),
                         ("/parties/XQ", 404),
                         ("/itl?registry=ZZ", 404),
                         ("/registries/XX/operations/internal-transfer", 404),
                         (f"/registries/KZ/transactions/{books['issuance']}", 200),
                         ("/registries/KZ/accounts/1", 200)]:
        assert console.status(path) == status, path
        if status != 200:
            assert str(status) in console.page.locator("main .error").first.inner_text(), path


def test_an_external_transfer_started_in_the_console_completes_in_both_registries(
    console: Console, client: StackClient, books: dict[str, Any],
) -> None:
    buyer = books["buyer"]
    console.sign_in(operator("kz"))
    # a decision that does not exist: the registry's 404 lands on the field that named it
    page = console.go("/registries/KZ/operations/issuance")
    page.fill("#f-decision_id", "D999999")
    page.click("#operation button[type=submit]")
    assert "D999999 not found" in console.text("[data-error-for=decision_id]")

    page = console.go("/registries/KZ/operations/external-transfer")
    page.fill("#f-acquiring_registry", "CH")
    page.fill("#f-acquiring_account_id", str(buyer))
    page.fill("#f-quantity", "many")
    page.click("#operation button[type=submit]")
    assert "quantity" in console.text("[data-error-for=quantity]")
    assert "quantity" in console.text("#refusal")

    page.fill("#f-quantity", str(SOLD))
    page.click("#operation button[type=submit]")
    assert re.search(r"/registries/KZ/approvals/A\d+$", page.url), page.url
    assert console.text("#approval-status") == "pending"
    approval = page.url

    # its initiator may not approve it: the registry's 403, shown on the page
    page.click("#approve button")
    assert "403" in console.text("p.error")

    console.sign_out()
    console.sign_in(operator("kz", 2))
    page.goto(approval)
    # a rejection needs a reason of 1 to 500 characters: the 422 lands next to it
    for typed in ("   ", "x" * 501):
        page.fill("#f-reason", typed)
        page.click("#reject button")
        assert "reason" in console.text("[data-error-for=reason]"), typed
        assert console.text("#approval-status") == "pending"
    page.click("#approve button")
    found = re.search(r"/registries/KZ/transactions/(KZ\d+)$", page.url)
    assert found, page.url
    transaction_id = found.group(1)
    assert client.settle("kz", transaction_id)["status_name"] == "COMPLETED"

    page.reload()
    assert console.text("#status") == "4 COMPLETED"
    assert "EXTERNAL_TRANSFER" in console.text("#transaction")
    page.wait_for_selector("#diagram svg")  # Mermaid drew the sequence diagram
    assert "ProposalForwarded" in (page.text_content("#diagram-text") or "")
    console.shot("console.png")
    # the first international transfer of period-2 AAUs pays 2 % to the Adaptation Fund
    client.settle_share_of_proceeds("kz")
    console.go("/registries/KZ")
    assert f"AAU\t2\t{200_000 - SOLD - SOLD * 2 // 100}" in console.text("#holdings-by-type")

    console.sign_out()
    console.sign_in(operator("ch"))
    console.go(f"/registries/CH/transactions/{transaction_id}")
    assert console.text("#status") == "4 COMPLETED"
    assert "inbound" in console.text("#transaction")
    console.go("/registries/CH")
    assert f"{buyer}\t121 PERSON_HOLDING\tAAU\t2\t{SOLD}\t1" in console.text("#holdings")
    console.go(f"/itl/transactions/{transaction_id}")
    assert console.text("#status") == "4 COMPLETED"


def test_the_itl_administrator_records_a_partys_period_on_its_page(
        console: Console, client: StackClient) -> None:
    """Only the ITL administrator gets the form; each error is shown next to its
    field; Japan has no second-period commitment (4006); a recorded period shows."""
    console.sign_in(operator("kz"))
    console.go("/parties/KZ")
    assert console.page.locator("#party-period").count() == 0
    assert console.status("/itl?registry=ZZ") == 404
    assert "registry ZZ" in console.text("p.error")

    console.sign_in(ITL_ADMINISTRATOR)
    page = console.go("/parties/KZ")  # the form holds the recorded figures
    assert page.input_value("#f-assigned_amount") == "200000"
    assert page.input_value("#f-reviewed_inventory") == "5000"
    page = console.go("/parties/JP")
    page.select_option("#f-commitment_period", "1")
    page.fill("#f-assigned_amount", "-5")
    page.fill("#f-rmu_net_removals", "FOREST_MANAGEMENT=1000")
    page.click("#party-period button[type=submit]")
    assert "assigned_amount" in console.text("[data-error-for=assigned_amount]")
    page.fill("#f-assigned_amount", "300000")
    page.fill("#f-rmu_net_removals", "FOREST_MANAGEMENT")
    page.click("#party-period button[type=submit]")
    assert "ACTIVITY=UNITS" in console.text("[data-error-for=rmu_net_removals]")
    page.fill("#f-rmu_net_removals", "FOREST_MANAGEMENT=1000")
    page.select_option("#f-commitment_period", "2")
    page.click("#party-period button[type=submit]")
    assert "4006" in console.text("#refusal")
    page.select_option("#f-commitment_period", "1")
    page.click("#party-period button[type=submit]")
    assert page.url.endswith("/parties/JP#period-1"), page.url
    recorded = client.ok("itl", "GET", "/parties/JP/periods/1")
    assert recorded["assigned_amount"] == 300_000
    assert recorded["rmu_net_removals"] == {"3": 1000}  # FOREST_MANAGEMENT's code
    assert "300000" in console.text("#period-1 + table")
    assert page.input_value("#f-rmu_net_removals") == "FOREST_MANAGEMENT=1000"


def test_the_authorised_body_records_a_decision_and_the_itl_reconciles(
    console: Console, stack: LocalStack,
) -> None:
    console.sign_in(authorised_body("kz"))
    page = console.go("/registries/KZ/decisions")
    page.click("text=Record a decision")
    page.select_option("#f-kind", "issuance")
    page.fill("#f-reference", "MEP-CONSOLE-2")
    page.fill("#f-quantity", "0")
    page.click("#operation button[type=submit]")
    assert "quantity" in console.text("[data-error-for=quantity]")
    page.fill("#f-quantity", "500")
    page.click("#operation button[type=submit]")
    assert page.url.split("#")[0].endswith("/registries/KZ/decisions")
    row = page.inner_text("tr:has-text('MEP-CONSOLE-2')")
    assert "2013-03" in row and "issuance" in row and "500 AAU" in row

    console.sign_in(ITL_ADMINISTRATOR)
    page = console.go("/itl/reconciliations")
    page.select_option("#f-registry", "KZ")
    page.click("#reconcile button")
    assert "(KZ)" in console.text("#started")
    assert "KZ" in console.text("#reconciliations")


def test_the_clock_is_moved_by_the_clock_client_only(console: Console,
                                                     client: StackClient) -> None:
    console.sign_in(operator("kz"))
    page = console.go("/clock")
    page.fill("#f-advance_seconds", "3600")
    page.click("#move-clock button[type=submit]")
    assert "403" in console.text("#refusal")

    console.sign_out()
    console.sign_in(CLOCK_CLIENT)
    page = console.go("/clock")
    # what is no finite number (JSON carries none of nan, inf) goes as typed: the API
    # names the field
    for typed in ("soon", "nan", "1e400"):
        page.fill("#f-advance_seconds", typed)
        page.click("#move-clock button[type=submit]")
        assert "advance_seconds" in console.text("[data-error-for=advance_seconds]"), typed

    before = client.now("itl")
    page.fill("#f-advance_seconds", "3600")
    page.click("#move-clock button[type=submit]")
    moved = console.text("#moved")
    assert (client.now("itl") - before).total_seconds() >= 3600
    assert client.now("itl").isoformat()[:13] in moved.replace(" ", "T")
