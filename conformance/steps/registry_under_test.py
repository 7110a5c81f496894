"""The registry under test: another registry, built elsewhere, put through the plan
(``--registry-under-test CODE``; README "Put another registry through it",
docs/adr/0039). It is driven only through the wire: the ITL forwards it transfers and
reconciles it (unattended); what it must start itself, the tester does in it, told by
the runner, which waits for the message at the ITL (attended)."""

from __future__ import annotations

from typing import Any

import pytest

from conformance.registry_under_test import RegistryUnderTest
from conformance.steps.library import Family, final_view, notice_id
from conformance.steps.notices import notice_fields
from conformance.steps.parties import funded_person_account
from conformance.world import ScenarioError, World
from shared.codes import UnitType

FAMILY = Family("The registry under test")


def _number(request: pytest.FixtureRequest) -> str:
    mark = request.node.get_closest_marker("conformance")
    return str(mark.args[0]) if mark and mark.args else request.node.name


@FAMILY.when('"{source}" transfers {quantity:Quantity} {unit:Unit} of period {period:d} to '
             "the registry under test's {role} account")
def transfer_to_rut(world: World, registry_under_test: RegistryUnderTest, source: str,
                    quantity: int, unit: str, period: int, role: str) -> None:
    """An external transfer to the registry under test's account of a role (``holding``:
    open, takes the units; ``closed``; ``unknown``: a number it does not have), which
    the ITL forwards to it: it must accept (8) or reject (6 with 5902, 5903 or 5906)."""
    giver = world.account(source)
    number = registry_under_test.account(role)
    response = world.client.transfer(giver.registry, giver.account_id, number, unit,
                                     quantity, target_registry=registry_under_test.code,
                                     period=period)
    world.answered(giver.registry, response)


@FAMILY.given("the registry under test has received {quantity:Quantity} {unit:Unit} of "
              "period {period:d} into its {role} account")
