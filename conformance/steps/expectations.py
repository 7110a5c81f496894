"""Expectations: the answer to an operation, the transaction's status and history in every
book, holdings block by block, the books unchanged, the ITL's register."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from conformance.steps.library import (
    Family,
    final_view,
    table,
)
from conformance.world import Account, ScenarioError, World
from deploy.local.client import poll
from shared.codes import TransactionStatus, UnitType

FAMILY = Family("Expectations: answers and transactions")


@FAMILY.then("the request is refused with HTTP {status:d} and response code {code:d}")
def refused(world: World, status: int, code: int) -> None:
    """The registry refused the operation before proposing it: HTTP ``status`` with the
    DES response code (protocol.md 3.3) in ``response_code``."""
    response = world.last_response()
    assert response.status_code == status, f"{response.status_code}: {response.text}"
    assert response.json().get("response_code") == code, response.text


@FAMILY.then("the request is refused with HTTP {status:d}")
def refused_http(world: World, status: int) -> None:
    """The last answer is a refusal with this HTTP status (401, 403, 404, 422)."""
    response = world.last_response()
    assert response.status_code == status, f"{response.status_code}: {response.text}"


@FAMILY.then('the refusal says "{text}"')
def refusal_says(world: World, text: str) -> None:
    """The refusal's ``detail`` contains ``text``."""
    assert text in world.last_response().text, world.last_response().text


@FAMILY.then("the operation awaits approval")
def awaits_approval(world: World) -> None:
    """The last answer is 202 with a pending approval, not a proposed transaction."""
    response = world.last_response()
    assert response.status_code == 202, response.text
    assert response.json().get("status") == "pending", response.text


@FAMILY.then("the transaction is {status:Status}")
def transaction_status(world: World, status: str) -> None:
    """The last transaction's final status in the proposing registry (COMPLETED,
    TERMINATED, REJECTED, CANCELLED), once the ITL (and an acquiring registry) have
    finished with it."""
    view = final_view(world)
    assert view["status_name"] == status, status_says(view, status)


@FAMILY.then("the transaction is {status:Status} with response code {code:d}")
def transaction_status_code(world: World, status: str, code: int) -> None:
    """The last transaction's final status and its DES response codes (one, ``code``)."""
    view = final_view(world)
    assert (view["status_name"], view["response_codes"]) == (status, [code]), (
        status_says(view, status, code))


def status_says(view: dict[str, Any], status: str, code: int | None = None,
                where: str = "") -> str:
    """Why a transaction's status is not the expected one, in words: ``KZ7 is COMPLETED
    with no response code, not TERMINATED with 5902; evaluation results: []``."""
    codes = view.get("response_codes") or []
    has = f"with response code(s) {', '.join(map(str, codes))}" if codes \
        else "with no response code"
    wanted = status + (f" with {code}" if code is not None else "")
    return (f"{view.get('transaction_id', 'the transaction')}{where} is "
            f"{view.get('status_name')} {has}, not {wanted}; evaluation results: "
            f"{view.get('evaluation_results') or []}")


@FAMILY.then("the transaction's history in {registry:Registry} is {statuses}")
def transaction_history(world: World, registry: str, statuses: str) -> None:
    """The statuses the transaction went through in a registry, in order, as numbers
    (``1, 2, 4``) or names (``PROPOSED, ACCEPTED, COMPLETED``)."""
    final_view(world)
    _, transaction_id = world.current()
    view = world.client.wait_final(registry.lower(), transaction_id)
    seen = [h["status"] for h in view["history"]]
    wanted = [int(s) if s.strip().isdigit() else int(TransactionStatus[s.strip()])
              for s in statuses.split(",")]
    assert seen == wanted, f"history {seen}, expected {wanted}"


@FAMILY.then("the transaction is of type {kind:d}")
def transaction_type(world: World, kind: int) -> None:
    """The DES transaction type of the last transaction (1 issuance ... 10 internal)."""
    assert final_view(world)["transaction_type"] == kind


@FAMILY.when("the ITL has forwarded the transaction to the acquiring registry")
def forwarded(world: World) -> None:
    """Wait (up to 30 real seconds) until the ITL has checked the last transaction and
    forwarded it (status 2 at the ITL)."""
    _, transaction_id = world.current()
    poll(lambda: world.client.call("itl", "GET", f"/transactions/{transaction_id}"),
         lambda r: r.status_code == 200 and r.json()["status"] == 2,
         f"{transaction_id} forwarded by the ITL", timeout=30)


