"""Every operation of the Rules (Decree 684 cl. 3) as a registry proposes it: issuance,
conversion, internal and external transfer, cancellation, retirement, carry-over,
replacement, expiry date change."""

from __future__ import annotations

from typing import Any

from conformance.steps.library import (
    Family,
    decision_id,
    notice_id,
)
from conformance.steps.parties import decide
from conformance.world import ScenarioError, World
from deploy.local.client import holder

FAMILY = Family("Operations")


def _propose(world: World, registry: str, path: str, body: dict[str, Any],
             actor: str = "operator") -> None:
    world.answered(registry, world.client.propose(registry.lower(), path, body, actor))


@FAMILY.when('{registry:Registry} issues the units of decision "{reference}"')
def issue_decided(world: World, registry: str, reference: str) -> None:
    """The operator proposes the issuance a decision ordered (the second operator
    approves it): transaction type 1 into the Party holding account."""
    _propose(world, registry, "/transactions/issuance",
             {"decision_id": decision_id(world, reference)})


@FAMILY.when("{registry:Registry} issues {quantity:Quantity} AAU of period {period:d}")
def issue(world: World, registry: str, quantity: int, period: int) -> None:
    """The authorised body decides an issuance of AAUs and the operators propose it
    (transaction type 1, into the Party holding account)."""
    decide(world, registry, "issuance", quantity, "AAU", period, f"issuance {quantity}")
    if world.last_response().status_code >= 300:
        raise ScenarioError(f"the issuance decision was refused: "
                            f"{world.last_response().text}")
    issue_decided(world, registry, f"issuance {quantity}")


@FAMILY.when('{registry:Registry} issues {quantity:Quantity} AAU more than the rest of its '
       'assigned amount for period {period:d}')
def issue_beyond(world: World, registry: str, quantity: int, period: int) -> None:
    """Issue the rest of the Party's assigned amount for the period (what the ITL has
    not yet seen issued) plus ``quantity``."""
    status = world.client.ok("itl", "GET", f"/parties/{registry}/periods/{period}")
    rest = int(status["assigned_amount"]) - int(status["aaus_issued"])
    issue(world, registry, rest + quantity, period)


@FAMILY.when('"{source}" transfers {quantity:Quantity} {unit:Unit} of period {period:d} to '
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


@FAMILY.when('"{source}" transfers {quantity:Quantity} {unit:Unit} of period {period:d} to '
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


@FAMILY.when('on decision "{reference}", "{source}" transfers {quantity:Quantity} {unit:Unit} of '
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
        "decision_id": decision_id(world, reference)}, holder(giver.account_id))


@FAMILY.when('{registry:Registry} converts {quantity:Quantity} {unit:Unit} of period {period:d} '
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


@FAMILY.when('{registry:Registry} cancels {quantity:Quantity} {unit:Unit} of period {period:d} '
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


@FAMILY.when('{registry:Registry} cancels {quantity:Quantity} {unit:Unit} of period {period:d} '
       'into account type {account_type:d} on notice "{notice}"')
def cancel_on_notice(world: World, registry: str, quantity: int, unit: str, period: int,
                     account_type: int, notice: str) -> None:
    """Cancellation (type 4) answering an ITL notice (net source 1, non-compliance 2):
    the proposal carries the notice's id; the ITL checks the account type fits it
    (4005 otherwise)."""
    _propose(world, registry, "/transactions/cancellation", {
        "unit_type": unit, "quantity": quantity, "commitment_period": period,
        "account_type": account_type, "notice_id": notice_id(world, notice)})


@FAMILY.when('{registry:Registry} retires {quantity:Quantity} {unit:Unit} of period {period:d}')
def retire(world: World, registry: str, quantity: int, unit: str, period: int) -> None:
    """Retirement (type 5) of the Party holding account's units into the retirement
    account of their period, on a retirement decision taken here (cl. 27-29)."""
    reference = f"retirement {quantity}"
    decide(world, registry, "retirement", quantity, unit, period, reference)
    if world.last_response().status_code >= 300:
        return
    _propose(world, registry, "/transactions/retirement",
             {"decision_id": world.decisions[reference]})


@FAMILY.when('{registry:Registry} carries over {quantity:Quantity} {unit:Unit} of period 1')
def carry_over(world: World, registry: str, quantity: int, unit: str) -> None:
    """Carry-over (type 7) of period-1 units into period 2: AAUs into the previous
    period surplus reserve (130), CERs and ERUs from AAUs within 2.5 % of the assigned
    amount (protocol.md 4.3); only after the period's true-up."""
    _propose(world, registry, "/transactions/carry-over",
             {"unit_type": unit, "quantity": quantity, "commitment_period": 1})


@FAMILY.when('{registry:Registry} replaces the units of notice "{notice}" with {unit:Unit} of '
       'period {period:d}')
def replace(world: World, registry: str, notice: str, unit: str, period: int) -> None:
    """Replacement (type 6) of the tCERs or lCERs a notice (3, 4, 5) lists with units of
    the Party holding account."""
    _propose(world, registry, "/transactions/replacement", {
        "notice_id": notice_id(world, notice), "unit_type": unit,
        "commitment_period": period})


@FAMILY.when('{registry:Registry} changes the expiry date of the units of notice "{notice}" in '
       '"{account}" to {day:Moment}')
def change_expiry(world: World, registry: str, notice: str, account: str,
                  day: str) -> None:
    """Expiry date change (type 8) of the tCERs or lCERs a notice 9 lists, held in the
    named account."""
    _propose(world, registry, "/transactions/expiry-date-change", {
        "account_id": world.account(account).account_id,
        "notice_id": notice_id(world, notice), "new_expiry_date": day})


@FAMILY.when('{registry:Registry} proposes an operation awaiting approval: "{source}" transfers '
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
