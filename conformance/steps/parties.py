"""Parties and their assigned amounts, accounts, CDM issuances and the authorised body's
decisions: the preconditions of a scenario."""

from __future__ import annotations

from typing import Any

from conformance.steps.library import (
    Family,
)
from conformance.world import ScenarioError, World
from deploy.local.client import poll

FAMILY = Family("Parties, assigned amounts and accounts")


@FAMILY.given("Party {party:Registry} has an assigned amount of {quantity:Quantity} for "
        "period {period:d}")
def assigned_amount(world: World, party: str, quantity: int, period: int) -> None:
    """The ITL records the Party's assigned amount for the period (``PUT
    /parties/{code}/periods/{cp}``), keeping an earlier reviewed inventory; the reserve
    then is 90 % of it unless an inventory makes it lower."""
    current = world.client.call("itl", "GET", f"/parties/{party}/periods/{period}")
    inventory = current.json().get("reviewed_inventory") if current.status_code == 200 \
        else None
    world.client.set_assigned_amount(party, period, quantity, inventory)
    world.note(f"ITL: {party} assigned amount {quantity} for period {period}")


@FAMILY.given("Party {party:Registry} has an assigned amount of {quantity:Quantity} for "
        "period {period:d} and a reviewed inventory of {inventory:Quantity}")
def assigned_amount_and_inventory(world: World, party: str, quantity: int, period: int,
                                  inventory: int) -> None:
    """The ITL records the Party's assigned amount and latest reviewed annual inventory
    for the period; the commitment period reserve becomes min(90 % of the assigned
    amount, 8 x the inventory) in period 2 (protocol.md 4.1)."""
    world.client.set_assigned_amount(party, period, quantity, inventory)
    world.note(f"ITL: {party} assigned amount {quantity}, inventory {inventory}, "
               f"period {period}")


@FAMILY.given("Party {party:Registry} has base-year emissions of {quantity:Quantity} for "
        "period {period:d}")
def base_year(world: World, party: str, quantity: int, period: int) -> None:
    """The ITL records the Party's base-year emissions for the period (the A/R CDM limit
    on tCER and lCER additions is 1 % of them x the period's years, 16/CMP.1), keeping
    its assigned amount (1 000 000 when none is recorded yet) and inventory."""
    current = world.client.call("itl", "GET", f"/parties/{party}/periods/{period}")
    known = current.json() if current.status_code == 200 else {}
    world.client.set_assigned_amount(party, period, known.get("assigned_amount", 1_000_000),
                                     known.get("reviewed_inventory"),
                                     base_year_emissions=quantity)


@FAMILY.given("{registry:Registry} holds at least {quantity:Quantity} {unit:Unit} of period "
        "{period:d} in its Party holding account")
def party_holds_at_least(world: World, registry: str, quantity: int, unit: str,
                         period: int) -> None:
    """Issue AAUs into the Party holding account (decided by the authorised body,
    proposed and approved by the operators) until it holds at least ``quantity``; the
    Party's assigned amount is raised at the ITL first when what it has issued would
    pass it. Only AAUs are issued so."""
    if unit != "AAU":
        raise ScenarioError(f"only AAUs are issued into a Party holding account by this "
                            f"step, not {unit}")
    code = registry.lower()
    held = world.client.units_held(code, 1, unit, period)
    if held >= quantity:
        return
    shortfall = quantity - held
    status = world.client.call("itl", "GET", f"/parties/{registry}/periods/{period}")
    issued = status.json()["aaus_issued"] if status.status_code == 200 else 0
    amount = status.json()["assigned_amount"] if status.status_code == 200 else 0
    if issued + shortfall > amount:
        inventory = status.json().get("reviewed_inventory") if status.status_code == 200 \
            else None
        world.client.set_assigned_amount(registry, period, issued + shortfall, inventory)
    proposed = world.client.issue(code, "AAU", shortfall, f"MEP-{world.tag}-{held}",
                                  period=period)
    final = world.client.settle(code, proposed["transaction_id"])
    if final["status_name"] != "COMPLETED":
        raise ScenarioError(f"issuing {shortfall} AAU in {registry} ended "
                            f"{final['status_name']}: {final.get('response_codes')}")
    world.note(f"{registry}: issued {shortfall} AAU of period {period} "
               f"({proposed['transaction_id']})")


@FAMILY.given('a person holding account "{name}" in {registry:Registry}')
def person_account(world: World, name: str, registry: str) -> None:
    """The operator opens a person holding account (type 121) for a new holder; the
    scenario names it ``name``."""
    world.open_account(name, registry)


@FAMILY.given('a person holding account "{name}" in {registry:Registry} holding '
        '{quantity:Quantity} {unit:Unit} of period {period:d}')
