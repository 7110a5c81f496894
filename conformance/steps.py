"""The conformance step library: every Gherkin step a scenario of the plan may use, in the
domain's words (the Kazakh Rules and the DES). Each step calls the stack through
``deploy.local.client.StackClient``; none talks HTTP of its own beyond naming a path.

Conventions of the steps:

- Quantities are whole units and may be grouped by spaces or commas (``600 000``).
- Unit types are named as the APIs name them: AAU, RMU, ERU_FROM_AAU, ERU_FROM_RMU, CER,
  TCER, LCER.
- An account is named in double quotes: a name the scenario gave when it opened it
  (``"Alice"``), a registry and number (``"KZ 1001"``) or a government account by
  registry, type and period (``"KZ Party holding account"``, ``"KZ retirement account
  of period 1"``).
- An operation (``When``) keeps the registry's answer and the transaction it started;
  ``Then`` steps wait for that transaction to be final before they look.
- Before each block of ``When`` steps every registry's books are remembered, so ``Then
  the books of KZ are unchanged`` proves a refused operation moved nothing.

``LIBRARY`` lists every step with its pattern and docstring: the README's step list and
the nearest-step suggestions for an unknown step are made from it.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

import parse
from pytest_bdd import given, parsers, then, when

from conformance.world import Account, ScenarioError, World
from deploy.local.client import holder, poll
from shared.codes import TransactionStatus, UnitType

F = TypeVar("F", bound=Callable[..., Any])


@parse.with_pattern(r"\d{1,3}(?:[ ,]\d{3})+|\d+")
def _quantity(text: str) -> int:
    return int(text.replace(" ", "").replace(",", ""))


@parse.with_pattern(r"AAU|RMU|ERU_FROM_AAU|ERU_FROM_RMU|CER|TCER|LCER")
def _unit(text: str) -> str:
    return text


@parse.with_pattern(r"[A-Z]{2,3}")
def _registry(text: str) -> str:
    return text


@parse.with_pattern(r"[A-Z_]+")
def _status(text: str) -> str:
    return text


@parse.with_pattern(r"\d{4}-\d{2}-\d{2}(?:T\d{2}:\d{2}(?::\d{2})?(?:[+-]\d{2}:\d{2}|Z)?)?")
def _moment(text: str) -> str:
    return text


TYPES: dict[str, Callable[[str], Any]] = {
    "Quantity": _quantity, "Unit": _unit, "Registry": _registry, "Status": _status,
    "Moment": _moment}


_PLACEHOLDER = re.compile(r"{(\w+)(?::\w+)?}")


@dataclass(frozen=True)
class LibraryStep:
    """One step of the library: its keyword, pattern, family and docstring."""

    keyword: str
    pattern: str
    family: str
    doc: str

    @property
    def display(self) -> str:
        """The step as a tester reads it: ``When <registry> issues <quantity> AAU ...``."""
        return self.keyword + " " + _PLACEHOLDER.sub(r"<\1>", self.pattern)


LIBRARY: list[LibraryStep] = []
_family = "setup"


def _step(keyword: str, pattern: str) -> Callable[[F], F]:
    """Register a step with pytest-bdd (a parse pattern with the library's types) and in
    ``LIBRARY``."""
    decorate = {"Given": given, "When": when, "Then": then}[keyword]

    def register(function: F) -> F:
        LIBRARY.append(LibraryStep(keyword, pattern, _family,
                                   " ".join((function.__doc__ or "").split())))
        decorate(parsers.parse(pattern, extra_types=TYPES), stacklevel=2)(function)
        return function

    return register


def _given(pattern: str) -> Callable[[F], F]:
    return _step("Given", pattern)


def _when(pattern: str) -> Callable[[F], F]:
    return _step("When", pattern)


def _then(pattern: str) -> Callable[[F], F]:
    return _step("Then", pattern)


# ---------------------------------------------------------------- Parties and accounts
_family = "Parties, assigned amounts and accounts"


@_given("Party {party:Registry} has an assigned amount of {quantity:Quantity} for "
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


@_given("Party {party:Registry} has an assigned amount of {quantity:Quantity} for "
        "period {period:d} and a reviewed inventory of {inventory:Quantity}")
def assigned_amount_and_inventory(world: World, party: str, quantity: int, period: int,
                                  inventory: int) -> None:
    """The ITL records the Party's assigned amount and latest reviewed annual inventory
    for the period; the commitment period reserve becomes min(90 % of the assigned
    amount, 8 x the inventory) in period 2 (protocol.md 4.1)."""
    world.client.set_assigned_amount(party, period, quantity, inventory)
    world.note(f"ITL: {party} assigned amount {quantity}, inventory {inventory}, "
               f"period {period}")


@_given("Party {party:Registry} has base-year emissions of {quantity:Quantity} for "
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


@_given("{registry:Registry} holds at least {quantity:Quantity} {unit:Unit} of period "
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


@_given('a person holding account "{name}" in {registry:Registry}')
def person_account(world: World, name: str, registry: str) -> None:
    """The operator opens a person holding account (type 121) for a new holder; the
    scenario names it ``name``."""
    world.open_account(name, registry)


@_given('a person holding account "{name}" in {registry:Registry} holding '
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


@_given('the account "{name}" is blocked')
def blocked_account(world: World, name: str) -> None:
    """The operator blocks the account (``POST /accounts/{id}/block``): it may neither
    send nor receive units until unblocked."""
    account = world.account(name)
    world.client.ok(account.registry, "POST", f"/accounts/{account.account_id}/block",
                    json={"reason": "conformance plan"})
    world.note(f"{account} blocked")


@_given('a JI project "{project}" of {party:Registry} approved under track 2 for '
        '{quantity:Quantity} units')
def ji_project(world: World, project: str, party: str, quantity: int) -> None:
    """The JI Supervisory Committee's determination, recorded at the ITL (``PUT
    /ji-projects/{id}``): track-2 conversions of the project may issue up to
    ``quantity`` ERUs."""
    world.client.ok("itl", "PUT", f"/ji-projects/{project}",
                    json={"host_party": party, "track": 2, "approved_quantity": quantity})


@_given('the CDM registry has issued {quantity:Quantity} {unit:Unit} of period '
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


# ------------------------------------------------------------------------- decisions
_family = "Decisions of the authorised body"


@_given('the authorised body of {registry:Registry} has decided the {kind} of '
        '{quantity:Quantity} {unit:Unit} of period {period:d} as "{reference}"')
def decided(world: World, registry: str, kind: str, quantity: int, unit: str,
            period: int, reference: str) -> None:
    """A decision of the authorised body (``POST /decisions``) of kind ``issuance``,
    ``conversion``, ``cancellation``, ``retirement``, ``external_transfer``,
    ``withdrawal`` or ``replacement`` (spaces allowed: "external transfer"), about units
    of the Party holding account; the scenario names it ``reference``."""
    decide(world, registry, kind, quantity, unit, period, reference)


@_when('the authorised body of {registry:Registry} decides the {kind} of '
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


def _decision(world: World, reference: str) -> str:
    if reference not in world.decisions:
        raise ScenarioError(f"no decision {reference!r} in this scenario (decided: "
                            f"{', '.join(world.decisions) or 'none'})")
    return world.decisions[reference]


# ----------------------------------------------------------------------- operations
_family = "Operations"


def _propose(world: World, registry: str, path: str, body: dict[str, Any],
             actor: str = "operator") -> None:
    world.answered(registry, world.client.propose(registry.lower(), path, body, actor))


@_when('{registry:Registry} issues the units of decision "{reference}"')
def issue_decided(world: World, registry: str, reference: str) -> None:
    """The operator proposes the issuance a decision ordered (the second operator
    approves it): transaction type 1 into the Party holding account."""
    _propose(world, registry, "/transactions/issuance",
             {"decision_id": _decision(world, reference)})


@_when("{registry:Registry} issues {quantity:Quantity} AAU of period {period:d}")
def issue(world: World, registry: str, quantity: int, period: int) -> None:
    """The authorised body decides an issuance of AAUs and the operators propose it
    (transaction type 1, into the Party holding account)."""
    decide(world, registry, "issuance", quantity, "AAU", period, f"issuance {quantity}")
    if world.last_response().status_code >= 300:
        raise ScenarioError(f"the issuance decision was refused: "
                            f"{world.last_response().text}")
    issue_decided(world, registry, f"issuance {quantity}")


@_when('{registry:Registry} issues {quantity:Quantity} AAU more than the rest of its '
       'assigned amount for period {period:d}')
def issue_beyond(world: World, registry: str, quantity: int, period: int) -> None:
    """Issue the rest of the Party's assigned amount for the period (what the ITL has
    not yet seen issued) plus ``quantity``."""
    status = world.client.ok("itl", "GET", f"/parties/{registry}/periods/{period}")
    rest = int(status["assigned_amount"]) - int(status["aaus_issued"])
    issue(world, registry, rest + quantity, period)


@_when('"{source}" transfers {quantity:Quantity} {unit:Unit} of period {period:d} to '
       '"{target}"')
def transfer(world: World, source: str, quantity: int, unit: str, period: int,
             target: str) -> None:
    """A transfer instructed by the holder of the transferring account (the operator
    for a government account), approved by the second representative: internal
    (type 10) when both accounts are in one registry, external (type 3) through the ITL
    otherwise."""
    giver, taker = world.account(source), world.account(target)
    response = world.client.transfer(
        giver.registry, giver.account_id, taker.account_id, unit, quantity,
        target_registry=None if taker.registry == giver.registry else taker.registry.upper(),
        target_type=taker.account_type, period=period)
    world.answered(giver.registry, response)


@_when('"{source}" transfers {quantity:Quantity} {unit:Unit} of period {period:d} to '
       '{registry:Registry} account {number:d}')
def transfer_to_number(world: World, source: str, quantity: int, unit: str, period: int,
                       registry: str, number: int) -> None:
    """A transfer to an account given by registry and number only, which may not exist
    (the acquiring registry answers 5902 then); a person holding account is assumed."""
    giver = world.account(source)
    response = world.client.transfer(
        giver.registry, giver.account_id, number, unit, quantity,
        target_registry=None if registry.lower() == giver.registry else registry,
        period=period)
    world.answered(giver.registry, response)


@_when('on decision "{reference}", "{source}" transfers {quantity:Quantity} {unit:Unit} of '
       'period {period:d} to "{target}"')
def transfer_on_decision(world: World, source: str, quantity: int, unit: str,
                         period: int, target: str, reference: str) -> None:
    """An external transfer that needs a decision of the authorised body (ERUs leave the
    registry only on one, cl. 16-18)."""
    giver, taker = world.account(source), world.account(target)
    _propose(world, giver.registry, "/transactions/external-transfer", {
        "transferring_account_id": giver.account_id,
        "acquiring_registry": taker.registry.upper(),
        "acquiring_account_id": taker.account_id,
        "acquiring_account_type": taker.account_type, "unit_type": unit,
        "quantity": quantity, "commitment_period": period,
        "decision_id": _decision(world, reference)}, holder(giver.account_id))


@_when('{registry:Registry} converts {quantity:Quantity} {unit:Unit} of period {period:d} '
       'into ERUs for project "{project}" under track {track:d}')
def convert(world: World, registry: str, quantity: int, unit: str, period: int,
            project: str, track: int) -> None:
    """Conversion (type 2) of the Party holding account's AAUs or RMUs into ERUs of a JI
    project: under track 1 on a decision of the authorised body, taken here; under
    track 2 on the JISC's determination at the ITL."""
    body: dict[str, Any] = {"unit_type": unit, "quantity": quantity,
                            "commitment_period": period, "project_id": project,
                            "track": track}
    if track == 1:
        response = world.client.call(
            registry.lower(), "POST", "/decisions",
            headers=world.client.as_authorised_body(registry.lower()),
            json={"kind": "conversion", "reference": f"JI {project} {world.tag}",
                  "unit_type": unit, "quantity": quantity, "commitment_period": period,
                  "project_id": project})
        if response.status_code >= 300:
            world.answered(registry, response)
            return
        body["decision_id"] = response.json()["decision_id"]
    _propose(world, registry, "/transactions/conversion", body)