def rut_funded(world: World, registry_under_test: RegistryUnderTest, quantity: int,
               unit: str, period: int, role: str) -> None:
    """A new KZ holder's external transfer of the units into the registry under test's
    account, completed (the registry accepted it and the ITL completed it)."""
    name = f"giver to {registry_under_test.code}"
    # a first international transfer of period-2 AAUs owes 2 % more (share of proceeds)
    funded_person_account(world, name, "KZ", quantity + quantity // 10 + 1, unit, period)
    transfer_to_rut(world, registry_under_test, name, quantity, unit, period, role)
    view = final_view(world)
    if view["status_name"] != "COMPLETED":
        raise ScenarioError(f"the transfer into the registry under test ended "
                            f"{view['status_name']}: {view.get('evaluation_results')}")


@FAMILY.when("the tester has the registry under test transfer {quantity:Quantity} "
             '{unit:Unit} of period {period:d} from its {role} account to "{target}"')
def rut_transfers(world: World, registry_under_test: RegistryUnderTest,
                  request: pytest.FixtureRequest, quantity: int, unit: str, period: int,
                  role: str, target: str) -> None:
    """Attended: the tester has their registry propose an external transfer (type 3) to
    an account of the stack; the step waits (``--attended-timeout``) until the ITL has
    the proposal, which becomes the scenario's transaction."""
    rut = registry_under_test
    taker = world.account(target)
    source = rut.account(role)
    known = _proposals(world, rut.code)
    _instruct(world, rut, request,
              f"Propose an external transfer of {quantity} {unit} of period {period} "
              f"from your account {rut.code} {source} to {taker.registry.upper()} "
              f"{taker.account_id} (account type {taker.account_type}).",
              {"action": "external_transfer", "quantity": quantity, "unit_type": unit,
               "unit_type_code": int(UnitType[unit]), "period": period,
               "from_account": source, "to_registry": taker.registry.upper(),
               "to_account": taker.account_id, "to_account_type": taker.account_type})

    def arrived() -> str | None:
        for view in _proposals(world, rut.code).values():
            proposal = view["proposal"]
            if view["transaction_id"] not in known and view["transaction_type"] == 3 \
                    and int(proposal["acquiring"]["account_id"]) == taker.account_id:
                return str(view["transaction_id"])
        return None

    transaction_id = rut.await_itl(
        f"an external transfer (ProposalSubmitted, type 3) from {rut.code} to "
        f"{taker.registry.upper()} {taker.account_id}", arrived)
    world.note(f"{rut.code} proposed {transaction_id}")
    world.transactions.append(("itl", transaction_id))


def _instruct(world: World, rut: RegistryUnderTest, request: pytest.FixtureRequest,
              text: str, instruction: dict[str, Any]) -> None:
    """Instruct the tester (printed, and to the tester hook) and keep the instruction in
    the scenario's evidence."""
    world.note(f"tester told: {text}")
    rut.instruct(_number(request), text, instruction)


def _proposals(world: World, code: str) -> dict[str, Any]:
    rows = world.client.ok("itl", "GET", "/transactions", params={"proposer": code})
    return {str(r["transaction_id"]): r for r in rows}


@FAMILY.then("the ITL records the transaction of the registry under test as "
             "{status:Status}")
def rut_transaction_status(world: World, status: str) -> None:
    """The ITL's final status of the transaction the registry under test proposed, and,
    for a completed external transfer, the acquiring registry's (which credits it on
    the ITL's 4)."""
    _, transaction_id = world.current()
    view = world.client.wait_final("itl", transaction_id)
    world.note(f"{transaction_id} at the ITL: {view['status_name']} "
               f"{[r['response_code'] for r in view['evaluation_results']]}")
    assert view["status_name"] == status, view["evaluation_results"]
    acquiring = str(view["proposal"]["acquiring"]["registry"]).lower()
    if view["status"] == 4 and acquiring in world.client.urls:
        world.client.wait_final(acquiring, transaction_id)


@FAMILY.given('the ITL has issued notice "{name}" to the registry under test:')
def rut_notice(world: World, registry_under_test: RegistryUnderTest, name: str,
               datatable: list[list[str]]) -> None:
    """The ITL issues a notice (``POST /notices``) to the registry under test, with the
    fields of a two-column table as ``the ITL issues notice``; the ITL sends it
    (``NoticeIssued``) without waiting for anything of the registry."""
    fields = notice_fields(name, datatable)
    response = world.client.call("itl", "POST", "/notices",
                                 json={"registry": registry_under_test.code, **fields})
    world.answered("itl", response)
    if response.status_code >= 300:
        raise ScenarioError(f"the ITL refused notice {name!r}: {response.text}")
    world.notices[name] = int(response.json()["notice_id"])


@FAMILY.when("the tester has the registry under test cancel {quantity:Quantity} {unit:Unit} "
             "of period {period:d} from its {role} account into account type "
             '{account_type:d} on notice "{name}"')
def rut_cancels(world: World, registry_under_test: RegistryUnderTest,
                request: pytest.FixtureRequest, quantity: int, unit: str, period: int,
                role: str, account_type: int, name: str) -> None:
    """Attended: the tester has their registry cancel units (type 4) into its
    cancellation account of the type, quoting the notice; the step waits until the ITL
    has the proposal, which becomes the scenario's transaction."""
    rut = registry_under_test
    notice = notice_id(world, name)
    source = rut.account(role)
    known = _proposals(world, rut.code)
    _instruct(world, rut, request,
              f"Cancel {quantity} {unit} of period {period} from your account "
              f"{rut.code} {source} into your cancellation account of type "
              f"{account_type}, on the ITL's notice {notice}.",
              {"action": "cancellation", "quantity": quantity, "unit_type": unit,
               "unit_type_code": int(UnitType[unit]), "period": period,
               "from_account": source, "account_type": account_type,
               "notice_id": notice})

    def arrived() -> str | None:
        for view in _proposals(world, rut.code).values():
            if view["transaction_id"] not in known and view["transaction_type"] == 4 \
                    and view["proposal"].get("notification_id") == notice:
                return str(view["transaction_id"])
        return None

    transaction_id = rut.await_itl(
        f"a cancellation (ProposalSubmitted, type 4) on notice {notice} from {rut.code}",
        arrived)
    world.note(f"{rut.code} proposed {transaction_id}")
    world.transactions.append(("itl", transaction_id))


@FAMILY.when("the tester has the registry under test ask the ITL for the status of the "
             "transaction")
def rut_asks_status(world: World, registry_under_test: RegistryUnderTest,
                    request: pytest.FixtureRequest) -> None:
    """Attended: the tester has their registry ask the ITL for the status of the
    scenario's transaction (``TransactionStatusQueried``); the step waits until the ITL
    has received the query."""
    rut = registry_under_test
    _, transaction_id = world.current()
    _instruct(world, rut, request,
              f"Ask the ITL for the status of transaction {transaction_id}.",
              {"action": "status_query", "transaction_id": transaction_id})
    rut.await_itl(f"a status query (TransactionStatusQueried) for {transaction_id} from "
                  f"{rut.code}", lambda: _query_answer(world, rut.code, transaction_id))


def _query_answer(world: World, code: str, transaction_id: str) -> dict[str, Any] | None:
    """The ITL's ``TransactionStatusReported`` to ``code`` about the transaction, once
    it has received that registry's query and answered it."""
    rows = world.client.ok("itl", "GET", "/messages",
                           params={"correlation_id": transaction_id})
    asked = any(r["direction"] == "in" and r["message_type"] == "TransactionStatusQueried"
                and r["sender"] == code for r in rows)
    answers = [r for r in rows if r["direction"] == "out" and r["recipient"] == code
               and r["message_type"] == "TransactionStatusReported"]
    return answers[-1]["envelope"] if asked and answers else None


@FAMILY.then("the ITL has answered the registry under test that the transaction is "
             "{status:Status}")
def rut_status_answered(world: World, registry_under_test: RegistryUnderTest,
                        status: str) -> None:
    """The ITL's ``TransactionStatusReported`` to the registry under test names the
    transaction's status."""
    _, transaction_id = world.current()
    answer = _query_answer(world, registry_under_test.code, transaction_id)
    if answer is None:
        raise ScenarioError(f"the ITL has not answered a status query of "
                            f"{registry_under_test.code} about {transaction_id}")
    view = world.client.ok("itl", "GET", f"/transactions/{transaction_id}")
    reported = answer["payload"]["status"]
    world.note(f"the ITL reported {transaction_id} to {registry_under_test.code}: {reported}")
    assert (reported, view["status_name"]) == (view["status"], status), answer


@FAMILY.when("the ITL reconciles the registry under test")
def reconcile_rut(world: World, registry_under_test: RegistryUnderTest) -> None:
    """The ITL starts a reconciliation of the registry under test (totals, then unit
    blocks, then the audit trail where they disagree) and the step waits until it is
    closed or waits for an operator."""
    world.reconciliation = world.client.reconcile(registry_under_test.code)
    world.note(f"reconciliation {world.reconciliation['reconciliation_id']} of "
               f"{registry_under_test.code}: status {world.reconciliation['status']} "
               f"phase {world.reconciliation['phase']}")