@FAMILY.then("the share of proceeds of {registry:Registry} is settled")
def share_settled(world: World, registry: str) -> None:
    """Every share-of-proceeds transfer the registry has proposed (2 % of a first
    international transfer of period-2 AAUs, of the ERUs a conversion issues; 1/CMP.8
    para 21) is final in the registry, the ITL and the CDM registry: they move units
    on their own, after the transaction that caused them."""
    views = world.client.settle_share_of_proceeds(registry.lower())
    world.note(f"{registry} share of proceeds: " + ", ".join(
        f"{v['transaction_id']} {v['status_name']}" for v in views))


@FAMILY.then("the ITL records the transaction as {status:Status}")
def itl_status(world: World, status: str) -> None:
    """The ITL's own record of the last transaction (``GET /transactions/{id}``)."""
    final_view(world)
    _, transaction_id = world.current()
    view = world.client.wait_final("itl", transaction_id)
    assert view["status_name"] == status, status_says(view, status, where=" at the ITL")


@FAMILY.then("{registry:Registry} records the inbound transaction as {status:Status}")
def inbound_status(world: World, registry: str, status: str) -> None:
    """The acquiring registry's record of the last (external) transaction."""
    final_view(world)
    _, transaction_id = world.current()
    view = world.client.wait_final(registry.lower(), transaction_id)
    assert view["status_name"] == status, status_says(view, status, where=f" in {registry}")


FAMILY = Family("Expectations: holdings, the ITL's register and reconciliation")


@FAMILY.then('"{account}" holds {quantity:Quantity} {unit:Unit} of period {period:d}')
def holds(world: World, account: str, quantity: int, unit: str, period: int) -> None:
    """What an account holds of a unit type for an applicable period, reserved units
    included."""
    found = world.account(account)
    held = world.client.units_held(found.registry, found.account_id, unit, period)
    world.note(f"{found} holds {held} {unit} of period {period}")
    assert held == quantity, f"{found} holds {held} {unit} of period {period}"


@FAMILY.then('"{account}" holds {quantity:Quantity} {unit:Unit}')
def holds_any_period(world: World, account: str, quantity: int, unit: str) -> None:
    """What an account holds of a unit type, every period together."""
    found = world.account(account)
    held = world.client.units_held(found.registry, found.account_id, unit)
    world.note(f"{found} holds {held} {unit}")
    assert held == quantity, f"{found} holds {held} {unit}"


@FAMILY.then('"{account}" holds nothing')
def holds_nothing(world: World, account: str) -> None:
    """The account holds no unit at all."""
    holds_any_period_all(world, account, 0)


def holds_any_period_all(world: World, account: str, quantity: int) -> None:
    found = world.account(account)
    held = world.client.units_held(found.registry, found.account_id)
    assert held == quantity, f"{found} holds {held} units"


@FAMILY.then('"{account}" gained {quantity:Quantity} {unit:Unit}')
def gained(world: World, account: str, quantity: int, unit: str) -> None:
    """An account's holding of the unit type grew by ``quantity`` since before the last
    block of actions (use it for shared accounts such as a Party holding account)."""
    assert _change(world, world.account(account), unit) == quantity


@FAMILY.then('"{account}" lost {quantity:Quantity} {unit:Unit}')
def lost(world: World, account: str, quantity: int, unit: str) -> None:
    """An account's holding of the unit type shrank by ``quantity`` since before the
    last block of actions."""
    assert _change(world, world.account(account), unit) == -quantity


def _change(world: World, account: Account, unit: str) -> int:
    def units(rows: list[dict[str, Any]]) -> int:
        return sum(int(r["units"]) for r in rows if int(r["account_id"]) ==
                   account.account_id and r["unit_type"] == unit)

    before = units(world.books_before.get(account.registry, []))
    after = units(world.client.registry_totals(account.registry))
    world.note(f"{account} {unit}: {before} -> {after}")
    return after - before


BLOCK_COLUMNS = {"unit type", "quantity", "original period", "applicable period",
                 "originating registry", "expiry date", "project"}