@_when('{registry:Registry} cancels {quantity:Quantity} {unit:Unit} of period {period:d} '
       'into its {kind} cancellation account')
def cancel(world: World, registry: str, quantity: int, unit: str, period: int,
           kind: str) -> None:
    """Cancellation (type 4) of the Party holding account's units into the cancellation
    account of their period (``voluntary`` 230, ``net source`` 210, ``non-compliance``
    220, ``mandatory`` 250, ``Art. 3.7ter`` 270, ``ambition increase`` 280), on a
    cancellation decision taken here (a period-1 cancellation: after the period's end,
    cl. 28); 3.7ter and ambition increase need none."""
    types = {"voluntary": 230, "net source": 210, "non-compliance": 220,
             "mandatory": 250, "Art. 3.7ter": 270, "ambition increase": 280}
    if kind not in types:
        raise ScenarioError(f"no cancellation account {kind!r} (one of {', '.join(types)})")
    body: dict[str, Any] = {"unit_type": unit, "quantity": quantity,
                            "commitment_period": period, "account_type": types[kind]}
    if types[kind] not in (270, 280):
        reference = f"cancellation {quantity}"
        decide(world, registry, "cancellation", quantity, unit, period, reference)
        if world.last_response().status_code >= 300:
            return
        body["decision_id"] = world.decisions[reference]
    _propose(world, registry, "/transactions/cancellation", body)