def funded_person_account(world: World, name: str, registry: str, quantity: int,
                          unit: str, period: int) -> None:
    """Open a person holding account and give it ``quantity`` units by an internal
    transfer from the Party holding account (AAUs are issued there first when it holds
    too few)."""
    account = world.open_account(name, registry)
    if unit == "AAU":
        party_holds_at_least(world, registry, quantity, unit, period)
    response = world.client.transfer(account.registry, 1, account.account_id, unit,
                                     quantity, period=period)
    if response.status_code != 202:
        raise ScenarioError(f"funding {name}: {response.status_code} {response.text}")
    final = world.client.settle(account.registry, response.json()["transaction_id"])
    if final["status_name"] != "COMPLETED":
        raise ScenarioError(f"funding {name} ended {final['status_name']}")
    world.note(f"{account}: given {quantity} {unit} of period {period}")


@FAMILY.given('the account "{name}" is blocked')
def blocked_account(world: World, name: str) -> None:
    """The operator blocks the account (``POST /accounts/{id}/block``): it may neither
    send nor receive units until unblocked."""
    account = world.account(name)
    world.client.ok(account.registry, "POST", f"/accounts/{account.account_id}/block",
                    json={"reason": "conformance plan"})
    world.note(f"{account} blocked")


@FAMILY.given('a JI project "{project}" of {party:Registry} approved under track 2 for '
        '{quantity:Quantity} units')
def ji_project(world: World, project: str, party: str, quantity: int) -> None:
    """The JI Supervisory Committee's determination, recorded at the ITL (``PUT
    /ji-projects/{id}``): track-2 conversions of the project may issue up to
    ``quantity`` ERUs."""
    world.client.ok("itl", "PUT", f"/ji-projects/{project}",
                    json={"host_party": party, "track": 2, "approved_quantity": quantity})


@FAMILY.given('the CDM registry has issued {quantity:Quantity} {unit:Unit} of period '
        '{period:d} for project "{project}" to "{account}"')
def cdm_issued(world: World, quantity: int, unit: str, period: int, project: str,
               account: str) -> None:
    """The CDM Executive Board's issuance for a project (registered first when new; a
    project in a least developed country for CERs, an afforestation one for tCERs and
    lCERs), forwarded from the pending account to the named account (less the share of
    proceeds where one is due)."""
    target = world.account(account)
    if world.client.call("cdm", "GET", f"/projects/{project}").status_code == 404:
        body: dict[str, Any] = {"project_id": project, "title": f"project {project}",
                                "host_party": "UZ"}
        if unit in ("TCER", "LCER"):
            body["afforestation_reforestation"] = True
            if unit == "LCER":
                body["crediting_period_end"] = "2030-06-30"
        else:
            body["least_developed_country"] = True
        world.client.ok("cdm", "POST", "/projects", json=body)
    request = world.client.ok("cdm", "POST", f"/projects/{project}/issuances", json={
        "acquiring_registry": target.registry.upper(),
        "acquiring_account_type": target.account_type,
        "acquiring_account_id": target.account_id, "unit_type": unit,
        "quantity": quantity, "commitment_period": period})
    done = poll(lambda: world.client.ok("cdm", "GET", f"/issuances/{request['request_id']}"),
                lambda r: r["state"] in ("completed", "failed"), "CDM issuance")
    if done["state"] != "completed":
        raise ScenarioError(f"the CDM issuance failed: {done}")
    if done["forward_transaction"]:
        world.client.settle("cdm", done["forward_transaction"])
    world.note(f"CDM: issued {quantity} {unit} of period {period} to {target}")


FAMILY = Family("Decisions of the authorised body")


@FAMILY.given('the authorised body of {registry:Registry} has decided the {kind} of '
        '{quantity:Quantity} {unit:Unit} of period {period:d} as "{reference}"')
def decided(world: World, registry: str, kind: str, quantity: int, unit: str,
            period: int, reference: str) -> None:
    """A decision of the authorised body (``POST /decisions``) of kind ``issuance``,
    ``conversion``, ``cancellation``, ``retirement``, ``external_transfer``,
    ``withdrawal`` or ``replacement`` (spaces allowed: "external transfer"), about units
    of the Party holding account; the scenario names it ``reference``."""
    decide(world, registry, kind, quantity, unit, period, reference)


@FAMILY.when('the authorised body of {registry:Registry} decides the {kind} of '
       '{quantity:Quantity} {unit:Unit} of period {period:d} as "{reference}"')
def decide(world: World, registry: str, kind: str, quantity: int, unit: str,
           period: int, reference: str) -> None:
    """The authorised body takes a decision (``POST /decisions``); its answer is kept, so
    a refused decision can be checked with the response steps."""
    response = world.client.call(
        registry.lower(), "POST", "/decisions",
        headers=world.client.as_authorised_body(registry.lower()),
        json={"kind": kind.replace(" ", "_"), "reference": f"{reference} {world.tag}",
              "unit_type": unit, "quantity": quantity, "commitment_period": period})
    world.answered(registry, response)
    if response.status_code < 300:
        world.decisions[reference] = response.json()["decision_id"]
