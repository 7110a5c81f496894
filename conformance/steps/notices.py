"""The ITL's notices: issued, received by the registry, completed by the transactions that
fulfil them."""

from __future__ import annotations

from typing import Any

from conformance.steps.library import (
    Family,
    cell,
    notice_id,
)
from conformance.world import ScenarioError, World
from deploy.local.client import poll
from shared.codes import UnitType

FAMILY = Family("ITL notices")


#: The fields of a notice's table and the kind of value each takes (``TYPES``, ``d`` a
#: whole number, ``None`` any text).
NOTICE_FIELDS: dict[str, str | None] = {
    "notice type": "d", "target value": "Quantity", "commitment period": "d",
    "unit type": "Unit", "action due date": "Moment", "project": None, "text": None}


def notice_fields(name: str, datatable: list[list[str]]) -> dict[str, Any]:
    """A notice's two-column table (field | value) as the fields of ``POST /notices``
    (``target value`` 1 000 as 1000); a ``ScenarioError`` naming the notice and the row
    for a row that is not a known field and its value, or a value that does not fit."""
    fields: dict[str, Any] = {}
    for row in datatable:
        if len(row) != 2 or row[0].strip() not in NOTICE_FIELDS:
            raise ScenarioError(f"notice {name!r}: each row is 'field | value', the fields "
                                f"are {', '.join(NOTICE_FIELDS)}; got {row}")
        key = row[0].strip()
        wire = "project_id" if key == "project" else key.replace(" ", "_")
        kind = NOTICE_FIELDS[key]
        fields[wire] = (row[1].strip() if kind is None
                        else cell(f"notice {name!r}", key, row[1], kind, "field"))
    return fields


@FAMILY.when('the ITL issues notice "{name}" to {registry:Registry}:')
def issue_notice(world: World, name: str, registry: str, datatable: list[list[str]]) -> None:
    """The ITL issues a notice (``POST /notices``) with the fields of a two-column table
    (field | value): notice type, target value, commitment period, unit type, action due
    date, project, text. The step returns once the registry has received it."""
    fields = notice_fields(name, datatable)
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


@FAMILY.given('the ITL has issued notice "{name}" to {registry:Registry}:')
def issued_notice(world: World, name: str, registry: str,
                  datatable: list[list[str]]) -> None:
    """As ``When the ITL issues notice ...``, as a precondition."""
    issue_notice(world, name, registry, datatable)
    if name not in world.notices:
        raise ScenarioError(f"the ITL refused notice {name!r}: "
                            f"{world.last_response().text}")


@FAMILY.when('the ITL issues notice "{name}" to {registry:Registry} listing the {unit:Unit} '
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


@FAMILY.given('the ITL has issued notice "{name}" to {registry:Registry} listing the {unit:Unit} '
        'blocks of "{account}":')
def issued_notice_listing(world: World, name: str, registry: str, unit: str, account: str,
                          datatable: list[list[str]]) -> None:
    """As the ``When`` step of the same words, as a precondition."""
    issue_notice_listing(world, name, registry, unit, account, datatable)
    if name not in world.notices:
        raise ScenarioError(f"the ITL refused notice {name!r}: "
                            f"{world.last_response().text}")


@FAMILY.then('{registry:Registry} has received notice "{name}" requiring "{action}"')
def notice_received(world: World, registry: str, name: str, action: str) -> None:
    """The registry holds the notice and states the action it requires (a part of its
    ``required_action``)."""
    seen = world.client.ok(registry.lower(), "GET", f"/notices/{notice_id(world, name)}")
    world.note(f"{registry} notice {seen['notice_id']}: {seen['required_action']}")
    assert action in seen["required_action"], seen["required_action"]


@FAMILY.then('notice "{name}" is {status:Status} at the ITL')
def notice_status(world: World, name: str, status: str) -> None:
    """The ITL's notice status (OPEN, INCOMPLETE, COMPLETED), waited for up to 30 real
    seconds."""
    number = notice_id(world, name)
    view = poll(lambda: world.client.ok("itl", "GET", f"/notices/{number}"),
                lambda v: v["status_name"] == status, f"notice {number} {status}",
                timeout=30)
    world.note(f"ITL notice {number}: {view['status_name']}")


@FAMILY.then('{registry:Registry} has a notice of type {notice_type:d} with target value '
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