@_when('{registry:Registry} cancels {quantity:Quantity} {unit:Unit} of period {period:d} '
       'into account type {account_type:d} on notice "{notice}"')
def cancel_on_notice(world: World, registry: str, quantity: int, unit: str, period: int,
                     account_type: int, notice: str) -> None:
    """Cancellation (type 4) answering an ITL notice (net source 1, non-compliance 2):
    the proposal carries the notice's id; the ITL checks the account type fits it
    (4005 otherwise)."""
    _propose(world, registry, "/transactions/cancellation", {
        "unit_type": unit, "quantity": quantity, "commitment_period": period,
        "account_type": account_type, "notice_id": _notice(world, notice)})


@_when('{registry:Registry} retires {quantity:Quantity} {unit:Unit} of period {period:d}')
def retire(world: World, registry: str, quantity: int, unit: str, period: int) -> None:
    """Retirement (type 5) of the Party holding account's units into the retirement
    account of their period, on a retirement decision taken here (cl. 27-29)."""
    reference = f"retirement {quantity}"
    decide(world, registry, "retirement", quantity, unit, period, reference)
    if world.last_response().status_code >= 300:
        return
    _propose(world, registry, "/transactions/retirement",
             {"decision_id": world.decisions[reference]})


@_when('{registry:Registry} carries over {quantity:Quantity} {unit:Unit} of period 1')
def carry_over(world: World, registry: str, quantity: int, unit: str) -> None:
    """Carry-over (type 7) of period-1 units into period 2: AAUs into the previous
    period surplus reserve (130), CERs and ERUs from AAUs within 2.5 % of the assigned
    amount (protocol.md 4.3); only after the period's true-up."""
    _propose(world, registry, "/transactions/carry-over",
             {"unit_type": unit, "quantity": quantity, "commitment_period": 1})