BLOCK_FIELDS = {"unit type": "unit_type", "quantity": "quantity",
                "original period": "original_commitment_period",
                "applicable period": "applicable_commitment_period",
                "originating registry": "originating_registry",
                "expiry date": "expiry_date", "project": "project_id"}


@FAMILY.then('"{account}" holds the blocks:')
def holds_blocks(world: World, account: str, datatable: list[list[str]]) -> None:
    """The account's unit blocks, block by block, in any order; the table's columns are
    any of unit type, quantity, original period, applicable period, originating
    registry, expiry date, project (serial numbers depend on what ran before)."""
    rows = table(datatable, BLOCK_COLUMNS, f'"{account}" holds the blocks')
    found = world.account(account)
    blocks = world.client.holdings(found.registry, found.account_id)["blocks"]
    seen = sorted(tuple(str(b.get(BLOCK_FIELDS[c]) or "") for c in rows[0]) for b in blocks)
    wanted = sorted(tuple(r[c] for c in rows[0]) for r in rows)
    world.note(f"{found} blocks: {seen}")
    assert seen == wanted, f"{found} holds blocks {seen}, expected {wanted}"


@FAMILY.then('every block "{account}" holds is one of:')
def blocks_are(world: World, account: str, datatable: list[list[str]]) -> None:
    """Each of the account's unit blocks matches a row of the table (columns as for
    ``holds the blocks``, without quantity): the units' kind, origin, periods, project
    and expiry, however the registry split them into blocks."""
    rows = table(datatable, BLOCK_COLUMNS - {"quantity"},
                  f'every block "{account}" holds is one of')
    found = world.account(account)
    blocks = world.client.holdings(found.registry, found.account_id)["blocks"]
    allowed = {tuple(r[c] for c in rows[0]) for r in rows}
    seen = [tuple(str(b.get(BLOCK_FIELDS[c]) or "") for c in rows[0]) for b in blocks]
    world.note(f"{found} blocks: {seen}")
    assert blocks, f"{found} holds no block"
    odd = [s for s in seen if s not in allowed]
    assert not odd, f"{found} holds blocks {odd} matching no row of {sorted(allowed)}"


@FAMILY.then("the books of {registry:Registry} are unchanged")
def books_unchanged(world: World, registry: str) -> None:
    """The registry's books (units per account, unit type and period) are as they were
    before the last block of actions: a refused or terminated operation moved nothing."""
    code = registry.lower()
    if world.transactions and world.last_response().status_code < 300:
        final_view(world)
    if code not in world.books_before:
        raise ScenarioError(f"the books of {registry} were not read before the last "
                            "actions (the registry did not answer)")
    assert world.client.registry_totals(code) == world.books_before[code]


@FAMILY.then("the ITL's register agrees with the books of {registry:Registry}")
def register_agrees(world: World, registry: str) -> None:
    """The ITL's register of the registry's units (``GET /totals``) equals the registry's
    own books, account by account and unit type by unit type."""
    if world.transactions and world.last_response().status_code < 300:
        final_view(world)

    def total(rows: list[dict[str, Any]], name: Callable[[Any], str]) -> dict[Any, int]:
        out: dict[Any, int] = {}
        for row in rows:
            key = (int(row["account_id"]), name(row["unit_type"]))
            out[key] = out.get(key, 0) + int(row["units"])
        return {k: v for k, v in out.items() if v}

    itl = total(world.client.itl_totals(registry),
                lambda c: UnitType(int(c)).name if str(c).isdigit() else str(c))
    own = total(world.client.registry_totals(registry.lower()), str)
    assert itl == own, f"ITL {itl} != {registry} {own}"


@FAMILY.then('the ITL\'s register shows {quantity:Quantity} {unit:Unit} in "{account}"')
def register_shows(world: World, quantity: int, unit: str, account: str) -> None:
    """The ITL's register (``GET /units``) has ``quantity`` units of the type in the
    account."""
    found = world.account(account)
    rows = world.client.ok("itl", "GET", "/units", params={
        "registry": found.registry.upper(), "unit_type": int(UnitType[unit])})
    held = sum(int(b["quantity"]) for b in rows if int(b["account_id"]) == found.account_id)
    world.note(f"ITL register: {found} {held} {unit}")
    assert held == quantity, f"the ITL's register has {held} {unit} in {found}"