@_when('{registry:Registry} replaces the units of notice "{notice}" with {unit:Unit} of '
       'period {period:d}')
def replace(world: World, registry: str, notice: str, unit: str, period: int) -> None:
    """Replacement (type 6) of the tCERs or lCERs a notice (3, 4, 5) lists with units of
    the Party holding account."""
    _propose(world, registry, "/transactions/replacement", {
        "notice_id": _notice(world, notice), "unit_type": unit,
        "commitment_period": period})


@_when('{registry:Registry} changes the expiry date of the units of notice "{notice}" in '
       '"{account}" to {day:Moment}')
def change_expiry(world: World, registry: str, notice: str, account: str,
                  day: str) -> None:
    """Expiry date change (type 8) of the tCERs or lCERs a notice 9 lists, held in the
    named account."""
    _propose(world, registry, "/transactions/expiry-date-change", {
        "account_id": world.account(account).account_id,
        "notice_id": _notice(world, notice), "new_expiry_date": day})


@_when('{registry:Registry} proposes an operation awaiting approval: "{source}" transfers '
       '{quantity:Quantity} {unit:Unit} of period {period:d} to "{target}"')
def transfer_unapproved(world: World, registry: str, source: str, quantity: int,
                        unit: str, period: int, target: str) -> None:
    """A transfer (internal or external) the first representative starts and nobody
    approves yet: where the registry requires a second person's approval for it (KZ: an
    external transfer), the answer is the pending approval (202) and no transaction is
    proposed."""
    giver, taker = world.account(source), world.account(target)
    world.answered(registry, world.client.transfer(
        giver.registry, giver.account_id, taker.account_id, unit, quantity,
        target_registry=None if taker.registry == giver.registry else taker.registry.upper(),
        target_type=taker.account_type, period=period, approve=False))


# -------------------------------------------------------------------------- notices
_family = "ITL notices"


def _notice(world: World, name: str) -> int:
    if name not in world.notices:
        raise ScenarioError(f"no notice {name!r} in this scenario (notices: "
                            f"{', '.join(world.notices) or 'none'})")
    return world.notices[name]


def _table(datatable: list[list[str]], columns: set[str], step: str) -> list[dict[str, str]]:
    """The rows of a step's table as dicts by header; a missing or unknown header is a
    ``ScenarioError`` naming the step and the known columns."""
    if not datatable or len(datatable) < 2:
        raise ScenarioError(f"{step}: the table needs a header row and at least one row")
    header = [cell.strip() for cell in datatable[0]]
    unknown = [h for h in header if h not in columns]
    if unknown:
        raise ScenarioError(f"{step}: unknown column(s) {', '.join(unknown)}; the columns "
                            f"are {', '.join(sorted(columns))}")
    return [dict(zip(header, (c.strip() for c in row), strict=True))
            for row in datatable[1:]]


NOTICE_FIELDS = {"notice type": int, "target value": int, "commitment period": int,
                 "unit type": str, "action due date": str, "project": str, "text": str}


@_when('the ITL issues notice "{name}" to {registry:Registry}:')
def issue_notice(world: World, name: str, registry: str, datatable: list[list[str]]) -> None:
    """The ITL issues a notice (``POST /notices``) with the fields of a two-column table
    (field | value): notice type, target value, commitment period, unit type, action due
    date, project, text. The step returns once the registry has received it."""
    fields: dict[str, Any] = {}
    for row in datatable:
        if len(row) != 2 or row[0].strip() not in NOTICE_FIELDS:
            raise ScenarioError(f"notice {name!r}: each row is 'field | value', the fields "
                                f"are {', '.join(NOTICE_FIELDS)}; got {row}")
        key = row[0].strip()
        wire = "project_id" if key == "project" else key.replace(" ", "_")
        fields[wire] = NOTICE_FIELDS[key](row[1].strip())
    if world.pending_blocks:
        fields["blocks"] = world.pending_blocks
    response = world.client.call("itl", "POST", "/notices",
                                 json={"registry": registry, **fields})
    world.answered("itl", response)
    if response.status_code >= 300:
        return
    notice_id = int(response.json()["notice_id"])
    world.notices[name] = notice_id
    poll(lambda: world.client.call(registry.lower(), "GET", f"/notices/{notice_id}"),
         lambda r: r.status_code == 200, f"notice {notice_id} in {registry}")


@_given('the ITL has issued notice "{name}" to {registry:Registry}:')
def issued_notice(world: World, name: str, registry: str,
                  datatable: list[list[str]]) -> None:
    """As ``When the ITL issues notice ...``, as a precondition."""
    issue_notice(world, name, registry, datatable)
    if name not in world.notices:
        raise ScenarioError(f"the ITL refused notice {name!r}: "
                            f"{world.last_response().text}")


@_when('the ITL issues notice "{name}" to {registry:Registry} listing the {unit:Unit} '
       'blocks of "{account}":')
def issue_notice_listing(world: World, name: str, registry: str, unit: str, account: str,
                         datatable: list[list[str]]) -> None:
    """As ``the ITL issues notice``, the notice listing every block of the unit type the
    account holds now (serials as the registry shows them): the blocks to replace,
    cancel or change the expiry date of."""
    found = world.account(account)
    blocks = [{"serial_start": b["serial_start"], "serial_end": b["serial_end"],
               "originating_registry": b["originating_registry"],
               "unit_type": int(UnitType[unit]),
               "original_commitment_period": b["original_commitment_period"],
               "applicable_commitment_period": b["applicable_commitment_period"],
               **({"project_id": b["project_id"]} if b.get("project_id") else {}),
               **({"expiry_date": b["expiry_date"]} if b.get("expiry_date") else {})}
              for b in world.client.holdings(found.registry, found.account_id)["blocks"]
              if b["unit_type"] == unit]
    if not blocks:
        raise ScenarioError(f"{found} holds no {unit} blocks for the notice to list")
    world.pending_blocks = blocks
    try:
        issue_notice(world, name, registry, datatable)
    finally:
        world.pending_blocks = None


@_given('the ITL has issued notice "{name}" to {registry:Registry} listing the {unit:Unit} '
        'blocks of "{account}":')
def issued_notice_listing(world: World, name: str, registry: str, unit: str, account: str,
                          datatable: list[list[str]]) -> None:
    """As the ``When`` step of the same words, as a precondition."""
    issue_notice_listing(world, name, registry, unit, account, datatable)
    if name not in world.notices:
        raise ScenarioError(f"the ITL refused notice {name!r}: "
                            f"{world.last_response().text}")


@_then('{registry:Registry} has received notice "{name}" requiring "{action}"')
def notice_received(world: World, registry: str, name: str, action: str) -> None:
    """The registry holds the notice and states the action it requires (a part of its
    ``required_action``)."""
    seen = world.client.ok(registry.lower(), "GET", f"/notices/{_notice(world, name)}")
    world.note(f"{registry} notice {seen['notice_id']}: {seen['required_action']}")
    assert action in seen["required_action"], seen["required_action"]


@_then('notice "{name}" is {status:Status} at the ITL')
def notice_status(world: World, name: str, status: str) -> None:
    """The ITL's notice status (OPEN, INCOMPLETE, COMPLETED), waited for up to 30 real
    seconds."""
    notice_id = _notice(world, name)
    view = poll(lambda: world.client.ok("itl", "GET", f"/notices/{notice_id}"),
                lambda v: v["status_name"] == status, f"notice {notice_id} {status}",
                timeout=30)
    world.note(f"ITL notice {notice_id}: {view['status_name']}")


@_then('{registry:Registry} has a notice of type {notice_type:d} with target value '
       '{quantity:Quantity}')
def notice_of_type(world: World, registry: str, notice_type: int, quantity: int) -> None:
    """The registry holds (or receives within 30 real seconds) a notice of the type with
    the target value: the ITL's own notices (7 reserve, 3 impending expiry)."""
    found = poll(lambda: [n for n in world.client.ok(registry.lower(), "GET", "/notices")
                          if n["notice_type"] == notice_type
                          and n["target_value"] == quantity],
                 bool, f"notice type {notice_type} of {quantity} in {registry}", timeout=30)
    world.notices.setdefault(f"type {notice_type}", int(found[-1]["notice_id"]))
    world.note(f"{registry} notice {found[-1]['notice_id']} type {notice_type}: "
               f"{found[-1]['required_action']}")


# ----------------------------------------------------------------------------- clock
_family = "The simulation clock"


@_when("the simulation clock moves to {moment:Moment}")
def clock_to(world: World, moment: str) -> None:
    """Move every service's simulation clock to ``moment`` (a day or an ISO time, UTC);
    the step returns once KZ has carried out what fell due (notices, decisions)."""
    when_ = moment if "T" in moment else f"{moment}T00:00:00+00:00"
    world.note(f"clock -> {world.client.set_clock(when_).isoformat()}")


@_when("the simulation clock moves on {hours:d} hours")
def clock_on(world: World, hours: int) -> None:
    """Move the simulation clock forward by ``hours`` simulated hours."""
    world.note(f"clock -> "
               f"{world.client.set_clock(world.client.now() + timedelta(hours=hours))}")


@_given("the simulation clock stands at or after {moment:Moment}")
def clock_at_least(world: World, moment: str) -> None:
    """Move the clock to ``moment`` unless it is already later (the clock never goes
    back on a shared stack)."""
    target = datetime.fromisoformat(moment if "T" in moment else f"{moment}T00:00:00+00:00")
    if world.client.now() < target:
        world.client.set_clock(target)


# ---------------------------------------------------------------------------- faults
_family = "Faults"


@_when("the {service} service is killed")
def kill(world: World, service: str) -> None:
    """SIGKILL a service (``ITL``, ``KZ``, ``CH``, ``CDM``): what it had not committed is
    lost; messages to it wait on the broker."""
    world.stack.kill(service.lower())
    world.killed.add(service.lower())
    world.note(f"{service} killed")


@_when("the {service} service is restarted")
def restart(world: World, service: str) -> None:
    """Start a killed service again and wait until it is healthy."""
    world.stack.restart(service.lower())
    world.killed.discard(service.lower())
    world.note(f"{service} restarted")


@_when("the {service} service is paused")
def pause(world: World, service: str) -> None:
    """SIGSTOP a service: every message to it is delayed until it is resumed."""
    world.stack.pause(service.lower())
    world.paused.add(service.lower())
    world.note(f"{service} paused")


@_when("the {service} service is resumed")
def resume(world: World, service: str) -> None:
    """SIGCONT a paused service: it reads the messages that waited."""
    world.stack.resume(service.lower())
    world.paused.discard(service.lower())
    world.note(f"{service} resumed")


# ----------------------------------------------------------------- information, HTTP
_family = "Information retrieval"


@_when("the {who} asks {service} for {path}")
def ask(world: World, who: str, service: str, path: str) -> None:
    """A ``GET`` of ``path`` at a service (``ITL``, ``KZ``, ``CDM`` ...) as ``operator``
    (the service's operator, the ITL administrator at the ITL), ``authorised body`` or
    ``anonymous caller`` (no token)."""
    name = service.lower()
    if who == "anonymous caller":
        response = world.client.http.get(f"{world.client.urls[name]}{path}")
    elif who == "operator":
        response = world.client.call(name, "GET", path)
    elif who == "authorised body":
        response = world.client.call(name, "GET", path,
                                     headers=world.client.as_authorised_body(name))
    else:
        raise ScenarioError(f"unknown caller {who!r}: operator, authorised body or "
                            "anonymous caller")
    world.answered(name, response)


@_then("the answer has HTTP status {code:d}")
def http_status(world: World, code: int) -> None:
    """The last answer's HTTP status."""
    response = world.last_response()
    assert response.status_code == code, f"{response.status_code}: {response.text}"


@_then('the answer lists "{text}"')
def answer_lists(world: World, text: str) -> None:
    """The last answer's body contains ``text``."""
    assert text in world.last_response().text, world.last_response().text[:2000]


@_then("the answer is a list of at least {count:d} entries")
def answer_count(world: World, count: int) -> None:
    """The last answer is a JSON list with at least ``count`` entries."""
    body = world.last_response().json()
    assert isinstance(body, list) and len(body) >= count, body


# ------------------------------------------------------------------------ expectations
_family = "Expectations: answers and transactions"


@_then("the request is refused with HTTP {status:d} and response code {code:d}")
def refused(world: World, status: int, code: int) -> None:
    """The registry refused the operation before proposing it: HTTP ``status`` with the
    DES response code (protocol.md 3.3) in ``response_code``."""
    response = world.last_response()
    assert response.status_code == status, f"{response.status_code}: {response.text}"
    assert response.json().get("response_code") == code, response.text


@_then("the request is refused with HTTP {status:d}")
def refused_http(world: World, status: int) -> None:
    """The last answer is a refusal with this HTTP status (401, 403, 404, 422)."""
    response = world.last_response()
    assert response.status_code == status, f"{response.status_code}: {response.text}"


@_then('the refusal says "{text}"')
def refusal_says(world: World, text: str) -> None:
    """The refusal's ``detail`` contains ``text``."""
    assert text in world.last_response().text, world.last_response().text


@_then("the operation awaits approval")
def awaits_approval(world: World) -> None:
    """The last answer is 202 with a pending approval, not a proposed transaction."""
    response = world.last_response()
    assert response.status_code == 202, response.text
    assert response.json().get("status") == "pending", response.text


def _final(world: World) -> dict[str, Any]:
    registry, transaction_id = world.current()
    response = world.last_response()
    if response.status_code >= 300:
        raise AssertionError(f"the operation was refused before any transaction: "
                             f"{response.status_code} {response.text}")
    view: dict[str, Any] = world.client.settle(registry, transaction_id)
    line = (f"{transaction_id} in {registry.upper()}: {view['status_name']} "
            f"{view.get('response_codes') or ''}").rstrip()
    if line not in world.evidence:
        world.note(line)
    return view


@_then("the transaction is {status:Status}")
def transaction_status(world: World, status: str) -> None:
    """The last transaction's final status in the proposing registry (COMPLETED,
    TERMINATED, REJECTED, CANCELLED), once the ITL (and an acquiring registry) have
    finished with it."""
    view = _final(world)
    assert view["status_name"] == status, (
        f"{view['status_name']} with {view.get('evaluation_results')}")


@_then("the transaction is {status:Status} with response code {code:d}")
def transaction_status_code(world: World, status: str, code: int) -> None:
    """The last transaction's final status and its DES response codes (one, ``code``)."""
    view = _final(world)
    assert (view["status_name"], view["response_codes"]) == (status, [code]), (
        f"{view['status_name']} {view['response_codes']}: {view.get('evaluation_results')}")


@_then("the transaction's history in {registry:Registry} is {statuses}")
def transaction_history(world: World, registry: str, statuses: str) -> None:
    """The statuses the transaction went through in a registry, in order, as numbers
    (``1, 2, 4``) or names (``PROPOSED, ACCEPTED, COMPLETED``)."""
    _final(world)
    _, transaction_id = world.current()
    view = world.client.wait_final(registry.lower(), transaction_id)
    seen = [h["status"] for h in view["history"]]
    wanted = [int(s) if s.strip().isdigit() else int(TransactionStatus[s.strip()])
              for s in statuses.split(",")]
    assert seen == wanted, f"history {seen}, expected {wanted}"


@_then("the transaction is of type {kind:d}")
def transaction_type(world: World, kind: int) -> None:
    """The DES transaction type of the last transaction (1 issuance ... 10 internal)."""
    assert _final(world)["transaction_type"] == kind


@_when("the ITL has forwarded the transaction to the acquiring registry")
def forwarded(world: World) -> None:
    """Wait (up to 30 real seconds) until the ITL has checked the last transaction and
    forwarded it (status 2 at the ITL)."""
    _, transaction_id = world.current()
    poll(lambda: world.client.call("itl", "GET", f"/transactions/{transaction_id}"),
         lambda r: r.status_code == 200 and r.json()["status"] == 2,
         f"{transaction_id} forwarded by the ITL", timeout=30)


@_then("the share of proceeds of {registry:Registry} is settled")
def share_settled(world: World, registry: str) -> None:
    """Every share-of-proceeds transfer the registry has proposed (2 % of a first
    international transfer of period-2 AAUs, of the ERUs a conversion issues; 1/CMP.8
    para 21) is final in the registry, the ITL and the CDM registry: they move units
    on their own, after the transaction that caused them."""
    views = world.client.settle_share_of_proceeds(registry.lower())
    world.note(f"{registry} share of proceeds: " + ", ".join(
        f"{v['transaction_id']} {v['status_name']}" for v in views))


@_then("the ITL records the transaction as {status:Status}")
def itl_status(world: World, status: str) -> None:
    """The ITL's own record of the last transaction (``GET /transactions/{id}``)."""
    _final(world)
    _, transaction_id = world.current()
    view = world.client.wait_final("itl", transaction_id)
    assert view["status_name"] == status, view


@_then("{registry:Registry} records the inbound transaction as {status:Status}")
def inbound_status(world: World, registry: str, status: str) -> None:
    """The acquiring registry's record of the last (external) transaction."""
    _final(world)
    _, transaction_id = world.current()
    view = world.client.wait_final(registry.lower(), transaction_id)
    assert view["status_name"] == status, view


# ---------------------------------------------------------------- holdings and books
_family = "Expectations: holdings, the ITL's register and reconciliation"


@_then('"{account}" holds {quantity:Quantity} {unit:Unit} of period {period:d}')
def holds(world: World, account: str, quantity: int, unit: str, period: int) -> None:
    """What an account holds of a unit type for an applicable period, reserved units
    included."""
    found = world.account(account)
    held = world.client.units_held(found.registry, found.account_id, unit, period)
    world.note(f"{found} holds {held} {unit} of period {period}")
    assert held == quantity, f"{found} holds {held} {unit} of period {period}"


@_then('"{account}" holds {quantity:Quantity} {unit:Unit}')
def holds_any_period(world: World, account: str, quantity: int, unit: str) -> None:
    """What an account holds of a unit type, every period together."""
    found = world.account(account)
    held = world.client.units_held(found.registry, found.account_id, unit)
    world.note(f"{found} holds {held} {unit}")
    assert held == quantity, f"{found} holds {held} {unit}"


@_then('"{account}" holds nothing')
def holds_nothing(world: World, account: str) -> None:
    """The account holds no unit at all."""
    holds_any_period_all(world, account, 0)


def holds_any_period_all(world: World, account: str, quantity: int) -> None:
    found = world.account(account)
    held = world.client.units_held(found.registry, found.account_id)
    assert held == quantity, f"{found} holds {held} units"


@_then('"{account}" gained {quantity:Quantity} {unit:Unit}')
def gained(world: World, account: str, quantity: int, unit: str) -> None:
    """An account's holding of the unit type grew by ``quantity`` since before the last
    block of actions (use it for shared accounts such as a Party holding account)."""
    assert _change(world, world.account(account), unit) == quantity


@_then('"{account}" lost {quantity:Quantity} {unit:Unit}')
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


@_then('"{account}" holds the blocks:')
def holds_blocks(world: World, account: str, datatable: list[list[str]]) -> None:
    """The account's unit blocks, block by block, in any order; the table's columns are
    any of unit type, quantity, original period, applicable period, originating
    registry, expiry date, project (serial numbers depend on what ran before)."""
    rows = _table(datatable, BLOCK_COLUMNS, f'"{account}" holds the blocks')
    found = world.account(account)
    blocks = world.client.holdings(found.registry, found.account_id)["blocks"]
    seen = sorted(tuple(str(b.get(BLOCK_FIELDS[c]) or "") for c in rows[0]) for b in blocks)
    wanted = sorted(tuple(r[c] for c in rows[0]) for r in rows)
    world.note(f"{found} blocks: {seen}")
    assert seen == wanted, f"{found} holds blocks {seen}, expected {wanted}"


@_then('every block "{account}" holds is one of:')
def blocks_are(world: World, account: str, datatable: list[list[str]]) -> None:
    """Each of the account's unit blocks matches a row of the table (columns as for
    ``holds the blocks``, without quantity): the units' kind, origin, periods, project
    and expiry, however the registry split them into blocks."""
    rows = _table(datatable, BLOCK_COLUMNS - {"quantity"},
                  f'every block "{account}" holds is one of')
    found = world.account(account)
    blocks = world.client.holdings(found.registry, found.account_id)["blocks"]
    allowed = {tuple(r[c] for c in rows[0]) for r in rows}
    seen = [tuple(str(b.get(BLOCK_FIELDS[c]) or "") for c in rows[0]) for b in blocks]
    world.note(f"{found} blocks: {seen}")
    assert blocks, f"{found} holds no block"
    odd = [s for s in seen if s not in allowed]
    assert not odd, f"{found} holds blocks {odd} matching no row of {sorted(allowed)}"


@_then("the books of {registry:Registry} are unchanged")
def books_unchanged(world: World, registry: str) -> None:
    """The registry's books (units per account, unit type and period) are as they were
    before the last block of actions: a refused or terminated operation moved nothing."""
    code = registry.lower()
    if world.transactions and world.last_response().status_code < 300:
        _final(world)
    if code not in world.books_before:
        raise ScenarioError(f"the books of {registry} were not read before the last "
                            "actions (the registry did not answer)")
    assert world.client.registry_totals(code) == world.books_before[code]


@_then("the ITL's register agrees with the books of {registry:Registry}")
def register_agrees(world: World, registry: str) -> None:
    """The ITL's register of the registry's units (``GET /totals``) equals the registry's
    own books, account by account and unit type by unit type."""
    if world.transactions and world.last_response().status_code < 300:
        _final(world)

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


@_then('the ITL\'s register shows {quantity:Quantity} {unit:Unit} in "{account}"')
def register_shows(world: World, quantity: int, unit: str, account: str) -> None:
    """The ITL's register (``GET /units``) has ``quantity`` units of the type in the
    account."""
    found = world.account(account)
    rows = world.client.ok("itl", "GET", "/units", params={
        "registry": found.registry.upper(), "unit_type": int(UnitType[unit])})
    held = sum(int(b["quantity"]) for b in rows if int(b["account_id"]) == found.account_id)
    world.note(f"ITL register: {found} {held} {unit}")
    assert held == quantity, f"the ITL's register has {held} {unit} in {found}"


# ------------------------------------------------------------------- reconciliation
_family = "Reconciliation"


@_when("the ITL reconciles {registry:Registry}")
def reconcile(world: World, registry: str) -> None:
    """The ITL starts a reconciliation of the registry (totals, then unit blocks, then
    audit trail where they disagree) and the step waits until it is closed or waits for
    an operator."""
    world.reconciliation = world.client.reconcile(registry)
    world.note(f"reconciliation {world.reconciliation['reconciliation_id']}: status "
               f"{world.reconciliation['status']} phase {world.reconciliation['phase']}")


@_then("the reconciliation ends with status {status:d}")
def reconciliation_status(world: World, status: int) -> None:
    """The reconciliation's status (protocol.md 5: 5 ITL completed, 6 completed with
    manual intervention, 3/4 inconsistent)."""
    if world.reconciliation is None:
        raise ScenarioError("the scenario has run no reconciliation")
    assert world.reconciliation["status"] == status, world.reconciliation


@_then("the reconciliation flagged no unit block")
def reconciliation_clean(world: World) -> None:
    """The reconciliation stopped at the totals phase with nothing flagged."""
    if world.reconciliation is None:
        raise ScenarioError("the scenario has run no reconciliation")
    assert not world.reconciliation["flagged"], world.reconciliation


@_when("the ITL sets {registry:Registry} inconsistent")
def registry_inconsistent(world: World, registry: str) -> None:
    """The ITL administrator sets the registry inconsistent as a whole (``PUT
    /registries/{code}/state``): its new proposals are refused with 1203 until it is set
    consistent again."""
    world.inconsistent.add(registry)
    world.answered("itl", world.client.call("itl", "PUT", f"/registries/{registry}/state",
                                            json={"inconsistent": True,
                                                  "reason": "conformance plan"}))


@_when("the ITL sets {registry:Registry} consistent again")
def registry_consistent(world: World, registry: str) -> None:
    """The ITL administrator lifts the registry's inconsistent state."""
    world.inconsistent.discard(registry)
    world.answered("itl", world.client.call("itl", "PUT", f"/registries/{registry}/state",
                                            json={"inconsistent": False,
                                                  "reason": "conformance plan"}))
